#include "schedulers/median.h"

#include <fmt/format.h>

#include <ext/pb_ds/assoc_container.hpp>
#include <ext/pb_ds/tree_policy.hpp>

#include <algorithm>
#include <cassert>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <utility>

#include "core/numpy.h"
#include "core/state.h"
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
  SerialOf(trial_id);
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
  SerialOf(trial_id);
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
        means->Insert(RunningMean(other, time), serial_.at(other));
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
    means->Insert(RunningMean(trial_id, time), serial_.at(trial_id));
  }
}

void MedianStoppingRule::Unfreeze(const std::string& trial_id) {
  auto samples = results_.find(trial_id);
  if (samples == results_.end() || !unfrozen_.insert(trial_id).second) return;
  const double last_time = samples->second.back().time;
  for (auto& [time, means] : frozen_at_) {
    if (time > last_time) break;
    means->Erase(RunningMean(trial_id, time), serial_.at(trial_id));
  }
}

std::uint64_t MedianStoppingRule::SerialOf(const std::string& trial_id) {
  // A trial that reports without having been added (tests, tools) gets its own serial too: two
  // trials with equal means and one serial would be one entry in a tree.
  return serial_.emplace(trial_id, serial_.size()).first->second;
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
      SerialOf(trial_id);
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

constexpr int kLive = 1, kUnfrozen = 2, kStopped = 4, kPaused = 8;

}  // namespace

std::optional<Json> MedianStoppingRule::SaveState() const {
  std::set<std::string> ids(live_.begin(), live_.end());
  for (const auto& [trial_id, samples] : results_) ids.insert(trial_id);
  for (const auto& [trial_id, serial] : serial_) ids.insert(trial_id);
  for (const auto& [trial_id, time] : last_pause_) ids.insert(trial_id);
  ids.insert(stopped_.begin(), stopped_.end());
  ids.insert(paused_.begin(), paused_.end());
  Json trials = Json::array();
  for (const std::string& trial_id : ids) {
    const auto serial = serial_.find(trial_id);
    const auto pause = last_pause_.find(trial_id);
    const auto samples = results_.find(trial_id);
    const int flags = (live_.count(trial_id) ? kLive : 0) | (unfrozen_.count(trial_id) ? kUnfrozen : 0) |
                      (stopped_.count(trial_id) ? kStopped : 0) | (paused_.count(trial_id) ? kPaused : 0);
    Json history;
    if (samples != results_.end()) {
      history = Json::array();
      for (const Sample& sample : samples->second) {
        history.push_back(StateNumber(sample.time));
        history.push_back(StateNumber(sample.value));
      }
    }
    trials.push_back(Json::array({trial_id, serial == serial_.end() ? Json() : Json(serial->second),
                                  flags, pause == last_pause_.end() ? Json() : StateNumber(pause->second),
                                  std::move(history)}));
  }
  Json asked = Json::array();
  for (const auto& [time, count] : times_asked_) asked.push_back(Json::array({StateNumber(time), count}));
  Json indexed = Json::array();
  for (const auto& [time, means] : frozen_at_) indexed.push_back(StateNumber(time));
  return Json{{"trials", std::move(trials)}, {"times_asked", std::move(asked)}, {"indexed", std::move(indexed)}};
}

