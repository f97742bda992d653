// Stoppers end single trials or the whole experiment, like Ray Tune's `RunConfig(stop=...)`:
// thresholds on a result (Ray's dict stopper), a trial whose metric plateaued
// (TrialPlateauStopper), a time budget (TimeoutStopper), a cap on trials created, a goal value,
// no improvement over N trials, and a plateau of the best results (ExperimentPlateauStopper).
//
// Pure logic over what the tuner tells it: no clocks (time comes in as arguments), no processes,
// no files. Replaying the same calls in the same order gives the same state, which is how
// `tune resume` rebuilds it from the journal. Not thread-safe; the tuner calls it from its loop.
//
// The spec key "stop" (docs/spec.md, "Stopping"):
//   {"training_iteration": 50,                    // trial stops when result[key] >= 50
//    "val_loss": {"min": 0.05},                   // ... when result[key] <= 0.05
//    "plateau": {"metric": "val_loss", "std": 0.01, "num_results": 4, "grace_period": 4},
//    "time_budget_s": 3600, "max_total_trials": 100,
//    "goal": {"value": 0.95}, "no_improvement": {"trials": 20},
//    "experiment_plateau": {"std": 0.001, "top": 10, "patience": 0}}
//
// Example:
//   StopConfig config = ParseStopOptions(spec["stop"], "stop", "val_loss", Mode::kMin);
//   Stoppers stoppers(config);
//   if (auto why = stoppers.OnTrialResult("t_00003", result)) StopTrial("t_00003", *why);
//   stoppers.OnTrialComplete("t_00003", &last_result);
//   if (auto why = stoppers.ExperimentStop(clock.Elapsed())) StopEverything(*why);
//   if (stoppers.MayCreateTrial(num_created)) CreateTrial();
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/types.h"
#include "stoppers/experiment_plateau.h"
#include "stoppers/trial_plateau.h"

namespace tune {

// Ray's dict stopper entry: a trial stops when its result's `attr` reaches `value`, i.e.
// result[attr] >= value (kMax, Ray's only form) or <= value (kMin). A missing or non-numeric
// value never reaches it.
struct Threshold {
  std::string attr;  // "training_iteration", "time_total_s" or a metric
  double value = 0;
  Mode direction = Mode::kMax;
};

// The experiment ends once a result's metric is at least as good as `value` under `mode`.
struct GoalOptions {
  std::string metric;
  double value = 0;
  Mode mode = Mode::kMax;
};

// The experiment ends once `trials` trials in a row completed without beating the best value.
// A trial's value is its last result's metric (as the tuner picks the best trial); a trial
// without one (failed before reporting it) is not counted.
struct NoImprovementOptions {
  std::string metric;
  std::int64_t trials = 1;
  Mode mode = Mode::kMax;
};

// The parsed "stop" object; every part is optional and they combine with OR.
struct StopConfig {
  std::vector<Threshold> thresholds;  // in key order
  std::optional<TrialPlateauOptions> plateau;
  std::optional<double> time_budget_s;
  std::optional<std::int64_t> max_total_trials;
  std::optional<GoalOptions> goal;
  std::optional<NoImprovementOptions> no_improvement;
  std::optional<ExperimentPlateauOptions> experiment_plateau;

  bool empty() const;
};

// Parses and validates the "stop" object at `path` (null or absent: no stopping). `metric` and
// `mode` are the experiment's: the defaults of every metric/mode key below it. Throws SpecError
// naming the JSON path ("stop.plateau.std: must be > 0, got -1"). Top-level keys other than the
// stoppers' names are metric thresholds: a number, or {"max": v} (>= v) / {"min": v} (<= v).
StopConfig ParseStopOptions(const Json& json, const std::string& path, const std::string& metric,
                            Mode mode);

class Stoppers {
 public:
  explicit Stoppers(StopConfig config);

  // Called for every result, in the order the tuner received them. Returns why this trial must
  // stop, or nullopt: a threshold reached ("training_iteration >= 10"), a plateau ("plateau:
  // val_loss std 0.0004 < 0.01 over 4 results"), or the reason of an experiment stop caused by
  // results (goal, experiment plateau, no improvement), which then answers every later result.
  // Once a trial got a reason, its later results get the same one and change nothing (Ray's
  // controller ignores results after a STOP).
  std::optional<std::string> OnTrialResult(const std::string& trial_id, const Result& result);
  // The trial ended (any way); `last` is its last result or null. Counts it for no_improvement
  // and forgets its per-trial state.
  void OnTrialComplete(const std::string& trial_id, const Result* last);

  // Why the experiment must end now (every running trial stopped, no new trials), or nullopt.
  // `elapsed_s`: seconds since the experiment started. Once a result-driven stop fired it stays.
  std::optional<std::string> ExperimentStop(double elapsed_s) const;
  // False once `trials_created` reached max_total_trials or a result-driven experiment stop
  // fired (the time budget is ExperimentStop's; the tuner checks that first).
  bool MayCreateTrial(std::int64_t trials_created) const;

  // One line for the status table, "" without stoppers, e.g. "Stop: training_iteration>=10 |
  // time budget 3600 s (612 s left) | max 100 trials".
  std::string Describe(double elapsed_s) const;

  const StopConfig& config() const { return config_; }

  // Resume snapshots (tuner/snapshot.h): what the stoppers remember (trials told to stop and why,
  // no_improvement's count, a latched experiment stop, the plateau stopper's windows, the
  // experiment plateau's top values and count), such that LoadState() of it on fresh Stoppers of
  // the same config goes on exactly the same (never nullopt: every stopper keeps a state).
  // LoadState throws std::runtime_error on a state SaveState() does not write.
  std::optional<Json> SaveState() const;
  void LoadState(const Json& state);

 private:
  std::optional<std::string> CheckThresholds(const Result& result) const;
  // Feeds the result to the experiment-level stoppers; latches experiment_reason_.
  void ObserveForExperiment(const std::string& trial_id, const Result& result);

  StopConfig config_;
  std::optional<TrialPlateauStopper> plateau_;
  std::optional<ExperimentPlateauStopper> experiment_plateau_;
  std::unordered_map<std::string, std::string> stopped_;  // trial id -> its reason
  // no_improvement: the best value so far and completed trials since it was set.
  std::optional<double> best_value_;
  std::string best_trial_;
  std::int64_t trials_without_improvement_ = 0;
  // Set once goal, experiment_plateau or no_improvement ends the experiment.
  std::optional<std::string> experiment_reason_;
};

}  // namespace tune
