// SyncBatchNorm: batch normalisation whose training statistics are those of the global batch,
// across the ranks of a data-parallel run (PyTorch's torch.nn.SyncBatchNorm). With `W` ranks of
// batch B, every rank normalises with the mean and variance of all W*B samples, and backward
// sums the statistics' gradients over the ranks, so W ranks train exactly as one process on the
// W*B batch (tested), where plain BatchNorm would use each rank's B samples only.
//
// The statistics are two all-reduces per layer per forward (per-channel sum and count, then the
// sum of squared deviations from the global mean, so the variance does not cancel in float when
// the mean is large against the spread) and two per backward. In eval mode, with one rank, or until the trainer attaches a
// process group (config `sync_batchnorm: true` under DDP), it is BatchNorm. Parameters and buffers
// carry BatchNorm's names (weight, bias, running_mean, running_var, num_batches_tracked), so
// checkpoints load into either.
//
// Example:
//   auto bn = tune::SyncBatchNorm(64);      // in a model, where BatchNorm2d(64) would be
//   bn->SetGroup(&ddp->group());             // what the Trainer does for every one of them
#pragma once

#include <cstdint>

#include <torch/torch.h>

namespace tune {

class ProcessGroup;

class SyncBatchNormImpl : public torch::nn::Module {
 public:
  explicit SyncBatchNormImpl(std::int64_t features, double eps = 1e-5, double momentum = 0.1);
  // x: [N, C] or [N, C, *]. Computes in float32 (under autocast too).
  torch::Tensor forward(const torch::Tensor& x);
  // The group whose ranks share statistics; nullptr: local statistics. Not owned: it must
  // outlive every training forward and backward.
  void SetGroup(ProcessGroup* group) { group_ = group; }

  torch::Tensor weight, bias, running_mean, running_var, num_batches_tracked;

 private:
  double eps_, momentum_;
  ProcessGroup* group_ = nullptr;
};
TORCH_MODULE(SyncBatchNorm);

// Attaches `group` to every SyncBatchNorm in `model`; returns how many there are.
int AttachSyncBatchNorm(torch::nn::Module& model, ProcessGroup* group);

}  // namespace tune
