#include "search/tpe.h"

#include <fmt/format.h>

#include <Eigen/Core>
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <limits>
#include <random>
#include <unordered_map>
#include <utility>
#include <vector>

namespace tune {
namespace {

using Eigen::ArrayXd;

constexpr double kPi = 3.14159265358979323846;
constexpr double kLogSqrt2Pi = 0.91893853320467274178;  // log(sqrt(2 pi))
constexpr double kInf = std::numeric_limits<double>::infinity();
// Dimensions with more values than this use the continuous density (see tpe.h).
constexpr double kMaxBinnedValues = 1000;
// Normal domains are searched within mean +- this many sd.
constexpr double kNormalReach = 5;
// Beyond this many sd a normal's tail mass (< 1e-17) is below double resolution next to 1.
constexpr double kFarZ = 8.5;

// ---- random numbers (portable, as in space.cc) -------------------------------------------------

double Uniform01(std::mt19937_64& rng) {
  return static_cast<double>(rng() >> 11) * (1.0 / 9007199254740992.0);
}

double StandardNormal(std::mt19937_64& rng) {
  double u1 = 1.0 - Uniform01(rng);
  double u2 = Uniform01(rng);
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * kPi * u2);
}

// Index k with cumulative[k - 1] <= u * total < cumulative[k]; `cumulative` is increasing.
std::size_t Pick(const std::vector<double>& cumulative, std::mt19937_64& rng) {
  double u = Uniform01(rng) * cumulative.back();
  auto it = std::upper_bound(cumulative.begin(), cumulative.end(), u);
  return std::min<std::size_t>(static_cast<std::size_t>(it - cumulative.begin()),
                               cumulative.size() - 1);
}

// ---- normal distribution, vectorised ----------------------------------------------------------

// erfc(x) for x >= 0 by Abramowitz & Stegun 7.1.26 (absolute error < 1.5e-7, and it keeps the
// tail's exp factor, so tails stay positive and roughly right in relative terms).
ArrayXd ErfcPositive(const ArrayXd& x) {
  const ArrayXd t = 1.0 / (1.0 + 0.3275911 * x);
  const ArrayXd poly =
      t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 +
                                                                       t * 1.061405429))));
  return poly * (-x.square()).exp();
}

// P(za <= Z <= zb) for a standard normal Z, element-wise, za <= zb. Written with the tail on
// the side of the interval so that far-away intervals keep their small mass.
ArrayXd StdNormalMass(const ArrayXd& za, const ArrayXd& zb) {
  const ArrayXd ea = ErfcPositive(za.abs() * M_SQRT1_2);
  const ArrayXd eb = ErfcPositive(zb.abs() * M_SQRT1_2);
  const ArrayXd right = 0.5 * (ea - eb);  // both >= 0
  const ArrayXd left = 0.5 * (eb - ea);   // both < 0
  const ArrayXd across = 1.0 - 0.5 * (ea + eb);
  return (za >= 0).select(right, (zb < 0).select(left, across)).max(1e-300);
}

// ---- dimensions -------------------------------------------------------------------------------

// One parameter as TPE sees it. Numeric values live in "kernel space": log(v) for log domains,
// v otherwise. Discrete values are first + k * step, k in [0, count].
struct Dim {
  bool categorical = false;
  std::size_t choices = 0;
  bool log = false;
  double step = 0;       // 0: continuous
  double first = 0;      // smallest value (discrete) or lower bound (continuous), original scale
  double last = 0;       // largest value / upper bound, original scale
  std::int64_t count = 0;  // discrete: index of the largest value
  bool binned = false;   // densities by bin mass (discrete with few values)
  double low = 0, high = 0;  // kernel-space bounds (discrete: widened by half a step)
  double prior_mu = 0, prior_sigma = 1;
  bool fixed = false;    // a single possible value
};

double ToKernelSpace(const Dim& dim, double value) { return dim.log ? std::log(value) : value; }

// The value (original scale) nearest to kernel-space point `x`, inside the domain.
double Snap(const Dim& dim, double x) {
  double value = dim.log ? std::exp(x) : x;
  if (dim.step > 0) {
    double k = std::clamp(std::round((value - dim.first) / dim.step), 0.0,
                          static_cast<double>(dim.count));
    return dim.first + k * dim.step;
  }
  return std::clamp(value, dim.first, dim.last);
}

// k * q printed cleanly (0.3, not 0.30000000000000004), as space.cc does.
double QuantizedValue(double k, double q) {
  double inverse = 1.0 / q;
  double whole = std::round(inverse);
  if (whole >= 1 && std::fabs(inverse - whole) <= 1e-9 * whole) return k / whole;
  return k * q;
}

Dim MakeDim(const Parameter& parameter) {
  const Domain& domain = parameter.domain;
  Dim dim;
  if (domain.kind == DomainKind::kChoice) {
    dim.categorical = true;
    dim.choices = domain.values.size();
    dim.fixed = dim.choices == 1;
    return dim;
  }
  double low = domain.low, high = domain.high, q = domain.q;
  dim.log = domain.kind == DomainKind::kLogUniform || domain.kind == DomainKind::kLogRandInt;
  switch (domain.kind) {
    case DomainKind::kUniform:
    case DomainKind::kLogUniform:
      break;
    case DomainKind::kRandInt:
    case DomainKind::kLogRandInt:
      high -= 1;  // stored exclusive
      if (q <= 0) q = 1;
      break;
    case DomainKind::kNormal:
      low = domain.mean - kNormalReach * domain.sd;
      high = domain.mean + kNormalReach * domain.sd;
      break;
    case DomainKind::kChoice:
    case DomainKind::kGrid:
      break;
  }
  if (q > 0) {
    // The multiples of q inside [low, high] (positive ones for log domains).
    double slack_low = 1e-9 + 8 * DBL_EPSILON * std::fabs(low / q);
    double slack_high = 1e-9 + 8 * DBL_EPSILON * std::fabs(high / q);
    double first = std::ceil(low / q - slack_low), last = std::floor(high / q + slack_high);
    if (dim.log) first = std::max(first, 1.0);
    dim.step = q;
    dim.first = first * q;
    dim.last = last * q;
    dim.count = static_cast<std::int64_t>(last - first);
    dim.binned = dim.count < kMaxBinnedValues;
    dim.low = ToKernelSpace(dim, dim.first - 0.5 * q);
    dim.high = ToKernelSpace(dim, dim.last + 0.5 * q);
    dim.fixed = dim.count == 0;
  } else {
    dim.first = low;
    dim.last = high;
    dim.low = ToKernelSpace(dim, low);
    dim.high = ToKernelSpace(dim, high);
    dim.fixed = !(high > low);
  }
  dim.prior_mu = 0.5 * (dim.low + dim.high);
  dim.prior_sigma = dim.high - dim.low;
  if (domain.kind == DomainKind::kNormal) {
    dim.prior_mu = domain.mean;
    dim.prior_sigma = domain.sd;
  }
  return dim;
}

// The JSON value for `value` of parameter `parameter` (an index for categoricals).
Json ToJson(const Parameter& parameter, const Dim& dim, double value) {
  const Domain& domain = parameter.domain;
  if (dim.categorical) return domain.values[static_cast<std::size_t>(value)];
  if (domain.integer) return static_cast<std::int64_t>(std::llround(value));
  if (dim.step > 0) {
    double x = QuantizedValue(std::round(value / dim.step), dim.step);
    if (domain.kind != DomainKind::kNormal) x = std::clamp(x, domain.low, domain.high);
    return x;
  }
  return value;
}

// The kernel-space coordinate of a config's value (a choice index for categoricals).
double FromJson(const Parameter& parameter, const Dim& dim, const Json& value) {
  if (dim.categorical) {
    const auto& values = parameter.domain.values;
    auto it = std::find(values.begin(), values.end(), value);
    return static_cast<double>(it == values.end() ? 0 : it - values.begin());
  }
  return ToKernelSpace(dim, value.get<double>());
}

