// Population Based Training (Jaderberg et al. 2017, arXiv:1711.09846): trials train side by
// side; now and then a poor one drops its own state, clones a good one's checkpoint and params,
// perturbs the params a little (explore) and trains on. It behaves like Ray Tune's
// PopulationBasedTraining ("pbt").
//
// The rule: when a trial's `time_attr` is at least perturbation_interval past its last
// perturbation (and past burn_in_period), its score is recorded and the trials are ranked by
// their last recorded scores (finished trials and NaN scores left out). The bottom
// quantile_fraction of them (at most half) is the lower quantile, the top as many the upper. A
// reporting trial in the lower quantile gets Decision::Exploit(source, params): `source` is a
// trial of the upper quantile drawn at random, `params` its params explored (pbt_explore.h).
// Any other trial continues, or pauses when a trial waits to run (so the population
// time-shares the slots; ChooseTrialToRun then runs the one with the least progress). As in
// Ray, a source that had no checkpoint when it was last ranked (it was not in the upper
// quantile then), or that has none now, is not cloned: the trial goes on as if not exploited.
//
// synch: trials reaching the interval PAUSE until every live trial has; then the last one
// ranks them all at once, paused lower-quantile trials are exploited through
// TrialControl::ExploitTrial (the reporting one by its Decision), and they all run again,
// least progress first.
//
// Parameters (Ray's names and defaults): time_attr ("time_total_s"), metric, mode,
// perturbation_interval (60), burn_in_period (0), hyperparam_mutations and explore_bounds
// (pbt_explore.h; Ray's custom_explore_fn cannot be written in JSON, explore_bounds covers its
// common use, clamping), quantile_fraction (0.25, in [0, 0.5]), resample_probability (0.25),
// perturbation_factors ([1.2, 0.8]), synch (false), require_attrs (true: a result without
// time_attr or the metric throws, as Ray's RuntimeError; the tuner fails that trial (ERROR, not
// retried) rather than the experiment), log_config (true: keep perturbations() and Policy() in
// memory; the tuner writes <trial>/lineage.jsonl either way), seed (0).
//
// tests/peers/pbt_diff.py checks quantiles, clones, explored params and trial choices against
// Ray 2.58's scheduler. Deliberate differences: keys are explored in sorted order; a key missing
// from the params, or a non-number under a distribution, is drawn anew (Ray raises); a
// non-numeric metric reads as NaN (never ranked); a trial's params are not filled in on add
// (Ray's _fill_config): put the mutated keys in the space.
//
// Example:
//   PbtOptions options;
//   options.metric = "val_acc";
//   options.time_attr = "training_iteration";
//   options.perturbation_interval = 4;
//   options.hyperparam_mutations = ParsePbtMutations(
//       Json::parse(R"({"lr": {"loguniform": [1e-4, 0.1]}})"), "hyperparam_mutations");
//   PbtScheduler pbt(options);
//   pbt.SetControl(&tuner);
//   Decision d = pbt.OnResult("t_00003", result);  // may be Exploit("t_00001", {"lr": ...})
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "schedulers/pbt_explore.h"
#include "schedulers/scheduler.h"

namespace tune {

struct PbtOptions {
  std::string time_attr = "time_total_s";
  std::string metric;  // required
  Mode mode = Mode::kMax;
  double perturbation_interval = 60;  // > 0
  double burn_in_period = 0;
  PbtMutations hyperparam_mutations;
  Json explore_bounds = Json::object();  // as ParsePbtBounds returns it
  double quantile_fraction = 0.25;       // in [0, 0.5]
  double resample_probability = 0.25;
  std::vector<double> perturbation_factors = {1.2, 0.8};  // non-empty
  bool synch = false;
  bool require_attrs = true;
  bool log_config = true;
  std::uint64_t seed = 0;
};

// One exploit: Ray's policy-log row (pbt_global.txt, pbt_policy_<trial>.txt).
struct PbtPerturbation {
  std::string trial_id;         // the trial that cloned
  std::string source_trial_id;  // the trial it cloned
  double time = 0;              // trial's time_attr when it cloned
  double source_time = 0;       // source's time_attr when it was last ranked
  std::int64_t trial_iteration = 0;   // training_iteration of the trial's last result
  std::int64_t source_iteration = 0;  // of the source's last result
  Json source_params;           // the source's params (Ray's "old config")
  Json params;                  // what the trial got (Ray's "new config")
  Json operations;              // per mutated key, as Explored::operations

