#include "core/numpy.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace tune {

double NumpyPairwiseSum(const double* values, std::size_t n) {
  // numpy/_core/src/umath/loops_utils.h.src, pairwise_sum_DOUBLE.
  constexpr std::size_t kBlock = 128;
  if (n < 8) {
    double sum = 0.;
    for (std::size_t i = 0; i < n; ++i) sum += values[i];
    return sum;
  }
  if (n <= kBlock) {
    double partial[8];
    for (std::size_t j = 0; j < 8; ++j) partial[j] = values[j];
    std::size_t i = 8;
    for (; i < n - (n % 8); i += 8) {
      for (std::size_t j = 0; j < 8; ++j) partial[j] += values[i + j];
    }
    double sum = ((partial[0] + partial[1]) + (partial[2] + partial[3])) +
                 ((partial[4] + partial[5]) + (partial[6] + partial[7]));
    for (; i < n; ++i) sum += values[i];
    return sum;
  }
  std::size_t half = n / 2;
  half -= half % 8;
  return NumpyPairwiseSum(values, half) + NumpyPairwiseSum(values + half, n - half);
}

double NumpyMean(const std::vector<double>& values) {
  if (values.empty()) return std::numeric_limits<double>::quiet_NaN();
  // The reduction starts from add's identity, 0.0, so a sum of negative zeros is +0.0.
  const double sum = 0.0 + NumpyPairwiseSum(values.data(), values.size());
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

double NumpyStd(const std::vector<double>& values) {
  if (values.empty()) return std::numeric_limits<double>::quiet_NaN();
  const auto n = static_cast<double>(values.size());
  const double mean = NumpyPairwiseSum(values.data(), values.size()) / n;
  std::vector<double> squares;
  squares.reserve(values.size());
  for (double value : values) squares.push_back((value - mean) * (value - mean));
  return std::sqrt(NumpyPairwiseSum(squares.data(), squares.size()) / n);
}

PercentilePosition NumpyPercentilePosition(std::size_t n, double q) {
  // numpy's "linear" method: virtual index (n - 1) * quantile; numpy's previous index is -1 at
  // or past the last value, so gamma is then virtual_index + 1 (>= 1: the upper neighbour).
  const double quantile = q / 100.0;
  const double virtual_index = static_cast<double>(n - 1) * quantile;
  if (virtual_index < static_cast<double>(n - 1)) {
    const double previous_index = std::floor(virtual_index);
    return {static_cast<std::size_t>(previous_index), false, virtual_index - previous_index};
  }
  return {n - 1, true, virtual_index + 1};
}

double NumpyPercentileLerp(double lower, double upper, double gamma) {
  // numpy's _lerp interpolates from the upper neighbour when gamma >= 0.5. Even a lone value is
  // interpolated with itself, so an infinity there gives NaN, as in numpy.
  const double diff = upper - lower;
  return gamma >= 0.5 ? upper - diff * (1 - gamma) : lower + diff * gamma;
}

double NanPercentile(std::vector<double> values, double q) {
  values.erase(std::remove_if(values.begin(), values.end(), [](double v) { return std::isnan(v); }),
               values.end());
  if (values.empty()) return std::numeric_limits<double>::quiet_NaN();
  std::sort(values.begin(), values.end());
  // The same operations in the same order as numpy give the same bits as numpy.
  const PercentilePosition at = NumpyPercentilePosition(values.size(), q);
  if (at.at_end) return NumpyPercentileLerp(values.back(), values.back(), at.gamma);
  return NumpyPercentileLerp(values[at.below], values[at.below + 1], at.gamma);
}

}  // namespace tune
