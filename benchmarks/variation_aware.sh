#!/usr/bin/env bash
# Variation-aware training against transfer: the vowels PNN trained on one copy of its device
# (seed 1, as benchmarks/transfer.sh) or round-robin on K copies (seed 1 and seeds 21.., never
# among the test copies), then tested on ten other copies (seeds 2-11). Reports, per system,
# mismatch and K, the accuracy on the training device (copy 1), the mean on the ten copies and
# the gap between them; the device calls of training are the same for every K (spread over the
# copies). Three training seeds. Writes benchmarks/results/variation-aware-<date>.json.
# Usage: bash benchmarks/variation_aware.sh [SEEDS] [MISMATCHES] [KS]
set -euo pipefail
cd "$(dirname "$0")/.."
seeds=${1:-1 2 3}
mismatches=${2:-1 3}
ks=${3:-1 2 4 8}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
runs=()
for system in oscillator circuit; do
  case $system in
    oscillator) L=1 base='sim:oscillator?n=40&nt=10' ;;
    circuit) L=2 base='sim:circuit?segments=16&y_dim=16' ;;
  esac
  for m in $mismatches; do
    for k in $ks; do
      dev="\"$base&mismatch=$m&seed=1\""
      [ "$k" -gt 1 ] && dev="[$dev, \"$base&mismatch=$m&seed={21..$((19 + k))}\"]"
      for seed in $seeds; do
        out=$tmp/$system-$m-$k-$seed
        build/pnn train examples/vowels-$system.yaml --set seed=$seed --set "network.$L.device=$dev" --out "$out" \
          > "$out.train" 2>&1
        build/pnn transfer "$out/checkpoint.safetensors" --devices "$base&mismatch=$m&seed={2..11}" \
          --out "$out.json" > /dev/null
        line=$(python3 - "$out.json" "$system" "$m" "$k" "$seed" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
print(json.dumps({"system": sys.argv[2], "mismatch": float(sys.argv[3]), "copies": int(sys.argv[4]),
                  "train_seed": int(sys.argv[5]), "train_device_acc": d["training_device"]["acc"],
                  "mean_acc_other_copies": d["mean_acc"], "gap": d["gap"]}))
PY
)
        echo "$line" >&2
        runs+=("$line")
      done
    done
  done
done
printf '%s\n' "${runs[@]}" | python3 -c '
import json, statistics, sys, subprocess, datetime
runs = [json.loads(l) for l in sys.stdin]
table = {}
for r in runs:
    t = table.setdefault("%s mismatch=%g copies=%d" % (r["system"], r["mismatch"], r["copies"]), {})
    for k in ("train_device_acc", "mean_acc_other_copies", "gap"):
        t.setdefault(k, []).append(r[k])
summary = {k: {m: {"mean": statistics.mean(v), "std": statistics.stdev(v) if len(v) > 1 else 0.0, "n": len(v)}
               for m, v in t.items()} for k, t in table.items()}
res = {"benchmark": "variation_aware",
       "what": "vowels PNN trained round-robin on K device copies (seed 1 and 21..), tested on seeds 2-11; same "
               "training device calls for every K",
       "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip(),
       "date": datetime.datetime.now(datetime.timezone.utc).isoformat(),
       "cpu": next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?"),
       "summary": summary, "runs": runs}
out = "benchmarks/results/variation-aware-%s.json" % datetime.date.today().isoformat()
json.dump(res, open(out, "w"), indent=1)
for k, t in summary.items():
    print("%-32s " % k + "; ".join("%s %.1f +- %.1f" % (m, 100 * s["mean"], 100 * s["std"]) for m, s in t.items()))
print("wrote", out)
'
