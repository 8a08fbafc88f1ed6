#!/usr/bin/env bash
# The reference experiment's accuracy figures: trains examples/fmnist-oscillator.yaml for EPOCHS
# epochs on each seed with each method, and collects each run's final line into
# benchmarks/results/fmnist-<epochs>ep-<date>.json. Runs are kept under runs/bench-fmnist/.
# Methods: pat (the twin models the device's input noise with its own draws, as in a lab),
# pat-estimate (the noise the device had estimated from its output, the example's default),
# pat-oracle (the twin replays the simulator's own noise draws, as the PAT authors' code does),
# insilico (trained on the twin alone, evaluated on the device).
# Usage: bash benchmarks/fmnist_accuracy.sh [EPOCHS=1] [SEEDS="1 2 3"] [METHODS="pat pat-estimate pat-oracle insilico"]
set -euo pipefail
cd "$(dirname "$0")/.."
epochs=${1:-1}
seeds=${2:-1 2 3}
methods=${3:-pat pat-estimate pat-oracle insilico}
out=benchmarks/results/fmnist-${epochs}ep-$(date -u +%Y-%m-%d).json
mkdir -p runs/bench-fmnist
rows=()
for seed in $seeds; do
  for m in $methods; do
    dir=runs/bench-fmnist/$m-seed$seed-${epochs}ep
    rm -rf "$dir"
    extra=(--set method=${m%-*})
    case $m in
      pat-oracle) extra+=(--set network.1.twin_noise=oracle --set network.4.twin_noise=oracle) ;;
      pat-estimate) extra+=(--set network.1.twin_noise=estimate --set network.4.twin_noise=estimate) ;;
      *) extra+=(--set network.1.twin_noise=nominal --set network.4.twin_noise=nominal) ;;
    esac
    line=$(build/pnn train examples/fmnist-oscillator.yaml "${extra[@]}" --set seed=$seed --set epochs=$epochs \
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