// Optuna's default_weights(n) for the trial of rank `rank` (0 = oldest) among n.
double DefaultWeight(std::size_t rank, std::size_t n) {
  constexpr std::size_t kFlat = 25;
  if (n < kFlat || rank >= n - kFlat) return 1.0;
  std::size_t ramp = n - kFlat;
  if (ramp == 1) return 1.0 / static_cast<double>(n);
  double start = 1.0 / static_cast<double>(n);
  return start + (1.0 - start) * static_cast<double>(rank) / static_cast<double>(ramp - 1);
}

// ---- Parzen estimators ------------------------------------------------------------------------

// Kernels of one numeric dimension, the prior last. Weights are normalised over all kernels.
struct NumericKernels {
  ArrayXd mu, sigma, weight;
  ArrayXd inv_sigma;
  ArrayXd log_norm;  // -log(sigma Z sqrt(2 pi)) for continuous; -log(Z) for binned
  ArrayXd coef;      // weight * exp(log_norm)
  std::vector<double> cumulative;
  // Binned dimensions: kernels sharing (mu, sigma) share their bin masses, so those are
  // computed once per distinct pair (ints and quantized values repeat a lot).
  std::vector<Eigen::Index> distinct_of;  // kernel -> index into the distinct_ arrays
  ArrayXd distinct_mu, distinct_inv_sigma, distinct_log_norm;
  ArrayXd distinct_coef;  // summed coef of the kernels sharing the pair
  // Continuous dimensions, for the float fast path: mu as (mu - low) / range, range / sigma.
  Eigen::ArrayXf unit_mu, unit_inv_sigma, coef_f;
  // Univariate continuous dimensions with many kernels: the kernels split into a few "wide" ones
  // (always evaluated, the prior among them) and "narrow" ones (sigma <= a cap) sorted by mu, of
  // which only those within `reach` (unit coordinates) of x are evaluated (see BuildWindow).
  bool windowed = false;
  float reach = 0;
  Eigen::ArrayXf narrow_mu, narrow_inv_sigma, narrow_coef;
  Eigen::ArrayXf wide_mu, wide_inv_sigma, wide_coef;
};

// Kernels of one categorical dimension. Kernel k (an observation) puts
// (base + [c == choice_k]) / (1 + choices * base) on choice c; the prior kernel is uniform.
struct CategoricalKernels {
  std::vector<int> choice;  // per observation kernel
  ArrayXd weight;           // observations, then the prior
  double base = 0;
  std::vector<double> probs;  // the mixture's probability of each choice (univariate)
  std::vector<double> cumulative;
};

void FindDistinct(NumericKernels* kernels) {
  struct PairHash {
    std::size_t operator()(const std::pair<double, double>& p) const {
      return std::hash<double>()(p.first) * 31 + std::hash<double>()(p.second);
    }
  };
  const Eigen::Index n = kernels->mu.size();
  kernels->distinct_of.resize(static_cast<std::size_t>(n));
  std::vector<double> mu, sigma;
  // Univariate kernels come sorted by mu (the prior last): equal pairs then lie in one run of
  // equal mus, searched linearly (a run holds very few distinct sigmas). Otherwise hash.
  const ArrayXd& all_mu = kernels->mu;
  if (n < 2 || std::is_sorted(all_mu.data(), all_mu.data() + n - 1)) {
    std::size_t run = 0;
    for (Eigen::Index k = 0; k < n; ++k) {
      const double m = all_mu[k], s = kernels->sigma[k];
      if (k == 0 || m != all_mu[k - 1]) run = mu.size();
      std::size_t j = run;
      while (j < mu.size() && !(mu[j] == m && sigma[j] == s)) ++j;
      if (j == mu.size()) {
        mu.push_back(m);
        sigma.push_back(s);
      }
      kernels->distinct_of[static_cast<std::size_t>(k)] = static_cast<Eigen::Index>(j);
    }
  } else {
    std::unordered_map<std::pair<double, double>, Eigen::Index, PairHash> seen;
    for (Eigen::Index k = 0; k < n; ++k) {
      auto [it, inserted] = seen.emplace(std::make_pair(kernels->mu[k], kernels->sigma[k]),
                                         static_cast<Eigen::Index>(mu.size()));
      if (inserted) {
        mu.push_back(kernels->mu[k]);
        sigma.push_back(kernels->sigma[k]);
      }
      kernels->distinct_of[static_cast<std::size_t>(k)] = it->second;
    }
  }
  const auto m = static_cast<Eigen::Index>(mu.size());
  kernels->distinct_mu = Eigen::Map<const ArrayXd>(mu.data(), m);
  kernels->distinct_inv_sigma = Eigen::Map<const ArrayXd>(sigma.data(), m).inverse();
}

// `joint`: only what joint scoring and sampling read (no coef, coef_f, cumulative).
void Finish(const Dim& dim, NumericKernels* kernels, bool width_free, bool joint = false) {
  if (dim.binned) {
    FindDistinct(kernels);
    const ArrayXd& mu = kernels->distinct_mu;
    const ArrayXd& inv_sigma = kernels->distinct_inv_sigma;
    kernels->distinct_log_norm =
        -StdNormalMass((dim.low - mu) * inv_sigma, (dim.high - mu) * inv_sigma).log();
    kernels->log_norm.resize(kernels->mu.size());
    kernels->inv_sigma = kernels->sigma.inverse();
    if (joint) {
      for (Eigen::Index k = 0; k < kernels->mu.size(); ++k) {
        kernels->log_norm[k] = kernels->distinct_log_norm[kernels->distinct_of[static_cast<std::size_t>(k)]];
      }
      return;
    }
    kernels->distinct_coef = ArrayXd::Zero(mu.size());
    for (Eigen::Index k = 0; k < kernels->mu.size(); ++k) {
      Eigen::Index j = kernels->distinct_of[static_cast<std::size_t>(k)];
      kernels->log_norm[k] = kernels->distinct_log_norm[j];
      kernels->distinct_coef[j] += kernels->weight[k] * std::exp(kernels->distinct_log_norm[j]);
    }
    kernels->coef = kernels->weight * kernels->log_norm.exp();
  } else {
    kernels->inv_sigma = kernels->sigma.inverse();
    // The truncation mass of each kernel; most kernels are narrow and far from both bounds,
    // where it is 1 to double precision, so only the others pay for erfc.
    kernels->log_norm.resize(kernels->mu.size());
    for (Eigen::Index k = 0; k < kernels->mu.size(); ++k) {
      const double za = (dim.low - kernels->mu[k]) * kernels->inv_sigma[k];
      const double zb = (dim.high - kernels->mu[k]) * kernels->inv_sigma[k];
      double log_mass = 0;
      if (za > -kFarZ || zb < kFarZ) {
        double mass;
        if (za >= 0) {
          mass = 0.5 * (std::erfc(za * M_SQRT1_2) - std::erfc(zb * M_SQRT1_2));
        } else if (zb <= 0) {
          mass = 0.5 * (std::erfc(-zb * M_SQRT1_2) - std::erfc(-za * M_SQRT1_2));
        } else {
          mass = 1.0 - 0.5 * (std::erfc(-za * M_SQRT1_2) + std::erfc(zb * M_SQRT1_2));
        }
        log_mass = std::log(std::max(mass, 1e-300));
      }
      kernels->log_norm[k] = -log_mass - kLogSqrt2Pi;
    }
    if (!width_free) kernels->log_norm -= kernels->sigma.log();
    const double range = dim.high - dim.low;
    kernels->unit_mu = ((kernels->mu - dim.low) / range).cast<float>();
    kernels->unit_inv_sigma = (kernels->inv_sigma * range).cast<float>();
    if (joint) return;
    kernels->coef = kernels->weight * kernels->log_norm.exp();
    kernels->coef_f = kernels->coef.cast<float>();
  }
  kernels->cumulative.resize(static_cast<std::size_t>(kernels->weight.size()));
  double sum = 0;
  for (Eigen::Index k = 0; k < kernels->weight.size(); ++k) {
    sum += kernels->weight[k];
    kernels->cumulative[static_cast<std::size_t>(k)] = sum;
  }
}

