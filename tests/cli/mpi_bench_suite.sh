#!/usr/bin/env bash
# The dp section of pnn bench --suite: pnn bench under mpirun on 1 and 2 ranks, steps/s in the
# report (a test of its own: it starts MPI, whose own leaks the sanitizer build knows by this
# name). Exit 77 without mpirun.
source "$(dirname "$0")/lib.bash"
command -v mpirun > /dev/null || { echo "skip: no mpirun on PATH"; exit 77; }
expect 0 "" -- "$pnn" bench --suite --quick --sections dp --out "$tmp/dp"
if python3 - "$tmp/dp/report.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
assert [d["ranks"] for d in r["dp"]] == [1, 2], (r["dp"], r["dp_note"])
assert all(d["steps_per_s"] > 0 for d in r["dp"]), r["dp"]
PY
then ok; else bad "the dp section: $(cat "$tmp/dp/report.md")"; fi
finish
