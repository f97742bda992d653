#!/usr/bin/env bash
# Installs what the build needs, fetches the datasets, builds everything and runs the whole test suite with CTest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --peers --slurm   # Debian packages; .venv with torch 2.13 (CPU) and the peers (Ray Tune, Optuna, Lightning); Slurm for the test cluster (scripts/slurm_cluster.sh)
bash scripts/get_data.sh    # real MNIST / Fashion-MNIST as IDX (cached after the first run)
bash scripts/build.sh
ctest --test-dir "${BUILD_DIR:-build}" --output-on-failure -j "$(nproc)" --timeout 300
