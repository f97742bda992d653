#include "search/tpe_estimator.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <iterator>
#include <tuple>
#include <unordered_map>

#include "search/tpe_simd.h"
#include "search/truncnorm.h"

namespace tune {
namespace {

using Eigen::ArrayXd;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

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

void Finish(const Dim& dim, NumericKernels* kernels, bool width_free) {
  if (dim.binned) {
    FindDistinct(kernels);
    const ArrayXd& mu = kernels->distinct_mu;
    const ArrayXd& inv_sigma = kernels->distinct_inv_sigma;
    kernels->distinct_log_norm =
        -NormalMass((dim.low - mu) * inv_sigma, (dim.high - mu) * inv_sigma).log();
    kernels->log_norm.resize(kernels->mu.size());
    kernels->inv_sigma = kernels->sigma.inverse();
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
NumericKernels MakeNumeric(const Dim& dim, const std::vector<double>& mus,
                           const std::vector<double>& sigmas,
                           const std::vector<double>& raw_weights, const ParzenOptions& options) {
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
  Finish(dim, &kernels, options.width_free);
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

std::size_t Pick(const std::vector<double>& cumulative, std::mt19937_64& rng) {
  double u = Uniform01(rng) * cumulative.back();
  auto it = std::upper_bound(cumulative.begin(), cumulative.end(), u);
  return std::min<std::size_t>(static_cast<std::size_t>(it - cumulative.begin()),
                               cumulative.size() - 1);
}

double NeighbourSigma(const Dim& dim, const std::vector<double>& mus, std::size_t i,
                      std::size_t prior_slot, bool consider_endpoints, bool prior_neighbour) {
  const std::size_t n = mus.size();
  const double range = dim.high - dim.low;
  double sigma;
  if (!prior_neighbour) {
    // Optuna 5.0: neighbour gaps among the observations, the bounds outermost; without
    // consider_endpoints and with >= 2 observations the outermost take their inner gap.
    if (!consider_endpoints && n >= 2 && (i == 0 || i == n - 1)) {
      sigma = i == 0 ? mus[1] - mus[0] : mus[n - 1] - mus[n - 2];
    } else {
      sigma = std::max(mus[i] - (i > 0 ? mus[i - 1] : dim.low),
                       (i + 1 < n ? mus[i + 1] : dim.high) - mus[i]);
    }
  } else {
    // Neighbour gaps among the observations and the prior's centre, with the bounds as the
    // outermost neighbours (Optuna's consider_endpoints=False replaces the outermost gaps).
    // point(j), j in [0, n + 2]: the bound, the n + 1 kernel centres in order, the bound.
    const std::size_t m = n + 1;  // kernels, the prior among them
    auto point = [&](std::size_t j) {
      if (j == 0) return dim.low;
      if (j == m + 1) return dim.high;
      if (j - 1 < prior_slot) return mus[j - 1];
      return j - 1 == prior_slot ? dim.prior_mu : mus[j - 2];
    };
    const std::size_t j = (i < prior_slot ? i : i + 1) + 1;
    if (!consider_endpoints && j == 1) {
      sigma = point(2) - point(1);
    } else if (!consider_endpoints && j == m) {
      sigma = point(m) - point(m - 1);
    } else if (i >= 1 && i + 1 < n && (i + 1 < prior_slot || i > prior_slot)) {
      sigma = std::max(mus[i] - mus[i - 1], mus[i + 1] - mus[i]);  // the common case
    } else {
      sigma = std::max(point(j) - point(j - 1), point(j + 1) - point(j));
    }
  }
  // An observation equal to another (ints, quantized values, repeated configs) has a neighbour
  // at distance 0: its kernel is the narrowest. Taking the gap to the next distinct value instead
  // gave it to whichever copy sorted first or last, the oldest and the newest trial at each
  // value, and in the joint model that made g(x) broad around the recent trials (docs/tpe.md).
  const bool tied = (i > 0 && mus[i] == mus[i - 1]) || (i + 1 < n && mus[i] == mus[i + 1]);
  const double min_sigma = range / std::min(100.0, static_cast<double>(n + 2));
  return std::clamp(tied ? 0.0 : sigma, min_sigma, range);
}

std::size_t PriorSlot(const Dim& dim, const std::vector<double>& mus) {
  return static_cast<std::size_t>(std::upper_bound(mus.begin(), mus.end(), dim.prior_mu) -
                                  mus.begin());
}

void NeighbourSigmas(const Dim& dim, const std::vector<double>& mus, bool consider_endpoints,
                     double* sigma, bool prior_neighbour) {
  const std::size_t prior_slot = PriorSlot(dim, mus);
  for (std::size_t i = 0; i < mus.size(); ++i) {
    sigma[i] = NeighbourSigma(dim, mus, i, prior_slot, consider_endpoints, prior_neighbour);
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

double SampleKernel(const Dim& dim, double mu, double sigma, std::mt19937_64& rng) {
  const double x = SampleTruncatedNormal(mu, sigma, dim.low, dim.high, rng);
  return ToKernelSpace(dim, Snap(dim, x));
}

double SampleKernel(const Dim& dim, const NumericKernels& kernels, Eigen::Index k,
                    std::mt19937_64& rng) {
  return SampleKernel(dim, kernels.mu[k], kernels.sigma[k], rng);
}

int SampleChoice(const Dim& dim, double base, int choice, std::mt19937_64& rng) {
  const bool prior = choice < 0;
  const double row = prior ? 1.0 : 1.0 + static_cast<double>(dim.choices) * base;
  double u = Uniform01(rng) * row;
  const double each = prior ? 1.0 / static_cast<double>(dim.choices) : base;
  double sum = 0;
  for (std::size_t c = 0; c < dim.choices; ++c) {
    sum += each + (!prior && choice == static_cast<int>(c) ? 1.0 : 0.0);
    if (u < sum) return static_cast<int>(c);
  }
  return static_cast<int>(dim.choices) - 1;
}

int SampleChoice(const Dim& dim, const CategoricalKernels& kernels, Eigen::Index k,
                 std::mt19937_64& rng) {
  const bool prior = k == kernels.weight.size() - 1;
  return SampleChoice(dim, kernels.base, prior ? -1 : kernels.choice[static_cast<std::size_t>(k)],
                      rng);
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

void JointEstimator::Start(const std::vector<Dim>& dims, const ParzenOptions& options,
                           bool scott_widths, std::size_t m) {
  dims_ = &dims;
  options_ = options;
  scott_widths_ = scott_widths;
  dimensions_.resize(dims.size());
  discrete_.clear();
  continuous_.clear();
  for (std::size_t d = 0; d < dims.size(); ++d) {
    const Dim& dim = dims[d];
    if (dim.fixed) continue;
    (dim.categorical || dim.binned ? discrete_ : continuous_).push_back(d);
    Dimension& out = dimensions_[d];
    out.sorted_x.clear();
    out.sorted_sigma.clear();
    out.sorted_key.clear();
    out.dirty.clear();
    // Room for the updates to come, so that the first ones after a fresh fit do not move every
    // per-kernel array (~1 ms at 1,000 members, mostly page faults).
    const std::size_t room = m + m / 4 + 64;
    for (auto* v : {&out.sorted_x, &out.sorted_sigma, &out.mu, &out.sigma, &out.log_norm}) {
      v->reserve(room);
    }
    out.sorted_key.reserve(room);
    if (!dim.categorical && !dim.binned) {
      out.unit_mu.reserve(room);
      out.unit_inv_sigma.reserve(room);
    }
    out.mu.assign(m + 1, 0.0);
    out.mu[m] = dim.categorical ? -1.0 : dim.prior_mu;
    if (!dim.categorical && !dim.binned) {
      // Every kernel's width is set by Refresh(); the prior's here.
      out.sigma.assign(m + 1, 0.0);
      out.log_norm.assign(m + 1, 0.0);
      out.unit_mu.assign(m + 1, 0.0f);
      out.unit_inv_sigma.assign(m + 1, 0.0f);
      out.unit_mu[m] = static_cast<float>((dim.prior_mu - dim.low) / (dim.high - dim.low));
      SetWidth(d, m, dim.prior_sigma);
    }
  }
}

void JointEstimator::Fit(const std::vector<Dim>& dims, const JointObservations& observations,
                         const ParzenOptions& options, bool scott_widths) {
  const std::size_t m = observations.weights.size();
  Start(dims, options, scott_widths, m);
  keys_.resize(m);
  for (std::size_t k = 0; k < m; ++k) keys_[k] = k;  // the members are their own keys
  incremental_ = false;
  for (std::size_t d = 0; d < dims.size(); ++d) {
    if (dims[d].fixed) continue;
    Dimension& out = dimensions_[d];
    const std::vector<double>& sorted_x = observations.sorted_x[d];
    const std::vector<std::size_t>& member = observations.member[d];
    for (std::size_t i = 0; i < m; ++i) SetCoordinate(d, member[i], sorted_x[i]);
    if (dims[d].categorical) continue;
    out.sorted_x = sorted_x;
    out.sorted_key = member;
    out.sorted_sigma.assign(m, kNaN);  // every width to be computed
  }
  Refresh(observations.weights, false);
}

void JointEstimator::Update(const std::vector<Dim>& dims, const JointMembers& members,
                            const RowOf& row, const ParzenOptions& options, bool scott_widths) {
  const std::vector<std::size_t>& keys = members.keys;
  const std::size_t m = keys.size();
  // The members that left and joined since the previous Update (both lists ascending).
  thread_local std::vector<std::size_t> left, joined;
  left.clear();
  joined.clear();
  bool same = incremental_ && dims_ == &dims && dimensions_.size() == dims.size() &&
              options_.prior_weight == options.prior_weight &&
              options_.categorical_prior_weight == options.categorical_prior_weight &&
              options_.consider_endpoints == options.consider_endpoints &&
              options_.width_free == options.width_free &&
              options_.prior_neighbour == options.prior_neighbour &&
              scott_widths_ == scott_widths;
  if (same) {
    std::set_difference(keys_.begin(), keys_.end(), keys.begin(), keys.end(),
                        std::back_inserter(left));
    std::set_difference(keys.begin(), keys.end(), keys_.begin(), keys_.end(),
                        std::back_inserter(joined));
    // Each change moves every per-kernel array (~10 us at 2,000 members); a fresh fit sorts
    // every dimension (~0.7 ms at 2,000).
    same = left.size() + joined.size() <= 8 + m / 64;
  }
  if (!same) {
    Start(dims, options, scott_widths, m);
    keys_ = keys;
    incremental_ = true;
    thread_local std::vector<std::pair<double, std::size_t>> by_x;
    for (std::size_t d = 0; d < dims.size(); ++d) {
      if (dims[d].fixed) continue;
      for (std::size_t k = 0; k < m; ++k) SetCoordinate(d, k, row(keys[k])[d]);
      if (dims[d].categorical) continue;
      by_x.resize(m);
      for (std::size_t k = 0; k < m; ++k) by_x[k] = {row(keys[k])[d], keys[k]};
      std::sort(by_x.begin(), by_x.end());
      Dimension& out = dimensions_[d];
      out.sorted_x.resize(m);
      out.sorted_key.resize(m);
      for (std::size_t i = 0; i < m; ++i) std::tie(out.sorted_x[i], out.sorted_key[i]) = by_x[i];
      out.sorted_sigma.assign(m, kNaN);
    }
    Refresh(members.weights, false);
    return;
  }
  const std::size_t m_before = keys_.size();
  // Leavers out of the sorted lists (found by their coordinate), then out of the kernels (from
  // the last); joiners into both, kernels in key order (their final positions, ascending).
  for (std::size_t d = 0; d < dims.size(); ++d) {
    if (dims[d].fixed) continue;
    Dimension& out = dimensions_[d];
    if (!dims[d].categorical) {
      for (std::size_t key : left) {
        const std::size_t slot = static_cast<std::size_t>(
            std::lower_bound(keys_.begin(), keys_.end(), key) - keys_.begin());
        const std::size_t i = SortedPosition(out, out.mu[slot], key);
        out.sorted_x.erase(out.sorted_x.begin() + static_cast<std::ptrdiff_t>(i));
        out.sorted_key.erase(out.sorted_key.begin() + static_cast<std::ptrdiff_t>(i));
        out.sorted_sigma.erase(out.sorted_sigma.begin() + static_cast<std::ptrdiff_t>(i));
        // Its neighbours' widths may change.
        if (i > 0) out.dirty.push_back(out.sorted_key[i - 1]);
        if (i < out.sorted_key.size()) out.dirty.push_back(out.sorted_key[i]);
      }
      for (std::size_t key : joined) {
        const double x = row(key)[d];
        const std::size_t i = SortedPosition(out, x, key);
        const auto at = static_cast<std::ptrdiff_t>(i);
        out.sorted_x.insert(out.sorted_x.begin() + at, x);
        out.sorted_key.insert(out.sorted_key.begin() + at, key);
        out.sorted_sigma.insert(out.sorted_sigma.begin() + at, kNaN);
        out.dirty.push_back(key);
        if (i > 0) out.dirty.push_back(out.sorted_key[i - 1]);
        if (i + 1 < out.sorted_key.size()) out.dirty.push_back(out.sorted_key[i + 1]);
      }
    }
  }
  for (auto it = left.rbegin(); it != left.rend(); ++it) {
    const auto slot = std::lower_bound(keys_.begin(), keys_.end(), *it) - keys_.begin();
    keys_.erase(keys_.begin() + slot);
    for (std::size_t d : discrete_) EraseKernel(d, static_cast<std::size_t>(slot));
    for (std::size_t d : continuous_) EraseKernel(d, static_cast<std::size_t>(slot));
  }
  for (std::size_t key : joined) {
    const auto slot = std::lower_bound(keys_.begin(), keys_.end(), key) - keys_.begin();
    keys_.insert(keys_.begin() + slot, key);
    const double* x = row(key);
    for (std::size_t d = 0; d < dims.size(); ++d) {
      if (dims[d].fixed) continue;
      InsertKernel(d, static_cast<std::size_t>(slot));
      SetCoordinate(d, static_cast<std::size_t>(slot), x[d]);
    }
  }
  // With fewer than 98 members the smallest width (range / (n + 2)) moves with n: every width
  // is recomputed. Past it only the changed members' neighbours are.
  Refresh(members.weights, m >= 100 && m_before >= 100 && !scott_widths);
}

// Where (x, key) is or would go in a dimension's sorted lists (coordinate, then key).
std::size_t JointEstimator::SortedPosition(const Dimension& dimension, double x, std::size_t key) {
  const auto begin = dimension.sorted_x.begin();
  std::size_t lo = static_cast<std::size_t>(std::lower_bound(begin, dimension.sorted_x.end(), x) - begin);
  const std::size_t hi =
      static_cast<std::size_t>(std::upper_bound(begin + static_cast<std::ptrdiff_t>(lo),
                                                dimension.sorted_x.end(), x) - begin);
  while (lo < hi && dimension.sorted_key[lo] < key) ++lo;
  return lo;
}

void JointEstimator::EraseKernel(std::size_t d, std::size_t slot) {
  Dimension& out = dimensions_[d];
  const auto at = static_cast<std::ptrdiff_t>(slot);
  out.mu.erase(out.mu.begin() + at);
  if (out.sigma.empty()) return;
  out.sigma.erase(out.sigma.begin() + at);
  out.log_norm.erase(out.log_norm.begin() + at);
  out.unit_mu.erase(out.unit_mu.begin() + at);
  out.unit_inv_sigma.erase(out.unit_inv_sigma.begin() + at);
}

void JointEstimator::InsertKernel(std::size_t d, std::size_t slot) {
  Dimension& out = dimensions_[d];
  const auto at = static_cast<std::ptrdiff_t>(slot);
  out.mu.insert(out.mu.begin() + at, 0.0);
  if (out.sigma.empty()) return;
  out.sigma.insert(out.sigma.begin() + at, 0.0);  // set by Refresh(): its sorted width is NaN
  out.log_norm.insert(out.log_norm.begin() + at, 0.0);
  out.unit_mu.insert(out.unit_mu.begin() + at, 0.0f);
  out.unit_inv_sigma.insert(out.unit_inv_sigma.begin() + at, 0.0f);
}

void JointEstimator::SetCoordinate(std::size_t d, std::size_t slot, double x) {
  const Dim& dim = (*dims_)[d];
  Dimension& out = dimensions_[d];
  out.mu[slot] = x;
  if (!out.unit_mu.empty()) out.unit_mu[slot] = static_cast<float>((x - dim.low) / (dim.high - dim.low));
}

// A continuous kernel's width and what scoring derives from it (its normaliser over the domain
// and, unless width-free, the 1/sigma factor).
void JointEstimator::SetWidth(std::size_t d, std::size_t slot, double sigma) {
  const Dim& dim = (*dims_)[d];
  Dimension& out = dimensions_[d];
  const double mu = out.mu[slot];
  const double inv_sigma = 1.0 / sigma;
  double log_norm =
      -LogNormalMass((dim.low - mu) * inv_sigma, (dim.high - mu) * inv_sigma) - kLogSqrt2Pi;
  if (!options_.width_free) log_norm -= std::log(sigma);
  out.sigma[slot] = sigma;
  out.log_norm[slot] = log_norm;
  out.unit_inv_sigma[slot] = static_cast<float>(inv_sigma * (dim.high - dim.low));
}

// Everything that follows from the members' coordinates and the new weights: each numeric
// dimension's widths (kernels whose width is unchanged keep their terms), binned and categorical
// kernels, the per-kernel base terms and the cumulative weights.
void JointEstimator::Refresh(const std::vector<double>& weights, bool local) {
  const std::vector<Dim>& dims = *dims_;
  const std::size_t m = keys_.size();
  // Slot of each key (keys are trial indices, or 0..m-1 after Fit).
  slot_of_key_.assign(m == 0 ? 0 : keys_.back() + 1, 0);
  for (std::size_t k = 0; k < m; ++k) slot_of_key_[keys_[k]] = k;
  const double exponent = -1.0 / (static_cast<double>(dims.size()) + 4.0);
  thread_local std::vector<double> sigmas;
  thread_local std::vector<std::size_t> slots;
  for (std::size_t d = 0; d < dims.size(); ++d) {
    const Dim& dim = dims[d];
    if (dim.fixed || dim.categorical) continue;
    Dimension& out = dimensions_[d];
    const double range = dim.high - dim.low;
    if (local) {
      // The members that moved and their neighbours (some may have left since they were noted).
      const std::size_t prior_slot = PriorSlot(dim, out.sorted_x);
      for (std::size_t key : out.dirty) {
        if (key >= slot_of_key_.size() || keys_[slot_of_key_[key]] != key) continue;
        const std::size_t slot = slot_of_key_[key];
        const std::size_t i = SortedPosition(out, out.mu[slot], key);
        const double sigma = NeighbourSigma(dim, out.sorted_x, i, prior_slot,
                                            options_.consider_endpoints, options_.prior_neighbour);
        if (sigma == out.sorted_sigma[i]) continue;
        out.sorted_sigma[i] = sigma;
        if (!dim.binned) SetWidth(d, slot, sigma);
      }
    } else {
      sigmas.resize(m);
      if (scott_widths_) {
        const double scale =
            0.2 * std::pow(std::max<double>(1.0, static_cast<double>(m)), exponent);
        const double min_sigma = range / std::min(100.0, static_cast<double>(m + 2));
        std::fill(sigmas.begin(), sigmas.end(), std::clamp(scale * range, min_sigma, range));
      } else {
        NeighbourSigmas(dim, out.sorted_x, options_.consider_endpoints, sigmas.data(),
                        options_.prior_neighbour);
      }
      for (std::size_t i = 0; i < m; ++i) {
        if (sigmas[i] == out.sorted_sigma[i]) continue;  // NaN: a new kernel
        out.sorted_sigma[i] = sigmas[i];
        if (!dim.binned) SetWidth(d, slot_of_key_[out.sorted_key[i]], sigmas[i]);
      }
    }
    out.dirty.clear();
    if (dim.binned) {  // its distinct (mu, sigma) pairs are found afresh from the sorted lists
      slots.resize(m);
      for (std::size_t i = 0; i < m; ++i) slots[i] = slot_of_key_[out.sorted_key[i]];
      FitJointBinned(dim, out.sorted_x, slots, out.sorted_sigma, &out.binned);
    }
  }
  for (std::size_t d : discrete_) dimensions_[d].terms.clear();
  // Categorical kernels (FitCategorical's): the observed choice, which `mu` holds, plus `base`.
  categorical_base_ = options_.categorical_prior_weight / static_cast<double>(m + 1);
  // The float terms of each kernel's log density: log weight plus, per continuous dimension,
  // log_norm (the rest is -z^2/2 at the point).
  const auto n = static_cast<Eigen::Index>(m) + 1;
  double total_raw = options_.prior_weight;
  for (double w : weights) total_raw += w;
  ArrayXd b(n);
  // glibc's log (FMA) is faster than Eigen's SSE2 packet log here (~4 vs ~6.5 ns).
  for (Eigen::Index k = 0; k + 1 < n; ++k) {
    b[k] = std::log(weights[static_cast<std::size_t>(k)] / total_raw);
  }
  b[n - 1] = std::log(options_.prior_weight / total_raw);
  for (std::size_t d : continuous_) b += Eigen::Map<const ArrayXd>(dimensions_[d].log_norm.data(), n);
  base_ = b.cast<float>();
  cumulative_.resize(m + 1);
  double sum = 0;
  for (std::size_t k = 0; k < m; ++k) {
    sum += weights[k];
    cumulative_[k] = sum;
  }
  cumulative_.back() = sum + options_.prior_weight;
}

std::vector<double> JointEstimator::Sample(std::mt19937_64& rng) const {
  std::vector<double> x(dims_->size(), 0.0);
  auto k = static_cast<Eigen::Index>(Pick(cumulative_, rng));
  for (std::size_t d = 0; d < dims_->size(); ++d) {
    const Dim& dim = (*dims_)[d];
    const Dimension& kernels = dimensions_[d];
    if (dim.fixed) {
      x[d] = dim.categorical ? 0.0 : dim.low;
    } else if (dim.categorical) {
      x[d] = SampleChoice(dim, categorical_base_, static_cast<int>(kernels.mu[static_cast<std::size_t>(k)]),
                          rng);
    } else if (dim.binned) {
      x[d] = SampleKernel(dim, kernels.binned, k, rng);
    } else {
      const auto slot = static_cast<std::size_t>(k);
      x[d] = SampleKernel(dim, kernels.mu[slot], kernels.sigma[slot], rng);
    }
  }
  return x;
}

// Candidates drawn from l(x) share their discrete values a lot: each categorical or binned
// dimension's per-kernel terms are computed once per distinct value.
const Eigen::ArrayXf& JointEstimator::DiscreteTerm(std::size_t d, double value) {
  std::vector<std::pair<double, Eigen::ArrayXf>>& cache = dimensions_[d].terms;
  for (const auto& entry : cache) {
    if (entry.first == value) return entry.second;
  }
  const Dim& dim = (*dims_)[d];
  const Eigen::Index n = base_.size();
  Eigen::ArrayXf out(n);
  if (dim.categorical) {
    const double b = categorical_base_;
    const double row = std::log(1.0 + static_cast<double>(dim.choices) * b);
    const auto hit = static_cast<float>(std::log(1.0 + b) - row);
    const auto miss = static_cast<float>(std::log(b) - row);
    const Eigen::Map<const ArrayXd> choice(dimensions_[d].mu.data(), n);  // the prior's: -1
    out = miss + (hit - miss) * (choice == value).cast<float>();
    // The prior kernel (choice -1, counted as a miss) is uniform over the choices.
    out[n - 1] = static_cast<float>(-std::log(static_cast<double>(dim.choices)));
  } else {
    const NumericKernels& kernels = dimensions_[d].binned;
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
  Eigen::ArrayXf& column = column_;  // this estimator's scratch (no reallocation per call)
  Eigen::ArrayXf& term = term_;
  const Eigen::Index n = base_.size();
  // Two dimensions per pass over the kernels (search/tpe_simd.h; the same operations in the
  // same order as one at a time).
  auto unit = [&](std::size_t d) {
    const Dim& dim = (*dims_)[d];
    return static_cast<float>((x[d] - dim.low) / (dim.high - dim.low));
  };
  column.resize(n);
  const float* from = base_.data();
  for (std::size_t i = 0; i < continuous_.size(); i += 2) {
    const Dimension& first = dimensions_[continuous_[i]];
    const Dimension* second = i + 1 < continuous_.size() ? &dimensions_[continuous_[i + 1]] : nullptr;
    simd::SubtractHalfSquares(from, unit(continuous_[i]), first.unit_mu.data(),
                              first.unit_inv_sigma.data(),
                              second != nullptr ? unit(continuous_[i + 1]) : 0.0f,
                              second != nullptr ? second->unit_mu.data() : nullptr,
                              second != nullptr ? second->unit_inv_sigma.data() : nullptr,
                              column.data(), n);
    from = column.data();
  }
  if (continuous_.empty()) column = base_;
  for (std::size_t i = 0; i < discrete_.size(); i += 2) {
    const float* first = DiscreteTerm(discrete_[i], x[discrete_[i]]).data();
    const float* second =
        i + 1 < discrete_.size() ? DiscreteTerm(discrete_[i + 1], x[discrete_[i + 1]]).data() : nullptr;
    simd::AddTerms(column.data(), first, second, n);
  }
  const float top = simd::Max(column.data(), n);
  if (!std::isfinite(top)) return static_cast<double>(top);
  Eigen::Index n_kept = n;
  if (n < kPruneMinKernels) {
    term = (column - top).exp();
  } else {
    // Kernels more than kPruneGap below the largest term add less than n exp(-kPruneGap) of the
    // density (< 1e-9 for n < 10^4): only the others are exponentiated (~5 % of them at 2,000
    // trials on the speed benchmark's space).
    term.resize(n);
    n_kept = simd::KeepAbove(column.data(), top, top - kPruneGap, term.data(), n);
    term.head(n_kept) = term.head(n_kept).exp();
  }
  return static_cast<double>(top) + std::log(static_cast<double>(term.head(n_kept).sum()));
}

}  // namespace tune
