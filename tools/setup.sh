#!/usr/bin/env bash
# Installs what pnn needs on Debian 12 (only what is missing, so a second run takes a second),
# then configures and builds into build/. Usage: bash tools/setup.sh [--no-build] [--fuzz]
# --fuzz also installs clang and its libFuzzer runtime, for the fuzz harnesses that
# tools/test.sh runs (benchmarks/fuzz/run.sh); the sanitizer build uses GCC's ASan and UBSan,
# which build-essential brings.
set -euo pipefail
cd "$(dirname "$0")/.."
build=1 fuzz=0
for arg in "$@"; do
  case $arg in
    --no-build) build=0 ;;
    --fuzz) fuzz=1 ;;
    *) echo "usage: bash tools/setup.sh [--no-build] [--fuzz]" >&2; exit 64 ;;
  esac
done

apt_packages=(build-essential cmake pkg-config check libopenblas-openmp-dev libjansson-dev libyaml-dev
              zlib1g-dev libfftw3-dev libzmq3-dev libopenmpi-dev openmpi-bin dataset-fashion-mnist python3 python3-numpy python3-matplotlib python3-pip
              python3-venv)
[ "$fuzz" = 1 ] && apt_packages+=(clang libclang-rt-dev)
missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Python's safetensors and NumPy read pnn's checkpoints in a test (PyTorch/NumPy interop). The
# python3 on PATH may not be Debian's (pyenv, venv), so check it and use pip when needed.
# pyzmq runs tools/pnn-device-server.py, the example device server, in its tests.
if ! python3 -c "import numpy, safetensors.numpy, zmq, matplotlib" 2>/dev/null; then
  echo "setup: installing the safetensors, numpy, pyzmq and matplotlib Python packages"
  python3 -m pip install -q safetensors numpy pyzmq matplotlib 2>/dev/null ||
    python3 -m pip install -q --break-system-packages safetensors numpy pyzmq matplotlib
fi

[ "$build" = 1 ] || exit 0
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release > build.log 2>&1 || { cat build.log; exit 1; }
cmake --build build -j "$(nproc)" >> build.log 2>&1 || { tail -50 build.log; exit 1; }
rm -f build.log
echo "setup: built build/pnn"
