#!/usr/bin/env bash
# Hostile and broken input of the kinds an adversarial run found (issue: hardening): crafted
# device headers, endless retries, runs killed before their first checkpoint, finished and
# half-finished runs resumed, over-long paths, checkpoints that name devices and files, configs
# built to be slow. Each case failed on the code before its fix.
set -uo pipefail
pnn=$1 src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cfg=$src/examples/vowels-oscillator.yaml
passed=0 failed=0
ok() { passed=$((passed + 1)); }
bad() { failed=$((failed + 1)); echo "FAIL: $*"; }

# expect CODE PATTERN -- command...: runs it, checks the exit code and that stderr matches
expect() {
  local code=$1 pattern=$2; shift 3
  "$@" > "$tmp/out" 2> "$tmp/err"
  local rc=$?
  if [ "$rc" -eq "$code" ] && grep -qE -- "$pattern" "$tmp/err"; then ok
  else bad "$* -> exit $rc (want $code), stderr: $(tail -c 600 "$tmp/err") (want /$pattern/)"; fi
}

# 1. a recording header (or server) whose dims are not its system's: refused before any buffer
python3 - "$tmp/crafted.pnnrec" <<'PY'
import json, struct, sys
h = json.dumps({"format": "pnn-record/1", "system": "oscillator", "system_uri": "sim:oscillator?nt=10",
                "x_dim": 40, "y_dim": 40, "theta_dim": 56, "max_batch": 1 << 20, "x_range": [-1e30, 1e30],
                "theta_range": [-1e30, 1e30], "theta_parts": [{"name": "theta", "rows": 56, "cols": 0}]}).encode()
open(sys.argv[1], "wb").write(b"PNNREC1\n" + struct.pack("<I", len(h)) + h)
PY
for m in pat insilico; do
  expect 65 "theta_dim 56, which is not an oscillator system" -- "$pnn" train "$cfg" --set method=$m \
    --set "network.1.device=replay:$tmp/crafted.pnnrec" --out "$tmp/c-$m"
done

# 3. a device that always faults with many retries: no busy loop, and SIGTERM stops it at once
for async in 0 1; do
  "$pnn" train "$cfg" --set bridge.retries=70 --set "network.1.device=sim:oscillator?n=40&nt=10&fault_rate=1&async=$async" \
    --out "$tmp/retry$async" > /dev/null 2> "$tmp/retry.err" &
  pid=$!
  sleep 1.5
  cpu=$(awk '{printf "%.2f", ($14 + $15) / 100}' /proc/$pid/stat 2>/dev/null || echo 0)
  kill -TERM $pid 2>/dev/null
  for _ in $(seq 50); do kill -0 $pid 2>/dev/null || break; sleep 0.1; done
  if kill -0 $pid 2>/dev/null; then
    kill -9 $pid; wait $pid 2>/dev/null; bad "async=$async: SIGTERM did not stop a run retrying a faulty device"
  else
    wait $pid; rc=$?
    if [ "$rc" -eq 130 ] && awk -v c="$cpu" 'BEGIN { exit !(c < 0.8) }' && grep -q "interrupted after step 0" "$tmp/retry.err"
    then ok; else bad "async=$async: exit $rc, $cpu s of CPU in 1.5 s, stderr $(tail -c 300 "$tmp/retry.err")"; fi
  fi
done

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
