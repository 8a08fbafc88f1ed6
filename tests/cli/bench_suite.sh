#!/usr/bin/env bash
# pnn bench --suite --quick runs and writes a valid report (the figures are not checked: they are
# the machine's): report.json with the machine, the floor, every twin point of the quick grid with
# its three passes, the bridge and the dp rows (where mpirun exists); report.md with its sections.
# Bad input: an unknown section, a size beyond this machine's memory (refused before anything
# runs, with the size it needs), an unknown option.
source "$(dirname "$0")/lib.bash"
expect 0 "" -- "$pnn" bench --suite --quick --sections floor,twins,bridge,remote,reference --rounds 1 --out "$tmp/suite"
if python3 - "$tmp/suite" <<'PY'
import json, os, sys
d = sys.argv[1]
r = json.load(open(os.path.join(d, "report.json")))
assert r["machine"]["cores"] >= 1 and r["machine"]["cpu"], r["machine"]
assert r["floor"]["gemm_gflops"] > 0 and r["floor"]["stream_gbs"] > 0, r["floor"]
twins = r["twins"]
systems = {p["system"] for p in twins}
assert systems == {"oscillator", "circuit", "scatter", "shg"}, systems
osc = [p for p in twins if p["system"] == "oscillator"]
assert len(osc) == 2 * 2 * 3, len(osc)   # N 100, 400 x batch 1, 32 x forward, vjp, pat
for p in twins:
    assert p["ms_median"] > 0 and p["ms_min"] <= p["ms_median"] <= p["ms_max"] and p["samples_per_s"] > 0, p
for p in twins:  # every system counts its FLOPs (pnn_system.flops)
    assert 0 < p["gflops"] and 0 < p["floor_fraction"] < 2, p
assert len(r["bridge"]) == 4 and all(0 < b["duty"] <= 1.0 + 1e-9 for b in r["bridge"]), r["bridge"]
figs = (r["remote"] or {}).get("figures", [])
assert {f["server"] for f in figs} >= {"in-process", "c"} or r["remote_note"], (figs, r["remote_note"])
# the reference step needs PyTorch and Fashion-MNIST: its figures, or a note saying which is missing
ref = r["reference"]
assert (ref and ref["ms_per_step_median"]["pnn_pat"] > 0) or r["reference_note"].startswith("skipped"), r["reference_note"]
md = open(os.path.join(d, "report.md")).read()
for s in ("# pnn bench --suite --quick", "Floor:", "## Twins", "## Host bridge", "## Remote devices",
          "## The reference PAT step"):
    assert s in md, s
PY
then ok; else bad "the quick suite's report"; fi
expect 64 "unknown suite section 'gpu'; known: floor, twins, torch, bridge, dp, remote, reference" -- \
  "$pnn" bench --suite --sections twins,gpu --out "$tmp/b1"
expect 78 "oscillator at N=1000000, batch 1 needs about [0-9.]+ GiB.*choose a smaller N" -- \
  "$pnn" bench --suite --sizes oscillator=1000000 --batches 1 --out "$tmp/b2"
expect 64 "unknown option --fast" -- "$pnn" bench --suite --fast 1 --out "$tmp/b3"
expect 64 "--sizes 'osc=100'" -- "$pnn" bench --suite --sizes osc=100 --out "$tmp/b4"
[ ! -e "$tmp/b1" ] && [ ! -e "$tmp/b2" ] && ok || bad "a refused suite left files"
finish
