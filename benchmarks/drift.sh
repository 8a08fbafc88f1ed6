#!/usr/bin/env bash
# Drift: the vowels circuit PNN (examples/vowels-circuit.yaml) on a device whose natural
# frequency drifts with its calls (sim:circuit drift=D: w0 times 1 + D f(call), f a seeded sum of
# three slow sinusoids, periods around drift_period=600 calls), or the vowels oscillator PNN on a
# device whose hidden coupling moves (sim:oscillator mismatch=3 drift=D: the moving part D times
# the fixed one, the same f). Trained by PAT for 20 epochs;
# then the same run goes on for 100 epochs twice: online (PAT keeps training) and frozen (the
# learning rate set to 0: the same device calls, so the same drift, but the parameters stay).
# Test accuracy on the device after every epoch against the device calls so far, for two drift
# rates, 3 seeds. Writes benchmarks/results/drift[-oscillator]-<date>.json and .png.
# Usage: bash benchmarks/drift.sh [SEEDS] [DRIFTS] [SYSTEM: circuit (default) or oscillator]
set -euo pipefail
cd "$(dirname "$0")/.."
seeds=${1:-1 2 3}
system=${3:-circuit}
case $system in
  circuit) drifts=${2:-0.1 0.3} L=2 base=benchmarks/results/drift-$(date -u +%Y-%m-%d)
    uri='sim:circuit?segments=16&y_dim=16&drift=D&drift_period=600&seed=SEED' ;;
  oscillator) drifts=${2:-1 3} L=1 base=benchmarks/results/drift-oscillator-$(date -u +%Y-%m-%d)
    uri='sim:oscillator?n=40&nt=10&mismatch=3&drift=D&drift_period=600&seed=SEED' ;;
  *) echo "unknown system $system (circuit, oscillator)" >&2; exit 64 ;;
esac
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for d in $drifts; do
  for seed in $seeds; do
    dev=${uri/D/$d}
    dev=${dev/SEED/$seed}
    build/pnn train examples/vowels-$system.yaml --set seed=$seed --set "network.$L.device=$dev" --set epochs=20 \
      --out "$tmp/d$d-s$seed-online" > /dev/null 2>&1
    cp -r "$tmp/d$d-s$seed-online" "$tmp/d$d-s$seed-frozen"
    build/pnn train --resume "$tmp/d$d-s$seed-online" --set epochs=120 > /dev/null 2>&1
    build/pnn train --resume "$tmp/d$d-s$seed-frozen" --set epochs=120 --set optimizer.lr=0 > /dev/null 2>&1
    echo "drift $d seed $seed done" >&2
  done
done
python3 - "$base" "$tmp" "$drifts" "$seeds" "$system" "$uri" <<'PY'
import csv, json, statistics, sys, subprocess, datetime, os
base, tmp, drifts, seeds, system, uri = sys.argv[1], sys.argv[2], sys.argv[3].split(), sys.argv[4].split(), sys.argv[5], sys.argv[6]
curves = {}
for d in drifts:
    for mode in ("online", "frozen"):
        per_seed = []
        for s in seeds:
            rows = [r for r in csv.DictReader(open(os.path.join(tmp, "d%s-s%s-%s" % (d, s, mode), "metrics.csv")))
                    if r["kind"] == "test_device"]
            per_seed.append([(int(r["epoch"]), float(r["acc"])) for r in rows])
        epochs = sorted(set(e for c in per_seed for e, _ in c))
        curves["drift=%s %s" % (d, mode)] = {
            "epoch": epochs,
            "mean_acc": [statistics.mean(dict(c)[e] for c in per_seed if e in dict(c)) for e in epochs],
            "per_seed": per_seed}
summary = {k: {"acc_epoch_20": v["mean_acc"][v["epoch"].index(20)] if 20 in v["epoch"] else None,
               "acc_last_20_epochs_mean": statistics.mean(v["mean_acc"][-20:]),
               "acc_epochs_21_to_120_mean": statistics.mean(v["mean_acc"][20:])} for k, v in curves.items()}
res = {"benchmark": "drift", "config": "examples/vowels-%s.yaml" % system, "device": uri,
       "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip(),
       "date": datetime.datetime.now(datetime.timezone.utc).isoformat(), "summary": summary, "curves": curves}
json.dump(res, open(base + ".json", "w"), indent=1)
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
fig, ax = plt.subplots(figsize=(7, 4.2))
for i, d in enumerate(drifts):
    for mode, ls in (("online", "-"), ("frozen", "--")):
        c = curves["drift=%s %s" % (d, mode)]
        ax.plot(c["epoch"], [100 * a for a in c["mean_acc"]], ls, color="C%d" % i,
                label="drift %s, %s" % (d, "online PAT" if mode == "online" else "frozen after 20 epochs"))
ax.axvline(20, color="gray", lw=0.8)
ax.set_xlabel("epoch (time: each epoch is the same device calls in both runs, about 30)")
ax.set_ylabel("test accuracy on the device (%%), mean of %d seeds" % len(seeds))
ax.set_title("A drifting %s: online PAT against a frozen network" % system)
ax.grid(True, alpha=0.3)
ax.legend(fontsize=8)
fig.tight_layout()
fig.savefig(base + ".png", dpi=120)
for k, v in summary.items():
    print("%-22s after 20 epochs %.1f %%, mean of the last 20 epochs %.1f %%" % (k, 100 * (v["acc_epoch_20"] or 0), 100 * v["acc_last_20_epochs_mean"]))
print("wrote", base + ".json", base + ".png")
PY
