// Fused optimizer kernels: one pass over a parameter's elements per step, instead of the ~8
// separate elementwise passes (and two temporaries) of LibTorch's C++ Adam. Plain float
// arrays, no torch headers, so this file can be compiled with its own flags (vectorised,
// -fno-math-errno, no FMA contraction) outside the trainer's precompiled header.
//
// Each kernel reproduces the operation order of torch::optim (LibTorch 2.x) in float,
// so results agree with it to rounding (tested to 1e-6 after many steps).
//
// Example (Adam, one parameter of n elements):
//   AdamScalars s = AdamScalarsFor(lr, beta1, beta2, eps, weight_decay, /*decoupled=*/false, step);
//   FusedAdamStep(param, grad, exp_avg, exp_avg_sq, n, s);
#pragma once

#include <cstdint>

namespace tune {

// The per-step scalars of Adam/AdamW, precomputed in double as torch::optim does and rounded
// to float where the tensor ops would round them.
struct AdamScalars {
  float beta1, one_minus_beta1;
  float beta2, one_minus_beta2;
  float eps;
  float neg_step_size;          // -lr / (1 - beta1^step)
  float sqrt_bias_correction2;  // sqrt(1 - beta2^step)
  float grad_decay;             // Adam: grad += grad_decay * param (L2); 0 = none
  float param_decay;            // AdamW: param *= param_decay before the update; 1 = none
};

// `step` is the 1-based step count after incrementing, as in torch::optim::Adam.
AdamScalars AdamScalarsFor(double lr, double beta1, double beta2, double eps, double weight_decay,
                           bool decoupled, std::int64_t step);

// Adam/AdamW update of n elements in place. param, exp_avg, exp_avg_sq are written; grad is
// read only. The arrays must not overlap.
void FusedAdamStep(float* param, const float* grad, float* exp_avg, float* exp_avg_sq, std::int64_t n,
                   const AdamScalars& s);

// SGD with optional momentum/nesterov/weight decay (dampening 0), as torch::optim::SGD:
//   d = grad + weight_decay * param
//   buf = first ? d : momentum * buf + d        (only when momentum != 0; buf may be null otherwise)
//   d = nesterov ? d + momentum * buf : buf
//   param -= lr * d
void FusedSgdStep(float* param, const float* grad, float* momentum_buffer, std::int64_t n, float lr,
                  float momentum, float weight_decay, bool nesterov, bool first);

}  // namespace tune
