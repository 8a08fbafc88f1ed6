#!/usr/bin/env bash
# The circuit system end to end: every key out of its range, a key of another system, dims that
# do not fit the layer, each refused with the config exit code (78) and a message naming it; the
# vowels example trains, a run resumed after an epoch ends with the parameters of one that never
# stopped (the device's drift and noise are functions of (seed, call index)), and on an ideal
# device PAT and in-silico training give the same parameters bit for bit.
source "$(dirname "$0")/lib.bash"
cfg=$src/examples/vowels-circuit.yaml
dev() { echo "network.2.device=sim:circuit?$1"; }

i=0
while read -r key pattern; do
  i=$((i + 1))
  expect 78 "$pattern" -- "$pnn" train "$cfg" --set "$(dev "$key")" --out "$tmp/k$i"
  [ -e "$tmp/k$i" ] && bad "a failed start ($key) left its run directory"
done <<'KEYS'
segments=1 segments=1: expected an integer in \[2,
x_dim=16 x_dim=16: expected an integer in \[1, 15\]
y_dim=0 y_dim=0
y_dim=321 y_dim=321: expected an integer in \[1, 320\]
layout=zigzag layout=zigzag: expected one of concat, interleave
steps=0 steps=0
steps=11 largest allowed dt is 0.0224.*steps >= 12
T=0 T=0
T=1e7 T=1e7
w0=0 w0=0
Qf=0 Qf=0
alpha=-1 alpha=-1
kappa=-1 kappa=-1
mismatch=6 mismatch=6
drift=0.6 drift=0.6
mismatch=5&drift=0.2 mismatch \* drift <= 0.5
drift_period=0 drift_period=0
noise=-0.1 noise=-0.1
seed=-1 seed=-1
nt=5 unknown parameter 'nt'
segmetns=16 did you mean 'segments'
KEYS

# dims: an encoder wider than the device's x_dim, more outputs than the device has
expect 78 "'circ'.*12 features.*at most 8" -- "$pnn" train "$cfg" --set network.0.out=12 --out "$tmp/d1"
expect 78 "outputs 'last:17'" -- "$pnn" train "$cfg" --set 'network.2.outputs=last:17' --out "$tmp/d2"
expect 78 "y_dim.*16 outputs.*7 classes|16 outputs.*7 classes" -- "$pnn" train "$cfg" --set 'network.2.outputs=all' \
  --out "$tmp/d3"
# the oracle replays a simulator's input noise; the circuit's noise is on its output
expect 78 "oracle" -- "$pnn" train "$cfg" --set network.2.twin_noise=oracle --out "$tmp/d4"

# trains, and resumes exactly
"$pnn" train "$cfg" --set epochs=4 --out "$tmp/full" > "$tmp/full.out" 2>&1 || bad "train: $(tail -3 "$tmp/full.out")"
grep -q '^final: test_acc_device=' "$tmp/full.out" || bad "no final line"
"$pnn" train "$cfg" --set epochs=2 --out "$tmp/part" > /dev/null 2>&1 || bad "partial train"
"$pnn" train --resume "$tmp/part" --set epochs=4 > /dev/null 2>&1 || bad "resume"
if python3 - "$tmp/full/checkpoint.safetensors" "$tmp/part/checkpoint.safetensors" <<'PY'
import sys
import numpy as np
from safetensors.numpy import load_file
a, b = load_file(sys.argv[1]), load_file(sys.argv[2])
assert "circ.drive" in a and a["circ.drive"].shape == (8,), sorted(a)
assert set(a) == set(b) and all(np.array_equal(a[k], b[k]) for k in a), "resumed run differs"
PY
then ok; else bad "the resumed circuit run differs from the uninterrupted one"; fi

ideal="network.2.device=sim:circuit?segments=16&y_dim=16&mismatch=0&noise=0"
for m in pat insilico; do
  "$pnn" train "$cfg" --set epochs=3 --set method=$m --set "$ideal" --out "$tmp/ideal-$m" > /dev/null 2>&1 || bad "ideal $m"
done
if python3 - "$tmp/ideal-pat/checkpoint.safetensors" "$tmp/ideal-insilico/checkpoint.safetensors" <<'PY'
import sys
import numpy as np
from safetensors.numpy import load_file
a, b = load_file(sys.argv[1]), load_file(sys.argv[2])
assert all(np.array_equal(a[k], b[k]) for k in a if not k.startswith("optim.")), "PAT and in-silico differ"
PY
then ok; else bad "on an ideal circuit PAT and in-silico training differ"; fi
finish
