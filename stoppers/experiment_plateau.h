// Ray Tune's ExperimentPlateauStopper: the experiment ends once its best results stopped moving.
//
// The rule, on every result of every trial: the metric joins the `top` best values seen so far
// (mode min: the smallest, max: the largest). The experiment has plateaued when it holds `top`
// values whose numpy.std (population) is <= `std`; a counter counts consecutive results after
// which it has plateaued (any other result resets it to 0). The experiment stops once it has
// plateaued and the counter is >= `patience` (patience 0 and 1 both stop at the first plateau).
//
// Parameters (Ray's names and defaults): metric, std (0.001), top (10, >= 2), mode (Ray's
// default "min"; ours the experiment's), patience (0).
//
// Deliberate difference: a result without a numeric metric (missing or NaN) is skipped and
// changes nothing; Ray raises KeyError on a missing one and sorts a NaN in unpredictably.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/types.h"

namespace tune {

struct ExperimentPlateauOptions {
  std::string metric;  // required
  double std = 0.001;  // > 0
  std::int64_t top = 10;       // >= 2
  Mode mode = Mode::kMin;
  std::int64_t patience = 0;   // >= 0
};

class ExperimentPlateauStopper {
 public:
  explicit ExperimentPlateauStopper(ExperimentPlateauOptions options);

  // Ray's __call__: records the result; returns StopAll().
  bool OnResult(const Result& result);
  // Ray's stop_all.
  bool StopAll() const { return HasPlateaued() && iterations_ >= options_.patience; }
  // Ray's has_plateaued: `top` values held and their std <= std.
  bool HasPlateaued() const;
  // numpy.std of the values held (NaN while none).
  double TopStd() const;

  const std::vector<double>& top_values() const { return top_values_; }  // ascending
  std::int64_t iterations() const { return iterations_; }
  const ExperimentPlateauOptions& options() const { return options_; }

  // Resume snapshots (Stoppers::SaveState): {"top_values": [...], "iterations": n}. LoadState
  // throws std::runtime_error naming what does not read (a value out of order, too many values).
  Json SaveState() const;
  void LoadState(const Json& state);

 private:
  ExperimentPlateauOptions options_;
  std::vector<double> top_values_;
  std::int64_t iterations_ = 0;
};

}  // namespace tune
