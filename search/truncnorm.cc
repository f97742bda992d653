#include "search/truncnorm.h"

#include <algorithm>
#include <cmath>

namespace tune {
namespace {

using Eigen::ArrayXd;

constexpr double kPi = 3.14159265358979323846;
// erfc(x) for x >= 0 by Abramowitz & Stegun 7.1.26.
ArrayXd ErfcPositive(const ArrayXd& x) {
  const ArrayXd t = 1.0 / (1.0 + 0.3275911 * x);
  const ArrayXd poly =
      t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 +
                                                                       t * 1.061405429))));
  return poly * (-x.square()).exp();
}

}  // namespace

double Uniform01(std::mt19937_64& rng) {
  return static_cast<double>(rng() >> 11) * (1.0 / 9007199254740992.0);
}

double StandardNormal(std::mt19937_64& rng) {
  double u1 = 1.0 - Uniform01(rng);  // (0, 1]: log stays finite
  double u2 = Uniform01(rng);
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * kPi * u2);
}

double LogNormalMassOfTails(double za, double zb) {
  double mass;
  if (za >= 0) {
    mass = 0.5 * (std::erfc(za * M_SQRT1_2) - std::erfc(zb * M_SQRT1_2));
  } else if (zb <= 0) {
    mass = 0.5 * (std::erfc(-zb * M_SQRT1_2) - std::erfc(-za * M_SQRT1_2));
  } else {
    mass = 1.0 - 0.5 * (std::erfc(-za * M_SQRT1_2) + std::erfc(zb * M_SQRT1_2));
  }
  return std::log(std::max(mass, 1e-300));
}

ArrayXd NormalMass(const ArrayXd& za, const ArrayXd& zb) {
  // Written with the tail on the side of the interval so that far intervals keep their mass.
  const ArrayXd ea = ErfcPositive(za.abs() * M_SQRT1_2);
  const ArrayXd eb = ErfcPositive(zb.abs() * M_SQRT1_2);
  const ArrayXd right = 0.5 * (ea - eb);  // both >= 0
  const ArrayXd left = 0.5 * (eb - ea);   // both < 0
  const ArrayXd across = 1.0 - 0.5 * (ea + eb);
  return (za >= 0).select(right, (zb < 0).select(left, across)).max(1e-300);
}

double SampleTruncatedNormal(double mu, double sigma, double low, double high,
                             std::mt19937_64& rng) {
  double x = mu;
  for (int attempt = 0; attempt < 100; ++attempt) {
    double draw = mu + sigma * StandardNormal(rng);
    if (draw >= low && draw <= high) return draw;
    x = std::clamp(draw, low, high);
  }
  return x;
}

}  // namespace tune
