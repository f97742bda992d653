#include "stoppers/stopper.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/numpy.h"

namespace tune {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr std::nullopt_t kMissing = std::nullopt;

// One report of trial `trial`: metric "m" (absent for kMissing).
struct Step {
  std::string trial;
  std::optional<double> value;
};

struct SequenceCase {
  std::string name;
  std::string stop;  // the "stop" object
  std::vector<Step> steps;
  std::string ray_verdicts;  // '1' once the trial (experiment) is stopped, after each step
};

StopConfig Parse(const std::string& stop, const std::string& metric = "m", Mode mode = Mode::kMin) {
  return ParseStopOptions(Json::parse(stop), "stop", metric, mode);
}

// Builds results as tests/stoppers/ray_stoppers.py does: training_iteration counts the trial's
// results, time_total_s = 2.5 per result.
class ResultMaker {
 public:
  Result Next(const Step& step) {
    Result result;
    result.training_iteration = ++iterations_[step.trial];
    result.time_total_s = 2.5 * static_cast<double>(result.training_iteration);
    if (step.value) result.metrics["m"] = *step.value;
    return result;
  }

 private:
  std::map<std::string, std::int64_t> iterations_;
};

Result MetricResult(std::int64_t iteration, const std::string& metric, double value) {
  Result result;
  result.training_iteration = iteration;
  result.metrics[metric] = value;
  return result;
}

// ---------------------------------------------------------------------------------------------
// Ray parity: rows printed by tests/stoppers/ray_stoppers.py (Ray 2.58), pasted unchanged.
// clang-format off
const std::vector<SequenceCase> kTrialCases = {
    {"defaults_flat", R"({"plateau": {}})", {{"a", 1.0}, {"a", 0.5}, {"a", 0.3}, {"a", 0.301}, {"a", 0.302}, {"a", 0.3}, {"a", 0.2999}, {"a", 0.3}}, "00000111"},
    {"knife_edge_0_02", R"({"plateau": {}})", {{"a", 0.0}, {"a", 0.02}, {"a", 0.0}, {"a", 0.02}, {"a", 0.0}, {"a", 0.02}}, "000000"},
    {"knife_edge_0_12", R"({"plateau": {}})", {{"a", 0.1}, {"a", 0.12}, {"a", 0.1}, {"a", 0.12}, {"a", 0.1}, {"a", 0.12}}, "000111"},
    {"grace_longer_than_window", R"({"plateau": {"num_results": 2, "grace_period": 5, "std": 0.05}})", {{"a", 0.5}, {"a", 0.5}, {"a", 0.5}, {"a", 0.5}, {"a", 0.5}, {"a", 0.5}}, "000011"},
    {"window_longer_than_grace", R"({"plateau": {"num_results": 6, "grace_period": 2}})", {{"a", 0.5}, {"a", 0.5}, {"a", 0.5}, {"a", 0.5}, {"a", 0.5}, {"a", 0.5}, {"a", 0.5}}, "0000011"},
    {"threshold_min", R"({"plateau": {"metric_threshold": 0.5, "mode": "min", "std": 0.02}})", {{"a", 0.8}, {"a", 0.8}, {"a", 0.8}, {"a", 0.8}, {"a", 0.6}, {"a", 0.6}, {"a", 0.6}, {"a", 0.6}, {"a", 0.45}, {"a", 0.45}, {"a", 0.45}, {"a", 0.45}, {"a", 0.45}}, "0000000000011"},
    {"threshold_max", R"({"plateau": {"metric_threshold": 0.9, "mode": "max"}})", {{"a", 0.85}, {"a", 0.85}, {"a", 0.85}, {"a", 0.85}, {"a", 0.85}, {"a", 0.91}, {"a", 0.91}, {"a", 0.91}, {"a", 0.91}}, "000000001"},
    {"missing_in_window", R"({"plateau": {}})", {{"a", 0.3}, {"a", 0.3}, {"a", kMissing}, {"a", 0.3}, {"a", 0.3}, {"a", 0.3}, {"a", 0.3}, {"a", 0.3}}, "00000011"},
    {"nan_in_window", R"({"plateau": {}})", {{"a", 0.3}, {"a", 0.3}, {"a", kNaN}, {"a", 0.3}, {"a", 0.3}, {"a", 0.3}, {"a", 0.3}, {"a", 0.3}}, "00000011"},
    {"interleaved_trials", R"({"plateau": {"std": 0.005}})", {{"a", 0.9}, {"b", 0.5}, {"a", 0.7}, {"b", 0.5}, {"a", 0.5}, {"b", 0.501}, {"a", 0.4}, {"b", 0.5}, {"a", 0.35}, {"b", 0.49}, {"a", 0.33}, {"b", 0.5}, {"a", 0.33}, {"b", 0.5}, {"a", 0.331}, {"b", 0.5}, {"a", 0.33}, {"b", 0.5}, {"a", 0.33}, {"b", 0.5}}, "00000001010101011111"},
    {"num_results_1", R"({"plateau": {"num_results": 1, "grace_period": 0}})", {{"a", 0.7}, {"a", 0.6}}, "11"},
    {"dict_thresholds", R"({"training_iteration": 5, "m": 0.9})", {{"a", 0.5}, {"b", 0.1}, {"c", kMissing}, {"a", 0.7}, {"b", 0.2}, {"c", kMissing}, {"a", 0.95}, {"b", 0.3}, {"c", kMissing}, {"a", 0.96}, {"b", 0.4}, {"c", kMissing}, {"a", 0.97}, {"b", 0.5}, {"c", kMissing}, {"a", 0.98}, {"b", 0.6}, {"c", kMissing}}, "000000100100111111"},
    {"dict_time_total_s", R"({"time_total_s": 6})", {{"a", 0.1}, {"a", 0.2}, {"a", 0.3}, {"a", 0.4}}, "0011"},
    {"dict_equal_and_nan", R"({"m": 0.5})", {{"a", 0.4}, {"b", kNaN}, {"a", 0.5}, {"b", kNaN}}, "0010"},
    {"dict_and_plateau", R"({"training_iteration": 7, "plateau": {"std": 0.001}})", {{"a", 0.5}, {"b", 0.1}, {"a", 0.5}, {"b", 0.2}, {"a", 0.5}, {"b", 0.3}, {"a", 0.5}, {"b", 0.4}, {"a", 0.5}, {"b", 0.5}, {"a", 0.5}, {"b", 0.6}, {"a", 0.5}, {"b", 0.7}, {"a", 0.5}, {"b", 0.8}}, "0000001010101111"},
};

const std::vector<SequenceCase> kExperimentCases = {
    {"top3_min", R"({"experiment_plateau": {"top": 3, "std": 0.001}})", {{"a", 0.5}, {"b", 0.3}, {"c", 0.31}, {"a", 0.305}, {"b", 0.9}, {"c", 0.3005}, {"a", 0.3001}, {"b", 0.3002}}, "00000011"},
    {"top3_patience2", R"({"experiment_plateau": {"top": 3, "std": 0.001, "patience": 2}})", {{"a", 0.5}, {"b", 0.3}, {"c", 0.3001}, {"a", 0.3002}, {"b", 0.9}, {"c", 0.8}, {"a", 0.7}}, "0000111"},
    {"patience1_same_as_0", R"({"experiment_plateau": {"top": 2, "std": 0.01, "patience": 1}})", {{"a", 0.5}, {"b", 0.3}, {"a", 0.305}}, "001"},
    {"plateau_broken_resets", R"({"experiment_plateau": {"top": 3, "std": 0.01, "patience": 3}})", {{"a", 0.5}, {"a", 0.5}, {"a", 0.5}, {"b", 0.9}, {"b", 0.2}, {"b", 0.2}, {"c", 0.2}, {"c", 0.9}, {"c", 0.8}, {"a", 0.7}}, "0000000011"},
    {"mode_max", R"({"experiment_plateau": {"top": 4, "std": 0.01, "mode": "max"}})", {{"a", 0.1}, {"b", 0.8}, {"c", 0.81}, {"d", 0.2}, {"a", 0.79}, {"b", 0.3}, {"c", 0.8}}, "0000001"},
    {"knife_edge_top2", R"({"experiment_plateau": {"top": 2, "std": 0.001}})", {{"a", 0.3}, {"b", 0.302}, {"c", 0.5}, {"d", 0.1}, {"e", 0.102}}, "00001"},
    {"top10_defaults", R"({"experiment_plateau": {}})", {{"t0", 0.25}, {"t1", 0.2521}, {"t2", 0.2509}, {"t3", 0.253}, {"t4", 0.2518}, {"t5", 0.2506}, {"t6", 0.2527}, {"t7", 0.2515}, {"t8", 0.2503}, {"t9", 0.2524}, {"t10", 0.2512}, {"t11", 0.25}, {"t12", 0.2521}, {"t13", 0.2509}}, "00000000011111"},
};

struct TimeoutCase {
  std::string name;
  double budget_s;
  std::vector<double> elapsed_s;
  std::string ray_verdicts;
};
const std::vector<TimeoutCase> kTimeoutCases = {
    {"budget_10", 10, {0.0, 5.0, 9.999, 10.0, 11.0}, "00011"},
    {"budget_0_5", 0.5, {0.0, 0.25, 0.5, 0.75}, "0011"},
};

// numpy.std of f(0..n-1), f(i) = 1 / (i + 3) + 0.001 * ((7 i) % 11).
const std::vector<std::pair<int, double>> kNumpyStd = {
    {1, 0.0},
    {3, 0.05346811672551071},
    {7, 0.0714558777305665},
    {8, 0.07318717415927296},
    {9, 0.07480955951014023},
    {16, 0.07525487507253323},
    {17, 0.0751173763271569},
    {128, 0.045505827244350414},
    {129, 0.04537486827475384},
    {300, 0.03249032100681387},
};
// clang-format on

TEST(StoppersRayParity, TrialStoppersMatchRay) {
  for (const SequenceCase& test : kTrialCases) {
    SCOPED_TRACE(test.name);
    Stoppers stoppers(Parse(test.stop));
    ResultMaker maker;
    std::map<std::string, bool> stopped;
    std::string verdicts;
    for (const Step& step : test.steps) {
      // Ray's controller feeds a stopped trial nothing more; ours answers it with its reason.
      const bool was_stopped = stopped[step.trial];
      const std::optional<std::string> reason =
          stoppers.OnTrialResult(step.trial, maker.Next(step));
      EXPECT_TRUE(!was_stopped || reason) << "a stopped trial stays stopped";
      stopped[step.trial] = reason.has_value();
      verdicts += reason ? '1' : '0';
    }
    EXPECT_EQ(verdicts, test.ray_verdicts);
    EXPECT_FALSE(stoppers.ExperimentStop(1e9)) << "trial stoppers never end the experiment";
  }
}

TEST(StoppersRayParity, ExperimentPlateauMatchesRay) {
  for (const SequenceCase& test : kExperimentCases) {
    SCOPED_TRACE(test.name);
    Stoppers stoppers(Parse(test.stop));
    ResultMaker maker;
    std::string verdicts;
    for (const Step& step : test.steps) {
      const std::optional<std::string> trial_reason =
          stoppers.OnTrialResult(step.trial, maker.Next(step));
      const std::optional<std::string> reason = stoppers.ExperimentStop(0);
      // Like Ray's __call__, which returns stop_all(): the trial stops with the experiment.
      EXPECT_EQ(trial_reason, reason);
      verdicts += reason ? '1' : '0';
    }
    EXPECT_EQ(verdicts, test.ray_verdicts);
  }
}

TEST(StoppersRayParity, TimeBudgetMatchesRay) {
  for (const TimeoutCase& test : kTimeoutCases) {
    SCOPED_TRACE(test.name);
    StopConfig config;
    config.time_budget_s = test.budget_s;
    Stoppers stoppers(config);
    std::string verdicts;
    for (double elapsed : test.elapsed_s) verdicts += stoppers.ExperimentStop(elapsed) ? '1' : '0';
    EXPECT_EQ(verdicts, test.ray_verdicts);
  }
}

TEST(NumpyStdTest, SameBitsAsNumpy) {
  for (const auto& [n, expected] : kNumpyStd) {
    std::vector<double> values;
    for (int i = 0; i < n; ++i) values.push_back(1.0 / (i + 3) + 0.001 * ((i * 7) % 11));
    EXPECT_EQ(NumpyStd(values), expected) << "n = " << n;
  }
  EXPECT_TRUE(std::isnan(NumpyStd({})));
  EXPECT_TRUE(std::isnan(NumpyStd({0.1, kNaN, 0.2})));
}

// ---------------------------------------------------------------------------------------------
// Behaviour and reasons.

TEST(StoppersTest, EmptyConfigNeverStops) {
  Stoppers stoppers(Parse("null"));
  EXPECT_TRUE(stoppers.config().empty());
  EXPECT_FALSE(stoppers.OnTrialResult("a", MetricResult(1000, "m", 0)));
  EXPECT_FALSE(stoppers.ExperimentStop(1e12));
  EXPECT_TRUE(stoppers.MayCreateTrial(1'000'000));
  EXPECT_EQ(stoppers.Describe(0), "");
}

TEST(StoppersTest, ThresholdReasonsAndMinForm) {
  Stoppers stoppers(Parse(R"({"training_iteration": 10, "val_loss": {"min": 0.05},
                              "val_acc": {"max": 0.9}})"));
  EXPECT_FALSE(stoppers.OnTrialResult("a", MetricResult(9, "val_loss", 0.06)));
  EXPECT_EQ(stoppers.OnTrialResult("a", MetricResult(10, "val_loss", 0.06)),
            "training_iteration >= 10");
  EXPECT_EQ(stoppers.OnTrialResult("b", MetricResult(1, "val_loss", 0.05)), "val_loss <= 0.05");
  EXPECT_EQ(stoppers.OnTrialResult("c", MetricResult(1, "val_acc", 0.93)), "val_acc >= 0.9");
  // A missing or NaN value never reaches a threshold, in either direction.
  EXPECT_FALSE(stoppers.OnTrialResult("d", MetricResult(1, "other", 0)));
  EXPECT_FALSE(stoppers.OnTrialResult("d", MetricResult(2, "val_loss", kNaN)));
  Result text = MetricResult(3, "val_acc", 0);
  text.metrics["val_acc"] = "high";
  EXPECT_FALSE(stoppers.OnTrialResult("d", text));
}

TEST(StoppersTest, StoppedTrialKeepsItsReasonUntilComplete) {
  Stoppers stoppers(Parse(R"({"m": 1})"));
  EXPECT_EQ(stoppers.OnTrialResult("a", MetricResult(1, "m", 2)), "m >= 1");
  EXPECT_EQ(stoppers.OnTrialResult("a", MetricResult(2, "m", 0)), "m >= 1");
  EXPECT_FALSE(stoppers.OnTrialResult("b", MetricResult(1, "m", 0)));
  stoppers.OnTrialComplete("a", nullptr);
  EXPECT_FALSE(stoppers.OnTrialResult("a", MetricResult(3, "m", 0)));
}

TEST(StoppersTest, PlateauReasonAndExperimentMetricDefault) {
  Stoppers stoppers(Parse(R"({"plateau": {"num_results": 3, "grace_period": 3}})", "val_loss"));
  EXPECT_FALSE(stoppers.OnTrialResult("a", MetricResult(1, "val_loss", 0.5)));
  EXPECT_FALSE(stoppers.OnTrialResult("a", MetricResult(2, "val_loss", 0.5)));
  const std::optional<std::string> reason =
      stoppers.OnTrialResult("a", MetricResult(3, "val_loss", 0.501));
  ASSERT_TRUE(reason);
  EXPECT_EQ(*reason, "plateau: val_loss std 0.0004714 < 0.01 over 3 results");
}

TEST(StoppersTest, PlateauForgetsACompletedTrial) {
  Stoppers stoppers(Parse(R"({"plateau": {"num_results": 2, "grace_period": 2}})"));
  EXPECT_FALSE(stoppers.OnTrialResult("a", MetricResult(1, "m", 0.5)));
  stoppers.OnTrialComplete("a", nullptr);
  // A fresh window: one result is not enough.
  EXPECT_FALSE(stoppers.OnTrialResult("a", MetricResult(2, "m", 0.5)));
  EXPECT_TRUE(stoppers.OnTrialResult("a", MetricResult(3, "m", 0.5)));
}

TEST(StoppersTest, GoalEndsTheExperiment) {
  Stoppers stoppers(Parse(R"({"goal": {"value": 0.9}})", "acc", Mode::kMax));
  EXPECT_FALSE(stoppers.OnTrialResult("a", MetricResult(1, "acc", 0.85)));
  EXPECT_FALSE(stoppers.OnTrialResult("b", MetricResult(1, "acc", kNaN)));
  EXPECT_FALSE(stoppers.ExperimentStop(0));
  EXPECT_TRUE(stoppers.MayCreateTrial(5));
  const std::string reason = "goal: acc 0.9 >= 0.9 (b)";
  EXPECT_EQ(stoppers.OnTrialResult("b", MetricResult(2, "acc", 0.9)), reason);
  EXPECT_EQ(stoppers.ExperimentStop(0), reason);
  EXPECT_FALSE(stoppers.MayCreateTrial(5));
  // Every later result is answered with the experiment's reason, whatever it holds.
  EXPECT_EQ(stoppers.OnTrialResult("a", MetricResult(2, "acc", 0.1)), reason);
  EXPECT_EQ(stoppers.Describe(0), "Stop: goal acc>=0.9 | stopped: " + reason);
}

TEST(StoppersTest, GoalInModeMin) {
  Stoppers stoppers(Parse(R"({"goal": {"metric": "loss", "value": 0.1, "mode": "min"}})", "acc",
                          Mode::kMax));
  EXPECT_FALSE(stoppers.OnTrialResult("a", MetricResult(1, "loss", 0.11)));
  EXPECT_FALSE(stoppers.OnTrialResult("a", MetricResult(2, "acc", 0.05)));
  EXPECT_EQ(stoppers.OnTrialResult("a", MetricResult(3, "loss", 0.05)),
            "goal: loss 0.05 <= 0.1 (a)");
}

TEST(StoppersTest, NoImprovementCountsCompletedTrials) {
  Stoppers stoppers(Parse(R"({"no_improvement": {"trials": 3}})", "loss", Mode::kMin));
  const Result first = MetricResult(5, "loss", 0.5);
  stoppers.OnTrialComplete("t0", &first);  // the first value is the best so far
  const Result better = MetricResult(5, "loss", 0.4);
  const Result worse = MetricResult(5, "loss", 0.45);
  const Result equal = MetricResult(5, "loss", 0.4);
  const Result no_metric = MetricResult(5, "acc", 0.4);
  stoppers.OnTrialComplete("t1", &worse);
  stoppers.OnTrialComplete("t2", &better);  // resets the count
  stoppers.OnTrialComplete("t3", &worse);
  stoppers.OnTrialComplete("t4", nullptr);      // failed before reporting: not counted
  stoppers.OnTrialComplete("t5", &no_metric);  // nor without the metric
  stoppers.OnTrialComplete("t6", &equal);      // a tie is no improvement
  EXPECT_FALSE(stoppers.ExperimentStop(0));
  EXPECT_TRUE(stoppers.MayCreateTrial(7));
  EXPECT_EQ(stoppers.Describe(0), "Stop: no improvement in 3 trials (2 so far)");
  stoppers.OnTrialComplete("t7", &worse);
  EXPECT_EQ(stoppers.ExperimentStop(0),
            "no_improvement: best loss 0.4 (t2) not improved by the 3 trials since");
  EXPECT_FALSE(stoppers.MayCreateTrial(8));
  EXPECT_TRUE(stoppers.OnTrialResult("t8", MetricResult(1, "loss", 0.01)));
}

TEST(StoppersTest, TimeBudgetAndMaxTotalTrials) {
  Stoppers stoppers(Parse(R"({"time_budget_s": 3600, "max_total_trials": 100})"));
  EXPECT_FALSE(stoppers.ExperimentStop(3599.9));
  EXPECT_EQ(stoppers.ExperimentStop(3600.2), "time budget 3600 s reached (3600 s elapsed)");
  EXPECT_FALSE(stoppers.ExperimentStop(kNaN));
  EXPECT_TRUE(stoppers.MayCreateTrial(0));
  EXPECT_TRUE(stoppers.MayCreateTrial(99));
  EXPECT_FALSE(stoppers.MayCreateTrial(100));
  // The budget ends the experiment, not a trial.
  EXPECT_FALSE(stoppers.OnTrialResult("a", MetricResult(1, "m", 0)));
}

TEST(StoppersTest, DescribeListsEveryStopper) {
  Stoppers stoppers(Parse(R"({"training_iteration": 10, "val_loss": {"min": 0.05},
      "plateau": {"std": 0.02}, "time_budget_s": 3600, "max_total_trials": 100,
      "goal": {"value": 0.01}, "no_improvement": {"trials": 20},
      "experiment_plateau": {"top": 5}})"));
  EXPECT_EQ(stoppers.Describe(2988),
            "Stop: training_iteration>=10 | val_loss<=0.05 | plateau m std<0.02 over 4 | "
            "time budget 3600 s (612 s left) | max 100 trials | goal m<=0.01 | "
            "no improvement in 20 trials (0 so far) | experiment plateau top 5 m std<=0.001");
  EXPECT_NE(stoppers.Describe(5000).find("(0 s left)"), std::string::npos);
}

// ---------------------------------------------------------------------------------------------
// Options.

TEST(StopOptionsTest, DefaultsFollowRayAndTheExperiment) {
  const StopConfig config = Parse(
      R"({"plateau": {}, "experiment_plateau": {}, "goal": {"value": 1},
          "no_improvement": {"trials": 5}})",
      "val_acc", Mode::kMax);
  ASSERT_TRUE(config.plateau && config.experiment_plateau && config.goal &&
              config.no_improvement);
  EXPECT_EQ(config.plateau->metric, "val_acc");
  EXPECT_EQ(config.plateau->std, 0.01);
  EXPECT_EQ(config.plateau->num_results, 4);
  EXPECT_EQ(config.plateau->grace_period, 4);
  EXPECT_FALSE(config.plateau->metric_threshold);
  EXPECT_EQ(config.plateau->mode, Mode::kMax);
  EXPECT_EQ(config.experiment_plateau->metric, "val_acc");
  EXPECT_EQ(config.experiment_plateau->std, 0.001);
  EXPECT_EQ(config.experiment_plateau->top, 10);
  EXPECT_EQ(config.experiment_plateau->patience, 0);
  EXPECT_EQ(config.experiment_plateau->mode, Mode::kMax);
  EXPECT_EQ(config.goal->metric, "val_acc");
  EXPECT_EQ(config.goal->mode, Mode::kMax);
  EXPECT_EQ(config.no_improvement->trials, 5);
  EXPECT_FALSE(config.time_budget_s);
  EXPECT_FALSE(config.max_total_trials);
  EXPECT_TRUE(config.thresholds.empty());
}

