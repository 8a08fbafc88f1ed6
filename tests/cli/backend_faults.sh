#!/usr/bin/env bash
# A backend op that fails (the test-only faulty CPU backend stands in for a GPU op failing) ends
# pnn train and pnn eval with exit 70 and the op's message; a failure inside the optimizer update
# leaves the last checkpoint as it was, any other keeps the last completed step.
source "$(dirname "$0")/lib.bash"
check() { if eval "$1"; then ok; else bad "$2"; fi; }

"$pnn" train "$cfg" --set epochs=2 --set backend=faulty:gemm:60 --out "$tmp/g" > /dev/null 2> "$tmp/g.err"
rc=$?
check '[ $rc -eq 70 ] && grep -q "injected failure of backend op gemm" "$tmp/g.err"' "gemm: exit $rc, $(tail -2 "$tmp/g.err")"
check 'grep -q "saved the state after step" "$tmp/g.err" && [ -s "$tmp/g/checkpoint.safetensors" ]' "gemm: no state saved"
check '"$pnn" train --resume "$tmp/g" --set backend=cpu > /dev/null 2>&1' "gemm: resume on the plain CPU backend"

"$pnn" train "$cfg" --set epochs=2 --set backend=faulty:adam_update:30 --out "$tmp/a" > /dev/null 2> "$tmp/a.err"
rc=$?
check '[ $rc -eq 70 ] && grep -q "an update failed part way" "$tmp/a.err"' "adam: exit $rc, $(tail -2 "$tmp/a.err")"
check '[ ! -e "$tmp/a/checkpoint.safetensors" ]' "adam: a half-updated state was saved"

"$pnn" train "$cfg" --set epochs=1 --out "$tmp/ok" > /dev/null 2>&1
"$pnn" eval "$tmp/ok/checkpoint.safetensors" --set backend=faulty:softmax_xent:2 > "$tmp/e.out" 2> "$tmp/e.err"
rc=$?
check '[ $rc -eq 70 ] && ! grep -q "^final:" "$tmp/e.out"' "eval: exit $rc, $(cat "$tmp/e.out" "$tmp/e.err")"

finish
