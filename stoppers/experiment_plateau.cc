#include "stoppers/experiment_plateau.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <stdexcept>
#include <string>
#include <utility>

#include "core/numpy.h"
#include "core/state.h"

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

Json ExperimentPlateauStopper::SaveState() const {
  Json values = Json::array();
  for (double value : top_values_) values.push_back(StateNumber(value));
  return {{"top_values", std::move(values)}, {"iterations", iterations_}};
}

void ExperimentPlateauStopper::LoadState(const Json& state) {
  // Types are checked by core/state.h's readers (errors name the place).
  const std::string path = "stoppers.experiment_plateau";
  const Json& saved = StateArray(StateMember(state, "top_values", path), path + ".top_values");
  std::vector<double> values;
  for (std::size_t i = 0; i < saved.size(); ++i) {
    values.push_back(StateDoubleAt(saved, i, path + ".top_values"));
  }
  const std::int64_t iterations =
      StateInteger(StateMember(state, "iterations", path), path + ".iterations");
  // OnResult keeps at most `top` values, ascending, none NaN.
  if (static_cast<std::int64_t>(values.size()) > options_.top || iterations < 0 ||
      std::any_of(values.begin(), values.end(), [](double v) { return std::isnan(v); }) ||
      !std::is_sorted(values.begin(), values.end())) {
    throw std::runtime_error(
        "snapshot: the experiment plateau stopper's state: not one it can have: " + state.dump());
  }
  top_values_ = std::move(values);
  iterations_ = iterations;
}

}  // namespace tune
