#!/usr/bin/env bash
# The trainer's GPU checks in one run, for a machine with NVIDIA GPUs and PyTorch (CUDA) as
# python3, no network and maybe none of Debian's -dev packages (run scripts/gpu_deps.sh here
# first and carry .deps/). Builds `tune` and `tune-trainer` against that python3's LibTorch, then
# prints ONE Markdown table (for bench/README.md):
#   - training throughput (samples/s, second epoch) of the MLP and the CNN on Fashion-MNIST in
#     precision 32, bf16-mixed and 16-mixed, and the data phase's share of a training step
#     (SimpleProfiler, in a second run: it synchronises the device per phase; target < 5 %);
#   - the GradScaler on real fp16: loss scale per epoch and skipped steps over ~400 steps that
#     start from a scale that overflows (2^24) and grow every 50 clean steps;
#   - `tune run --gpus 1`, 8 short trials with resources_per_trial.gpu 0.25 (4 on the GPU at
#     once) against gpu 1 (one at a time), as trials per minute;
#   - NCCL DDP (resources_per_trial {"gpu": 2}), plain and with zero_stage 1 and 2, when 2 or more GPUs
#     are visible;
#   - model parallelism: the CNN split over 2 GPUs in 4 micro-batches (model_parallel 2,
#     pipeline_chunks 4, resources_per_trial {"gpu": 2, "workers": 1}), when 2 or more are visible.
# Every step has a timeout, so the whole run ends within about 8 minutes even when one hangs.
#
#   bash scripts/gpu_check.sh                 on the GPU machine (builds into build-gpu/)
#   bash scripts/gpu_check.sh --cpu           the same steps on the CPU with tiny sizes (a smoke
#                                             test of this script; --dry-run is the same)
#   --build-dir DIR   build there instead (an existing build with bin/tune and bin/tune-trainer
#                     is only brought up to date); --no-build uses DIR's binaries as they are
# Data: data/fashion (scripts/get_data.sh), else .deps/fashion.tar.gz (gpu_deps.sh), else
# synthetic Fashion-MNIST-shaped images (random; the table says so).
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD
cpu=0 build=1 build_dir=build-gpu
while (($#)); do
  case $1 in
    --cpu | --dry-run) cpu=1 ;;
    --no-build) build=0 ;;
    --build-dir) build_dir=$2; shift ;;
    *) echo "gpu_check.sh: unknown argument $1 (--cpu, --build-dir DIR, --no-build)" >&2; exit 2 ;;
  esac
  shift
done
python=${PYTHON:-python3}
start=$(date +%s)
work=$(mktemp -d /tmp/gpu_check.XXXXXX)
log() { echo "gpu_check [$(($(date +%s) - start)) s]: $*" >&2; }
rows=()  # Markdown rows of the final table
row() { rows+=("| $1 | $2 | $3 | $4 |"); }

# ---- sizes: the GPU run and the CPU smoke run differ only here.
if ((cpu)); then
  device=cpu train_subset=2048 val_subset=1000 batch=128 epochs=2 nice=(nice -n 10) jobs=2
  scaler_subset=1280 scaler_epochs=10 pack_trials=4 pack_subset=1024
  res_quarter='{"cpu": 0.25}' res_one='{"cpu": 1}' slots=(--cpus 1)
else
  device=cuda train_subset=0 val_subset=0 batch=256 epochs=2 nice=() jobs=$(nproc)
  scaler_subset=5120 scaler_epochs=10 pack_trials=8 pack_subset=20000
  res_quarter='{"gpu": 0.25, "cpu": 1}' res_one='{"gpu": 1, "cpu": 1}' slots=(--gpus 1)
fi

# ---- the machine
torch_prefix=$(timeout 60 "$python" -c 'import torch; print(torch.utils.cmake_prefix_path)') || {
  echo "gpu_check.sh: $python has no torch" >&2; exit 1; }
