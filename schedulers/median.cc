#include "schedulers/median.h"

#include <fmt/format.h>

#include <ext/pb_ds/assoc_container.hpp>
#include <ext/pb_ds/tree_policy.hpp>

#include <algorithm>
#include <cassert>
#include <cmath>
#include <limits>
#include <utility>

#include "core/numpy.h"
#include "schedulers/util.h"

namespace tune {
namespace {

// Distinct times that get a tree of frozen means (each costs a pass over the frozen trials to
// build and memory per frozen trial): enough for training_iteration up to this many iterations.
constexpr std::size_t kMaxIndexedTimes = 4096;

}  // namespace

// A multiset of doubles with rank queries in O(log n) (libstdc++'s policy-based red-black tree
// with subtree sizes); NaNs are only counted, as one makes numpy's median NaN anyway.
class MedianStoppingRule::FrozenMeans {
 public:
  void Insert(double value, std::uint64_t serial) {
    if (std::isnan(value)) {
      ++nans_;
    } else {
      tree_.insert({value, serial});
    }
  }
  void Erase(double value, std::uint64_t serial) {
    if (std::isnan(value)) {
      --nans_;
    } else {
      tree_.erase({value, serial});
    }
  }
  std::size_t size() const { return tree_.size() + nans_; }
  std::size_t nans() const { return nans_; }
  // The k-th smallest (from 0) of the values here together with `more` (sorted, no NaN).
  double KthWith(std::size_t k, const std::vector<double>& more) const {
    // Each of `more` sits after the tree's values smaller than it: at order_of_key + its index.
    std::size_t before = 0;  // how many of `more` come before position k
    for (std::size_t i = 0; i < more.size(); ++i) {
      const std::size_t at = tree_.order_of_key({more[i], 0}) + i;
      if (at == k) return more[i];
      if (at > k) break;
      ++before;
    }
    return tree_.find_by_order(k - before)->first;
  }