// Prepares the windowed evaluation of a univariate continuous mixture whose observation kernels
// (all but the last, the prior) are sorted by mu. A kernel at z = |x - mu| / sigma > c adds at
// most coef exp(-c^2 / 2) to the density, and the density is at least the prior's term
// coef_prior exp(-z_prior^2 / 2) (z_prior <= the prior's reach to the farther bound); c is chosen
// so that all kernels skipped together add less than kWindowError of the density. Narrow kernels
// (sigma <= cap) farther than c * cap from x are skipped; wide ones are always evaluated. The cap
// is the sigma below which 15/16 of the kernels lie (with the magic clip most kernels share the
// smallest sigma), so at most n/16 kernels are wide.
constexpr double kWindowError = 1e-6;
constexpr Eigen::Index kWindowMinKernels = 128;

void BuildWindow(NumericKernels* kernels) {
  const Eigen::Index n = kernels->mu.size() - 1;  // observation kernels; the prior is at n
  if (n < kWindowMinKernels) return;
  const Eigen::ArrayXf& mu = kernels->unit_mu;
  const Eigen::ArrayXf& inv_sigma = kernels->unit_inv_sigma;
  const Eigen::ArrayXf& coef = kernels->coef_f;
  std::vector<float> sigmas(static_cast<std::size_t>(n));
  for (Eigen::Index k = 0; k < n; ++k) sigmas[static_cast<std::size_t>(k)] = 1.0f / inv_sigma[k];
  const auto at = static_cast<std::ptrdiff_t>(n - n / 16 - 1);
  std::nth_element(sigmas.begin(), sigmas.begin() + at, sigmas.end());
  const float cap = sigmas[static_cast<std::size_t>(at)];
  const double prior_z = std::max(std::fabs(static_cast<double>(mu[n])),
                                  std::fabs(1.0 - static_cast<double>(mu[n]))) *
                         static_cast<double>(inv_sigma[n]);
  const double floor = static_cast<double>(coef[n]) * std::exp(-0.5 * prior_z * prior_z);
  const double total = coef.cast<double>().sum();
  if (!(floor > 0) || !std::isfinite(total)) return;
  const double c = std::sqrt(2.0 * std::log(std::max(total / (kWindowError * floor), 1.0)));
  Eigen::Index n_narrow = 0;
  for (Eigen::Index k = 0; k < n; ++k) n_narrow += 1.0f / inv_sigma[k] <= cap;
  const Eigen::Index n_wide = n - n_narrow + 1;  // and the prior
  kernels->narrow_mu.resize(n_narrow);
  kernels->narrow_inv_sigma.resize(n_narrow);
  kernels->narrow_coef.resize(n_narrow);
  kernels->wide_mu.resize(n_wide);
  kernels->wide_inv_sigma.resize(n_wide);
  kernels->wide_coef.resize(n_wide);
  Eigen::Index i_narrow = 0, i_wide = 0;
  for (Eigen::Index k = 0; k <= n; ++k) {
    if (k < n && 1.0f / inv_sigma[k] <= cap) {
      kernels->narrow_mu[i_narrow] = mu[k];
      kernels->narrow_inv_sigma[i_narrow] = inv_sigma[k];
      kernels->narrow_coef[i_narrow++] = coef[k];
    } else {
      kernels->wide_mu[i_wide] = mu[k];
      kernels->wide_inv_sigma[i_wide] = inv_sigma[k];
      kernels->wide_coef[i_wide++] = coef[k];
    }
  }
  kernels->reach = static_cast<float>(c * static_cast<double>(cap)) * 1.0001f;
  kernels->windowed = true;
}

// Kernel widths for observations `mus` (sorted ascending) of one dimension: the larger gap to
// the neighbours among the observations and the prior's centre, clipped to [magic clip, range].
void NeighbourSigmas(const Dim& dim, const std::vector<double>& mus, const TpeOptions& options,
                     double* sigma) {
  const std::size_t n = mus.size();
  const double range = dim.high - dim.low;
  if (n > 0) {
    // Neighbour gaps among the observations and the prior's centre, with the bounds as the
    // outermost neighbours (Optuna's consider_endpoints=False replaces the outermost gaps).
    thread_local std::vector<double> points, sorted_sigma;
    points.clear();
    points.reserve(n + 3);
    points.push_back(dim.low);
    std::size_t prior_slot = static_cast<std::size_t>(
        std::upper_bound(mus.begin(), mus.end(), dim.prior_mu) - mus.begin());
    for (std::size_t i = 0; i <= n; ++i) {
      if (i == prior_slot) points.push_back(dim.prior_mu);
      if (i < n) points.push_back(mus[i]);
    }
    points.push_back(dim.high);
    const std::size_t m = n + 1;  // points[1..m] are the kernels in sorted order
    sorted_sigma.resize(m);
    for (std::size_t j = 1; j <= m; ++j) {
      sorted_sigma[j - 1] = std::max(points[j] - points[j - 1], points[j + 1] - points[j]);
    }
    if (!options.consider_endpoints && m >= 2) {
      sorted_sigma[0] = points[2] - points[1];
      sorted_sigma[m - 1] = points[m] - points[m - 1];
    }
    for (std::size_t j = 0; j < m; ++j) {
      if (j == prior_slot) continue;
      std::size_t i = j < prior_slot ? j : j - 1;
      sigma[i] = sorted_sigma[j];
    }
  }
  const double min_sigma = range / std::min(100.0, static_cast<double>(n + 2));
  for (std::size_t i = 0; i < n; ++i) sigma[i] = std::clamp(sigma[i], min_sigma, range);
}

// Mixture kernels at `mus` with widths `sigmas` (either order), the prior appended last.
NumericKernels MakeNumeric(const Dim& dim, const std::vector<double>& mus,
                           const std::vector<double>& sigmas,
                           const std::vector<double>& raw_weights, const TpeOptions& options,
                           bool width_free, bool joint = false) {
  const std::size_t n = mus.size();
  NumericKernels kernels;
  kernels.mu.resize(static_cast<Eigen::Index>(n + 1));
  kernels.sigma.resize(static_cast<Eigen::Index>(n + 1));
  kernels.weight.resize(static_cast<Eigen::Index>(n + 1));
  double total = options.prior_weight;
  for (std::size_t i = 0; i < n; ++i) total += raw_weights[i];
  for (std::size_t i = 0; i < n; ++i) {
    kernels.mu[static_cast<Eigen::Index>(i)] = mus[i];
    kernels.sigma[static_cast<Eigen::Index>(i)] = sigmas[i];
    kernels.weight[static_cast<Eigen::Index>(i)] = raw_weights[i] / total;
  }
  kernels.mu[static_cast<Eigen::Index>(n)] = dim.prior_mu;
  kernels.sigma[static_cast<Eigen::Index>(n)] = dim.prior_sigma;
  kernels.weight[static_cast<Eigen::Index>(n)] = options.prior_weight / total;
  Finish(dim, &kernels, width_free, joint);
  return kernels;
}

// `mus` sorted ascending with their raw weights; univariate widths from neighbour gaps, or a
// fixed Scott-like width when `scott_sigma` > 0 (then `mus` need not be sorted).
NumericKernels FitNumeric(const Dim& dim, const std::vector<double>& mus,
                          const std::vector<double>& raw_weights, const TpeOptions& options,
                          double scott_sigma, bool width_free) {
  std::vector<double> sigmas(mus.size(), scott_sigma);
  if (scott_sigma <= 0) NeighbourSigmas(dim, mus, options, sigmas.data());
  NumericKernels kernels = MakeNumeric(dim, mus, sigmas, raw_weights, options, width_free);
  if (scott_sigma <= 0 && !dim.binned) BuildWindow(&kernels);
  return kernels;
}

