#include "trainer/sync_batchnorm.h"

#include <vector>

#include "trainer/distributed.h"

namespace tune {
namespace {

// Sum over the ranks, differentiable: backward sums the incoming gradients over the ranks too
// (each rank's loss depends on every rank's contribution to the statistics).
class AllReduceSumFunction : public torch::autograd::Function<AllReduceSumFunction> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* context, const torch::Tensor& x, std::int64_t group) {
    context->saved_data["group"] = group;
    torch::Tensor sum = x.detach().clone();
    reinterpret_cast<ProcessGroup*>(group)->AllReduceSum(sum);
    return sum;
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* context,
                                                 torch::autograd::variable_list gradients) {
    torch::Tensor sum = gradients[0].contiguous().clone();
    reinterpret_cast<ProcessGroup*>(context->saved_data["group"].toInt())->AllReduceSum(sum);
    return {sum, torch::Tensor()};
  }
};

}  // namespace

SyncBatchNormImpl::SyncBatchNormImpl(std::int64_t features, double eps, double momentum)
    : eps_(eps), momentum_(momentum) {
  weight = register_parameter("weight", torch::ones({features}));
  bias = register_parameter("bias", torch::zeros({features}));
  running_mean = register_buffer("running_mean", torch::zeros({features}));
  running_var = register_buffer("running_var", torch::ones({features}));
  num_batches_tracked = register_buffer("num_batches_tracked", torch::zeros({}, torch::kLong));
}

torch::Tensor SyncBatchNormImpl::forward(const torch::Tensor& input) {
  if (!is_training() || group_ == nullptr || group_->world_size() == 1) {
    if (is_training()) num_batches_tracked += 1;
    return torch::batch_norm(input, weight, bias, running_mean, running_var, is_training(), momentum_, eps_,
                             /*cudnn_enabled=*/true);
  }
  const torch::Tensor x = input.to(torch::kFloat);
  const std::int64_t channels = x.size(1);
  std::vector<std::int64_t> dims = {0}, shape(static_cast<std::size_t>(x.dim()), 1);
  for (std::int64_t d = 2; d < x.dim(); ++d) dims.push_back(d);
  shape[1] = channels;
  const double local_count = static_cast<double>(x.numel() / channels);
  const auto group = reinterpret_cast<std::int64_t>(group_);
  // Two all-reduces: the per-channel sum with the sample count, then the sum of squared deviations
  // from the global mean. E[x^2] - mean^2 in one would be one all-reduce fewer, but it cancels
  // catastrophically in float when the mean is large against the spread (tested).
  torch::Tensor sums = torch::cat({x.sum(dims), torch::full({1}, local_count, x.options())});
  sums = AllReduceSumFunction::apply(sums, group);
  const double count = sums[channels].item<double>();
  const torch::Tensor mean = sums.slice(0, 0, channels) / count;
  const torch::Tensor squared_deviations =
      AllReduceSumFunction::apply((x - mean.view(shape)).square().sum(dims), group);
  const torch::Tensor var = squared_deviations / count;  // biased
  {
    torch::NoGradGuard no_grad;
    running_mean.mul_(1 - momentum_).add_(mean.detach(), momentum_);
    running_var.mul_(1 - momentum_).add_(var.detach() * (count / std::max(count - 1, 1.0)), momentum_);
    num_batches_tracked += 1;
  }
  return (x - mean.view(shape)) * torch::rsqrt(var.view(shape) + eps_) * weight.view(shape) + bias.view(shape);
}

int AttachSyncBatchNorm(torch::nn::Module& model, ProcessGroup* group) {
  int found = 0;
  for (const auto& module : model.modules()) {
    if (auto* norm = module->as<SyncBatchNormImpl>()) {
      norm->SetGroup(group);
      ++found;
    }
  }
  return found;
}

}  // namespace tune
