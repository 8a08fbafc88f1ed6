#!/usr/bin/env bash
# The nccl comm kind across two ranks, one GPU each (needs 2 GPUs): tests/test_comm_nccl.c under
# mpirun -np 2 (GPU all-reduce sums over both ranks, host collectives through MPI, an epoch of
# training through the NCCL path); then two ranks of pnn train with comm nccl against two ranks
# with comm mpi, backend cuda, fast mode, a noise-free device: the sum of two gradients does not
# depend on the order, so the parameters agree to the GPU's run-to-run rounding (1e-4
# relative); then bench_nccl -np 2 for a few repetitions. Builds nothing; exit 77 in a build
# without NCCL, without mpirun, or with fewer than 2 GPUs.
set -euo pipefail
pnn=$1 src=$2
bin=$(dirname "$pnn")
checker=$bin/test_comm_nccl
[ -x "$checker" ] && [ -x "$bin/mpi_check_comm" ] || { echo "skip: this build has no MPI"; exit 77; }
"$checker" --built || { echo "skip: this build has no NCCL"; exit 77; }
command -v mpirun > /dev/null || { echo "skip: no mpirun on PATH"; exit 77; }
gpus=0
command -v nvidia-smi > /dev/null && gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
[ "$gpus" -ge 2 ] || { echo "skip: $gpus GPU(s) here, the two-rank NCCL check needs 2"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

launch=(mpirun)
if mpirun --version 2>&1 | grep -q "Open MPI"; then
  launch+=(--allow-run-as-root --mca btl self,vader)
  export OMPI_MCA_btl_vader_single_copy_mechanism=none
fi
export OMP_NUM_THREADS=1 CK_FORK=no
unset PNN_CUDA_DEVICE # each rank takes the GPU of its local rank

timeout 240 "${launch[@]}" -np 2 "$checker" > "$tmp/check.out" 2>&1 || { cat "$tmp/check.out"; fail "test_comm_nccl -np 2"; }
echo "test_comm_nccl -np 2: $(grep -c '100%' "$tmp/check.out") suite lines at 100%"

cfg=$src/examples/vowels-oscillator.yaml
common=(--set epochs=1 --set backend=cuda --set "network.1.device=sim:oscillator?n=40&nt=10&seed=1&noise=0")
for kind in nccl mpi; do
  timeout 180 "${launch[@]}" -np 2 "$pnn" train "$cfg" "${common[@]}" --set comm.kind=$kind --out "$tmp/$kind" \
    > "$tmp/$kind.out" 2> "$tmp/$kind.err" || { cat "$tmp/$kind.out" "$tmp/$kind.err"; fail "pnn train, comm $kind"; }
  grep -q "2 ranks ($kind" "$tmp/$kind.out" || { cat "$tmp/$kind.out"; fail "comm $kind: no '2 ranks ($kind' line"; }
done
python3 - "$tmp/nccl/checkpoint.safetensors" "$tmp/mpi/checkpoint.safetensors" <<'PY'
import sys
import numpy as np
from safetensors.numpy import load_file
a, b = load_file(sys.argv[1]), load_file(sys.argv[2])
params = [k for k in a if not k.startswith("optim.")]
rel = max(float(np.abs(a[k] - b[k]).max() / max(np.abs(b[k]).max(), 1e-30)) for k in params)
print(f"comm nccl vs comm mpi, 2 ranks: max relative parameter difference {rel:.3g} (tolerance 1e-4)")
assert rel < 1e-4, rel
PY

timeout 120 "${launch[@]}" -np 2 "$bin/bench_nccl" --reps 10 > "$tmp/bench.out" 2>&1 || { cat "$tmp/bench.out"; fail "bench_nccl -np 2"; }
grep '"ranks": 2' "$tmp/bench.out" || { cat "$tmp/bench.out"; fail "bench_nccl printed no two-rank result"; }
echo "nccl comm: two ranks ok"