CategoricalKernels FitCategorical(const Dim& dim, const std::vector<int>& choices,
                                  const std::vector<double>& raw_weights,
                                  const TpeOptions& options) {
  const std::size_t n = choices.size();
  CategoricalKernels kernels;
  kernels.choice = choices;
  kernels.weight.resize(static_cast<Eigen::Index>(n + 1));
  const double prior_weight = options.categorical_prior_weight;
  double total = prior_weight;
  for (std::size_t i = 0; i < n; ++i) total += raw_weights[i];
  for (std::size_t i = 0; i < n; ++i) kernels.weight[static_cast<Eigen::Index>(i)] = raw_weights[i] / total;
  kernels.weight[static_cast<Eigen::Index>(n)] = prior_weight / total;
  kernels.base = prior_weight / static_cast<double>(n + 1);
  const double row = 1.0 + static_cast<double>(dim.choices) * kernels.base;
  kernels.probs.assign(dim.choices, 0.0);
  double observed = 0;
  for (std::size_t i = 0; i < n; ++i) {
    double w = kernels.weight[static_cast<Eigen::Index>(i)];
    kernels.probs[static_cast<std::size_t>(choices[i])] += w / row;
    observed += w;
  }
  const double spread =
      observed * kernels.base / row + kernels.weight[static_cast<Eigen::Index>(n)] / static_cast<double>(dim.choices);
  double sum = 0;
  kernels.cumulative.resize(dim.choices);
  for (std::size_t c = 0; c < dim.choices; ++c) {
    kernels.probs[c] += spread;
    sum += kernels.probs[c];
    kernels.cumulative[c] = sum;
  }
  return kernels;
}

// A kernel-space draw from kernel k, truncated to the bounds, snapped to the domain; returns the
// kernel-space coordinate of the snapped value.
double SampleKernel(const Dim& dim, const NumericKernels& kernels, Eigen::Index k,
                    std::mt19937_64& rng) {
  const double mu = kernels.mu[k], sigma = kernels.sigma[k];
  double x = mu;
  for (int attempt = 0; attempt < 100; ++attempt) {
    double draw = mu + sigma * StandardNormal(rng);
    if (draw >= dim.low && draw <= dim.high) {
      x = draw;
      break;
    }
    x = std::clamp(draw, dim.low, dim.high);
  }
  return ToKernelSpace(dim, Snap(dim, x));
}

int SampleChoice(const Dim& dim, const CategoricalKernels& kernels, Eigen::Index k,
                 std::mt19937_64& rng) {
  const bool prior = k == kernels.weight.size() - 1;
  const double row = prior ? 1.0 : 1.0 + static_cast<double>(dim.choices) * kernels.base;
  double u = Uniform01(rng) * row;
  const double each = prior ? 1.0 / static_cast<double>(dim.choices) : kernels.base;
  double sum = 0;
  for (std::size_t c = 0; c < dim.choices; ++c) {
    sum += each + (!prior && kernels.choice[static_cast<std::size_t>(k)] == static_cast<int>(c) ? 1.0 : 0.0);
    if (u < sum) return static_cast<int>(c);
  }
  return static_cast<int>(dim.choices) - 1;
}

// log of the per-kernel density (continuous) or bin mass (binned) at kernel-space point x,
// before weights: log_norm - z^2 / 2, or log(mass) + log_norm.
ArrayXd KernelLogDensity(const Dim& dim, const NumericKernels& kernels, double x) {
  if (dim.binned) {
    double value = dim.log ? std::exp(x) : x;
    value = Snap(dim, ToKernelSpace(dim, value));
    double a = std::max(dim.low, ToKernelSpace(dim, value - 0.5 * dim.step));
    double b = std::min(dim.high, ToKernelSpace(dim, value + 0.5 * dim.step));
    const ArrayXd distinct =
        StdNormalMass((a - kernels.distinct_mu) * kernels.distinct_inv_sigma,
                      (b - kernels.distinct_mu) * kernels.distinct_inv_sigma)
            .log() +
        kernels.distinct_log_norm;
    ArrayXd out(kernels.mu.size());
    for (Eigen::Index k = 0; k < out.size(); ++k) {
      out[k] = distinct[kernels.distinct_of[static_cast<std::size_t>(k)]];
    }
    return out;
  }
  return kernels.log_norm - 0.5 * ((x - kernels.mu) * kernels.inv_sigma).square();
}

double LogSumExp(const ArrayXd& values) {
  double top = values.maxCoeff();
  if (!std::isfinite(top)) return top;
  return top + std::log((values - top).exp().sum());
}

// sum_k coef_k exp(-((x - mu_k) inv_sigma_k)^2 / 2) in float. The exponent goes through a
// scratch array: an assignment loop inlines Eigen's packet exp, a reduction over the whole
// expression does not.
template <typename A>
double SumKernels(const A& mu, const A& inv_sigma, const A& coef, float x) {
  thread_local Eigen::ArrayXf scratch;
  scratch.resize(mu.size());
  scratch = (-0.5f * ((x - mu) * inv_sigma).square()).exp();
  return static_cast<double>((coef * scratch).sum());
}

// log of the univariate mixture density at x.
double MixtureLogDensity(const Dim& dim, const NumericKernels& kernels, double x) {
  double sum;
  if (dim.binned) {
    double value = Snap(dim, x);
    double a = std::max(dim.low, ToKernelSpace(dim, value - 0.5 * dim.step));
    double b = std::min(dim.high, ToKernelSpace(dim, value + 0.5 * dim.step));
    sum = (kernels.distinct_coef *
           StdNormalMass((a - kernels.distinct_mu) * kernels.distinct_inv_sigma,
                         (b - kernels.distinct_mu) * kernels.distinct_inv_sigma))
              .sum();
  } else {
    // Float arithmetic (4 exps per SSE instruction), in unit coordinates so that a domain far
    // from 0 keeps its resolution; relative error ~1e-6, far below what decides the argmax.
    // Falls back to double log-sum-exp when every kernel underflows.
    const auto unit_x = static_cast<float>((x - dim.low) / (dim.high - dim.low));
    if (kernels.windowed) {
      const float* begin = kernels.narrow_mu.data();
      const float* end = begin + kernels.narrow_mu.size();
      const float* lo = std::lower_bound(begin, end, unit_x - kernels.reach);
      const float* hi = std::upper_bound(lo, end, unit_x + kernels.reach);
      const Eigen::Index first = lo - begin, count = hi - lo;
      sum = SumKernels(kernels.narrow_mu.segment(first, count),
                       kernels.narrow_inv_sigma.segment(first, count),
                       kernels.narrow_coef.segment(first, count), unit_x) +
            SumKernels(kernels.wide_mu, kernels.wide_inv_sigma, kernels.wide_coef, unit_x);
    } else {
      sum = SumKernels(kernels.unit_mu, kernels.unit_inv_sigma, kernels.coef_f, unit_x);
    }
    if (sum > 1e-30 && std::isfinite(sum)) return std::log(sum);
    sum = 0;
  }
  if (sum > 0 && std::isfinite(sum)) return std::log(sum);
  return LogSumExp(kernels.weight.log() + KernelLogDensity(dim, kernels, x));
}

