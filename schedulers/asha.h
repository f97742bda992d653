// ASHA (Asynchronous Successive Halving, Li et al. 2018, arXiv:1810.05934) stops trials that
// are worse than most of their peers at the same point of training, without waiting for a
// synchronous round. It behaves like Ray Tune's AsyncHyperBandScheduler ("asha").
//
// The rule: a bracket has rungs at milestones grace_period * reduction_factor^k (k = 0, 1, ...
// while the milestone stays within max_t). When a trial's `time_attr` first reaches a milestone,
// its metric is compared with the rung's cutoff, the (1 - 1/reduction_factor) quantile of the
// values earlier trials recorded there (rf = 4: the 75th percentile, i.e. keep the top quarter).
// Worse than the cutoff: STOP; otherwise CONTINUE. Either way its value joins the rung. The first
// trial at a rung always continues, as there is nothing to compare with yet. A decision costs
// O(log n) in the n values at the rung (schedulers/streaming_percentile.h), not a sort.
//
// promotion = kOptuna swaps the comparison for Optuna's SuccessiveHalvingPruner's, on the same
// rungs: a trial reaching a rung goes on when its value is among the best max(1, floor(n / rf))
// of the n values recorded there, its own included (ties go on), so the first trial goes on and
// the 2nd to the (rf+1)-th ... only as the best so far; a NaN stops (Ray's rule lets it go on).
// Ray's rule compares with the values recorded before the trial only, which at one trial at a
// time lets half of them or more through each rung when later trials are better than earlier
// ones (a searcher's); Optuna's keeps about 1/rf (bench/README.md, "Race").
//
// Parameters (Ray's names and defaults): time_attr ("training_iteration"), metric, mode,
// max_t (100: every trial stops there if stop_last_trials), grace_period (1: no trial stops
// before it), reduction_factor (4), brackets (1; bracket s starts at grace_period * rf^s, and a
// trial joins a bracket drawn at random, weighted by a softmax over their rung counts), seed (0).
//
// tests/peers/asha_diff.py checks every decision against Ray 2.58's scheduler, driven as its
// TuneController drives it. Deliberate differences: a NaN time_attr is ignored like a missing
// one (Ray treats it as past every milestone and judges it at the highest rung), and a
// non-numeric metric reads as NaN (Ray reads a boolean as 0/1 and raises on strings and None).
//
// Example:
//   AshaOptions options;
//   options.metric = "val_acc";
//   options.max_t = 27;
//   options.reduction_factor = 3;  // milestones 1, 3, 9, 27
//   AshaScheduler asha(options);
//   asha.OnTrialAdd("t_00000");
//   Decision d = asha.OnResult("t_00000", result);  // kStop when in the bottom 2/3 at a rung
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "schedulers/scheduler.h"
#include "schedulers/streaming_percentile.h"
#include "schedulers/util.h"

namespace tune {

struct AshaOptions {
  // kRay: Ray's AsyncHyperBandScheduler (go on unless worse than the (1 - 1/rf) quantile of the
  // values recorded before); kOptuna: Optuna's SuccessiveHalvingPruner (go on when among the best
  // max(1, floor(n / rf)) of the n values, its own included). The top of this file says more.
  enum class Promotion { kRay, kOptuna };
  Promotion promotion = Promotion::kRay;
  std::string time_attr = "training_iteration";
  std::string metric;  // required
  Mode mode = Mode::kMax;
  double max_t = 100;
  double grace_period = 1;
  double reduction_factor = 4;
  int brackets = 1;
  // Stop every trial whose time_attr reaches max_t. When false, max_t only bounds the rungs.
  bool stop_last_trials = true;
  // Seeds the draw that assigns trials to brackets, so a run (and its resume) is reproducible.
  std::uint64_t seed = 0;
};

// Not thread-safe; the tuner calls it from its one loop thread.
class AshaScheduler : public Scheduler {
 public:
  // One bracket's rungs, highest milestone first: (milestone, cutoff in metric units). The cutoff
  // is nullopt while nothing is recorded at the rung, and NaN while only NaN values are or when
  // the interpolation touches an infinity (as numpy's).
  using RungCutoffs = std::vector<std::pair<double, std::optional<double>>>;

  // `options` must be valid (MakeScheduler checks specs): metric non-empty, max_t > 0,
  // 0 < grace_period <= max_t, reduction_factor > 1, brackets >= 1.
  explicit AshaScheduler(AshaOptions options);

