// Activation checkpointing (PyTorch's torch.utils.checkpoint with use_reentrant=True, which
// LibTorch's C++ API lacks): a checkpointed segment runs without keeping the activations inside
// it, saving only its inputs; backward runs it again with gradients on and backpropagates through
// the recomputation. Memory for activations drops to the segments' inputs plus one segment's
// activations, for one extra forward of every segment.
//
// The recomputation sees what the first run saw: the CPU generator's state (and the CUDA
// generator's, for a segment on a GPU) is restored for it, so Dropout draws the same masks
// (preserve_rng_state), and the autocast state of the first run applies again. `buffers` (e.g. a
// BatchNorm's running statistics, num_batches_tracked) are put back after the recomputation, so
// they move once per step, as without checkpointing. Gradients equal those of the plain segment
// (tested, MLP and CNN with dropout and BatchNorm). Parameters used inside the segment get their
// gradients by a nested backward, through their own accumulators, so their hooks (DDP's buckets)
// fire once, as without checkpointing. With gradients off (validation) the segment simply runs.
//
// The segment is copied and called again during backward: capture modules by value (module
// holders are shared pointers), never locals by reference.
//
// Example (in a tune::Model, see api.h):
//   torch::Tensor forward(const tune::Batch& batch) override {
//     torch::Tensor x = tune::Checkpoint(block1, batch.x);   // block1, block2: torch::nn::Sequential
//     x = tune::Checkpoint(block2, x);
//     return head(x);
//   }
#pragma once

#include <functional>
#include <vector>

#include <torch/nn/pimpl.h>
#include <torch/types.h>

namespace tune {

using CheckpointSegment = std::function<std::vector<torch::Tensor>(const std::vector<torch::Tensor>&)>;

// Runs `segment(inputs)`, checkpointed. `buffers`: tensors the segment updates in place during a
// training forward, restored after the recomputation.
std::vector<torch::Tensor> Checkpoint(const CheckpointSegment& segment, const std::vector<torch::Tensor>& inputs,
                                      const std::vector<torch::Tensor>& buffers = {});

// One input, one output.
torch::Tensor Checkpoint(const std::function<torch::Tensor(const torch::Tensor&)>& segment, const torch::Tensor& input,
                         const std::vector<torch::Tensor>& buffers = {});

// A module's forward(input), checkpointed, its buffers restored after the recomputation.
template <typename Contained>
torch::Tensor Checkpoint(const torch::nn::ModuleHolder<Contained>& module, const torch::Tensor& input) {
  return Checkpoint([impl = module.ptr()](const torch::Tensor& x) -> torch::Tensor { return impl->forward(x); },
                    input, module->buffers());
}

}  // namespace tune
