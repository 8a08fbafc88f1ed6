#!/usr/bin/env bash
# Device accuracy against the device's hidden mismatch: PAT as a lab runs it, PAT with the noise
# estimated from the output (twin_noise: estimate), PAT with the oracle noise, and in silico, at
# mismatch 0, 0.5, 1, 2 and 4, over SEEDS (the device seed follows the run seed). TASK vowels
# (examples/vowels-oscillator.yaml) or fmnist (examples/fmnist-oscillator.yaml; pass e.g.
# --set data.limit_train=9600 --set data.limit_test=2000 after the TAG to keep it short).
# Writes benchmarks/results/mismatch-sweep-TASK[-TAG]-<date>.json and .png.
# Usage: bash benchmarks/mismatch_sweep.sh [TASK] [SEEDS] [TAG] [--set ...]
set -euo pipefail
cd "$(dirname "$0")/.."
task=${1:-vowels}
seeds=${2:-1 2}
tag=${3:+-$3}
shift $(( $# < 3 ? $# : 3 ))
mismatches=${MISMATCHES:-0 0.5 1 2 4}
methods=${METHODS:-pat estimate oracle insilico}
case $task in
  vowels) cfg=examples/vowels-oscillator.yaml layers="1" dev1='sim:oscillator?n=40&nt=10' ;;
  fmnist) cfg=examples/fmnist-oscillator.yaml layers="1 4" dev1='sim:oscillator?n=100' dev4='sim:oscillator?n=1610' ;;
  *) echo "unknown task $task (vowels, fmnist)" >&2; exit 64 ;;
esac
base=benchmarks/results/mismatch-sweep-$task$tag-$(date -u +%Y-%m-%d)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
runs=()
for seed in $seeds; do
  for m in $mismatches; do
    devs=()
    for L in $layers; do
      d=dev$L
      devs+=(--set "network.$L.device=${!d}&mismatch=$m&seed=$((seed * 10 + L))")
    done
    for method in $methods; do
      opts=()
      for L in $layers; do
        case $method in
          estimate|oracle) opts+=(--set network.$L.twin_noise=$method) ;;
          *) opts+=(--set network.$L.twin_noise=nominal) ;; # whatever the example's default
        esac
      done
      [ $method = insilico ] && opts+=(--set method=insilico)
      line=$(build/pnn train $cfg --set seed=$seed "${devs[@]}" "${opts[@]}" "$@" --out "$tmp/$method-$m-$seed" 2>/dev/null |
        grep '^final:')
      acc=$(echo "$line" | sed -E 's/.*test_acc_device=([0-9.]+).*/\1/')
      echo "$task mismatch=$m seed=$seed $method: device $acc" >&2
      runs+=("{\"method\": \"$method\", \"mismatch\": $m, \"seed\": $seed, \"test_acc_device\": $acc}")
    done
  done
done
printf '%s\n' "${runs[@]}" | python3 -c '
import json, statistics, sys, subprocess, datetime
runs = [json.loads(l) for l in sys.stdin]
table = {}
for r in runs:
    table.setdefault(r["method"], {}).setdefault(r["mismatch"], []).append(r["test_acc_device"])
summary = {m: {str(k): {"mean": statistics.mean(v), "std": statistics.stdev(v) if len(v) > 1 else 0.0, "n": len(v)}
               for k, v in sorted(t.items())} for m, t in table.items()}
res = {"benchmark": "mismatch_sweep", "task": sys.argv[2], "extra_args": sys.argv[3:],
       "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip(),
       "date": datetime.datetime.now(datetime.timezone.utc).isoformat(), "summary_test_acc_device": summary, "runs": runs}
json.dump(res, open(sys.argv[1] + ".json", "w"), indent=1)
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
fig, ax = plt.subplots(figsize=(6.4, 4.2))
names = {"pat": "PAT (lab default)", "estimate": "PAT, noise estimated (lab)", "oracle": "PAT, oracle noise (simulation only)",
         "insilico": "in silico"}
for m, t in summary.items():
    items = sorted(t.items(), key=lambda kv: float(kv[0]))
    ax.errorbar([float(k) for k, _ in items], [100 * v["mean"] for _, v in items],
                yerr=[100 * v["std"] for _, v in items], marker="o", capsize=3, label=names.get(m, m))
ax.set_xlabel("hidden mismatch (scale of the device-twin differences)")
ax.set_ylabel("test accuracy on the device (%)")
ax.set_title("%s: accuracy against mismatch" % sys.argv[2])
ax.grid(True, alpha=0.3)
ax.legend(fontsize=8)
fig.tight_layout()
fig.savefig(sys.argv[1] + ".png", dpi=120)
for m, t in summary.items():
    print("%-9s " % m + "  ".join("m=%s %.1f+-%.1f" % (k, 100 * v["mean"], 100 * v["std"]) for k, v in t.items()))
print("wrote", sys.argv[1] + ".json", sys.argv[1] + ".png")
' "$base" "$task" "$@"
