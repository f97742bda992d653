#include "schedulers/median.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <limits>
#include <map>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "core/numpy.h"
#include "schedulers/util.h"
#include "tests/schedulers/fake_control.h"

namespace tune {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

Result At(std::int64_t iteration, double acc) {
  Result result;
  result.training_iteration = iteration;
  result.metrics["acc"] = acc;
  return result;
}

MedianOptions Options(double grace_period = 2, std::int64_t min_samples = 2) {
  MedianOptions options;
  options.metric = "acc";
  options.time_attr = "training_iteration";
  options.grace_period = grace_period;
  options.min_samples_required = min_samples;
  return options;
}

// Feeds `values` at iterations 1, 2, ... and returns the last decision.
Decision Feed(MedianStoppingRule& median, const std::string& id, const std::vector<double>& values) {
  Decision decision = Decision::kContinue;
  for (std::size_t i = 0; i < values.size(); ++i) {
    decision = median.OnResult(id, At(static_cast<std::int64_t>(i + 1), values[i]));
  }
  return decision;
}

TEST(MedianTest, StopsATrialWhoseBestIsBelowTheMedianOfRunningAverages) {
  MedianStoppingRule median(Options());
  Feed(median, "a", {0.6, 0.8, 1.0});  // averages from iteration 2 on: 0.8, 0.9
  Feed(median, "b", {0.4, 0.6, 0.8});  // 0.6, 0.7
  // c's best by iteration 2 is 0.7; the median of (0.8, 0.6) is 0.7: a tie continues.
  EXPECT_EQ(median.OnResult("c", At(1, 0.1)), Decision::kContinue);
  EXPECT_EQ(median.OnResult("c", At(2, 0.7)), Decision::kContinue);
  // At iteration 3 the median of (0.9, 0.7) is 0.8 > 0.75.
  EXPECT_EQ(median.OnResult("c", At(3, 0.75)), Decision::kStop);
  EXPECT_EQ(median.num_stopped(), 1);
  EXPECT_EQ(median.Describe(), "Using MedianStoppingRule: num_stopped=1.");
  EXPECT_EQ(median.OnResult("c", At(4, 0.99)), Decision::kStop);  // a late result
}

TEST(MedianTest, NothingStopsWithinTheGracePeriod) {
  MedianStoppingRule median(Options(/*grace_period=*/3));
  Feed(median, "a", {1, 1, 1});
  Feed(median, "b", {1, 1, 1});
  EXPECT_EQ(Feed(median, "c", {0, 0}), Decision::kContinue);
  EXPECT_EQ(median.OnResult("c", At(3, 0)), Decision::kStop);
}

TEST(MedianTest, TooFewSamplesContinueOrYieldToAWaitingTrial) {
  MedianOptions options = Options(/*grace_period=*/1, /*min_samples=*/2);
  options.min_time_slice = 2;
  MedianStoppingRule median(options);
  FakeControl control;
  median.SetControl(&control);
  for (const char* id : {"a", "b", "c"}) {
    control.Add(id, TrialStatus::kRunning);
    median.OnTrialAdd(id);
  }
  Feed(median, "a", {1, 1, 1});
  // Only one other trial got as far: b continues while nobody waits...
  EXPECT_EQ(median.OnResult("b", At(1, 0.0)), Decision::kContinue);
  // ... and yields when one does, then not again within min_time_slice.
  control.SetStatus("c", TrialStatus::kPending);
  EXPECT_EQ(median.OnResult("b", At(2, 0.0)), Decision::kPause);
  EXPECT_EQ(median.OnResult("b", At(3, 0.0)), Decision::kContinue);
  EXPECT_EQ(median.OnResult("b", At(4, 0.0)), Decision::kContinue);
  EXPECT_EQ(median.OnResult("b", At(5, 0.0)), Decision::kPause);
}

TEST(MedianTest, WithoutHardStopAStoppedTrialPausesThenRunsFifo) {
  MedianOptions options = Options(/*grace_period=*/1, /*min_samples=*/1);
  options.hard_stop = false;
  MedianStoppingRule median(options);
  FakeControl control;
  median.SetControl(&control);
  control.Add("a", TrialStatus::kTerminated);
  control.Add("b", TrialStatus::kRunning);
  Feed(median, "a", {1, 1});
  EXPECT_EQ(median.OnResult("b", At(1, 0.0)), Decision::kPause);
  control.SetStatus("b", TrialStatus::kPaused);
  EXPECT_EQ(median.ChooseTrialToRun(control.Waiting()), std::optional<std::string>("b"));
  EXPECT_EQ(median.OnResult("b", At(2, 0.0)), Decision::kContinue);
  EXPECT_EQ(median.num_stopped(), 1);
}

TEST(MedianTest, ACompletedTrialsLastResultCountsTwice) {
  MedianStoppingRule median(Options(/*grace_period=*/1, /*min_samples=*/1));
  Feed(median, "a", {0.0, 1.0});  // average over iterations 1-2: 0.5
  EXPECT_EQ(median.OnResult("b", At(1, 0.1)), Decision::kContinue);  // a's 0.0 at 1
  EXPECT_EQ(median.OnResult("b", At(2, 0.6)), Decision::kContinue);  // 0.6 >= 0.5
  const Result last = At(2, 1.0);
  median.OnTrialComplete("a", &last);  // a's results: 0.0, 1.0, 1.0
  MedianStoppingRule fresh(Options(1, 1));
  Feed(fresh, "a", {0.0, 1.0});
  fresh.OnTrialComplete("a", &last);
  fresh.OnResult("b", At(1, 0.1));
  EXPECT_EQ(fresh.OnResult("b", At(2, 0.6)), Decision::kStop);  // 0.6 < 0.667
}

TEST(MedianTest, APausedTrialThatIsRemovedRecordsNothing) {
  // b (results 0.0, 0.5) is paused by the rule at iteration 2 and later completed by the tuner.
  // Not run again since, it is being removed (Ray's on_trial_remove): its average stays 0.25.
  // Chosen to run again first, it completes: its 0.5 counts twice, average 0.333.
  MedianOptions options = Options(/*grace_period=*/1, /*min_samples=*/1);
  options.hard_stop = false;
  const Result last = At(2, 0.5);
  Trial b;
  b.id = "b";
  b.status = TrialStatus::kPaused;
  for (bool chosen_again : {false, true}) {
    MedianStoppingRule median(options);
    median.OnResult("b", At(1, 0.0));
    Feed(median, "a", {1.0, 1.0});
    EXPECT_EQ(median.OnResult("b", At(2, 0.5)), Decision::kPause);  // 0.5 < a's 1.0
    if (chosen_again) {
      EXPECT_EQ(median.ChooseTrialToRun({&b}), std::optional<std::string>("b"));
    }
    median.OnTrialComplete("b", &last);
    // c's best 0.65 against the median of a's 1.0 and b's average: 0.625 or 0.667.
    EXPECT_EQ(median.OnResult("c", At(2, 0.65)),
              chosen_again ? Decision::kPause : Decision::kContinue);  // not hard_stop
  }
}

TEST(MedianTest, NanMedianStopsAndResultsWithoutTheKeysAreSkipped) {
  MedianStoppingRule median(Options(/*grace_period=*/1, /*min_samples=*/1));
  Feed(median, "a", {kNaN});
  EXPECT_EQ(median.OnResult("b", At(1, 5.0)), Decision::kStop);  // Ray: max(nan, 5) is nan
  Result no_metric;
  no_metric.training_iteration = 2;
  EXPECT_EQ(median.OnResult("c", no_metric), Decision::kContinue);
  MedianOptions by_epoch = Options(1, 1);
  by_epoch.time_attr = "epoch";
  MedianStoppingRule epochs(by_epoch);
  EXPECT_EQ(epochs.OnResult("a", At(1, 1.0)), Decision::kContinue);  // no "epoch" key
}

TEST(MedianTest, NumpyMeanAndMedianMatchNumpy) {
  // numpy sums pairwise: np.mean([0.1] * 10) is 0.1, a running sum gives 0.09999999999999999.
  EXPECT_EQ(NumpyMean(std::vector<double>(10, 0.1)), 0.1);
  EXPECT_TRUE(std::isnan(NumpyMean({})));
  EXPECT_EQ(NumpyMedian({0.3, 0.1, 0.2, 0.7}), 0.25);
  EXPECT_TRUE(std::isnan(NumpyMedian({1.0, kNaN, 2.0})));
}

TEST(MedianOptionsTest, DefaultsAliasAndErrorsNamePaths) {
  auto scheduler = MakeScheduler(Json("median_stopping_rule"), "loss", Mode::kMin);
  const auto* median = dynamic_cast<const MedianStoppingRule*>(scheduler.get());
  ASSERT_NE(median, nullptr);
  EXPECT_EQ(median->options().time_attr, "time_total_s");
  EXPECT_EQ(median->options().metric, "loss");
  EXPECT_EQ(median->options().mode, Mode::kMin);
  EXPECT_EQ(median->options().grace_period, 60);
  EXPECT_EQ(median->options().min_samples_required, 3);
  EXPECT_EQ(median->options().min_time_slice, 0);
  EXPECT_TRUE(median->options().hard_stop);

  auto error = [](const Json& spec) -> std::string {
    try {
      MakeScheduler(spec, "acc", Mode::kMax);
    } catch (const SpecError& e) {
      return e.what();
    }
    return "";
  };
  EXPECT_EQ(error(Json{{"type", "median"}, {"min_samples_required", 0}}),
            "scheduler.min_samples_required: must be >= 1, got 0");
  EXPECT_EQ(error(Json{{"type", "median"}, {"min_samples_required", 2.5}}),
            "scheduler.min_samples_required: expected an integer, got 2.5");
  EXPECT_EQ(error(Json{{"type", "median"}, {"min_time_slice", -1}}),
            "scheduler.min_time_slice: must be >= 0, got -1");
  EXPECT_EQ(error(Json{{"type", "median"}, {"hard_stop", "no"}}),
            "scheduler.hard_stop: expected true or false, got \"no\"");
  EXPECT_EQ(error(Json{{"type", "median"}, {"grace_perod", 1}}),
            "scheduler.grace_perod: unknown option (did you mean \"grace_period\"?)");
}

// The rule as it was computed before the ranked trees (every other trial's running mean, then
// numpy's median of them), for the random streams below. Same state, same decisions, no index.
class PlainMedian {
 public:
  explicit PlainMedian(MedianOptions options) : options_(std::move(options)) {}
  Decision OnResult(const std::string& id, const Result& result) {
    if (stopped_.count(id) != 0) return options_.hard_stop ? Decision::kStop : Decision::kContinue;
    const auto read = ReadTimeAndMetric(result, options_.time_attr, options_.metric);
    if (!read) return Decision::kContinue;
    const auto [time, value] = *read;
    paused_.erase(id);
    std::vector<std::pair<double, double>>& history = results_[id];
    history.push_back({time, value});
    if (time < options_.grace_period) return Decision::kContinue;
    std::vector<double> means;
    for (const auto& [other, samples] : results_) {
      if (other == id || samples.back().first < time) continue;
      std::vector<double> values;
      for (const auto& [t, v] : samples) {
        if (options_.grace_period <= t && t <= time) values.push_back(v);
      }
      means.push_back(NumpyMean(values));
    }
    if (static_cast<std::int64_t>(means.size()) < options_.min_samples_required) {
      return Decision::kContinue;  // no control: nothing waits
    }
    const double median = NumpyMedian(std::move(means));
    const bool maximize = options_.mode == Mode::kMax;
    double best = history.front().second;
    for (const auto& sample : history) {
      if (maximize ? sample.second > best : sample.second < best) best = sample.second;
    }
    const bool best_wins = maximize ? best > median : best < median;
    if ((best_wins ? best : median) == best) return Decision::kContinue;
    stopped_.insert(id);
    if (options_.hard_stop) return Decision::kStop;
    paused_.insert(id);
    return Decision::kPause;
  }
  void OnTrialComplete(const std::string& id, const Result* last) {
    if (paused_.erase(id) != 0 || last == nullptr) return;
    const auto read = ReadTimeAndMetric(*last, options_.time_attr, options_.metric);
    if (read) results_[id].push_back({read->first, read->second});
  }

