#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan + UBSan) and runs each for RUNS executions
# (default 10 million), one at a time under nice, starting from the corpus in
# tests/fuzz/corpus/<target>/. Crashes, leaks, sanitizer reports and hangs (an input running over
# 10 s) are written to build-fuzz/crashes/ and make the script exit 1. Afterwards the corpus is
# minimised (libFuzzer's -merge into a fresh directory: the fewest inputs that keep the coverage of
# the old corpus and of this run's finds, plus every input not named by its hash: seeds and
# regression-* inputs) and replaces tests/fuzz/corpus/<target>/.
# Debian's clang lacks the libFuzzer runtime: `scripts/setup.sh --fuzz` installs it when missing.
# Usage: bash scripts/fuzz.sh [--fast] [RUNS] [TARGET...]   (targets: spec overrides protocol
# journal; journal_tuner, the slow whole-Tuner resume of tests/fuzz/journal_tuner_fuzz.cc, only by
# name). --fast: the throughput build in build-fuzzfast, libFuzzer + UBSan at -O2 without ASan
# (several times the executions per second: for the long runs; the default ASan + UBSan build in
# build-fuzz also finds memory errors that do not crash).
# FUZZ_MAX_SECONDS=N stops each target after N seconds if RUNS are not done by then (the corpus
# is still minimised); FUZZ_NICE (default 10) is the niceness the fuzzers run at; FUZZ_BUILD=0
# runs the targets as built (while another build runs in build-fuzz).
set -euo pipefail
cd "$(dirname "$0")/.."
build=build-fuzz
sanitizers=address,undefined
if [[ ${1:-} == --fast ]]; then
  build=build-fuzzfast
  sanitizers=undefined
  shift
fi
runs=${1:-10000000}
shift || true
targets=("$@")
((${#targets[@]})) || targets=(spec overrides protocol journal)

probe='extern "C" int LLVMFuzzerTestOneInput(const char*, unsigned long) { return 0; }'
if ! command -v clang++ >/dev/null ||
   ! echo "$probe" | clang++ -x c++ -fsanitize=fuzzer,address,undefined - -o /dev/null 2>/dev/null; then
  echo "fuzz: clang's libFuzzer runtime is missing; scripts/setup.sh --fuzz installs it"
  bash scripts/setup.sh --fuzz
fi
if [[ ! -f $build/CMakeCache.txt ]]; then
  launcher=()
  command -v ccache >/dev/null &&
    launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
  CC=clang CXX=clang++ cmake -S . -B $build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    "${launcher[@]}" -DTUNE_BUILD_FUZZERS=ON -DTUNE_FUZZ_SANITIZERS=$sanitizers \
    -DTUNE_BUILD_TESTS=OFF -DTUNE_BUILD_BENCH=OFF
fi
mkdir -p $build/crashes
failed=0
for target in "${targets[@]}"; do
  [[ ${FUZZ_BUILD:-1} == 0 ]] || nice cmake --build $build --target "tune-fuzz-$target" -- -j2
  work=$build/corpus-$target
  mkdir -p "$work" "tests/fuzz/corpus/$target"
  log=$build/fuzz-$target.log
  echo "== fuzzing $target for $runs runs (log: $log)"
  start=$(date +%s)
  rc=0
  limit=()
  [[ -n ${FUZZ_MAX_SECONDS:-} ]] && limit=(-max_total_time="$FUZZ_MAX_SECONDS")
  nice -n "${FUZZ_NICE:-10}" "$build/bin/tune-fuzz-$target" -runs="$runs" "${limit[@]}" \
    -max_len=4096 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$build/crashes/$target-" "$work" \
    "tests/fuzz/corpus/$target" >"$log" 2>&1 || rc=$?
  seconds=$(($(date +%s) - start))
  grep -E "^(#[0-9]+ +DONE|stat::number_of_executed_units|stat::average_exec_per_sec|stat::peak_rss_mb)|ERROR: libFuzzer|==[0-9]+==ERROR|SUMMARY|^artifact_prefix|Test unit written" \
    "$log" || true
  echo "   exit $rc, $seconds s"
  ((rc == 0)) || failed=1
  # Minimise: the old corpus and this run's finds, merged into a fresh directory.
  fresh=$build/corpus-$target.merged
  rm -rf "$fresh"
  mkdir -p "$fresh"
  if nice -n "${FUZZ_NICE:-10}" "$build/bin/tune-fuzz-$target" -merge=1 -max_len=4096 -timeout=10 "$fresh" \
      "tests/fuzz/corpus/$target" "$work" >"$build/merge-$target.log" 2>&1; then
    before=$(ls "tests/fuzz/corpus/$target" | wc -l)
    # Named inputs (seeds, regression-*: not a libFuzzer hash) stay even when others cover them.
    find "tests/fuzz/corpus/$target" -type f -regextype posix-extended ! -regex '.*/[0-9a-f]{40}' \
      -exec cp {} "$fresh" \;
    rm -rf "tests/fuzz/corpus/$target"
    mv "$fresh" "tests/fuzz/corpus/$target"
    echo "   corpus: $before -> $(ls "tests/fuzz/corpus/$target" | wc -l) inputs" \
      "($(du -sh "tests/fuzz/corpus/$target" | cut -f1))"
  else
    echo "   merge failed (see $build/merge-$target.log); corpus left as it was"
  fi
done
ls $build/crashes
exit $failed
