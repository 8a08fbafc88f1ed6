#!/usr/bin/env bash
# twin_noise: estimate (the device's input noise estimated from its output, for PAT without the
# oracle): the vowels PNN learns with it, a run resumed after an epoch ends with the parameters of
# one that never stopped, in silico it changes nothing (the twin models the nominal noise), and a
# misspelt twin_noise, or estimate for a system whose noise is not on its input, is refused (78).
source "$(dirname "$0")/lib.bash"
est=(--set network.1.twin_noise=estimate)
"$pnn" train "$cfg" "${est[@]}" --set epochs=6 --out "$tmp/full" > "$tmp/full.out" 2>&1 || bad "train: $(tail -3 "$tmp/full.out")"
acc=$(sed -nE 's/^final: test_acc_device=([0-9.]+).*/\1/p' "$tmp/full.out")
python3 -c "import sys; sys.exit(0 if float('$acc') > 0.5 else 1)" && ok || bad "estimate: test accuracy $acc after 6 epochs"
if python3 - "$tmp/full/metrics.csv" <<'PY'
import csv, sys
rows = [r for r in csv.DictReader(open(sys.argv[1])) if r["kind"] == "train_epoch"]
assert float(rows[-1]["loss"]) < 0.7 * float(rows[0]["loss"]), [r["loss"] for r in rows]
PY
then ok; else bad "estimate: the training loss did not fall"; fi
"$pnn" train "$cfg" "${est[@]}" --set epochs=3 --out "$tmp/part" > /dev/null 2>&1 || bad "partial"
"$pnn" train --resume "$tmp/part" --set epochs=6 > /dev/null 2>&1 || bad "resume"
if python3 - "$tmp/full/checkpoint.safetensors" "$tmp/part/checkpoint.safetensors" <<'PY'
import sys
import numpy as np
from safetensors.numpy import load_file
a, b = load_file(sys.argv[1]), load_file(sys.argv[2])
assert set(a) == set(b) and all(np.array_equal(a[k], b[k]) for k in a), "resumed run differs"
PY
then ok; else bad "estimate: the resumed run differs from the uninterrupted one"; fi
# in silico, estimate has nothing to estimate: the twin models the nominal noise, as by default
# (and as `nominal` says), bit for bit
same_params() {
  python3 - "$1" "$2" <<'PY'
import sys
import numpy as np
from safetensors.numpy import load_file
a, b = load_file(sys.argv[1]), load_file(sys.argv[2])
sys.exit(0 if set(a) == set(b) and all(np.array_equal(a[k], b[k]) for k in a) else 1)
PY
}
for tn in default estimate nominal; do
  opt=(); [ $tn != default ] && opt=(--set network.1.twin_noise=$tn)
  expect 0 "" -- "$pnn" train "$cfg" --set method=insilico --set epochs=2 "${opt[@]}" --out "$tmp/insilico-$tn"
done
same_params "$tmp/insilico-default/checkpoint.safetensors" "$tmp/insilico-estimate/checkpoint.safetensors" && ok \
  || bad "in silico with twin_noise: estimate differs from the default (the nominal noise)"
same_params "$tmp/insilico-default/checkpoint.safetensors" "$tmp/insilico-nominal/checkpoint.safetensors" && ok \
  || bad "twin_noise: nominal differs from the default"
expect 78 "twin_noise: estimate.*circuit system's noise is on its output" -- "$pnn" train "$src/examples/vowels-circuit.yaml" \
  --set epochs=1 --set network.2.twin_noise=estimate --out "$tmp/bc"
[ ! -e "$tmp/bc" ] && ok || bad "a refused twin_noise: estimate left a run directory"
expect 78 "twin_noise: estimate.*scatter" -- "$pnn" train "$src/examples/vowels-scatter.yaml" --set epochs=1 \
  --set network.2.twin_noise=estimate --out "$tmp/b0"
expect 78 "twin_noise is 'estimat'.*did you mean 'estimate'" -- "$pnn" train "$cfg" --set network.1.twin_noise=estimat --out "$tmp/b1"
expect 78 "twin_noise is 'loud'" -- "$pnn" train "$cfg" --set network.1.twin_noise=loud --out "$tmp/b2"
finish
