#include "stoppers/numpy_std.h"

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

double NumpyStd(const std::vector<double>& values) {
  if (values.empty()) return std::numeric_limits<double>::quiet_NaN();
  const auto n = static_cast<double>(values.size());
  const double mean = NumpyPairwiseSum(values.data(), values.size()) / n;
  std::vector<double> squares;
  squares.reserve(values.size());
  for (double value : values) squares.push_back((value - mean) * (value - mean));
  return std::sqrt(NumpyPairwiseSum(squares.data(), squares.size()) / n);
}

}  // namespace tune
