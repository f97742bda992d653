// ParetoTracker (reporters/callback.h) and the front's files, pareto_front.json and
// best_trial.json (reporters/reporters.h, BestTrialReporter).
#include <algorithm>
#include <cmath>
#include <filesystem>

#include <fmt/format.h>

#include "reporters/reporters.h"

namespace tune {

void ParetoTracker::Update(std::size_t index, const Trial& trial) {
  if (index >= loss_of_.size()) loss_of_.resize(index + 1);
  std::vector<double> loss;
  if (trial.last_result) {
    loss = Losses(*trial.last_result, objectives_);
    const bool feasible =
        constraints_.empty() || Violation(ConstraintValues(*trial.last_result, constraints_)) == 0;
    if (!AllFinite(loss) || !feasible) loss.clear();
  }
  if (loss == loss_of_[index]) return;
  loss_of_[index] = std::move(loss);
  dirty_ = true;
}

void ParetoTracker::Refresh() const {
  if (!dirty_ && rank_of_.size() == loss_of_.size()) return;
  std::vector<std::vector<double>> ranked;
  std::vector<std::size_t> where;
  for (std::size_t i = 0; i < loss_of_.size(); ++i) {
    if (loss_of_[i].empty()) continue;
    ranked.push_back(loss_of_[i]);
    where.push_back(i);
  }
  const std::vector<int> ranks = NonDominatedRanks(ranked);
  rank_of_.assign(loss_of_.size(), -1);
  for (std::size_t k = 0; k < where.size(); ++k) rank_of_[where[k]] = ranks[k];
  dirty_ = false;
}

int ParetoTracker::Rank(std::size_t index) const {
  Refresh();
  return index < rank_of_.size() ? rank_of_[index] : -1;
}

std::vector<std::size_t> ParetoTracker::Front() const {
  Refresh();
  std::vector<std::size_t> front;
  for (std::size_t i = 0; i < rank_of_.size(); ++i) {
    if (rank_of_[i] == 0) front.push_back(i);
  }
  return front;
}

Json ParetoFrontJson(const ExperimentView& view, const std::filesystem::path& dir) {
  Json trials = Json::array();
  if (view.pareto != nullptr && view.trials != nullptr) {
    for (std::size_t index : view.pareto->Front()) {
      const Trial& trial = (*view.trials)[index];
      const Result& result = *trial.last_result;
      Json values = Json::array();
      for (const Objective& objective : view.objectives) {
        auto reported = result.metrics.find(objective.metric);
        values.push_back(reported != result.metrics.end() && reported->is_number()
                             ? *reported
                             : Json(result.Get(objective.metric)));
      }
      Json last_result = result.metrics.is_object() ? result.metrics : Json::object();
      last_result["training_iteration"] = result.training_iteration;
      last_result["time_total_s"] = result.time_total_s;
      std::error_code error;
      const std::filesystem::path trial_dir = DirOf(trial, dir);
      std::filesystem::path absolute = std::filesystem::absolute(trial_dir, error);
      trials.push_back({{"trial_id", trial.id},
                        {"values", values},
                        {"config", trial.config()},
                        {"last_result", last_result},
                        {"dir", (error ? trial_dir : absolute).string()}});
    }
  }
  return {{"metric", MetricsJson(view.objectives)},
          {"mode", ModesJson(view.objectives)},
          {"pareto_front", trials}};
}

}  // namespace tune