  // {"trial_id", "source_trial_id", "time", "source_time", "trial_iteration",
  //  "source_iteration", "source_params", "params", "operations"}
  Json ToJson() const;
};

// Not thread-safe; the tuner calls it from its one loop thread.
class PbtScheduler : public Scheduler {
 public:
  // `options` must be valid (MakeScheduler checks specs). `random` replaces the seeded source
  // of draws (tests); null means SeededPbtRandom(options.seed).
  explicit PbtScheduler(PbtOptions options, std::unique_ptr<PbtRandom> random = nullptr);

  // Starts (or, for a known id, restarts as Ray's recovery does) the trial's PBT state.
  void OnTrialAdd(const std::string& trial_id) override;
  // CONTINUE before burn-in or the interval; otherwise as the rule above. Throws
  // std::runtime_error for a result without time_attr or the metric when require_attrs.
  Decision OnResult(const std::string& trial_id, const Result& result) override;
  // The trial leaves the ranking (its state is kept, as Ray's).
  void OnTrialComplete(const std::string& trial_id, const Result* last) override;
  void OnTrialError(const std::string& trial_id) override;
  // Ray's choose_trial_to_run: the waiting trial with the least time_attr at its last ranking
  // (the first such in creation order); in synch mode only trials short of the next sync point.
  std::optional<std::string> ChooseTrialToRun(const std::vector<const Trial*>& waiting) override;
  // "PopulationBasedTraining: N checkpoints, M perturbs", as Ray's debug_string.
  std::string Describe() const override;
  // Resume snapshots (schedulers/scheduler.h): every trial's PBT state in the order trials were
  // added (last score, checkpoint mark, times, last iteration, finished, lineage), the trials
  // still ranked, the sync point, the counts, every exploit so far and the source of draws;
  // nullopt with a source that keeps no state (a test's). LoadState throws std::runtime_error
  // ("snapshot: pbt.trials[3][2]: ...") when `state` is not what SaveState() writes.
  std::optional<Json> SaveState() const override;
  void LoadState(const Json& state) override;

  // Every exploit so far, in order (empty when !log_config): Ray's pbt_global.txt.
  const std::vector<PbtPerturbation>& perturbations() const { return perturbations_; }
  // The exploits behind a trial's current params, oldest first: those of the trial it last
  // cloned (recursively), then that clone. Ray's pbt_policy_<trial>.txt.
  std::vector<PbtPerturbation> Policy(const std::string& trial_id) const;
  int num_checkpoints() const { return num_checkpoints_; }
  int num_perturbations() const { return num_perturbations_; }
  // The time_attr value at which synch mode next ranks the population.
  double next_perturbation_sync() const { return next_perturbation_sync_; }
  const PbtOptions& options() const { return options_; }

 private:
  // Ray's _PBTTrialState.
  struct TrialState {
    std::optional<double> last_score;  // sign-adjusted: larger is better
    bool checkpointed = false;  // in the upper quantile when last ranked (Ray's last_checkpoint)
    double last_perturbation_time = 0;
    double last_train_time = 0;
    std::optional<std::int64_t> last_iteration;  // training_iteration of the last recorded result
    bool finished = false;
    std::vector<std::size_t> policy;  // indices into perturbations_
  };
  struct Quantiles {
    std::vector<std::string> lower, upper;
  };
  struct Plan {
    std::string source;
    Json params;
  };

  TrialState& StateOf(const std::string& trial_id);
  const Trial* Find(const std::string& trial_id) const;
  bool IsFinished(const std::string& trial_id) const;
  // Ranks the unfinished trials with a score; drops the finished ones from unfinished_.
  Quantiles Rank();
  // Ray's _checkpoint_or_exploit: marks an upper-quantile trial as checkpointed; for a
  // lower-quantile one draws a source and, when it can be cloned, returns the plan.
  std::optional<Plan> CheckpointOrExploit(const std::string& trial_id, const Result* result,
                                          const Quantiles& quantiles);
  Decision OnResultAsync(const std::string& trial_id, const Result& result);
  Decision OnResultSynch(const std::string& trial_id, const Result& result, double time);

  PbtOptions options_;
  double metric_sign_;
  std::unique_ptr<PbtRandom> random_;
  std::vector<std::string> order_;  // trial ids, in the order they were added
  // order_ less the finished trials, so that ranking costs what is running, not what has run
  // (a trial marked finished stays until the next Rank drops it).
  std::vector<std::string> unfinished_;
  std::unordered_map<std::string, TrialState> states_;
  double next_perturbation_sync_;
  int num_checkpoints_ = 0;
  int num_perturbations_ = 0;
  std::vector<PbtPerturbation> perturbations_;
};

// "pbt" (alias "population_based_training"): Ray's PopulationBasedTraining arguments (not
// custom_explore_fn), plus "explore_bounds" and "seed".
SchedulerRegistry::Entry PbtEntry();

}  // namespace tune
