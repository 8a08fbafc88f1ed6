#!/usr/bin/env bash
# Learned twins end to end: pnn twin fit of the circuit device writes a twin that pnn twin show
# describes and a config trains with (learned and residual kinds, PAT and in silico); the fit
# from the recording of those calls gives the same figure; and bad input is refused with its
# exit code: a twin of another system or dims (78, naming both), a truncated or foreign file
# (65), a missing file (66), an unknown twin kind (78, did you mean), a recording of another
# device (78), too few samples for the validation split (64), bad options (64).
source "$(dirname "$0")/lib.bash"
cfg=$src/examples/vowels-circuit.yaml
dev='sim:circuit?segments=16&y_dim=16&seed=1'
fit=(--samples 1024 --hidden 32,32 --epochs 40 --lr 3e-3)

expect 0 "validation NMSE=.*the analytic twin alone" -- "$pnn" twin fit "$dev" --out "$tmp/l.st" --record "$tmp/calls.rec" "${fit[@]}"
grep -qE '^fit: validation_nmse=[0-9.e-]+ .*device_calls=64 ' "$tmp/out" || bad "fit line: $(cat "$tmp/out")"
nmse=$(sed -E 's/.*validation_nmse=([^ ]+) .*/\1/' "$tmp/out")
expect 0 "" -- "$pnn" twin show "$tmp/l.st"
grep -qE '^system +circuit' "$tmp/out" && grep -qE '^theta_dim +8' "$tmp/out" || bad "twin show: $(cat "$tmp/out")"
expect 0 "" -- "$pnn" twin fit --from "$tmp/calls.rec" "$dev" --out "$tmp/l2.st" "${fit[@]}"
nmse2=$(sed -E 's/.*validation_nmse=([^ ]+) .*/\1/' "$tmp/out")
[ "$nmse" = "$nmse2" ] || bad "the fit from the recording gave NMSE $nmse2, the fit from the device $nmse"
expect 0 "" -- "$pnn" twin fit "$dev" --kind residual --out "$tmp/r.st" "${fit[@]}"
# the task's own inputs: the vowels through the encoder, theta around the layer's initial value
expect 0 "layer 'circ' .*x from vowels-train through the 2 layers before it" -- "$pnn" twin fit --config "$cfg" \
  --out "$tmp/d.st" "${fit[@]}"
grep -qE '^fit: .*device_calls=64 ' "$tmp/out" || bad "fit --config: $(cat "$tmp/out")"
"$pnn" train "$cfg" --set epochs=1 --out "$tmp/ck" > /dev/null 2>&1 || bad "train for a checkpoint"
expect 0 "" -- "$pnn" twin fit --config "$cfg" --checkpoint "$tmp/ck/checkpoint.safetensors" --out "$tmp/d2.st" "${fit[@]}"

for m in pat insilico; do
  expect 0 "" -- "$pnn" train "$cfg" --set epochs=2 --set method=$m --set "network.2.twin={kind: learned, path: $tmp/l.st}" --out "$tmp/run-l-$m"
  grep -q '^final: test_acc_device=' "$tmp/out" || bad "learned $m: no final line"
  expect 0 "" -- "$pnn" train "$cfg" --set epochs=2 --set method=$m --set "network.2.twin={kind: residual, path: $tmp/r.st}" --out "$tmp/run-r-$m"
done

# online refinement: trains, keeps its buffer, MLP and optimizer in the checkpoint, resumes exactly
ref="network.2.twin={kind: learned, path: $tmp/l.st, refine: {every: 5, buffer: 500, steps: 4, batch: 32}}"
"$pnn" train "$cfg" --set epochs=4 --set "$ref" --out "$tmp/rfull" > "$tmp/rfull.out" 2>&1 || bad "refine: $(tail -3 "$tmp/rfull.out")"
"$pnn" train "$cfg" --set epochs=2 --set "$ref" --out "$tmp/rpart" > /dev/null 2>&1 || bad "refine, partial"
"$pnn" train --resume "$tmp/rpart" --set epochs=4 > "$tmp/rres.out" 2>&1 || bad "refine, resume: $(tail -3 "$tmp/rres.out")"
if python3 - "$tmp/rfull/checkpoint.safetensors" "$tmp/rpart/checkpoint.safetensors" "$tmp/l.st" <<'PY'
import sys
import numpy as np
from safetensors.numpy import load_file
a, b, f = load_file(sys.argv[1]), load_file(sys.argv[2]), load_file(sys.argv[3])
meta = a["twin_state.circ.refine"][0]
assert meta[0] == 500 and meta[3] > 10, meta  # the buffer is full, refits happened
assert not np.array_equal(a["twin_state.circ.twin.layers.0.weight"], f["layers.0.weight"]), "refinement changed nothing"
assert set(a) == set(b), sorted(set(a) ^ set(b))
diff = [k for k in a if not np.array_equal(a[k], b[k])]
assert not diff, "resumed run differs in %s" % diff
PY
then ok; else bad "online refinement: see above"; fi

