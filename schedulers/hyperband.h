// HyperBand (Li et al. 2016, arXiv:1603.06560), synchronous: successive halving in brackets that
// wait for every member at each milestone. It behaves like Ray Tune's HyperBandScheduler
// ("hyperband").
//
// The rule: trials fill brackets in the order they are added. A band holds up to s_max + 1
// brackets, s = 0, 1, ... (s_max + 1 = round(log(max_t) / log(eta)) + 1); bracket s takes
// n0 = ceil((s_max + 1) / (s + 1) * eta^s) trials and its first milestone is r0 = int(max_t *
// eta^-s) (a bracket whose r0 is 0 is skipped). A trial that reaches its bracket's milestone gets
// PAUSE until the rung is complete (every live trial of the bracket is at the milestone). Then the
// top 1/eta continue to milestone min(r * eta, max_t): paused winners wait to be chosen again by
// ChooseTrialToRun, paused losers are stopped through control()->StopTrial, and the reporting trial
// gets CONTINUE or STOP. When the last rung completes (and stop_last_trials), every trial of the
// bracket stops. ChooseTrialToRun runs brackets by least completion first (Ray's
// choose_trial_to_run): a PENDING trial, or a PAUSED one its bracket promoted.
//
// Parameters (Ray's names and defaults): time_attr ("training_iteration"), metric, mode,
// max_t (81, at least 1), reduction_factor (3, eta, > 1), stop_last_trials (true).
//
// tests/peers/hyperband_diff.py checks every decision, stopped trial and chosen trial against
// Ray 2.58's scheduler driven as its TuneController drives it. Deliberate differences, for inputs
// on which Ray raises, hangs or sorts NaN by accident (as schedulers/asha.h does): a result
// lacking time_attr or the metric, or with a NaN or negative time, is ignored (CONTINUE, not
// recorded); a non-numeric metric reads as NaN, and NaN ranks below every number at a halving; a
// result of a trial no longer in its bracket gets STOP; a trial never added joins a bracket on its
// first result. A failed trial that the tuner retries keeps its place (Ray removes it and adds it
// again to the newest bracket; the tuner makes no scheduler call for a retry).
//
// Example:
//   HyperBandOptions options;
//   options.metric = "val_acc";
//   options.max_t = 27;                       // brackets s = 0..3: milestones 27, 9, 3, 1
//   HyperBandScheduler hyperband(options);
//   hyperband.SetControl(&tuner);
//   hyperband.OnTrialAdd("t_00000");
//   Decision d = hyperband.OnResult("t_00000", result);   // kPause at a milestone
//   std::optional<std::string> next = hyperband.ChooseTrialToRun(waiting);
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "schedulers/scheduler.h"
#include "schedulers/util.h"

namespace tune {

struct HyperBandOptions {
  std::string time_attr = "training_iteration";
  std::string metric;  // required
  Mode mode = Mode::kMax;
  double max_t = 81;
  double reduction_factor = 3;
  // Stop the trials of a bracket when its last rung completes. When false they run on.
  bool stop_last_trials = true;
};

// Not thread-safe; the tuner calls it from its one loop thread. Trial statuses come from
// control() (FindTrial) and from the `waiting` list of ChooseTrialToRun; a trial this scheduler
// told to PAUSE counts as paused until it is chosen again, also while the tuner still shows it
// RUNNING (Ray's "is_saving").
class HyperBandScheduler : public Scheduler {
 public:
  // `options` must be valid (MakeScheduler checks specs): metric non-empty, 1 <= max_t <= 1e9,
  // reduction_factor > 1.
  explicit HyperBandScheduler(HyperBandOptions options);
  ~HyperBandScheduler() override;

