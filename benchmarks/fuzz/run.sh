#!/usr/bin/env bash
# Builds and runs the libFuzzer harnesses of the remote device protocol (not part of CI):
#   fuzz_request  the request and reply header parsers (hwbridge/remote/protocol.c)
#   fuzz_server   whole multi-frame messages through pnn_server_handle_message
# Usage: bash benchmarks/fuzz/run.sh [SECONDS_EACH=60] [harness...]
# Needs clang with libFuzzer (apt-get install clang libclang-rt-14-dev). Builds into
# build-fuzz/ at the repository root; corpora grow in build-fuzz/corpus-NAME (seeded from
# benchmarks/fuzz/seeds), crashes land in build-fuzz/crash-NAME-*. Prints executions, coverage
# and crashes per harness; exits 1 when a harness found a crash.
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-60}
shift || true
harnesses=("$@")
[ ${#harnesses[@]} -gt 0 ] || harnesses=(fuzz_request fuzz_server)
out=build-fuzz
mkdir -p "$out"
command -v clang > /dev/null || { echo "run.sh: clang not found: apt-get install clang libclang-rt-14-dev"; exit 2; }

cflags=(-g -O1 -std=c11 -D_POSIX_C_SOURCE=200809L -fsanitize=fuzzer-no-link,address,undefined
        -fno-sanitize-recover=undefined -Wno-unknown-pragmas -Iinclude -I.
        -I/usr/include/x86_64-linux-gnu/openblas-openmp -I/usr/include/aarch64-linux-gnu/openblas-openmp)
blas=$(ls /usr/lib/*-linux-gnu/openblas-openmp/libopenblas.so 2>/dev/null | head -1)
libs=(-ljansson -lzmq -lz "$blas" -l:libgomp.so.1 -lmvec -lm -lpthread)
# the library sources a server needs (host/ is not), compiled once per run
objs=()
for src in base/*.c kernels/cpu/*.c hwbridge/*.c hwbridge/sim/*.c hwbridge/remote/*.c; do
  obj=$out/obj/${src//\//_}.o
  mkdir -p "$out/obj"
  if [ ! -e "$obj" ] || [ "$src" -nt "$obj" ]; then clang "${cflags[@]}" -c "$src" -o "$obj"; fi
  objs+=("$obj")
done

# seeds: valid and nearly valid messages, frames separated by #FRM#
seeds=$out/seeds
mkdir -p "$seeds"
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

status=0
for h in "${harnesses[@]}"; do
  clang "${cflags[@]}" -fsanitize=fuzzer "benchmarks/fuzz/$h.c" "${objs[@]}" "${libs[@]}" -o "$out/$h"
  corpus=$out/corpus-$h
  mkdir -p "$corpus"
  log=$out/$h.log
  echo "== $h: ${secs}s"
  set +e
  OMP_NUM_THREADS=1 ASAN_OPTIONS=detect_leaks=1 "$out/$h" "$corpus" "$seeds" -dict=benchmarks/fuzz/pnn-device.dict \
    -max_total_time="$secs" -max_len=8192 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$out/crash-$h-" > "$log" 2>&1
  rc=$?
  set -e
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 || true)
  ft=$(grep -o 'ft: [0-9]*' "$log" | tail -1 || true)
  crashes=$(find "$out" -maxdepth 1 -name "crash-$h-*" | wc -l)
  echo "$h: ${execs:-?} executions, $cov, $ft, corpus $(ls "$corpus" | wc -l) files, exit $rc, crash files $crashes"
  if [ "$rc" -ne 0 ]; then
    status=1
    grep -m1 -A15 'ERROR\|runtime error\|deadly signal' "$log" || tail -20 "$log"
  fi
done
exit $status
