#!/usr/bin/env bash
# scripts/gpu_check.sh's CPU smoke run (--cpu: every step of the GPU check at tiny sizes, on the
# CPU, with this build's binaries), so that the script a GPU session runs first keeps working
# where no GPU is: it must exit 0 and print its thirteen rows, each "ok" (NCCL DDP may say skipped).
#   tests/trainer/gpu_check_smoke.sh BUILD_DIR PYTHON
set -uo pipefail
build_dir=$1 python=$2
out=$(PYTHON=$python bash "$(dirname "$0")/../../scripts/gpu_check.sh" --cpu --no-build \
  --build-dir "$build_dir")
rc=$?
echo "$out"
((rc == 0)) || { echo "gpu_check_smoke: gpu_check.sh exited $rc" >&2; exit 1; }
rows=$(grep -E '^\| (train |GradScaler|tune run|DDP|CNN split)' <<<"$out")
count=$(grep -c . <<<"$rows")
((count == 13)) || { echo "gpu_check_smoke: $count rows, expected 13" >&2; exit 1; }
bad=$(grep -vE '\| (ok|skipped: [^|]*) \|$' <<<"$rows")
[[ -z $bad ]] || { printf 'gpu_check_smoke: rows not ok:\n%s\n' "$bad" >&2; exit 1; }
echo "gpu_check_smoke: 13 rows, all ok"
