#!/usr/bin/env bash
# Accuracy of the scatter examples on the device: PAT and in-silico training of
# examples/vowels-scatter.yaml and examples/fmnist-scatter.yaml, beside a digital network of about
# the same size on the same data and epochs (vowels: 12 -> 24 -> relu -> 7, 487 parameters
# against 465; Fashion-MNIST: 784 -> 64 -> tanh -> 10, 50,890 against 51,265), for each seed and
# each mismatch. The device seed follows the run seed (each seed is another copy of the
# hardware as well as another initialisation and data order). Test accuracy on the device,
# mean ± std over seeds, into benchmarks/results/scatter-accuracy-<date>.json.
# Usage: bash benchmarks/scatter_accuracy.sh [SEEDS="1 2 3"] [MISMATCHES="1"] [EXAMPLES="vowels fmnist"]
#        [VARIANTS="pat insilico digital"]
# e.g. the mismatch sweep: bash benchmarks/scatter_accuracy.sh "1 2 3" "0.5 1 2 3" fmnist "pat insilico"
# OpenMP threads default to 1: on a shared 2-core machine, spinning OpenMP threads that another
# process preempts made steps 50x slower (the figures do not depend on it beyond rounding).
set -euo pipefail
cd "$(dirname "$0")/.."
seeds=${1:-1 2 3}
mismatches=${2:-1}
examples=${3:-vowels fmnist}
variants=${4:-pat insilico digital}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
tag=${TAG:-accuracy}
out=benchmarks/results/scatter-$tag-$(date -u +%Y-%m-%d).json
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

cat > "$tmp/vowels-digital.yaml" <<'EOF'
name: vowels-scatter-digital
data: {set: vowels, test_frac: 0.2}
network:
  - {kind: linear, name: fc1, out: 24}
  - {kind: relu}
  - {kind: linear, name: fc2, out: 7}
method: insilico
optimizer: {kind: adam, lr: 0.01}
batch: 16
epochs: 60
seed: 1
EOF
cat > "$tmp/fmnist-digital.yaml" <<'EOF'
name: fmnist-scatter-digital
data: {set: fashion-mnist, path: /usr/share/datasets/fashion-mnist}
network:
  - {kind: linear, name: enc, out: 64}
  - {kind: tanh}
  - {kind: linear, name: fc, out: 10}
method: insilico
optimizer: {kind: adam, lr: 0.001}
batch: 32
eval_batch: 256
epochs: 5
seed: 1
EOF

runs=()
for ex in $examples; do
  case $ex in
    vowels) dims="x_dim=16&modes=256&y_dim=7" ;;
    fmnist) dims="x_dim=64&modes=1024&y_dim=10" ;;
    *) echo "unknown example $ex" >&2; exit 64 ;;
  esac
  for mm in $mismatches; do
    for seed in $seeds; do
      for v in $variants; do
        [ "$v" = digital ] && [ "$mm" != "$(echo $mismatches | cut -d' ' -f1)" ] && continue  # no device
        if [ "$v" = digital ]; then
          args=("$tmp/$ex-digital.yaml")
        else
          args=(examples/$ex-scatter.yaml --set method=$v --set "network.2.device=sim:scatter?$dims&seed=$seed&mismatch=$mm")
        fi
        line=$(build/pnn train "${args[@]}" --set seed=$seed --out "$tmp/$ex-$v-$mm-$seed" 2>/dev/null | grep '^final:')
        acc=$(echo "$line" | sed -E 's/.*test_acc_device=([0-9.]+).*/\1/')
        twin=$(echo "$line" | sed -E 's/.*test_acc_twin=([0-9.]+).*/\1/')
        secs=$(echo "$line" | sed -E 's/.*train_s=([0-9.]+).*/\1/')
        echo "$ex $v mismatch=$mm seed=$seed: device $acc twin $twin ($secs s)" >&2
        runs+=("{\"example\": \"$ex\", \"variant\": \"$v\", \"mismatch\": $mm, \"seed\": $seed, \"test_acc_device\": $acc, \"test_acc_twin\": $twin, \"train_s\": $secs}")
      done
    done
  done
done
printf '%s\n' "${runs[@]}" | python3 -c '
import json, os, statistics, sys, subprocess, datetime, platform
runs = [json.loads(l) for l in sys.stdin]
summary = {}
for r in runs:
    key = "%s/%s/mismatch=%g" % (r["example"], r["variant"], r["mismatch"]) if r["variant"] != "digital" \
        else "%s/digital" % r["example"]
    summary.setdefault(key, []).append(r["test_acc_device"])
summary = {k: {"mean": statistics.mean(a), "std": statistics.stdev(a) if len(a) > 1 else 0.0, "n": len(a)}
           for k, a in summary.items()}
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.machine())
res = {"benchmark": "scatter_accuracy", "configs": ["examples/vowels-scatter.yaml", "examples/fmnist-scatter.yaml"],
       "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip(),
       "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
       "machine": {"cpu": cpu, "cores": os.cpu_count(), "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
                   "loadavg_end": open("/proc/loadavg").read().split()[:3]},
       "summary_test_acc_device": summary, "runs": runs}
json.dump(res, open(sys.argv[1], "w"), indent=1)
for k, s in summary.items():
    print("%-32s test acc on device: %.2f +- %.2f %% (n=%d)" % (k, 100 * s["mean"], 100 * s["std"], s["n"]))
print("wrote", sys.argv[1])
' "$out"