 private:
  MedianOptions options_;
  std::map<std::string, std::vector<std::pair<double, double>>> results_;
  std::set<std::string> stopped_, paused_;
};

// Random experiments: trials start, report at rising (sometimes repeated) times values drawn
// from a few (ties) with NaN and infinities, complete (their last result counted again), fail,
// and some are added again; every decision of the ranked rule must be the plain one's.
TEST(MedianTest, RankedMediansDecideAsThePlainComputationOnRandomStreams) {
  const std::vector<double> values = {0.1, 0.2, 0.2, 0.3, 0.5, 0.5, 0.7, 0.9, -0.0, 0.0,
                                      kNaN, std::numeric_limits<double>::infinity(),
                                      -std::numeric_limits<double>::infinity()};
  std::size_t decisions = 0, stops = 0;
  for (std::uint32_t seed = 0; seed < 24; ++seed) {
    std::mt19937 random(seed);
    MedianOptions options = Options(/*grace_period=*/seed % 3, /*min_samples=*/1 + seed % 4);
    options.hard_stop = seed % 2 == 0;
    options.mode = seed % 4 < 2 ? Mode::kMax : Mode::kMin;
    const bool with_nan = seed % 3 != 0;
    MedianStoppingRule ranked(options);
    PlainMedian plain(options);
    struct Live {
      std::string id;
      std::int64_t iteration = 0;
      Result last;
    };
    std::vector<Live> live;
    std::vector<std::string> ended;
    int next = 0;
    for (int step = 0; step < 3000; ++step) {
      const int what = static_cast<int>(random() % 100);
      if (live.size() < 3 || what < 8) {
        Live trial{"t" + std::to_string(next++)};
        ranked.OnTrialAdd(trial.id);
        live.push_back(trial);
        continue;
      }
      const std::size_t pick = random() % live.size();
      Live& trial = live[pick];
      if (what < 14 && trial.iteration > 0) {
        // Ends: completed (its last result again) or failed; a few are added back later.
        const bool failed = what < 10;
        if (failed) {
          ranked.OnTrialError(trial.id);
        } else {
          ranked.OnTrialComplete(trial.id, &trial.last);
          plain.OnTrialComplete(trial.id, &trial.last);
        }
        ended.push_back(trial.id);
        live.erase(live.begin() + static_cast<std::ptrdiff_t>(pick));
        continue;
      }
      if (what < 16 && !ended.empty()) {
        // `tune resume --errored`: an ended trial runs again, its iterations going on.
        Live again{ended.back()};
        ended.pop_back();
        again.iteration = 12;
        ranked.OnTrialAdd(again.id);
        live.push_back(again);
        continue;
      }
      trial.iteration += random() % 5 == 0 ? 0 : 1;  // sometimes the same time again
      double value = values[random() % (with_nan ? values.size() : values.size() - 3)];
      trial.last = At(std::max<std::int64_t>(trial.iteration, 1), value);
      const Decision want = plain.OnResult(trial.id, trial.last);
      const Decision got = ranked.OnResult(trial.id, trial.last);
      ASSERT_EQ(got.kind, want.kind) << "seed " << seed << " step " << step << " trial " << trial.id;
      ++decisions;
      stops += want.kind != Decision::kContinue;
    }
  }
  EXPECT_GT(decisions, 50000u);
  EXPECT_GT(stops, 1000u);  // the streams do exercise stopping
}

}  // namespace
}  // namespace tune
