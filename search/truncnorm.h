// The standard normal distribution truncated to an interval: the maths of TPE's kernels (as
// Optuna's samplers/_tpe/_truncnorm.py is for its sampler). A kernel N(mu, sigma) truncated to
// [low, high] has density exp(-z^2 / 2) / (sigma sqrt(2 pi) M) at z = (x - mu) / sigma, where
// M = P(za <= Z <= zb) is its mass on the interval, za = (low - mu) / sigma, zb likewise.
//
// Example:
//   double log_mass = tune::LogNormalMass(-1.0, 2.0);          // log(0.8186...)
//   double x = tune::SampleTruncatedNormal(0.3, 0.5, 0, 1, rng);  // in [0, 1]
#pragma once

#include <Eigen/Core>
#include <random>

namespace tune {

constexpr double kLogSqrt2Pi = 0.91893853320467274178;  // log(sqrt(2 pi))

// Uniform in [0, 1) from the top 53 bits of one draw, and a standard normal by Box-Muller (one
// value from two draws): the same on every platform, unlike the <random> distributions.
double Uniform01(std::mt19937_64& rng);
double StandardNormal(std::mt19937_64& rng);

// Beyond this many sd a normal's tail mass (< 1e-17) is below double resolution next to 1.
constexpr double kFarZ = 8.5;

// log P(za <= Z <= zb) for za <= zb, in double precision (erfc on the side of the tail, so far
// intervals keep their small mass). Exactly 0 when the interval covers [-kFarZ, kFarZ] (checked
// inline: most kernels lie far inside their domain); at least log(1e-300).
double LogNormalMassOfTails(double za, double zb);
inline double LogNormalMass(double za, double zb) {
  return za <= -kFarZ && zb >= kFarZ ? 0.0 : LogNormalMassOfTails(za, zb);
}

// P(za <= Z <= zb) element-wise, za <= zb, by Abramowitz & Stegun 7.1.26 (absolute error
// < 1.5e-7; it keeps the tail's exp factor, so far intervals stay positive and roughly right in
// relative terms); at least 1e-300. For bin masses of many kernels at once.
Eigen::ArrayXd NormalMass(const Eigen::ArrayXd& za, const Eigen::ArrayXd& zb);

// A draw from N(mu, sigma) truncated to [low, high], by rejection: up to 100 tries, then the
// last try clamped to the interval (reached only when the kernel's mass there is tiny). Consumes
// two uniforms of `rng` per try.
double SampleTruncatedNormal(double mu, double sigma, double low, double high,
                             std::mt19937_64& rng);

}  // namespace tune
