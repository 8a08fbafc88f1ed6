#!/usr/bin/env bash
# sim:scatter from the command line: every key out of range, a key of another system, dims that do
# not fit the layer, the oracle twin it cannot have, and a crafted recording, each with its exit
# code and a message that names the problem; then a short run that is reproducible and that a
# recording replays to the same parameters.
source "$(dirname "$0")/lib.bash"
cfg=$src/examples/vowels-scatter.yaml
dev='network.2.device=sim:scatter?x_dim=16&modes=256&y_dim=7&seed=1'
# the example's device with key=value set (replaced when the example gives it)
device_with() {
  local key=${1%%=*} kv q=""
  for kv in x_dim=16 modes=256 y_dim=7 seed=1; do [ "${kv%%=*}" = "$key" ] || q+="$kv&"; done
  echo "network.2.device=sim:scatter?$q$1"
}

# each key out of range (exit 78: a bad config), named with its range
for bad in x_dim=0 x_dim=16385 modes=0 modes=65537 y_dim=0 y_dim=16385 w_error=-0.1 w_error=11 gamma=-1 gamma=11 \
           mismatch=-1 mismatch=101 noise=-0.01 noise=101 full_well=-1 seed=-1 x_dim=1.5 noise=abc; do
  expect 78 "device parameter $bad: expected (an integer|a number) in" -- \
    "$pnn" train "$cfg" --set "$(device_with "$bad")" --out "$tmp/r-$bad"
done
expect 78 "x_dim x modes = 1073741824.*at most 67108864" -- \
  "$pnn" train "$cfg" --set 'network.2.device=sim:scatter?x_dim=16384&modes=65536&y_dim=7' --out "$tmp/big"
# a key of the oscillator, and a misspelt one
expect 78 "unknown parameter 'nt' for device sim:scatter; known.*modes=256" -- \
  "$pnn" train "$cfg" --set "$dev&nt=5" --out "$tmp/nt"
expect 78 "unknown parameter 'mode'.*did you mean 'modes'" -- "$pnn" train "$cfg" --set "$dev&mode=4" --out "$tmp/mode"
# dims that do not fit: an input wider than x_dim, more outputs than y_dim
expect 78 "layer 'sc' \(physical\): input has 20 features but the device .* takes at most 16" -- \
  "$pnn" train "$cfg" --set network.0.out=20 --out "$tmp/wide"
expect 78 "outputs 'last:8' is not valid.*K <= 7" -- "$pnn" train "$cfg" --set network.2.outputs=last:8 --out "$tmp/outs"
expect 78 "7 outputs.*10 classes|10 classes.*7" -- \
  "$pnn" train "$src/examples/fmnist-scatter.yaml" --set 'network.2.device=sim:scatter?x_dim=64&modes=32&y_dim=7' \
  --out "$tmp/classes"
# the oracle replays a device's input noise; this system's noise is on the camera
expect 78 "twin_noise: oracle.*camera" -- "$pnn" train "$cfg" --set network.2.twin_noise=oracle --out "$tmp/oracle"
for d in r-x_dim=0 big nt wide oracle; do [ -e "$tmp/$d" ] && bad "a failed start left $tmp/$d"; done

# a recording header whose dims are not its URI's scatter system: refused before any buffer
python3 - "$tmp/crafted.pnnrec" <<'PY'
import json, struct, sys
h = json.dumps({"format": "pnn-record/1", "system": "scatter", "system_uri": "sim:scatter?x_dim=16&modes=256&y_dim=7",
                "x_dim": 16, "y_dim": 7, "theta_dim": 300, "max_batch": 1 << 20, "x_range": [-1, 1],
                "theta_range": [-1024, 1024], "theta_parts": [{"name": "phase", "rows": 300, "cols": 0}]}).encode()
open(sys.argv[1], "wb").write(b"PNNREC1\n" + struct.pack("<I", len(h)) + h)
PY
expect 65 "theta_dim 300, which is not a scatter system" -- \
  "$pnn" train "$cfg" --set "network.2.device=replay:$tmp/crafted.pnnrec" --out "$tmp/crafted"

# the keys are listed
expect 0 "" -- "$pnn" systems scatter
grep -q "full_well=4" "$tmp/out" && ok || bad "pnn systems scatter: $(cat "$tmp/out")"

# a run is reproducible (noise from the device seed and call index), and a recording of it
# replays to the same parameters (the twin of a replayed device reads the recorded system URI)
same_params() {
  python3 - "$1" "$2" <<'PY'
import sys
import numpy as np
from safetensors.numpy import load_file
a, b = load_file(sys.argv[1]), load_file(sys.argv[2])
assert "sc.phase" in a and a["sc.phase"].shape == (256,), sorted(a)
assert set(a) == set(b) and all(np.array_equal(a[k], b[k]) for k in a), "parameters differ"
PY
}
short="--set epochs=2"
"$pnn" train "$cfg" $short --out "$tmp/a" > /dev/null 2>&1 || bad "scatter run a"
"$pnn" train "$cfg" $short --set "network.2.device=record:$tmp/run.pnnrec@sim:scatter?x_dim=16&modes=256&y_dim=7&seed=1" \
  --out "$tmp/b" > /dev/null 2>&1 || bad "scatter run b, recorded"
"$pnn" train "$cfg" $short --set "network.2.device=replay:$tmp/run.pnnrec" --out "$tmp/c" > /dev/null 2>&1 \
  || bad "scatter run c, replayed"
same_params "$tmp/a/checkpoint.safetensors" "$tmp/b/checkpoint.safetensors" && ok || bad "a rerun differs"
same_params "$tmp/a/checkpoint.safetensors" "$tmp/c/checkpoint.safetensors" && ok || bad "the replayed run differs"
finish
