#!/usr/bin/env bash
# Installs tune (`cmake --install`) into a temporary prefix, then builds examples/own_model as a
# user would (its own CMake project, find_package(tune)) and runs it: one tiny epoch standalone,
# two DDP ranks, and a tiny `tune run` of its space.json (ASHA).
#   own_model_install_test.sh BUILD_DIR SOURCE_DIR TORCH_CMAKE_DIR
set -euo pipefail
build=$1 source=$2 torch_cmake=$3
prefix=$(mktemp -d /tmp/tune-own-model.XXXXXX)
trap 'rm -rf "$prefix"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

cmake --install "$build" --prefix "$prefix/install" > "$prefix/install.log"
for file in lib/cmake/tune/tuneConfig.cmake lib/cmake/tune/tuneConfigVersion.cmake lib/cmake/tune/tuneTargets.cmake \
            include/tune/trainer/api.h include/tune/tuner/client/session.h lib/libtune_trainer_lib.a lib/libtune_client.a; do
  [[ -f $prefix/install/$file ]] || fail "cmake --install did not install $file"
done

generator=()
command -v ninja > /dev/null && generator=(-G Ninja)
cmake -S "$source/examples/own_model" -B "$prefix/build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$prefix/install;$torch_cmake" -DOWN_MODEL_DATA_DIR="$source/data" > "$prefix/configure.log" 2>&1 ||
  { cat "$prefix/configure.log"; fail "configuring examples/own_model against the installed package"; }
grep -q "^tune_DIR:PATH=$prefix/install/lib/cmake/tune" "$prefix/build/CMakeCache.txt" ||
  fail "find_package(tune) did not find the installed package: $(grep '^tune_DIR' "$prefix/build/CMakeCache.txt")"
cmake --build "$prefix/build" -j 2 > "$prefix/build.log" 2>&1 || { tail -50 "$prefix/build.log"; fail "building own_model"; }
own_model=$prefix/build/own_model

# One tiny epoch standalone, with a checkpoint.
tiny=(max_epochs=1 train_subset=256 val_subset=128 batch_size=64 width=4 threads=1)
"$own_model" "$source/examples/own_model/config.json" "${tiny[@]}" output_dir="$prefix/out" 2> "$prefix/standalone.log" ||
  { cat "$prefix/standalone.log"; fail "own_model standalone"; }
grep -q "epoch 1/1 .* val_acc" "$prefix/standalone.log" || { cat "$prefix/standalone.log"; fail "no progress line"; }
[[ -f $prefix/out/checkpoint_1/state.pt ]] || fail "no checkpoint_1"
# A typo in the config is an error naming the key.
if "$own_model" "$source/examples/own_model/config.json" widht=4 2> "$prefix/typo.log"; then fail "a typo passed"; fi
grep -q "widht: unknown key" "$prefix/typo.log" || { cat "$prefix/typo.log"; fail "the typo's error does not name it"; }

# Two DDP ranks (Gloo): both finish the epoch, rank 0 says it is one of two.
port=$((20000 + $$ % 20000))
for rank in 0 1; do
  WORLD_SIZE=2 RANK=$rank LOCAL_RANK=$rank MASTER_ADDR=127.0.0.1 MASTER_PORT=$port \
    "$own_model" "$source/examples/own_model/config.json" "${tiny[@]}" 2> "$prefix/rank$rank.log" &
done
wait %1 || { cat "$prefix/rank0.log"; fail "DDP rank 0"; }
wait %2 || { cat "$prefix/rank1.log"; fail "DDP rank 1"; }
grep -q "DDP rank 0 of 2" "$prefix/rank0.log" || { cat "$prefix/rank0.log"; fail "rank 0 did not join DDP"; }

# Tuned: the example's space.json, made tiny, under `tune run`.
"$build/bin/tune" run "$source/examples/own_model/space.json" --storage "$prefix/results" --num-samples 2 --cpus 2 \
  "trainer.command=[\"$own_model\"]" trainer.max_epochs=2 scheduler.max_t=2 trainer.train_subset=256 \
  trainer.val_subset=128 trainer.threads=1 > "$prefix/tune.log" 2>&1 || { cat "$prefix/tune.log"; fail "tune run"; }
experiment=$prefix/results/own_resnet
[[ -f $experiment/best_trial.json ]] || { cat "$prefix/tune.log"; fail "no best_trial.json"; }
reports=$(cat "$experiment"/*/result.json | grep -c '"val_acc"')
[[ $reports -ge 3 ]] || { cat "$prefix/tune.log"; fail "expected >= 3 reports with val_acc, got $reports"; }
echo "own_model: installed, built against the package, trained standalone, under DDP and under tune run ($reports reports)"
