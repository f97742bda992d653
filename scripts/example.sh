#!/usr/bin/env bash
# Installs, fetches the data, builds and runs the main example: a real tuning experiment of the
# built-in LibTorch trainer on real Fashion-MNIST (examples/fashion_mnist.json: 24 MLP configs,
# random search, ASHA), a few minutes on 2 CPU cores. Extra arguments go to `tune run`, e.g.
# `bash scripts/example.sh --gpus 8`. EXAMPLE=examples/curve.json runs the synthetic-curve
# example instead (no LibTorch needed, half a minute).
set -euo pipefail
cd "$(dirname "$0")/.."
example=${EXAMPLE:-examples/fashion_mnist.json}
bash scripts/setup.sh
[[ $example == examples/curve.json ]] || bash scripts/get_data.sh
bash scripts/build.sh
build=${BUILD_DIR:-build}
if [[ $example != examples/curve.json && ! -x $build/bin/tune-trainer ]]; then
  echo "example.sh: $build/bin/tune-trainer was not built (LibTorch missing?); see scripts/setup.sh" >&2
  exit 1
fi
name=$(basename "$example" .json)
exec "$build/bin/tune" run "$example" --name "${name}_$(date +%Y%m%d_%H%M%S)" "$@"
