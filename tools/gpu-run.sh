#!/usr/bin/env bash
# The run half of the GPU check (issue 15, docs/gpu.md): runs built pnn binaries on this machine's
# GPU and writes what it saw under OUT. Used two ways:
#   bash tools/gpu-check.sh            builds here, then runs this on build-gpu/
#   bash BUNDLE/run.sh [OUT]           a bundle made by `bash tools/gpu-check.sh --bundle BUNDLE`
#                                      (this file, copied): bin/, lib/ and data/ beside it
# Order (at most 8 minutes; each step has its own limit): the machine (nvidia-smi, driver and
# runtime, libraries not found), every test binary (on a machine with a GPU, a GPU test that says
# "no GPU", exit 77, counts as a failure), test_backend_ops under compute-sanitizer memcheck and
# racecheck (where the runtime allows it; "not supported" is reported, not failed), the
# benchmarks (bench_cuda_osc; the Fashion-MNIST PAT step on cuda and cpu; bench_nccl where it was
# built; the PyTorch reference on the GPU, eager and torch.compile), then OUT/gpu-check.json (machine, commit,
# outcomes, figures) and OUT/gpu-check.log. Without a GPU the GPU parts are reported skipped and
# the CPU tests still run. Exit status: 1 when a pnn test or benchmark failed.
# Usage: bash gpu-run.sh --bin DIR [--lib DIR] [--data DIR] [--out DIR] [--src DIR] [--quick]
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin="" libdir="" data="" out="${OUT:-$PWD/gpu-check-out}" src="" quick=0
while (($#)); do
  case "$1" in
    --bin) bin="$2"; shift 2 ;;
    --lib) libdir="$2"; shift 2 ;;
    --data) data="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --src) src="$2"; shift 2 ;;
    --quick) quick=1; shift ;;
    *) echo "usage: bash gpu-run.sh --bin DIR [--lib DIR] [--data DIR] [--out DIR] [--src DIR] [--quick]" >&2
       exit 64 ;;
  esac
done
[ -n "$bin" ] && [ -x "$bin/pnn" ] || { echo "gpu-run: no pnn in --bin '$bin'" >&2; exit 64; }
mkdir -p "$out" || exit 1
start=$(date +%s)
budget=${PNN_GPU_BUDGET_S:-480}
elapsed() { echo $(($(date +%s) - start)); }
left() { echo $((budget - $(elapsed))); }
log="$out/gpu-check.log"
: > "$log"
say() { echo "gpu-run: $*" | tee -a "$log"; }

# ---- libraries: the bundle's own, then CUDA's from the toolkit or the Python packages ----
cuda_dirs=""
for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib; do [ -d "$d" ] && cuda_dirs+="$d:"; done
pyl=$(python3 - 2>/dev/null <<'EOF'
import glob, os, site
roots = site.getsitepackages() + [site.getusersitepackages()]
dirs = []
for r in roots:
    for pat in ("nvidia/*/lib", "nvidia/cu13/lib", "nvidia/*/lib64"):
        dirs += [d for d in glob.glob(os.path.join(r, pat)) if os.path.isdir(d)]
print(":".join(dict.fromkeys(dirs)))
EOF
)
orig_ld=${LD_LIBRARY_PATH:-}  # for python3 (PyTorch): never the bundle's libraries
fallback=""
[ -n "$libdir" ] && [ -d "$libdir/fallback" ] && fallback=":$libdir/fallback"
export LD_LIBRARY_PATH="${libdir:+$libdir:}${cuda_dirs}${pyl:+$pyl:}${orig_ld}${fallback}"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(nproc)}

# ---- the machine ----
gpu=""
command -v nvidia-smi > /dev/null 2>&1 &&
  gpu=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -1)
