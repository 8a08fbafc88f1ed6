#!/usr/bin/env bash
# Training methods side by side (pnn compare): pat, insilico and spsa on the vowels with the
# oscillator and with the circuit (5 seeds, the examples' 60 epochs), beside purely digital
# baselines (examples/vowels-linear.yaml and vowels-mlp.yaml, trained by backpropagation).
# TASK fmnist runs the reference experiment instead, on a data limit given after it (e.g.
# --set data.limit_train=3200 --set data.limit_test=1000 --set epochs=1) with 2 seeds.
# Writes benchmarks/results/compare-TASK-<date>/{compare.md,compare.csv,curves.csv,compare.png}
# per system.
# Usage: bash benchmarks/compare_methods.sh [vowels|fmnist] [--set ...]
set -euo pipefail
cd "$(dirname "$0")/.."
task=${1:-vowels}
shift $(( $# > 0 ? 1 : 0 ))
date=$(date -u +%Y-%m-%d)
case $task in
  vowels) configs="vowels-oscillator vowels-circuit" seeds=5 digital="vowels-linear vowels-mlp" ;;
  fmnist) configs="fmnist-oscillator" seeds=2 digital="" ;;
  *) echo "unknown task $task (vowels, fmnist)" >&2; exit 64 ;;
esac
for c in $configs; do
  out=benchmarks/results/compare-$c-$date
  build/pnn compare examples/$c.yaml --methods pat,insilico,spsa --seeds $seeds "$@" --out "$out" 2> "$out.log" \
    || { tail -5 "$out.log"; exit 1; }
  python3 tools/plot_compare.py "$out" > /dev/null
  rm -f "$out.log"
done
for c in $digital; do
  out=benchmarks/results/compare-$c-$date
  build/pnn compare examples/$c.yaml --methods pat --seeds $seeds "$@" --out "$out" 2> /dev/null
done
for c in $configs $digital; do
  echo "== $c"
  sed -n '3,$p' benchmarks/results/compare-$c-$date/compare.md
done
