#!/usr/bin/env bash
# Transfer: a vowels PNN trained on one copy of its device (seed 1), moved to ten other copies
# (seeds 2-11, each its own hidden mismatch), for the oscillator and the circuit at mismatch 1 and
# 3; the gap (accuracy on the training device minus the mean on the copies) before and after each
# remedy on each copy, with budgets of 20, 100 and 400 steps (Adam afresh at lr 0.002): fine-tuning
# (PAT with the labels, one device call a step) and distillation (no labels: the outputs the
# network gives on the training device are the targets, two device calls a step, one on each
# device). Three training seeds (the network's initialisation and data order; the
# training device stays seed 1). Writes benchmarks/results/transfer-<date>.json and a PNG per
# system and mismatch (training seed 1).
# Usage: bash benchmarks/transfer.sh [SEEDS] [MISMATCHES]
set -euo pipefail
cd "$(dirname "$0")/.."
seeds=${1:-1 2 3}
mismatches=${2:-1 3}
date=$(date -u +%Y-%m-%d)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
files=()
for system in oscillator circuit; do
  case $system in
    oscillator) L=1 base='sim:oscillator?n=40&nt=10' ;;
    circuit) L=2 base='sim:circuit?segments=16&y_dim=16' ;;
  esac
  for m in $mismatches; do
    for seed in $seeds; do
      dev="$base&mismatch=$m"
      build/pnn train examples/vowels-$system.yaml --set seed=$seed --set "network.$L.device=$dev&seed=1" \
        --out "$tmp/run-$system-$m-$seed" > /dev/null 2>&1
      for rb in none:0 finetune:20 finetune:100 finetune:400 distill:20 distill:100 distill:400; do
        remedy=${rb%:*} budget=${rb#*:}
        f=$tmp/$system-m$m-s$seed-$remedy$budget.json
        opt=(); [ $remedy != none ] && opt=(--$remedy $budget)
        build/pnn transfer "$tmp/run-$system-$m-$seed/checkpoint.safetensors" --devices "$dev&seed={2..11}" \
          "${opt[@]}" --set optimizer.lr=0.002 --out "$f" | tail -1 >&2
        python3 - "$f" "$system" "$m" "$seed" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
d.update(system=sys.argv[2], mismatch=float(sys.argv[3]), train_seed=int(sys.argv[4]))
json.dump(d, open(sys.argv[1], "w"))
PY
        files+=("$f")
      done
      if [ "$seed" = "$(echo $seeds | cut -d' ' -f1)" ]; then
        python3 tools/plot_transfer.py "$tmp/$system-m$m-s$seed-"{none0,finetune20,finetune100,finetune400,distill20,distill100,distill400}.json \
          --out benchmarks/results/transfer-$system-mismatch$m-$date.png > /dev/null
      fi
    done
  done
done
python3 - benchmarks/results/transfer-$date.json "${files[@]}" <<'PY'
import json, statistics, subprocess, sys, datetime, os
runs = [json.load(open(f)) for f in sys.argv[2:]]
for r in runs:
    r["checkpoint"] = os.path.basename(os.path.dirname(r["checkpoint"]))
table = {}
for r in runs:
    key = "%s mismatch=%g" % (r["system"], r["mismatch"])
    t = table.setdefault(key, {})
    t.setdefault("train_device_acc", []).append(r["training_device"]["acc"])
    t.setdefault("gap_as_trained", []).append(r["gap"])
    if r["finetune_steps"]:
        calls = sum(c["device_calls"] for c in r["copies"]) / len(r["copies"])
        t.setdefault("gap_%s_%d_steps_%d_calls" % (r["remedy"], r["finetune_steps"], calls), []).append(r["gap_finetuned"])
summary = {k: {m: {"mean": statistics.mean(v), "std": statistics.stdev(v) if len(v) > 1 else 0.0, "n": len(v)}
               for m, v in t.items()} for k, t in table.items()}
res = {"benchmark": "transfer", "what": "vowels PNN trained on device seed 1, tested on seeds 2-11; fine-tuned "
       "on each copy (PAT with labels, Adam lr 0.002 afresh, one device call per step) or distilled (no labels, "
       "the training device's outputs as targets, two calls per step)",
       "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip(),
       "date": datetime.datetime.now(datetime.timezone.utc).isoformat(),
       "cpu": next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?"),
       "summary": summary, "runs": runs}
json.dump(res, open(sys.argv[1], "w"), indent=1)
for k, t in summary.items():
    print(k + ": " + "; ".join("%s %.1f +- %.1f" % (m, 100 * s["mean"], 100 * s["std"]) for m, s in t.items()))
print("wrote", sys.argv[1])
PY
