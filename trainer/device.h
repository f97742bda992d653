// Where the trainer runs: config key `device` (auto | cpu | cuda).
//
//   auto: cuda:0 when LibTorch was built with CUDA, a GPU is present and CUDA_VISIBLE_DEVICES
//         does not hide all of them (set and empty, or "-1", as the tuner sets it for CPU-only
//         trials); otherwise the CPU.
//   cuda: cuda:0, or a std::runtime_error saying why it cannot be used.
//   cpu:  the CPU, even when a GPU is there.
// Under CUDA_VISIBLE_DEVICES the trial's GPU is always device 0 of the process.
#pragma once

#include <string>

#include <torch/torch.h>

namespace tune {

torch::Device ResolveDevice(const std::string& setting);

// Waits for every kernel queued on `device` (a no-op on the CPU): what a profiler phase must do
// before reading the clock, since CUDA calls return before their kernels run.
void SynchronizeDevice(const torch::Device& device);

}  // namespace tune
