#!/usr/bin/env bash
# pnn compare: pat, insilico and spsa on the vowels, two seeds, two epochs: the tables hold one row
# per run and one per method, the curves one row per epoch, the device passes are what each
# method spends (insilico none, spsa 2K a step), the plot draws; bad input: an unknown method
# (the known ones), a bad --seeds, a --method-set for no method compared, a missing config.
source "$(dirname "$0")/lib.bash"
out=$tmp/cmp
expect 0 "" -- "$pnn" compare "$cfg" --methods pat,insilico,spsa --seeds 2 --set epochs=2 \
  --method-set spsa.perturbations=3 --out "$out"
grep -q "compare: run 6/6, spsa seed 2, epoch 2/2" "$tmp/err" && ok || bad "no progress lines: $(tail -3 "$tmp/err")"
if python3 - "$out" <<'PY'
import csv, os, sys
d = sys.argv[1]
runs = list(csv.DictReader(open(os.path.join(d, "compare.csv"))))
assert [(r["method"], r["seed"]) for r in runs] == [(m, s) for m in ("pat", "insilico", "spsa") for s in ("1", "2")], runs
by = {r["method"]: r for r in runs}
steps = int(by["pat"]["device_passes"])  # one device pass a step (vowels: one physical layer, one batch)
assert steps > 0 and int(by["pat"]["twin_passes"]) == steps, by["pat"]
assert int(by["insilico"]["device_passes"]) == 0 and int(by["insilico"]["twin_passes"]) == steps, by["insilico"]
assert int(by["spsa"]["device_passes"]) == 2 * 3 * steps and int(by["spsa"]["twin_passes"]) == 0, by["spsa"]
for r in runs:
    assert 0 <= float(r["test_acc_device"]) <= 1
curves = list(csv.DictReader(open(os.path.join(d, "curves.csv"))))
assert len(curves) == 6 * 2, len(curves)
md = open(os.path.join(d, "compare.md")).read()
for m in ("pat", "insilico", "spsa"):
    assert f"| {m} | 2 |" in md, md
PY
then ok; else bad "compare tables"; fi
if python3 -c 'import matplotlib' 2>/dev/null; then
  python3 "$src/tools/plot_compare.py" "$out" > /dev/null && [ -s "$out/compare.png" ] && ok || bad "plot_compare.py"
fi
expect 64 "unknown method 'dfb' in --methods; known: pat, insilico.*spsa" -- "$pnn" compare "$cfg" --methods pat,dfb \
  --out "$tmp/b1"
expect 64 "seeds" -- "$pnn" compare "$cfg" --seeds 0 --out "$tmp/b2"
expect 64 "seeds" -- "$pnn" compare "$cfg" --seeds 1,x --out "$tmp/b3"
expect 64 "not a key of the methods compared" -- "$pnn" compare "$cfg" --methods pat --method-set spsa.c=0.1 --out "$tmp/b4"
expect 66 "" -- "$pnn" compare "$tmp/none.yaml" --out "$tmp/b5"
expect 78 "perturbation" -- "$pnn" compare "$cfg" --methods spsa --seeds 1 --set epochs=1 \
  --method-set spsa.perturbation=3 --out "$tmp/b6"
# --set-for sets a key for one method's runs (and compare.md lists it); the config's own method map
# keeps its keys when it is the method compared (a bad one shows it is read), under --method-set's
ph=$src/examples/vowels-oscillator-phyll.yaml
expect 0 "" -- "$pnn" compare "$ph" --methods phyll,pat --seeds 1 --set epochs=2 --set network.10.out=7 \
  --set-for pat:batch=16 --out "$tmp/sf"
grep -q "Settings of one method (--set-for): pat:batch=16" "$tmp/sf/compare.md" && grep -q "| phyll | 1 |" "$tmp/sf/compare.md" \
  && grep -q "| pat | 1 |" "$tmp/sf/compare.md" && ok || bad "--set-for: $(cat "$tmp/sf/compare.md")"
expect 78 "embed is 'sideways'" -- "$pnn" compare "$ph" --methods phyll --seeds 1 --set epochs=1 \
  --set 'method={kind: phyll, embed: sideways}' --out "$tmp/b7"
expect 0 "" -- "$pnn" compare "$ph" --methods phyll --seeds 1 --set epochs=1 \
  --set 'method={kind: phyll, embed: sideways}' --method-set phyll.embed=pad --out "$tmp/b8"
expect 64 "not one of the methods compared" -- "$pnn" compare "$cfg" --methods pat --set-for spsa:batch=4 --out "$tmp/b9"
expect 64 "give METHOD:key=value" -- "$pnn" compare "$cfg" --methods pat --set-for pat.batch=4 --out "$tmp/b10"
[ ! -e "$tmp/b1" ] && [ ! -e "$tmp/b5" ] && [ ! -e "$tmp/b9" ] && ok || bad "a refused start left files"
finish
