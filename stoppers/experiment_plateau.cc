#include "stoppers/experiment_plateau.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <utility>

#include "core/numpy.h"

namespace tune {

ExperimentPlateauStopper::ExperimentPlateauStopper(ExperimentPlateauOptions options)
    : options_(std::move(options)) {
  assert(!options_.metric.empty() && options_.std > 0 && options_.top >= 2 &&
         options_.patience >= 0);
}

bool ExperimentPlateauStopper::OnResult(const Result& result) {
  const double value = result.Get(options_.metric);
  if (std::isnan(value)) return StopAll();
  // Ray: sorted(values + [value]), then the first `top` (min) or the last `top` (max). A value
  // goes after equal ones, as Python's stable sort leaves the appended one.
  top_values_.insert(std::upper_bound(top_values_.begin(), top_values_.end(), value), value);
  const auto top = static_cast<std::size_t>(options_.top);
  if (top_values_.size() > top) {
    if (options_.mode == Mode::kMin) {
      top_values_.pop_back();
    } else {
      top_values_.erase(top_values_.begin());
    }
  }
  iterations_ = HasPlateaued() ? iterations_ + 1 : 0;
  return StopAll();
}

bool ExperimentPlateauStopper::HasPlateaued() const {
  return static_cast<std::int64_t>(top_values_.size()) == options_.top &&
         TopStd() <= options_.std;
}

double ExperimentPlateauStopper::TopStd() const { return NumpyStd(top_values_); }

}  // namespace tune