 private:
  using Tree = __gnu_pbds::tree<std::pair<double, std::uint64_t>, __gnu_pbds::null_type,
                                std::less<std::pair<double, std::uint64_t>>, __gnu_pbds::rb_tree_tag,
                                __gnu_pbds::tree_order_statistics_node_update>;
  Tree tree_;
  std::size_t nans_ = 0;
};

MedianStoppingRule::MedianStoppingRule(MedianOptions options) : options_(std::move(options)) {
  assert(!options_.metric.empty());
  assert(options_.min_samples_required >= 1);
}

MedianStoppingRule::~MedianStoppingRule() = default;

void MedianStoppingRule::OnTrialAdd(const std::string& trial_id) {
  live_.insert(trial_id);
  serial_.emplace(trial_id, serial_.size());
  Unfreeze(trial_id);  // `tune resume --errored` runs an ended trial again
}

Decision MedianStoppingRule::OnResult(const std::string& trial_id, const Result& result) {
  if (stopped_.count(trial_id) != 0) {
    // Paused by the rule (hard_stop false) and run again: FIFO from now on, its results no longer
    // recorded. With hard_stop a result can only be one that was in flight when it stopped.
    return options_.hard_stop ? Decision::kStop : Decision::kContinue;
  }
  const auto read = ReadTimeAndMetric(result, options_.time_attr, options_.metric);
  if (!read) return Decision::kContinue;
  const auto [time, value] = *read;
  paused_.erase(trial_id);
  Unfreeze(trial_id);  // a result after its end (not expected): ranked with its new history
  std::vector<Sample>& history = results_[trial_id];
  history.push_back(Sample{time, value});
  unfrozen_.insert(trial_id);
  if (time < options_.grace_period) return Decision::kContinue;

  const std::optional<double> median_or = MedianOfOthers(trial_id, time);
  if (!median_or) return OnInsufficientSamples(trial_id, time);
  const double median = *median_or;
  // Python's max()/min() over the trial's values: the first, replaced by each later value that
  // is strictly better (so a NaN first value sticks and later NaNs are skipped).
  const bool maximize = options_.mode == Mode::kMax;
  double best = history.front().value;
  for (const Sample& sample : history) {
    if (maximize ? sample.value > best : sample.value < best) best = sample.value;
  }
  // Ray: compare_op(median, best) != best, i.e. the median wins unless best is strictly better;
  // a tie continues, and a NaN on either side stops.
  const bool best_wins = maximize ? best > median : best < median;
  const double winner = best_wins ? best : median;
  if (winner == best) return Decision::kContinue;
  stopped_.insert(trial_id);
  if (options_.hard_stop) return Decision::kStop;
  paused_.insert(trial_id);
  return Decision::kPause;
}

std::optional<double> MedianStoppingRule::MedianOfOthers(const std::string& trial_id, double time) {
  // The samples: the other trials whose latest recorded result is at `time` or later.
  auto eligible = [&](const std::string& other) {
    return other != trial_id && results_.at(other).back().time >= time;
  };
  auto indexed = frozen_at_.find(time);
  if (indexed == frozen_at_.end() && times_asked_.size() < kMaxIndexedTimes &&
      ++times_asked_[time] >= 2) {
    // Asked again: rank the frozen trials' means at this time once; Freeze() keeps it current.
    auto means = std::make_unique<FrozenMeans>();
    for (const auto& [other, samples] : results_) {
      if (unfrozen_.count(other) == 0 && eligible(other)) {
        means->Insert(RunningMean(other, time), serial_[other]);
      }
    }
    indexed = frozen_at_.emplace(time, std::move(means)).first;
  }
  if (indexed == frozen_at_.end()) {
    std::vector<double> means;
    for (const auto& [other, samples] : results_) {
      if (eligible(other)) means.push_back(RunningMean(other, time));
    }
    if (static_cast<std::int64_t>(means.size()) < options_.min_samples_required) return std::nullopt;
    return NumpyMedian(std::move(means));
  }
  // The frozen trials' means from the tree, the others' computed now.
  const FrozenMeans& frozen = *indexed->second;
  std::vector<double> live_means;
  std::size_t live_nans = 0;
  for (const std::string& other : unfrozen_) {
    if (!eligible(other)) continue;
    const double mean = RunningMean(other, time);
    if (std::isnan(mean)) {
      ++live_nans;
    } else {
      live_means.push_back(mean);
    }
  }
  const std::size_t count = frozen.size() + live_means.size() + live_nans;
  if (static_cast<std::int64_t>(count) < options_.min_samples_required) return std::nullopt;
  // numpy's median of values with a NaN is NaN.
  if (live_nans > 0 || frozen.nans() > 0) return std::numeric_limits<double>::quiet_NaN();
  std::sort(live_means.begin(), live_means.end());
  const std::size_t n = frozen.size() + live_means.size();
  if (n % 2 == 1) return NumpyMedian({frozen.KthWith(n / 2, live_means)});
  return NumpyMedian({frozen.KthWith(n / 2 - 1, live_means), frozen.KthWith(n / 2, live_means)});
}

void MedianStoppingRule::Freeze(const std::string& trial_id) {
  live_.erase(trial_id);
  auto samples = results_.find(trial_id);
  if (samples == results_.end() || unfrozen_.erase(trial_id) == 0) return;
  const double last_time = samples->second.back().time;
  for (auto& [time, means] : frozen_at_) {
    if (time > last_time) break;
    means->Insert(RunningMean(trial_id, time), serial_[trial_id]);
  }
}

void MedianStoppingRule::Unfreeze(const std::string& trial_id) {
  auto samples = results_.find(trial_id);
  if (samples == results_.end() || !unfrozen_.insert(trial_id).second) return;
  const double last_time = samples->second.back().time;
  for (auto& [time, means] : frozen_at_) {
    if (time > last_time) break;
    means->Erase(RunningMean(trial_id, time), serial_[trial_id]);
  }
}

double MedianStoppingRule::RunningMean(const std::string& trial_id, double time) const {
  std::vector<double> values;
  for (const Sample& sample : results_.at(trial_id)) {
    if (options_.grace_period <= sample.time && sample.time <= time) values.push_back(sample.value);
  }
  return NumpyMean(values);
}

Decision MedianStoppingRule::OnInsufficientSamples(const std::string& trial_id, double time) {
  auto last = last_pause_.find(trial_id);
  const double last_pause =
      last == last_pause_.end() ? -std::numeric_limits<double>::infinity() : last->second;
  if (time - last_pause > options_.min_time_slice && SomeTrialWaits()) {
    last_pause_[trial_id] = time;
    paused_.insert(trial_id);
    return Decision::kPause;
  }
  return Decision::kContinue;
}

bool MedianStoppingRule::SomeTrialWaits() const {
  if (control() == nullptr) return false;
  for (const std::string& trial_id : live_) {
    const Trial* trial = control()->FindTrial(trial_id);
    if (trial != nullptr &&
        (trial->status == TrialStatus::kPending || trial->status == TrialStatus::kPaused)) {
      return true;
    }
  }
  return false;
}

void MedianStoppingRule::OnTrialComplete(const std::string& trial_id, const Result* last) {
  if (paused_.erase(trial_id) == 0 && last != nullptr) {  // else Ray's on_trial_remove, a no-op
    const auto read = ReadTimeAndMetric(*last, options_.time_attr, options_.metric);
    if (read) {
      Unfreeze(trial_id);
      results_[trial_id].push_back(Sample{read->first, read->second});
      unfrozen_.insert(trial_id);
    }
  }
  Freeze(trial_id);
}

void MedianStoppingRule::OnTrialError(const std::string& trial_id) { Freeze(trial_id); }

std::optional<std::string> MedianStoppingRule::ChooseTrialToRun(
    const std::vector<const Trial*>& waiting) {
  std::optional<std::string> chosen = Scheduler::ChooseTrialToRun(waiting);
  if (chosen) paused_.erase(*chosen);
  return chosen;
}

std::string MedianStoppingRule::Describe() const {
  return fmt::format("Using MedianStoppingRule: num_stopped={}.", stopped_.size());
}

namespace {

MedianOptions ParseMedian(const OptionsReader& in, const SchedulerContext& context) {
  MedianOptions options;
  options.time_attr = in.String("time_attr", options.time_attr);
  options.metric = in.String("metric", context.metric);
  options.mode = in.ModeOf("mode", context.mode);
  options.grace_period = in.Number("grace_period", options.grace_period);
  // Ray accepts 0, and then takes the median of no trials: NaN, which stops every trial.
  options.min_samples_required =
      in.Integer("min_samples_required", options.min_samples_required, Range::AtLeast(1));
  options.min_time_slice = in.Number("min_time_slice", options.min_time_slice, Range::AtLeast(0));
  options.hard_stop = in.Bool("hard_stop", options.hard_stop);
  if (options.metric.empty()) {
    throw SpecError(in.PathOf("metric"),
                    "median needs a metric: set \"metric\" in the experiment or in the scheduler");
  }
  return options;
}

}  // namespace

SchedulerRegistry::Entry MedianEntry() {
  return {"median",
          {"time_attr", "metric", "mode", "grace_period", "min_samples_required",
           "min_time_slice", "hard_stop"},
          [](const OptionsReader& in, const SchedulerContext& context) {
            return std::any(ParseMedian(in, context));
          },
          [](const std::any& options, const SchedulerContext&) -> std::unique_ptr<Scheduler> {
            return std::make_unique<MedianStoppingRule>(
                std::any_cast<const MedianOptions&>(options));
          },
          {"median_stopping_rule"}};
}

}  // namespace tune
