#!/usr/bin/env bash
# The optical PNN of examples/fmnist-shg.yaml trained with PAT and in silico, tested on its
# (mismatched, noisy) device, beside the digital network of about the same size
# (examples/fmnist-shg-digital.yaml), over seeds 1 2 3. The seed draws the initialisation, the
# data order and the device instance (its hidden physics and noise: the device URI's seed follows
# the run's). Then, unless NO_SWEEP=1, the same PAT/in-silico pair at other mismatch scales.
# Test accuracy on the device, mean ± std. Writes benchmarks/results/shg-accuracy-<date>.json.
# Usage: bash benchmarks/shg_accuracy.sh [SEEDS]     (run from anywhere; build/pnn must exist)
set -euo pipefail
cd "$(dirname "$0")/.."
seeds=${1:-1 2 3}
sweep=${SWEEP:-0 0.5 2 3}
[ "${NO_SWEEP:-0}" = 1 ] && sweep=""
out=benchmarks/results/shg-accuracy-$(date -u +%Y-%m-%d).json
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
device='sim:shg?k=98&x_dim=49&y_dim=16'   # as in examples/fmnist-shg.yaml, seed and mismatch added below
runs=()
train() {  # variant seed mismatch config [--set ...]: one run, its final line as JSON
  local variant=$1 seed=$2 mm=$3 cfg=$4; shift 4
  local line acc twin
  line=$(build/pnn train "$cfg" "$@" --set seed="$seed" --out "$tmp/$variant-$seed-$mm" 2>/dev/null | grep '^final:')
  acc=$(echo "$line" | sed -E 's/.*test_acc_device=([0-9.]+).*/\1/')
  twin=$(echo "$line" | sed -E 's/.*test_acc_twin=([0-9.]+).*/\1/')
  runs+=("{\"variant\": \"$variant\", \"seed\": $seed, \"mismatch\": $mm, \"test_acc_device\": $acc, \"test_acc_twin\": $twin}")
  echo "$variant seed $seed mismatch $mm: device $acc twin $twin" >&2
}
for seed in $seeds; do
  for m in pat insilico; do
    train $m "$seed" 1 examples/fmnist-shg.yaml --set method=$m --set "network.1.device=$device&seed=$seed"
  done
  train digital "$seed" 0 examples/fmnist-shg-digital.yaml
done
for mm in $sweep; do
  for seed in $seeds; do
    for m in pat insilico; do
      train $m "$seed" "$mm" examples/fmnist-shg.yaml --set method=$m --set "network.1.device=$device&seed=$seed&mismatch=$mm"
    done
  done
done
printf '%s\n' "${runs[@]}" | python3 -c '
import json, statistics, sys, subprocess, datetime, platform, os
runs = [json.loads(l) for l in sys.stdin]
summary = {}
for r in runs:
    key = r["variant"] if r["variant"] == "digital" else "%s@mismatch=%g" % (r["variant"], r["mismatch"])
    summary.setdefault(key, []).append(r["test_acc_device"])
summary = {k: {"mean": statistics.mean(a), "std": statistics.stdev(a) if len(a) > 1 else 0.0, "n": len(a)}
           for k, a in summary.items()}
git = lambda *a: subprocess.run(["git", *a], capture_output=True, text=True).stdout.strip()
res = {"benchmark": "shg_accuracy", "configs": ["examples/fmnist-shg.yaml", "examples/fmnist-shg-digital.yaml"],
       "note": "device seed = run seed; mismatch 1 is the documented default; digital has no device",
       "commit": git("rev-parse", "--short", "HEAD"), "dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
       "date": datetime.datetime.now(datetime.timezone.utc).isoformat(), "machine": platform.machine(),
       "cpus": os.cpu_count(), "loadavg_end": os.getloadavg(), "summary_test_acc_device": summary, "runs": runs}
json.dump(res, open(sys.argv[1], "w"), indent=1)
for k, s in summary.items():
    print("%-22s test acc on device: %.1f +- %.1f %% (n=%d)" % (k, 100 * s["mean"], 100 * s["std"], s["n"]))
print("wrote", sys.argv[1])
' "$out"
