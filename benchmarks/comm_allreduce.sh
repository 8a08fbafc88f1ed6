#!/usr/bin/env bash
# The gradient all-reduce on this machine: benchmarks/comm_allreduce.c for 2.6 M floats (the
# 1610-oscillator network's gradient, 10.4 MB) as one process (comm none), and under mpirun
# with 1 and 2 ranks: fast (MPI_Allreduce), exact (rank order) and exact over 8 shards.
# Writes benchmarks/results/comm-allreduce-<date>.json. Usage: comm_allreduce.sh [BUILD_DIR]
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$src/build}
bin=$build/comm_allreduce
[ -x "$bin" ] || { echo "no $bin: build first (cmake --build $build)"; exit 1; }
floats=2600000 reps=20 shards=8
out=$src/benchmarks/results/comm-allreduce-$(date +%Y-%m-%d).json

launch=(mpirun)
if mpirun --version 2>&1 | grep -q "Open MPI"; then
  launch+=(--allow-run-as-root --oversubscribe --mca btl self,vader)
  export OMPI_MCA_btl_vader_single_copy_mechanism=none
fi
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}

runs=()
echo "comm_allreduce: one process" >&2
runs+=("$("$bin" $floats $reps $shards)")
if command -v mpirun > /dev/null; then
  for np in 1 2; do
    echo "comm_allreduce: mpirun -np $np" >&2
    runs+=("$("${launch[@]}" -np $np "$bin" $floats $reps $shards mpi)")
  done
fi

cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
mpi=$(mpirun --version 2>/dev/null | head -1 || echo none)
commit=$(git -C "$src" rev-parse --short HEAD 2>/dev/null || echo unknown)
{
  printf '{\n  "benchmark": "comm_allreduce",\n  "date": "%s",\n  "commit": "%s",\n' "$(date -Iseconds)" "$commit"
  printf '  "machine": {"cpu": "%s", "cores": %d, "mpi": "%s", "transport": "shared memory (btl self,vader)"},\n' \
    "$cpu" "$(nproc --all)" "$mpi"
  printf '  "config": {"floats": %d, "bytes": %d, "reps": %d, "shards": %d, "OMP_NUM_THREADS": %d},\n' \
    $floats $((floats * 4)) $reps $shards "$OMP_NUM_THREADS"
  printf '  "note": "ms per all-reduce, median and best of reps, slowest rank; algbw = bytes / median time",\n'
  printf '  "runs": [\n'
  for i in "${!runs[@]}"; do
    printf '    %s%s\n' "${runs[$i]}" "$([ $i -lt $((${#runs[@]} - 1)) ] && echo ,)"
  done
  printf '  ]\n}\n'
} > "$out"
python3 -c "import json,sys; json.load(open(sys.argv[1]))" "$out"
cat "$out"
echo "wrote $out" >&2
