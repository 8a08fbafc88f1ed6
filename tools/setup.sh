#!/usr/bin/env bash
# Installs what pnn needs on Debian 12 (only what is missing, so a second run takes a second),
# then configures and builds into build/. Usage: bash tools/setup.sh [--no-build]
set -euo pipefail
cd "$(dirname "$0")/.."

apt_packages=(build-essential cmake pkg-config check libopenblas-openmp-dev libjansson-dev libyaml-dev
              zlib1g-dev libzmq3-dev libopenmpi-dev openmpi-bin dataset-fashion-mnist python3 python3-numpy python3-matplotlib python3-pip)
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

[ "${1:-}" = "--no-build" ] && exit 0
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release > build.log 2>&1 || { cat build.log; exit 1; }
cmake --build build -j "$(nproc)" >> build.log 2>&1 || { tail -50 build.log; exit 1; }
rm -f build.log
echo "setup: built build/pnn"