  // Puts the trial in the newest bracket, or opens the next one (and band) when it is full.
  void OnTrialAdd(const std::string& trial_id) override;
  // CONTINUE below the bracket's milestone; at it PAUSE, or, when this result completes the
  // rung, CONTINUE / STOP as the halving decides (and other trials are stopped or promoted).
  Decision OnResult(const std::string& trial_id, const Result& result) override;
  // Ray's on_trial_remove: the trial leaves its bracket, which is processed if that completes a
  // rung (only before the bracket's first halving, as in Ray). Ignored for a trial this
  // scheduler stopped through control()->StopTrial (it left its bracket then), whether the tuner
  // calls it from inside StopTrial or later.
  void OnTrialComplete(const std::string& trial_id, const Result* last) override;
  void OnTrialError(const std::string& trial_id) override;
  std::optional<std::string> ChooseTrialToRun(const std::vector<const Trial*>& waiting) override;
  // Whether the kStop that OnResult just returned ended a finished bracket (the trial reached its
  // bracket's last milestone) rather than losing a halving.
  bool BudgetExhausted(const Result& result) const override;
  // Ray's debug_string: "Using HyperBand: num_stopped=N total_brackets=B", then per band
  // "Round #i:" and per bracket "  Bracket(Max Size (n)=9, Milestone (r)=3, completed=12.3%):
  // {PAUSED: 2, RUNNING: 1} " (statuses as control() reports them). The rounds at the start that
  // are done (no live trial, every trial in a final status) are rendered once and kept: a call
  // walks only the trials of the rounds after them, however many have finished.
  std::string Describe() const override;
  // Each bracket's milestones: r0 = int(max_t * eta^-s), then int(min(r * eta, max_t)) at each
  // of its s halvings (brackets with r0 = 0 are skipped, as they are when trials are added).
  std::vector<double> Milestones() const override;

  // Resume snapshots: every band's brackets as they are (null for a skipped one; n, r, halvings
  // left, total work, progress, whether processed, live members [id, has result, time, value],
  // every trial added, the promoted trials to unpause), the newest bracket's place, the trials
  // told PAUSE and the stopped ones (TrialIdSet), num_stopped and the last stop's budget flag.
  // Which trial is in which bracket is rebuilt from the brackets' trials, Describe's kept text
  // from the bands. LoadState throws std::runtime_error naming where (e.g. "snapshot:
  // hyperband.bands[0][1].live[2]: not [id, has result, time, value]") when `state` is not what
  // SaveState() writes for these options.
  std::optional<Json> SaveState() const override;
  void LoadState(const Json& state) override;

  int num_stopped() const { return num_stopped_; }
  const HyperBandOptions& options() const { return options_; }

 private:
  struct Member {
    std::string trial_id;
    bool has_result = false;  // Ray's None: counts as time 0
    double time = 0;
    double value = 0;  // the metric as reported
  };
  struct Bracket;
  using BracketPtr = std::unique_ptr<Bracket>;

  Bracket* MakeBracket(int s) const;
  // Ray's _process_bracket; `current` is the reporting trial ("" when a trial left).
  Decision ProcessBracket(Bracket& bracket, const std::string& current);
  // Ray's on_trial_remove.
  void RemoveTrial(const std::string& trial_id);
  // tune_controller.stop_trial on a paused trial: it leaves the bracket, the tuner stops it.
  void StopOther(Bracket& bracket, const std::string& trial_id, bool completed = false);
  bool IsPaused(const std::string& trial_id) const;

  HyperBandOptions options_;
  double metric_sign_;  // Ray's metric_op
  int s_max_1_;         // brackets per band
  std::vector<std::vector<BracketPtr>> bands_;  // null: a bracket skipped as too small
  std::size_t first_live_band_ = 0;  // bands before it have no live trial, and never will again
  // Describe's rounds at the start that are done, and their text.
  mutable std::size_t done_bands_ = 0;
  mutable std::string done_text_;
  Bracket* current_bracket_ = nullptr;
  std::unordered_map<std::string, Bracket*> bracket_of_;
  std::unordered_set<std::string> pause_requested_;  // told PAUSE, not chosen since
  TrialIdSet stopped_;             // told STOP or stopped through control()
  TrialIdSet stopped_by_control_;
  int num_stopped_ = 0;
  bool last_stop_at_budget_ = false;
};

// "hyperband": Ray's HyperBandScheduler arguments.
SchedulerRegistry::Entry HyperBandEntry();

}  // namespace tune