say "GPU: ${gpu:-none (nvidia-smi finds none)}; host $(nproc) cores"
command -v nvidia-smi > /dev/null 2>&1 && nvidia-smi >> "$log" 2>&1
missing=$(for f in "$bin"/*; do [ -x "$f" ] && ldd "$f" 2>/dev/null | grep "not found"; done | sort -u)
if [ -n "$missing" ]; then
  say "libraries not found (LD_LIBRARY_PATH=$LD_LIBRARY_PATH):"
  echo "$missing" | tee -a "$log"
fi
# the tests find the source tree (data/, examples/, tools/) where it was when they were built
if [ -n "$src" ] && [ -f "$bin/.source_dir" ]; then
  built_at=$(cat "$bin/.source_dir")
  if [ ! -e "$built_at" ] && [ "$built_at" != "$src" ]; then
    mkdir -p "$(dirname "$built_at")" 2>/dev/null && ln -s "$src" "$built_at" 2>/dev/null &&
      say "linked $built_at -> $src (the tests' source tree)"
  fi
fi

declare -A status
run_test() { # name, seconds, command...
  local name=$1 limit=$2; shift 2
  local t0; t0=$(date +%s)
  timeout "$limit" "$@" > "$out/$name.log" 2>&1
  local rc=$?
  case $rc in 0) status[$name]=passed ;; 77) status[$name]=skipped ;; 124) status[$name]=timeout ;; *) status[$name]="failed ($rc)" ;; esac
  say "$name: ${status[$name]} in $(($(date +%s) - t0)) s"
  [ "$rc" -ne 0 ] && [ "$rc" -ne 77 ] && tail -15 "$out/$name.log" | tee -a "$log"
  return 0
}

# ---- tests: the GPU ones first ----
gpu_tests=(test_backend_ops test_conv2d test_base test_train_dp test_comm_nccl)
for t in "${gpu_tests[@]}"; do
  [ -x "$bin/$t" ] && run_test "$t" 180 env CK_FORK=no "$bin/$t"
  # on a GPU machine, "no GPU" is a failure of the check, not a skip
  if [ -n "$gpu" ] && [ "${status[$t]:-}" = skipped ]; then status[$t]="failed (skipped: saw no GPU)"; fi
done
for f in "$bin"/test_*; do
  t=$(basename "$f")
  [[ " ${gpu_tests[*]} " == *" $t "* ]] && continue
  (($(left) > 200)) || { status[$t]="skipped (time)"; continue; }
  run_test "$t" 120 "$f"
done

# ---- compute-sanitizer on the kernels ----
if [ -n "$gpu" ] && command -v compute-sanitizer > /dev/null 2>&1 && (($(left) > 200)); then
  for tool in memcheck racecheck; do
    run_test "sanitizer_$tool" 150 compute-sanitizer --tool "$tool" --error-exitcode 9 env CK_FORK=no \
      "$bin/test_backend_ops"
    if grep -qiE "not supported|error 999|LibraryNotLoaded" "$out/sanitizer_$tool.log"; then
      status[sanitizer_$tool]="unavailable on this runtime"
    fi
  done
elif [ -n "$gpu" ]; then
  status[sanitizer_memcheck]="skipped (no compute-sanitizer, or no time)"
else
  status[sanitizer_memcheck]="skipped (no GPU)"
fi

# ---- benchmarks ----
commit=$(cat "$bin/.commit" 2>/dev/null || echo unknown)
bench_json="$out/cuda_osc.json" pat_cuda="$out/pat_step_cuda.json" pat_cpu="$out/pat_step_cpu.json"
torch_json="$out/oscillator_torch_cuda.json" nccl_json="$out/nccl_allreduce.json"
if [ -n "$gpu" ]; then
  bench_args=(--json "$bench_json" --commit "$commit")
  ((quick)) && bench_args+=(--quick)
  (($(left) > 150)) && run_test bench_cuda_osc $(($(left) > 240 ? 120 : 60)) "$bin/bench_cuda_osc" "${bench_args[@]}"
  [ -x "$bin/bench_nccl" ] && (($(left) > 120)) && run_test bench_nccl 60 "$bin/bench_nccl" --json "$nccl_json" \
    --commit "$commit"
  cfg=""
  for c in "$src/examples/fmnist-oscillator.yaml" "$here/examples/fmnist-oscillator.yaml"; do [ -f "$c" ] && cfg=$c && break; done
  if [ -n "$cfg" ] && [ -n "$data" ] && [ -f "$data/train-images-idx3-ubyte.gz" ] && (($(left) > 100)); then
    sets=(--set "data.path=$data" --set network.1.twin_noise=nominal --set network.4.twin_noise=nominal)
    run_test pnn_bench_cuda 90 "$bin/pnn" bench "$cfg" --set backend=cuda "${sets[@]}" --steps 30 --json "$pat_cuda"
    run_test pnn_bench_cpu 60 "$bin/pnn" bench "$cfg" --set backend=cpu "${sets[@]}" --steps 3 --warmup 1 \
      --json "$pat_cpu"
  else
    status[pnn_bench_cuda]="skipped (no config, data or time)"
  fi
  ref=""
  for r in "$src/benchmarks/reference/oscillator_torch.py" "$here/reference/oscillator_torch.py"; do [ -f "$r" ] && ref=$r && break; done
  if [ -n "$ref" ] && LD_LIBRARY_PATH="$orig_ld" python3 -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" > /dev/null 2>&1 &&
     (($(left) > 60)); then
    run_test torch_reference $(($(left) - 20)) env LD_LIBRARY_PATH="$orig_ld" python3 "$ref" --mode bench \
      --device cuda --compile both --steps 20 --json "$torch_json"
  else
    status[torch_reference]="skipped (no PyTorch with CUDA, or no time)"
  fi
else
  status[benchmarks]="skipped (no GPU)"
fi

# ---- the summary ----
statuses=""
for k in "${!status[@]}"; do statuses+="$k=${status[$k]}"$'\n'; done
GPU="$gpu" COMMIT="$commit" STATUSES="$statuses" ELAPSED="$(elapsed)" MISSING="$missing" LD_LIBRARY_PATH="$orig_ld" \
python3 - "$out/gpu-check.json" "$bench_json" "$pat_cuda" "$pat_cpu" "$torch_json" "$nccl_json" <<'EOF'
import datetime, json, os, sys
summary, bench, pat_cuda, pat_cpu, torch_json, nccl_json = sys.argv[1:7]
def load(p):
    try:
        with open(p) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None
res = {"check": "gpu-run", "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
       "commit": os.environ["COMMIT"], "machine": {"gpu": os.environ["GPU"], "host_cores": os.cpu_count()},
       "libraries_not_found": [l.strip() for l in os.environ["MISSING"].splitlines() if l.strip()],
       "results": dict(sorted(l.split("=", 1) for l in os.environ["STATUSES"].splitlines() if "=" in l)),
       "elapsed_s": int(os.environ["ELAPSED"]), "cuda_osc": load(bench), "pat_step_cuda": load(pat_cuda),
       "pat_step_cpu": load(pat_cpu), "torch_cuda": load(torch_json), "nccl_allreduce": load(nccl_json)}
pc, pg, t = res["pat_step_cpu"], res["pat_step_cuda"], res["torch_cuda"]
ratios = {}
if pc and pg:
    ratios["pnn_cpu_over_pnn_cuda"] = pc["ms_median"] / pg["ms_median"]
if t and pg:
    for mode in ("eager", "compiled"):
        if mode in t:
            ratios[f"torch_{mode}_over_pnn_cuda"] = t[mode]["pat_ms"]["median"] / pg["ms_median"]
res["pat_step_ratios"] = ratios
with open(summary, "w") as f:
    json.dump(res, f, indent=1)
print(json.dumps({"results": res["results"], "pat_step_ratios": ratios}, indent=1))
EOF
say "wrote $out/gpu-check.json ($(elapsed) s in all)"
failed=0
for k in "${!status[@]}"; do
  [[ "$k" == torch_reference ]] && continue  # the PyTorch reference only reports
  [[ "${status[$k]}" == failed* || "${status[$k]}" == timeout ]] && failed=1
done
exit $failed
