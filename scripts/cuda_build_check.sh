#!/usr/bin/env bash
# CI's CUDA build check (no GPU needed): makes .venv-cuda (scripts/setup.sh --cuda: PyTorch's
# CUDA 13 wheel, NCCL, cuDNN), configures build-cuda/ as `scripts/build.sh --cuda` does
# (-DTUNE_REQUIRE_CUDA=ON: configuring fails unless LibTorch has CUDA and nccl.h is found),
# builds only the trainer's targets (tune-trainer, trainer_test and what they need), and checks
# that tune-trainer links libtorch_cuda and contains the ProcessGroupNCCL path. Nothing is run on
# a GPU. Needs the CUDA toolkit's nvcc (/usr/local/cuda, $CUDA_HOME or PATH).
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
bash scripts/setup.sh --cuda
build_dir=${BUILD_DIR:-build-cuda}
BUILD_DIR=$build_dir bash scripts/build.sh --cuda --target tune-trainer --target trainer_test

trainer=$build_dir/bin/tune-trainer
fail() { echo "cuda_build_check: $*" >&2; exit 1; }
libs=$(ldd "$trainer")
nccl=$(nm -C "$trainer" | grep -c 'c10d::ProcessGroupNCCL::' || true)
grep -q 'libtorch_cuda\.so' <<<"$libs" || fail "$trainer does not link libtorch_cuda.so"
((nccl > 0)) || fail "$trainer has no c10d::ProcessGroupNCCL reference (distributed.cc without USE_C10D_NCCL?)"
[[ -x $build_dir/bin/trainer_test ]] || fail "no $build_dir/bin/trainer_test"
echo "cuda_build_check: tune-trainer links $(grep -o 'libtorch_cuda\.so => [^ ]*' <<<"$libs"), references $nccl" \
     "c10d::ProcessGroupNCCL symbols; trainer_test linked; $(($(date +%s) - start)) s"
