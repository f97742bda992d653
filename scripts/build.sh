#!/usr/bin/env bash
# Configures and builds with every core, against the LibTorch inside the project's PyTorch wheel.
#   bash scripts/build.sh            build/ (or $BUILD_DIR), torch from .venv (CPU)
#   bash scripts/build.sh --cuda     build-cuda/ (or $BUILD_DIR), torch from .venv-cuda: the
#                                    trainer with its CUDA, NCCL and cuDNN code paths compiled in
# On a machine with an NVIDIA driver, build/ itself uses .venv-cuda (setup.sh made it there).
#   --target NAME (repeatable) builds only those targets.
# Other arguments go to CMake's first configure. Run scripts/setup.sh (--cuda) first.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.venv
build_dir=${BUILD_DIR:-build}
args=()
targets=()
[[ -e /proc/driver/nvidia/version && -x .venv-cuda/bin/python ]] && venv=.venv-cuda
while (($#)); do
  case $1 in
    --cuda) venv=.venv-cuda; build_dir=${BUILD_DIR:-build-cuda} ;;
    --target) targets+=(--target "$2"); shift ;;
    *) args+=("$1") ;;
  esac
  shift
done
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
if [[ ! -f "$build_dir/CMakeCache.txt" ]]; then
  prefix=()
  if [[ -x $venv/bin/python ]]; then
    prefix=(-DCMAKE_PREFIX_PATH="$("$venv/bin/python" -c 'import torch; print(torch.utils.cmake_prefix_path)')"
            -DPython3_EXECUTABLE="$PWD/$venv/bin/python")
  else
    echo "build.sh: no $venv (bash scripts/setup.sh makes it); building without the trainer" >&2
  fi
  [[ $venv == .venv-cuda ]] && prefix+=(-DTUNE_REQUIRE_CUDA=ON)
  cmake -S . -B "$build_dir" "${generator[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo "${prefix[@]}" "${args[@]}"
fi
cmake --build "$build_dir" -j "$(nproc)" "${targets[@]}"
