#!/usr/bin/env bash
# The shg system from the command line: every key out of range, a key of another system, dims that
# do not fit the layer, a recording that claims shg with another system's dims — each refused with
# its exit code and a message naming it, leaving no run behind; and a short run that trains, is
# recorded, and replays to the same parameters.
source "$(dirname "$0")/lib.bash"

# a small network on the vowels: 12 features -> 32 data bins of a K = 64 pulse -> 16 bins -> 7 classes
cat > "$tmp/shg.yaml" <<EOF
data: {set: vowels, path: $src/data/vowels_hillenbrand_women.csv, test_frac: 0.2}
network:
  - {kind: linear, name: enc, out: 32}
  - {kind: sigmoid}
  - {kind: physical, name: shg, device: "sim:shg?k=64&seed=3", outputs: all}
  - {kind: linear, name: readout, out: 7}
optimizer: {kind: adam, lr: 0.01}
batch: 16
epochs: 1
seed: 1
EOF
cfg=$tmp/shg.yaml
dev() { echo "network.2.device=sim:shg?$1"; }

n=0
for bad_key in k=1 k=65537 k=ten x_dim=0 x_dim=64 y_dim=0 y_dim=128 layout=diagonal form=slow mismatch=-1 \
               mismatch=101 noise=-0.1 noise=11 dark=-1 chirp=101 pm=-1 blur=11 seed=-1; do
  key=${bad_key%%=*}
  n=$((n + 1))
  expect 78 "$key=.*expected" -- "$pnn" train "$cfg" --set "$(dev "$bad_key")" --out "$tmp/r$n"
done
# x_dim's range follows k
expect 78 "x_dim=16: expected an integer in \[1, 15\]" -- "$pnn" train "$cfg" --set "$(dev "k=16&x_dim=16")" --out "$tmp/r-x"
# a key of another system (the oscillator's), with its own list of keys
expect 78 "unknown parameter 'nt' for device sim:shg.*known \(with defaults\): k=64" -- \
  "$pnn" train "$cfg" --set "$(dev "nt=5")" --out "$tmp/r-nt"
expect 78 "did you mean 'blur'" -- "$pnn" train "$cfg" --set "$(dev "blurr=1")" --out "$tmp/r-typo"
# a blur wider than any table should hold
expect 78 "blur.*weights" -- "$pnn" train "$cfg" --set "$(dev "k=65536&y_dim=131071&blur=10&mismatch=100")" \
  --out "$tmp/r-blur"
# the layer's input is wider than the device's data bins
expect 78 "'shg'.*40 features.*at most 32" -- "$pnn" train "$cfg" --set network.0.out=40 --out "$tmp/r-dims"
# the oracle needs an input noise to replay, and shg has none
expect 78 "oracle" -- "$pnn" train "$cfg" --set network.2.twin_noise=oracle --out "$tmp/r-oracle"
for d in "$tmp"/r*; do [ -e "$d" ] && bad "a failed start left $d behind"; done

# a recording header that says shg but carries an oscillator's dims
python3 - "$tmp/crafted.pnnrec" <<'PY'
import json, struct, sys
h = json.dumps({"format": "pnn-record/1", "system": "shg", "system_uri": "sim:shg?k=64",
                "x_dim": 40, "y_dim": 40, "theta_dim": 1640, "max_batch": 1 << 20, "x_range": [0, 1],
                "theta_range": [0, 1], "theta_parts": [{"name": "mask", "rows": 1640, "cols": 0}]}).encode()
open(sys.argv[1], "wb").write(b"PNNREC1\n" + struct.pack("<I", len(h)) + h)
PY
expect 65 "x_dim 40, theta_dim 1640, y_dim 40 but its system URI sim:shg\?k=64 says k=64" -- \
  "$pnn" train "$cfg" --set "network.2.device=replay:$tmp/crafted.pnnrec" --out "$tmp/c1"

# it trains (PAT, the FFT and the direct form), and a recorded run replays to the same parameters
expect 0 "" -- "$pnn" train "$cfg" --set "$(dev "k=64&seed=3&form=direct")" --out "$tmp/direct"
grep -qE '^final: test_acc_device=0\.[0-9]+' "$tmp/out" && ok || bad "no final line: $(tail -c 300 "$tmp/out")"
expect 0 "" -- "$pnn" train "$cfg" --set "network.2.device=record:$tmp/run.pnnrec@sim:shg?k=64&seed=3" --out "$tmp/rec"
expect 0 "" -- "$pnn" train "$cfg" --set "network.2.device=replay:$tmp/run.pnnrec" --out "$tmp/replay"
python3 - "$tmp/rec/checkpoint.safetensors" "$tmp/replay/checkpoint.safetensors" <<'PY' && ok || bad "replay differs"
import sys
import numpy as np
from safetensors.numpy import load_file
a, b = load_file(sys.argv[1]), load_file(sys.argv[2])
assert set(a) == set(b) and "shg.mask" in a and all(np.array_equal(a[k], b[k]) for k in a), "parameters differ"
PY

finish
