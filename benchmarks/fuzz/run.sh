#!/usr/bin/env bash
# Builds and runs pnn's libFuzzer harnesses, one after another:
#   fuzz_request     the pnn-device/1 request and reply header parsers (hwbridge/remote/protocol.c)
#   fuzz_server      whole multi-frame messages through pnn_server_handle_message
#   fuzz_recording   recordings: record: reopening (torn end cut, then a call) and replay: (hwbridge/record.c)
#   fuzz_checkpoint  checkpoints: safetensors reading, the embedded config, loading into a trainer
#   fuzz_config      the YAML config parser, typed reads, --set, writing YAML and reading it back
# Usage: bash benchmarks/fuzz/run.sh [SECONDS_EACH=60] [HARNESS...] [--keep-going] [--json PATH]
# Needs clang with libFuzzer (apt-get install clang libclang-rt-dev, which tools/setup.sh --fuzz
# does) and a built pnn (build/pnn from tools/setup.sh, or $PNN), which makes the seeds: a real
# recording and checkpoint of benchmarks/fuzz/fuzz-net.yaml, the example configs, protocol
# messages. Builds into build-fuzz/ (ASan + UBSan, the library compiled once for all harnesses);
# corpora grow in build-fuzz/corpus-NAME, crashes land in build-fuzz/crash-NAME-*. Prints per
# harness the executions, coverage (cov: edges, ft: features) and corpus; --json PATH writes
# them with the machine and commit. Exits 1 when a harness crashed, leaked or timed out: at once
# (CI), or with --keep-going at the end of its time (libFuzzer's fork mode, one job, which
# goes on after a crash and collects them all: for long runs).
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=60 json="" keep_going=0 harnesses=()
while [ $# -gt 0 ]; do
  case $1 in
    --json) json=$2; shift 2 ;;
    --keep-going) keep_going=1; shift ;;
    [0-9]*) secs=$1; shift ;;
    *) harnesses+=("$1"); shift ;;
  esac
