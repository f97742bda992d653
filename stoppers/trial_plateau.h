// Ray Tune's TrialPlateauStopper: a trial stops once its metric has flattened out.
//
// The rule, per trial, on every result: the metric joins a window of its last `num_results`
// values and the trial's result count goes up. The trial stops when it has at least
// `grace_period` results, the window is full, (with metric_threshold) this result's metric is
// better than or equal to the threshold under `mode` (max: >= threshold, min: <= threshold), and
// numpy.std of the window (population) is strictly below `std`.
//
// Parameters (Ray's names and defaults): metric, std (0.01), num_results (4), grace_period (4),
// metric_threshold (none), mode (the experiment's; Ray's only matters with a threshold).
//
// Deliberate difference: a missing or non-numeric metric reads as NaN and a window holding NaN
// never plateaus; Ray gets the same verdict from None (its std raises, read as infinity) except
// with a metric_threshold, where Ray raises TypeError.
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <unordered_map>

#include "core/types.h"

namespace tune {

struct TrialPlateauOptions {
  std::string metric;  // required
  double std = 0.01;   // > 0
  std::int64_t num_results = 4;   // >= 1
  std::int64_t grace_period = 4;  // >= 0
  std::optional<double> metric_threshold;
  Mode mode = Mode::kMax;
};

class TrialPlateauStopper {
 public:
  explicit TrialPlateauStopper(TrialPlateauOptions options);

  // Ray's __call__: records the result; returns the window's std when the trial plateaued.
  std::optional<double> OnResult(const std::string& trial_id, const Result& result);
  // The trial ended: drops its window.
  void Forget(const std::string& trial_id) { history_.erase(trial_id); }

  const TrialPlateauOptions& options() const { return options_; }

  // Resume snapshots (Stoppers::SaveState): every trial's window, [[id, results, [values]], ...]
  // by id (values through core/state.h's StateNumber: NaN stays NaN). LoadState replaces the
  // windows with a SaveState()'s; it throws std::runtime_error naming what does not read.
  Json SaveState() const;
  void LoadState(const Json& state);

 private:
  struct History {
    std::int64_t results = 0;
    std::deque<double> window;  // the last num_results values, oldest first
  };

  TrialPlateauOptions options_;
  std::unordered_map<std::string, History> history_;
};

}  // namespace tune
