// Plain data shared by every module: trial status, one reported result, the optimisation mode and
// the error type for bad experiment specs. core/ is the leaf of the dependency graph: search/,
// schedulers/, stoppers/ and reporters/ depend on it alone, tuner/ on all of them; it links only
// nlohmann_json.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace tune {

using Json = nlohmann::json;

// Whether the metric is minimised or maximised.
enum class Mode { kMin, kMax };
// Parses "min" / "max"; throws SpecError naming `path` otherwise.
Mode ParseMode(const Json& value, const std::string& path);
const char* ToString(Mode mode);
// True when `a` is strictly better than `b` under `mode`; NaN is never better.
bool IsBetter(double a, double b, Mode mode);

// Ray Tune's trial states. PENDING: created, waiting for resources. RUNNING: process alive.
// PAUSED: a scheduler paused it; it checkpointed and exited, and waits to be relaunched from that
// checkpoint. TERMINATED: finished on its own, at the end of the scheduler's budget, or ended by
// a stopper (what the user asked for). STOPPED: pruned by the scheduler (or Ctrl-C). ERROR:
// failed after its retries.
enum class TrialStatus { kPending, kRunning, kPaused, kTerminated, kStopped, kError };
const char* ToString(TrialStatus status);  // "PENDING", "RUNNING", ...
bool IsFinal(TrialStatus status);

// One report of a trial, as the tuner records it.
struct Result {
  std::int64_t training_iteration = 0;  // how many reports this trial has made, this one included
  double time_total_s = 0;              // seconds since the trial (first) started
  Json metrics = Json::object();        // what the trial sent; "iter" holds its own counter
  double timestamp = 0;                 // unix seconds when the tuner received it; 0 = unknown

  // The value of `attr`: "training_iteration", "time_total_s", or a metric by name. NaN when
  // the metric is missing or not a number.
  double Get(std::string_view attr) const;
};

// " (did you mean \"grace_period\"?)" when `key` is within edit distance 2 of one of `known`
// (the closest wins), else "". For error messages about misspelled keys.
std::string DidYouMean(std::string_view key, const std::vector<std::string>& known);

// A bad experiment spec (space.json, CLI override or scheduler/searcher option). `what()` is
// one line that starts with the JSON path, e.g. "space.lr: loguniform needs 0 < low < high, got
// [0, 1]".
class SpecError : public std::runtime_error {
 public:
  SpecError(const std::string& path, const std::string& reason)
      : std::runtime_error(path.empty() ? reason : path + ": " + reason) {}
};

}  // namespace tune
