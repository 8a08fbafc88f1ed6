#!/usr/bin/env bash
# The circuit PNN's accuracy on the vowels (examples/vowels-circuit.yaml) trained with PAT and
# in-silico, on devices with the given mismatch (the device seed follows the run seed, so each
# seed is another copy of the hardware), beside digital baselines on the same split: an MLP of
# about the PNN's size (examples/vowels-circuit-digital.yaml) and the linear classifier. Test
# accuracy on the device, mean ± std over seeds.
# Usage: bash benchmarks/circuit_accuracy.sh [SEEDS] [MISMATCHES] [TAG]
#   the table of the report:  bash benchmarks/circuit_accuracy.sh "1 2 3" "1"
#   the mismatch sweep:       bash benchmarks/circuit_accuracy.sh "$(seq -s' ' 10)" "0 0.5 1 2 3" sweep
# Writes benchmarks/results/circuit-accuracy[-TAG]-<date>.json.
set -euo pipefail
cd "$(dirname "$0")/.."
seeds=${1:-1 2 3}
mismatches=${2:-1}
tag=${3:+-$3}
out=benchmarks/results/circuit-accuracy$tag-$(date -u +%Y-%m-%d).json
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
runs=()
record() { # variant mismatch seed final-line
  local acc twin
  acc=$(echo "$4" | sed -E 's/.*test_acc_device=([0-9.]+).*/\1/')
  twin=$(echo "$4" | sed -E 's/.*test_acc_twin=([0-9.]+).*/\1/')
  runs+=("{\"variant\": \"$1\", \"mismatch\": $2, \"seed\": $3, \"test_acc_device\": $acc, \"test_acc_twin\": $twin}")
}
for seed in $seeds; do
  for m in $mismatches; do
    for method in pat insilico; do
      line=$(build/pnn train examples/vowels-circuit.yaml --set method=$method --set seed=$seed \
        --set "network.2.device=sim:circuit?segments=16&y_dim=16&mismatch=$m&seed=$seed" \
        --out "$tmp/$method-$m-$seed" 2>/dev/null | grep '^final:')
      record $method "$m" "$seed" "$line"
    done
  done
  for variant in digital linear; do
    cfg=examples/vowels-$variant.yaml
    [ $variant = digital ] && cfg=examples/vowels-circuit-digital.yaml
    line=$(build/pnn train "$cfg" --set seed=$seed --out "$tmp/$variant-$seed" 2>/dev/null | grep '^final:')
    record $variant null "$seed" "$line"
  done
done
printf '%s\n' "${runs[@]}" | python3 -c '
import json, statistics, sys, subprocess, datetime, platform, os
runs = [json.loads(l) for l in sys.stdin]
groups = {}
for r in runs:
    key = r["variant"] if r["mismatch"] is None else "%s mismatch=%g" % (r["variant"], r["mismatch"])
    groups.setdefault(key, []).append(r["test_acc_device"])
summary = {k: {"mean": statistics.mean(a), "std": statistics.stdev(a) if len(a) > 1 else 0.0, "n": len(a)}
           for k, a in groups.items()}
res = {"benchmark": "circuit_accuracy", "configs": ["examples/vowels-circuit.yaml", "examples/vowels-circuit-digital.yaml",
       "examples/vowels-linear.yaml"], "device": "sim:circuit?segments=16&y_dim=16&mismatch=M&seed=SEED",
       "parameters": {"circuit_pnn": 113, "digital": 107, "linear": 91},
       "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip(),
       "date": datetime.datetime.utcnow().isoformat() + "Z", "machine": platform.processor() or platform.machine(),
       "cpus": os.cpu_count(), "load_average": os.getloadavg(), "summary_test_acc_device": summary, "runs": runs}
out = sys.argv[1]
json.dump(res, open(out, "w"), indent=1)
for k, s in summary.items():
    print("%-22s test acc on device: %.1f +- %.1f %% (n=%d)" % (k, 100 * s["mean"], 100 * s["std"], s["n"]))
print("wrote", out)
' "$out"
