#!/usr/bin/env bash
# pnn transfer: a trained network on ten other copies of its device (a seed range), with the
# accuracy on each, the gap, and fine-tuning on each copy (the device calls it spends, the JSON
# that NumPy reads); and bad input: no checkpoint, no devices, a bad range, a device of another
# system (78), a layer that is not there, bad option values.
source "$(dirname "$0")/lib.bash"
dev='sim:oscillator?n=40&nt=10&mismatch=3'
"$pnn" train "$cfg" --set epochs=10 --set "network.1.device=$dev&seed=1" --out "$tmp/run" > /dev/null 2>&1 || bad "train"
ck=$tmp/run/checkpoint.safetensors

expect 0 "" -- "$pnn" transfer "$ck" --devices "$dev&seed={2..11}" --finetune 5 --set optimizer.lr=0.002 --out "$tmp/t.json"
grep -qE '^transfer: copies=10 train_device_acc=[0-9.]+ mean_acc=[0-9.]+ std_acc=[0-9.]+ gap=-?[0-9.]+ mean_acc_finetuned=[0-9.]+ gap_finetuned=-?[0-9.]+ calls_per_copy=5$' "$tmp/out" ||
  bad "transfer line: $(tail -1 "$tmp/out")"
grep -q 'seed=11 ' "$tmp/out" || bad "the range did not reach seed=11"
if python3 - "$tmp/t.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
assert len(d["copies"]) == 10 and d["finetune_steps"] == 5, d
assert all(c["device_calls"] == 5 for c in d["copies"])
m = sum(c["acc"] for c in d["copies"]) / 10
assert abs(m - d["mean_acc"]) < 1e-6 and abs(d["gap"] - (d["training_device"]["acc"] - m)) < 1e-6
PY
then ok; else bad "transfer JSON"; fi
# the same copy as the training device: no gap
expect 0 "" -- "$pnn" transfer "$ck" --devices "$dev&seed=1"
grep -q " gap=0.0000$" "$tmp/out" || bad "the training device itself: $(tail -1 "$tmp/out")"
# fine-tuning is reproducible from its seed
expect 0 "" -- "$pnn" transfer "$ck" --devices "$dev&seed=2" --finetune 5 --seed 3
a=$(tail -1 "$tmp/out")
expect 0 "" -- "$pnn" transfer "$ck" --devices "$dev&seed=2" --finetune 5 --seed 3
[ "$a" = "$(tail -1 "$tmp/out")" ] || bad "fine-tuning differs between two runs of the same seed"

# distillation: no labels; both devices' calls counted
expect 0 "" -- "$pnn" transfer "$ck" --devices "$dev&seed={2..3}" --distill 5 --set optimizer.lr=0.002
grep -qE '^transfer: copies=2 .* mean_acc_distilled=[0-9.]+ gap_distilled=-?[0-9.]+ calls_per_copy=10$' "$tmp/out" ||
  bad "distill line: $(tail -1 "$tmp/out")"
expect 64 "one at a time" -- "$pnn" transfer "$ck" --devices "$dev" --finetune 3 --distill 3

expect 64 "give the devices" -- "$pnn" transfer "$ck"
expect 64 "give the CHECKPOINT" -- "$pnn" transfer --devices "$dev"
expect 64 "a range is \{A..B\}" -- "$pnn" transfer "$ck" --devices "$dev&seed={5..2}"
expect 64 "a range is \{A..B\}" -- "$pnn" transfer "$ck" --devices "$dev&seed={1..x}"
expect 64 "bad value 'many' for --finetune" -- "$pnn" transfer "$ck" --devices "$dev" --finetune many
expect 78 "transfer moves a network to another copy of the same system" -- "$pnn" transfer "$ck" \
  --devices 'sim:oscillator?n=50&nt=10&seed=2'
expect 78 "" -- "$pnn" transfer "$ck" --devices 'sim:circuit?segments=16&y_dim=16&seed=2'
expect 78 "no physical layer named 'nosuch'" -- "$pnn" transfer "$ck" --layer nosuch --devices "$dev&seed=2"
expect 66 "" -- "$pnn" transfer "$tmp/none.safetensors" --devices "$dev&seed=2"
expect 64 "unknown option --finetunes" -- "$pnn" transfer "$ck" --devices "$dev" --finetunes 3
expect 0 "" -- "$pnn" transfer --help
grep -q "pnn transfer CHECKPOINT --devices URI" "$tmp/out" || bad "transfer --help"
finish
