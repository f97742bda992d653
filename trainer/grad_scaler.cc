#include "trainer/grad_scaler.h"

#include <stdexcept>

namespace tune {

GradScaler::GradScaler(const ScalerConfig& config, bool enabled)
    : config_(config), enabled_(enabled), scale_(config.init_scale) {}

torch::Tensor GradScaler::Scale(const torch::Tensor& loss) const { return enabled_ ? loss * scale_ : loss; }

void GradScaler::Unscale(const std::vector<torch::Tensor>& parameters, const std::function<bool(bool)>& any_across) {
  if (!enabled_ || unscaled_) return;
  unscaled_ = true;
  torch::NoGradGuard no_grad;
  torch::Tensor found;  // a device-side flag; one host read for all gradients
  for (const auto& parameter : parameters) {
    const torch::Tensor& grad = parameter.grad();
    if (!grad.defined()) continue;
    // The check runs on the scaled gradient: multiplying by 1/scale cannot turn inf finite.
    torch::Tensor bad = torch::isfinite(grad).logical_not().any();
    // Gathered on the first gradient's device (a model split over GPUs has gradients on each).
    if (found.defined() && bad.device() != found.device()) bad = bad.to(found.device(), /*non_blocking=*/true);
    found = found.defined() ? found.logical_or(bad) : bad;
    // Divided, not multiplied by 1/scale: above ~8.5e37 the reciprocal is a subnormal float,
    // which flush_denormal (FTZ/DAZ) would read as 0 and zero every gradient.
    grad.div_(scale_);
  }
  found_inf_ = found.defined() && found.item<bool>();
  if (any_across) found_inf_ = any_across(found_inf_);
}

bool GradScaler::Step(torch::optim::Optimizer& optimizer, const std::vector<torch::Tensor>& parameters) {
  if (!enabled_) {
    optimizer.step();
    return true;
  }
  Unscale(parameters);
  stepped_ = true;
  if (found_inf_) return false;
  optimizer.step();
  return true;
}

void GradScaler::Update() {
  if (!enabled_) return;
  if (!stepped_ && !unscaled_) return;  // nothing happened this step
  if (found_inf_) {
    scale_ *= config_.backoff_factor;
    growth_tracker_ = 0;
  } else if (++growth_tracker_ >= config_.growth_interval) {
    scale_ *= config_.growth_factor;
    growth_tracker_ = 0;
  }
  unscaled_ = found_inf_ = stepped_ = false;
}

void GradScaler::Save(torch::serialize::OutputArchive& archive) const {
  archive.write("scale", torch::full({}, scale_, torch::kDouble));
  archive.write("growth_tracker", torch::full({}, growth_tracker_, torch::kLong));
}

void GradScaler::Load(torch::serialize::InputArchive& archive) {
  torch::Tensor scale, tracker;
  archive.read("scale", scale);
  archive.read("growth_tracker", tracker);
  scale_ = scale.item<double>();
  growth_tracker_ = tracker.item<std::int64_t>();
  unscaled_ = found_inf_ = stepped_ = false;
}

}  // namespace tune
