#!/usr/bin/env bash
# Variation-aware training: a physical layer with several copies of its device (a list of URIs,
# or a {A..B} range in one) sends its PAT forwards to them in turn. Exact where it claims to be:
# copies that are all the same noise-free device train bit for bit as that one device; a run
# with copies interrupted after one epoch and resumed ends where an uninterrupted one does (the
# round-robin position and every copy's call count are in the checkpoint; the copies drift, so
# the resume also replays each copy's drift). Bad input: a copy of
# another system or of another size, a malformed range, a list item that is not a URI.
source "$(dirname "$0")/lib.bash"
base='sim:oscillator?n=40&nt=10'
params_equal() {
  python3 - "$1" "$2" <<'PY'
import sys
from safetensors.numpy import load_file
import numpy as np
a, b = load_file(sys.argv[1]), load_file(sys.argv[2])
assert set(a) == set(b), set(a) ^ set(b)
bad = [k for k in a if not np.array_equal(a[k], b[k])]
sys.exit(1 if bad else 0)
PY
}

# the same noise-free device three times = that device
one="$base&seed=3&noise=0&mismatch=2"
expect 0 "" -- "$pnn" train "$cfg" --set epochs=2 --set "network.1.device=$one" --out "$tmp/one"
cat > "$tmp/three.yaml" <<EOF
name: copies
data: {set: vowels, test_frac: 0.2}
network:
  - {kind: linear, name: enc, out: 40}
  - {kind: physical, name: osc, outputs: "last:7", device: ["$one", "$one", "$one"]}
  - {kind: scale, name: out, init: 5.0}
method: pat
loss: cross_entropy
optimizer: {kind: adam, lr: 0.01}
batch: 16
epochs: 2
seed: 1
EOF
expect 0 "" -- "$pnn" train "$tmp/three.yaml" --out "$tmp/three"
params_equal "$tmp/one/checkpoint.safetensors" "$tmp/three/checkpoint.safetensors" && ok \
  || bad "three identical noise-free copies trained differently from the one device"

# copies with hidden differences and noise: an interrupted run resumes exactly
copies="$base&mismatch=3&drift=2&drift_period=50&seed={1..3}"
expect 0 "" -- "$pnn" train "$cfg" --set epochs=2 --set "network.1.device=$copies" --out "$tmp/full"
grep -q "seed={1..3}" "$tmp/full/config.yaml" && ok || bad "the run's config does not keep the range"
expect 0 "" -- "$pnn" train "$cfg" --set epochs=1 --set "network.1.device=$copies" --out "$tmp/part"
expect 0 "" -- "$pnn" train --resume "$tmp/part" --set epochs=2
params_equal "$tmp/full/checkpoint.safetensors" "$tmp/part/checkpoint.safetensors" && ok \
  || bad "a run with device copies did not resume exactly"
# and the copies are used: the same run on copy 1 alone ends elsewhere
expect 0 "" -- "$pnn" train "$cfg" --set epochs=2 --set "network.1.device=$base&mismatch=3&drift=2&drift_period=50&seed=1" \
  --out "$tmp/alone"
params_equal "$tmp/full/checkpoint.safetensors" "$tmp/alone/checkpoint.safetensors" \
  && bad "training on three copies equals training on the first alone" || ok

# every copy counts: pnn compare's device passes are every copy's calls (pat: one per twin pass),
# each copy has its line in the summary, and the retry policy applies to every copy
expect 0 "" -- "$pnn" compare "$cfg" --methods pat --seeds 1 --set epochs=1 --set "network.1.device=$base&seed={1..3}" \
  --out "$tmp/cmp"
if python3 - "$tmp/cmp/compare.csv" <<'PY'
import csv, sys
r = list(csv.DictReader(open(sys.argv[1])))[0]
assert int(r["device_passes"]) == int(r["twin_passes"]) > 0, r
PY
then ok; else bad "pnn compare does not count every copy's calls: $(cat "$tmp/cmp/compare.csv")"; fi
expect 0 "" -- "$pnn" train "$cfg" --set epochs=1 --set "network.1.device=$base&seed={1..3}" --out "$tmp/lines"
[ "$(grep -c "device osc copy [0-2]: busy" "$tmp/err")" = 3 ] && ok || bad "no summary line per copy: $(cat "$tmp/err")"
expect 69 "seed=2&fault_rate=0.5 is down: 1 attempts" -- "$pnn" train "$cfg" --set epochs=2 --set bridge.retries=0 \
  --set "network.1.device=[\"$base&seed=1\", \"$base&seed=2&fault_rate=0.5\"]" --out "$tmp/faulty"

# bad input
expect 78 "is not a copy of" -- "$pnn" train "$cfg" --set epochs=1 \
  --set "network.1.device=[\"$base&seed=1\", \"sim:oscillator?n=41&nt=10&seed=2\"]" --out "$tmp/b1"
expect 78 "is not a copy of.*circuit" -- "$pnn" train "$cfg" --set epochs=1 \
  --set "network.1.device=[\"$base&seed=1\", \"sim:circuit?segments=16&y_dim=16\"]" --out "$tmp/b2"
expect 78 "a range is \{A..B\}" -- "$pnn" train "$cfg" --set epochs=1 --set "network.1.device=$base&seed={3..1}" \
  --out "$tmp/b3"
expect 78 "item 1 is not a device URI" -- "$pnn" train "$cfg" --set epochs=1 \
  --set "network.1.device=[\"$base\", [1, 2]]" --out "$tmp/b4"
expect 78 "empty list.*from 1 to 64" -- "$pnn" train "$cfg" --set epochs=1 --set "network.1.device=[]" --out "$tmp/b5"
expect 78 "at most 64 values" -- "$pnn" train "$cfg" --set epochs=1 --set "network.1.device=$base&seed={1..65}" \
  --out "$tmp/b6"
expect 78 "more than 64 device copies" -- "$pnn" train "$cfg" --set epochs=1 \
  --set "network.1.device=[\"$base&seed={1..40}\", \"$base&seed={41..80}\"]" --out "$tmp/b7"
cat > "$tmp/many.yaml" <<YAML
data: {set: vowels, test_frac: 0.2}
network:
  - {kind: linear, out: 8}
  - {kind: physical, name: a, device: "sim:oscillator?n=8&nt=2&seed={1..64}"}
  - {kind: physical, name: b, device: "sim:oscillator?n=8&nt=2&seed={1..64}"}
  - {kind: physical, name: c, device: "sim:oscillator?n=8&nt=2&seed={1..64}"}
  - {kind: physical, name: d, device: "sim:oscillator?n=8&nt=2&seed={1..64}", outputs: "last:7"}
YAML
expect 78 "264 random-stream counters.*at most 256" -- "$pnn" train "$tmp/many.yaml" --out "$tmp/b8"
finish
