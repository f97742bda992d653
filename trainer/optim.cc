#include "trainer/optim.h"

#include <algorithm>
#include <stdexcept>
#include <tuple>

#include "trainer/compat.h"
#include "trainer/optim_kernels.h"

namespace tune {
namespace {

bool IsDenseFloatCpu(const torch::Tensor& t) {
  return t.defined() && t.device().is_cpu() && t.layout() == torch::kStrided && t.scalar_type() == torch::kFloat;
}

// Whether the fused kernels can update `p` in place: an fp32 CPU parameter whose elements fill
// its storage without gaps or overlaps (contiguous, or another dense layout such as a conv
// weight in channels_last), a dense fp32 CPU gradient of its shape (brought to its layout when it
// is not in it) and, once created, state tensors in the parameter's layout. The kernels walk all
// of them in memory order, which is then the same element order for each.
bool Fusable(const torch::Tensor& p, std::initializer_list<const torch::Tensor*> state) {
  if (!IsDenseFloatCpu(p) || !p.is_non_overlapping_and_dense()) return false;
  const torch::Tensor& grad = p.grad();
  if (grad.defined() && (!IsDenseFloatCpu(grad) || grad.sizes() != p.sizes())) return false;
  for (const torch::Tensor* t : state) {
    if (t->defined() && (!IsDenseFloatCpu(*t) || t->sizes() != p.sizes() || t->strides() != p.strides())) {
      return false;
    }
  }
  return true;
}

// The gradient in the parameter's layout (itself when it already is).
torch::Tensor GradInLayoutOf(const torch::Tensor& p) {
  const torch::Tensor& grad = p.grad();
  if (grad.strides() == p.strides()) return grad;
  return torch::empty_like(p, torch::MemoryFormat::Preserve).copy_(grad);
}

// The closure, as torch::optim's step runs it: with gradients enabled.
torch::Tensor RunClosure(const torch::optim::Optimizer::LossClosure& closure) {
  if (!closure) return {};
  at::AutoGradMode enable_grad(true);
  return closure();
}

// Adam (decoupled = false) and AdamW (true). The optimizer's param groups and state map are
// passed in because they are protected members of torch::optim::Optimizer.
template <typename Options, typename State, typename StateMap>
bool CanFuseAdam(std::vector<torch::optim::OptimizerParamGroup>& groups, StateMap& state) {
  for (auto& group : groups) {
    if (static_cast<Options&>(group.options()).amsgrad()) return false;
    for (const auto& p : group.params()) {
      auto found = state.find(compat::OptimizerStateKey(p));
      const auto* s = found == state.end() ? nullptr : static_cast<const State*>(found->second.get());
      const torch::Tensor none;
      if (!Fusable(p, {s ? &s->exp_avg() : &none, s ? &s->exp_avg_sq() : &none})) return false;
    }
  }
  return true;
}

template <typename Options, typename State, typename StateMap>
void FusedAdamUpdate(std::vector<torch::optim::OptimizerParamGroup>& groups, StateMap& state, bool decoupled) {
  torch::NoGradGuard no_grad;
  for (auto& group : groups) {
    auto& options = static_cast<Options&>(group.options());
    for (auto& p : group.params()) {
      if (!p.grad().defined()) continue;
      const auto key = compat::OptimizerStateKey(p);
      auto found = state.find(key);
      if (found == state.end()) {
        auto fresh = std::make_unique<State>();
        fresh->step(0);
        fresh->exp_avg(torch::zeros_like(p, torch::MemoryFormat::Preserve));
        fresh->exp_avg_sq(torch::zeros_like(p, torch::MemoryFormat::Preserve));
        found = state.emplace(key, std::move(fresh)).first;
      }
      auto& s = static_cast<State&>(*found->second);
      s.step(s.step() + 1);
      const AdamScalars scalars =
          AdamScalarsFor(options.lr(), std::get<0>(options.betas()), std::get<1>(options.betas()), options.eps(),
                         options.weight_decay(), decoupled, s.step());
      const torch::Tensor grad = GradInLayoutOf(p);
      FusedAdamStep(p.data_ptr<float>(), grad.data_ptr<float>(), s.exp_avg().template data_ptr<float>(),
                    s.exp_avg_sq().template data_ptr<float>(), p.numel(), scalars);
      // Written through raw pointers: bump the version counters as in-place ops would, so a
      // graph that saved the old values refuses to backpropagate through them.
      for (const torch::Tensor* t : {&p, &s.exp_avg(), &s.exp_avg_sq()}) t->unsafeGetTensorImpl()->bump_version();
    }
  }
}

}  // namespace

torch::Tensor FusedAdam::step(LossClosure closure) {
  if (!CanFuseAdam<torch::optim::AdamOptions, torch::optim::AdamParamState>(param_groups_, state_)) {
    return torch::optim::Adam::step(std::move(closure));
  }
  torch::Tensor loss = RunClosure(closure);
  FusedAdamUpdate<torch::optim::AdamOptions, torch::optim::AdamParamState>(param_groups_, state_, false);
  return loss;
}

torch::Tensor FusedAdamW::step(LossClosure closure) {
  if (!CanFuseAdam<torch::optim::AdamWOptions, torch::optim::AdamWParamState>(param_groups_, state_)) {
    return torch::optim::AdamW::step(std::move(closure));
  }
  torch::Tensor loss = RunClosure(closure);
  FusedAdamUpdate<torch::optim::AdamWOptions, torch::optim::AdamWParamState>(param_groups_, state_, true);
  return loss;
}

torch::Tensor FusedSGD::step(LossClosure closure) {
  using State = torch::optim::SGDParamState;
  for (auto& group : param_groups_) {
    if (static_cast<torch::optim::SGDOptions&>(group.options()).dampening() != 0) {
      return torch::optim::SGD::step(std::move(closure));
    }
    for (const auto& p : group.params()) {
      auto found = state_.find(compat::OptimizerStateKey(p));
      const torch::Tensor none;
      const torch::Tensor* buffer =
          found == state_.end() ? &none : &static_cast<const State&>(*found->second).momentum_buffer();
      if (!Fusable(p, {buffer})) return torch::optim::SGD::step(std::move(closure));
    }
  }
  torch::Tensor loss = RunClosure(closure);
  torch::NoGradGuard no_grad;
  for (auto& group : param_groups_) {
    auto& options = static_cast<torch::optim::SGDOptions&>(group.options());
    const auto momentum = static_cast<float>(options.momentum());
    for (auto& p : group.params()) {
      if (!p.grad().defined()) continue;
      float* buffer = nullptr;
      bool first = false;
      if (options.momentum() != 0) {
        // As torch::optim::SGD: the buffer appears at the first step (a copy of the gradient).
        const auto key = compat::OptimizerStateKey(p);
        auto found = state_.find(key);
        if (found == state_.end()) {
          auto fresh = std::make_unique<State>();
          fresh->momentum_buffer(torch::empty_like(p, torch::MemoryFormat::Preserve));
          found = state_.emplace(key, std::move(fresh)).first;
          first = true;
        }
        torch::Tensor& momentum_buffer = static_cast<State&>(*found->second).momentum_buffer();
        buffer = momentum_buffer.data_ptr<float>();
        momentum_buffer.unsafeGetTensorImpl()->bump_version();
      }
      const torch::Tensor grad = GradInLayoutOf(p);
      FusedSgdStep(p.data_ptr<float>(), grad.data_ptr<float>(), buffer, p.numel(),
                   static_cast<float>(options.lr()), momentum, static_cast<float>(options.weight_decay()),
                   options.nesterov(), first);
      p.unsafeGetTensorImpl()->bump_version();
    }
  }
  return loss;
}

std::unique_ptr<torch::optim::Optimizer> MakeOptimizer(const OptimizerConfig& config, torch::nn::Module& model) {
  std::vector<torch::Tensor> decay, no_decay;
  for (auto& parameter : model.parameters()) {
    (parameter.dim() >= 2 ? decay : no_decay).push_back(parameter);
  }
  std::vector<torch::optim::OptimizerParamGroup> groups;
  auto add = [&](std::vector<torch::Tensor>& params, double weight_decay) {
    if (params.empty()) return;
    if (config.type == "sgd") {
      groups.emplace_back(params, std::make_unique<torch::optim::SGDOptions>(torch::optim::SGDOptions(config.lr)
                                                                                 .momentum(config.momentum)
                                                                                 .nesterov(config.nesterov)
                                                                                 .weight_decay(weight_decay)));
    } else if (config.type == "adam") {
      groups.emplace_back(params, std::make_unique<torch::optim::AdamOptions>(torch::optim::AdamOptions(config.lr)
                                                                                  .betas({config.beta1, config.beta2})
                                                                                  .eps(config.eps)
                                                                                  .weight_decay(weight_decay)));
    } else {
      groups.emplace_back(params, std::make_unique<torch::optim::AdamWOptions>(torch::optim::AdamWOptions(config.lr)
                                                                                   .betas({config.beta1, config.beta2})
                                                                                   .eps(config.eps)
                                                                                   .weight_decay(weight_decay)));
    }
  };
  add(decay, config.weight_decay);
  add(no_decay, 0.0);
  if (config.type == "sgd") {
    torch::optim::SGDOptions defaults(config.lr);
    if (config.fused) return std::make_unique<FusedSGD>(std::move(groups), defaults);
    return std::make_unique<torch::optim::SGD>(std::move(groups), defaults);
  }
  if (config.type == "adam") {
    torch::optim::AdamOptions defaults(config.lr);
    if (config.fused) return std::make_unique<FusedAdam>(std::move(groups), defaults);
    return std::make_unique<torch::optim::Adam>(std::move(groups), defaults);
  }
  torch::optim::AdamWOptions defaults(config.lr);
  if (config.fused) return std::make_unique<FusedAdamW>(std::move(groups), defaults);
  return std::make_unique<torch::optim::AdamW>(std::move(groups), defaults);
}

void SetHyperparameters(torch::optim::Optimizer& optimizer, const OptimizerConfig& config) {
  for (auto& group : optimizer.param_groups()) {
    // MakeOptimizer's weights group holds exactly the parameters with dim >= 2.
    const bool decays = !group.params().empty() && group.params().front().dim() >= 2;
    const double weight_decay = decays ? config.weight_decay : 0.0;
    if (auto* sgd = dynamic_cast<torch::optim::SGDOptions*>(&group.options())) {
      sgd->lr(config.lr).weight_decay(weight_decay).momentum(config.momentum).nesterov(config.nesterov);
    } else if (auto* adam = dynamic_cast<torch::optim::AdamOptions*>(&group.options())) {
      adam->lr(config.lr).weight_decay(weight_decay).betas({config.beta1, config.beta2}).eps(config.eps);
    } else if (auto* adamw = dynamic_cast<torch::optim::AdamWOptions*>(&group.options())) {
      adamw->lr(config.lr).weight_decay(weight_decay).betas({config.beta1, config.beta2}).eps(config.eps);
    } else {
      throw std::invalid_argument("SetHyperparameters: an optimizer MakeOptimizer did not make");
    }
  }
}

void MapStateTensors(torch::optim::OptimizerParamState& state,
                     const std::function<torch::Tensor(const torch::Tensor&)>& map) {
  auto apply = [&](const torch::Tensor& t) { return t.defined() ? map(t) : t; };
  if (auto* adam = dynamic_cast<torch::optim::AdamParamState*>(&state)) {
    adam->exp_avg(apply(adam->exp_avg()));
    adam->exp_avg_sq(apply(adam->exp_avg_sq()));
    adam->max_exp_avg_sq(apply(adam->max_exp_avg_sq()));
  } else if (auto* adamw = dynamic_cast<torch::optim::AdamWParamState*>(&state)) {
    adamw->exp_avg(apply(adamw->exp_avg()));
    adamw->exp_avg_sq(apply(adamw->exp_avg_sq()));
    adamw->max_exp_avg_sq(apply(adamw->max_exp_avg_sq()));
  } else if (auto* sgd = dynamic_cast<torch::optim::SGDParamState*>(&state)) {
    sgd->momentum_buffer(apply(sgd->momentum_buffer()));
  } else {
    throw std::logic_error("MapStateTensors: an optimizer state of unknown type");
  }
}

void MoveStateToParameters(torch::optim::Optimizer& optimizer) {
  torch::NoGradGuard no_grad;
  auto& state = optimizer.state();
  for (const auto& group : optimizer.param_groups()) {
    for (const torch::Tensor& p : group.params()) {
      auto found = state.find(p.unsafeGetTensorImpl());
      if (found == state.end()) continue;
      MapStateTensors(*found->second, [&](const torch::Tensor& t) { return t.to(p.device()); });
    }
  }
}

torch::Tensor ClipGradNorm(const std::vector<torch::Tensor>& parameters, double max_norm,
                           const std::function<void(torch::Tensor&)>& sum_across) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> norms;
  for (const auto& p : parameters) {
    torch::Tensor norm;
    if (p.grad().defined()) {
      norm = p.grad().norm(2);
    } else if (sum_across && p.requires_grad()) {
      norm = torch::zeros({}, p.options().requires_grad(false));  // another rank's gradient
    } else {
      continue;
    }
    norms.push_back(norms.empty() || norm.device() == norms.front().device()
                        ? norm
                        : norm.to(norms.front().device(), /*non_blocking=*/true));
  }
  if (norms.empty()) return torch::zeros({});
  torch::Tensor stacked = torch::stack(norms);
  if (sum_across) sum_across(stacked);
  torch::Tensor total = stacked.norm(2);
  torch::Tensor coefficient = torch::clamp(max_norm / (total + 1e-6), c10::nullopt, 1.0);
  std::vector<torch::Tensor> per_device = {coefficient};  // the coefficient copied to each device once
  for (const auto& p : parameters) {
    if (!p.grad().defined()) continue;
    auto here = std::find_if(per_device.begin(), per_device.end(),
                             [&](const torch::Tensor& c) { return c.device() == p.grad().device(); });
    if (here == per_device.end()) {
      per_device.push_back(coefficient.to(p.grad().device(), /*non_blocking=*/true));
      here = per_device.end() - 1;
    }
    p.grad().mul_(*here);
  }
  return total;
}

}  // namespace tune