  void OnTrialAdd(const std::string& trial_id) override;
  // Test seam (tests/peers/asha_diff.py forces Ray's bracket draw the same way): puts the trial
  // in bracket `bracket` (0-based, < options.brackets) instead of drawing one; draws nothing.
  void OnTrialAdd(const std::string& trial_id, int bracket);
  // CONTINUE when the result lacks time_attr or the metric. A trial this scheduler stopped
  // stays stopped: a later result from it gets kStop again (and is not counted twice).
  Decision OnResult(const std::string& trial_id, const Result& result) override;
  // Like Ray's on_trial_complete: the last result is offered to the bracket (so a trial that
  // ended on its own still counts at the rungs it reached), then the trial is forgotten. Also
  // after a kStop, with the stopped result, as Ray's controller does: a result cut at max_t
  // joins the highest rung it passed, one judged at a rung may join a lower rung it skipped.
  void OnTrialComplete(const std::string& trial_id, const Result* last) override;
  // Like Ray's on_trial_remove: forgets the trial; what it recorded at rungs stays.
  void OnTrialError(const std::string& trial_id) override;
  // time_attr >= max_t (when stop_last_trials).
  bool BudgetExhausted(const Result& result) const override;
  // "Using AsyncHyperBand: num_stopped=N" then one "Bracket: Iter 9.000: 0.81 | ..." line per
  // bracket, as Ray's debug_string, except that cutoffs are in metric units also for mode min.
  std::string Describe() const override;
  // Every bracket's rung milestones.
  std::vector<double> Milestones() const override;

  // Resume snapshots: the bracket draw's random engine, the stopped trials, the live trials'
  // brackets, and per rung the trials recorded there and its values as the order-statistics
  // heaps hold them (compact: a bit per recorded "t_NNNNN" trial, a number per value). LoadState
  // throws std::runtime_error naming where (e.g. "snapshot: asha.brackets[0][1].values.lower: not
  // an array") when `state` is not what SaveState() writes for these options.
  std::optional<Json> SaveState() const override;
  void LoadState(const Json& state) override;

  // For tests and reports: each bracket's rungs and current cutoffs.
  std::vector<RungCutoffs> Rungs() const;
  // The bracket `trial_id` was assigned to, or nullopt for a trial not (or no longer) known.
  std::optional<int> BracketOf(const std::string& trial_id) const;
  int num_stopped() const { return static_cast<int>(stopped_.size()); }
  const AshaOptions& options() const { return options_; }

 private:
  // The k-th largest of a growing multiset, k = max(1, floor((n + 1) / rf)) for its n values:
  // the bar a next value must reach to be among the best max(1, floor(m / rf)) of the m = n + 1
  // values it makes (Optuna's rule). Two heaps split at the k-th largest; k grows by at most one
  // per Add, so each Add moves O(1) values: O(log n).
  class TopShare {
   public:
    explicit TopShare(double reduction_factor) : rf_(reduction_factor) {}
    void Add(double value);
    // nullopt while empty.
    std::optional<double> Bar() const;
    // {"top": [...], "rest": [...]}, the heaps as they are; LoadState checks they are such a
    // split (throws std::runtime_error naming `path`).
    Json SaveState() const;
    void LoadState(const Json& state, const std::string& path);

   private:
    std::size_t Wanted() const;  // k for the current size
    double rf_;
    std::vector<double> top_;   // min-heap: the k largest
    std::vector<double> rest_;  // max-heap: the others
  };
  struct Rung {
    Rung(double milestone, double q, double rf) : milestone(milestone), values(q), top(rf) {}
    double milestone;
    TrialIdSet recorded;  // trials with a value at this rung
    // Their sign-adjusted values (larger is better), NaN included, at Ray's quantile.
    StreamingNanPercentile values;
    // promotion kOptuna: the same values, NaN excluded (a NaN stops and is not recorded).
    TopShare top;
  };
  struct Bracket {
    std::vector<Rung> rungs;  // highest milestone first, as Ray walks them
  };

  // Picks the trial's bracket on first sight (results of a trial never added are accepted).
  Bracket& BracketFor(const std::string& trial_id);
  // Ray's _Bracket.on_result; `value` is sign-adjusted.
  Decision JudgeAtRung(Bracket& bracket, const std::string& trial_id, double time, double value);
  // The rung's cutoff on sign-adjusted values (numpy.nanpercentile, linear, or Optuna's bar:
  // TopShare); nullopt if empty. O(1): kept current as values are recorded.
  std::optional<double> Cutoff(const Rung& rung) const;
  // Reads time_attr and the sign-adjusted metric; nullopt when either is missing.
  std::optional<std::pair<double, double>> ReadResult(const Result& result) const;

  AshaOptions options_;
  double metric_sign_;  // +1 for max, -1 for min: Ray's metric_op
  std::vector<Bracket> brackets_;
  std::vector<double> bracket_cdf_;  // cumulative softmax over rung counts
  std::mt19937_64 rng_;
  std::unordered_map<std::string, int> trial_bracket_;
  TrialIdSet stopped_;  // every trial this scheduler stopped (num_stopped)
};

// "asha" (alias "async_hyperband"): Ray's ASHAScheduler arguments, plus "seed".
SchedulerRegistry::Entry AshaEntry();


}  // namespace tune