TEST(StopOptionsTest, ThresholdsAndNullsParse) {
  const StopConfig config = Parse(R"({"time_total_s": 600, "loss": {"min": 0.1},
                                      "acc": {"max": 0.95}, "plateau": null})");
  ASSERT_EQ(config.thresholds.size(), 3u);  // key order
  EXPECT_EQ(config.thresholds[0].attr, "acc");
  EXPECT_EQ(config.thresholds[0].direction, Mode::kMax);
  EXPECT_EQ(config.thresholds[1].attr, "loss");
  EXPECT_EQ(config.thresholds[1].value, 0.1);
  EXPECT_EQ(config.thresholds[1].direction, Mode::kMin);
  EXPECT_EQ(config.thresholds[2].attr, "time_total_s");
  EXPECT_FALSE(config.plateau);
  EXPECT_TRUE(Parse("{}").empty());
}

TEST(StopOptionsTest, ErrorsNameTheJsonPath) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"([1])", "stop: expected an object, got [1]"},
      {R"({"plateau": {"std": -1}})", "stop.plateau.std: must be > 0, got -1"},
      {R"({"plateau": {"sdt": 0.1}})",
       "stop.plateau.sdt: unknown option (did you mean \"std\"?)"},
      {R"({"plateau": {"num_results": 0}})", "stop.plateau.num_results: must be >= 1, got 0"},
      {R"({"plateau": {"grace_period": 1.5}})",
       "stop.plateau.grace_period: expected an integer, got 1.5"},
      {R"({"plateau": {"mode": "maximum"}})",
       "stop.plateau.mode: mode must be \"min\" or \"max\", got \"maximum\""},
      {R"({"plateau": 3})", "stop.plateau: expected an object, got 3"},
      {R"({"goal": {"metric": "acc"}})", "stop.goal.value: required (the value to reach)"},
      {R"({"goal": {"valeu": 1}})", "stop.goal.valeu: unknown option (did you mean \"value\"?)"},
      {R"({"goal": {"value": "high"}})", "stop.goal.value: expected a number, got \"high\""},
      {R"({"no_improvement": {}})", "stop.no_improvement.trials: required (an integer >= 1)"},
      {R"({"no_improvement": {"trials": 0}})", "stop.no_improvement.trials: must be >= 1, got 0"},
      {R"({"experiment_plateau": {"top": 1}})", "stop.experiment_plateau.top: must be >= 2, got 1"},
      {R"({"experiment_plateau": {"patience": -1}})",
       "stop.experiment_plateau.patience: must be >= 0, got -1"},
      {R"({"time_budget_s": 0})", "stop.time_budget_s: must be > 0, got 0"},
      {R"({"time_budget_s": "1h"})", "stop.time_budget_s: expected a number, got \"1h\""},
      {R"({"max_total_trials": 2.5})", "stop.max_total_trials: expected an integer, got 2.5"},
      {R"({"val_loss": "low"})",
       "stop.val_loss: expected a number (stop when val_loss >= it), {\"max\": v} or {\"min\": "
       "v}, got \"low\""},
      {R"({"val_loss": {"min": 0.1, "max": 0.9}})",
       "stop.val_loss: needs exactly one of \"max\" (stop when val_loss >= v) or \"min\" (stop "
       "when val_loss <= v), got {\"max\":0.9,\"min\":0.1}"},
      {R"({"val_loss": {"mn": 0.1}})", "stop.val_loss.mn: unknown option (did you mean \"min\"?)"},
      {R"({"val_loss": {"min": "x"}})", "stop.val_loss.min: expected a number, got \"x\""},
      {R"({"plateu": {"std": 0.1}})", "stop.plateu: unknown stopper (did you mean \"plateau\"?)"},
  };
  for (const auto& [json, message] : cases) {
    SCOPED_TRACE(json);
    try {
      Parse(json);
      ADD_FAILURE() << "no error";
    } catch (const SpecError& error) {
      EXPECT_EQ(std::string(error.what()), message);
    }
  }
}

