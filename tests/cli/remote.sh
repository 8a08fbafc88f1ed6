#!/usr/bin/env bash
# Remote devices end to end: `pnn serve` serves the vowels job's oscillator over TCP with a token,
# and `pnn train` on remote:... ends with the same final line and the same parameters as on the
# in-process device. The Python example server (tools/pnn-device-server.py) serves a short
# training run of its oscillator demo, plainly and over CURVE with pnn keygen's key files.
# Errors: no token or a wrong one (64: refused at the handshake), an empty token (64, server and
# client), nobody listening (69), an open network address without CURVE (78). Skipped (77) when
# python3 lacks zmq or numpy.
set -euo pipefail
pnn=$1 src=$2
tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
# a failure shows what the servers logged too (a flaky handshake is diagnosed from both ends)
fail() {
  echo "FAIL: $*"
  for f in "$tmp"/*.err; do
    case $f in */serve*.err|*/py*.err) [ -s "$f" ] && { echo "--- $(basename "$f"):"; tail -c 2000 "$f"; } ;; esac
  done
  exit 1
}
python3 -c 'import zmq, numpy' 2>/dev/null || { echo "SKIP: python3 lacks zmq or numpy (tools/setup.sh installs them)"; exit 77; }
cfg=$src/examples/vowels-oscillator.yaml
dev='sim:oscillator?n=40&nt=10&seed=1'

# Starts a server in the background (log in $tmp/$1.out/.err) and sets $endpoint from its
# "listening on ENDPOINT" line.
start() {
  local name=$1; shift
  # the log files exist before the server does: the background shell opens them only when it runs,
  # and a sed on a missing file would end this script under set -e (seen once in CI)
  : > "$tmp/$name.out"; : > "$tmp/$name.err"
  "$@" > "$tmp/$name.out" 2> "$tmp/$name.err" &
  pids+=($!)
  for _ in $(seq 100); do
    endpoint=$(sed -n 's/^listening on //p' "$tmp/$name.out" 2>/dev/null || true)
    [ -n "$endpoint" ] && return 0
    kill -0 "${pids[-1]}" 2>/dev/null || { cat "$tmp/$name.err"; fail "$name exited at start"; }
    sleep 0.1
  done
  fail "$name did not start"
}

start serve "$pnn" serve "$dev" --bind 'tcp://127.0.0.1:*' --token s3cret
c_ep=$endpoint

"$pnn" train "$cfg" --set epochs=3 --out "$tmp/local" > "$tmp/local.out" 2> "$tmp/local.err" \
  || { cat "$tmp/local.err"; fail "local train"; }
"$pnn" train "$cfg" --set epochs=3 --set "network.1.device=remote:$c_ep?token=s3cret" --out "$tmp/remote" \
  > "$tmp/remote.out" 2> "$tmp/remote.err" || { cat "$tmp/remote.err"; fail "remote train"; }
strip() { sed -n 's/^\(final: .*\) train_s=.*/\1/p' "$1"; }
[ -n "$(strip "$tmp/local.out")" ] || fail "no final line: $(cat "$tmp/local.out")"
[ "$(strip "$tmp/local.out")" = "$(strip "$tmp/remote.out")" ] \
  || fail "remote training differs: local '$(strip "$tmp/local.out")' remote '$(strip "$tmp/remote.out")'"
python3 - "$tmp/local/checkpoint.safetensors" "$tmp/remote/checkpoint.safetensors" <<'PY'
import json, struct, sys
def tensors(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    head = json.loads(raw[8:8 + n])
    head.pop("__metadata__", None)
    return {k: raw[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]] for k, v in head.items()}
a, b = tensors(sys.argv[1]), tensors(sys.argv[2])
assert set(a) == set(b), set(a) ^ set(b)
for k in a:
    assert a[k] == b[k], f"parameter {k} differs between the local and the remote run"
print(f"remote run equals local run: {len(a)} tensors bit for bit")
PY

