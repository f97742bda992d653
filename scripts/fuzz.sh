#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan + UBSan) and runs each for RUNS executions
# (default 10 million), starting from the corpus in tests/fuzz/corpus/<target>/. New inputs that
# add coverage are merged back into that corpus. Crashes are written to build-fuzz/crashes/.
# Usage: bash scripts/fuzz.sh [RUNS] [TARGET...]      (targets: spec protocol journal)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-10000000}
shift || true
targets=("$@")
((${#targets[@]})) || targets=(spec protocol journal)
build=build-fuzz
if [[ ! -f $build/CMakeCache.txt ]]; then
  CC=clang CXX=clang++ cmake -S . -B $build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DTUNE_BUILD_FUZZERS=ON -DTUNE_BUILD_TESTS=OFF -DTUNE_BUILD_BENCH=OFF
fi
mkdir -p $build/crashes
for target in "${targets[@]}"; do
  cmake --build $build --target "tune-fuzz-$target"
  work=$build/corpus-$target
  mkdir -p "$work"
  echo "== fuzzing $target for $runs runs"
  start=$(date +%s)
  "$build/bin/tune-fuzz-$target" -runs="$runs" -max_len=4096 -print_final_stats=1 \
    -artifact_prefix="$build/crashes/$target-" "$work" "tests/fuzz/corpus/$target" 2>&1 |
    grep -E "^(#[0-9]+ +DONE|stat::number_of_executed_units|stat::peak_rss|==[0-9]+==ERROR|SUMMARY)" || true
  echo "   $(( $(date +%s) - start )) s"
  "$build/bin/tune-fuzz-$target" -merge=1 "tests/fuzz/corpus/$target" "$work" >/dev/null 2>&1
done
ls $build/crashes