TEST(StopOptionsTest, NestedMetricNeedsOneWhenTheExperimentHasNone) {
  try {
    Parse(R"({"plateau": {}})", "");
    ADD_FAILURE() << "no error";
  } catch (const SpecError& error) {
    EXPECT_EQ(std::string(error.what()),
              "stop.plateau.metric: required (the experiment has no metric)");
  }
}

// ---------------------------------------------------------------------------------------------
// Replay: the tuner rebuilds the stoppers on `tune resume` by replaying its journal.

struct Call {
  enum Kind { kResult, kComplete } kind;
  std::string trial;
  Result result;
};

std::vector<std::string> Replay(Stoppers& stoppers, const std::vector<Call>& calls) {
  std::vector<std::string> out;
  for (const Call& call : calls) {
    if (call.kind == Call::kResult) {
      out.push_back(stoppers.OnTrialResult(call.trial, call.result).value_or("-"));
    } else {
      stoppers.OnTrialComplete(call.trial, &call.result);
    }
    out.push_back(stoppers.ExperimentStop(10).value_or("-") + " / " + stoppers.Describe(10));
  }
  return out;
}

// Every kind of stopper at once.
StopConfig AllStoppers() {
  return Parse(R"({"training_iteration": 8, "plateau": {"std": 0.005},
      "no_improvement": {"trials": 6}, "experiment_plateau": {"top": 6, "std": 0.0001,
      "patience": 3}, "time_budget_s": 100, "max_total_trials": 50})");
}

