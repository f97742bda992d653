#include "stoppers/trial_plateau.h"

#include <cassert>
#include <utility>
#include <vector>

#include "core/numpy.h"

namespace tune {

TrialPlateauStopper::TrialPlateauStopper(TrialPlateauOptions options)
    : options_(std::move(options)) {
  assert(!options_.metric.empty() && options_.std > 0 && options_.num_results >= 1);
}

std::optional<double> TrialPlateauStopper::OnResult(const std::string& trial_id,
                                                    const Result& result) {
  History& history = history_[trial_id];
  const double value = result.Get(options_.metric);
  history.window.push_back(value);
  if (static_cast<std::int64_t>(history.window.size()) > options_.num_results) {
    history.window.pop_front();
  }
  ++history.results;
  if (history.results < options_.grace_period) return std::nullopt;
  if (static_cast<std::int64_t>(history.window.size()) < options_.num_results) {
    return std::nullopt;
  }
  // Ray skips the trial while this result is on the wrong side of the threshold; a NaN passes
  // that test, as in Ray, and then fails the std test below.
  if (options_.metric_threshold) {
    const double threshold = *options_.metric_threshold;
    if (options_.mode == Mode::kMin && value > threshold) return std::nullopt;
    if (options_.mode == Mode::kMax && value < threshold) return std::nullopt;
  }
  const double std = NumpyStd(std::vector<double>(history.window.begin(), history.window.end()));
  // NaN compares false: a window with a missing value never plateaus.
  if (std < options_.std) return std;
  return std::nullopt;
}

}  // namespace tune