# errors: a missing or wrong token is refused at the handshake, at once, naming the fix; an empty
# one is refused before anything starts; nobody listening is 69
set +e
# refused NAME URI: a client that the server must refuse at the handshake, exit code in rc_NAME.
# Under ASan and load, about 1 client process in 40 sees no ZeroMQ event at all for 10 s (the
# remote client's open issue, docs/security.md): said loudly, with what the monitor saw, and
# tried once more; a second time fails the test.
refused() {
  local name=$1 uri=$2 attempt
  for attempt in 1 2; do
    "$pnn" train "$cfg" --set epochs=1 --set "network.1.device=$uri" --out "$tmp/$name" > /dev/null 2> "$tmp/$name.err"
    eval "rc_$name=$?"
    grep -q "no remote device answered" "$tmp/$name.err" || break
    echo "WARNING: the $name refusal timed out (attempt $attempt): $(cat "$tmp/$name.err")"
    tail -c 2000 "$tmp/serve.err"
  done
}
refused notoken "remote:$c_ep"
rc=$rc_notoken
refused wrongtoken "remote:$c_ep?token=wrong"
rc_wrong=$rc_wrongtoken
refused emptytoken "remote:$c_ep?token="
rc_empty=$rc_emptytoken
# (a server that took the empty token would serve until the timeout)
timeout 10 "$pnn" serve "$dev" --bind 'tcp://127.0.0.1:*' --token '' > /dev/null 2> "$tmp/serve_empty.err"
rc_serve_empty=$?
timeout 10 python3 "$src/tools/pnn-device-server.py" --bind 'tcp://127.0.0.1:*' --token '' > /dev/null \
  2> "$tmp/py_empty.err"
rc_py_empty=$?
"$pnn" train "$cfg" --set epochs=1 --set "network.1.device=remote:tcp://127.0.0.1:9?timeout_ms=300" --out "$tmp/none" > /dev/null 2> "$tmp/none.err"
rc2=$?
"$pnn" serve "$dev" --bind 'tcp://0.0.0.0:*' > /dev/null 2> "$tmp/open.err"
rc3=$?
set -e
usage_or_config() { [ "$1" -eq 64 ] || [ "$1" -eq 78 ]; }
usage_or_config "$rc" && grep -q "requires a token" "$tmp/notoken.err" && grep -q "token=" "$tmp/notoken.err" \
  || fail "no token: exit $rc, $(cat "$tmp/notoken.err")"
usage_or_config "$rc_wrong" && grep -q "refused the token" "$tmp/wrongtoken.err" \
  || fail "wrong token: exit $rc_wrong, $(cat "$tmp/wrongtoken.err")"
usage_or_config "$rc_empty" && grep -q "token is empty" "$tmp/emptytoken.err" \
  || fail "empty token= in the URI: exit $rc_empty, $(cat "$tmp/emptytoken.err")"
[ "$rc_serve_empty" -eq 64 ] && grep -q -- "--token is empty" "$tmp/serve_empty.err" \
  || fail "pnn serve --token '': exit $rc_serve_empty, $(cat "$tmp/serve_empty.err")"
[ "$rc_py_empty" -ne 0 ] && grep -q -- "--token is empty" "$tmp/py_empty.err" \
  || fail "pnn-device-server.py --token '': exit $rc_py_empty, $(cat "$tmp/py_empty.err")"
[ "$rc2" -eq 69 ] && grep -q "pnn serve" "$tmp/none.err" && grep -q "no connection was made" "$tmp/none.err" \
  || fail "nobody listening: exit $rc2, $(cat "$tmp/none.err")"
# a listener that accepts and never speaks: the error says the connection was made, the handshake not
start mute python3 -c '
import socket, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(8)
print("listening on tcp://127.0.0.1:%d" % s.getsockname()[1], flush=True)
time.sleep(60)'
set +e
"$pnn" train "$cfg" --set epochs=1 --set "network.1.device=remote:$endpoint?timeout_ms=500&token=x" --out "$tmp/mute" \
  > /dev/null 2> "$tmp/mute_client.err"
rc_mute=$?
set -e
[ "$rc_mute" -eq 69 ] && grep -qE "connected [0-9]+ time\(s\).*no handshake finished" "$tmp/mute_client.err" \
  || fail "a listener that never speaks: exit $rc_mute, $(cat "$tmp/mute_client.err")"
[ "$rc3" -eq 78 ] && grep -q "CURVE" "$tmp/open.err" || fail "open address: exit $rc3, $(cat "$tmp/open.err")"
[ ! -e "$tmp/notoken" ] || [ -z "$(ls "$tmp/notoken")" ] || fail "a failed start left files"

# the Python example server: its ideal oscillator trains the vowels job (no noise, no mismatch)
start py python3 "$src/tools/pnn-device-server.py" --demo oscillator --n 40 --nt 10 --bind 'tcp://127.0.0.1:*' --token pytok
"$pnn" train "$cfg" --set epochs=3 --set "network.1.device=remote:$endpoint?token=pytok" --out "$tmp/py" \
  > "$tmp/py.out" 2> "$tmp/py.err" || { cat "$tmp/py.err"; fail "train on the Python server"; }