done
[ ${#harnesses[@]} -gt 0 ] || harnesses=(fuzz_request fuzz_server fuzz_recording fuzz_checkpoint fuzz_config)
out=build-fuzz
fz=benchmarks/fuzz
pnn=${PNN:-build/pnn}
mkdir -p "$out/obj"
command -v clang > /dev/null || { echo "run.sh: clang not found: bash tools/setup.sh --fuzz"; exit 2; }
[ -x "$pnn" ] || { echo "run.sh: $pnn not found: run tools/setup.sh first (or set PNN=path/to/pnn)"; exit 2; }

# Without -fopenmp the OpenMP pragmas are ignored (a harness runs single-threaded), but
# hwbridge/queue.c calls omp_set_num_threads: its declaration comes from GCC's omp.h (libgomp,
# which OpenBLAS links; clang's own needs libomp-dev), alone in a directory looked up last.
mkdir -p "$out/include"
ln -sf "$(gcc -print-file-name=include)/omp.h" "$out/include/omp.h"
cflags=(-g -O1 -std=c11 -D_POSIX_C_SOURCE=200809L -fsanitize=fuzzer-no-link,address,undefined
        -fno-sanitize-recover=undefined -Wno-unknown-pragmas -Iinclude -I.
        -I/usr/include/x86_64-linux-gnu/openblas-openmp -I/usr/include/aarch64-linux-gnu/openblas-openmp
        -idirafter "$out/include" "-DPNN_DATA_DIR=\"$PWD/data\""
        "-DFUZZ_NET_CONFIG=\"$PWD/$fz/fuzz-net.yaml\"")
blas=$(ls /usr/lib/*-linux-gnu/openblas-openmp/libopenblas.so 2>/dev/null | head -1)
libs=(-ljansson -lyaml -lzmq -lz -lfftw3f "$blas" -l:libgomp.so.1 -lmvec -lm -lpthread)

# the library, compiled once per change ($(nproc) at a time): a source is recompiled when it or
# any header is newer than its object
newest_header=$(ls -t include/pnn/*.h base/*.h kernels/*/*.h kernels/systems/*/*.h hwbridge/*.h hwbridge/*/*.h host/*.h host/*/*.h 2>/dev/null | head -1 || true)
objs=()
# the same sources as CMakeLists.txt's PNN_SOURCES
for src in kernels/*.c base/*.c kernels/cpu/*.c kernels/systems/*/*.c hwbridge/*.c hwbridge/systems/*.c \
           hwbridge/remote/*.c host/*.c host/twins/*.c host/methods/*.c; do
  obj=$out/obj/${src//\//_}.o
  objs+=("$obj")
  if [ ! -e "$obj" ] || [ "$src" -nt "$obj" ] || [ "$newest_header" -nt "$obj" ]; then
    rm -f "$obj"
    while [ "$(jobs -rp | wc -l)" -ge "$(nproc)" ]; do wait -n || true; done
    clang "${cflags[@]}" -c "$src" -o "$obj.tmp" && mv "$obj.tmp" "$obj" &
  fi
done
wait
for obj in "${objs[@]}"; do [ -e "$obj" ] || { echo "run.sh: compiling the library failed"; exit 1; }; done

# ---- seeds: made fresh on every run ----
seed_tmp=$(mktemp -d)
trap 'rm -rf "$seed_tmp"' EXIT
rm -rf "$out"/seeds-*
mkdir -p "$out"/seeds-{protocol,recording,checkpoint,config}

# protocol: valid and nearly valid messages, frames separated by #FRM#
seeds=$out/seeds-protocol
x16=$(python3 -c 'import struct,sys; sys.stdout.buffer.write(struct.pack("<4f",0.1,0.2,-0.3,0.4))' | base64 -w0)
t80=$(python3 -c 'import struct,sys; sys.stdout.buffer.write(struct.pack("<20f",*[0.05*i for i in range(20)]))' | base64 -w0)
printf '{"op":"info","id":1}' > "$seeds/info"
printf '{"op":"ping","id":2,"token":"s3cret"}' > "$seeds/ping"
printf 'T{"op":"ping","id":2,"token":"s3cret"}' > "$seeds/ping_token"
{ printf '{"op":"forward","id":3,"batch":1,"theta_per_sample":false}#FRM#'; echo "$x16" | base64 -d
  printf '#FRM#'; echo "$t80" | base64 -d; } > "$seeds/forward"
{ printf '{"op":"forward","id":4,"batch":2,"theta_per_sample":true}#FRM#'; echo "$x16" | base64 -d; echo "$x16" | base64 -d
  printf '#FRM#'; echo "$t80" | base64 -d; echo "$t80" | base64 -d; } > "$seeds/forward_tps"
printf '{"id":5,"ok":true,"protocol":"pnn-device/1","name":"oscillator","x_dim":4,"theta_dim":20,"y_dim":4,"max_batch":8,"x_range":[-1,1],"theta_range":[-1,1],"system_uri":"sim:oscillator?n=4","theta_parts":[{"name":"C","shape":[4,4]},{"name":"e","shape":[4]}]}' > "$seeds/info_reply"
printf '{"id":6,"ok":false,"error":"bad_shape","message":"x is 3 bytes"}' > "$seeds/error_reply"

# a recording and checkpoints of fuzz-net.yaml, made by pnn itself (batch 8: calls of 300 bytes)
dev='sim:oscillator?n=4&nt=1&seed=1'
run_pnn() { "$pnn" train "$fz/fuzz-net.yaml" --out "$seed_tmp/$1" "${@:2}" > "$seed_tmp/$1.log" 2>&1 ||
              { cat "$seed_tmp/$1.log"; echo "run.sh: making the seeds with $pnn failed"; exit 1; }; }
run_pnn adam --set batch=8 --set "network.1.device=\"record:$seed_tmp/calls.pnnrec@$dev\""
run_pnn sgd --set 'optimizer={kind: sgd, lr: 0.1}' --set method=insilico
cp "$seed_tmp/adam/checkpoint.safetensors" "$out/seeds-checkpoint/adam"
cp "$seed_tmp/sgd/checkpoint.safetensors" "$out/seeds-checkpoint/sgd"
# recordings: the first 1, 3 and 5 calls, 3 and a torn half of the 4th, header only, and 5 with
# call 2 damaged (valid records after it: not a torn end)
python3 - "$seed_tmp/calls.pnnrec" "$out/seeds-recording" <<'EOF'
import struct, sys
rec = open(sys.argv[1], "rb").read()
idx = open(sys.argv[1] + ".idx", "rb").read()
calls = [struct.unpack_from("<3Q", idx, 24 * i) for i in range(len(idx) // 24)]
x_dim = y_dim = 4
end = lambda k: calls[k][0] + 48 + calls[k][2] * (x_dim + y_dim) * 4  # end of call k
def seed(name, data): open(f"{sys.argv[2]}/{name}", "wb").write(data)
seed("calls1", rec[:end(0)])
seed("calls3", rec[:end(2)])
seed("calls5", rec[:end(4)])
seed("torn", rec[:(end(2) + end(3)) // 2])
seed("header", rec[:calls[0][1]])
damaged = bytearray(rec[:end(4)])
damaged[calls[1][0] + 60] ^= 0x40
seed("damaged", bytes(damaged))
EOF
# configs: the examples, fuzz-net, a config as pnn writes it, and some with --set assignments
cp examples/*.yaml "$fz/fuzz-net.yaml" "$out/seeds-config/"
cp "$seed_tmp/adam/config.yaml" "$out/seeds-config/as-written.yaml"
{ cat examples/vowels-oscillator.yaml; printf '#SET#epochs=3#SET#network.1.device=sim:oscillator?n=4#SET#bridge={micro_batch: 8, schedule: pipelined}'; } > "$out/seeds-config/sets"
{ cat "$fz/fuzz-net.yaml"; printf '#SET#network.0.out=[1, {a: "b\\n"}]#SET#new.deep.key=x#SET#network.9=1'; } > "$out/seeds-config/sets-bad"

# ---- the runs ----
declare -A seed_dir=([fuzz_request]=protocol [fuzz_server]=protocol [fuzz_recording]=recording
                     [fuzz_checkpoint]=checkpoint [fuzz_config]=config)
declare -A dict=([fuzz_request]=pnn-device.dict [fuzz_server]=pnn-device.dict [fuzz_recording]=recording.dict
                 [fuzz_checkpoint]=checkpoint.dict [fuzz_config]=config.dict)
declare -A max_len=([fuzz_request]=8192 [fuzz_server]=8192 [fuzz_recording]=4096 [fuzz_checkpoint]=8192
                    [fuzz_config]=4096)
# Figures from a libFuzzer log, as one JSON object: the last status line ("#N ... cov: C ft: F
# corp: U/B ..." alone; "#N: cov: C ft: F corp: U exec/s R oom/timeout/crash: a/b/c ..." in
# fork mode) and the final stats (alone). Fork mode counts coverage in other units, so there
# cov, ft and corpus come from a second log: the final corpus loaded by one plain run (INITED).
summarize() {
  python3 - "$@" <<'EOF'
import json, re, sys
log, h, mode, rc, files, start, crash_files, inited_log = sys.argv[1:]
text = open(log, errors="replace").read()
stat = dict(re.findall(r"^stat::(\w+):\s*(\S+)", text, re.M))
status = re.findall(r"^#(\d+):?\s.*cov: .*$", text, re.M)
last = re.findall(r"^#\d+:?\s.*cov: .*$", text, re.M)
last = last[-1] if last else ""
grab = lambda pat: (re.search(pat, last) or [None, None])[1]
r = {"mode": mode, "executions": int(stat.get("number_of_executed_units") or (status[-1] if status else 0)),
     "exec_per_s": int(stat.get("average_exec_per_sec") or grab(r"exec/s:? (\d+)") or 0),
     "cov": int(grab(r"cov: (\d+)") or 0), "ft": int(grab(r"ft: (\d+)") or 0),
     "corpus_units": int(grab(r"corp: (\d+)") or 0), "corpus_bytes": grab(r"corp: \d+/(\w+)"),
     "corpus_files": int(files), "corpus_files_at_start": int(start),
     "new_units": int(stat["new_units_added"]) if "new_units_added" in stat else None,
     "peak_rss_mb": int(stat["peak_rss_mb"]) if "peak_rss_mb" in stat else None,
     "exit": int(rc), "crash_files": int(crash_files)}
oom_timeout_crash = grab(r"oom/timeout/crash: (\d+/\d+/\d+)")
if oom_timeout_crash: r["oom_timeout_crash"] = oom_timeout_crash
inited = re.search(r"INITED cov: (\d+) ft: (\d+) corp: (\d+)/(\w+)", open(inited_log, errors="replace").read()) \
    if inited_log else None
if inited:
    r.update({"fork_cov": r["cov"], "fork_ft": r["ft"], "cov": int(inited[1]), "ft": int(inited[2]),
              "corpus_units": int(inited[3]), "corpus_bytes": inited[4]})
print(json.dumps({h: r}))
EOF
}
show() {
  python3 -c 'import json, sys
h, r = json.loads(sys.argv[1]).popitem()
print("%s: %d executions (%d/s), cov %d, ft %d, corpus %d units (%d files, %d at start), exit %d, crash files %d"
      % (h, r["executions"], r["exec_per_s"], r["cov"], r["ft"], r["corpus_units"], r["corpus_files"],
         r["corpus_files_at_start"], r["exit"], r["crash_files"]))' "$1"
}

status=0
results=$out/results.jsonl
: > "$results"
for h in "${harnesses[@]}"; do
  [ -n "${seed_dir[$h]:-}" ] || { echo "run.sh: unknown harness $h"; exit 2; }
  clang "${cflags[@]}" -fsanitize=fuzzer "$fz/$h.c" "${objs[@]}" "${libs[@]}" -o "$out/$h"
  corpus=$out/corpus-$h
  mkdir -p "$corpus"
  start_files=$(ls "$corpus" | wc -l)
  log=$out/$h.log
  mode=alone
  extra=(-print_final_stats=1)
  [ "$keep_going" = 1 ] && mode=fork extra=(-fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1)
  echo "== $h: ${secs}s"
  set +e
  OMP_NUM_THREADS=1 ASAN_OPTIONS=detect_leaks=1 "$out/$h" "$corpus" "$out/seeds-${seed_dir[$h]}" \
    -dict="$fz/${dict[$h]}" -max_total_time="$secs" -max_len="${max_len[$h]}" -timeout=10 -rss_limit_mb=2048 \
    "${extra[@]}" -artifact_prefix="$out/crash-$h-" > "$log" 2>&1
  rc=$?
  set -e
  crashes=$(find "$out" -maxdepth 1 -name "crash-$h-*" -newer "$out/$h" | wc -l)
  inited_log=""
  if [ "$mode" = fork ]; then
    inited_log=$out/$h.corpus.log
    OMP_NUM_THREADS=1 ASAN_OPTIONS=detect_leaks=1 "$out/$h" "$corpus" -runs=0 -max_len="${max_len[$h]}" \
      -rss_limit_mb=2048 > "$inited_log" 2>&1 || true
  fi
  summarize "$log" "$h" "$mode" "$rc" "$(ls "$corpus" | wc -l)" "$start_files" "$crashes" "$inited_log" >> "$results"
  show "$(tail -1 "$results")"
  if [ "$rc" -ne 0 ] || [ "$crashes" -ne 0 ]; then
    status=1
    grep -m1 -A30 'ERROR\|runtime error\|deadly signal\|Test unit written' "$log" || tail -30 "$log"
  fi
done

if [ -n "$json" ]; then
  python3 - "$results" "$json" "$secs" <<'EOF'
import json, os, platform, subprocess, sys
def sh(*cmd):
    try: return subprocess.run(cmd, capture_output=True, text=True).stdout.strip()
    except OSError: return ""
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.machine())
runs = {}
for line in open(sys.argv[1]):
    runs.update(json.loads(line))
doc = {"what": "libFuzzer runs of pnn's harnesses, one after another (bash benchmarks/fuzz/run.sh SECONDS --json)",
       "machine": {"cpu": cpu, "cores": os.cpu_count(), "os": sh("uname", "-sr"),
                   "compiler": sh("clang", "--version").splitlines()[0]},
       "commit": sh("git", "rev-parse", "HEAD"),
       "worktree_changed": bool(sh("git", "status", "--porcelain", "--untracked-files=no")),
       "seconds_each": int(sys.argv[3]),
       "notes": "cov: code edges covered; ft: libFuzzer features (edges with hit counts); corpus_units: the "
                "in-memory corpus at the end (seeds included); ASan + UBSan; -rss_limit_mb=2048; mode fork: "
                "-fork=1 -ignore_crashes=1 (a crash does not end the run); there cov, ft and corpus_units are "
                "those of the final corpus loaded by one plain run, fork_cov and fork_ft the fork-mode counters",
       "harnesses": runs}
json.dump(doc, open(sys.argv[2], "w"), indent=2)
open(sys.argv[2], "a").write("\n")
EOF
  echo "run.sh: wrote $json"
fi
exit $status
