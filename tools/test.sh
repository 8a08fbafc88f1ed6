#!/usr/bin/env bash
# Sets up (tools/setup.sh) and runs the whole test suite through CTest; then builds the suite
# again with AddressSanitizer, LeakSanitizer and UBSan in build-asan/ (without CUDA, which does
# not mix with them) and runs it there, where any sanitizer report fails it (see the sanitizer
# section of CMakeLists.txt); then the CUDA kernels compiled for the CPU (tests/cuda_emu) under
# ASan against the CPU backend (test_backend_ops); then runs every fuzz harness briefly
# (benchmarks/fuzz/run.sh, PNN_FUZZ_SECONDS each, default 15), failing on a crash.
# Usage: bash tools/test.sh [--quick] [CTEST_ARGS...]
# --quick (or PNN_TEST_QUICK=1) stops after the first suite; CI runs everything.
set -euo pipefail
cd "$(dirname "$0")/.."
quick=${PNN_TEST_QUICK:-0}
ctest_args=()
for arg in "$@"; do
  if [ "$arg" = --quick ]; then quick=1; else ctest_args+=("$arg"); fi
done

if [ "$quick" = 1 ]; then
  bash tools/setup.sh
else
  bash tools/setup.sh --fuzz
fi
ctest --test-dir build --output-on-failure -j "$(nproc)" "${ctest_args[@]}"
echo "test.sh: set-up and suite took ${SECONDS} s"

# The Python package as a user gets it: pip install . into a virtual environment (build-venv/;
# its build tree build-wheel/ is kept between runs), then its tests (docs/python.md). The test of
# bit-identical training compares against build/pnn.
SECONDS=0
echo "test.sh: the Python package (pip install . into build-venv/, pytest python/tests)"
[ -x build-venv/bin/python ] || python3 -m venv --system-site-packages build-venv
build-venv/bin/python -m pip install -q . pytest > build-venv/install.log 2>&1 ||
  { tail -40 build-venv/install.log; echo "test.sh: pip install . failed"; exit 1; }
PNN_CLI="$PWD/build/pnn" build-venv/bin/python -m pytest -q -p no:cacheprovider python/tests
echo "test.sh: the Python package took ${SECONDS} s"
[ "$quick" = 1 ] && exit 0

SECONDS=0
echo "test.sh: the suite with ASan + UBSan (build-asan/)"
mkdir -p build-asan
{ cmake -S . -B build-asan -DPNN_SANITIZE=ON -DPNN_CUDA=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo &&
  cmake --build build-asan -j "$(nproc)"; } > build-asan/build.log 2>&1 || { tail -50 build-asan/build.log; exit 1; }
ctest --test-dir build-asan --output-on-failure -j "$(nproc)" "${ctest_args[@]}"
echo "test.sh: sanitizer build and suite took ${SECONDS} s"

SECONDS=0
echo "test.sh: the CUDA kernels run on the CPU under ASan, against the CPU backend (build-emu/, tests/cuda_emu)"
mkdir -p build-emu
{ cmake -S . -B build-emu -DPNN_CUDA=OFF -DPNN_CUDA_EMU=ON -DPNN_MPI=OFF -DPNN_SANITIZE=ON \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo &&
  cmake --build build-emu -j "$(nproc)" --target test_backend_ops; } > build-emu/build.log 2>&1 ||
  { tail -50 build-emu/build.log; exit 1; }
CK_FORK=no ASAN_OPTIONS=halt_on_error=1:detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
  LSAN_OPTIONS=suppressions=$PWD/tests/lsan.supp build-emu/test_backend_ops > build-emu/test.log 2>&1 ||
  { tail -60 build-emu/test.log; echo "test.sh: the CPU tier of the CUDA kernels failed"; exit 1; }
tail -1 build-emu/test.log
echo "test.sh: the CPU tier of the CUDA kernels took ${SECONDS} s"

SECONDS=0
echo "test.sh: fuzzing, ${PNN_FUZZ_SECONDS:-15} s per harness (build-fuzz/)"
bash benchmarks/fuzz/run.sh "${PNN_FUZZ_SECONDS:-15}"
echo "test.sh: fuzzing took ${SECONDS} s"
