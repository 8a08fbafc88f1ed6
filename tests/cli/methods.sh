#!/usr/bin/env bash
# Training methods from the command line: dfa lowers a digital MLP's loss; spsa (device passes
# alone) lowers the vowels loss and resumes exactly (its perturbations are a function of the seed
# and the step); phyll learns the vowels with 2 device passes per block per batch and resumes
# exactly; `pnn train --help` lists every registered method; bad input: an unknown method (the
# known ones and a "did you mean"), a misspelt key of a method, a method map without its kind,
# networks phyll cannot run.
source "$(dirname "$0")/lib.bash"
spsa=(--set 'method={kind: spsa, perturbations: 2, c: 0.01}')
expect 0 "" -- "$pnn" train "$cfg" "${spsa[@]}" --set epochs=8 --out "$tmp/full"
if python3 - "$tmp/full/metrics.csv" <<'PY'
import csv, sys
rows = [r for r in csv.DictReader(open(sys.argv[1])) if r["kind"] == "train_epoch"]
assert float(rows[-1]["loss"]) < 0.6 * float(rows[0]["loss"]), [r["loss"] for r in rows]
PY
then ok; else bad "spsa: the training loss did not fall"; fi
grep -q "kind: spsa" "$tmp/full/config.yaml" && ok || bad "the run's config lost the method map"
expect 0 "" -- "$pnn" train "$cfg" "${spsa[@]}" --set epochs=3 --out "$tmp/part"
expect 0 "" -- "$pnn" train --resume "$tmp/part" --set epochs=8
if python3 - "$tmp/full/checkpoint.safetensors" "$tmp/part/checkpoint.safetensors" <<'PY'
import sys
import numpy as np
from safetensors.numpy import load_file
a, b = load_file(sys.argv[1]), load_file(sys.argv[2])
assert set(a) == set(b) and all(np.array_equal(a[k], b[k]) for k in a)
PY
then ok; else bad "spsa: the resumed run differs from the uninterrupted one"; fi
# dfa lowers the loss of a digital MLP (on the oscillator network, whose readout is one scale, it
# cannot align: docs/architecture.md)
expect 0 "" -- "$pnn" train "$src/examples/vowels-mlp.yaml" --set method=dfa --set epochs=10 --out "$tmp/dfa"
if python3 - "$tmp/dfa/metrics.csv" <<'PY'
import csv, sys
rows = [r for r in csv.DictReader(open(sys.argv[1])) if r["kind"] == "train_epoch"]
assert float(rows[-1]["loss"]) < 0.3 * float(rows[0]["loss"]), [r["loss"] for r in rows]
PY
then ok; else bad "dfa: the training loss of the MLP did not fall"; fi
# phyll: the example learns, costs 2 device passes per block per batch and no twin pass, and
# resumes exactly (its block optimizers' state is in the checkpoint)
ph=$src/examples/vowels-oscillator-phyll.yaml
expect 0 "" -- "$pnn" train "$ph" --set epochs=40 --out "$tmp/ph"
grep -q "device osc1: .* 80 calls in them" "$tmp/err" && ok || bad "phyll: not 2 device passes per batch: $(grep osc1 "$tmp/err")"
acc=$(sed -n 's/^final: test_acc_device=\([0-9.]*\).*/\1/p' "$tmp/out")
python3 -c "import sys; sys.exit(0 if float('$acc') > 0.8 else 1)" && ok || bad "phyll reached only $acc on the vowels"
expect 0 "" -- "$pnn" train "$ph" --set epochs=6 --out "$tmp/phfull"
expect 0 "" -- "$pnn" train "$ph" --set epochs=3 --out "$tmp/phpart"
expect 0 "" -- "$pnn" train --resume "$tmp/phpart" --set epochs=6
if python3 - "$tmp/phfull/checkpoint.safetensors" "$tmp/phpart/checkpoint.safetensors" <<'PY'
import sys
import numpy as np
from safetensors.numpy import load_file
a, b = load_file(sys.argv[1]), load_file(sys.argv[2])
assert any(k.startswith("method.phyll.") for k in a), sorted(a)
assert set(a) == set(b) and all(np.array_equal(a[k], b[k]) for k in a)
PY
then ok; else bad "phyll: the resumed run differs from the uninterrupted one"; fi
# the networks phyll cannot run, refused at the start
expect 78 "needs the label-embedding input: start the network with \{kind: pad, before: 7\}" -- \
  "$pnn" train "$cfg" --set method=phyll --out "$tmp/b4"
sed 's/^  - {kind: linear, name: z2, out: 20}$/&\n  - {kind: tanh}/' "$ph" > "$tmp/trailing.yaml"
expect 78 "come after the last block" -- "$pnn" train "$tmp/trailing.yaml" --out "$tmp/b5"
expect 78 "names no earlier layer" -- "$pnn" train "$ph" --set 'network.4.from=h9' --out "$tmp/b6"
expect 69 "runs in one process with comm.reduce fast" -- "$pnn" train "$ph" --set comm.reduce=exact \
  --set bridge.micro_batch=8 --out "$tmp/b7"
expect 0 "" -- "$pnn" train --help
for m in pat insilico spsa dfa phyll; do grep -qE "^  $m " "$tmp/out" && ok || bad "train --help does not list $m"; done
expect 78 "unknown method 'spssa'; known: pat, insilico.*spsa.*did you mean 'spsa'" -- "$pnn" train "$cfg" --set method=spssa \
  --out "$tmp/b1"
expect 78 "perturbation.*allowed keys: kind, perturbations, c" -- "$pnn" train "$cfg" \
  --set 'method={kind: spsa, perturbation: 3}' --out "$tmp/b2"
expect 78 "kind" -- "$pnn" train "$cfg" --set 'method={perturbations: 3}' --out "$tmp/b3"
[ ! -e "$tmp/b1" ] && [ ! -e "$tmp/b2" ] && [ ! -e "$tmp/b4" ] && [ ! -e "$tmp/b7" ] && ok || bad "a refused start left files"
finish
