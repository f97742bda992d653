#include "search/tpe_estimator.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <unordered_map>

#include "search/truncnorm.h"

namespace tune {
namespace {

using Eigen::ArrayXd;

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
        -NormalMass((dim.low - mu) * inv_sigma, (dim.high - mu) * inv_sigma).log();
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
    kernels->log_norm.resize(kernels->mu.size());
    for (Eigen::Index k = 0; k < kernels->mu.size(); ++k) {
      const double za = (dim.low - kernels->mu[k]) * kernels->inv_sigma[k];
      const double zb = (dim.high - kernels->mu[k]) * kernels->inv_sigma[k];
      kernels->log_norm[k] = -LogNormalMass(za, zb) - kLogSqrt2Pi;
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

// Mixture kernels at `mus` with widths `sigmas` (either order), the prior appended last.
// `joint`: only what joint scoring and sampling read (no coef, coef_f, cumulative).
NumericKernels MakeNumeric(const Dim& dim, const std::vector<double>& mus,
                           const std::vector<double>& sigmas,
                           const std::vector<double>& raw_weights, const ParzenOptions& options,
                           bool joint = false) {
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
  Finish(dim, &kernels, options.width_free, joint);
  return kernels;
}

// The mass of every distinct kernel (binned dimensions) on the bin of `value` (original scale,
// on the grid), the bin cut at the domain's bounds.
ArrayXd BinMass(const Dim& dim, const NumericKernels& kernels, double value) {
  const double a = std::max(dim.low, ToKernelSpace(dim, value - 0.5 * dim.step));
  const double b = std::min(dim.high, ToKernelSpace(dim, value + 0.5 * dim.step));
  return NormalMass((a - kernels.distinct_mu) * kernels.distinct_inv_sigma,
                    (b - kernels.distinct_mu) * kernels.distinct_inv_sigma);
}

// log of the per-kernel density (continuous) or bin mass (binned) at kernel-space point x,
// before weights: log_norm - z^2 / 2, or log(mass) + log_norm.
ArrayXd KernelLogDensity(const Dim& dim, const NumericKernels& kernels, double x) {
  if (dim.binned) {
    double value = dim.log ? std::exp(x) : x;
    value = Snap(dim, ToKernelSpace(dim, value));
    const ArrayXd distinct = BinMass(dim, kernels, value).log() + kernels.distinct_log_norm;
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

// What joint scoring and sampling read of a continuous dimension's kernels (mu, sigma,
// log_norm, unit_mu, unit_inv_sigma; the prior last), in one pass over the observations in
// sorted order, each written to its member's slot. Most sigmas are the magic clip's minimum, so
// 1 / sigma and log(sigma) are only computed when sigma differs from the previous one.
void FitJointContinuous(const Dim& dim, const std::vector<double>& sorted_x,
                        const std::vector<std::size_t>& member, const std::vector<double>& sigmas,
                        bool width_free, NumericKernels* kernels) {
  const std::size_t m = sorted_x.size();
  const auto n = static_cast<Eigen::Index>(m) + 1;
  kernels->mu.resize(n);
  kernels->sigma.resize(n);
  kernels->log_norm.resize(n);
  kernels->unit_mu.resize(n);
  kernels->unit_inv_sigma.resize(n);
  const double range = dim.high - dim.low;
  double last_sigma = -1, last_inverse = 0, last_log = 0;
  auto put = [&](Eigen::Index slot, double mu, double sigma) {
    if (sigma != last_sigma) {
      last_sigma = sigma;
      last_inverse = 1.0 / sigma;
      last_log = std::log(sigma);
    }
    const double inv_sigma = last_inverse;
    double log_norm =
        -LogNormalMass((dim.low - mu) * inv_sigma, (dim.high - mu) * inv_sigma) - kLogSqrt2Pi;
    if (!width_free) log_norm -= last_log;
    kernels->mu[slot] = mu;
    kernels->sigma[slot] = sigma;
    kernels->log_norm[slot] = log_norm;
    kernels->unit_mu[slot] = static_cast<float>((mu - dim.low) / range);
    kernels->unit_inv_sigma[slot] = static_cast<float>(inv_sigma * range);
  };
  for (std::size_t i = 0; i < m; ++i) {
    put(static_cast<Eigen::Index>(member[i]), sorted_x[i], sigmas[i]);
  }
  put(n - 1, dim.prior_mu, dim.prior_sigma);
}

// What joint scoring and sampling read of a binned dimension's kernels (mu, sigma and the
// distinct (mu, sigma) pairs with their log masses on the domain; the prior last), from the
// observations in sorted order (equal ones adjacent, as FindDistinct's sorted path finds pairs),
// each written to its member's slot.
void FitJointBinned(const Dim& dim, const std::vector<double>& sorted_x,
                    const std::vector<std::size_t>& member, const std::vector<double>& sigmas,
                    NumericKernels* kernels) {
  const std::size_t m = sorted_x.size();
  const auto n = static_cast<Eigen::Index>(m) + 1;
  kernels->mu.resize(n);
  kernels->sigma.resize(n);
  kernels->distinct_of.resize(m + 1);
  thread_local std::vector<double> mus, sigmas_of;
  mus.clear();
  sigmas_of.clear();
  std::size_t run = 0;  // first distinct pair of the current run of equal mus
  auto put = [&](std::size_t slot, double mu, double sigma, bool new_run) {
    if (new_run) run = mus.size();
    std::size_t j = run;
    while (j < mus.size() && !(mus[j] == mu && sigmas_of[j] == sigma)) ++j;
    if (j == mus.size()) {
      mus.push_back(mu);
      sigmas_of.push_back(sigma);
    }
    kernels->mu[static_cast<Eigen::Index>(slot)] = mu;
    kernels->sigma[static_cast<Eigen::Index>(slot)] = sigma;
    kernels->distinct_of[slot] = static_cast<Eigen::Index>(j);
  };
  for (std::size_t i = 0; i < m; ++i) {
    put(member[i], sorted_x[i], sigmas[i], i == 0 || sorted_x[i] != sorted_x[i - 1]);
  }
  put(m, dim.prior_mu, dim.prior_sigma, m == 0 || dim.prior_mu != sorted_x[m - 1]);
  const auto distinct = static_cast<Eigen::Index>(mus.size());
  kernels->distinct_mu = Eigen::Map<const ArrayXd>(mus.data(), distinct);
  kernels->distinct_inv_sigma = Eigen::Map<const ArrayXd>(sigmas_of.data(), distinct).inverse();
  const ArrayXd& mu = kernels->distinct_mu;
  const ArrayXd& inv_sigma = kernels->distinct_inv_sigma;
  kernels->distinct_log_norm =
      -NormalMass((dim.low - mu) * inv_sigma, (dim.high - mu) * inv_sigma).log();
}

}  // namespace

double DefaultWeight(std::size_t rank, std::size_t n) {
  constexpr std::size_t kFlat = 25;
  if (n < kFlat || rank >= n - kFlat) return 1.0;
  std::size_t ramp = n - kFlat;
  if (ramp == 1) return 1.0 / static_cast<double>(n);
  double start = 1.0 / static_cast<double>(n);
  return start + (1.0 - start) * static_cast<double>(rank) / static_cast<double>(ramp - 1);
}

std::size_t Pick(const std::vector<double>& cumulative, std::mt19937_64& rng) {
  double u = Uniform01(rng) * cumulative.back();
  auto it = std::upper_bound(cumulative.begin(), cumulative.end(), u);
  return std::min<std::size_t>(static_cast<std::size_t>(it - cumulative.begin()),
                               cumulative.size() - 1);
}

void NeighbourSigmas(const Dim& dim, const std::vector<double>& mus, bool consider_endpoints,
                     double* sigma, bool prior_neighbour) {
  const std::size_t n = mus.size();
  const double range = dim.high - dim.low;
  if (n > 0 && !prior_neighbour) {
    // Optuna 5.0: neighbour gaps among the observations, the bounds outermost; without
    // consider_endpoints and with >= 2 observations the outermost take their inner gap.
    sigma[0] = std::max(mus[0] - dim.low, (n > 1 ? mus[1] : dim.high) - mus[0]);
    for (std::size_t i = 1; i < n; ++i) {
      sigma[i] = std::max(mus[i] - mus[i - 1], (i + 1 < n ? mus[i + 1] : dim.high) - mus[i]);
    }
    if (!consider_endpoints && n >= 2) {
      sigma[0] = mus[1] - mus[0];
      sigma[n - 1] = mus[n - 1] - mus[n - 2];
    }
  } else if (n > 0) {
    // Neighbour gaps among the observations and the prior's centre, with the bounds as the
    // outermost neighbours (Optuna's consider_endpoints=False replaces the outermost gaps).
    // point(j), j in [0, n + 2]: the bound, the n + 1 kernel centres in order, the bound.
    const auto prior_slot = static_cast<std::size_t>(
        std::upper_bound(mus.begin(), mus.end(), dim.prior_mu) - mus.begin());
    const std::size_t m = n + 1;  // kernels, the prior among them
    auto point = [&](std::size_t j) {
      if (j == 0) return dim.low;
      if (j == m + 1) return dim.high;
      if (j - 1 < prior_slot) return mus[j - 1];
      return j - 1 == prior_slot ? dim.prior_mu : mus[j - 2];
    };
    const bool inner_ends = !consider_endpoints && m >= 2;
    for (std::size_t i = 0; i < n; ++i) {
      const std::size_t j = (i < prior_slot ? i : i + 1) + 1;
      if (inner_ends && j == 1) {
        sigma[i] = point(2) - point(1);
      } else if (inner_ends && j == m) {
        sigma[i] = point(m) - point(m - 1);
      } else if (i >= 1 && i + 1 < n && (i + 1 < prior_slot || i > prior_slot)) {
        // Both neighbours are observations (the common case).
        sigma[i] = std::max(mus[i] - mus[i - 1], mus[i + 1] - mus[i]);
      } else {
        sigma[i] = std::max(point(j) - point(j - 1), point(j + 1) - point(j));
      }
    }
  }
  const double min_sigma = range / std::min(100.0, static_cast<double>(n + 2));
  // An observation equal to another (ints, quantized values, repeated configs) has a neighbour
  // at distance 0: its kernel is the narrowest. Taking the gap to the next distinct value instead
  // gave it to whichever copy sorted first or last, the oldest and the newest trial at each
  // value, and in the joint model that made g(x) broad around the recent trials (docs/tpe.md).
  for (std::size_t i = 0; i < n; ++i) {
    const bool tied = (i > 0 && mus[i] == mus[i - 1]) || (i + 1 < n && mus[i] == mus[i + 1]);
    sigma[i] = std::clamp(tied ? 0.0 : sigma[i], min_sigma, range);
  }
}

NumericKernels FitNumeric(const Dim& dim, const std::vector<double>& sorted_mus,
                          const std::vector<double>& raw_weights, const ParzenOptions& options) {
  std::vector<double> sigmas(sorted_mus.size(), 0.0);
  NeighbourSigmas(dim, sorted_mus, options.consider_endpoints, sigmas.data(),
                  options.prior_neighbour);
  NumericKernels kernels = MakeNumeric(dim, sorted_mus, sigmas, raw_weights, options);
  if (!dim.binned) BuildWindow(&kernels);
  return kernels;
}

CategoricalKernels FitCategorical(const Dim& dim, const std::vector<int>& choices,
                                  const std::vector<double>& raw_weights,
                                  const ParzenOptions& options) {
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

double SampleKernel(const Dim& dim, const NumericKernels& kernels, Eigen::Index k,
                    std::mt19937_64& rng) {
  const double x = SampleTruncatedNormal(kernels.mu[k], kernels.sigma[k], dim.low, dim.high, rng);
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

double MixtureLogDensity(const Dim& dim, const NumericKernels& kernels, double x) {
  double sum;
  if (dim.binned) {
    sum = (kernels.distinct_coef * BinMass(dim, kernels, Snap(dim, x))).sum();
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

JointEstimator::JointEstimator(const std::vector<Dim>& dims, const JointObservations& observations,
                               const ParzenOptions& options, bool scott_widths) {
  Fit(dims, observations, options, scott_widths);
}

void JointEstimator::Fit(const std::vector<Dim>& dims, const JointObservations& observations,
                         const ParzenOptions& options, bool scott_widths) {
  dims_ = &dims;
  numeric_.resize(dims.size());
  categorical_.resize(dims.size());
  choice_of_.resize(dims.size());
  terms_.resize(dims.size());
  for (auto& cache : terms_) cache.clear();
  discrete_.clear();
  continuous_.clear();
  const std::vector<double>& weights = observations.weights;
  const std::size_t m = weights.size();
  const double exponent = -1.0 / (static_cast<double>(dims_->size()) + 4.0);
  std::vector<double> mus, sigmas;
  for (std::size_t d = 0; d < dims_->size(); ++d) {
    const Dim& dim = (*dims_)[d];
    if (dim.fixed) continue;
    const std::vector<double>& sorted_x = observations.sorted_x[d];
    const std::vector<std::size_t>& member = observations.member[d];
    if (dim.categorical) {
      std::vector<int> choices(m);
      for (std::size_t i = 0; i < m; ++i) choices[member[i]] = static_cast<int>(sorted_x[i]);
      categorical_[d] = FitCategorical(dim, choices, weights, options);
      continue;
    }
    const double range = dim.high - dim.low;
    if (scott_widths) {
      const double scale =
          0.2 * std::pow(std::max<double>(1.0, static_cast<double>(m)), exponent);
      const double min_sigma = range / std::min(100.0, static_cast<double>(m + 2));
      mus.resize(m);
      for (std::size_t i = 0; i < m; ++i) mus[member[i]] = sorted_x[i];
      sigmas.assign(m, std::clamp(scale * range, min_sigma, range));
      numeric_[d] = MakeNumeric(dim, mus, sigmas, weights, options, true);
      continue;
    }
    sigmas.resize(m);
    NeighbourSigmas(dim, sorted_x, options.consider_endpoints, sigmas.data(),
                    options.prior_neighbour);
    if (!dim.binned) {
      FitJointContinuous(dim, sorted_x, member, sigmas, options.width_free, &numeric_[d]);
      continue;
    }
    FitJointBinned(dim, sorted_x, member, sigmas, &numeric_[d]);
  }
  // The float terms of each kernel's log density: log weight plus, per continuous dimension,
  // log_norm (the rest is -z^2/2 at the point).
  const auto n = static_cast<Eigen::Index>(m) + 1;
  double total_raw = options.prior_weight;
  for (double w : weights) total_raw += w;
  ArrayXd b(n);
  for (Eigen::Index k = 0; k + 1 < n; ++k) b[k] = weights[static_cast<std::size_t>(k)];
  b[n - 1] = options.prior_weight;
  b = (b / total_raw).log();
  for (std::size_t d = 0; d < dims_->size(); ++d) {
    const Dim& dim = (*dims_)[d];
    if (dim.fixed || dim.categorical || dim.binned) continue;
    b += numeric_[d].log_norm;
  }
  base_ = b.cast<float>();
  cumulative_.resize(m + 1);
  double sum = 0;
  for (std::size_t k = 0; k < m; ++k) {
    sum += weights[k];
    cumulative_[k] = sum;
  }
  cumulative_.back() = sum + options.prior_weight;
  // Each categorical kernel's observed choice (the prior: -1).
  for (std::size_t d = 0; d < dims_->size(); ++d) {
    if ((*dims_)[d].fixed || !(*dims_)[d].categorical) continue;
    const std::vector<int>& choice = categorical_[d].choice;
    Eigen::ArrayXi& out = choice_of_[d];
    out.resize(static_cast<Eigen::Index>(choice.size()) + 1);
    for (std::size_t k = 0; k < choice.size(); ++k) out[static_cast<Eigen::Index>(k)] = choice[k];
    out[out.size() - 1] = -1;
  }
  for (std::size_t d = 0; d < dims_->size(); ++d) {
    if ((*dims_)[d].fixed) continue;
    ((*dims_)[d].categorical || (*dims_)[d].binned ? discrete_ : continuous_).push_back(d);
  }
}

std::vector<double> JointEstimator::Sample(std::mt19937_64& rng) const {
  std::vector<double> x(dims_->size(), 0.0);
  auto k = static_cast<Eigen::Index>(Pick(cumulative_, rng));
  for (std::size_t d = 0; d < dims_->size(); ++d) {
    const Dim& dim = (*dims_)[d];
    if (dim.fixed) {
      x[d] = dim.categorical ? 0.0 : dim.low;
    } else if (dim.categorical) {
      x[d] = SampleChoice(dim, categorical_[d], k, rng);
    } else {
      x[d] = SampleKernel(dim, numeric_[d], k, rng);
    }
  }
  return x;
}

// Candidates drawn from l(x) share their discrete values a lot: each categorical or binned
// dimension's per-kernel terms are computed once per distinct value.
const Eigen::ArrayXf& JointEstimator::DiscreteTerm(std::size_t d, double value) {
  std::vector<std::pair<double, Eigen::ArrayXf>>& cache = terms_[d];
  for (const auto& entry : cache) {
    if (entry.first == value) return entry.second;
  }
  const Dim& dim = (*dims_)[d];
  const Eigen::Index n = base_.size();
  Eigen::ArrayXf out(n);
  if (dim.categorical) {
    const double b = categorical_[d].base;
    const double row = std::log(1.0 + static_cast<double>(dim.choices) * b);
    const auto hit = static_cast<float>(std::log(1.0 + b) - row);
    const auto miss = static_cast<float>(std::log(b) - row);
    out = miss + (hit - miss) * (choice_of_[d] == static_cast<int>(value)).cast<float>();
    // The prior kernel (choice -1, counted as a miss) is uniform over the choices.
    out[n - 1] = static_cast<float>(-std::log(static_cast<double>(dim.choices)));
  } else {
    const NumericKernels& kernels = numeric_[d];
    const Eigen::ArrayXf log_mass =
        (BinMass(dim, kernels, Snap(dim, value)).log() + kernels.distinct_log_norm)
            .cast<float>();
    for (Eigen::Index k = 0; k < n; ++k) {
      out[k] = log_mass[kernels.distinct_of[static_cast<std::size_t>(k)]];
    }
  }
  cache.emplace_back(value, std::move(out));
  return cache.back().second;
}

// Per kernel, its log weight plus its log density in each dimension, summed in float
// (vectorised over the kernels), then log-sum-exp.
double JointEstimator::LogPdf(const std::vector<double>& x) {
  constexpr Eigen::Index kPruneMinKernels = 256;
  constexpr float kPruneGap = 30;
  thread_local Eigen::ArrayXf column, term;
  const Eigen::Index n = base_.size();
  // Two dimensions per pass over the kernels (the same operations in the same order).
  auto unit = [&](std::size_t d) {
    const Dim& dim = (*dims_)[d];
    return static_cast<float>((x[d] - dim.low) / (dim.high - dim.low));
  };
  auto half_square = [&](std::size_t d) {
    return 0.5f * ((unit(d) - numeric_[d].unit_mu) * numeric_[d].unit_inv_sigma).square();
  };
  column = base_;
  std::size_t i = 0;
  for (; i + 1 < continuous_.size(); i += 2) {
    column = (column - half_square(continuous_[i])) - half_square(continuous_[i + 1]);
  }
  if (i < continuous_.size()) column -= half_square(continuous_[i]);
  for (i = 0; i + 1 < discrete_.size(); i += 2) {
    const Eigen::ArrayXf& first = DiscreteTerm(discrete_[i], x[discrete_[i]]);
    column = (column + first) + DiscreteTerm(discrete_[i + 1], x[discrete_[i + 1]]);
  }
  if (i < discrete_.size()) column += DiscreteTerm(discrete_[i], x[discrete_[i]]);
  const float top = column.maxCoeff();
  if (!std::isfinite(top)) return static_cast<double>(top);
  if (n < kPruneMinKernels) {
    term = (column - top).exp();
  } else {
    // Kernels more than kPruneGap below the largest term add less than n exp(-kPruneGap) of the
    // density (< 1e-9 for n < 10^4): only the others are exponentiated, listed without branches
    // (which ones pass is unpredictable).
    const float cut = top - kPruneGap;
    term.resize(n);
    const float* c = column.data();
    float* kept = term.data();
    Eigen::Index n_kept = 0;
    for (Eigen::Index k = 0; k < n; ++k) {
      kept[n_kept] = c[k] - top;
      n_kept += c[k] >= cut;
    }
    term.conservativeResize(n_kept);
    term = term.exp();
  }
  return static_cast<double>(top) + std::log(static_cast<double>(term.sum()));
}

}  // namespace tune
