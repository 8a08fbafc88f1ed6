#!/usr/bin/env bash
# The reference experiment's accuracy figures: trains examples/fmnist-oscillator.yaml with PAT and
# in-silico for EPOCHS epochs on each seed, and collects each run's final line into
# benchmarks/results/fmnist-<epochs>ep-<date>.json. Runs are kept under runs/bench-fmnist/.
# Usage: bash benchmarks/fmnist_accuracy.sh [EPOCHS=1] [SEEDS="1 2 3"] [METHODS="pat insilico"]
set -euo pipefail
cd "$(dirname "$0")/.."
epochs=${1:-1}
seeds=${2:-1 2 3}
methods=${3:-pat insilico}
out=benchmarks/results/fmnist-${epochs}ep-$(date -u +%Y-%m-%d).json
mkdir -p runs/bench-fmnist
rows=()
for seed in $seeds; do
  for m in $methods; do
    dir=runs/bench-fmnist/$m-seed$seed-${epochs}ep
    rm -rf "$dir"
    line=$(build/pnn train examples/fmnist-oscillator.yaml --set method=$m --set seed=$seed --set epochs=$epochs \
           --out "$dir" 2> "$dir.log" | grep '^final:')
    echo "$m seed $seed: $line"
    kv=$(echo "${line#final: }" | sed -E 's/([a-z_]+)=([0-9.]+)/"\1": \2,/g; s/,$//')
    rows+=("{\"method\": \"$m\", \"seed\": $seed, \"epochs\": $epochs, $kv}")
  done
done
{
  echo "{\"benchmark\": \"fmnist_reference_accuracy\", \"config\": \"examples/fmnist-oscillator.yaml\","
  echo " \"commit\": \"$(git rev-parse --short HEAD)\", \"date\": \"$(date -u +%FT%TZ)\","
  echo " \"machine\": \"$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores\","
  echo " \"runs\": ["
  for i in "${!rows[@]}"; do printf '  %s%s\n' "${rows[$i]}" "$([ "$i" -lt $((${#rows[@]} - 1)) ] && echo ,)"; done
  echo " ]}"
} > "$out"
echo "wrote $out"
