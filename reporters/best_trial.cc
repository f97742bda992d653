#include <cmath>
#include <cstdio>
#include <filesystem>

#include <fmt/format.h>

#include "reporters/reporters.h"

namespace tune {

namespace fs = std::filesystem;

namespace {

// best_trial.json (see BestTrialReporter).
void WriteBestTrial(const fs::path& dir, const Trial& best, const std::string& metric, Mode mode) {
  Json value = nullptr;
  Json last_result = nullptr;
  if (best.last_result) {
    const Result& result = *best.last_result;
    last_result = result.metrics.is_object() ? result.metrics : Json::object();
    last_result["training_iteration"] = result.training_iteration;
    last_result["time_total_s"] = result.time_total_s;
    // The reported value as reported (an integer stays one); Get() covers the added fields.
    auto reported = result.metrics.is_object() ? result.metrics.find(metric) : result.metrics.end();
    if (reported != result.metrics.end() && reported->is_number()) {
      value = *reported;
    } else if (double number = result.Get(metric); std::isfinite(number)) {
      value = number;
    }
  }
  std::error_code error;
  fs::path trial_dir = fs::absolute(DirOf(best, dir), error);
  if (error) trial_dir = DirOf(best, dir);
  Json json = {{"trial_id", best.id},      {"metric", metric},      {"mode", ToString(mode)},
               {"value", value},           {"config", best.config()}, {"last_result", last_result},
               {"dir", trial_dir.string()}};
  fs::create_directories(dir);
  WriteFileAtomically(dir / "best_trial.json",
                      json.dump(2, ' ', false, Json::error_handler_t::replace) + "\n");
}

}  // namespace

const Trial* BestTrial(const std::vector<Trial>& trials, const std::string& metric, Mode mode) {
  const Trial* best = nullptr;
  double best_value = 0;
  for (const Trial& trial : trials) {
    if (!trial.last_result) continue;
    double value = trial.last_result->Get(metric);
    if (std::isnan(value)) continue;
    // Strictly better only, so a tie keeps the earlier trial.
    if (best == nullptr || IsBetter(value, best_value, mode)) {
      best = &trial;
      best_value = value;
    }
  }
  return best;
}

bool BestTrialTracker::Order::operator()(const Key& a, const Key& b) const {
  if (a.value != b.value) return IsBetter(a.value, b.value, mode);
  return a.index < b.index;  // a tie goes to the earlier trial, as in BestTrial()
}

void BestTrialTracker::Update(std::size_t index, const Trial& trial) {
  if (index >= value_of_.size()) value_of_.resize(index + 1, std::nan(""));
  double value = trial.last_result ? trial.last_result->Get(metric_) : std::nan("");
  if (!constraints_.empty() && trial.last_result &&
      Violation(ConstraintValues(*trial.last_result, constraints_)) > 0) {
    value = std::nan("");  // infeasible: never the best
  }
  double& old = value_of_[index];
  if (old == value || (std::isnan(old) && std::isnan(value))) return;
  if (!std::isnan(old)) ranked_.erase(Key{old, index});
  old = value;
  if (!std::isnan(value)) ranked_.insert(Key{value, index});
}

const Trial* BestTrialTracker::Best(const std::vector<Trial>& trials) const {
  if (ranked_.empty()) return nullptr;
  const std::size_t index = ranked_.begin()->index;
  return index < trials.size() ? &trials[index] : nullptr;
}

void BestTrialReporter::OnExperimentEnd(const ExperimentView& view) {
  if (view.objectives.size() > 1) {
    WriteFront(view);
    return;
  }
  static const std::vector<Trial> kNoTrials;
  const Trial* best_trial =
      view.by_status ? view.best
                     : BestTrial(view.trials ? *view.trials : kNoTrials, view.metric, view.mode);
  if (best_trial != nullptr) {
    WriteBestTrial(dir_, *best_trial, view.metric, view.mode);
    std::fprintf(out_, "Best trial: %s\nBest trial config: %s\nBest trial final %s: %s\n",
                 best_trial->id.c_str(), best_trial->params.dump().c_str(), view.metric.c_str(),
                 fmt::format("{:.6g}", best_trial->last_result->Get(view.metric)).c_str());
    // Its test split's scores (tune-trainer's `test`: scored once, never used to choose).
    const Result result = best_trial->last_result.Decoded();
    std::string tested;
    for (const auto& [name, value] : result.metrics.items()) {
      if (name.rfind("test_", 0) == 0 && value.is_number() && name != view.metric) {
        tested += fmt::format("{}{} {:.6g}", tested.empty() ? "" : ", ", name, value.get<double>());
      }
    }
    if (!tested.empty()) std::fprintf(out_, "Best trial test: %s\n", tested.c_str());
  } else {
    std::fprintf(out_, "No trial reported a value for %s.\n", view.metric.c_str());
  }
  std::fprintf(out_, "Results: %s\n", dir_.string().c_str());
  std::fflush(out_);
}

void BestTrialReporter::WriteFront(const ExperimentView& view) {
  const Json front = ParetoFrontJson(view, dir_);
  const std::string text = front.dump(2, ' ', false, Json::error_handler_t::replace) + "\n";
  std::filesystem::create_directories(dir_);
  WriteFileAtomically(dir_ / "pareto_front.json", text);
  WriteFileAtomically(dir_ / "best_trial.json", text);
  const Json& trials = front["pareto_front"];
  if (trials.empty()) {
    std::fprintf(out_, "No (feasible) trial reported every objective of %s.\n",
                 MetricsJson(view.objectives).dump().c_str());
  } else {
    std::fprintf(out_, "Pareto front: %zu trial%s\n", trials.size(), trials.size() == 1 ? "" : "s");
    for (const Json& trial : trials) {
      std::string values;
      for (std::size_t k = 0; k < view.objectives.size(); ++k) {
        values += fmt::format("{}{}={:.6g}", k ? " " : "", view.objectives[k].metric,
                              trial["values"][k].is_number() ? trial["values"][k].get<double>()
                                                             : std::nan(""));
      }
      std::fprintf(out_, "  %s %s config %s\n", trial["trial_id"].get<std::string>().c_str(),
                   values.c_str(), trial["config"].dump().c_str());
    }
  }
  std::fprintf(out_, "Results: %s\n", dir_.string().c_str());
  std::fflush(out_);
}

}  // namespace tune