// Reorders the observation kernels of a fitted (unwindowed) estimator: kernel i moves to
// slots[i]; the prior stays last. Only what joint scoring and sampling read is kept.
void PermuteKernels(const std::vector<std::size_t>& slots, NumericKernels* kernels) {
  thread_local ArrayXd scratch;
  thread_local Eigen::ArrayXf scratch_f;
  auto permute = [&](auto& array, auto& copy) {
    copy = array;
    for (std::size_t i = 0; i < slots.size(); ++i) {
      array[static_cast<Eigen::Index>(slots[i])] = copy[static_cast<Eigen::Index>(i)];
    }
  };
  permute(kernels->mu, scratch);
  permute(kernels->sigma, scratch);
  permute(kernels->log_norm, scratch);
  if (kernels->unit_mu.size() > 0) {
    permute(kernels->unit_mu, scratch_f);
    permute(kernels->unit_inv_sigma, scratch_f);
  }
  if (!kernels->distinct_of.empty()) {
    thread_local std::vector<Eigen::Index> copy;
    copy = kernels->distinct_of;
    for (std::size_t i = 0; i < slots.size(); ++i) kernels->distinct_of[slots[i]] = copy[i];
  }
  // Not permuted (joint scoring and sampling do not read them): weight, inv_sigma, coef,
  // coef_f, cumulative; cleared so that nothing reads them by mistake.
  kernels->weight.resize(0);
  kernels->inv_sigma.resize(0);
  kernels->coef.resize(0);
  kernels->coef_f.resize(0);
  kernels->cumulative.clear();
}

// ---- the searcher -----------------------------------------------------------------------------

class TpeSearcher : public Searcher {
 public:
  TpeSearcher(const Space& space, const SearcherOptions& options, const TpeOptions& tpe,
              std::vector<std::vector<PointValue>> points)
      : space_(space),
        tpe_(tpe),
        metric_(options.metric),
        mode_(options.mode),
        num_samples_(options.num_samples),
        rng_(options.seed),
        points_(std::move(points)) {
    for (const Parameter& parameter : space_.parameters()) dims_.push_back(MakeDim(parameter));
    sorted_.resize(dims_.size());
    sorted_x_.resize(dims_.size());
    std::mt19937_64 scratch(0);
    template_ = space_.Sample(scratch, 0);
  }

  Suggestion Suggest(const std::string& trial_id) override {
    if (static_cast<std::int64_t>(trials_.size()) >= num_samples_) {
      return Suggestion{Suggestion::Kind::kFinished, Json()};
    }
    Json config;
    if (next_point_ < points_.size()) {
      config = space_.Sample(rng_, 0);
      for (const PointValue& value : points_[next_point_]) {
        config[space_.parameters()[value.index].pointer] = value.value;
      }
      ++next_point_;
    } else {
      config = Propose();
    }
    Register(trial_id, config);
    return Suggestion{Suggestion::Kind::kConfig, std::move(config)};
  }

  void OnResult(const std::string& trial_id, const Result& result) override {
    auto it = index_.find(trial_id);
    if (it == index_.end()) return;
    Record(&trials_[it->second], result);
  }

  void OnComplete(const std::string& trial_id, TrialStatus status, const Result* last) override {
    auto it = index_.find(trial_id);
    if (it == index_.end()) return;
    Trial& trial = trials_[it->second];
    if (trial.state != State::kRunning) return;
    if (last != nullptr && trial.curve.empty()) Record(&trial, *last);
    switch (status) {
      case TrialStatus::kTerminated:
        trial.state = State::kDone;
        break;
      case TrialStatus::kStopped:
        trial.state = State::kPruned;
        break;
      default:
        trial.state = State::kFailed;
        break;
    }
  }

  std::int64_t TotalTrials() const override { return num_samples_; }

 private:
  enum class State { kRunning, kDone, kPruned, kFailed };
  struct Trial {
    std::vector<double> x;  // kernel-space coordinates (choice index for categoricals)
    State state = State::kRunning;
    std::vector<std::pair<double, double>> curve;  // (budget, loss), in report order
  };
  // Ranking key of an observation: lower is better, lexicographically.
  struct Key {
    int tier;           // 0: ranked by loss; 1: pruned (by budget, then loss); 2: pending (liar)
    double neg_budget;  // -budget reached (tier 1)
    double loss;
    std::size_t trial;
    bool operator<(const Key& other) const {
      if (tier != other.tier) return tier < other.tier;
      if (neg_budget != other.neg_budget) return neg_budget < other.neg_budget;
      if (loss != other.loss) return loss < other.loss;
      return trial < other.trial;
    }
  };
  static constexpr signed char kNone = -1, kBelow = 0, kAbove = 1;

  void Record(Trial* trial, const Result& result) {
    double value = result.Get(metric_);
    if (std::isnan(value)) return;
    double budget = result.Get(tpe_.budget_attr);
    if (std::isnan(budget)) budget = static_cast<double>(result.training_iteration);
    trial->curve.emplace_back(budget, mode_ == Mode::kMax ? -value : value);
  }

  void Register(const std::string& trial_id, const Json& config) {
    Trial trial;
    const auto& parameters = space_.parameters();
    for (std::size_t d = 0; d < dims_.size(); ++d) {
      trial.x.push_back(FromJson(parameters[d], dims_[d], config[parameters[d].pointer]));
    }
    const std::size_t index = trials_.size();
    trials_.push_back(std::move(trial));
    index_.emplace(trial_id, index);
    for (std::size_t d = 0; d < dims_.size(); ++d) {
      auto& order = sorted_[d];
      auto& coordinates = sorted_x_[d];
      const double x = trials_[index].x[d];
      auto at = std::upper_bound(coordinates.begin(), coordinates.end(), x) - coordinates.begin();
      order.insert(order.begin() + at, index);
      coordinates.insert(coordinates.begin() + at, x);
    }
  }

  // Assigns every trial to kBelow, kAbove or kNone; returns the number of real (not liar)
  // observations.
  std::size_t Split(std::vector<signed char>* group) {
    group->assign(trials_.size(), kNone);
    std::vector<Key> keys;
    keys.reserve(trials_.size());
    std::size_t real = 0;
    if (tpe_.intermediate == TpeOptions::Intermediate::kBudget) {
      real = BudgetKeys(&keys);
    } else {
      for (std::size_t t = 0; t < trials_.size(); ++t) {
        const Trial& trial = trials_[t];
        if (trial.state == State::kFailed) continue;
        if (trial.state == State::kRunning) continue;
        if (trial.curve.empty()) continue;
        const auto& [budget, loss] = trial.curve.back();
        if (trial.state == State::kPruned && tpe_.intermediate == TpeOptions::Intermediate::kRank) {
          keys.push_back({1, -budget, loss, t});
        } else {
          keys.push_back({0, 0, loss, t});
        }
      }
      real = keys.size();
    }
    if (tpe_.constant_liar) {
      for (std::size_t t = 0; t < trials_.size(); ++t) {
        if (trials_[t].state == State::kRunning) keys.push_back({2, 0, 0, t});
      }
    }
    const std::size_t n = keys.size();
    std::size_t below = tpe_.gamma > 0
                            ? static_cast<std::size_t>(std::ceil(tpe_.gamma * static_cast<double>(n)))
                            : std::min<std::size_t>((n + 9) / 10, 25);
    below = std::min(below, n);
    if (below > 0 && below < n) {
      std::nth_element(keys.begin(), keys.begin() + static_cast<std::ptrdiff_t>(below), keys.end());
    }
    for (std::size_t i = 0; i < n; ++i) (*group)[keys[i].trial] = i < below ? kBelow : kAbove;
    return real;
  }

