// The table of optional reporters a spec can add by name under "callbacks", on top of the
// built-in ones the tuner always has (status table, result files, best trial):
//   "callbacks": ["trials_json", {"type": "trials_json", "interval_s": 10}]
// Adding one: a Callback class in reporters/ (reporters/callback.h) exporting its Entry, and one
// line in Callbacks() in reporters/registry.cc.
//
// Example:
//   std::vector<CallbackConfig> configs = ParseCallbackOptions(spec["callbacks"], "callbacks", {});
//   for (const auto& config : configs) tuner_options.callbacks.push_back(MakeCallback(config));
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/options.h"
#include "reporters/callback.h"

namespace tune {

// What every optional reporter is built with besides its options. (The experiment directory and
// everything else come through the ExperimentView of each call.)
struct CallbackContext {
  std::string time_attr = "training_iteration";  // the scheduler's: the x axis of curves
};

using CallbackRegistry = Registry<Callback, CallbackContext>;
using CallbackConfig = CallbackRegistry::Config;

const CallbackRegistry& Callbacks();

// The "callbacks" array (null: none). Each item is a name or an object with "type". The
// reporters on by default (DefaultCallbackNames) are added when the array does not name them;
// naming one with "enabled": false turns it off. Throws SpecError naming e.g.
// "callbacks[1].interval_s".
std::vector<CallbackConfig> ParseCallbackOptions(const Json& json, const std::string& path,
                                                 const CallbackContext& context);
std::shared_ptr<Callback> MakeCallback(const CallbackConfig& config);
// "tensorboard" (reporters/tensorboard.h), as Ray Tune writes TensorBoard files by default.
const std::vector<std::string>& DefaultCallbackNames();

// "trials_json": <experiment>/trials.json, one object per trial (trial_id, status, params,
// config, last_result, num_results, time_total_s, num_failures, error, last_checkpoint, dir),
// rewritten whole (through a temporary file) at most every interval_s (default 30) and at the end:
// what a notebook or script loads to look at an experiment, as Optuna's trials_dataframe.
class TrialsJsonReporter : public Callback {
 public:
  explicit TrialsJsonReporter(double interval_s) : interval_s_(interval_s) {}
  void OnTick(const ExperimentView& view) override;
  void OnExperimentEnd(const ExperimentView& view) override;

 private:
  void Write(const ExperimentView& view);
  double interval_s_;
  double last_write_s_ = -1e300;
};
CallbackRegistry::Entry TrialsJsonEntry();

}  // namespace tune