acc=$(sed -n 's/^final: test_acc_device=\([0-9.]*\).*/\1/p' "$tmp/py.out")
python3 -c "import sys; a = float('$acc'); sys.exit(0 if a > 0.5 else 1)" || fail "Python-served run reached only $acc"
# and the in-process ideal device gives nearly the same (float32 in NumPy versus C)
"$pnn" train "$cfg" --set epochs=3 --set 'network.1.device=sim:oscillator?n=40&nt=10&seed=1&noise=0&mismatch=0' \
  --out "$tmp/ideal" > "$tmp/ideal.out" 2>/dev/null || fail "ideal train"
ideal=$(sed -n 's/^final: test_acc_device=\([0-9.]*\).*/\1/p' "$tmp/ideal.out")
python3 -c "import sys; sys.exit(0 if abs($acc - $ideal) <= 0.05 else 1)" \
  || fail "Python oscillator ($acc) and the C ideal oscillator ($ideal) disagree"

# a system pnn has no twin for (the example server's tanh layer): refused with the way out, then
# trained by spsa from device passes alone with twin: none (its loss falls; no twin evaluation)
start pytanh python3 "$src/tools/pnn-device-server.py" --demo tanh --n 12 --bind 'tcp://127.0.0.1:*' --token tt
tanh_net=(--set "network=[{kind: physical, name: dev, device: 'remote:$endpoint?token=tt'}, {kind: scale, name: out, init: 5.0}]")
set +e
"$pnn" train "$cfg" "${tanh_net[@]}" --set 'method={kind: spsa, perturbations: 8}' --set epochs=1 --out "$tmp/tanh0" \
  > /dev/null 2> "$tmp/tanh0.err"
rc=$?
set -e
{ [ "$rc" -eq 69 ] || [ "$rc" -eq 78 ]; } && grep -q "no analytic twin for system 'tanh_layer'.*twin: none" "$tmp/tanh0.err" \
  || fail "a device without a twin: exit $rc, $(cat "$tmp/tanh0.err")"
"$pnn" train "$cfg" "${tanh_net[@]}" --set network.0.twin=none --set 'method={kind: spsa, perturbations: 8}' \
  --set epochs=12 --out "$tmp/tanh" > "$tmp/tanh.out" 2> "$tmp/tanh.err" || { cat "$tmp/tanh.err"; fail "spsa, twin: none"; }
grep -q "test_acc_twin=nan" "$tmp/tanh.out" || fail "twin: none was evaluated on a twin: $(cat "$tmp/tanh.out")"
python3 - "$tmp/tanh/metrics.csv" <<'PY' || fail "spsa on a device without a twin did not learn"
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
ep = [float(r["loss"]) for r in rows if r["kind"] == "train_epoch"]
assert ep[-1] < 0.5 * ep[0], ep
assert not any(r["kind"] == "test_twin" for r in rows)
PY

# CURVE with the key files of pnn keygen, served by Python, used by the C client
"$pnn" keygen "$tmp/server.key" 2> /dev/null && "$pnn" keygen "$tmp/client.key" 2> /dev/null || fail "keygen"
[ "$(stat -c %a "$tmp/server.key")" = 600 ] || fail "the key pair file is not mode 600"
start pycurve python3 "$src/tools/pnn-device-server.py" --demo oscillator --n 40 --nt 10 --bind 'tcp://127.0.0.1:*' \
  --curve-key "$tmp/server.key" --allow-client "$tmp/client.key.pub"
"$pnn" train "$cfg" --set epochs=1 --out "$tmp/curve" \
  --set "network.1.device=remote:$endpoint?server_key=$tmp/server.key.pub&client_key=$tmp/client.key" \
  > "$tmp/curve.out" 2> "$tmp/curve.err" || { cat "$tmp/curve.err"; fail "train over CURVE"; }
set +e
"$pnn" train "$cfg" --set epochs=1 --out "$tmp/nocurve" --set "network.1.device=remote:$endpoint?timeout_ms=300" \
  > /dev/null 2>&1
rc=$?
set -e
[ "$rc" -eq 64 ] || [ "$rc" -eq 69 ] || [ "$rc" -eq 78 ] || fail "a client without CURVE keys got service (exit $rc)"

# Ctrl-C stops pnn serve cleanly with its counters
kill -INT "${pids[0]}"
wait "${pids[0]}" || fail "pnn serve did not exit 0 on SIGINT"
grep -q "stopped after [0-9]* requests" "$tmp/serve.err" || fail "no counters: $(cat "$tmp/serve.err")"
grep -q "token handshakes let in [1-9][0-9]*, refused [1-9]" "$tmp/serve.err" \
  || fail "the handshakes with and without the right token are not counted: $(cat "$tmp/serve.err")"
echo "remote: C server equals in-process; Python server acc $acc (ideal C $ideal); $(tail -1 "$tmp/serve.err")"
echo "1 passed, 0 failed"