  // BOHB: the largest budget at least max(n_startup_trials, d + 1) ended trials reached (all of
  // them when fewer), and each such trial's loss at that budget.
  std::size_t BudgetKeys(std::vector<Key>* keys) {
    std::vector<double> reached;
    for (const Trial& trial : trials_) {
      if (trial.state == State::kDone || trial.state == State::kPruned) {
        if (!trial.curve.empty()) reached.push_back(MaxBudget(trial));
      }
    }
    if (reached.empty()) return 0;
    std::size_t need = std::max<std::size_t>(static_cast<std::size_t>(tpe_.n_startup_trials),
                                             dims_.size() + 1);
    need = std::clamp<std::size_t>(need, 1, reached.size());
    std::nth_element(reached.begin(), reached.begin() + static_cast<std::ptrdiff_t>(need - 1),
                     reached.end(), std::greater<double>());
    const double budget = reached[need - 1];
    for (std::size_t t = 0; t < trials_.size(); ++t) {
      const Trial& trial = trials_[t];
      if ((trial.state != State::kDone && trial.state != State::kPruned) || trial.curve.empty()) {
        continue;
      }
      if (MaxBudget(trial) < budget) continue;
      double loss = trial.curve.front().second;
      for (const auto& [b, l] : trial.curve) {
        if (b <= budget) loss = l;
      }
      keys->push_back({0, 0, loss, t});
    }
    return keys->size();
  }

  static double MaxBudget(const Trial& trial) {
    double top = -kInf;
    for (const auto& point : trial.curve) top = std::max(top, point.first);
    return top;
  }

  // Weights by age inside each group (trial order = age).
  std::vector<double> Weights(const std::vector<signed char>& group, std::size_t n_below,
                              std::size_t n_above) const {
    std::vector<double> weights(trials_.size(), 0.0);
    std::size_t rank[2] = {0, 0};
    const std::size_t size[2] = {n_below, n_above};
    for (std::size_t t = 0; t < trials_.size(); ++t) {
      if (group[t] == kNone) continue;
      auto g = static_cast<std::size_t>(group[t]);
      weights[t] = DefaultWeight(rank[g]++, size[g]);
    }
    return weights;
  }

  Json Propose() {
    std::vector<signed char> group;
    const std::size_t real = Split(&group);
    if (real < static_cast<std::size_t>(tpe_.n_startup_trials) || real == 0) {
      return space_.Sample(rng_, 0);
    }
    std::size_t n_below = 0, n_above = 0;
    for (signed char g : group) {
      if (g == kBelow) ++n_below;
      if (g == kAbove) ++n_above;
    }
    // Width-free scoring only without liars: it dilutes the narrow kernels of pending trials,
    // which is what keeps concurrent suggestions apart (see tpe.h).
    width_free_ = tpe_.width_free_density && n_below + n_above == real;
    const std::vector<double> weights = Weights(group, n_below, n_above);
    std::vector<double> chosen(dims_.size(), 0.0);
    // Univariate for the first multivariate_after observations, joint after, but only when no
    // pending trial (liar) is in the model (see tpe.h).
    const bool joint =
        tpe_.multivariate ||
        (real >= static_cast<std::size_t>(tpe_.multivariate_after) && n_below + n_above == real);
    if (joint) {
      ProposeJoint(group, weights, n_below, n_above, &chosen);
    } else {
      for (std::size_t d = 0; d < dims_.size(); ++d) chosen[d] = ProposeOne(d, group, weights);
    }
    Json config = template_;
    const auto& parameters = space_.parameters();
    for (std::size_t d = 0; d < dims_.size(); ++d) {
      const Dim& dim = dims_[d];
      double value = dim.categorical ? chosen[d] : Snap(dim, chosen[d]);
      config[parameters[d].pointer] = ToJson(parameters[d], dim, value);
    }
    return config;
  }

  // Univariate TPE on dimension d; returns the kernel-space coordinate (or choice index).
  double ProposeOne(std::size_t d, const std::vector<signed char>& group,
                    const std::vector<double>& weights) {
    const Dim& dim = dims_[d];
    if (dim.fixed) return dim.categorical ? 0.0 : dim.low;
    std::vector<double>* mus = mus_;
    std::vector<double>* raw = raw_;
    for (int g = 0; g < 2; ++g) {
      mus[g].clear();
      raw[g].clear();
    }
    const std::vector<std::size_t>& order = sorted_[d];
    const std::vector<double>& coordinates = sorted_x_[d];
    for (std::size_t i = 0; i < order.size(); ++i) {
      const std::size_t t = order[i];
      if (group[t] == kNone) continue;
      auto g = static_cast<std::size_t>(group[t]);
      mus[g].push_back(coordinates[i]);
      raw[g].push_back(weights[t]);
    }
    const int candidates = tpe_.n_ei_candidates;
    double best = 0, best_score = -kInf;
    if (dim.categorical) {
      std::vector<int> choices[2];
      for (int g = 0; g < 2; ++g) {
        for (double m : mus[g]) choices[g].push_back(static_cast<int>(m));
      }
      CategoricalKernels below = FitCategorical(dim, choices[0], raw[0], tpe_);
      CategoricalKernels above = FitCategorical(dim, choices[1], raw[1], tpe_);
      for (int i = 0; i < candidates; ++i) {
        std::size_t c = Pick(below.cumulative, rng_);
        double score = std::log(below.probs[c]) - std::log(above.probs[c]);
        if (score > best_score) {
          best_score = score;
          best = static_cast<double>(c);
        }
      }
      return best;
    }
    NumericKernels below = FitNumeric(dim, mus[0], raw[0], tpe_, 0, width_free_);
    NumericKernels above = FitNumeric(dim, mus[1], raw[1], tpe_, 0, width_free_);
    // Binned dimensions repeat candidates (few values): each distinct one is scored once.
    std::vector<std::pair<double, double>> scored;
    for (int i = 0; i < candidates; ++i) {
      auto k = static_cast<Eigen::Index>(Pick(below.cumulative, rng_));
      double x = SampleKernel(dim, below, k, rng_);
      double score = 0;
      auto seen = std::find_if(scored.begin(), scored.end(),
                               [&](const std::pair<double, double>& p) { return p.first == x; });
      if (dim.binned && seen != scored.end()) {
        score = seen->second;
      } else {
        score = MixtureLogDensity(dim, below, x) - MixtureLogDensity(dim, above, x);
        if (dim.binned) scored.emplace_back(x, score);
      }
      if (score > best_score) {
        best_score = score;
        best = x;
      }
    }
    return best;
  }

