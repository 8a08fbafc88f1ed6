#!/usr/bin/env bash
# Learned twins in training: test accuracy on the device of a vowels PNN trained with PAT and
# in silico through each twin: the analytic twin (the ideal physics), a learned twin (an MLP
# fitted by `pnn twin fit` to this device's own measurements), the same refined online during
# PAT (refine: every 5 calls, 10 Adam steps on a 4096-row buffer), and a residual twin (analytic
# plus a fitted correction). The device seed follows the run seed (each seed is another copy of
# the hardware), and each copy gets its own fitted twins. Mean ± std over seeds.
# Usage: bash benchmarks/twin_accuracy.sh [SYSTEM] [SEEDS] [MISMATCHES]
#   SYSTEM circuit (examples/vowels-circuit.yaml; fits of 8192 samples, x uniform in the rails,
#   as the encoder's tanh gives) or oscillator (examples/vowels-oscillator.yaml; fits of 4096
#   samples whose x are the task's own: pnn twin fit --config, the vowels through the initial
#   encoder of the run's seed)
# Writes benchmarks/results/twin-accuracy-SYSTEM-<date>.json.
set -euo pipefail
cd "$(dirname "$0")/.."
system=${1:-circuit}
seeds=${2:-1 2 3}
mismatches=${3:-1}
case $system in
  circuit) cfg=examples/vowels-circuit.yaml layer=2 dev='sim:circuit?segments=16&y_dim=16&mismatch=M&seed=S'
           fit=(--samples 8192 --hidden 128,128) ;;
  oscillator) cfg=examples/vowels-oscillator.yaml layer=1 dev='sim:oscillator?n=40&nt=10&mismatch=M&seed=S'
           fit=(--samples 4096 --hidden 128,128 --epochs 100 --patience 15) ;;
  *) echo "unknown system $system (circuit, oscillator)" >&2; exit 64 ;;
esac
out=benchmarks/results/twin-accuracy-$system-$(date -u +%Y-%m-%d).json
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
runs=()
for seed in $seeds; do
  for m in $mismatches; do
    uri=${dev/M/$m}; uri=${uri/S/$seed}
    fits=()
    for kind in learned residual; do
      if [ $system = oscillator ]; then
        line=$(build/pnn twin fit --config $cfg --set seed=$seed --set "network.$layer.device=$uri" --kind $kind \
          --out "$tmp/$kind-$m-$seed.st" "${fit[@]}" 2>/dev/null | grep '^fit:')
      else
        line=$(build/pnn twin fit "$uri" --kind $kind --out "$tmp/$kind-$m-$seed.st" "${fit[@]}" 2>/dev/null | grep '^fit:')
      fi
      echo "$system mismatch=$m seed=$seed $kind: $line" >&2
      fits+=("\"$kind\": \"${line#fit: }\"")
    done
    for variant in analytic learned learned_refined residual; do
      case $variant in
        analytic) twin=analytic ;;
        learned) twin="{kind: learned, path: $tmp/learned-$m-$seed.st}" ;;
        learned_refined) twin="{kind: learned, path: $tmp/learned-$m-$seed.st, refine: {every: 5, buffer: 4096, steps: 10, batch: 64}}" ;;
        residual) twin="{kind: residual, path: $tmp/residual-$m-$seed.st}" ;;
      esac
      for method in pat insilico; do
        [ $variant = learned_refined ] && [ $method = insilico ] && continue # no device calls to refine on
        line=$(build/pnn train $cfg --set method=$method --set seed=$seed --set "network.$layer.device=$uri" \
          --set "network.$layer.twin=$twin" --out "$tmp/run-$variant-$method-$m-$seed" 2>/dev/null | grep '^final:')
        acc=$(echo "$line" | sed -E 's/.*test_acc_device=([0-9.]+).*/\1/')
        tacc=$(echo "$line" | sed -E 's/.*test_acc_twin=([0-9.]+).*/\1/')
        echo "$system mismatch=$m seed=$seed $variant $method: device $acc twin $tacc" >&2
        runs+=("{\"twin\": \"$variant\", \"method\": \"$method\", \"mismatch\": $m, \"seed\": $seed, \"test_acc_device\": $acc, \"test_acc_twin\": $tacc, \"fits\": {${fits[0]}, ${fits[1]}}}")
      done
    done
  done
done
printf '%s\n' "${runs[@]}" | python3 -c '
import json, statistics, sys, subprocess, datetime, platform, os
runs = [json.loads(l) for l in sys.stdin]
groups = {}
for r in runs:
    groups.setdefault("%s %s mismatch=%g" % (r["method"], r["twin"], r["mismatch"]), []).append(r["test_acc_device"])
summary = {k: {"mean": statistics.mean(a), "std": statistics.stdev(a) if len(a) > 1 else 0.0, "n": len(a)}
           for k, a in groups.items()}
res = {"benchmark": "twin_accuracy", "system": sys.argv[2], "config": sys.argv[3], "device": sys.argv[4],
       "fit_options": sys.argv[5],
       "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip(),
       "date": datetime.datetime.now(datetime.timezone.utc).isoformat(),
       "cpu": next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?"),
       "cpus": os.cpu_count(), "load_average": os.getloadavg(), "summary_test_acc_device": summary, "runs": runs}
json.dump(res, open(sys.argv[1], "w"), indent=1)
for k, s in summary.items():
    print("%-40s test acc on device: %.1f +- %.1f %% (n=%d)" % (k, 100 * s["mean"], 100 * s["std"], s["n"]))
print("wrote", sys.argv[1])
' "$out" "$system" "$cfg" "$dev" "${fit[*]}"
