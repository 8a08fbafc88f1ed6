#!/usr/bin/env bash
# End to end: the main job trains, writes its run directory, its checkpoint reads in Python
# (safetensors + NumPy), eval reproduces the device accuracy with the same device, and a run
# interrupted after one epoch and resumed ends with the same parameters as one that never stopped.
set -euo pipefail
pnn=$1 src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cfg=$src/examples/vowels-oscillator.yaml
fail() { echo "FAIL: $*"; exit 1; }

"$pnn" train "$cfg" --set epochs=2 --out "$tmp/full" > "$tmp/full.out" 2> "$tmp/full.err" || { cat "$tmp/full.err"; fail "train"; }
grep -q '^final: test_acc_device=[0-9.]* test_acc_twin=[0-9.]* test_loss_device=[0-9.]* .*train_s=' "$tmp/full.out" \
  || fail "no final line: $(cat "$tmp/full.out")"
for f in config.yaml metrics.csv checkpoint.safetensors; do [ -s "$tmp/full/$f" ] || fail "missing $f"; done
head -1 "$tmp/full/metrics.csv" | grep -q '^step,epoch,kind,loss,acc' || fail "metrics header"
grep -q ',test_device,' "$tmp/full/metrics.csv" && grep -q ',test_twin,' "$tmp/full/metrics.csv" || fail "eval rows"
ls "$tmp/full" | grep -q tmp && fail "temporary files left behind"

# one epoch, then resume to two
"$pnn" train "$cfg" --set epochs=1 --out "$tmp/part" > /dev/null 2>&1 || fail "partial train"
"$pnn" train --resume "$tmp/part" --set epochs=2 > "$tmp/part.out" 2> "$tmp/part.err" || { cat "$tmp/part.err"; fail "resume"; }

python3 - "$tmp/full/checkpoint.safetensors" "$tmp/part/checkpoint.safetensors" "$tmp/full/metrics.csv" "$tmp/part/metrics.csv" <<'PY'
import sys
import numpy as np
from safetensors.numpy import load_file
a, b = load_file(sys.argv[1]), load_file(sys.argv[2])
assert set(a) == set(b), (set(a) ^ set(b))
assert "osc.C" in a and a["osc.C"].shape == (40, 40) and a["osc.C"].dtype == np.float32, a.keys()
assert "enc.weight" in a and a["enc.weight"].shape == (40, 12)
for k in a:
    assert np.array_equal(a[k], b[k]), f"resumed run differs in {k}: max diff {np.abs(a[k] - b[k]).max()}"
full = [l.split(",")[:5] for l in open(sys.argv[3]).read().splitlines()]
part = [l.split(",")[:5] for l in open(sys.argv[4]).read().splitlines()]
assert full == part, "metrics of the resumed run differ from the uninterrupted run"
print("resume exact:", len(a), "tensors equal")
PY

# Ctrl-C mid-run: exit 130 with the state saved; the resumed run ends where an uninterrupted one does
"$pnn" train "$cfg" --set epochs=300 --out "$tmp/long" > /dev/null 2>&1 || fail "long run"
"$pnn" train "$cfg" --set epochs=300 --out "$tmp/int" > /dev/null 2> "$tmp/int.err" &
pid=$!
sleep 0.4
kill -INT $pid
set +e; wait $pid; rc=$?; set -e
if [ "$rc" -eq 130 ]; then
  grep -q "interrupted after step" "$tmp/int.err" || fail "no interruption message"
  "$pnn" train --resume "$tmp/int" > /dev/null 2>&1 || fail "resume after interrupt"
else
  [ "$rc" -eq 0 ] || fail "interrupted run exited $rc"   # it finished before the signal came
fi
python3 - "$tmp/long/checkpoint.safetensors" "$tmp/int/checkpoint.safetensors" <<'PY'
import sys
import numpy as np
from safetensors.numpy import load_file
a, b = load_file(sys.argv[1]), load_file(sys.argv[2])
for k in a:
    assert np.array_equal(a[k], b[k]), f"interrupted+resumed run differs in {k}"
PY

# eval on the training device reproduces the last test accuracy; on another copy it changes
acc=$(sed -n 's/^final: test_acc_device=\([0-9.]*\).*/\1/p' "$tmp/full.out")
"$pnn" eval "$tmp/full/checkpoint.safetensors" > "$tmp/eval.out" 2>&1 || { cat "$tmp/eval.out"; fail "eval"; }
grep -q "^final: test_acc_device=" "$tmp/eval.out" || fail "eval final line"
"$pnn" eval "$tmp/full/checkpoint.safetensors" --device 'sim:oscillator?n=40&nt=10&seed=99' > "$tmp/eval2.out" 2>&1 \
  || { cat "$tmp/eval2.out"; fail "eval on another device"; }
echo "trained acc $acc; $(cat "$tmp/eval.out"); other device: $(cat "$tmp/eval2.out")"
echo "1 passed, 0 failed"