  // Multivariate TPE: joint kernels, one per trial, over all dimensions. A trial's kernel is the
  // product of its per-dimension kernels, each as wide as univariate TPE would make it (the
  // neighbour gaps in that dimension), or, with joint_scott_widths, one Scott-like width per
  // dimension as Optuna's multivariate sampler does.
  void ProposeJoint(const std::vector<signed char>& group, const std::vector<double>& weights,
                    std::size_t n_below, std::size_t n_above, std::vector<double>* chosen) {
    const std::size_t size[2] = {n_below, n_above};
    std::vector<std::size_t> members[2];
    std::vector<std::size_t>& position = position_;  // trial -> index among its group's members
    position.assign(trials_.size(), 0);
    for (std::size_t t = 0; t < trials_.size(); ++t) {
      if (group[t] == kNone) continue;
      auto g = static_cast<std::size_t>(group[t]);
      position[t] = members[g].size();
      members[g].push_back(t);
    }
    std::vector<NumericKernels> numeric[2];
    std::vector<CategoricalKernels> categorical[2];
    const double exponent = -1.0 / (static_cast<double>(dims_.size()) + 4.0);
    // Coordinates come from the per-dimension sorted lists (contiguous), not from the trials.
    std::vector<double> mus, sigmas, raw, sorted_mus[2], sorted_sigmas, sorted_raw;
    std::vector<std::size_t> slots[2];
    for (int g = 0; g < 2; ++g) {
      numeric[g].resize(dims_.size());
      categorical[g].resize(dims_.size());
    }
    for (std::size_t d = 0; d < dims_.size(); ++d) {
      const Dim& dim = dims_[d];
      if (dim.fixed) continue;
      const std::vector<std::size_t>& order = sorted_[d];
      const std::vector<double>& coordinates = sorted_x_[d];
      for (int g = 0; g < 2; ++g) {
        sorted_mus[g].clear();
        slots[g].clear();
      }
      for (std::size_t i = 0; i < order.size(); ++i) {
        const signed char g = group[order[i]];
        if (g == kNone) continue;
        sorted_mus[g].push_back(coordinates[i]);
        slots[g].push_back(position[order[i]]);
      }
      for (int g = 0; g < 2; ++g) {
        const std::size_t m = members[g].size();
        raw.resize(m);
        for (std::size_t i = 0; i < m; ++i) raw[i] = weights[members[g][i]];
        if (dim.categorical) {
          std::vector<int> choices(m);
          for (std::size_t i = 0; i < m; ++i) {
            choices[slots[g][i]] = static_cast<int>(sorted_mus[g][i]);
          }
          categorical[g][d] = FitCategorical(dim, choices, raw, tpe_);
          continue;
        }
        const double range = dim.high - dim.low;
        if (tpe_.joint_scott_widths) {
          const double scale =
              0.2 * std::pow(std::max<double>(1.0, static_cast<double>(size[g])), exponent);
          const double min_sigma = range / std::min(100.0, static_cast<double>(m + 2));
          mus.resize(m);
          for (std::size_t i = 0; i < m; ++i) mus[slots[g][i]] = sorted_mus[g][i];
          sigmas.assign(m, std::clamp(scale * range, min_sigma, range));
          numeric[g][d] = MakeNumeric(dim, mus, sigmas, raw, tpe_, width_free_, true);
          continue;
        }
        sorted_sigmas.resize(m);
        NeighbourSigmas(dim, sorted_mus[g], tpe_, sorted_sigmas.data());
        // Fitted in sorted order (equal binned kernels are then adjacent), stored by member.
        sorted_raw.resize(m);
        for (std::size_t i = 0; i < m; ++i) sorted_raw[i] = raw[slots[g][i]];
        numeric[g][d] =
            MakeNumeric(dim, sorted_mus[g], sorted_sigmas, sorted_raw, tpe_, width_free_, true);
        PermuteKernels(slots[g], &numeric[g][d]);
      }
    }
    // Per group, the float terms of each kernel's log density: log weight plus, per continuous
    // dimension, log_norm (the rest is -z^2/2 at the candidate).
    Eigen::ArrayXf base[2];
    for (int g = 0; g < 2; ++g) {
      const Eigen::Index n = static_cast<Eigen::Index>(members[g].size()) + 1;
      const double total_raw = [&] {
        double sum = tpe_.prior_weight;
        for (std::size_t t : members[g]) sum += weights[t];
        return sum;
      }();
      ArrayXd b(n);
      for (Eigen::Index k = 0; k + 1 < n; ++k) b[k] = weights[members[g][static_cast<std::size_t>(k)]];
      b[n - 1] = tpe_.prior_weight;
      b = (b / total_raw).log();
      for (std::size_t d = 0; d < dims_.size(); ++d) {
        const Dim& dim = dims_[d];
        if (dim.fixed || dim.categorical || dim.binned) continue;
        b += numeric[g][d].log_norm;
      }
      base[g] = b.cast<float>();
    }
    std::vector<double> cumulative(members[0].size() + 1);
    {
      double sum = 0;
      for (std::size_t k = 0; k < members[0].size(); ++k) {
        sum += weights[members[0][k]];
        cumulative[k] = sum;
      }
      cumulative.back() = sum + tpe_.prior_weight;
    }
    // Per group and categorical dimension, each kernel's observed choice (the prior: -1).
    std::vector<Eigen::ArrayXi> choice_of[2];
    for (int g = 0; g < 2; ++g) {
      choice_of[g].resize(dims_.size());
      for (std::size_t d = 0; d < dims_.size(); ++d) {
        if (dims_[d].fixed || !dims_[d].categorical) continue;
        const std::vector<int>& choice = categorical[g][d].choice;
        Eigen::ArrayXi& out = choice_of[g][d];
        out.resize(static_cast<Eigen::Index>(choice.size()) + 1);
        for (std::size_t k = 0; k < choice.size(); ++k) out[static_cast<Eigen::Index>(k)] = choice[k];
        out[out.size() - 1] = -1;
      }
    }
    // All candidates are drawn first (scoring draws no random numbers), then scored group by
    // group: per kernel, its log weight plus its log density in each dimension, summed in float
    // (vectorised over the kernels), then log-sum-exp.
    const int candidates = tpe_.n_ei_candidates;
    std::vector<std::vector<double>> drawn(static_cast<std::size_t>(candidates),
                                           std::vector<double>(dims_.size(), 0.0));
    for (std::vector<double>& x : drawn) {
      auto k = static_cast<Eigen::Index>(Pick(cumulative, rng_));
      for (std::size_t d = 0; d < dims_.size(); ++d) {
        const Dim& dim = dims_[d];
        if (dim.fixed) {
          x[d] = dim.categorical ? 0.0 : dim.low;
        } else if (dim.categorical) {
          x[d] = SampleChoice(dim, categorical[0][d], k, rng_);
        } else {
          x[d] = SampleKernel(dim, numeric[0][d], k, rng_);
        }
      }
    }
    std::vector<double> score(static_cast<std::size_t>(candidates), 0.0);
    thread_local Eigen::ArrayXf column, term;
    // Candidates drawn from l(x) share their discrete values a lot: each categorical or binned
    // dimension's per-kernel terms are computed once per distinct value.
    std::vector<std::size_t> discrete, continuous;
    for (std::size_t d = 0; d < dims_.size(); ++d) {
      if (dims_[d].fixed) continue;
      (dims_[d].categorical || dims_[d].binned ? discrete : continuous).push_back(d);
    }
    std::vector<std::vector<std::pair<double, Eigen::ArrayXf>>> terms(dims_.size());
    constexpr Eigen::Index kPruneMinKernels = 256;
    constexpr double kPruneGap = 30;
    for (int g = 0; g < 2; ++g) {
      const Eigen::Index n = base[g].size();
      for (auto& cache : terms) cache.clear();
      auto term_of = [&](std::size_t d, double value) -> const Eigen::ArrayXf& {
        std::vector<std::pair<double, Eigen::ArrayXf>>& cache = terms[d];
        for (const auto& entry : cache) {
          if (entry.first == value) return entry.second;
        }
        const Dim& dim = dims_[d];
        Eigen::ArrayXf out(n);
        if (dim.categorical) {
          const double b = categorical[g][d].base;
          const double row = std::log(1.0 + static_cast<double>(dim.choices) * b);
          const auto hit = static_cast<float>(std::log(1.0 + b) - row);
          const auto miss = static_cast<float>(std::log(b) - row);
          out = miss + (hit - miss) * (choice_of[g][d] == static_cast<int>(value)).cast<float>();
          // The prior kernel (choice -1, counted as a miss) is uniform over the choices.
          out[n - 1] = static_cast<float>(-std::log(static_cast<double>(dim.choices)));
        } else {
          const NumericKernels& kernels = numeric[g][d];
          const double snapped = Snap(dim, value);
          const double a = std::max(dim.low, ToKernelSpace(dim, snapped - 0.5 * dim.step));
          const double b = std::min(dim.high, ToKernelSpace(dim, snapped + 0.5 * dim.step));
          const Eigen::ArrayXf log_mass =
              (StdNormalMass((a - kernels.distinct_mu) * kernels.distinct_inv_sigma,
                             (b - kernels.distinct_mu) * kernels.distinct_inv_sigma)
                   .log() +
               kernels.distinct_log_norm)
                  .cast<float>();
          for (Eigen::Index k = 0; k < n; ++k) {
            out[k] = log_mass[kernels.distinct_of[static_cast<std::size_t>(k)]];
          }
        }
        cache.emplace_back(value, std::move(out));
        return cache.back().second;
      };
      for (int j = 0; j < candidates; ++j) {
        const std::vector<double>& x = drawn[static_cast<std::size_t>(j)];
        column = base[g];
        for (std::size_t d : continuous) {
          const Dim& dim = dims_[d];
          const NumericKernels& kernels = numeric[g][d];
          const auto unit_x = static_cast<float>((x[d] - dim.low) / (dim.high - dim.low));
          column -= 0.5f * ((unit_x - kernels.unit_mu) * kernels.unit_inv_sigma).square();
        }
        double log_density;
        if (discrete.empty() || n < kPruneMinKernels) {
          for (std::size_t d : discrete) column += term_of(d, x[d]);
          const float top = column.maxCoeff();
          log_density = static_cast<double>(top);
          if (std::isfinite(top)) {
            term = (column - top).exp();
            log_density += std::log(static_cast<double>(term.sum()));
          }
        } else {
          // Each discrete term is a log probability (<= 0), so a kernel's continuous partial sum
          // bounds its total from above, and the kernel with the largest partial sum gives a
          // lower bound `floor` on the log density: kernels whose partial sum lies more than
          // kPruneGap below it add less than n exp(-kPruneGap) of the density (< 1e-9 for
          // n < 10^4) and are skipped; the others get their discrete terms and exp (double).
          const float* parts[8];
          std::size_t n_parts = 0;
          thread_local Eigen::ArrayXf rest;
          if (discrete.size() > 8) rest.setZero(n);
          for (std::size_t d : discrete) {
            const Eigen::ArrayXf& t = term_of(d, x[d]);
            if (discrete.size() > 8) {
              rest += t;
            } else {
              parts[n_parts++] = t.data();
            }
          }
          if (discrete.size() > 8) parts[n_parts++] = rest.data();
          auto total_of = [&](Eigen::Index k) {
            double v = static_cast<double>(column[k]);
            for (std::size_t i = 0; i < n_parts; ++i) v += static_cast<double>(parts[i][k]);
            return v;
          };
          Eigen::Index top_k = 0;
          column.maxCoeff(&top_k);
          const double floor = total_of(top_k);
          log_density = floor;
          if (std::isfinite(floor)) {
            const float cut = static_cast<float>(floor - kPruneGap);
            double sum = 0;
            const float* c = column.data();
            for (Eigen::Index k = 0; k < n; ++k) {
              if (c[k] >= cut) sum += std::exp(total_of(k) - floor);
            }
            log_density += std::log(sum);
          }
        }
        score[static_cast<std::size_t>(j)] += g == 0 ? log_density : -log_density;
      }
    }
    double best_score = -kInf;
    for (int j = 0; j < candidates; ++j) {
      if (score[static_cast<std::size_t>(j)] > best_score) {
        best_score = score[static_cast<std::size_t>(j)];
        *chosen = drawn[static_cast<std::size_t>(j)];
      }
    }
    if (!(best_score > -kInf)) *chosen = drawn.front();
  }