// 400 results of 8 trials whose metric settles, each trial completing now and then.
std::vector<Call> RandomCalls() {
  std::vector<Call> calls;
  std::uint64_t state = 12345;  // a fixed LCG: the same pseudo-random sequence everywhere
  auto next = [&state] {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    return static_cast<double>(state >> 11) * 0x1.0p-53;
  };
  std::map<std::string, std::int64_t> iterations;
  for (int step = 0; step < 400; ++step) {
    const std::string trial = "t" + std::to_string(static_cast<int>(next() * 8));
    Result result = MetricResult(++iterations[trial], "m", 0.3 + 0.2 * next() / iterations[trial]);
    const bool complete = next() < 0.08;
    calls.push_back({Call::kResult, trial, result});
    if (complete) {
      calls.push_back({Call::kComplete, trial, result});
      iterations.erase(trial);
    }
  }
  return calls;
}

TEST(StoppersReplayTest, SameCallsGiveTheSameState) {
  const StopConfig config = AllStoppers();
  const std::vector<Call> calls = RandomCalls();
  Stoppers original(config);
  Stoppers replayed(config);
  const std::vector<std::string> first = Replay(original, calls);
  EXPECT_EQ(Replay(replayed, calls), first);
  // The sequence exercises trial stops and ends the experiment.
  auto count = [&first](const std::string& prefix) {
    return std::count_if(first.begin(), first.end(),
                         [&prefix](const std::string& line) { return line.rfind(prefix, 0) == 0; });
  };
  EXPECT_GT(count("plateau: "), 0);
  EXPECT_GT(count("training_iteration >= 8"), 0);
  EXPECT_NE(first.back().find("stopped: "), std::string::npos);
  // And both continue identically from there.
  const std::vector<Call> more = {{Call::kResult, "t1", MetricResult(1, "m", 0.3001)},
                                  {Call::kResult, "t9", MetricResult(1, "m", 0.3002)},
                                  {Call::kComplete, "t9", MetricResult(1, "m", 0.3002)}};
  EXPECT_EQ(Replay(replayed, more), Replay(original, more));
}

