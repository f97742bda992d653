#!/usr/bin/env bash
# Installs the Debian packages the core build and tests need. Idempotent: packages already
# present are not reinstalled, and `apt-get update` runs only when something is missing.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config python3
  libboost-dev nlohmann-json3-dev libeigen3-dev
  googletest libgtest-dev libgmock-dev libcli11-dev libfmt-dev libbenchmark-dev
  # trainer/: LibTorch (CPU, 1.13), Gloo for CPU DDP, and OpenBLAS so libblas.so.3 is not the
  # slow reference BLAS (see PERFORMANCE-NOTES); nodejs/npm fetch the datasets (get_data.sh).
  libtorch-dev libgloo-dev libopenblas0-openmp nodejs
)
# NodeSource's nodejs bundles npm and conflicts with Debian's npm package: ask for npm only
# when no npm command exists.
command -v npm >/dev/null || packages+=(npm)

missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done

if ((${#missing[@]})); then
  sudo=""
  [[ $(id -u) -ne 0 ]] && sudo="sudo"
  echo "setup: installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "setup: all packages present"
fi
