#!/usr/bin/env bash
# Bad input gets a clear message and the DESIGN.md exit code, and leaves nothing half-written.
source "$(dirname "$0")/lib.bash"

expect 64 "unknown command" -- "$pnn" frobnicate
expect 64 "unknown option" -- "$pnn" train "$cfg" --epochs 3
expect 66 "no-such.yaml" -- "$pnn" train "$tmp/no-such.yaml" --out "$tmp/r1"
printf 'data: {set: vowels}\nnetwork:\n  - {kind: linear, out: 7\n' > "$tmp/broken.yaml"
expect 78 "broken.yaml:[34]" -- "$pnn" train "$tmp/broken.yaml" --out "$tmp/r2"
sed 's/^epochs:/epohcs:/' "$cfg" > "$tmp/typo.yaml"
expect 78 "epohcs.*did you mean 'epochs'" -- "$pnn" train "$tmp/typo.yaml" --out "$tmp/r3"
printf 'data: {set: vowels}\nnetwork:\n  - {kind: linear, out: 12}\n  - {kind: transformer}\n' > "$tmp/kind.yaml"
expect 78 "kind.yaml:4.*transformer" -- "$pnn" train "$tmp/kind.yaml" --out "$tmp/r4"
printf 'data: {set: vowels}\nnetwork:\n  - {kind: linear, out: 50}\n  - {kind: physical, name: p, device: "sim:oscillator?n=20", outputs: "last:7"}\n' > "$tmp/dims.yaml"
expect 78 "dims.yaml:4.*'p'.*50" -- "$pnn" train "$tmp/dims.yaml" --out "$tmp/r5"
expect 78 "10 outputs.*7 classes" -- "$pnn" train "$cfg" --set 'network.1.outputs=last:10' --out "$tmp/r6"
expect 78 "unknown method 'magic'" -- "$pnn" train "$cfg" --set method=magic --out "$tmp/r7"
expect 78 "colour" -- "$pnn" train "$cfg" --set 'network.1.device=sim:oscillator?n=40&colour=red' --out "$tmp/r8"

# the bridge and devices: bad keys name themselves and how to fix them
expect 78 "unknown bridge schedule 'eager'.*pipelined, sequential" -- "$pnn" train "$cfg" --set bridge.schedule=eager --out "$tmp/b1"
expect 78 "more than 64.*larger micro-batches" -- "$pnn" train "$cfg" --set batch=200 --set bridge.micro_batch=2 --out "$tmp/b2"
expect 78 "retries" -- "$pnn" train "$cfg" --set bridge.retries=-1 --out "$tmp/b3"
expect 78 "did you mean 'micro_batch'" -- "$pnn" train "$cfg" --set bridge.micro_bach=4 --out "$tmp/b4"
expect 78 "fault_rate \\+ drop_rate" -- "$pnn" train "$cfg" --set 'network.1.device=sim:oscillator?n=40&fault_rate=0.8&drop_rate=0.5' --out "$tmp/b5"
expect 78 "record:FILE@DEVICE_URI" -- "$pnn" train "$cfg" --set 'network.1.device=record:x.pnnrec' --out "$tmp/b6"
printf 'not a recording' > "$tmp/junk.pnnrec"
expect 65 "not a pnn recording" -- "$pnn" train "$cfg" --set "network.1.device=replay:$tmp/junk.pnnrec" --out "$tmp/b7"
"$pnn" train "$cfg" --set epochs=1 --set "network.1.device=record:$tmp/ok.pnnrec@sim:oscillator?n=40&nt=10&seed=1" \
  --out "$tmp/rec" > /dev/null 2>&1 || bad "recording a run"
expect 78 "oracle replays the input noise a simulator drew" -- "$pnn" train "$cfg" --set "network.1.device=replay:$tmp/ok.pnnrec" --set network.1.twin_noise=oracle --out "$tmp/b8"
expect 64 "asked for call 16 but the recording holds 15 calls" -- "$pnn" train "$cfg" --set epochs=2 --set "network.1.device=replay:$tmp/ok.pnnrec" --out "$tmp/b9"
for d in b1 b2 b3 b4 b5 b6 b7; do [ -e "$tmp/$d" ] && bad "a failed start left $tmp/$d"; done

# data files: missing, NaN, truncated
expect 66 "nowhere.csv" -- "$pnn" train "$cfg" --set data.path="$tmp/nowhere.csv" --out "$tmp/r9"
sed '5s/,678,/,nan,/;5s/,624,/,nan,/' "$src/data/vowels_hillenbrand_women.csv" > "$tmp/nan.csv"
expect 65 "nan.csv.*line 5" -- "$pnn" train "$cfg" --set data.path="$tmp/nan.csv" --out "$tmp/r10"
mkdir -p "$tmp/fm"
head -c 5000 /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz > "$tmp/fm/train-images-idx3-ubyte.gz"
cp /usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz "$tmp/fm/"
expect 65 "train-images" -- "$pnn" train "$src/examples/fmnist-oscillator.yaml" --set data.path="$tmp/fm" --out "$tmp/r11"
for r in r1 r2 r3 r4 r5 r6 r7 r8 r9 r10 r11; do
  [ -e "$tmp/$r" ] && bad "a failed start left $r behind"
done

# checkpoints and runs
"$pnn" train "$cfg" --set epochs=1 --out "$tmp/run" > /dev/null 2>&1 || { echo "FAIL: reference run"; exit 1; }
expect 64 "already holds a run" -- "$pnn" train "$cfg" --out "$tmp/run"
head -c 3000 "$tmp/run/checkpoint.safetensors" > "$tmp/cut.safetensors"
expect 65 "cut.safetensors" -- "$pnn" eval "$tmp/cut.safetensors"
printf 'this is not a checkpoint at all' > "$tmp/junk.safetensors"
expect 65 "junk.safetensors" -- "$pnn" eval "$tmp/junk.safetensors"
expect 66 "missing.safetensors" -- "$pnn" eval "$tmp/missing.safetensors"
expect 66 "does not exist" -- "$pnn" train --resume "$tmp/no-run"
cp "$tmp/run/checkpoint.safetensors" "$tmp/good.safetensors"
python3 - "$tmp/run/checkpoint.safetensors" <<'PY'
import sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
b[-8:] = b"\x00\x00\xc0\x7f" * 2      # two NaNs at the end of the data
open(p, "wb").write(b)
PY
expect 65 "NaN" -- "$pnn" train --resume "$tmp/run"
expect 64 "no physical layer called 'nope'" -- "$pnn" eval "$tmp/good.safetensors" --device 'nope=sim:oscillator?n=40'

finish
