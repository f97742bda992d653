#!/usr/bin/env bash
# Installs, builds and runs the example experiment: 40 trials of a synthetic learning curve tuned
# with ASHA, about half a minute on 2 cores. Extra arguments go to `tune run`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
exec "${BUILD_DIR:-build}/bin/tune" run examples/curve.json --name "curve_$(date +%Y%m%d_%H%M%S)" "$@"
