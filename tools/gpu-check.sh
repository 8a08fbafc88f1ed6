#!/usr/bin/env bash
# The GPU check, in one call of a few minutes (hard limit 9): configures with PNN_CUDA=ON and
# PNN_CUDNN=ON, builds, runs the GPU tests (test_backend_ops, test_conv2d, then the whole CTest
# suite), the nccl comm kind (test_comm_nccl; bench_nccl: the NCCL all-reduce of 2.6 M floats in
# GPU memory against no comm, one rank, and one rank per GPU when there are several), the GPU
# benchmarks (bench_cuda_osc: the large-twin forward+VJP against measured
# ceilings; `pnn bench` of the Fashion-MNIST PAT step on cuda and on cpu) and the PyTorch
# reference on the GPU (eager and torch.compile in one call), and writes JSON under
# benchmarks/results/ (or --out DIR): gpu-check-<date>.json with the machine (nvidia-smi), the
# commit, test outcomes and the figures, beside each benchmark's own JSON. Prints a summary.
# On a machine without a GPU it builds, says so, and exits 0.
# Usage: bash tools/gpu-check.sh [--out DIR] [--build DIR] [--quick]
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
out="$root/benchmarks/results"
build="$root/build-gpu"
quick=0
while (($#)); do
  case "$1" in
    --out) out="$2"; shift 2 ;;
    --build) build="$2"; shift 2 ;;
    --quick) quick=1; shift ;;
    *) echo "usage: bash tools/gpu-check.sh [--out DIR] [--build DIR] [--quick]" >&2; exit 64 ;;
  esac
done
mkdir -p "$out" || exit 1
start=$(date +%s)
budget=540 # seconds: the whole call must stay under 9 minutes
elapsed() { echo $(($(date +%s) - start)); }
left() { echo $((budget - $(elapsed))); }
date_tag=$(date -u +%Y-%m-%d)
log="$out/gpu-check-$date_tag.log"
: > "$log"
say() { echo "gpu-check: $*" | tee -a "$log"; }

commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo "${PNN_COMMIT:-unknown}")
if git -C "$root" diff --quiet HEAD 2>/dev/null; then dirty=false; else dirty=true; fi
gpu=""
if command -v nvidia-smi > /dev/null 2>&1; then
  gpu=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -1)
fi

# ---- configure and build ----
cuda_flags=(-DPNN_CUDA=ON -DPNN_CUDNN=ON)
if ! command -v nvcc > /dev/null 2>&1 && [ ! -x /usr/local/cuda/bin/nvcc ]; then
  say "no CUDA toolkit (nvcc) here: building without it (PNN_CUDA=AUTO)"
  cuda_flags=(-DPNN_CUDA=AUTO)
fi
say "configure ${cuda_flags[*]} into $build"
if ! cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release "${cuda_flags[@]}" >> "$log" 2>&1; then
  tail -30 "$log"; say "FAILED: configure"; exit 1
fi
if ! cmake --build "$build" -j "$(nproc)" >> "$log" 2>&1; then
  grep -E "error|Error" "$log" | head -30; say "FAILED: build"; exit 1
fi
say "built in $(elapsed) s"
if [ -z "$gpu" ]; then
  say "no GPU here (nvidia-smi finds none): built, GPU tests and benchmarks skipped"
  "$build/test_backend_ops" 2>&1 | tail -1 | tee -a "$log"
  exit 0
fi
say "GPU: $gpu; commit $commit$($dirty && echo ' (with uncommitted changes)')"

# ---- tests ----
declare -A status
run_test() { # name, seconds, command...
  local name=$1 limit=$2; shift 2
  local t0; t0=$(date +%s)
  timeout "$limit" "$@" > "$out/$name.log" 2>&1
  local rc=$?
  case $rc in 0) status[$name]=passed ;; 77) status[$name]=skipped ;; 124) status[$name]=timeout ;; *) status[$name]="failed ($rc)" ;; esac
  say "$name: ${status[$name]} in $(($(date +%s) - t0)) s (log $out/$name.log)"
  [ "$rc" -ne 0 ] && [ "$rc" -ne 77 ] && tail -15 "$out/$name.log"
}
run_test test_backend_ops 180 "$build/test_backend_ops"
run_test test_conv2d 60 "$build/test_conv2d"
run_test ctest $(($(left) > 300 ? 200 : $(left) / 2)) ctest --test-dir "$build" -j "$(nproc)" --timeout 150 --output-on-failure
ctest_summary=$(grep -E "tests passed|tests failed" "$out/ctest.log" | tail -1)

# ---- the nccl comm kind (exit 77, "skipped", in a build without NCCL) ----
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl=self,vader \
  OMPI_MCA_btl_vader_single_copy_mechanism=none
