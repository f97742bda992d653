#include "stoppers/trial_plateau.h"

#include <algorithm>
#include <cassert>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "core/numpy.h"
#include "core/state.h"

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

Json TrialPlateauStopper::SaveState() const {
  std::vector<const std::pair<const std::string, History>*> trials;
  trials.reserve(history_.size());
  for (const auto& entry : history_) trials.push_back(&entry);
  // The same state however the map is laid out.
  std::sort(trials.begin(), trials.end(), [](auto* a, auto* b) { return a->first < b->first; });
  Json state = Json::array();
  for (const auto* entry : trials) {
    Json window = Json::array();
    for (double value : entry->second.window) window.push_back(StateNumber(value));
    state.push_back(Json::array({entry->first, entry->second.results, std::move(window)}));
  }
  return state;
}

void TrialPlateauStopper::LoadState(const Json& state) {
  // Types are checked by core/state.h's readers (errors name the place, "stoppers.plateau[2][1]").
  const std::string path = "stoppers.plateau";
  const std::string kWhat = "snapshot: the plateau stopper's state: ";
  std::unordered_map<std::string, History> history;
  const Json& trials = StateArray(state, path);
  for (std::size_t i = 0; i < trials.size(); ++i) {
    const std::string at = path + "[" + std::to_string(i) + "]";
    const Json& entry = StateArray(trials[i], at);
    if (entry.size() != 3) throw std::runtime_error(kWhat + at + " is not [id, results, window]");
    History trial;
    trial.results = StateInteger(entry[1], at + "[1]");
    const Json& window = StateArray(entry[2], at + "[2]");
    for (std::size_t j = 0; j < window.size(); ++j) {
      trial.window.push_back(StateDoubleAt(window, j, at + "[2]"));
    }
    const auto size = static_cast<std::int64_t>(trial.window.size());
    if (trial.results < 0 || size > options_.num_results || size > trial.results) {
      throw std::runtime_error(kWhat + "a window it cannot have: " + entry.dump());
    }
    if (!history.emplace(StateString(entry[0], at + "[0]"), std::move(trial)).second) {
      throw std::runtime_error(kWhat + "a trial twice: " + entry[0].dump());
    }
  }
  history_ = std::move(history);
}

}  // namespace tune
