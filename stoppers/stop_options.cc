// ParseStopOptions: the "stop" object of a spec, validated completely before anything runs.
#include <string>
#include <vector>

#include "core/options.h"
#include "stoppers/stopper.h"

namespace tune {
namespace {

const std::vector<std::string> kStopperNames = {
    "plateau", "time_budget_s", "max_total_trials", "goal", "no_improvement", "experiment_plateau"};

// The metric of a nested stopper: its own "metric" key, else the experiment's.
std::string MetricOf(const OptionsReader& in, const std::string& metric) {
  std::string value = in.String("metric", metric);
  if (value.empty()) {
    throw SpecError(in.PathOf("metric"), "required (the experiment has no metric)");
  }
  return value;
}

TrialPlateauOptions ParsePlateau(const Json& json, const std::string& path,
                                 const std::string& metric, Mode mode) {
  OptionsReader in(json, path,
                   {"metric", "std", "num_results", "grace_period", "metric_threshold", "mode"});
  TrialPlateauOptions options;
  options.metric = MetricOf(in, metric);
  options.std = in.Number("std", options.std, Range::Above(0));
  options.num_results = in.Integer("num_results", options.num_results, Range::AtLeast(1));
  options.grace_period = in.Integer("grace_period", options.grace_period, Range::AtLeast(0));
  options.metric_threshold = in.OptionalNumber("metric_threshold");
  options.mode = in.ModeOf("mode", mode);
  return options;
}

GoalOptions ParseGoal(const Json& json, const std::string& path, const std::string& metric,
                      Mode mode) {
  OptionsReader in(json, path, {"metric", "value", "mode"});
  GoalOptions options;
  options.metric = MetricOf(in, metric);
  if (!in.Has("value")) throw SpecError(in.PathOf("value"), "required (the value to reach)");
  options.value = in.Number("value", 0);
  options.mode = in.ModeOf("mode", mode);
  return options;
}

NoImprovementOptions ParseNoImprovement(const Json& json, const std::string& path,
                                        const std::string& metric, Mode mode) {
  OptionsReader in(json, path, {"trials", "metric", "mode"});
  NoImprovementOptions options;
  options.metric = MetricOf(in, metric);
  if (!in.Has("trials")) throw SpecError(in.PathOf("trials"), "required (an integer >= 1)");
  options.trials = in.Integer("trials", 1, Range::AtLeast(1));
  options.mode = in.ModeOf("mode", mode);
  return options;
}

ExperimentPlateauOptions ParseExperimentPlateau(const Json& json, const std::string& path,
                                                const std::string& metric, Mode mode) {
  OptionsReader in(json, path, {"metric", "std", "top", "mode", "patience"});
  ExperimentPlateauOptions options;
  options.metric = MetricOf(in, metric);
  options.std = in.Number("std", options.std, Range::Above(0));
  options.top = in.Integer("top", options.top, Range::AtLeast(2));
  options.mode = in.ModeOf("mode", mode);
  options.patience = in.Integer("patience", options.patience, Range::AtLeast(0));
  return options;
}

// A free-form key: Ray's dict stopper (a number: >= it), or {"max": v} (>=) / {"min": v} (<=).
Threshold ParseThreshold(const std::string& key, const Json& value, const std::string& path) {
  if (value.is_number()) return Threshold{key, ReadNumber(value, path), Mode::kMax};
  if (!value.is_object()) {
    throw SpecError(path, "expected a number (stop when " + key +
                              " >= it), {\"max\": v} or {\"min\": v}, got " + value.dump());
  }
  // An object with other keys is more likely a misspelled stopper than a threshold.
  for (const auto& item : value.items()) {
    if (item.key() == "max" || item.key() == "min") continue;
    const std::string hint = DidYouMean(key, kStopperNames);
    if (!hint.empty()) throw SpecError(path, "unknown stopper" + hint);
  }
  OptionsReader in(value, path, {"max", "min"});
  if (in.Has("max") == in.Has("min")) {
    throw SpecError(path, "needs exactly one of \"max\" (stop when " + key +
                              " >= v) or \"min\" (stop when " + key + " <= v), got " +
                              value.dump());
  }
  const std::string bound = in.Has("max") ? "max" : "min";
  return Threshold{key, ReadNumber(*in.Find(bound), in.PathOf(bound)),
                   bound == "max" ? Mode::kMax : Mode::kMin};
}

}  // namespace

bool StopConfig::empty() const {
  return thresholds.empty() && !plateau && !time_budget_s && !max_total_trials && !goal &&
         !no_improvement && !experiment_plateau;
}

StopConfig ParseStopOptions(const Json& json, const std::string& path, const std::string& metric,
                            Mode mode) {
  StopConfig config;
  if (json.is_null()) return config;
  if (!json.is_object()) throw SpecError(path, "expected an object, got " + json.dump());
  for (const auto& item : json.items()) {
    const std::string& key = item.key();
    const Json& value = item.value();
    const std::string key_path = path + "." + key;
    // null turns a stopper off (a CLI override "stop.plateau=null").
    if (value.is_null()) continue;
    if (key == "plateau") {
      config.plateau = ParsePlateau(value, key_path, metric, mode);
    } else if (key == "time_budget_s") {
      config.time_budget_s = ReadNumber(value, key_path, Range::Above(0));
    } else if (key == "max_total_trials") {
      config.max_total_trials = ReadInteger(value, key_path, Range::AtLeast(1));
    } else if (key == "goal") {
      config.goal = ParseGoal(value, key_path, metric, mode);
    } else if (key == "no_improvement") {
      config.no_improvement = ParseNoImprovement(value, key_path, metric, mode);
    } else if (key == "experiment_plateau") {
      config.experiment_plateau = ParseExperimentPlateau(value, key_path, metric, mode);
    } else {
      config.thresholds.push_back(ParseThreshold(key, value, key_path));
    }
  }
  return config;
}

}  // namespace tune
