// Dynamic loss scaling for precision "16-mixed": the C++ counterpart of torch.cuda.amp.GradScaler,
// which LibTorch lacks. Per optimizer step:
//
//   scaler.Scale(loss).backward();          // every micro-batch
//   scaler.Unscale(parameters);             // grads /= scale; notes any inf/nan (before clipping)
//   clip_grad_norm_(parameters, ...);
//   bool stepped = scaler.Step(optimizer);  // skipped when a grad was inf/nan
//   scaler.Update();                        // x backoff_factor after a skipped step; x growth_factor
//                                           // after growth_interval clean steps in a row
//
// The scale lives on the host (a double), so Scale() never syncs; Step() reads one found-inf flag
// from the device, the same single sync PyTorch's GradScaler makes. The math is whatever the
// gradients are in, so on CPU (where 16-mixed trains in fp32, see trainer.cc) the logic runs and
// is tested unchanged.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include <torch/torch.h>

#include "trainer/config.h"

namespace tune {

class GradScaler {
 public:
  explicit GradScaler(const ScalerConfig& config = {}, bool enabled = true);

  bool enabled() const { return enabled_; }
  double scale() const { return scale_; }
  std::int64_t growth_tracker() const { return growth_tracker_; }

  // loss * scale (the loss unchanged when disabled).
  torch::Tensor Scale(const torch::Tensor& loss) const;
  // Divides every defined gradient by the scale in place and records whether any is inf/nan.
  // Once per step; Step() calls it when the caller has not. `any_across` (ZeRO stage 2, where
  // each rank holds a share of the gradients) turns this rank's verdict into all ranks' (true
  // when any rank found one), so every rank skips or takes the step alike.
  void Unscale(const std::vector<torch::Tensor>& parameters, const std::function<bool(bool)>& any_across = {});
  // optimizer.step() unless an inf/nan gradient was found; returns whether it stepped.
  bool Step(torch::optim::Optimizer& optimizer, const std::vector<torch::Tensor>& parameters);
  // Adjusts the scale after Step(); resets the per-step state.
  void Update();

  void Save(torch::serialize::OutputArchive& archive) const;
  void Load(torch::serialize::InputArchive& archive);

 private:
  ScalerConfig config_;
  bool enabled_;
  double scale_;
  std::int64_t growth_tracker_ = 0;  // clean steps since the last growth or backoff
  bool unscaled_ = false;
  bool found_inf_ = false;
  bool stepped_ = false;
};

}  // namespace tune
