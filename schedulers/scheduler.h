// Trial schedulers decide, on each result, whether a trial continues, pauses or stops (and, for
// PBT, restarts from a better trial's checkpoint with new params), and which waiting trial runs
// next when a slot frees. They behave like Ray Tune's TrialSchedulers.
//
// Like searchers they are pure logic over what they are told: no clocks, processes or files. The
// tuner calls OnTrialAdd() when a trial is created, OnResult() for every report (and carries out
// the returned Decision), OnTrialComplete()/OnTrialError() when it ends, and
// ChooseTrialToRun() whenever it could launch a trial. Through the TrialControl it is given, a
// scheduler may also look at any trial and stop or exploit trials other than the reporting one
// (HyperBand stops a paused bracket's losers; PBT reads configs and checkpoints, and in synch
// mode exploits paused trials). A paused trial runs again only when ChooseTrialToRun picks it.
//
// Adding a scheduler: one file (class + its Parse/Make functions) and one line in the table in
// schedulers/scheduler.cc.
//
// Example:
//   SchedulerConfig config = ParseSchedulerOptions(spec["scheduler"], "scheduler",
//                                                  {"val_acc", Mode::kMax});   // throws SpecError
//   std::unique_ptr<Scheduler> scheduler = MakeScheduler(config);
//   scheduler->SetControl(&tuner);
//   Decision d = scheduler->OnResult("t_00003", result);   // kContinue / kPause / kStop
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/decision.h"
#include "core/options.h"
#include "core/trial.h"
#include "core/types.h"

namespace tune {

// What a scheduler may see of the experiment and do to trials other than the one reporting (Ray's
// TuneController as a TrialScheduler sees it). Implemented by the tuner (and by fakes in tests).
class TrialControl {
 public:
  virtual ~TrialControl() = default;
  // The trial, or nullptr for an unknown id.
  virtual const Trial* FindTrial(const std::string& trial_id) const = 0;
  // A PAUSED or PENDING trial ends at once, STOPPED (pruned), or TERMINATED when `completed`
  // (it reached the end of its budget, as HyperBand's trials at max_t); a RUNNING one is told to
  // stop.
  virtual void StopTrial(const std::string& trial_id, bool completed = false) = 0;
  // PBT on a PAUSED trial (its synchronous mode): from now on it has `params` and a copy of
  // `source_trial_id`'s latest checkpoint, and runs from them when chosen. (A RUNNING trial is
  // exploited by returning Decision::Exploit from OnResult instead.)
  virtual void ExploitTrial(const std::string& trial_id, const std::string& source_trial_id,
                            const Json& params) = 0;
};

class Scheduler {
 public:
  virtual ~Scheduler() = default;

  // The tuner sets this before the first call; it outlives the scheduler.
  void SetControl(TrialControl* control) { control_ = control; }

  virtual void OnTrialAdd(const std::string& trial_id) { (void)trial_id; }
  // Called for every result, in the order the tuner received them.
  virtual Decision OnResult(const std::string& trial_id, const Result& result) = 0;
  // The trial finished (or was stopped); `last` is its last result or null.
  virtual void OnTrialComplete(const std::string& trial_id, const Result* last) {
    (void)trial_id;
    (void)last;
  }
  virtual void OnTrialError(const std::string& trial_id) { (void)trial_id; }

  // Ray's choose_trial_to_run: which of `waiting` (every PENDING and PAUSED trial, in creation
  // order) to launch now, or nullopt for none. The default takes the first PENDING trial, else
  // the first PAUSED one, as Ray's FIFOScheduler. When it returns nullopt while some waiting
  // trial is PENDING, the tuner creates no new trial either.
  virtual std::optional<std::string> ChooseTrialToRun(const std::vector<const Trial*>& waiting);

  // True when `result` is at the end of the budget every trial gets (ASHA's max_t). A trial
  // stopped there has completed, not been pruned: the tuner marks it TERMINATED, not STOPPED.
  virtual bool BudgetExhausted(const Result& result) const {
    (void)result;
    return false;
  }

  // One or more lines for the status table, e.g. for ASHA
  // "AsyncHyperBand: num_stopped=3\nBracket: Iter 4.000: 0.71 | Iter 1.000: 0.52".
  virtual std::string Describe() const = 0;

  // The time_attr values at which it judges trials, ascending (ASHA's rungs, HyperBand's
  // brackets' milestones), for views that draw them; empty when it has none.
  virtual std::vector<double> Milestones() const { return {}; }

  // Resume snapshots (tuner/snapshot.h): the scheduler's whole state, such that LoadState() of it
  // on a fresh scheduler made from the same spec (before any other call) goes on exactly as this
  // one would: the same decisions, choices and Describe() for the same calls. nullopt: it keeps
  // no snapshot, and `tune resume` replays the whole journal (the default).
  virtual std::optional<Json> SaveState() const { return std::nullopt; }
  // Throws std::runtime_error when `state` is not what SaveState() writes.
  virtual void LoadState(const Json& state);

 protected:
  TrialControl* control() const { return control_; }

 private:
  TrialControl* control_ = nullptr;
};

// What every scheduler is built with besides its own options: the experiment's metric and mode
// (its options may override them).
struct SchedulerContext {
  std::string metric;
  Mode mode = Mode::kMax;
};

using SchedulerRegistry = Registry<Scheduler, SchedulerContext>;
using SchedulerConfig = SchedulerRegistry::Config;

// The table of schedulers: fifo, asha, ... (schedulers/scheduler.cc).
const SchedulerRegistry& Schedulers();

// Parses the "scheduler" object of space.json (null or missing "type" means FIFO; a bare name
// means that scheduler's defaults) into typed, validated options. Throws SpecError naming `path`
// (or path.key) for unknown types, unknown options (with a did-you-mean) and bad values.
SchedulerConfig ParseSchedulerOptions(const Json& json, const std::string& path,
                                      const SchedulerContext& context);
std::unique_ptr<Scheduler> MakeScheduler(const SchedulerConfig& config);
// Both at once (tests, tools).
std::unique_ptr<Scheduler> MakeScheduler(const Json& spec, const std::string& metric, Mode mode,
                                         const std::string& path = "scheduler");

}  // namespace tune