torch_info=$(timeout 60 "$python" -c 'import torch
n = torch.cuda.device_count() if torch.cuda.is_available() else 0
print(n, torch.__version__, torch.version.cuda, torch.cuda.get_device_name(0) if n else "no GPU")')
read -r ngpu torch_version cuda_version gpu_name <<<"$torch_info"
((cpu)) && ngpu=0
log "torch $torch_version (CUDA $cuda_version), $ngpu GPU(s): $gpu_name"
if ((!cpu && ngpu == 0)); then
  echo "gpu_check.sh: no GPU visible to torch; use --cpu for the smoke run" >&2
  exit 1
fi

# ---- data
data_dir=$root/data source_note="Fashion-MNIST"
if [[ ! -f $data_dir/fashion/train-images-idx3-ubyte ]]; then
  data_dir=$work/data
  mkdir -p "$data_dir"
  if [[ -f .deps/fashion.tar.gz ]]; then
    tar -C "$data_dir" -xzf .deps/fashion.tar.gz
  else
    source_note="synthetic images (no data/fashion)"
    timeout 120 "$python" - "$data_dir/fashion" <<'EOF'
# Fashion-MNIST-shaped IDX files: 60,000 / 10,000 random 28x28 images, labels 0..9, with a
# class-dependent mean so that training has something to learn.
import os, struct, sys
import numpy as np
out = sys.argv[1]
os.makedirs(out, exist_ok=True)
rng = np.random.default_rng(0)
for prefix, n in (("train", 60000), ("t10k", 10000)):
    labels = rng.integers(0, 10, n, dtype=np.uint8)
    images = rng.integers(0, 128, (n, 28, 28), dtype=np.uint8)
    images[np.arange(n), labels * 2 + 4, :] = 255
    with open(f"{out}/{prefix}-images-idx3-ubyte", "wb") as f:
        f.write(struct.pack(">IIII", 2051, n, 28, 28) + images.tobytes())
    with open(f"{out}/{prefix}-labels-idx1-ubyte", "wb") as f:
        f.write(struct.pack(">II", 2049, n) + labels.tobytes())
EOF
  fi
fi
log "data: $source_note in $data_dir"

# ---- build: tune and tune-trainer only, against this python3's LibTorch
bin=$root/$build_dir/bin
[[ $build_dir == /* ]] && bin=$build_dir/bin
if ((build)); then
  deps=()
  if [[ -d .deps/cmake ]]; then
    # Header-only dependencies carried from a Debian machine (scripts/gpu_deps.sh).
    for pkg in Boost nlohmann_json fmt Eigen3 CLI11; do deps+=(-D${pkg}_DIR="$root/.deps/cmake/$pkg"); done
    deps+=(-DTUNE_GLOO_INCLUDE="$root/.deps/include")
  fi
  generator=()
  command -v ninja >/dev/null && generator=(-G Ninja)
  log "configuring $build_dir"
  if ! timeout 120 cmake -S . -B "$build_dir" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release \
      -DCMAKE_PREFIX_PATH="$torch_prefix" -DTUNE_BUILD_TESTS=OFF -DTUNE_BUILD_BENCH=OFF \
      "${deps[@]}" >"$work/configure.log" 2>&1; then
    tail -30 "$work/configure.log" >&2
    echo "gpu_check.sh: configure failed" >&2
    exit 1
  fi
  grep -E "CUDA detected|Found CUDNN|DDP backends|tune-trainer:" "$work/configure.log" >&2
  log "building tune, tune-trainer (-j$jobs)"
  if ! timeout 330 "${nice[@]}" cmake --build "$build_dir" -j "$jobs" --target tune tune-trainer \
      >"$work/build.log" 2>&1; then
    tail -40 "$work/build.log" >&2
    echo "gpu_check.sh: build failed or timed out" >&2
    exit 1
  fi
fi
[[ -x $bin/tune && -x $bin/tune-trainer ]] || { echo "gpu_check.sh: no $bin/tune, tune-trainer" >&2; exit 1; }
log "built"

# ---- the base trainer config (standalone tune-trainer runs)
cat >"$work/base.json" <<EOF
{"dataset": "fashion_mnist", "data_dir": "$data_dir", "device": "$device", "batch_size": $batch,
 "max_epochs": $epochs, "val_every_n_epochs": $epochs, "train_subset": $train_subset,
 "val_subset": $val_subset, "checkpoint": false, "threads": 1,
 "optimizer": {"type": "adamw", "lr": 0.001}}
EOF

# trainer_run NAME TIMEOUT key=value...: tune-trainer's stderr in $work/NAME.log; status 124 on timeout.
trainer_run() {
  local name=$1 limit=$2
  shift 2
  timeout -k 5 "$limit" "$bin/tune-trainer" "$work/base.json" "$@" >"$work/$name.log" 2>&1
}
# The last epoch's samples/s of a progress line, and the data phase's share of the training
# phases (data, forward, backward, optimizer, allreduce_wait) in a SimpleProfiler report.
last_samples() { sed -n 's/^epoch .* \([0-9][0-9]*\) samples\/s .*/\1/p' "$1" | tail -1; }
data_share() {
  awk -F'|' '$1 ~ /^(data|forward|backward|optimizer|allreduce_wait) *$/ {
               gsub(/ /, "", $1); t[$1] = $4; all += $4 }
             END { if (all > 0) printf "%.1f %%", 100 * t["data"] / all }' "$1"
}

# ---- 1. throughput and data share
log "throughput: MLP and CNN x 32 / bf16-mixed / 16-mixed"
for model in mlp cnn; do
  for precision in 32 bf16-mixed 16-mixed; do
    name=${model}_$precision
    status=ok throughput=- share=-
    trainer_run "$name" 90 model.type=$model precision=\"$precision\"
    rc=$?
    if ((rc == 0)); then
      throughput=$(last_samples "$work/$name.log")
      trainer_run "${name}_profiled" 90 model.type=$model precision=\"$precision\" profiler=simple
      rc=$?
      share=$(data_share "$work/${name}_profiled.log")
    fi
    if ((rc == 124)); then status="timed out"; elif ((rc != 0)); then status="failed: $(tail -1 "$work/$name.log" | cut -c1-80)"; fi
    row "train ${model^^} $precision" "batch $batch, $device, $source_note" \
        "${throughput:--} samples/s; data ${share:--} of step" "$status"
    log "$name: $throughput samples/s, data $share ($status)"
  done
done

# tune_run NAME TIMEOUT SPEC_JSON [tune args...]: experiment NAME under $work/results.
tune_run() {
  local name=$1 limit=$2 spec=$3
  shift 3
  echo "$spec" >"$work/$name.json"
  timeout -k 10 "$limit" "$bin/tune" run "$work/$name.json" --name "$name" --storage "$work/results" "$@" \
    >"$work/$name.out" 2>&1 </dev/null
}
run_status() {  # run_status RC [NAME]: a tune_run's status for the table (NAME: its last line too)
  if (($1 == 0)); then echo ok
  elif (($1 == 124)); then echo "timed out"
  else echo "tune exit $1${2:+: $(tail -1 "$work/$2.out" | cut -c1-80)}"
  fi
}
trial_config() {  # a trainer section: base config plus the given JSON fields
  "$python" -c 'import json, sys; c = json.load(open(sys.argv[1])); c.update(json.loads(sys.argv[2])); print(json.dumps(c))' \
    "$work/base.json" "$1"
}

# ---- 2. GradScaler on fp16: scale per epoch, skipped steps
log "GradScaler: 16-mixed from init_scale 2^24, growth_interval 50"
trainer=$(trial_config "{\"precision\": \"16-mixed\", \"max_epochs\": $scaler_epochs, \"val_every_n_epochs\": 1,
  \"train_subset\": $scaler_subset, \"batch_size\": 128, \"val_subset\": 1000,
  \"scaler\": {\"init_scale\": 16777216, \"growth_interval\": 50}}")
tune_run scaler 120 "{\"name\": \"scaler\", \"metric\": \"val_acc\", \"mode\": \"max\", \"num_samples\": 1,
  \"resources_per_trial\": $res_one, \"trainer\": $trainer, \"space\": {}}" "${slots[@]}"
rc=$?
history=$("$python" - "$work/results/scaler" <<'EOF'
import glob, json, sys
lines = [json.loads(l) for f in glob.glob(sys.argv[1] + "/*/result.json") for l in open(f)]
if lines:
    scales = " ".join(f"{l['loss_scale']:g}" for l in lines)
    last = lines[-1]
    print(f"scale per epoch: {scales}; skipped {last['skipped_steps']} of {last['step']} steps")
EOF
)
status=$(run_status "$rc")
row "GradScaler, 16-mixed MLP" "init_scale 2^24, growth_interval 50, $((scaler_subset / 128 * scaler_epochs)) steps" \
    "${history:-no result.json}" "$status"
log "scaler: $history ($status)"

# ---- 3. trials packed on one GPU vs one at a time
pack() {  # pack NAME RESOURCES -> trials/min
  local name=$1 resources=$2 t0 t1
  local trainer
  trainer=$(trial_config "{\"model\": {\"type\": \"mlp\"}, \"train_subset\": $pack_subset, \"val_subset\": 2000}")
  t0=$(date +%s.%N)
  tune_run "$name" 150 "{\"name\": \"$name\", \"metric\": \"val_acc\", \"mode\": \"max\", \"num_samples\": $pack_trials,
    \"max_concurrent\": 8, \"resources_per_trial\": $resources, \"search\": {\"algorithm\": \"random\", \"seed\": 0},
    \"scheduler\": {\"type\": \"fifo\"}, \"trainer\": $trainer, \"space\": {\"lr\": {\"loguniform\": [0.0001, 0.01]}}}" \
    "${slots[@]}"
  local rc=$?
  t1=$(date +%s.%N)
  local per_min
  per_min=$("$python" -c "print(f'{$pack_trials * 60 / ($t1 - $t0):.1f}')")
  local status
  status=$(run_status "$rc" "$name")
  row "tune run ${slots[*]}" "$pack_trials trials, resources $resources" \
      "$per_min trials/min ($(printf %.1f "$("$python" -c "print($t1 - $t0)")") s)" "$status"
  log "$name: $per_min trials/min ($status)"
}
log "packing: $pack_trials trials, $res_quarter vs $res_one"
pack packed "$res_quarter"
pack serial "$res_one"

# ---- 4. DDP: NCCL over 2 GPUs (Gloo over 2 CPU ranks in the smoke run), plain and with the
# optimizer state sharded (zero_stage 1: a parameter broadcast per step, the state gathered on rank
# 0 for each epoch's checkpoint) and with the gradients sharded too (zero_stage 2: each gradient
# bucket reduced to its owner)
if ((cpu || ngpu >= 2)); then
  if ((cpu)); then ddp_res='{"cpu": 2, "workers": 2}' ddp_slots=(--cpus 2) backend=gloo
  else ddp_res='{"gpu": 2, "cpu": 2}' ddp_slots=(--gpus 2) backend=nccl
  fi
  for zero in 0 1 2; do
    name=ddp zero_label=""
    ((zero)) && name=ddp_zero$zero zero_label=", ZeRO stage $zero"
    log "DDP: $ddp_res, zero_stage $zero"
    trainer=$(trial_config "{\"model\": {\"type\": \"mlp\"}, \"zero_stage\": $zero}")
    tune_run "$name" 120 "{\"name\": \"$name\", \"metric\": \"val_acc\", \"mode\": \"max\", \"num_samples\": 1,
      \"resources_per_trial\": $ddp_res, \"trainer\": $trainer, \"space\": {}}" "${ddp_slots[@]}"
    rc=$?
    result=$("$python" - "$work/results/$name" "$backend" "$zero" <<'EOF'
import glob, json, sys
lines = [json.loads(l) for f in glob.glob(sys.argv[1] + "/*/result.json") for l in open(f)]
logs = "".join(open(f, errors="replace").read() for f in glob.glob(sys.argv[1] + "/*/stderr.log"))
wanted = [f"({sys.argv[2]})"] + ([f"ZeRO stage {sys.argv[3]}"] if sys.argv[3] != "0" else [])
if lines:
    print(f"{lines[-1]['samples_per_s']:.0f} samples/s per rank, val_acc {lines[-1]['val_acc']:.3f}"
          + "".join(f"; no '{text}' in stderr.log" for text in wanted if text not in logs))
EOF
)
    status=$(run_status "$rc")
    row "DDP 2 ranks ($backend)$zero_label" "resources $ddp_res, batch $batch per rank, zero_stage $zero" \
      "${result:-no result.json}" "$status"
    log "$name: $result ($status)"
  done
else
  row "DDP 2 ranks (nccl)" "resources {\"gpu\": 2}" "-" "skipped: $ngpu GPU visible"
  row "DDP 2 ranks (nccl), ZeRO stage 1" "resources {\"gpu\": 2}, zero_stage 1" "-" "skipped: $ngpu GPU visible"
  row "DDP 2 ranks (nccl), ZeRO stage 2" "resources {\"gpu\": 2}, zero_stage 2" "-" "skipped: $ngpu GPU visible"
fi

# ---- 5. model parallelism: the CNN split over 2 GPUs (2 CPU stages in the smoke run)
if ((cpu || ngpu >= 2)); then
  if ((cpu)); then mp_res='{"cpu": 1}' mp_slots=(--cpus 1)
  else mp_res='{"gpu": 2, "cpu": 1, "workers": 1}' mp_slots=(--gpus 2)
  fi
  log "model parallel: $mp_res"
  trainer=$(trial_config '{"model": {"type": "cnn"}, "model_parallel": 2, "pipeline_chunks": 4}')
  tune_run split 120 "{\"name\": \"split\", \"metric\": \"val_acc\", \"mode\": \"max\", \"num_samples\": 1,
    \"resources_per_trial\": $mp_res, \"trainer\": $trainer, \"space\": {}}" "${mp_slots[@]}"
  rc=$?
  result=$("$python" - "$work/results/split" <<'EOF'
import glob, json, sys
lines = [json.loads(l) for f in glob.glob(sys.argv[1] + "/*/result.json") for l in open(f)]
if lines:
    print(f"{lines[-1]['samples_per_s']:.0f} samples/s, val_acc {lines[-1]['val_acc']:.3f}")
EOF
)
  status=$(run_status "$rc")
  row "CNN split over 2 devices" "model_parallel 2, pipeline_chunks 4, resources $mp_res" "${result:-no result.json}" "$status"
  log "model parallel: $result ($status)"
else
  row "CNN split over 2 GPUs" "model_parallel 2" "-" "skipped: $ngpu GPU visible"
fi

# ---- the table
echo
echo "tune gpu_check: $(date -u +%Y-%m-%d), $gpu_name, torch $torch_version (CUDA $cuda_version), $(($(date +%s) - start)) s"
echo
echo "| check | configuration | result | status |"
echo "|---|---|---|---|"
printf '%s\n' "${rows[@]}"
echo
echo "logs: $work"
