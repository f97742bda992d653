#include "schedulers/median.h"

#include <fmt/format.h>

#include <cassert>
#include <cmath>
#include <limits>

#include "core/numpy.h"
#include "schedulers/util.h"

namespace tune {

MedianStoppingRule::MedianStoppingRule(MedianOptions options) : options_(std::move(options)) {
  assert(!options_.metric.empty());
  assert(options_.min_samples_required >= 1);
}

void MedianStoppingRule::OnTrialAdd(const std::string& trial_id) { trials_.push_back(trial_id); }

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
  std::vector<Sample>& history = results_[trial_id];
  history.push_back(Sample{time, value});
  if (time < options_.grace_period) return Decision::kContinue;

  // The other trials whose latest recorded result is at `time` or later.
  std::vector<double> means;
  for (const auto& [other, samples] : results_) {
    if (other == trial_id || samples.back().time < time) continue;
    means.push_back(RunningMean(other, time));
  }
  if (static_cast<std::int64_t>(means.size()) < options_.min_samples_required) {
    return OnInsufficientSamples(trial_id, time);
  }
  const double median = NumpyMedian(std::move(means));
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
  for (const std::string& trial_id : trials_) {
    const Trial* trial = control()->FindTrial(trial_id);
    if (trial != nullptr &&
        (trial->status == TrialStatus::kPending || trial->status == TrialStatus::kPaused)) {
      return true;
    }
  }
  return false;
}

void MedianStoppingRule::OnTrialComplete(const std::string& trial_id, const Result* last) {
  if (paused_.erase(trial_id) != 0) return;  // Ray's on_trial_remove, a no-op
  if (last == nullptr) return;
  const auto read = ReadTimeAndMetric(*last, options_.time_attr, options_.metric);
  if (read) results_[trial_id].push_back(Sample{read->first, read->second});
}

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
