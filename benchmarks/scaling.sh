#!/usr/bin/env bash
# Data-parallel scaling on this machine: training steps per second (`pnn bench`, one global
# batch per step) with 1 rank (OMP_NUM_THREADS 1 and 2) and 2 ranks under mpirun (1 thread
# each, so that the ranks do not oversubscribe the cores), reduce fast and exact, on the main
# job (examples/vowels-oscillator.yaml, micro-batches of 4) and on the Fashion-MNIST reference
# (examples/fmnist-oscillator.yaml, 512 training images loaded, micro-batches of 8).
# Writes benchmarks/results/scaling-<date>.json. Usage: scaling.sh [BUILD_DIR]
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$src/build}
pnn=$build/pnn
[ -x "$pnn" ] || { echo "no $pnn: build first (cmake --build $build)"; exit 1; }
command -v mpirun > /dev/null || { echo "no mpirun on PATH: install openmpi-bin"; exit 1; }
out=$src/benchmarks/results/scaling-$(date +%Y-%m-%d).json
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

launch=(mpirun)
if mpirun --version 2>&1 | grep -q "Open MPI"; then
  launch+=(--allow-run-as-root --oversubscribe --mca btl self,vader)
  export OMPI_MCA_btl_vader_single_copy_mechanism=none
fi

# workload name, config, steps, warm-up steps, --set options
workloads=(
  "vowels|$src/examples/vowels-oscillator.yaml|400|40|bridge.micro_batch=4"
  "fmnist|$src/examples/fmnist-oscillator.yaml|12|3|bridge.micro_batch=8 data.limit_train=512 data.limit_test=256 network.1.twin_noise=nominal network.4.twin_noise=nominal"
)
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
runs=()
for w in "${workloads[@]}"; do
  IFS='|' read -r name config steps warmup sets <<< "$w"
  set_args=()
  for s in $sets; do set_args+=(--set "$s"); done
  for reduce in fast exact; do
    # ranks:threads per rank
    for setup in 1:1 1:2 2:1; do
      np=${setup%:*} threads=${setup#*:}
      json=$tmp/$name-$reduce-$np-$threads.json
      echo "scaling: $name reduce=$reduce ranks=$np OMP_NUM_THREADS=$threads" >&2
      cmd=("$pnn" bench "$config" --steps "$steps" --warmup "$warmup" "${set_args[@]}" --set comm.reduce=$reduce --json "$json")
      if [ "$np" -eq 1 ]; then
        OMP_NUM_THREADS=$threads "${cmd[@]}" > /dev/null
      else
        OMP_NUM_THREADS=$threads "${launch[@]}" -np "$np" -x OMP_NUM_THREADS "${cmd[@]}" > /dev/null
      fi
      runs+=("$(python3 - "$json" "$name" "$threads" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
keep = {k: r[k] for k in ("ranks", "reduce", "batch", "micro_batch", "steps", "ms_median", "ms_step_mean",
                          "steps_per_s", "steps_per_s_mean", "params")}
keep = {"workload": sys.argv[2], "omp_threads_per_rank": int(sys.argv[3]), **keep}
print(json.dumps(keep))
PY
)")
    done
  done
done

cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
mpi=$(mpirun --version 2>/dev/null | head -1 || echo none)
commit=$(git -C "$src" rev-parse --short HEAD 2>/dev/null || echo unknown)
{
  printf '{\n  "benchmark": "scaling",\n  "date": "%s",\n  "commit": "%s",\n' "$(date -Iseconds)" "$commit"
  printf '  "machine": {"cpu": "%s", "cores": %d, "mpi": "%s", "transport": "shared memory (btl self,vader)", ' \
    "$cpu" "$(nproc --all)" "$mpi"
  printf '"loadavg_before": "%s", "loadavg_after": "%s"},\n' "$load_before" "$(cut -d' ' -f1-3 /proc/loadavg)"
  printf '  "note": "pnn bench: steps of one global batch (all ranks together); steps_per_s from the median step, steps_per_s_mean from the mean (communication included); 2 ranks run 1 OpenMP thread each",\n'
  printf '  "runs": [\n'
  for i in "${!runs[@]}"; do
    printf '    %s%s\n' "${runs[$i]}" "$([ $i -lt $((${#runs[@]} - 1)) ] && echo ,)"
  done
  printf '  ]\n}\n'
} > "$out"
python3 - "$out" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
print(f"{'workload':8} {'reduce':6} {'ranks':>5} {'threads':>7} {'ms/step':>8} {'steps/s':>8} {'(mean)':>8}")
for r in d["runs"]:
    print(f"{r['workload']:8} {r['reduce']:6} {r['ranks']:5d} {r['omp_threads_per_rank']:7d} {r['ms_median']:8.2f} "
          f"{r['steps_per_s']:8.1f} {r['steps_per_s_mean']:8.1f}")
PY
echo "wrote $out" >&2
