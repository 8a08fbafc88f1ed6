#!/usr/bin/env bash
# The GPU check (issue 15, docs/gpu.md). Two ways to run it:
#
#   bash tools/gpu-check.sh --bundle DIR
#       on a CPU machine with the CUDA toolkit (this one): builds for sm_90 (H100/H200) with a
#       shared libpnn and cuDNN, no MPI (so no NCCL: pnn starts NCCL through MPI, which the GPU image
#       lacks), generic x86-64-v3 host code, and puts in DIR
#       everything the GPU machine lacks: bin/ (pnn, the tests, the benchmarks), lib/ (libpnn and
#       the non-CUDA libraries they load: OpenBLAS, jansson, libyaml, ZeroMQ, Check...), data/
#       (Fashion-MNIST's test split, standing in for the training split: the PAT-step benchmark
#       only times steps), reference/ (the PyTorch reference), gpu-run.sh and run.sh; then packs
#       it as DIR.tar.xz (under the 64 MiB a call carries). The CUDA libraries come from the GPU
#       machine's image (its toolkit, its Python packages' cuDNN). There:
#           tar xJf DIR.tar.xz && bash DIR/run.sh "$OUT"
#       Here, `bash DIR/run.sh OUT` runs the CPU tests and reports the GPU parts skipped.
#
#   bash tools/gpu-check.sh [--out DIR]
#       builds here (PNN_CUDA=ON, PNN_CUDNN=ON) and runs tools/gpu-run.sh on the build: for a
#       machine that has both the GPU and every library pnn links.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
out="$root/benchmarks/results/gpu-check-$(date -u +%Y-%m-%d)"
bundle="" build=""
while (($#)); do
  case "$1" in
    --bundle) bundle="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --build) build="$2"; shift 2 ;;
    *) echo "usage: bash tools/gpu-check.sh [--bundle DIR] [--out DIR] [--build DIR]" >&2; exit 64 ;;
  esac
done
commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
git -C "$root" diff --quiet HEAD 2>/dev/null || commit="$commit+uncommitted"

if [ -z "$bundle" ]; then
  build=${build:-$root/build-gpu}
  echo "gpu-check: configure and build in $build"
  mkdir -p "$build" || exit 1
  { cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DPNN_CUDA=ON -DPNN_CUDNN=ON &&
    cmake --build "$build" -j "$(nproc)"; } > "$build/build.log" 2>&1 || { tail -30 "$build/build.log"; exit 1; }
  echo "$commit" > "$build/.commit"
  echo "$root" > "$build/.source_dir"
  exec bash "$root/tools/gpu-run.sh" --bin "$build" --data /usr/share/datasets/fashion-mnist --src "$root" --out "$out"
fi

# ---- the bundle ----
case "$bundle" in /*) ;; *) bundle="$root/$bundle" ;; esac
build=${build:-$root/build-gpu-bundle}
[ "$build" != "$bundle" ] || { echo "gpu-check: the bundle and the build folder must differ (--build DIR)" >&2; exit 64; }
command -v nvcc > /dev/null 2>&1 || [ -x /usr/local/cuda/bin/nvcc ] ||
  { echo "gpu-check: --bundle needs the CUDA toolkit (nvcc) on this machine" >&2; exit 1; }
echo "gpu-check: building the bundle's binaries in $build (sm_90a, shared libpnn; a few minutes)"
mkdir -p "$build" || exit 1
{ cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DPNN_CUDA=ON -DPNN_CUDNN=ON -DPNN_NCCL=OFF -DPNN_MPI=OFF \
    -DPNN_SHARED=ON -DPNN_NATIVE=OFF -DCMAKE_C_FLAGS="-march=x86-64-v3" -DCMAKE_CUDA_ARCHITECTURES=90a-real &&
  cmake --build "$build" -j "$(nproc)"; } > "$build/build.log" 2>&1 ||
  { grep -E "error|Error" "$build/build.log" | head -30; exit 1; }
rm -rf "$bundle" && mkdir -p "$bundle/bin" "$bundle/lib" "$bundle/data" "$bundle/reference" "$bundle/examples" || exit 1
for f in "$build"/pnn "$build"/test_* "$build"/bench_* "$build"/remote_overhead; do
  [ -f "$f" ] && [ -x "$f" ] && cp "$f" "$bundle/bin/"
done
cp -L "$build"/libpnn.so "$bundle/lib/"
strip --strip-unneeded "$bundle"/bin/* "$bundle"/lib/libpnn.so 2> /dev/null
# the non-CUDA libraries they load (not glibc's own, not the CUDA ones the GPU image provides)
ldd "$bundle"/bin/* "$bundle"/lib/libpnn.so 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// {print $3}' | sort -u |
  grep -vE '/(libc|libm|libdl|libpthread|librt|libresolv|ld-linux[^/]*|libcuda|libcudart|libcublas[^/]*|libcufft|libcudnn[^/]*|libnccl|libnvrtc[^/]*|libnvJitLink)\.so' |
  while read -r l; do
    # the toolchain's own libraries go last on the path: the GPU image's newer ones win where it has them
    case $(basename "$l") in
      libstdc++.so*|libgcc_s.so*|libgomp.so*|libquadmath.so*|libgfortran.so*|libz.so*) mkdir -p "$bundle/lib/fallback"
        cp -L "$l" "$bundle/lib/fallback/" ;;
      *) cp -L "$l" "$bundle/lib/" ;;
    esac
  done
fm=/usr/share/datasets/fashion-mnist
if [ -f "$fm/t10k-images-idx3-ubyte.gz" ]; then
  cp "$fm"/t10k-* "$bundle/data/"
  ln -s t10k-images-idx3-ubyte.gz "$bundle/data/train-images-idx3-ubyte.gz"
  ln -s t10k-labels-idx1-ubyte.gz "$bundle/data/train-labels-idx1-ubyte.gz"
fi
cp "$root"/benchmarks/reference/oscillator_torch.py "$bundle/reference/"
cp "$root"/examples/fmnist-oscillator.yaml "$bundle/examples/"
cp "$root"/tools/gpu-run.sh "$bundle/gpu-run.sh"
echo "$commit" > "$bundle/bin/.commit"
echo "$root" > "$bundle/bin/.source_dir"
cat > "$bundle/run.sh" << 'RUN'
#!/usr/bin/env bash
# Runs this bundle (made by tools/gpu-check.sh --bundle) on this machine; OUT (first argument, or
# $OUT) receives gpu-check.json and the logs. Run it from the pnn repository's root (its tests read
# data/ and examples/ there), or set PNN_SRC.
here=$(cd "$(dirname "$0")" && pwd)
exec bash "$here/gpu-run.sh" --bin "$here/bin" --lib "$here/lib" --data "$here/data" --src "${PNN_SRC:-$PWD}" \
  --out "${1:-${OUT:-$PWD/gpu-check-out}}"
RUN
tar -C "$(dirname "$bundle")" -cJf "$bundle.tar.xz" "$(basename "$bundle")" || exit 1
echo "gpu-check: bundle $bundle ($(du -sh "$bundle" | cut -f1)), packed as $bundle.tar.xz ($(du -sh "$bundle.tar.xz" | cut -f1));" \
  "commit $commit. There: tar xJf $(basename "$bundle").tar.xz && bash $(basename "$bundle")/run.sh \"\$OUT\""
