// The trainer's optimizers: torch::optim::SGD / Adam / AdamW with a fused step. Each Fused*
// class *is* the LibTorch optimizer (same options, param groups, per-parameter state and
// save/load format, so checkpoints from either load into the other); only step() differs: one
// vectorised pass per parameter over param/grad/state (optim_kernels.h) instead of LibTorch's
// ~8 elementwise passes with temporaries. Parameters that are not dense contiguous fp32 CPU
// tensors (CUDA, fp16, ...) take the LibTorch step unchanged, as do the options the kernels do
// not implement (amsgrad, SGD dampening).
//
// Example:
//   auto optimizer = tune::MakeOptimizer(config.optimizer, model);  // fused unless optimizer.fused=false
//   loss.backward();
//   tune::ClipGradNorm(parameters, 1.0);  // no host sync
//   optimizer->step();
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include <torch/torch.h>

#include "trainer/config.h"

namespace tune {

class FusedAdam : public torch::optim::Adam {
 public:
  using torch::optim::Adam::Adam;
  torch::Tensor step(LossClosure closure = nullptr) override;
};

class FusedAdamW : public torch::optim::AdamW {
 public:
  using torch::optim::AdamW::AdamW;
  torch::Tensor step(LossClosure closure = nullptr) override;
};

class FusedSGD : public torch::optim::SGD {
 public:
  using torch::optim::SGD::SGD;
  torch::Tensor step(LossClosure closure = nullptr) override;
};

// config.type's optimizer over `model`'s parameters in two groups: weights (dim >= 2) with
// config.weight_decay, and biases/norm parameters without decay (the usual Lightning/timm
// recipe). Fused unless config.fused is false.
std::unique_ptr<torch::optim::Optimizer> MakeOptimizer(const OptimizerConfig& config,
                                                       torch::nn::Module& model);

// Sets config's hyperparameters on every param group of an optimizer that MakeOptimizer made
// with the same type: lr, weight_decay (on the weights' group; the other stays 0), momentum and
// nesterov (sgd), betas and eps (adam, adamw). load() restores the options the checkpoint was
// saved with; this is how a resumed run (PBT's mutated config) trains with the new ones.
void SetHyperparameters(torch::optim::Optimizer& optimizer, const OptimizerConfig& config);

// Replaces each tensor of one parameter's optimizer state (Adam/AdamW's moments, SGD's momentum
// buffer; undefined ones are skipped) with map(tensor). Throws std::logic_error for a state type
// MakeOptimizer's optimizers do not have.
void MapStateTensors(torch::optim::OptimizerParamState& state,
                     const std::function<torch::Tensor(const torch::Tensor&)>& map);

// Moves each parameter's optimizer state (Adam's moments, SGD's momentum) to the parameter's
// device: after a checkpoint was read onto one device for a model split over several.
void MoveStateToParameters(torch::optim::Optimizer& optimizer);

// torch::nn::utils::clip_grad_norm_ without its host read of the total norm (which would wait
// for the device on CUDA): every defined gradient is scaled by min(1, max_norm / (norm + 1e-6)),
// the norm being the 2-norm of all gradients together (on several devices: summed on the first
// gradient's). Returns that norm as a 0-d tensor.
// With `sum_across` (ZeRO stage 2, where each rank holds the gradients of its own parameters):
// every parameter that requires grad has an entry in the per-parameter norms, 0 where this rank
// has no gradient; sum_across sums that vector over the ranks in place (each entry comes from one
// rank, so the sum is exact) before the total is taken, so every rank clips its gradients by the
// norm of all of them, the same bits as clipping the whole set.
torch::Tensor ClipGradNorm(const std::vector<torch::Tensor>& parameters, double max_norm,
                           const std::function<void(torch::Tensor&)>& sum_across = {});

}  // namespace tune
