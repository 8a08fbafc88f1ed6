#!/usr/bin/env bash
# The hidden-noise gap on the reference experiment (examples/fmnist-oscillator.yaml, one epoch):
# test accuracy on the device for PAT as a lab runs it (the twin draws its own noise of the
# nominal size), PAT with the noise estimated from the device's output (twin_noise: estimate),
# PAT with the simulator's own draws (twin_noise: oracle, impossible with an instrument) and in
# silico, over SEEDS. Extra arguments go to every run (e.g. --set data.limit_train=9600).
# Writes benchmarks/results/noise-gap[-TAG]-<date>.json.
# Usage: bash benchmarks/noise_gap.sh [SEEDS] [METHODS] [TAG] [--set ...]
set -euo pipefail
cd "$(dirname "$0")/.."
seeds=${1:-1 2 3}
methods=${2:-pat estimate oracle insilico}
tag=${3:+-$3}
shift $(( $# < 3 ? $# : 3 ))
out=benchmarks/results/noise-gap$tag-$(date -u +%Y-%m-%d).json
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
runs=()
for seed in $seeds; do
  for m in $methods; do
    case $m in
      pat) opts=(--set network.1.twin_noise=nominal --set network.4.twin_noise=nominal) ;;
      estimate|oracle) opts=(--set network.1.twin_noise=$m --set network.4.twin_noise=$m) ;;
      insilico) opts=(--set method=insilico --set network.1.twin_noise=nominal --set network.4.twin_noise=nominal) ;;
    esac
    start=$(date +%s)
    line=$(build/pnn train examples/fmnist-oscillator.yaml --set seed=$seed "${opts[@]}" "$@" --out "$tmp/$m-$seed" 2>/dev/null | grep '^final:')
    acc=$(echo "$line" | sed -E 's/.*test_acc_device=([0-9.]+).*/\1/')
    secs=$(( $(date +%s) - start ))
    echo "$m seed $seed: device $acc ($secs s)" >&2
    runs+=("{\"method\": \"$m\", \"seed\": $seed, \"test_acc_device\": $acc, \"wall_s\": $secs}")
  done
done
printf '%s\n' "${runs[@]}" | python3 -c '
import json, statistics, sys, subprocess, datetime, os
runs = [json.loads(l) for l in sys.stdin]
groups = {}
for r in runs:
    groups.setdefault(r["method"], []).append(r["test_acc_device"])
summary = {k: {"mean": statistics.mean(a), "std": statistics.stdev(a) if len(a) > 1 else 0.0, "n": len(a)}
           for k, a in groups.items()}
res = {"benchmark": "noise_gap", "config": "examples/fmnist-oscillator.yaml", "extra_args": sys.argv[2:],
       "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip(),
       "date": datetime.datetime.now(datetime.timezone.utc).isoformat(),
       "cpu": next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?"),
       "summary_test_acc_device": summary, "runs": runs}
json.dump(res, open(sys.argv[1], "w"), indent=1)
for k, s in summary.items():
    print("%-10s test acc on device: %.2f +- %.2f %% (n=%d)" % (k, 100 * s["mean"], 100 * s["std"], s["n"]))
print("wrote", sys.argv[1])
' "$out" "$@"
