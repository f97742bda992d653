#include "reporters/report_importance.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>

namespace tune {
namespace {

constexpr int kSteps = 50;          // Optuna's PedAnovaImportanceEvaluator._n_steps
constexpr double kPriorWeight = 1;  // ._prior_weight
constexpr double kEpsilon = 1e-12;  // added to both densities before dividing

double Ndtr(double x) { return 0.5 * std::erfc(-x / std::sqrt(2.0)); }

// log(exp(a) - exp(b)) for a >= b.
double LogDiff(double a, double b) {
  if (b == -std::numeric_limits<double>::infinity()) return a;
  return a + std::log1p(-std::exp(b - a));
}

// log P(a <= Z <= b), as optuna/samplers/_tpe/_truncnorm.py's _log_gauss_mass: in the tail on
// the side of the interval, by symmetry on the left.
double LogGaussMass(double a, double b) {
  if (b <= 0) return LogDiff(std::log(Ndtr(b)), std::log(Ndtr(a)));
  if (a > 0) return LogDiff(std::log(Ndtr(-a)), std::log(Ndtr(-b)));
  return std::log1p(-Ndtr(a) - Ndtr(-b));
}

bool IsSingle(const ImportanceParam& param) {
  if (param.kind == ImportanceParam::Kind::kCategorical) return param.num_choices <= 1;
  if (param.step > 0) return param.high - param.low < param.step;
  return !(param.high > param.low);
}

// The counts of `trials`' values in the parameter's grid bins (Optuna's
// _count_numerical_param_in_grid / _count_categorical_param_in_grid).
std::vector<std::int64_t> GridCounts(const ImportanceParam& param, std::size_t p,
                                     const std::vector<std::vector<double>>& values,
                                     const std::vector<std::size_t>& trials) {
  if (param.kind == ImportanceParam::Kind::kCategorical) {
    std::vector<std::int64_t> counts(static_cast<std::size_t>(param.num_choices), 0);
    for (std::size_t t : trials) {
      auto index = static_cast<std::int64_t>(values[t][p]);
      if (index >= 0 && index < param.num_choices) ++counts[static_cast<std::size_t>(index)];
    }
    return counts;
  }
  int steps = kSteps;
  if (param.kind == ImportanceParam::Kind::kInt && param.log) {
    int log2_domain = static_cast<int>(std::ceil(std::log(param.high - param.low + 1) / std::log(2.0))) + 1;
    steps = std::min(log2_domain, steps);
  } else if (param.step > 0) {
    steps = std::min(static_cast<int>(std::nearbyint((param.high - param.low) / param.step)) + 1, steps);
  }
  double low = param.log ? std::log(param.low) : param.low;
  double high = param.log ? std::log(param.high) : param.high;
  double step_size = (high - low) / (steps - 1);
  std::vector<std::int64_t> counts(static_cast<std::size_t>(steps), 0);
  for (std::size_t t : trials) {
    double value = param.log ? std::log(values[t][p]) : values[t][p];
    // Midpoint ties go to the lower bin, as Optuna's ceil(x - 0.5).
    double bin = std::ceil((value - low) / step_size - 0.5);
    bin = std::clamp(bin, 0.0, static_cast<double>(steps - 1));
    ++counts[static_cast<std::size_t>(bin)];
  }
  return counts;
}

// The density on the grid of a Parzen estimator fitted to `counts` (Optuna's
// ScottParzenEstimator on the grid: one kernel per occupied bin, weighted by its count, plus a
// prior kernel of weight kPriorWeight), plus kEpsilon.
std::vector<double> GridDensity(const std::vector<std::int64_t>& counts, bool categorical) {
  const std::size_t size = counts.size();
  std::vector<double> observations;
  std::vector<double> weights;
  for (std::size_t i = 0; i < size; ++i) {
    if (counts[i] > 0) {
      observations.push_back(static_cast<double>(i));
      weights.push_back(static_cast<double>(counts[i]));
    }
  }
  const std::size_t n = observations.size();
  std::vector<double> mixture = weights;
  mixture.push_back(kPriorWeight);
  double total = std::accumulate(mixture.begin(), mixture.end(), 0.0);
  for (double& w : mixture) w /= total;

  std::vector<double> pdf(size, 0.0);
  if (categorical) {
    const double kernels = static_cast<double>(n + 1);
    for (std::size_t k = 0; k <= n; ++k) {
      // Row k: prior / kernels everywhere, plus 1 at its observation; normalised.
      double row_sum = kPriorWeight / kernels * static_cast<double>(size) + (k < n ? 1.0 : 0.0);
      for (std::size_t x = 0; x < size; ++x) {
        double w = kPriorWeight / kernels + (k < n && observations[k] == static_cast<double>(x) ? 1.0 : 0.0);
        pdf[x] += mixture[k] * w / row_sum;
      }
    }
    for (double& value : pdf) value += kEpsilon;
    return pdf;
  }

  // Scott's rule on the bin indices, weighted by the counts (integer arithmetic as Optuna's).
  std::int64_t weights_sum = 0;
  std::vector<std::int64_t> cumulative;
  for (std::size_t i = 0; i < size; ++i) {
    if (counts[i] > 0) cumulative.push_back(weights_sum += counts[i]);
  }
  double mean = 0;
  for (std::size_t k = 0; k < n; ++k) mean += observations[k] * weights[k];
  mean /= static_cast<double>(weights_sum);
  double variance = 0;
  for (std::size_t k = 0; k < n; ++k) variance += (observations[k] - mean) * (observations[k] - mean) * weights[k];
  double sigma = std::sqrt(variance / static_cast<double>(std::max<std::int64_t>(1, weights_sum - 1)));
  std::size_t q1 = static_cast<std::size_t>(
      std::lower_bound(cumulative.begin(), cumulative.end(), weights_sum / 4) - cumulative.begin());
  std::size_t q3 = static_cast<std::size_t>(
      std::upper_bound(cumulative.begin(), cumulative.end(), weights_sum * 3 / 4) - cumulative.begin());
  double iqr = observations[std::min(n - 1, q3)] - observations[q1];
  sigma = 1.059 * std::min(iqr / 1.34, sigma) * std::pow(static_cast<double>(weights_sum), -0.2);
  sigma = std::max(sigma, 0.5 / 1.64);  // 1.64 sigma (90 %) fits in a bin

  const double low = 0, high = static_cast<double>(size - 1);
  std::vector<double> mus = observations;
  std::vector<double> sigmas(n, sigma);
  mus.push_back((low + high) / 2);
  sigmas.push_back(high - low + 1);
  std::vector<double> log_norm(n + 1);
  for (std::size_t k = 0; k <= n; ++k) {
    log_norm[k] = LogGaussMass((low - 0.5 - mus[k]) / sigmas[k], (high + 0.5 - mus[k]) / sigmas[k]);
  }
  std::vector<double> terms(n + 1);
  for (std::size_t x = 0; x < size; ++x) {
    double xd = static_cast<double>(x);
    double max = -std::numeric_limits<double>::infinity();
    for (std::size_t k = 0; k <= n; ++k) {
      terms[k] = LogGaussMass((xd - 0.5 - mus[k]) / sigmas[k], (xd + 0.5 - mus[k]) / sigmas[k]) -
                 log_norm[k] + std::log(mixture[k]);
      max = std::max(max, terms[k]);
    }
    if (std::isinf(max)) max = 0;
    double sum = 0;
    for (double term : terms) sum += std::exp(term - max);
    pdf[x] = std::exp(std::log(sum) + max) + kEpsilon;
  }
  return pdf;
}

double PearsonDivergence(const ImportanceParam& param, std::size_t p,
                         const std::vector<std::vector<double>>& values,
                         const std::vector<std::size_t>& top, const std::vector<std::size_t>& region) {
  bool categorical = param.kind == ImportanceParam::Kind::kCategorical;
  std::vector<double> pdf_top = GridDensity(GridCounts(param, p, values, top), categorical);
  std::vector<double> pdf_local = GridDensity(GridCounts(param, p, values, region), categorical);
  double divergence = 0;
  for (std::size_t x = 0; x < pdf_top.size(); ++x) {
    double ratio = pdf_top[x] / pdf_local[x] - 1;
    divergence += pdf_local[x] * ratio * ratio;
  }
  return divergence;
}

}  // namespace

std::vector<double> PedAnovaImportance(const std::vector<ImportanceParam>& params,
                                       const std::vector<std::vector<double>>& values,
                                       const std::vector<double>& losses, double target_quantile) {
  std::vector<double> importance(params.size(), 0.0);
  std::vector<std::size_t> region;
  for (std::size_t t = 0; t < losses.size() && t < values.size(); ++t) {
    if (std::isfinite(losses[t])) region.push_back(t);
  }
  if (region.size() > 1) {
    // The top quantile, ties at the cutoff included (Optuna's _QuantileFilter).
    std::vector<double> sorted;
    for (std::size_t t : region) sorted.push_back(losses[t]);
    auto cutoff_index = static_cast<std::size_t>(
        std::ceil(target_quantile * static_cast<double>(sorted.size())) - 1);
    std::nth_element(sorted.begin(), sorted.begin() + static_cast<std::ptrdiff_t>(cutoff_index), sorted.end());
    double cutoff = sorted[cutoff_index];
    std::vector<std::size_t> top;
    for (std::size_t t : region) {
      if (losses[t] <= cutoff) top.push_back(t);
    }
    double quantile = static_cast<double>(top.size()) / static_cast<double>(region.size());
    for (std::size_t p = 0; p < params.size(); ++p) {
      if (IsSingle(params[p])) continue;
      importance[p] = PearsonDivergence(params[p], p, values, top, region) * quantile * quantile;
    }
  }
  double sum = std::accumulate(importance.begin(), importance.end(), 0.0);
  for (double& value : importance) {
    value = sum == 0 ? 1.0 / static_cast<double>(params.size()) : value / sum;
  }
  return importance;
}

}  // namespace tune
