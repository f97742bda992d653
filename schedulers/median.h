// The median stopping rule (Golovin et al. 2017, Google Vizier): stop a trial whose best result
// so far is worse than the median of the other trials' running averages up to the same point.
// It behaves like Ray Tune's MedianStoppingRule ("median", alias "median_stopping_rule"); it is
// also Optuna's default pruner's rule (MedianPruner).
//
// The rule, on a result at time t (its time_attr) >= grace_period: the other trials whose latest
// result is at t or later are the samples. With fewer than min_samples_required, the trial
// yields (PAUSE) when some trial waits (PENDING or PAUSED) and it has run min_time_slice since
// it last yielded, else it continues. Otherwise each sample's running average is the mean of its
// metric over its results with grace_period <= time <= t; when the trial's best metric so far
// (all its results) is not at least as good as their median, it stops (STOP, or PAUSE when
// hard_stop is false, after which it runs on FIFO and is never judged again).
//
// Parameters (Ray's names and defaults): time_attr ("time_total_s"), metric, mode,
// grace_period (60), min_samples_required (3, >= 1), min_time_slice (0), hard_stop (true).
//
// Like Ray, a trial's last result counts twice once it completes (Ray appends the result given
// to on_trial_complete to the trial's history), the results of a trial paused by hard_stop=false
// are no longer recorded, and a NaN average makes the median NaN, which stops the trial.
// tests/peers/median_diff.py checks every decision and chosen trial against Ray 2.58's rule.
// Deliberate differences, for inputs on which Ray raises (as schedulers/asha.h): a result lacking
// time_attr or the metric is skipped, also as a trial's last result (Ray stores that one and
// raises at the next comparison), as is one with a NaN time; a non-numeric metric reads as NaN
// (Ray reads a boolean as 0/1). A late result of a trial this rule stopped gets STOP again.
//
// Cost: a decision at time t ranks the running means of the trials that finished (their history
// is frozen) in an order-statistics tree kept for t, and computes only those of the trials still
// going, so it is O(running x history + log n) rather than O(n x history): the same median, to
// the bit (tests/schedulers/median_test.cc compares it with the plain computation). Trees are
// kept for the first kMaxIndexedTimes distinct times that are asked twice (training_iteration's
// are; a continuous time_total_s rarely repeats, and is computed over all trials as before).
//
// Example:
//   MedianOptions options;
//   options.metric = "loss";
//   options.mode = Mode::kMin;
//   options.time_attr = "training_iteration";
//   options.grace_period = 5;
//   MedianStoppingRule median(options);
//   median.SetControl(&tuner);                        // to see which trials wait
//   Decision d = median.OnResult("t_00003", result);  // kStop when worse than the median
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "schedulers/scheduler.h"

namespace tune {

struct MedianOptions {
  std::string time_attr = "time_total_s";
  std::string metric;  // required
  Mode mode = Mode::kMax;
  double grace_period = 60;
  std::int64_t min_samples_required = 3;
  double min_time_slice = 0;
  bool hard_stop = true;  // false: PAUSE instead of STOP
};

// Not thread-safe; the tuner calls it from its one loop thread.
class MedianStoppingRule : public Scheduler {
 public:
  // `options` must be valid (MakeScheduler checks specs): metric non-empty,
  // min_samples_required >= 1.
  explicit MedianStoppingRule(MedianOptions options);
  ~MedianStoppingRule() override;

  void OnTrialAdd(const std::string& trial_id) override;
  Decision OnResult(const std::string& trial_id, const Result& result) override;
  // Ray's on_trial_complete: `last` joins the trial's results (again). A trial that this rule
  // paused and that was not chosen to run since is being removed, not completed (Ray's
  // on_trial_remove): nothing is recorded.
  void OnTrialComplete(const std::string& trial_id, const Result* last) override;
  // Its results stay samples, frozen as they are (until it is added again).
  void OnTrialError(const std::string& trial_id) override;
  // FIFO, as Ray's: the first PENDING trial, else the first PAUSED one.
  std::optional<std::string> ChooseTrialToRun(const std::vector<const Trial*>& waiting) override;
  // Ray's: "Using MedianStoppingRule: num_stopped=N."
  std::string Describe() const override;

  // Resume snapshots: per trial (sorted by id) [id, serial, flags, last yield time, [time, value,
  // time, value, ...]] (flags: 1 live, 2 history may grow, 4 stopped, 8 paused; null where it has
  // none), and which times were asked how often and which have a ranked tree. The trees are not
  // saved: LoadState rebuilds them from the histories. It throws std::runtime_error naming where
  // (e.g. "snapshot: median.trials[3][4]: not an array") when `state` is not what SaveState()
  // writes.
  std::optional<Json> SaveState() const override;
  void LoadState(const Json& state) override;

  int num_stopped() const { return static_cast<int>(stopped_.size()); }
  const MedianOptions& options() const { return options_; }

 private:
  struct Sample {
    double time;
    double value;
  };

  // The mean metric of the trial's results with grace_period <= time <= `time` (NaN if none).
  double RunningMean(const std::string& trial_id, double time) const;
  // Ray's _on_insufficient_samples: PAUSE to let a waiting trial run, else CONTINUE.
  Decision OnInsufficientSamples(const std::string& trial_id, double time);
  bool SomeTrialWaits() const;

  class FrozenMeans;  // the running means at one time of the frozen trials, ranked

  // The median of the running means at `time` of the trials other than `trial_id` whose last
  // result is at `time` or later; nullopt when there are fewer than min_samples_required.
  std::optional<double> MedianOfOthers(const std::string& trial_id, double time);
  // A trial's history stops changing (it ended) or changes again (it was added back).
  void Freeze(const std::string& trial_id);
  void Unfreeze(const std::string& trial_id);
  // The trial's tie-break in the trees, given on first sight.
  std::uint64_t SerialOf(const std::string& trial_id);

  MedianOptions options_;
  std::set<std::string> live_;  // added and not ended: those SomeTrialWaits() asks control() about
  // Each trial's recorded results; the median does not depend on the trials' order.
  std::unordered_map<std::string, std::vector<Sample>> results_;
  std::set<std::string> unfrozen_;  // trials in results_ whose history may still grow
  std::unordered_map<std::string, std::uint64_t> serial_;  // a tie-break in the trees
  std::map<double, std::unique_ptr<FrozenMeans>> frozen_at_;  // by time asked
  std::map<double, int> times_asked_;  // how often each time was asked (bounded)
  std::unordered_map<std::string, double> last_pause_;  // time of the last yield
  std::unordered_set<std::string> stopped_;
  std::unordered_set<std::string> paused_;  // told PAUSE, not chosen since
};

// "median" (alias "median_stopping_rule"): Ray's MedianStoppingRule arguments.
SchedulerRegistry::Entry MedianEntry();

}  // namespace tune