# bad input
"$pnn" twin fit 'sim:oscillator?n=8&nt=4' --out "$tmp/osc.st" --samples 256 --epochs 2 > /dev/null 2>&1 || bad "oscillator fit"
expect 78 "models system 'oscillator'.*device sim:circuit.* is 'circuit'" -- "$pnn" train "$cfg" --set epochs=1 \
  --set "network.2.twin={kind: learned, path: $tmp/osc.st}" --out "$tmp/bad1"
[ -e "$tmp/bad1" ] && bad "a refused twin left its run directory"
expect 78 "holds a learned twin; use twin: \{kind: learned" -- "$pnn" train "$cfg" --set epochs=1 \
  --set "network.2.twin={kind: residual, path: $tmp/l.st}" --out "$tmp/bad2"
head -c 200 "$tmp/l.st" > "$tmp/cut.st"
expect 65 "cut.st" -- "$pnn" train "$cfg" --set "network.2.twin={kind: learned, path: $tmp/cut.st}" --out "$tmp/bad3"
"$pnn" train "$cfg" --set epochs=1 --out "$tmp/plain" > /dev/null 2>&1 || bad "plain run"
expect 65 "is not a twin file" -- "$pnn" train "$cfg" \
  --set "network.2.twin={kind: learned, path: $tmp/plain/checkpoint.safetensors}" --out "$tmp/bad4"
expect 66 "does not exist" -- "$pnn" train "$cfg" --set "network.2.twin={kind: learned, path: $tmp/none.st}" --out "$tmp/bad5"
expect 78 "unknown twin kind 'learnd'.*did you mean 'learned'" -- "$pnn" train "$cfg" --set "network.2.twin=learnd" --out "$tmp/bad6"
expect 78 "twin kind 'learned' needs a file" -- "$pnn" train "$cfg" --set "network.2.twin=learned" --out "$tmp/bad7"
expect 78 "needs a file: twin: \{kind: learned, path: FILE\}" -- "$pnn" train "$cfg" --set "network.2.twin={kind: learned, file: x}" --out "$tmp/bad8"
expect 78 "unknown key 'refin' in twin; allowed keys: kind, path, fit, refine" -- "$pnn" train "$cfg" \
  --set "network.2.twin={kind: learned, path: $tmp/l.st, refin: {every: 2}}" --out "$tmp/bad9"
expect 78 "unknown key 'evry' in twin refine; .*did you mean 'every'" -- "$pnn" train "$cfg" \
  --set "network.2.twin={kind: learned, path: $tmp/l.st, refine: {evry: 2}}" --out "$tmp/bad10"
expect 78 "buffer" -- "$pnn" train "$cfg" --set "network.2.twin={kind: learned, path: $tmp/l.st, refine: {buffer: 0}}" --out "$tmp/bad11"
expect 78 "recording .*calls.rec is of device sim:circuit\?segments=16&y_dim=16&seed=1.*not of sim:circuit\?segments=16&y_dim=16&seed=2" -- \
  "$pnn" twin fit --from "$tmp/calls.rec" 'sim:circuit?segments=16&y_dim=16&seed=2' --out "$tmp/bad.st"
expect 64 "too few to hold out" -- "$pnn" twin fit "$dev" --samples 40 --out "$tmp/bad.st"
[ -e "$tmp/bad.st" ] && bad "a refused fit wrote its file"
expect 78 "has no physical layer named 'nosuch'" -- "$pnn" twin fit --config "$cfg" --layer nosuch --out "$tmp/bad.st"
expect 64 "no device URI, --from or --record with it" -- "$pnn" twin fit --config "$cfg" "$dev" --out "$tmp/bad.st"
expect 64 "go with --config" -- "$pnn" twin fit "$dev" --layer circ --out "$tmp/bad.st"
expect 64 "bad value 'lots' for --samples" -- "$pnn" twin fit "$dev" --samples lots --out "$tmp/bad.st"
expect 64 "--out FILE" -- "$pnn" twin fit "$dev"
expect 64 "unknown option --sample" -- "$pnn" twin fit "$dev" --sample 4 --out "$tmp/bad.st"
expect 64 "kind 'analytic' cannot be fitted" -- "$pnn" twin fit "$dev" --kind analytic --out "$tmp/bad.st"
expect 66 "" -- "$pnn" twin fit --from "$tmp/none.rec" --out "$tmp/bad.st"
expect 65 "not a twin file" -- "$pnn" twin show "$tmp/plain/checkpoint.safetensors"
expect 0 "" -- "$pnn" twin --help
grep -q "pnn twin fit DEVICE_URI" "$tmp/out" || bad "twin --help"
finish
