#!/usr/bin/env bash
# The mpi comm kind across real ranks: tests/mpi_check_comm.c under mpirun -np 1, 2 and 3
# (sums fast and exact, metric sums, broadcasts, shard splits, agreement on failures); the exact
# sum must have the same bits for every rank count. Then a rank that leaves alone must end the
# job instead of hanging it. Builds nothing; exit 77 without mpirun or in a build without MPI.
set -euo pipefail
pnn=$1
checker=$(dirname "$pnn")/mpi_check_comm
[ -x "$checker" ] || { echo "skip: this build has no MPI (no $checker)"; exit 77; }
command -v mpirun > /dev/null || { echo "skip: no mpirun on PATH"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

# Open MPI inside a container: running as root, more ranks than cores, shared memory only.
launch=(mpirun)
if mpirun --version 2>&1 | grep -q "Open MPI"; then
  launch+=(--allow-run-as-root --oversubscribe --mca btl self,vader)
  export OMPI_MCA_btl_vader_single_copy_mechanism=none
fi
export OMP_NUM_THREADS=1

for np in 1 2 3; do
  timeout 60 "${launch[@]}" -np $np "$checker" > "$tmp/np$np.out" 2>&1 || { cat "$tmp/np$np.out"; fail "np $np"; }
  grep -q FAIL "$tmp/np$np.out" && { cat "$tmp/np$np.out"; fail "np $np"; }
  [ "$(grep -c '^rank [0-9]* of '$np': ok$' "$tmp/np$np.out")" -eq $np ] || { cat "$tmp/np$np.out"; fail "np $np: not every rank ok"; }
  failing=$([ $np -gt 1 ] && echo 1 || echo 0)
  [ "$(grep -c "^rank [0-9]*: agree: rank $failing failed: device remote:tcp://lab-$failing:5555 timed out" "$tmp/np$np.out")" -eq $np ] \
    || { cat "$tmp/np$np.out"; fail "np $np: not every rank reported rank $failing's failure"; }
  grep '^exact-hash' "$tmp/np$np.out" > "$tmp/hash$np" || fail "np $np: no exact-hash line"
done
cmp -s "$tmp/hash1" "$tmp/hash2" && cmp -s "$tmp/hash1" "$tmp/hash3" \
  || fail "the exact sums differ between rank counts: $(cat "$tmp"/hash1 "$tmp"/hash2 "$tmp"/hash3 | tr '\n' ' ')"
echo "exact sums bit-identical for np 1, 2, 3: $(cat "$tmp/hash1")"

# Rank 1 leaves without the others knowing: it waits 2 s for them, leaves without MPI_Finalize,
# and mpirun ends the job; nothing hangs.
start=$SECONDS
set +e
timeout 30 "${launch[@]}" -np 2 "$checker" abandon > "$tmp/abandon.out" 2>&1
rc=$?
set -e
[ $rc -ne 0 ] && [ $rc -ne 124 ] || { cat "$tmp/abandon.out"; fail "abandoned job: exit $rc (124 = it hung)"; }
grep -q "rank 1: shutdown: rank 1: the other ranks did not reach the end within 2 s" "$tmp/abandon.out" \
  || { cat "$tmp/abandon.out"; fail "no timeout message from rank 1"; }
grep -q "FAIL" "$tmp/abandon.out" && { cat "$tmp/abandon.out"; fail "a rank went on without rank 1"; }
echo "a rank leaving alone ends the job in $((SECONDS - start)) s"
