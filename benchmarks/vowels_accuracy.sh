#!/usr/bin/env bash
# The main job's accuracy in context: the vowel oscillator PNN trained with PAT and in-silico,
# beside digital baselines (linear classifier, small MLP) on the same split, over 5 seeds
# (the seed also draws the stratified split). Test accuracy on the device, mean ± std.
# Writes benchmarks/results/vowels-<date>.json. Usage: bash benchmarks/vowels_accuracy.sh [SEEDS]
set -euo pipefail
cd "$(dirname "$0")/.."
seeds=${1:-1 2 3 4 5}
out=benchmarks/results/vowels-$(date -u +%Y-%m-%d).json
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
runs=()
for seed in $seeds; do
  for variant in pat insilico linear mlp; do
    case $variant in
      pat|insilico) cfg=examples/vowels-oscillator.yaml; set_method="--set method=$variant" ;;
      *) cfg=examples/vowels-$variant.yaml; set_method="" ;;
    esac
    line=$(build/pnn train "$cfg" $set_method --set seed=$seed --out "$tmp/$variant-$seed" 2>/dev/null | grep '^final:')
    acc=$(echo "$line" | sed -E 's/.*test_acc_device=([0-9.]+).*/\1/')
    twin=$(echo "$line" | sed -E 's/.*test_acc_twin=([0-9.]+).*/\1/')
    runs+=("{\"variant\": \"$variant\", \"seed\": $seed, \"test_acc_device\": $acc, \"test_acc_twin\": $twin}")
  done
done
printf '%s\n' "${runs[@]}" | python3 -c '
import json, statistics, sys, subprocess, datetime, platform
runs = [json.loads(l) for l in sys.stdin]
summary = {}
for v in ("pat", "insilico", "linear", "mlp"):
    a = [r["test_acc_device"] for r in runs if r["variant"] == v]
    summary[v] = {"mean": statistics.mean(a), "std": statistics.stdev(a) if len(a) > 1 else 0.0, "n": len(a)}
res = {"benchmark": "vowels_accuracy", "configs": ["examples/vowels-oscillator.yaml", "examples/vowels-linear.yaml",
       "examples/vowels-mlp.yaml"], "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"],
       capture_output=True, text=True).stdout.strip(), "date": datetime.datetime.utcnow().isoformat() + "Z",
       "machine": platform.processor() or platform.machine(), "summary_test_acc_device": summary, "runs": runs}
out = sys.argv[1]
json.dump(res, open(out, "w"), indent=1)
for v, s in summary.items():
    print("%-9s test acc on device: %.1f +- %.1f %% (n=%d)" % (v, 100 * s["mean"], 100 * s["std"], s["n"]))
print("wrote", out)
' "$out"
