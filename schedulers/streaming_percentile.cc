#include "schedulers/streaming_percentile.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <functional>
#include <limits>

#include "core/numpy.h"

namespace tune {

StreamingNanPercentile::StreamingNanPercentile(double q) : q_(q) { assert(q >= 0 && q <= 100); }

void StreamingNanPercentile::Add(double value) {
  if (std::isnan(value)) {
    ++nan_count_;
    return;
  }
  // Every number in lower_ is <= every number in upper_.
  if (lower_.empty() || value <= lower_.front()) {
    lower_.push_back(value);
    std::push_heap(lower_.begin(), lower_.end());
  } else {
    upper_.push_back(value);
    std::push_heap(upper_.begin(), upper_.end(), std::greater<>());
  }
  // lower_ holds the numbers up to the lower neighbour: below + 1 of them, or all at the end.
  const std::size_t n = lower_.size() + upper_.size();
  const PercentilePosition at = NumpyPercentilePosition(n, q_);
  const std::size_t lower_size = at.at_end ? n : at.below + 1;
  while (lower_.size() > lower_size) {
    std::pop_heap(lower_.begin(), lower_.end());
    upper_.push_back(lower_.back());
    lower_.pop_back();
    std::push_heap(upper_.begin(), upper_.end(), std::greater<>());
  }
  while (lower_.size() < lower_size) {
    std::pop_heap(upper_.begin(), upper_.end(), std::greater<>());
    lower_.push_back(upper_.back());
    upper_.pop_back();
    std::push_heap(lower_.begin(), lower_.end());
  }
}

double StreamingNanPercentile::Value() const {
  const std::size_t n = lower_.size() + upper_.size();
  if (n == 0) return std::numeric_limits<double>::quiet_NaN();
  const PercentilePosition at = NumpyPercentilePosition(n, q_);
  if (at.at_end) return NumpyPercentileLerp(lower_.front(), lower_.front(), at.gamma);
  return NumpyPercentileLerp(lower_.front(), upper_.front(), at.gamma);
}

}  // namespace tune
