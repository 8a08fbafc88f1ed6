#!/usr/bin/env bash
# Training methods side by side (pnn compare).
#  vowels: (1) pat, insilico, dfa and spsa on the vowels examples with the oscillator and with the
#          circuit (5 seeds, the examples' 60 epochs); (2) all five methods, phyll included, on one
#          network that every method can run: the two PhyLL blocks of
#          examples/vowels-oscillator-phyll.yaml with the last block giving the 7 class scores
#          (phyll with PhyLL's settings, full batches of lr 5e-4 for 200 epochs; the others with
#          the oscillator example's, batches of 16 at lr 0.01 for 60 epochs); (3) the digital
#          baselines: vowels-linear and vowels-mlp by backpropagation, and PhyLL without its
#          physical layer (benchmarks/configs/vowels-phyll-digital.yaml); (4) the same five on the
#          circuit's blocks (benchmarks/configs/vowels-circuit-phyll.yaml); (5) phyll with its
#          controls trained (physical: twin, physical: spsa).
#  fmnist: Fashion-MNIST on a data limit (3,200 training and 1,000 test images, 1 epoch, 3 seeds):
#          all five methods on examples/fmnist-oscillator-phyll.yaml with its last block giving
#          the 10 class scores, phyll with physical: twin, and phyll without devices
#          (benchmarks/configs/fmnist-phyll-digital.yaml). The reference network's comparison
#          (examples/fmnist-oscillator.yaml: pat, insilico, spsa) is TASK fmnist-reference.
# Writes benchmarks/results/compare-<config>-<date>/{compare.md,compare.csv,curves.csv,compare.png}.
# Usage: bash benchmarks/compare_methods.sh [vowels|fmnist|fmnist-reference] [--set ...]
set -euo pipefail
cd "$(dirname "$0")/.."
task=${1:-vowels}
shift $(( $# > 0 ? 1 : 0 ))
date=$(date -u +%Y-%m-%d)
results=()
# compare NAME CONFIG SEEDS METHODS [pnn compare options...]
compare() {
  local name=$1 config=$2 seeds=$3 methods=$4; shift 4
  local out=benchmarks/results/compare-$name-$date
  build/pnn compare "$config" --methods "$methods" --seeds "$seeds" "$@" --out "$out" 2> "$out.log" \
    || { tail -5 "$out.log"; exit 1; }
  python3 tools/plot_compare.py "$out" > /dev/null || true
  rm -f "$out.log"
  results+=("$name")
}
# the settings the oscillator example trains with, for the methods other than phyll
example_settings() {
  local b=$1 e=$2 lr=$3
  for m in pat insilico dfa spsa; do
    echo "--set-for $m:batch=$b --set-for $m:epochs=$e --set-for $m:optimizer.lr=$lr"
  done
}
case $task in
  vowels)
    for c in vowels-oscillator vowels-circuit; do
      compare "$c" "examples/$c.yaml" 5 pat,insilico,dfa,spsa "$@"
    done
    # shellcheck disable=SC2046
    compare vowels-oscillator-blocks examples/vowels-oscillator-phyll.yaml 5 phyll,pat,insilico,dfa,spsa \
      --set network.10.out=7 $(example_settings 16 60 0.01) "$@"
    compare vowels-circuit-blocks benchmarks/configs/vowels-circuit-phyll.yaml 5 phyll,pat,insilico,dfa,spsa \
      --set network.10.out=7 $(example_settings 16 60 0.01) "$@"
    # phyll's controls trained too: through the twin, and from device passes alone
    compare vowels-oscillator-blocks-phyll-twin examples/vowels-oscillator-phyll.yaml 5 phyll \
      --method-set phyll.physical=twin "$@"
    compare vowels-oscillator-blocks-phyll-spsa examples/vowels-oscillator-phyll.yaml 5 phyll \
      --method-set phyll.physical=spsa "$@"
    compare vowels-linear examples/vowels-linear.yaml 5 pat "$@"
    compare vowels-mlp examples/vowels-mlp.yaml 5 pat "$@"
    compare vowels-phyll-digital benchmarks/configs/vowels-phyll-digital.yaml 5 phyll "$@"
    ;;
  fmnist)
    lim=(--set data.limit_train=3200 --set data.limit_test=1000 --set epochs=1)
    compare fmnist-oscillator-blocks examples/fmnist-oscillator-phyll.yaml 3 phyll,pat,insilico,dfa,spsa \
      --set network.10.out=10 "${lim[@]}" "$@"
    compare fmnist-oscillator-blocks-phyll-twin examples/fmnist-oscillator-phyll.yaml 3 phyll \
      --method-set phyll.physical=twin "${lim[@]}" "$@"
    compare fmnist-phyll-digital benchmarks/configs/fmnist-phyll-digital.yaml 3 phyll "${lim[@]}" "$@"
    ;;
  fmnist-reference)
    compare fmnist-oscillator examples/fmnist-oscillator.yaml 2 pat,insilico,spsa \
      --set data.limit_train=3200 --set data.limit_test=1000 --set epochs=1 "$@"
    ;;
  *) echo "unknown task $task (vowels, fmnist, fmnist-reference)" >&2; exit 64 ;;
esac
for c in "${results[@]}"; do
  echo "== $c"
  sed -n '3,$p' "benchmarks/results/compare-$c-$date/compare.md"
done
