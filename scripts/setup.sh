#!/usr/bin/env bash
# Installs what the project needs; idempotent (nothing is reinstalled when present).
#   bash scripts/setup.sh            Debian packages for the core + .venv with PyTorch's CPU wheel
#   bash scripts/setup.sh --peers    also Ray Tune, Optuna and Lightning in .venv (tests, bench/peers)
#   bash scripts/setup.sh --cuda     also .venv-cuda with PyTorch's CUDA 13 wheel, NCCL and cuDNN
#   bash scripts/setup.sh --slurm    also Slurm (slurmctld, slurmd, srun) and munge for the test
#                                    cluster of scripts/slurm_cluster.sh (tests/integration/slurm_*)
#   bash scripts/setup.sh --fuzz     also clang's libFuzzer and sanitizer runtimes (scripts/fuzz.sh)
# --cuda is implied on a machine with an NVIDIA driver. The trainer is built against the LibTorch
# inside the wheel (CMake finds it through torch.utils.cmake_prefix_path; see scripts/build.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
peers=0 cuda=0 fuzz=0 slurm=0
for arg in "$@"; do
  case $arg in
    --peers) peers=1 ;;
    --cuda) cuda=1 ;;
    --fuzz) fuzz=1 ;;
    --slurm) slurm=1 ;;
    *) echo "setup.sh: unknown argument $arg (--peers, --cuda, --fuzz, --slurm)" >&2; exit 2 ;;
  esac
done
[[ -e /proc/driver/nvidia/version ]] && cuda=1

packages=(
  build-essential cmake ninja-build pkg-config python3 python3-venv
  libboost-dev nlohmann-json3-dev libeigen3-dev
  # search/gp*.cc: LBFGS++ (header-only L-BFGS-B on Eigen) fits the GP and maximises its acquisition.
  liblbfgspp-dev
  googletest libgtest-dev libgmock-dev libcli11-dev libfmt-dev libbenchmark-dev
  # reporters/tensorboard.cc: TensorBoard's event and hparams messages (reporters/proto/).
  protobuf-compiler libprotobuf-dev
  # trainer/: Gloo's headers (PyTorch's wheels ship c10d's ProcessGroupGloo.hpp, which includes
  # <gloo/...>, but not gloo's own headers; the library itself is inside libtorch_cpu.so).
  # nodejs/npm fetch the datasets (get_data.sh).
  libgloo-dev nodejs
  # trainer/data_cache.cc: XXH3 checksums of the data cache and its source files (header-only use).
  libxxhash-dev
  # reporters/web (report.html, the live dashboard): Debian's Chromium runs the browser test
  # (tests/integration/report_browser_test.mjs) and bench/report_paint.mjs; no browser downloads.
  chromium
  # tests/tuner/completion_shells.sh: `tune completion` is tested in each shell it supports.
  zsh fish
)
# NodeSource's nodejs bundles npm and conflicts with Debian's npm package: ask for npm only
# when no npm command exists.
command -v npm >/dev/null || packages+=(npm)
# The Slurm tests' cluster: Debian's daemons (their packaged services are not used; the script
# starts its own with a generated slurm.conf) and iproute2 for the nodes' network namespaces;
# slurmdbd and MariaDB for its accounting (sacct), on a database in the cluster's own directory.
((slurm)) && packages+=(slurmctld slurmd slurm-client munge iproute2 slurmdbd mariadb-server)
# tests/fuzz/: Debian's clang has no libFuzzer/ASan runtime; libclang-rt-14-dev provides it.
((fuzz)) && packages+=(clang libclang-rt-14-dev)

missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  sudo=""
  [[ $(id -u) -ne 0 ]] && sudo="sudo"
  echo "setup: installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    -o DPkg::Lock::Timeout=600 "${missing[@]}"
else
  echo "setup: all Debian packages present"
fi

# make_venv DIR REQUIREMENTS...: a virtual environment with exactly these pins (pip skips what is
# already installed at the pinned version).
make_venv() {
  local dir=$1
  shift
  [[ -x $dir/bin/python ]] || python3 -m venv "$dir"
  local reqs=()
  for r in "$@"; do reqs+=(-r "$r"); done
  echo "setup: $dir <- $*"
  # No pip cache: the wheels are local files, and a cached copy of the CUDA wheel's 5.5 GB would
  # only take disk. pip's own status decides (the grep only drops a harmless warning).
  local rc=0
  "$dir/bin/python" -m pip install -q --no-cache-dir --disable-pip-version-check "${reqs[@]}" \
    > >(grep -v "is ignored: it is neither a file nor a directory") 2>&1 || rc=$?
  if ((rc)); then
    echo "setup: pip install into $dir failed (exit $rc); free disk at $dir: $(df -h --output=avail "$dir" | tail -1 | tr -d ' ')" >&2
    exit 1
  fi
  "$dir/bin/python" -c 'import torch; print("setup:", torch.__version__, "at", torch.utils.cmake_prefix_path)'
}
# The charting library embedded into report.html and the dashboard (ECharts) and the browser
# driver of their tests (playwright-core): reporters/web/package.json, pinned with checksums in
# package-lock.json; reporters/CMakeLists.txt embeds ECharts.
if [[ ! -f reporters/web/node_modules/echarts/dist/echarts.min.js ||
      ! -d reporters/web/node_modules/playwright-core ]]; then
  echo "setup: npm ci in reporters/web"
  npm ci --prefix reporters/web --no-audit --no-fund --loglevel=error
fi

reqs=(scripts/requirements.txt)
((peers)) && reqs+=(bench/peers/requirements.txt)
make_venv .venv "${reqs[@]}"
# The Python client package (python/, docs/python.md), editable: trials run with .venv's python
# import the working tree's tune_client. No build isolation: .venv's own setuptools builds it.
if ! .venv/bin/python -c 'import tune_client, sys; sys.exit(not tune_client.__file__.startswith(sys.argv[1]))' \
    "$PWD/python/" 2>/dev/null; then
  echo "setup: pip install -e ./python into .venv"
  .venv/bin/python -m pip install -q --no-cache-dir --no-build-isolation --disable-pip-version-check -e ./python
fi
if ((cuda)); then
  # PyTorch's CUDA wheel with NCCL and cuDNN takes about 7 GB installed: say so before pip fills
  # the disk halfway (CI once ran out of space here and reported only a broken import).
  need_kb=$((7 * 1024 * 1024))
  if [[ ! -x .venv-cuda/bin/python ]]; then
    avail_kb=$(df -k --output=avail . | tail -1 | tr -d ' ')
    if ((avail_kb < need_kb)); then
      echo "setup: .venv-cuda needs about 7 GB free in $PWD; only $((avail_kb / 1024)) MB are" >&2
      exit 1
    fi
  fi
  make_venv .venv-cuda scripts/requirements-cuda.txt
fi
exit 0