// Resume snapshots: Stoppers loaded from the text of another's SaveState() at any point go on
// exactly as the original, plateau windows and the experiment plateau's top values included.
TEST(StoppersStateTest, LoadedAtAnyPointGoesOnAsTheOriginal) {
  const std::vector<Call> calls = RandomCalls();
  bool windows_mattered = false;
  bool top_mattered = false;
  // Every stopper (no_improvement ends that experiment), and the plateaus alone (the experiment
  // plateau ends it).
  for (const StopConfig& config :
       {AllStoppers(), Parse(R"({"plateau": {"std": 0.005}, "experiment_plateau": {"top": 4,
                                 "std": 0.002, "patience": 2}})")}) {
    // The call that ends the experiment: a cut just before it shows what the state kept.
    std::size_t stop_at = 0;
    Stoppers probe(config);
    while (stop_at < calls.size() && !probe.ExperimentStop(10)) Replay(probe, {calls[stop_at++]});
    ASSERT_LT(stop_at, calls.size());
    ASSERT_GE(stop_at, 3u);
    for (std::size_t cut : {std::size_t{0}, std::size_t{9}, std::size_t{40}, stop_at - 3,
                            stop_at - 1, std::size_t{200}, calls.size()}) {
      SCOPED_TRACE("cut at call " + std::to_string(cut) + " of " + std::to_string(calls.size()));
      const std::vector<Call> head(calls.begin(), calls.begin() + static_cast<std::ptrdiff_t>(cut));
      const std::vector<Call> rest(calls.begin() + static_cast<std::ptrdiff_t>(cut), calls.end());
      Stoppers original(config);
      Replay(original, head);
      const std::optional<Json> saved = original.SaveState();
      ASSERT_TRUE(saved.has_value());
      const Json state = Json::parse(saved->dump());
      Stoppers loaded(config);
      loaded.LoadState(state);
      EXPECT_EQ(loaded.SaveState()->dump(), saved->dump());
      const std::vector<std::string> expected = Replay(original, rest);
      EXPECT_EQ(Replay(loaded, rest), expected);
      EXPECT_EQ(loaded.SaveState()->dump(), original.SaveState()->dump());
      // Each stopper's part is needed: without it the continuation differs (at some cut).
      for (const char* part : {"plateau", "experiment_plateau"}) {
        Json without = state;
        without[part] = Stoppers(config).SaveState()->at(part);
        Stoppers forgetful(config);
        forgetful.LoadState(without);
        if (Replay(forgetful, rest) == expected) continue;
        (std::string(part) == "plateau" ? windows_mattered : top_mattered) = true;
      }
    }
  }
  EXPECT_TRUE(windows_mattered);
  EXPECT_TRUE(top_mattered);
}

