// Stoppers: every stopper of a StopConfig behind one object, and the reasons it gives.
#include "stoppers/stopper.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "core/state.h"

namespace tune {
namespace {

const char* Comparison(Mode direction) { return direction == Mode::kMax ? ">=" : "<="; }

// `value` has reached `target` in `direction`; NaN never has.
bool Reached(double value, double target, Mode direction) {
  return direction == Mode::kMax ? value >= target : value <= target;
}

}  // namespace

Stoppers::Stoppers(StopConfig config) : config_(std::move(config)) {
  if (config_.plateau) plateau_.emplace(*config_.plateau);
  if (config_.experiment_plateau) experiment_plateau_.emplace(*config_.experiment_plateau);
}

std::optional<std::string> Stoppers::CheckThresholds(const Result& result) const {
  for (const Threshold& threshold : config_.thresholds) {
    if (Reached(result.Get(threshold.attr), threshold.value, threshold.direction)) {
      return fmt::format("{} {} {}", threshold.attr, Comparison(threshold.direction),
                         threshold.value);
    }
  }
  return std::nullopt;
}

std::optional<std::string> Stoppers::OnTrialResult(const std::string& trial_id,
                                                   const Result& result) {
  if (auto it = stopped_.find(trial_id); it != stopped_.end()) return it->second;
  // Every stopper sees every result of a running trial (Ray's CombinedStopper short-circuits,
  // which would make a stopper's state depend on the order they are listed in).
  std::optional<std::string> reason = CheckThresholds(result);
  if (plateau_) {
    if (const std::optional<double> std = plateau_->OnResult(trial_id, result); std && !reason) {
      const TrialPlateauOptions& options = plateau_->options();
      reason = fmt::format("plateau: {} std {:.4g} < {} over {} results", options.metric, *std,
                           options.std, options.num_results);
    }
  }
  ObserveForExperiment(trial_id, result);
  if (!reason) reason = experiment_reason_;
  if (reason) stopped_.emplace(trial_id, *reason);
  return reason;
}

void Stoppers::ObserveForExperiment(const std::string& trial_id, const Result& result) {
  if (experiment_reason_) return;
  if (config_.goal) {
    const GoalOptions& goal = *config_.goal;
    const double value = result.Get(goal.metric);
    if (Reached(value, goal.value, goal.mode)) {
      experiment_reason_ = fmt::format("goal: {} {:.6g} {} {} ({})", goal.metric, value,
                                       Comparison(goal.mode), goal.value, trial_id);
    }
  }
  if (experiment_plateau_ && experiment_plateau_->OnResult(result) && !experiment_reason_) {
    const ExperimentPlateauOptions& options = experiment_plateau_->options();
    experiment_reason_ =
        fmt::format("experiment_plateau: top {} {} std {:.4g} <= {} (patience {})", options.top,
                    options.metric, experiment_plateau_->TopStd(), options.std, options.patience);
  }
}

void Stoppers::OnTrialComplete(const std::string& trial_id, const Result* last) {
  stopped_.erase(trial_id);
  if (plateau_) plateau_->Forget(trial_id);
  if (!config_.no_improvement || experiment_reason_ || last == nullptr) return;
  const NoImprovementOptions& options = *config_.no_improvement;
  const double value = last->Get(options.metric);
  if (std::isnan(value)) return;
  if (!best_value_ || IsBetter(value, *best_value_, options.mode)) {
    best_value_ = value;
    best_trial_ = trial_id;
    trials_without_improvement_ = 0;
    return;
  }
  if (++trials_without_improvement_ >= options.trials) {
    experiment_reason_ =
        fmt::format("no_improvement: best {} {:.6g} ({}) not improved by the {} trials since",
                    options.metric, *best_value_, best_trial_, trials_without_improvement_);
  }
}

std::optional<std::string> Stoppers::ExperimentStop(double elapsed_s) const {
  if (experiment_reason_) return experiment_reason_;
  if (config_.time_budget_s && elapsed_s >= *config_.time_budget_s) {
    return fmt::format("time budget {} s reached ({:.0f} s elapsed)", *config_.time_budget_s,
                       elapsed_s);
  }
  return std::nullopt;
}

bool Stoppers::MayCreateTrial(std::int64_t trials_created) const {
  if (experiment_reason_) return false;
  return !config_.max_total_trials || trials_created < *config_.max_total_trials;
}

std::string Stoppers::Describe(double elapsed_s) const {
  std::vector<std::string> parts;
  for (const Threshold& threshold : config_.thresholds) {
    parts.push_back(fmt::format("{}{}{}", threshold.attr, Comparison(threshold.direction),
                                threshold.value));
  }
  if (config_.plateau) {
    parts.push_back(fmt::format("plateau {} std<{} over {}", config_.plateau->metric,
                                config_.plateau->std, config_.plateau->num_results));
  }
  if (config_.time_budget_s) {
    const double left = std::max(0.0, *config_.time_budget_s - elapsed_s);
    parts.push_back(fmt::format("time budget {} s ({:.0f} s left)", *config_.time_budget_s, left));
  }
  if (config_.max_total_trials) {
    parts.push_back(fmt::format("max {} trials", *config_.max_total_trials));
  }
  if (config_.goal) {
    parts.push_back(fmt::format("goal {}{}{}", config_.goal->metric,
                                Comparison(config_.goal->mode), config_.goal->value));
  }
  if (config_.no_improvement) {
    parts.push_back(fmt::format("no improvement in {} trials ({} so far)",
                                config_.no_improvement->trials, trials_without_improvement_));
  }
  if (config_.experiment_plateau) {
    parts.push_back(fmt::format("experiment plateau top {} {} std<={}",
                                config_.experiment_plateau->top,
                                config_.experiment_plateau->metric,
                                config_.experiment_plateau->std));
  }
  if (experiment_reason_) parts.push_back("stopped: " + *experiment_reason_);
  if (parts.empty()) return "";
  std::string line = "Stop: ";
  for (std::size_t i = 0; i < parts.size(); ++i) line += (i == 0 ? "" : " | ") + parts[i];
  return line;
}

std::optional<Json> Stoppers::SaveState() const {
  std::vector<std::pair<std::string, std::string>> stopped(stopped_.begin(), stopped_.end());
  std::sort(stopped.begin(), stopped.end());  // the same state, however the map is laid out
  Json state = {{"stopped", stopped},
                {"best_trial", best_trial_},
                {"trials_without_improvement", trials_without_improvement_}};
  state["best_value"] = best_value_ ? StateNumber(*best_value_) : Json();
  state["experiment_reason"] = experiment_reason_ ? Json(*experiment_reason_) : Json();
  if (plateau_) state["plateau"] = plateau_->SaveState();
  if (experiment_plateau_) state["experiment_plateau"] = experiment_plateau_->SaveState();
  return state;
}

void Stoppers::LoadState(const Json& state) {
  try {
    stopped_.clear();
    for (const Json& entry : state.at("stopped")) {
      stopped_.emplace(entry.at(0).get<std::string>(), entry.at(1).get<std::string>());
    }
    best_trial_ = state.at("best_trial").get<std::string>();
    trials_without_improvement_ = state.at("trials_without_improvement").get<std::int64_t>();
    const Json& best = state.at("best_value");
    best_value_ = best.is_null() ? std::nullopt : std::optional<double>(FromStateNumber(best));
    const Json& reason = state.at("experiment_reason");
    experiment_reason_ = reason.is_null() ? std::nullopt
                                          : std::optional<std::string>(reason.get<std::string>());
    // A state without a stopper's part (another config's) fails here, not later.
    if (plateau_) plateau_->LoadState(state.at("plateau"));
    if (experiment_plateau_) experiment_plateau_->LoadState(state.at("experiment_plateau"));
  } catch (const Json::exception& error) {
    throw std::runtime_error(std::string("snapshot: the stoppers' state: ") + error.what());
  }
}

}  // namespace tune