  Space space_;
  TpeOptions tpe_;
  std::string metric_;
  Mode mode_;
  std::int64_t num_samples_;
  std::mt19937_64 rng_;
  std::vector<std::vector<PointValue>> points_;
  std::size_t next_point_ = 0;
  std::vector<Dim> dims_;
  Json template_;
  std::vector<Trial> trials_;
  std::unordered_map<std::string, std::size_t> index_;
  std::vector<std::vector<std::size_t>> sorted_;  // per dimension: trials by coordinate
  std::vector<std::vector<double>> sorted_x_;     // per dimension: the sorted coordinates
  std::vector<double> mus_[2], raw_[2];           // ProposeOne's buffers (good, bad)
  bool width_free_ = false;                        // this suggestion's scoring rule
  std::vector<std::size_t> position_;              // ProposeJoint's buffer
};

std::string Child(const std::string& path, const std::string& key) {
  return path.empty() ? key : path + "." + key;
}

}  // namespace

TpeOptions ParseTpeOptions(const SearcherOptions& options) {
  TpeOptions tpe;
  tpe.constant_liar = options.max_concurrent != 1;
  const Json& search = options.algorithm;
  if (!search.is_object()) return tpe;
  auto fail = [&](const std::string& key, const std::string& reason, const Json& value) {
    throw SpecError(Child(options.path, key), reason + ", got " + value.dump());
  };
  auto integer = [&](const char* key, int minimum, int* out) {
    if (!search.contains(key)) return;
    const Json& value = search[key];
    if (!value.is_number_integer() || value.get<double>() < minimum || value.get<double>() > 1e9) {
      fail(key, fmt::format("must be an integer >= {}", minimum), value);
    }
    *out = value.get<int>();
  };
  auto boolean = [&](const char* key, bool* out) {
    if (!search.contains(key)) return;
    if (!search[key].is_boolean()) fail(key, "must be true or false", search[key]);
    *out = search[key].get<bool>();
  };
  integer("n_startup_trials", 0, &tpe.n_startup_trials);
  integer("n_ei_candidates", 1, &tpe.n_ei_candidates);
  boolean("consider_endpoints", &tpe.consider_endpoints);
  boolean("multivariate", &tpe.multivariate);
  integer("multivariate_after", 0, &tpe.multivariate_after);
  boolean("constant_liar", &tpe.constant_liar);
  if (search.contains("gamma")) {
    const Json& value = search["gamma"];
    if (!value.is_number() || !(value.get<double>() > 0 && value.get<double>() <= 1)) {
      fail("gamma", "must be a number in (0, 1] (the fraction of trials in the good set)",
           value);
    }
    tpe.gamma = value.get<double>();
  }
  if (search.contains("prior_weight")) {
    const Json& value = search["prior_weight"];
    if (!value.is_number() || !(value.get<double>() > 0) || !std::isfinite(value.get<double>())) {
      fail("prior_weight", "must be a number > 0", value);
    }
    tpe.prior_weight = value.get<double>();
  }
  if (search.contains("categorical_prior_weight")) {
    const Json& value = search["categorical_prior_weight"];
    if (!value.is_number() || !(value.get<double>() > 0) || !std::isfinite(value.get<double>())) {
      fail("categorical_prior_weight", "must be a number > 0", value);
    }
    tpe.categorical_prior_weight = value.get<double>();
  }
  if (search.contains("intermediate")) {
    const Json& value = search["intermediate"];
    const std::vector<std::string> known = {"rank", "budget", "last"};
    std::string name = value.is_string() ? value.get<std::string>() : "";
    if (name == "rank") {
      tpe.intermediate = TpeOptions::Intermediate::kRank;
    } else if (name == "budget") {
      tpe.intermediate = TpeOptions::Intermediate::kBudget;
    } else if (name == "last") {
      tpe.intermediate = TpeOptions::Intermediate::kLast;
    } else {
      fail("intermediate",
           "must be \"rank\", \"budget\" or \"last\"" + (name.empty() ? "" : DidYouMean(name, known)),
           value);
    }
  }
  if (search.contains("budget_attr")) {
    const Json& value = search["budget_attr"];
    if (!value.is_string() || value.get<std::string>().empty()) {
      fail("budget_attr", "must be a result attribute name", value);
    }
    tpe.budget_attr = value.get<std::string>();
  }
  return tpe;
}

std::unique_ptr<Searcher> MakeTpeSearcher(const Space& space, const SearcherOptions& options,
                                          const TpeOptions& tpe) {
  if (!space.grid_parameters().empty()) {
    throw SpecError("space." + space.grid_parameters().front().path,
                    "grid_search cannot be used with algorithm \"tpe\" (a grid is an exhaustive "
                    "plan, not a distribution to model); use \"choice\" instead");
  }
  if (options.metric.empty()) {
    throw SpecError(Child(options.path, "algorithm"), "tpe needs a metric to optimise");
  }
  std::vector<std::vector<PointValue>> points = ParsePointsToEvaluate(space, options);
  return std::make_unique<TpeSearcher>(space, options, tpe, std::move(points));
}

}  // namespace tune
