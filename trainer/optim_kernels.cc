#include "trainer/optim_kernels.h"

#include <cmath>

// LibTorch's vectorised CPU kernels (AVX2 builds) compute `a.add_(b, alpha)` and addcmul's final
// step as fused multiply-adds, addcdiv as a multiply, a divide and an add; the loops below do the
// same (found by testing against torch::optim), so the two agree to the last bit far more often
// than not. On x86-64 the loops are
// compiled twice: for AVX2+FMA (chosen at run time when the CPU has both) and for the baseline,
// where a*b+c is two roundings (-ffp-contract=off keeps the compiler from fusing others).
#if defined(__x86_64__) && defined(__GNUC__)
#define TUNE_X86_DISPATCH 1
#endif

namespace tune {

AdamScalars AdamScalarsFor(double lr, double beta1, double beta2, double eps, double weight_decay,
                           bool decoupled, std::int64_t step) {
  const double bias_correction1 = 1 - std::pow(beta1, static_cast<double>(step));
  const double bias_correction2 = 1 - std::pow(beta2, static_cast<double>(step));
  AdamScalars s;
  s.beta1 = static_cast<float>(beta1);
  s.one_minus_beta1 = static_cast<float>(1 - beta1);
  s.beta2 = static_cast<float>(beta2);
  s.one_minus_beta2 = static_cast<float>(1 - beta2);
  s.eps = static_cast<float>(eps);
  s.neg_step_size = static_cast<float>(-(lr / bias_correction1));
  s.sqrt_bias_correction2 = static_cast<float>(std::sqrt(bias_correction2));
  s.grad_decay = decoupled ? 0.0f : static_cast<float>(weight_decay);
  s.param_decay = decoupled ? static_cast<float>(1 - lr * weight_decay) : 1.0f;
  return s;
}

namespace {

template <bool kFma>
inline __attribute__((always_inline)) float MulAdd(float a, float b, float c) {
  if constexpr (kFma) {
    return __builtin_fmaf(a, b, c);
  } else {
    return a * b + c;
  }
}

// The float operations of torch::optim::Adam's tensor ops, in their order:
//   grad.add(p, wd)                          g = fma(p, wd, grad)        (only when wd != 0)
//   exp_avg.mul_(b1).add_(grad, 1 - b1)      m = fma(g, 1 - b1, m * b1)
//   exp_avg_sq.mul_(b2).addcmul_(g, g, 1-b2) v = fma((1 - b2) * g, g, v * b2)
//   (exp_avg_sq.sqrt() / sqrt(bc2)).add_(eps) denom = sqrt(v) / sqrt(bc2) + eps
//   p.addcdiv_(exp_avg, denom, -lr / bc1)    p = p + (-lr / bc1) * m / denom
// (AdamW first does p.mul_(1 - lr * wd)).
template <bool kFma, bool kGradDecay>
inline __attribute__((always_inline)) void AdamLoop(float* __restrict param, const float* __restrict grad,
                                                     float* __restrict exp_avg, float* __restrict exp_avg_sq,
                                                     std::int64_t n, const AdamScalars& scalars) {
  const AdamScalars s = scalars;  // a local copy: the compiler may keep it in registers
  for (std::int64_t i = 0; i < n; ++i) {
    float p = param[i] * s.param_decay;
    const float g = kGradDecay ? MulAdd<kFma>(p, s.grad_decay, grad[i]) : grad[i];
    const float m = MulAdd<kFma>(g, s.one_minus_beta1, exp_avg[i] * s.beta1);
    const float v = MulAdd<kFma>(s.one_minus_beta2 * g, g, exp_avg_sq[i] * s.beta2);
    const float denom = std::sqrt(v) / s.sqrt_bias_correction2 + s.eps;
    p = p + s.neg_step_size * m / denom;
    exp_avg[i] = m;
    exp_avg_sq[i] = v;
    param[i] = p;
  }
}

// torch::optim::SGD: d_p.add(p, wd); buf.mul_(momentum).add_(d_p); d_p.add(buf, momentum);
// p.add_(d_p, -lr).
template <bool kFma>
inline __attribute__((always_inline)) void SgdLoop(float* __restrict param, const float* __restrict grad,
                                                    float* __restrict momentum_buffer, std::int64_t n, float lr,
                                                    float momentum, float weight_decay, bool nesterov, bool first) {
  const float neg_lr = -lr;
  const bool decay = weight_decay != 0.0f;
  for (std::int64_t i = 0; i < n; ++i) {
    const float d = decay ? MulAdd<kFma>(param[i], weight_decay, grad[i]) : grad[i];
    float update = d;
    if (momentum != 0.0f) {
      const float buf = first ? d : MulAdd<kFma>(d, 1.0f, momentum_buffer[i] * momentum);
      momentum_buffer[i] = buf;
      update = nesterov ? MulAdd<kFma>(buf, momentum, d) : buf;
    }
    param[i] = MulAdd<kFma>(update, neg_lr, param[i]);
  }
}

#ifdef TUNE_X86_DISPATCH
__attribute__((target("avx2,fma"))) void AdamAvx2(float* param, const float* grad, float* exp_avg, float* exp_avg_sq,
                                                  std::int64_t n, const AdamScalars& s) {
  if (s.grad_decay != 0.0f) {
    AdamLoop<true, true>(param, grad, exp_avg, exp_avg_sq, n, s);
  } else {
    AdamLoop<true, false>(param, grad, exp_avg, exp_avg_sq, n, s);
  }
}

__attribute__((target("avx2,fma"))) void SgdAvx2(float* param, const float* grad, float* momentum_buffer,
                                                 std::int64_t n, float lr, float momentum, float weight_decay,
                                                 bool nesterov, bool first) {
  SgdLoop<true>(param, grad, momentum_buffer, n, lr, momentum, weight_decay, nesterov, first);
}

bool HasAvx2Fma() {
  static const bool has = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return has;
}
#endif

}  // namespace

void FusedAdamStep(float* param, const float* grad, float* exp_avg, float* exp_avg_sq, std::int64_t n,
                   const AdamScalars& s) {
#ifdef TUNE_X86_DISPATCH
  if (HasAvx2Fma()) return AdamAvx2(param, grad, exp_avg, exp_avg_sq, n, s);
#endif
  if (s.grad_decay != 0.0f) {
    AdamLoop<false, true>(param, grad, exp_avg, exp_avg_sq, n, s);
  } else {
    AdamLoop<false, false>(param, grad, exp_avg, exp_avg_sq, n, s);
  }
}

void FusedSgdStep(float* param, const float* grad, float* momentum_buffer, std::int64_t n, float lr, float momentum,
                  float weight_decay, bool nesterov, bool first) {
#ifdef TUNE_X86_DISPATCH
  if (HasAvx2Fma()) return SgdAvx2(param, grad, momentum_buffer, n, lr, momentum, weight_decay, nesterov, first);
#endif
  SgdLoop<false>(param, grad, momentum_buffer, n, lr, momentum, weight_decay, nesterov, first);
}

}  // namespace tune
