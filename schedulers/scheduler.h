// Trial schedulers decide, on each result, whether a trial continues or stops early.
//
// Like searchers they are pure logic over what they are told: no clocks or processes. The tuner
// calls OnTrialAdd() when a trial is created, OnResult() for every report (and sends the returned
// Decision to the trial), and OnTrialComplete()/OnTrialError() when it ends.
//
// Example:
//   auto scheduler = tune::MakeScheduler(spec["scheduler"], "val_acc", tune::Mode::kMax);
//   if (scheduler->OnResult("t_00003", result) == tune::Decision::kStop) Stop("t_00003");
#pragma once

#include <memory>
#include <string>

#include "tuner/types.h"

namespace tune {

class Scheduler {
 public:
  virtual ~Scheduler() = default;

  virtual void OnTrialAdd(const std::string& trial_id) { (void)trial_id; }
  // Called for every result, in the order the tuner received them.
  virtual Decision OnResult(const std::string& trial_id, const Result& result) = 0;
  // The trial finished (or was stopped); `last` is its last result or null.
  virtual void OnTrialComplete(const std::string& trial_id, const Result* last) {
    (void)trial_id;
    (void)last;
  }
  virtual void OnTrialError(const std::string& trial_id) { (void)trial_id; }

  // True when `result` is at the end of the budget every trial gets (ASHA's max_t). A trial
  // stopped there has completed, not been pruned: the tuner marks it TERMINATED, not STOPPED.
  virtual bool BudgetExhausted(const Result& result) const {
    (void)result;
    return false;
  }

  // One or more lines for the status table, e.g. for ASHA
  // "AsyncHyperBand: num_stopped=3\nBracket: Iter 4.000: 0.71 | Iter 1.000: 0.52".
  virtual std::string Describe() const = 0;
};

// Builds the scheduler described by `spec` (the "scheduler" object of space.json; null or
// missing "type" means FIFO). `metric`/`mode` are the experiment's unless the spec overrides them.
// Throws SpecError naming `path` for unknown types or options and bad values.
std::unique_ptr<Scheduler> MakeScheduler(const Json& spec, const std::string& metric, Mode mode,
                                         const std::string& path = "scheduler");

}  // namespace tune
