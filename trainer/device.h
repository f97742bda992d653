// Where the trainer runs: config key `device` (auto | cpu | cuda).
//
//   auto: cuda:0 when LibTorch was built with CUDA, a GPU is present and CUDA_VISIBLE_DEVICES
//         does not hide all of them (set and empty, or "-1", as the tuner sets it for CPU-only
//         trials); otherwise the CPU.
//   cuda: cuda:0, or a std::runtime_error saying why it cannot be used.
//   cpu:  the CPU, even when a GPU is there.
// Under CUDA_VISIBLE_DEVICES the trial's GPU is always device 0 of the process.
//
// Model parallelism (config model_parallel = N > 1): the model is split over N devices,
// cuda:0 .. cuda:N-1 of the process (a trial given `resources_per_trial.gpu` N per worker sees
// exactly those), or N times the CPU (every stage on the one CPU: the same arithmetic, no
// overlap; for trying a split without GPUs).
#pragma once

#include <string>
#include <vector>

#include <torch/torch.h>

namespace tune {

torch::Device ResolveDevice(const std::string& setting);

// `count` devices for a model split over them, as above. Throws std::runtime_error naming
// model_parallel when fewer GPUs are visible.
std::vector<torch::Device> ResolveDevices(const std::string& setting, int count);

// Waits for every kernel queued on `device` (a no-op on the CPU): what a profiler phase must do
// before reading the clock, since CUDA calls return before their kernels run.
void SynchronizeDevice(const torch::Device& device);
void SynchronizeDevices(const std::vector<torch::Device>& devices);

}  // namespace tune