nccl_json="$out/nccl_allreduce-$date_tag.json" nccl_multi_json="$out/nccl_allreduce_multi-$date_tag.json"
if (($(left) > 240)); then
  run_test test_comm_nccl 90 env CK_FORK=no "$build/test_comm_nccl"
  run_test bench_nccl 60 "$build/bench_nccl" --json "$nccl_json" --commit "$commit"
  ngpu=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
  ((ngpu > 8)) && ngpu=8
  if ((ngpu >= 2)) && [ "${status[bench_nccl]}" = passed ] && command -v mpirun > /dev/null; then
    run_test bench_nccl_multi 60 mpirun --allow-run-as-root -np "$ngpu" "$build/bench_nccl" --json "$nccl_multi_json" \
      --commit "$commit"
  fi
  grep -h '"bench": "nccl_allreduce"' "$out/bench_nccl.log" "$out/bench_nccl_multi.log" 2>/dev/null | tee -a "$log"
else
  status[test_comm_nccl]="skipped (time)"
fi

# ---- benchmarks ----
bench_json="$out/cuda_osc-$date_tag.json"
bench_args=(--json "$bench_json" --commit "$commit")
((quick)) && bench_args+=(--quick)
if (($(left) > 150)); then
  run_test bench_cuda_osc $(($(left) - 120)) "$build/bench_cuda_osc" "${bench_args[@]}"
  cat "$out/bench_cuda_osc.log"
else
  status[bench_cuda_osc]="skipped (time)"
fi

fmnist=/usr/share/datasets/fashion-mnist
pat_cuda="$out/pat_step_cuda-$date_tag.json" pat_cpu="$out/pat_step_cpu-$date_tag.json"
if [ -f "$fmnist/train-images-idx3-ubyte.gz" ] && (($(left) > 90)); then
  run_test pnn_bench_cuda 90 "$build/pnn" bench examples/fmnist-oscillator.yaml --set backend=cuda --set network.1.twin_noise=nominal --set network.4.twin_noise=nominal --steps 30 --json "$pat_cuda"
  run_test pnn_bench_cpu 60 env OMP_NUM_THREADS="$(nproc)" "$build/pnn" bench examples/fmnist-oscillator.yaml --set backend=cpu --set network.1.twin_noise=nominal --set network.4.twin_noise=nominal --steps 5 --warmup 1 --json "$pat_cpu"
  grep -h "ms_per_step" "$out/pnn_bench_cuda.log" "$out/pnn_bench_cpu.log" | tee -a "$log"
else
  status[pnn_bench_cuda]="skipped (no Fashion-MNIST at $fmnist, or no time)"
fi

torch_json="$out/oscillator_torch_cuda-$date_tag.json"
if python3 -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" > /dev/null 2>&1; then
  if (($(left) > 60)); then
    run_test torch_reference $(($(left) - 20)) python3 benchmarks/reference/oscillator_torch.py --mode bench \
      --device cuda --compile both --steps 20 --json "$torch_json"
    cat "$out/torch_reference.log" | tail -12
  else
    status[torch_reference]="skipped (time)"
  fi
else
  status[torch_reference]="skipped (no PyTorch with CUDA in this python3)"
  say "${status[torch_reference]}"
fi

# ---- the summary JSON ----
summary="$out/gpu-check-$date_tag.json"
statuses=""
for k in "${!status[@]}"; do statuses+="$k=${status[$k]}"$'\n'; done
GPU="$gpu" COMMIT="$commit" DIRTY="$dirty" STATUSES="$statuses" CTEST="$ctest_summary" ELAPSED="$(elapsed)" \
python3 - "$summary" "$bench_json" "$pat_cuda" "$pat_cpu" "$torch_json" "$nccl_json" "$nccl_multi_json" <<'EOF'
import datetime, json, os, sys
summary, bench, pat_cuda, pat_cpu, torch_json, nccl_json, nccl_multi_json = sys.argv[1:8]
def load(p):
    try:
        with open(p) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None
res = {"check": "gpu-check", "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
       "commit": os.environ["COMMIT"], "uncommitted_changes": os.environ["DIRTY"] == "true",
       "machine": {"gpu": os.environ["GPU"], "host_cores": os.cpu_count()},
       "results": dict(l.split("=", 1) for l in os.environ["STATUSES"].splitlines() if "=" in l),
       "ctest": os.environ["CTEST"], "elapsed_s": int(os.environ["ELAPSED"]),
       "cuda_osc": load(bench), "pat_step_cuda": load(pat_cuda), "pat_step_cpu": load(pat_cpu),
       "torch_cuda": load(torch_json), "nccl_allreduce": load(nccl_json),
       "nccl_allreduce_multi": load(nccl_multi_json)}
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
print(json.dumps({"results": res["results"], "ctest": res["ctest"], "pat_step_ratios": ratios}, indent=1))
EOF
say "wrote $summary ($(elapsed) s in all)"
# pnn's own tests and benchmarks decide the exit status; the PyTorch reference only reports
failed=0
for k in test_backend_ops test_conv2d ctest test_comm_nccl bench_nccl bench_nccl_multi bench_cuda_osc pnn_bench_cuda; do
  [[ "${status[$k]:-}" == failed* || "${status[$k]:-}" == timeout ]] && failed=1
done
exit $failed
