#include "schedulers/pbt.h"

#include <fmt/format.h>

#include <algorithm>
#include <cassert>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <utility>

#include "core/state.h"
#include "schedulers/util.h"

namespace tune {
namespace {

bool Contains(const std::vector<std::string>& ids, const std::string& id) {
  return std::find(ids.begin(), ids.end(), id) != ids.end();
}

bool IsWaiting(const Trial* trial) {
  return trial != nullptr &&
         (trial->status == TrialStatus::kPending || trial->status == TrialStatus::kPaused);
}

}  // namespace

Json PbtPerturbation::ToJson() const {
  return {{"trial_id", trial_id},
          {"source_trial_id", source_trial_id},
          {"time", time},
          {"source_time", source_time},
          {"trial_iteration", trial_iteration},
          {"source_iteration", source_iteration},
          {"source_params", source_params},
          {"params", params},
          {"operations", operations}};
}

PbtScheduler::PbtScheduler(PbtOptions options, std::unique_ptr<PbtRandom> random)
    : options_(std::move(options)),
      metric_sign_(options_.mode == Mode::kMax ? 1.0 : -1.0),
      random_(random ? std::move(random) : std::make_unique<SeededPbtRandom>(options_.seed)),
      next_perturbation_sync_(std::max(options_.perturbation_interval, options_.burn_in_period)) {
  assert(!options_.metric.empty());
  assert(options_.perturbation_interval > 0);
  assert(options_.quantile_fraction >= 0 && options_.quantile_fraction <= 0.5);
  assert(!options_.perturbation_factors.empty());
}

void PbtScheduler::OnTrialAdd(const std::string& trial_id) {
  // Ray makes a fresh state on every add, and a recovered trial goes to the end of the order.
  // Only a trial seen before is in the lists, so a new one costs no search through them.
  if (states_.count(trial_id) != 0) {
    order_.erase(std::remove(order_.begin(), order_.end(), trial_id), order_.end());
    unfinished_.erase(std::remove(unfinished_.begin(), unfinished_.end(), trial_id),
                      unfinished_.end());
  }
  order_.push_back(trial_id);
  unfinished_.push_back(trial_id);
  states_[trial_id] = TrialState{};
}

PbtScheduler::TrialState& PbtScheduler::StateOf(const std::string& trial_id) {
  auto it = states_.find(trial_id);
  if (it != states_.end()) return it->second;
  order_.push_back(trial_id);  // results of a trial never added are accepted
  unfinished_.push_back(trial_id);
  return states_[trial_id];
}

const Trial* PbtScheduler::Find(const std::string& trial_id) const {
  return control() == nullptr ? nullptr : control()->FindTrial(trial_id);
}

bool PbtScheduler::IsFinished(const std::string& trial_id) const {
  const auto it = states_.find(trial_id);
  if (it != states_.end() && it->second.finished) return true;
  const Trial* trial = Find(trial_id);
  return trial != nullptr && IsFinal(trial->status);
}

Decision PbtScheduler::OnResult(const std::string& trial_id, const Result& result) {
  for (const std::string* attr : {&options_.time_attr, &options_.metric}) {
    if (HasAttr(result, *attr) || !options_.require_attrs) continue;
    throw std::runtime_error(fmt::format(
        "pbt: a result of trial {} has no \"{}\" (the scheduler's {}); set "
        "scheduler.require_attrs=false to let such results through",
        trial_id, *attr, attr == &options_.metric ? "metric" : "time_attr"));
  }
  if (!HasAttr(result, options_.time_attr) || !HasAttr(result, options_.metric)) {
    return Decision::kContinue;
  }
  const double time = result.Get(options_.time_attr);
  TrialState& state = StateOf(trial_id);
  if (time < options_.burn_in_period) return Decision::kContinue;
  // Between perturbations nothing is recorded: that spares the checkpoint Ray would take.
  if (time - state.last_perturbation_time < options_.perturbation_interval) {
    return Decision::kContinue;
  }
  // Ray's _save_trial_state. A non-numeric metric reads as NaN and is never ranked.
  state.last_score = metric_sign_ * result.Get(options_.metric);
  state.last_train_time = time;
  state.last_iteration = result.training_iteration;
  return options_.synch ? OnResultSynch(trial_id, result, time) : OnResultAsync(trial_id, result);
}

Decision PbtScheduler::OnResultAsync(const std::string& trial_id, const Result& result) {
  TrialState& state = states_[trial_id];
  state.last_perturbation_time = state.last_train_time;
  const Quantiles quantiles = Rank();
  // Make way for a waiting trial: the population time-shares the slots. A waiting trial is one
  // not finished, so the trials Rank() left (not every trial ever added) are enough to look at.
  Decision decision = Decision::kContinue;
  for (const std::string& id : unfinished_) {
    if (IsWaiting(Find(id))) {
      decision = Decision::kPause;
      break;
    }
  }
  if (auto plan = CheckpointOrExploit(trial_id, &result, quantiles)) {
    return Decision::Exploit(std::move(plan->source), std::move(plan->params));
  }
  return decision;
}

Decision PbtScheduler::OnResultSynch(const std::string& trial_id, const Result& result,
                                     double time) {
  for (const std::string& id : unfinished_) {  // the trials of order_ not marked finished
    if (id != trial_id && !IsFinished(id) &&
        states_[id].last_train_time < next_perturbation_sync_) {
      return Decision::kPause;  // wait for the others to reach the sync point
    }
  }
  const Quantiles quantiles = Rank();
  // Strong trials first, so that they are marked checkpointed before weak ones clone them.
  std::vector<std::string> everyone = quantiles.upper;
  for (const std::string& id : order_) {
    if (!Contains(quantiles.lower, id) && !Contains(quantiles.upper, id)) everyone.push_back(id);
  }
  everyone.insert(everyone.end(), quantiles.lower.begin(), quantiles.lower.end());
  Decision decision = Decision::kPause;
  for (const std::string& id : everyone) {
    states_[id].last_perturbation_time = time;
    auto plan = CheckpointOrExploit(id, id == trial_id ? &result : nullptr, quantiles);
    if (!plan) continue;
    if (id == trial_id) {
      decision = Decision::Exploit(std::move(plan->source), std::move(plan->params));
    } else if (control() != nullptr) {
      // Paused at the sync point (or told to pause and not yet acknowledged).
      control()->ExploitTrial(id, plan->source, plan->params);
    }
  }
  double latest = 0;
  bool first = true;
  for (const std::string& id : order_) {
    const double train_time = states_[id].last_train_time;
    if (first || train_time > latest) latest = train_time;  // Python's max()
    first = false;
  }
  next_perturbation_sync_ =
      std::max(next_perturbation_sync_ + options_.perturbation_interval, latest);
  return decision;
}

PbtScheduler::Quantiles PbtScheduler::Rank() {
  // The trials of order_ that are not finished, in that order: unfinished_, compacted on the way.
  std::vector<std::pair<double, std::string>> ranked;
  std::size_t kept = 0;
  for (std::size_t i = 0; i < unfinished_.size(); ++i) {
    if (states_.at(unfinished_[i]).finished) continue;
    if (kept != i) unfinished_[kept] = std::move(unfinished_[i]);
    const std::string& id = unfinished_[kept++];
    const TrialState& state = states_.at(id);
    if (state.last_score && !std::isnan(*state.last_score) && !IsFinished(id)) {
      ranked.emplace_back(*state.last_score, id);
    }
  }
  unfinished_.resize(kept);
  // Stable, as Python's sort: ties keep the order the trials were added in.
  std::stable_sort(ranked.begin(), ranked.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  Quantiles quantiles;
  const std::size_t n = ranked.size();
  if (n <= 1) return quantiles;
  auto count = static_cast<std::size_t>(std::ceil(static_cast<double>(n) *
                                                  options_.quantile_fraction));
  if (static_cast<double>(count) > static_cast<double>(n) / 2) count = n / 2;
  for (std::size_t i = 0; i < count; ++i) quantiles.lower.push_back(ranked[i].second);
  // Python's trials[-0:] is the whole list: with a count of 0 every trial is "upper" (so
  // checkpointed), as in Ray, while none is lower.
  for (std::size_t i = count == 0 ? 0 : n - count; i < n; ++i) {
    quantiles.upper.push_back(ranked[i].second);
  }
  return quantiles;
}

std::optional<PbtScheduler::Plan> PbtScheduler::CheckpointOrExploit(const std::string& trial_id,
                                                                    const Result* result,
                                                                    const Quantiles& quantiles) {
  TrialState& state = states_[trial_id];
  // Ray asks an upper-quantile trial to save now; the tuner keeps every trial's latest
  // checkpoint, so here it is only marked as one that may be cloned.
  state.checkpointed = Contains(quantiles.upper, trial_id);
  if (state.checkpointed) ++num_checkpoints_;
  if (!Contains(quantiles.lower, trial_id)) return std::nullopt;

  const std::string& source = quantiles.upper[random_->Index(quantiles.upper.size())];
  const TrialState& source_state = states_.at(source);
  const Trial* source_trial = Find(source);
  // Ray: a source without a checkpoint from its last ranking, or whose save came back empty,
  // is skipped and the trial goes on unchanged.
  if (!source_state.checkpointed || source_trial == nullptr || !source_trial->last_checkpoint ||
      source_trial->last_checkpoint->empty()) {
    return std::nullopt;
  }
  Explored explored =
      ExploreParams(source_trial->params, options_.hyperparam_mutations,
                    options_.resample_probability, options_.perturbation_factors, *random_);
  ClampToBounds(options_.explore_bounds, &explored.params);

  if (options_.log_config) {
    auto iteration_of = [&](const std::string& id, const Result* current) -> std::int64_t {
      if (current != nullptr) return current->training_iteration;
      const Trial* trial = Find(id);
      if (trial != nullptr && trial->last_result) return trial->last_result->training_iteration;
      return states_.at(id).last_iteration.value_or(0);
    };
    PbtPerturbation record;
    record.trial_id = trial_id;
    record.source_trial_id = source;
    record.time = state.last_train_time;
    record.source_time = source_state.last_train_time;
    record.trial_iteration = iteration_of(trial_id, result);
    record.source_iteration = iteration_of(source, nullptr);
    record.source_params = source_trial->params;
    record.params = explored.params;
    record.operations = std::move(explored.operations);
    // The trial's lineage is now the source's plus this clone.
    state.policy = source_state.policy;
    state.policy.push_back(perturbations_.size());
    perturbations_.push_back(std::move(record));
  }
  ++num_perturbations_;
  // The clone goes on from the source's point in time.
  state.last_perturbation_time = source_state.last_perturbation_time;
  state.last_train_time = source_state.last_train_time;
  return Plan{source, std::move(explored.params)};
}

void PbtScheduler::OnTrialComplete(const std::string& trial_id, const Result* last) {
  (void)last;
  StateOf(trial_id).finished = true;
}

void PbtScheduler::OnTrialError(const std::string& trial_id) { StateOf(trial_id).finished = true; }

std::optional<std::string> PbtScheduler::ChooseTrialToRun(
    const std::vector<const Trial*>& waiting) {
  std::optional<std::string> best;
  double best_time = 0;
  for (const Trial* trial : waiting) {
    if (!IsWaiting(trial)) continue;
    const auto it = states_.find(trial->id);
    const double train_time = it == states_.end() ? 0 : it->second.last_train_time;
    if (options_.synch && !(train_time < next_perturbation_sync_)) continue;
    // Strictly less: the first of equals wins, as Python's stable sort.
    if (!best || train_time < best_time) {
      best = trial->id;
      best_time = train_time;
    }
  }
  return best;
}

std::vector<PbtPerturbation> PbtScheduler::Policy(const std::string& trial_id) const {
  std::vector<PbtPerturbation> policy;
  const auto it = states_.find(trial_id);
  if (it == states_.end()) return policy;
  for (std::size_t index : it->second.policy) policy.push_back(perturbations_[index]);
  return policy;
}

std::string PbtScheduler::Describe() const {
  return fmt::format("PopulationBasedTraining: {} checkpoints, {} perturbs", num_checkpoints_,
                     num_perturbations_);
}

std::optional<Json> PbtScheduler::SaveState() const {
  std::optional<Json> random = random_->SaveState();
  if (!random) return std::nullopt;
  auto optional_number = [](const auto& value) {
    return value ? Json(StateNumber(*value)) : Json();
  };
  Json trials = Json::array();
  for (const std::string& id : order_) {
    const TrialState& state = states_.at(id);
    trials.push_back(Json::array(
        {id, optional_number(state.last_score), state.checkpointed,
         StateNumber(state.last_perturbation_time), StateNumber(state.last_train_time),
         state.last_iteration ? Json(*state.last_iteration) : Json(), state.finished,
         state.policy}));
  }
  Json perturbations = Json::array();
  for (const PbtPerturbation& p : perturbations_) {
    perturbations.push_back(Json::array(
        {p.trial_id, p.source_trial_id, StateNumber(p.time), StateNumber(p.source_time),
         p.trial_iteration, p.source_iteration, p.source_params, p.params, p.operations}));
  }
  return Json{{"random", std::move(*random)},
              {"trials", std::move(trials)},
              {"unfinished", unfinished_},
              {"next_sync", StateNumber(next_perturbation_sync_)},
              {"num_checkpoints", num_checkpoints_},
              {"num_perturbations", num_perturbations_},
              {"perturbations", std::move(perturbations)}};
}

void PbtScheduler::LoadState(const Json& state) {
  const std::string path = "pbt";
  auto count = [&](const char* key) {
    return static_cast<int>(StateInteger(StateMember(state, key, path), path + "." + key, 0,
                                         std::numeric_limits<int>::max()));
  };
  // Read into copies, so that a bad state leaves this scheduler as it was.
  std::vector<PbtPerturbation> perturbations;
  const Json& saved =
      StateArray(StateMember(state, "perturbations", path), path + ".perturbations");
  for (std::size_t i = 0; i < saved.size(); ++i) {
    const std::string at = fmt::format("{}.perturbations[{}]", path, i);
    const Json& entry = StateArray(saved[i], at);
    if (entry.size() != 9) throw std::runtime_error("snapshot: " + at + ": not 9 fields");
    PbtPerturbation p;
    p.trial_id = StateString(entry[0], at + "[0]");
    p.source_trial_id = StateString(entry[1], at + "[1]");
    p.time = StateDouble(entry[2], at + "[2]");
    p.source_time = StateDouble(entry[3], at + "[3]");
    p.trial_iteration = StateInteger(entry[4], at + "[4]");
    p.source_iteration = StateInteger(entry[5], at + "[5]");
    p.source_params = entry[6];
    p.params = entry[7];
    p.operations = entry[8];
    perturbations.push_back(std::move(p));
  }
  std::vector<std::string> order;
  std::unordered_map<std::string, TrialState> states;
  const Json& trials = StateArray(StateMember(state, "trials", path), path + ".trials");
  for (std::size_t i = 0; i < trials.size(); ++i) {
    const std::string at = fmt::format("{}.trials[{}]", path, i);
    const Json& entry = StateArray(trials[i], at);
    if (entry.size() != 8) throw std::runtime_error("snapshot: " + at + ": not 8 fields");
    TrialState trial;
    if (!entry[1].is_null()) trial.last_score = StateDouble(entry[1], at + "[1]");
    trial.checkpointed = StateBool(entry[2], at + "[2]");
    trial.last_perturbation_time = StateDouble(entry[3], at + "[3]");
    trial.last_train_time = StateDouble(entry[4], at + "[4]");
    if (!entry[5].is_null()) trial.last_iteration = StateInteger(entry[5], at + "[5]");
    trial.finished = StateBool(entry[6], at + "[6]");
    const Json& policy = StateArray(entry[7], at + "[7]");
    for (std::size_t j = 0; j < policy.size(); ++j) {
      const std::int64_t index = StateInteger(policy[j], fmt::format("{}[7][{}]", at, j));
      if (index < 0 || static_cast<std::size_t>(index) >= perturbations.size()) {
        throw std::runtime_error(
            fmt::format("snapshot: {}[7][{}]: no perturbation {}", at, j, index));
      }
      trial.policy.push_back(static_cast<std::size_t>(index));
    }
    const std::string& id = StateString(entry[0], at + "[0]");
    if (!states.emplace(id, std::move(trial)).second) {
      throw std::runtime_error("snapshot: " + at + ": " + id + " is there twice");
    }
    order.push_back(id);
  }
  std::vector<std::string> unfinished;
  const Json& ranked = StateArray(StateMember(state, "unfinished", path), path + ".unfinished");
  for (std::size_t i = 0; i < ranked.size(); ++i) {
    const std::string at = fmt::format("{}.unfinished[{}]", path, i);
    const std::string& id = StateString(ranked[i], at);
    if (states.count(id) == 0) throw std::runtime_error("snapshot: " + at + ": no trial " + id);
    unfinished.push_back(id);
  }
  const double next_sync = StateDouble(StateMember(state, "next_sync", path), path + ".next_sync");
  const int num_checkpoints = count("num_checkpoints");
  const int num_perturbations = count("num_perturbations");
  random_->LoadState(StateMember(state, "random", path));  // last: it cannot be undone
  order_ = std::move(order);
  unfinished_ = std::move(unfinished);
  states_ = std::move(states);
  next_perturbation_sync_ = next_sync;
  num_checkpoints_ = num_checkpoints;
  num_perturbations_ = num_perturbations;
  perturbations_ = std::move(perturbations);
}

}  // namespace tune

namespace tune {
namespace {

PbtOptions ParsePbt(const OptionsReader& in, const SchedulerContext& context) {
  PbtOptions options;
  options.time_attr = in.String("time_attr", options.time_attr);
  options.metric = in.String("metric", context.metric);
  options.mode = in.ModeOf("mode", context.mode);
  options.perturbation_interval =
      in.Number("perturbation_interval", options.perturbation_interval, Range::Above(0));
  options.burn_in_period = in.Number("burn_in_period", options.burn_in_period, Range::AtLeast(0));
  if (const Json* mutations = in.Find("hyperparam_mutations")) {
    options.hyperparam_mutations =
        ParsePbtMutations(*mutations, in.PathOf("hyperparam_mutations"));
  }
  if (const Json* bounds = in.Find("explore_bounds")) {
    options.explore_bounds = ParsePbtBounds(*bounds, in.PathOf("explore_bounds"));
  }
  options.quantile_fraction =
      in.Number("quantile_fraction", options.quantile_fraction, Range::Between(0, 0.5));
  options.resample_probability =
      in.Number("resample_probability", options.resample_probability, Range::Between(0, 1));
  if (const Json* factors = in.Find("perturbation_factors")) {
    in.Require(factors->is_array() && !factors->empty(), "perturbation_factors",
               "expected a non-empty array of numbers");
    options.perturbation_factors.clear();
    for (std::size_t i = 0; i < factors->size(); ++i) {
      options.perturbation_factors.push_back(ReadNumber(
          (*factors)[i], fmt::format("{}[{}]", in.PathOf("perturbation_factors"), i)));
    }
  }
  options.synch = in.Bool("synch", options.synch);
  options.require_attrs = in.Bool("require_attrs", options.require_attrs);
  options.log_config = in.Bool("log_config", options.log_config);
  options.seed = static_cast<std::uint64_t>(in.Integer("seed", 0, Range::AtLeast(0)));
  if (options.hyperparam_mutations.empty() && options.explore_bounds.empty()) {
    throw SpecError(in.PathOf("hyperparam_mutations"),
                    "pbt needs parameters to explore: e.g. {\"lr\": {\"loguniform\": [1e-4, "
                    "0.1]}} (or explore_bounds)");
  }
  if (options.metric.empty()) {
    throw SpecError(in.PathOf("metric"),
                    "pbt needs a metric: set \"metric\" in the experiment or in the scheduler");
  }
  return options;
}

}  // namespace

SchedulerRegistry::Entry PbtEntry() {
  return {"pbt",
          {"time_attr", "metric", "mode", "perturbation_interval", "burn_in_period",
           "hyperparam_mutations", "explore_bounds", "quantile_fraction", "resample_probability",
           "perturbation_factors", "synch", "require_attrs", "log_config", "seed"},
          [](const OptionsReader& in, const SchedulerContext& context) {
            return std::any(ParsePbt(in, context));
          },
          [](const std::any& options, const SchedulerContext&) -> std::unique_ptr<Scheduler> {
            return std::make_unique<PbtScheduler>(std::any_cast<const PbtOptions&>(options));
          },
          {"population_based_training"}};
}

}  // namespace tune
