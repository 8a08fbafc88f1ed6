#!/usr/bin/env bash
# End to end through the host bridge, on the main job: the pipelined schedule of micro-batches
# trains to the same parameters as the sequential one; injected device faults and lost replies
# are retried without changing the result; a device that stays down ends the run with a
# checkpoint, exit 69 and a message, and the resumed run (on a working device) ends where an
# undisturbed one does; a recorded run replays to the same parameters; timing columns are there.
set -euo pipefail
pnn=$1 src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cfg=$src/examples/vowels-oscillator.yaml
dev="sim:oscillator?n=40&nt=10&seed=1"
fail() { echo "FAIL: $*"; exit 1; }
common=(--set epochs=2 --set bridge.micro_batch=4 --set bridge.backoff_ms=0.1)

same_params() { # run_dir_a run_dir_b what
  python3 - "$1/checkpoint.safetensors" "$2/checkpoint.safetensors" "$3" <<'PY'
import sys
import numpy as np
from safetensors.numpy import load_file
a, b = load_file(sys.argv[1]), load_file(sys.argv[2])
assert set(a) == set(b), (set(a) ^ set(b))
for k in a:
    assert np.array_equal(a[k], b[k]), f"{sys.argv[3]}: {k} differs, max diff {np.abs(a[k] - b[k]).max()}"
print(f"{sys.argv[3]}: {len(a)} tensors equal")
PY
}

"$pnn" train "$cfg" "${common[@]}" --out "$tmp/pipe" > /dev/null 2> "$tmp/pipe.err" || { cat "$tmp/pipe.err"; fail "pipelined run"; }
"$pnn" train "$cfg" "${common[@]}" --set bridge.schedule=sequential --out "$tmp/seq" > /dev/null 2>&1 || fail "sequential run"
same_params "$tmp/pipe" "$tmp/seq" "pipelined vs sequential"
head -1 "$tmp/pipe/metrics.csv" | grep -q 'device_busy_s,device_duty,backend_busy_s,backend_wait_s' || fail "timing columns"
grep -q ',train_epoch,' "$tmp/pipe/metrics.csv" || fail "no per-epoch timing rows"
grep -q 'device osc: busy' "$tmp/pipe.err" || fail "no bridge summary: $(tail -3 "$tmp/pipe.err")"

"$pnn" train "$cfg" "${common[@]}" --set "network.1.device=$dev&fault_rate=0.05&drop_rate=0.01&timeout_ms=2" \
  --set bridge.retries=10 --out "$tmp/faulty" > /dev/null 2> "$tmp/faulty.err" || { cat "$tmp/faulty.err"; fail "faulty run"; }
same_params "$tmp/pipe" "$tmp/faulty" "faults and drops retried"
grep -q 'retries' "$tmp/faulty.err" || fail "no retry count reported"

set +e
"$pnn" train "$cfg" "${common[@]}" --set "network.1.device=$dev&fault_rate=1" --set bridge.retries=2 \
  --out "$tmp/down" > /dev/null 2> "$tmp/down.err"
rc=$?
set -e
[ "$rc" -eq 69 ] || fail "a device that stays down should exit 69, got $rc: $(cat "$tmp/down.err")"
grep -q "is down" "$tmp/down.err" && grep -q -- "--resume" "$tmp/down.err" || fail "down message: $(cat "$tmp/down.err")"
[ -s "$tmp/down/checkpoint.safetensors" ] || fail "no checkpoint after the device went down"
"$pnn" train --resume "$tmp/down" --set "network.1.device=$dev" > /dev/null 2> "$tmp/resume.err" \
  || { cat "$tmp/resume.err"; fail "resume on a working device"; }
same_params "$tmp/pipe" "$tmp/down" "resumed after the device went down"

"$pnn" train "$cfg" "${common[@]}" --set "network.1.device=record:$tmp/osc.pnnrec@$dev" --out "$tmp/rec" > /dev/null 2>&1 \
  || fail "recorded run"
[ -s "$tmp/osc.pnnrec" ] && [ -s "$tmp/osc.pnnrec.idx" ] || fail "no recording"
same_params "$tmp/pipe" "$tmp/rec" "recording changes nothing"
"$pnn" train "$cfg" "${common[@]}" --set "network.1.device=replay:$tmp/osc.pnnrec" --out "$tmp/replay" > /dev/null 2> "$tmp/replay.err" \
  || { cat "$tmp/replay.err"; fail "replayed run"; }
same_params "$tmp/pipe" "$tmp/replay" "replay"
python3 - "$tmp/osc.pnnrec" <<'PY'
# the index is three little-endian u64 per call: what a NumPy user reads a recording with
import sys
import numpy as np
idx = np.fromfile(sys.argv[1] + ".idx", dtype="<u8").reshape(-1, 3)
assert len(idx) > 100 and (np.diff(idx[:, 0]) > 0).all(), idx[:3]
print("recording:", len(idx), "calls indexed")
PY
echo "bridge: ok"