TEST(StoppersStateTest, AStateThatDoesNotFitThrows) {
  const StopConfig config = AllStoppers();
  Stoppers original(config);
  const std::vector<Call> calls = RandomCalls();
  Replay(original, std::vector<Call>(calls.begin(), calls.begin() + 60));
  const Json state = *original.SaveState();
  ASSERT_FALSE(state.at("plateau").empty());
  ASSERT_FALSE(state.at("experiment_plateau").at("top_values").empty());
  auto error_of = [&config](const Json& bad) -> std::string {
    Stoppers stoppers(config);
    try {
      stoppers.LoadState(bad);
    } catch (const std::runtime_error& error) {
      return error.what();
    }
    return "no error";
  };
  Json missing = state;
  missing.erase("plateau");  // e.g. saved by stoppers of another config
  EXPECT_NE(error_of(missing).find("snapshot: the stoppers' state"), std::string::npos);
  Json long_window = state;
  Json& window = long_window["plateau"][0][2];
  while (window.size() < 5) window.push_back(0.5);  // num_results is 4
  EXPECT_NE(error_of(long_window).find("the plateau stopper's state: a window it cannot have"),
            std::string::npos);
  Json unsorted = state;
  unsorted["experiment_plateau"]["top_values"] = Json::array({0.4, 0.3});
  EXPECT_NE(error_of(unsorted).find("the experiment plateau stopper's state: not one"),
            std::string::npos);
  Json nan_value = state;
  nan_value["plateau"][0][2][0] = "nan";  // a missing metric's NaN is a state it can have
  EXPECT_EQ(error_of(nan_value), "no error");
}

}  // namespace
}  // namespace tune
