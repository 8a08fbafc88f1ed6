#!/usr/bin/env bash
# Data-parallel training under mpirun, on the main job (examples/vowels-oscillator.yaml, 2 epochs,
# micro-batches of 4):
#  (a) exact mode: -np 2 and -np 3 give the parameters (and metrics) of -np 1 bit for bit, with
#      the default noisy, mismatched simulated device;
#  (b) fast mode: -np 2 is within 1e-4 of one process (max over tensors of max|a-b| / max|a|; the
#      measured value is printed) on a noise-free device (with noise, each rank draws its own
#      noise, so runs differ by more than rounding); the run directory, its metrics and the final
#      line come from rank 0 only;
#  (c) a device that fails only on rank 1 ends the job with a message naming rank 1, exit 69 and
#      a checkpoint, which resumes on a working device to the parameters of run (b);
#  (d) an exact run stopped after one epoch on 2 ranks and resumed on 3 ends where (a) does.
# Exit 77 in a build without MPI or without mpirun.
set -euo pipefail
pnn=$1 src=$2
[ -x "$(dirname "$pnn")/mpi_check_comm" ] || { echo "skip: this build has no MPI"; exit 77; }
command -v mpirun > /dev/null || { echo "skip: no mpirun on PATH"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cfg=$src/examples/vowels-oscillator.yaml
fail() { echo "FAIL: $*"; exit 1; }

# Open MPI inside a container: running as root, more ranks than cores, shared memory only.
launch=(mpirun)
if mpirun --version 2>&1 | grep -q "Open MPI"; then
  launch+=(--allow-run-as-root --oversubscribe --mca btl self,vader)
  export OMPI_MCA_btl_vader_single_copy_mechanism=none
fi
# the same kernels on every rank and in every run (OpenBLAS may choose by thread count)
export OMP_NUM_THREADS=1
common=(--set epochs=2 --set bridge.micro_batch=4 --set bridge.backoff_ms=0.1)
quiet="sim:oscillator?n=40&nt=10&seed=1&noise=0"
run() { # np out_dir args...: pnn train under mpirun, stdout and stderr kept in out_dir.{out,err}
  local np=$1 out=$2
  shift 2
  timeout 120 "${launch[@]}" -np "$np" "$pnn" train "$@" > "$out.out" 2> "$out.err"
}

compare() { # mode(same|close) run_a run_b what [tolerance]
  python3 - "$1" "$2/checkpoint.safetensors" "$3/checkpoint.safetensors" "$4" "${5:-0}" <<'PY'
import sys
import numpy as np
from safetensors.numpy import load_file
mode, a, b, what, tol = sys.argv[1], load_file(sys.argv[2]), load_file(sys.argv[3]), sys.argv[4], float(sys.argv[5])
assert set(a) == set(b), (set(a) ^ set(b))
if mode == "same":
    for k in a:
        assert np.array_equal(a[k], b[k]), f"{what}: {k} differs, max diff {np.abs(a[k] - b[k]).max()}"
    print(f"{what}: {len(a)} tensors bit-identical")
else:
    params = [k for k in a if not k.startswith("optim.")]
    rel = max(float(np.abs(a[k] - b[k]).max() / max(np.abs(a[k]).max(), 1e-30)) for k in params)
    print(f"{what}: max relative parameter difference {rel:.3g} (tolerance {tol:g})")
    assert rel < tol, f"{what}: {rel} >= {tol}"
PY
}

# (a) exact mode: 1, 2 and 3 ranks, bit for bit
for np in 1 2 3; do
  run $np "$tmp/exact$np" "$cfg" "${common[@]}" --set comm.reduce=exact --out "$tmp/exact$np" \
    || { cat "$tmp/exact$np.err"; fail "exact mode, -np $np"; }
done
compare same "$tmp/exact1" "$tmp/exact2" "exact, -np 2 vs -np 1"
compare same "$tmp/exact1" "$tmp/exact3" "exact, -np 3 vs -np 1"
for np in 2 3; do
  cmp -s <(cut -d, -f1-6 "$tmp/exact1/metrics.csv") <(cut -d, -f1-6 "$tmp/exact$np/metrics.csv") \
    || fail "exact mode: the metrics of -np $np differ from -np 1"
  [ "$(sed 's/ train_s=.*//' "$tmp/exact1.out")" = "$(sed 's/ train_s=.*//' "$tmp/exact$np.out")" ] \
    || fail "exact mode: the final line of -np $np differs: $(cat "$tmp/exact1.out" "$tmp/exact$np.out")"
done
grep -q "3 ranks (mpi, reduce exact)" "$tmp/exact3.err" || fail "no rank count in the start line: $(head -2 "$tmp/exact3.err")"

# (b) fast mode: close to one process; files and output from rank 0 only
"$pnn" train "$cfg" "${common[@]}" --set "network.1.device=$quiet" --out "$tmp/fast1" > /dev/null 2>&1 || fail "fast, one process"
run 2 "$tmp/fast2" "$cfg" "${common[@]}" --set "network.1.device=$quiet" --out "$tmp/fast2" \
  || { cat "$tmp/fast2.err"; fail "fast mode, -np 2"; }
compare close "$tmp/fast1" "$tmp/fast2" "fast, -np 2 vs one process" 1e-4
[ "$(grep -c '^final: ' "$tmp/fast2.out")" -eq 1 ] || fail "the final line should come once: $(cat "$tmp/fast2.out")"
[ "$(grep -c '^pnn train: vowels' "$tmp/fast2.err")" -eq 1 ] || fail "the start line should come once"
[ "$(grep -c '^step,' "$tmp/fast2/metrics.csv")" -eq 1 ] && [ "$(grep -c ',test_device,' "$tmp/fast2/metrics.csv")" -eq 2 ] \
  || fail "metrics.csv written by more than one rank: $(cat "$tmp/fast2/metrics.csv")"
[ "$(ls "$tmp/fast2" | tr '\n' ' ')" = "checkpoint.safetensors config.yaml metrics.csv " ] || fail "run directory: $(ls "$tmp/fast2")"

# (c) rank 1's device is down (fault_rate=1 there, 0 on rank 0, no retries)
set +e
run 2 "$tmp/down" "$cfg" "${common[@]}" --set bridge.retries=0 \
  --set "network.1.device=$quiet&fault_rate={rank}" --out "$tmp/down"
rc=$?
set -e
[ $rc -eq 69 ] || fail "a rank whose device is down should end the job with 69, got $rc: $(cat "$tmp/down.err")"
grep -q "error: rank 1 failed: .*fault_rate=1 is down" "$tmp/down.err" || fail "no message naming rank 1: $(cat "$tmp/down.err")"
[ "$(grep -c 'error:' "$tmp/down.err")" -eq 1 ] || fail "the error should be printed once: $(cat "$tmp/down.err")"
grep -q 'fault_rate={rank}' "$tmp/down/config.yaml" || fail "config.yaml should keep the device template"
python3 - "$tmp/down/checkpoint.safetensors" <<'PY'
import json, struct, sys
from safetensors.numpy import load_file
assert "osc.C" in load_file(sys.argv[1])
with open(sys.argv[1], "rb") as f:
    meta = json.loads(f.read(struct.unpack("<Q", f.read(8))[0]))["__metadata__"]
assert meta["comm_size"] == "2" and "counters_rank1" in meta, meta
print("checkpoint after rank 1 failed: global_step", meta["global_step"], "comm_size 2, counters of both ranks")
PY
run 2 "$tmp/down.resume" --resume "$tmp/down" --set "network.1.device=$quiet" \
  || { cat "$tmp/down.resume.err"; fail "resume on a working device"; }
compare same "$tmp/fast2" "$tmp/down" "fast, -np 2, resumed after rank 1 failed"

# (d) exact: one epoch on 2 ranks, then resumed on 3
run 2 "$tmp/part" "$cfg" "${common[@]}" --set epochs=1 --set comm.reduce=exact --out "$tmp/part" \
  || { cat "$tmp/part.err"; fail "exact, first epoch on 2 ranks"; }
run 3 "$tmp/part.resume" --resume "$tmp/part" --set epochs=2 || { cat "$tmp/part.resume.err"; fail "exact, resumed on 3 ranks"; }
grep -q "written by 2 ranks and this run has 3: exact mode continues bit for bit" "$tmp/part.resume.err" \
  || fail "no note on the rank count: $(head -3 "$tmp/part.resume.err")"
compare same "$tmp/exact1" "$tmp/part" "exact, 2 ranks resumed on 3 vs -np 1 uninterrupted"
cmp -s <(cut -d, -f1-6 "$tmp/exact1/metrics.csv") <(cut -d, -f1-6 "$tmp/part/metrics.csv") \
  || fail "exact mode: the resumed run's metrics differ"
# a method plugs into the same step: spsa in exact mode gives the same bits on 1 and 2 ranks
spsa=(--set 'method={kind: spsa, perturbations: 2}' --set comm.reduce=exact)
run 1 "$tmp/spsa1" "$cfg" "${common[@]}" "${spsa[@]}" --out "$tmp/spsa1" || { cat "$tmp/spsa1.err"; fail "spsa -np 1"; }
run 2 "$tmp/spsa2" "$cfg" "${common[@]}" "${spsa[@]}" --out "$tmp/spsa2" || { cat "$tmp/spsa2.err"; fail "spsa -np 2"; }
compare same "$tmp/spsa1" "$tmp/spsa2" "spsa, exact, -np 1 vs -np 2"

# device copies round-robin in one process; under several ranks each rank takes its own ({rank})
set +e
run 2 "$tmp/copies" "$cfg" "${common[@]}" --set "network.1.device=sim:oscillator?n=40&nt=10&seed={1..3}" \
  --out "$tmp/copies"
rc=$?
set -e
[ "$rc" -ne 0 ] && grep -q "device copies.*{rank}" "$tmp/copies.err" \
  || fail "copies under 2 ranks: exit $rc, $(tail -3 "$tmp/copies.err")"
echo "mpi_train: ok"
