#!/usr/bin/env bash
# The circuit system's measured equalities (tests/test_circuit.c prints each as "measured NAME:
# VALUE (must be at most|at least BOUND)"): kernels against the double reference, the VJP against
# finite differences, the ideal device against its twin, the linear step response against its
# closed form, superposition, the DC operating point, noise and drift. Runs the test suite and
# writes benchmarks/results/circuit-equalities-<date>.json. Usage: bash benchmarks/circuit_equalities.sh
set -euo pipefail
cd "$(dirname "$0")/.."
out=benchmarks/results/circuit-equalities-$(date -u +%Y-%m-%d).json
CK_FORK=no OMP_NUM_THREADS=2 build/test_circuit | python3 -c '
import json, re, sys, subprocess, datetime, platform
figures, status = [], None
for line in sys.stdin:
    m = re.match(r"measured (\S+): (\S+) \(must be (at most|at least) (\S+)\)", line)
    if m:
        value, bound = float(m.group(2)), float(m.group(4))
        ok = value <= bound if m.group(3) == "at most" else value >= bound
        figures.append({"name": m.group(1), "value": value, "must_be": m.group(3), "bound": bound, "holds": ok})
    elif "Checks:" in line:
        status = line.strip()
res = {"benchmark": "circuit_equalities", "source": "tests/test_circuit.c", "suite": status,
       "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip(),
       "date": datetime.datetime.utcnow().isoformat() + "Z", "machine": platform.processor() or platform.machine(),
       "figures": figures}
json.dump(res, open(sys.argv[1], "w"), indent=1)
for f in figures:
    print("%-44s %10.3g  (%s %.3g)%s" % (f["name"], f["value"], f["must_be"], f["bound"], "" if f["holds"] else "  FAILS"))
print(status)
print("wrote", sys.argv[1])
' "$out"
