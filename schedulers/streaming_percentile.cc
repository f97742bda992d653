#include "schedulers/streaming_percentile.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <functional>
#include <limits>
#include <stdexcept>

#include "core/numpy.h"
#include "core/state.h"
#include "schedulers/util.h"

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

Json StreamingNanPercentile::SaveState() const {
  Json lower = Json::array(), upper = Json::array();
  for (double value : lower_) lower.push_back(StateNumber(value));
  for (double value : upper_) upper.push_back(StateNumber(value));
  return Json{{"lower", std::move(lower)}, {"upper", std::move(upper)}, {"nans", nan_count_}};
}

void StreamingNanPercentile::LoadState(const Json& state, const std::string& path) {
  auto numbers = [&](const char* key) {
    const std::string at = path + "." + key;
    const Json& array = StateArray(StateMember(state, key, path), at);
    std::vector<double> out;
    out.reserve(array.size());
    for (std::size_t i = 0; i < array.size(); ++i) {
      out.push_back(StateDoubleAt(array, i, at));
      if (std::isnan(out.back())) {
        throw std::runtime_error("snapshot: " + at + "[" + std::to_string(i) + "]: NaN (counted in nans)");
      }
    }
    return out;
  };
  std::vector<double> lower = numbers("lower");
  std::vector<double> upper = numbers("upper");
  const std::int64_t nans = StateInteger(StateMember(state, "nans", path), path + ".nans");
  const std::size_t n = lower.size() + upper.size();
  std::size_t lower_size = 0;  // as Add() leaves it
  if (n > 0) {
    const PercentilePosition at = NumpyPercentilePosition(n, q_);
    lower_size = at.at_end ? n : at.below + 1;
  }
  if (nans < 0 || lower.size() != lower_size || !std::is_heap(lower.begin(), lower.end()) ||
      !std::is_heap(upper.begin(), upper.end(), std::greater<>()) ||
      (!lower.empty() && !upper.empty() && lower.front() > upper.front())) {
    throw std::runtime_error("snapshot: " + path + ": not the two heaps of a percentile at q = " +
                             std::to_string(q_));
  }
  lower_ = std::move(lower);
  upper_ = std::move(upper);
  nan_count_ = static_cast<std::size_t>(nans);
}

}  // namespace tune
