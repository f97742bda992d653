#include "schedulers/util.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>

namespace tune {
namespace {

// numpy's DOUBLE_pairwise_sum (numpy/_core/src/umath/loops_utils.h.src).
double PairwiseSum(const double* values, std::size_t count) {
  constexpr std::size_t kBlock = 128;
  if (count < 8) {
    double sum = 0.;
    for (std::size_t i = 0; i < count; ++i) sum += values[i];
    return sum;
  }
  if (count <= kBlock) {
    double partial[8];
    for (std::size_t j = 0; j < 8; ++j) partial[j] = values[j];
    std::size_t i = 8;
    for (; i < count - count % 8; i += 8) {
      for (std::size_t j = 0; j < 8; ++j) partial[j] += values[i + j];
    }
    double sum = ((partial[0] + partial[1]) + (partial[2] + partial[3])) +
                 ((partial[4] + partial[5]) + (partial[6] + partial[7]));
    for (; i < count; ++i) sum += values[i];
    return sum;
  }
  std::size_t half = count / 2;
  half -= half % 8;
  return PairwiseSum(values, half) + PairwiseSum(values + half, count - half);
}

}  // namespace

bool HasAttr(const Result& result, const std::string& attr) {
  return attr == "training_iteration" || attr == "time_total_s" || result.metrics.contains(attr);
}

std::optional<std::pair<double, double>> ReadTimeAndMetric(const Result& result,
                                                            const std::string& time_attr,
                                                            const std::string& metric) {
  if (!HasAttr(result, time_attr) || !HasAttr(result, metric)) return std::nullopt;
  const double time = result.Get(time_attr);
  if (std::isnan(time)) return std::nullopt;
  return std::make_pair(time, result.Get(metric));
}

double NumpyMean(const std::vector<double>& values) {
  if (values.empty()) return std::numeric_limits<double>::quiet_NaN();
  // The reduction starts from add's identity, 0.0, so a sum of negative zeros is +0.0.
  const double sum = 0.0 + PairwiseSum(values.data(), values.size());
  return sum / static_cast<double>(values.size());
}

double NumpyMedian(std::vector<double> values) {
  if (values.empty()) return std::numeric_limits<double>::quiet_NaN();
  for (double value : values) {
    if (std::isnan(value)) return value;
  }
  std::sort(values.begin(), values.end());
  const std::size_t middle = values.size() / 2;
  if (values.size() % 2 == 1) return NumpyMean({values[middle]});
  return NumpyMean({values[middle - 1], values[middle]});
}

}  // namespace tune