void MedianStoppingRule::LoadState(const Json& state) {
  const std::string path = "median";
  // Read into a fresh rule, so that a bad state leaves this one as it was.
  MedianStoppingRule loaded(options_);
  auto time_at = [](const Json& array, std::size_t i, const std::string& at) {
    const double time = StateDoubleAt(array, i, at);
    if (std::isnan(time)) {
      throw std::runtime_error("snapshot: " + at + "[" + std::to_string(i) + "]: a time is never NaN");
    }
    return time;
  };
  const Json& trials = StateArray(StateMember(state, "trials", path), path + ".trials");
  for (std::size_t i = 0; i < trials.size(); ++i) {
    const std::string at = path + ".trials[" + std::to_string(i) + "]";
    const Json& entry = StateArray(trials[i], at);
    if (entry.size() != 5) {
      throw std::runtime_error("snapshot: " + at + ": not [id, serial, flags, last yield, history]");
    }
    const std::string& trial_id = StateString(entry[0], at + "[0]");
    if (!entry[1].is_null()) {
      const std::int64_t serial = StateInteger(entry[1], at + "[1]");
      if (serial < 0) throw std::runtime_error("snapshot: " + at + "[1]: a serial is >= 0");
      loaded.serial_.emplace(trial_id, static_cast<std::uint64_t>(serial));
    }
    const std::int64_t flags = StateInteger(entry[2], at + "[2]");
    if (flags < 0 || flags > 15) throw std::runtime_error("snapshot: " + at + "[2]: not flags");
    if (!entry[3].is_null()) loaded.last_pause_[trial_id] = time_at(entry, 3, at);
    if (!entry[4].is_null()) {
      const Json& history = StateArray(entry[4], at + "[4]");
      if (history.empty() || history.size() % 2 != 0) {
        throw std::runtime_error("snapshot: " + at + "[4]: not pairs of time and value");
      }
      std::vector<Sample>& samples = loaded.results_[trial_id];
      samples.reserve(history.size() / 2);
      for (std::size_t j = 0; j < history.size(); j += 2) {
        samples.push_back(Sample{time_at(history, j, at + "[4]"), StateDoubleAt(history, j + 1, at + "[4]")});
      }
      if (!loaded.serial_.count(trial_id)) {
        throw std::runtime_error("snapshot: " + at + "[1]: a trial with results has a serial");
      }
    } else if (flags & kUnfrozen) {
      throw std::runtime_error("snapshot: " + at + "[4]: a trial whose history may grow has one");
    }
    if (flags & kLive) loaded.live_.insert(trial_id);
    if (flags & kUnfrozen) loaded.unfrozen_.insert(trial_id);
    if (flags & kStopped) loaded.stopped_.insert(trial_id);
    if (flags & kPaused) loaded.paused_.insert(trial_id);
  }
  const Json& asked = StateArray(StateMember(state, "times_asked", path), path + ".times_asked");
  for (std::size_t i = 0; i < asked.size(); ++i) {
    const std::string at = path + ".times_asked[" + std::to_string(i) + "]";
    const Json& entry = StateArray(asked[i], at);
    if (entry.size() != 2) throw std::runtime_error("snapshot: " + at + ": not [time, count]");
    const std::int64_t count = StateInteger(entry[1], at + "[1]");
    if (count < 1 || count > 2) throw std::runtime_error("snapshot: " + at + "[1]: not 1 or 2");
    loaded.times_asked_[time_at(entry, 0, at)] = static_cast<int>(count);
  }
  // The trees of the frozen trials' means, as OnResult and Freeze/Unfreeze keep them: at each
  // time, every frozen trial whose last result is at that time or later.
  const Json& indexed = StateArray(StateMember(state, "indexed", path), path + ".indexed");
  for (std::size_t i = 0; i < indexed.size(); ++i) {
    const double time = time_at(indexed, i, path + ".indexed");
    // Inserted in ascending order: a tree of 100,000 means builds several times faster so.
    std::vector<std::pair<double, std::uint64_t>> entries;
    for (const auto& [trial_id, samples] : loaded.results_) {
      if (loaded.unfrozen_.count(trial_id) == 0 && samples.back().time >= time) {
        entries.emplace_back(loaded.RunningMean(trial_id, time), loaded.serial_.at(trial_id));
      }
    }
    std::sort(entries.begin(), entries.end(), [](const auto& x, const auto& y) {
      return std::isnan(x.first) ? false : std::isnan(y.first) || x < y;
    });
    auto means = std::make_unique<FrozenMeans>();
    for (const auto& [mean, serial] : entries) means->Insert(mean, serial);
    loaded.frozen_at_[time] = std::move(means);
  }
  live_ = std::move(loaded.live_);
  results_ = std::move(loaded.results_);
  unfrozen_ = std::move(loaded.unfrozen_);
  serial_ = std::move(loaded.serial_);
  frozen_at_ = std::move(loaded.frozen_at_);
  times_asked_ = std::move(loaded.times_asked_);
  last_pause_ = std::move(loaded.last_pause_);
  stopped_ = std::move(loaded.stopped_);
  paused_ = std::move(loaded.paused_);
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
