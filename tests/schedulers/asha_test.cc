#include "schedulers/asha.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "core/numpy.h"

namespace tune {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr Decision::Kind kC = Decision::kContinue;
constexpr Decision::Kind kS = Decision::kStop;

Result MakeResult(std::int64_t iteration, double value, const std::string& metric = "acc") {
  Result result;
  result.training_iteration = iteration;
  result.metrics[metric] = value;
  return result;
}

AshaOptions Options(double max_t, double grace_period, double reduction_factor, int brackets = 1,
                    Mode mode = Mode::kMax) {
  AshaOptions options;
  options.metric = "acc";
  options.mode = mode;
  options.max_t = max_t;
  options.grace_period = grace_period;
  options.reduction_factor = reduction_factor;
  options.brackets = brackets;
  return options;
}

std::vector<std::vector<double>> Milestones(const AshaScheduler& asha) {
  std::vector<std::vector<double>> out;
  for (const auto& rungs : asha.Rungs()) {
    std::vector<double> milestones;
    for (const auto& rung : rungs) milestones.push_back(rung.first);
    out.push_back(milestones);
  }
  return out;
}

// The cutoff of bracket 0's rung at `milestone`.
std::optional<double> CutoffAt(const AshaScheduler& asha, double milestone, int bracket = 0) {
  const auto brackets = asha.Rungs();  // a local: the loop must not outlive the temporary
  for (const auto& [rung_milestone, cutoff] : brackets.at(static_cast<std::size_t>(bracket))) {
    if (rung_milestone == milestone) return cutoff;
  }
  ADD_FAILURE() << "no rung at " << milestone;
  return std::nullopt;
}

// Adds the trial, then reports one result.
Decision Report(AshaScheduler& asha, const std::string& trial_id, std::int64_t iteration,
                double value) {
  asha.OnTrialAdd(trial_id);  // idempotent: the bracket is drawn once per trial
  return asha.OnResult(trial_id, MakeResult(iteration, value));
}

// --- Rungs -------------------------------------------------------------------------------------
// Expected values are Ray's: int(log(max_t / grace) / log(rf) - s + 1) rungs at grace * rf^(k+s),
// highest first (checked against numpy).

TEST(AshaRungsTest, DefaultsGiveMilestones64To1) {
  // log(100)/log(4) = 3.32 -> 4 rungs.
  AshaScheduler asha(Options(100, 1, 4));
  EXPECT_EQ(Milestones(asha), (std::vector<std::vector<double>>{{64, 16, 4, 1}}));
}

TEST(AshaRungsTest, MilestoneEqualToMaxTIsARung) {
  // log(27)/log(3) = 3.0000000000000004 -> 4 rungs, the top one at max_t itself.
  AshaScheduler asha(Options(27, 1, 3));
  EXPECT_EQ(Milestones(asha), (std::vector<std::vector<double>>{{27, 9, 3, 1}}));
}

TEST(AshaRungsTest, FloatingPointRatioTruncatesLikeRay) {
  // log(1000)/log(10) = 2.9999999999999996 in doubles, so Ray gets 3 rungs, not 4.
  AshaScheduler asha(Options(1000, 1, 10));
  EXPECT_EQ(Milestones(asha), (std::vector<std::vector<double>>{{100, 10, 1}}));
}

TEST(AshaRungsTest, EachBracketStartsOneReductionLater) {
  // log(81/2)/log(3) = 3.37: brackets get 4, 3 and 2 rungs, all ending at 2 * 3^3 = 54.
  AshaScheduler asha(Options(81, 2, 3, 3));
  EXPECT_EQ(Milestones(asha),
            (std::vector<std::vector<double>>{{54, 18, 6, 2}, {54, 18, 6}, {54, 18}}));
}

TEST(AshaRungsTest, MilestonesForViewsAreEveryBracketsRungsAscending) {
  AshaScheduler asha(Options(81, 2, 3, 3));
  EXPECT_EQ(asha.Milestones(), (std::vector<double>{2, 6, 18, 54}));
  EXPECT_EQ(AshaScheduler(Options(1000, 1, 10)).Milestones(), (std::vector<double>{1, 10, 100}));
}

TEST(AshaRungsTest, SurplusBracketsHaveNoRungs) {
  // log(10)/log(4) = 1.66: s=2 gives int(0.66) = 0 rungs.
  AshaScheduler asha(Options(10, 1, 4, 3));
  EXPECT_EQ(Milestones(asha), (std::vector<std::vector<double>>{{4, 1}, {4}, {}}));
}

TEST(AshaRungsTest, GraceEqualToMaxTAndFractionalFactor) {
  EXPECT_EQ(Milestones(AshaScheduler(Options(5, 5, 2))), (std::vector<std::vector<double>>{{5}}));
  EXPECT_EQ(Milestones(AshaScheduler(Options(10, 1, 2.5))),
            (std::vector<std::vector<double>>{{6.25, 2.5, 1}}));
}

// --- NanPercentile -----------------------------------------------------------------------------

TEST(NanPercentileTest, MatchesNumpyLinear) {
  const double q3 = (1 - 1 / 3.0) * 100;  // 66.66666666666667, as Ray computes it for rf=3
  // Values from numpy 1.24 np.nanpercentile.
  EXPECT_EQ(NanPercentile({1, 2, 3, 4}, 75), 3.25);               // index 2.25
  EXPECT_EQ(NanPercentile({1, 2, 3, 4}, q3), 3.0);                // index 2.0
  EXPECT_EQ(NanPercentile({40, 10}, q3), 30.0);                   // 40 - 30 * (1/3), unsorted
  EXPECT_EQ(NanPercentile({10, 20, 40}, q3), 26.66666666666667);  // 20 + 20 * (1/3)
  EXPECT_EQ(NanPercentile({0.1, 0.2}, 75), 0.17500000000000002);  // numpy's _lerp from above
  EXPECT_EQ(NanPercentile({0.5, 0.7}, q3), 0.6333333333333333);
  EXPECT_EQ(NanPercentile({5}, q3), 5.0);
  EXPECT_EQ(NanPercentile({-1, -2, -3, -4, -5}, 75), -2.0);
}

TEST(NanPercentileTest, InfinityInTheInterpolationGivesNaNAsInNumpy) {
  const double inf = std::numeric_limits<double>::infinity();
  // numpy interpolates even a lone value with itself: inf - (inf - inf) * 0 is NaN.
  EXPECT_TRUE(std::isnan(NanPercentile({inf}, 75)));
  EXPECT_TRUE(std::isnan(NanPercentile({-inf}, 75)));
  EXPECT_TRUE(std::isnan(NanPercentile({0.5, inf}, 75)));  // inf - inf * 0.25
  EXPECT_EQ(NanPercentile({-inf, 0.5}, 75), -inf);         // 0.5 - inf * 0.25
  EXPECT_TRUE(std::isnan(NanPercentile({-inf, 0.5}, 25)));  // -inf + inf * 0.25
  EXPECT_EQ(NanPercentile({7}, 75), 7.0);
}

TEST(NanPercentileTest, IgnoresNaN) {
  EXPECT_EQ(NanPercentile({kNaN, 1.0}, 50), 1.0);
  EXPECT_EQ(NanPercentile({kNaN, 1.0, 0.5}, 50), 0.75);
  EXPECT_TRUE(std::isnan(NanPercentile({kNaN}, 50)));
  EXPECT_TRUE(std::isnan(NanPercentile({}, 50)));
}

// --- The rule ----------------------------------------------------------------------------------

TEST(AshaTest, FirstTrialAtARungAlwaysContinues) {
  AshaScheduler asha(Options(100, 1, 4));
  EXPECT_EQ(CutoffAt(asha, 1), std::nullopt);
  EXPECT_EQ(Report(asha, "a", 1, -1000.0), kC);  // terrible, but nothing to compare with
  EXPECT_EQ(CutoffAt(asha, 1), -1000.0);
}

TEST(AshaTest, CutoffIsTwoThirdsPercentileForFactorThree) {
  AshaScheduler asha(Options(27, 1, 3));
  // Cutoff = percentile 66.67 of the earlier values at rung 1, numpy linear interpolation at
  // index (n - 1) * 0.6667 of the sorted values.
  EXPECT_EQ(Report(asha, "a", 1, 10), kC);  // no cutoff yet
  EXPECT_EQ(Report(asha, "b", 1, 40), kC);  // [10] -> 10; 40 >= 10
  EXPECT_EQ(Report(asha, "c", 1, 20), kS);  // [10 40] idx 0.667 -> 40 - 30/3 = 30; 20 < 30
  EXPECT_EQ(Report(asha, "d", 1, 35), kC);  // [10 20 40] idx 1.333 -> 20 + 20/3 = 26.67
  EXPECT_EQ(Report(asha, "e", 1, 26), kS);  // [10 20 35 40] idx 2.0 -> 35
  // The stopped trials' values still count: [10 20 26 35 40] idx 2.667 -> 26 + 9 * 2/3 = 32.
  EXPECT_DOUBLE_EQ(*CutoffAt(asha, 1), 32.0);
  EXPECT_EQ(asha.num_stopped(), 2);
}

TEST(AshaTest, ValueEqualToCutoffContinues) {
  AshaScheduler asha(Options(100, 1, 2));  // rf=2: the median
  EXPECT_EQ(Report(asha, "a", 1, 1.0), kC);
  EXPECT_EQ(Report(asha, "b", 1, 3.0), kC);
  EXPECT_EQ(Report(asha, "c", 1, 2.0), kC);  // median of [1 3] = 2: a tie is not worse
  EXPECT_EQ(Report(asha, "d", 1, 1.9), kS);  // median of [1 2 3] = 2
}

TEST(AshaTest, TrialsArrivingOutOfOrderAreJudgedPerRung) {
  AshaScheduler asha(Options(100, 1, 4));      // rungs 64 16 4 1, cutoff = 75th percentile
  EXPECT_EQ(Report(asha, "t1", 1, 0.10), kC);  // first at rung 1
  EXPECT_EQ(Report(asha, "t1", 2, 0.00), kC);  // between rungs: not judged
  EXPECT_EQ(Report(asha, "t1", 4, 0.30), kC);  // first at rung 4, before t2 even started
  EXPECT_EQ(Report(asha, "t2", 1, 0.20), kC);  // rung 1: [0.1] -> 0.1
  EXPECT_EQ(Report(asha, "t3", 1, 0.15), kS);  // rung 1: [0.1 0.2] idx 0.75 -> 0.175
  EXPECT_EQ(Report(asha, "t2", 4, 0.25), kS);  // rung 4: [0.3] -> 0.3
}

TEST(AshaTest, RungCutoffIncludesEveryRecordedValue) {
  AshaScheduler asha(Options(100, 1, 4));
  Report(asha, "t1", 4, 0.30);
  Report(asha, "t2", 4, 0.25);
  // [0.25 0.3] index 0.75 -> 0.3 - 0.05 * 0.25 = 0.2875.
  EXPECT_DOUBLE_EQ(*CutoffAt(asha, 4), 0.2875);
}

TEST(AshaTest, TrialIsJudgedOncePerRung) {
  AshaScheduler asha(Options(100, 1, 4));
  EXPECT_EQ(Report(asha, "a", 1, 10), kC);
  EXPECT_EQ(Report(asha, "b", 1, 20), kC);
  // b's later reports below rung 4 are past rung 1 but b is recorded there already.
  EXPECT_EQ(Report(asha, "b", 2, -100), kC);
  EXPECT_EQ(Report(asha, "b", 3, -100), kC);
  // Rung 1 still holds b's first value: [10 20] idx 0.75 -> 17.5.
  EXPECT_DOUBLE_EQ(*CutoffAt(asha, 1), 17.5);
  EXPECT_EQ(Report(asha, "c", 1, 17), kS);
}

TEST(AshaTest, ResultJumpingOverMilestonesIsJudgedOnlyAtTheHighest) {
  AshaScheduler asha(Options(100, 1, 2));  // rungs 64 32 16 8 4 2 1
  EXPECT_EQ(Report(asha, "a", 1, 10), kC);
  EXPECT_EQ(Report(asha, "a", 2, 10), kC);
  // b's first report is at 5: past milestones 4, 2 and 1, judged at 4 only, where it is first,
  // although a's 10 at rungs 1 and 2 would have stopped it.
  EXPECT_EQ(Report(asha, "b", 5, 1), kC);
  EXPECT_EQ(CutoffAt(asha, 4), 1.0);
  EXPECT_EQ(CutoffAt(asha, 2), 10.0);
  EXPECT_EQ(CutoffAt(asha, 1), 10.0);
}

TEST(AshaTest, SkippedLowerRungJudgesTheNextResultLikeRay) {
  // Ray's _Bracket.on_result walks down past rungs the trial is recorded at, so with
  // stop_last_trials the result after a jump is judged at the highest rung it skipped.
  AshaScheduler asha(Options(100, 1, 2));
  Report(asha, "a", 1, 10);
  Report(asha, "a", 2, 10);
  EXPECT_EQ(Report(asha, "b", 5, 1), kC);  // rung 4, first there
  EXPECT_EQ(Report(asha, "b", 6, 1), kS);  // rung 2: [10] -> 1 < 10
  EXPECT_EQ(CutoffAt(asha, 1), 10.0);      // rung 1 never saw b
}

TEST(AshaTest, WithoutStopLastTrialsSkippedRungsStaySkipped) {
  AshaOptions options = Options(100, 1, 2);
  options.stop_last_trials = false;
  AshaScheduler asha(options);
  Report(asha, "a", 1, 10);
  Report(asha, "a", 2, 10);
  EXPECT_EQ(Report(asha, "b", 5, 1), kC);  // rung 4
  EXPECT_EQ(Report(asha, "b", 6, 1), kC);  // recorded at its highest passed rung: done
  EXPECT_EQ(CutoffAt(asha, 2), 10.0);      // b never joined rung 2
}

TEST(AshaTest, StopsAtMaxT) {
  AshaScheduler asha(Options(4, 1, 2));  // rungs 4 2 1
  EXPECT_EQ(Report(asha, "a", 1, 1.0), kC);
  EXPECT_EQ(Report(asha, "a", 3, 1.0), kC);    // rung 2, first there
  EXPECT_EQ(Report(asha, "a", 4, 1.0), kS);    // the best trial, but max_t is reached
  EXPECT_EQ(CutoffAt(asha, 4), std::nullopt);  // stopping at max_t records nothing
  EXPECT_EQ(asha.num_stopped(), 1);
}

TEST(AshaTest, WithoutStopLastTrialsMaxTIsOnlyARung) {
  AshaOptions options = Options(4, 1, 2);
  options.stop_last_trials = false;
  AshaScheduler asha(options);
  EXPECT_EQ(Report(asha, "a", 4, 1.0), kC);  // judged at rung 4 (first)
  EXPECT_EQ(Report(asha, "a", 7, 1.0), kC);  // past max_t, keeps going
  EXPECT_EQ(Report(asha, "b", 9, 0.5), kS);  // rung 4: [1.0] -> 1.0
}

TEST(AshaTest, MissingMetricOrTimeContinuesAndRecordsNothing) {
  AshaOptions options = Options(4, 1, 2);
  options.time_attr = "epoch";
  AshaScheduler asha(options);
  asha.OnTrialAdd("a");
  Result no_time = MakeResult(9, 1.0);  // training_iteration is past max_t, but time is "epoch"
  EXPECT_EQ(asha.OnResult("a", no_time), kC);
  Result no_metric;
  no_metric.metrics["epoch"] = 4;  // at max_t: Ray checks for the metric first
  no_metric.metrics["loss"] = 0.1;
  EXPECT_EQ(asha.OnResult("a", no_metric), kC);
  Result both = MakeResult(1, 0.5);
  both.metrics["epoch"] = 1;
  EXPECT_EQ(asha.OnResult("a", both), kC);
  EXPECT_EQ(CutoffAt(asha, 1), 0.5);
  EXPECT_EQ(CutoffAt(asha, 2), std::nullopt);
  EXPECT_EQ(asha.num_stopped(), 0);
}

TEST(AshaTest, NaNValuesAreRecordedButIgnoredByCutoffs) {
  AshaScheduler asha(Options(100, 1, 2));
  EXPECT_EQ(Report(asha, "a", 1, kNaN), kC);  // first at the rung
  ASSERT_TRUE(CutoffAt(asha, 1).has_value());
  EXPECT_TRUE(std::isnan(*CutoffAt(asha, 1)));  // Ray: nanpercentile of all-NaN is nan
  EXPECT_EQ(Report(asha, "b", 1, 1.0), kC);     // 1.0 < nan is false
  EXPECT_EQ(Report(asha, "c", 1, 0.5), kS);     // median of [nan 1.0] ignoring NaN = 1.0
  EXPECT_EQ(Report(asha, "d", 1, kNaN), kC);    // nan < 0.75 is false: NaN never stops
  EXPECT_EQ(CutoffAt(asha, 1), 0.75);           // median of [1.0 0.5], both NaNs ignored
}

TEST(AshaTest, NonNumericMetricCountsAsNaN) {
  AshaScheduler asha(Options(100, 1, 2));
  Report(asha, "a", 1, 1.0);
  asha.OnTrialAdd("b");
  Result null_metric = MakeResult(1, 0);
  null_metric.metrics["acc"] = nullptr;  // what a Python NaN becomes on the wire
  EXPECT_EQ(asha.OnResult("b", null_metric), kC);
  EXPECT_EQ(Report(asha, "c", 1, 0.9), kS);  // cutoff still 1.0: b's value is ignored
}

TEST(AshaTest, MinAndMaxModeMirrorEachOther) {
  const std::vector<std::pair<std::string, double>> reports = {
      {"a", 0.3}, {"b", 0.9}, {"c", 0.5}, {"d", 0.1}, {"e", 0.7}, {"f", 0.6}, {"g", 0.2}};
  AshaScheduler max_asha(Options(100, 1, 4, 1, Mode::kMax));
  AshaScheduler min_asha(Options(100, 1, 4, 1, Mode::kMin));
  std::vector<Decision> max_decisions;
  for (const auto& [trial_id, value] : reports) {
    const Decision max_decision = Report(max_asha, trial_id, 1, value);
    EXPECT_EQ(Report(min_asha, trial_id, 1, -value), max_decision) << trial_id;
    max_decisions.push_back(max_decision);
  }
  // Max mode, by hand (75th percentile of the earlier values):
  // b [0.3] -> 0.3 C; c [0.3 0.9] -> 0.75 S; d [0.3 0.5 0.9] -> 0.7 S;
  // e [0.1 0.3 0.5 0.9] idx 2.25 -> 0.6 C; f [0.1 0.3 0.5 0.7 0.9] idx 3 -> 0.7 S;
  // g [0.1 0.3 0.5 0.6 0.7 0.9] idx 3.75 -> 0.675 S.
  EXPECT_EQ(max_decisions, (std::vector<Decision>{kC, kC, kS, kS, kC, kS, kS}));
  EXPECT_DOUBLE_EQ(*CutoffAt(max_asha, 1), -*CutoffAt(min_asha, 1));
}

TEST(AshaTest, MinModeStopsHighLosses) {
  AshaScheduler asha(Options(100, 1, 4, 1, Mode::kMin));
  // Losses 1..4 first. For min, Ray takes the 75th percentile of negated losses, i.e. minus the
  // 25th percentile of the losses.
  EXPECT_EQ(Report(asha, "a", 1, 1), kC);
  EXPECT_EQ(Report(asha, "b", 1, 4), kS);      // cutoff 1
  EXPECT_EQ(Report(asha, "c", 1, 2), kS);      // losses [1 4]: 25th percentile 1.75
  EXPECT_EQ(Report(asha, "d", 1, 3), kS);      // [1 2 4]: 1.5
  EXPECT_EQ(Report(asha, "e", 1, 1.75), kC);   // [1 2 3 4]: idx 0.75 -> 1.75, a tie
  EXPECT_DOUBLE_EQ(*CutoffAt(asha, 1), 1.75);  // [1 1.75 2 3 4]: idx 1 -> 1.75, in loss units
}

TEST(AshaTest, StoppedTrialStaysStoppedAndIsCountedOnce) {
  AshaScheduler asha(Options(100, 1, 2));
  Report(asha, "a", 1, 1.0);
  EXPECT_EQ(Report(asha, "b", 1, 0.5), kS);
  EXPECT_EQ(Report(asha, "b", 2, 9.9), kS);
  EXPECT_EQ(asha.num_stopped(), 1);
}

// --- Brackets ----------------------------------------------------------------------------------

// The rung keeps its cutoff current (schedulers/streaming_percentile.h); every decision and
// every cutoff must be the plain computation's: NanPercentile of all values recorded so far.
TEST(AshaTest, DecisionsOnARandomStreamEqualThePlainPercentile) {
  for (const Mode mode : {Mode::kMax, Mode::kMin}) {
    const double sign = mode == Mode::kMax ? 1 : -1;
    AshaScheduler asha(Options(100, 1, 3, 1, mode));
    std::mt19937_64 rng(19);
    std::uniform_int_distribution<int> pick(0, 99);
    std::vector<double> recorded;  // sign-adjusted, as the rung holds them
    for (int trial = 0; trial < 3000; ++trial) {
      const int k = pick(rng);
      const double value = k < 4    ? kNaN
                           : k < 5  ? std::numeric_limits<double>::infinity()
                           : k < 6  ? -std::numeric_limits<double>::infinity()
                           : k < 50 ? (k % 7) * 0.125  // ties
                                    : pick(rng) / 97.0;
      const std::optional<double> cutoff =
          recorded.empty() ? std::nullopt
                           : std::optional<double>(NanPercentile(recorded, (1 - 1 / 3.0) * 100));
      const Decision::Kind expected = cutoff && sign * value < *cutoff ? kS : kC;
      const std::string id = "t" + std::to_string(trial);
      ASSERT_EQ(asha.OnResult(id, MakeResult(1, value)).kind, expected) << id;
      recorded.push_back(sign * value);
      const std::optional<double> now = asha.Rungs()[0].back().second;
      ASSERT_TRUE(now.has_value());
      const double plain = sign * NanPercentile(recorded, (1 - 1 / 3.0) * 100) + 0.0;
      if (std::isnan(plain)) {
        ASSERT_TRUE(std::isnan(*now)) << id;
      } else {
        ASSERT_EQ(*now, plain) << id;
      }
    }
  }
}

TEST(AshaBracketsTest, AssignmentIsDeterministicForASeed) {
  auto assignments = [](std::uint64_t seed) {
    AshaOptions options = Options(100, 1, 4, 3);
    options.seed = seed;
    AshaScheduler asha(options);
    std::vector<int> out;
    for (int i = 0; i < 200; ++i) {
      const std::string trial_id = "t" + std::to_string(i);
      asha.OnTrialAdd(trial_id);
      out.push_back(*asha.BracketOf(trial_id));
    }
    return out;
  };
  EXPECT_EQ(assignments(7), assignments(7));
  EXPECT_NE(assignments(7), assignments(8));
}

TEST(AshaBracketsTest, AssignmentFollowsSoftmaxOfRungCounts) {
  // Rung counts 4, 3, 2: probabilities e^0, e^-1, e^-2 normalised = 0.6652, 0.2447, 0.0900.
  AshaScheduler asha(Options(100, 1, 4, 3));
  constexpr int kTrials = 20000;
  std::map<int, int> counts;
  for (int i = 0; i < kTrials; ++i) {
    const std::string trial_id = "t" + std::to_string(i);
    asha.OnTrialAdd(trial_id);
    ++counts[*asha.BracketOf(trial_id)];
  }
  // Each bound is about 6 standard deviations wide.
  EXPECT_NEAR(counts[0] / double{kTrials}, 0.6652, 0.02);
  EXPECT_NEAR(counts[1] / double{kTrials}, 0.2447, 0.02);
  EXPECT_NEAR(counts[2] / double{kTrials}, 0.0900, 0.012);
}

TEST(AshaBracketsTest, SingleBracketTakesEveryTrial) {
  AshaScheduler asha(Options(100, 1, 4));
  asha.OnTrialAdd("a");
  EXPECT_EQ(asha.BracketOf("a"), 0);
  EXPECT_EQ(asha.BracketOf("never_added"), std::nullopt);
}

TEST(AshaBracketsTest, TrialIsJudgedOnlyByItsOwnBracket) {
  AshaScheduler asha(Options(100, 1, 4, 3));
  // Find one trial in bracket 0 and one in bracket 1 (the draw is seeded, so this is stable).
  std::string in_first;
  std::string in_second;
  for (int i = 0; in_first.empty() || in_second.empty(); ++i) {
    const std::string trial_id = "t" + std::to_string(i);
    asha.OnTrialAdd(trial_id);
    const int bracket = *asha.BracketOf(trial_id);
    if (bracket == 0 && in_first.empty()) in_first = trial_id;
    if (bracket == 1 && in_second.empty()) in_second = trial_id;
  }
  // Bracket 1's rungs are 64 16 4: iteration 1 is below all of them.
  EXPECT_EQ(asha.OnResult(in_second, MakeResult(1, 5.0)), kC);
  EXPECT_EQ(CutoffAt(asha, 1, 0), std::nullopt);
  EXPECT_EQ(asha.OnResult(in_second, MakeResult(4, 5.0)), kC);
  EXPECT_EQ(CutoffAt(asha, 4, 1), 5.0);
  EXPECT_EQ(CutoffAt(asha, 4, 0), std::nullopt);
  // So bracket 0's first trial at rung 4 continues even with a worse value.
  EXPECT_EQ(asha.OnResult(in_first, MakeResult(4, 1.0)), kC);
}

// --- Lifecycle ---------------------------------------------------------------------------------

TEST(AshaLifecycleTest, CompleteRecordsTheLastResultOfATrialThatEndedOnItsOwn) {
  AshaScheduler asha(Options(100, 1, 4));
  asha.OnTrialAdd("a");
  const Result last = MakeResult(4, 0.9);
  // As in Ray's on_trial_complete, a result the scheduler had not seen joins its rung.
  asha.OnTrialComplete("a", &last);
  EXPECT_EQ(CutoffAt(asha, 4), 0.9);
  EXPECT_EQ(asha.BracketOf("a"), std::nullopt);
  EXPECT_EQ(Report(asha, "b", 4, 0.8), kS);
}

// Ray's TuneController answers a STOP with stop_trial(), which calls on_trial_complete with that
// same result, and on_trial_complete offers it to the bracket again (tests/peers/asha_diff.py).
TEST(AshaLifecycleTest, CompleteOfATrialStoppedAtMaxTRecordsItsLastResult) {
  AshaScheduler asha(Options(10, 1, 3));  // rungs 9, 3, 1
  const Result at_max_t = MakeResult(10, 0.9);
  EXPECT_EQ(Report(asha, "a", 8, 0.9), kC);  // judged at rung 3, the highest it passed
  EXPECT_EQ(asha.OnResult("a", at_max_t), kS);  // max_t: stopped, not judged at rung 9
  EXPECT_EQ(CutoffAt(asha, 9), std::nullopt);
  asha.OnTrialComplete("a", &at_max_t);  // now rung 9, which it jumped over, records it
  EXPECT_EQ(CutoffAt(asha, 9), 0.9);
  EXPECT_EQ(asha.BracketOf("a"), std::nullopt);
  EXPECT_EQ(Report(asha, "b", 9, 0.5), kS);  // so b is no longer the first at rung 9
}

TEST(AshaLifecycleTest, CompleteOfATrialStoppedAtARungRecordsItAtARungItSkipped) {
  AshaScheduler asha(Options(9, 1, 3));  // rungs 9, 3, 1
  EXPECT_EQ(Report(asha, "x", 1, 0.9), kC);
  EXPECT_EQ(Report(asha, "y", 3, 0.9), kC);
  const Result z_at_3 = MakeResult(3, 0.1);
  asha.OnTrialAdd("z");
  EXPECT_EQ(asha.OnResult("z", z_at_3), kS);  // below rung 3's cutoff 0.9
  asha.OnTrialComplete("z", &z_at_3);        // falls through to rung 1, which z jumped over
  EXPECT_EQ(CutoffAt(asha, 1), 0.6333333333333334);  // [0.1 0.9] as numpy, not [0.9]
  EXPECT_EQ(Report(asha, "w", 1, 0.7), kC);
}

TEST(AshaLifecycleTest, ErrorForgetsTheTrialButKeepsItsRecords) {
  AshaScheduler asha(Options(100, 1, 4));
  Report(asha, "a", 1, 0.5);
  asha.OnTrialError("a");
  EXPECT_EQ(asha.BracketOf("a"), std::nullopt);
  EXPECT_EQ(CutoffAt(asha, 1), 0.5);
}

TEST(AshaLifecycleTest, LoneInfiniteValueAtARungStopsNobodyAsInRay) {
  AshaScheduler asha(Options(9, 1, 3));
  EXPECT_EQ(Report(asha, "a", 1, std::numeric_limits<double>::infinity()), kC);
  EXPECT_TRUE(std::isnan(*CutoffAt(asha, 1)));  // np.nanpercentile([inf]) is NaN
  EXPECT_EQ(Report(asha, "b", 1, 0.5), kC);
}

// --- Describe ----------------------------------------------------------------------------------

TEST(AshaDescribeTest, MatchesRayDebugString) {
  AshaScheduler asha(Options(9, 1, 3, 2));
  EXPECT_EQ(asha.Describe(),
            "Using AsyncHyperBand: num_stopped=0\n"
            "Bracket: Iter 9.000: None | Iter 3.000: None | Iter 1.000: None\n"
            "Bracket: Iter 9.000: None | Iter 3.000: None");
}

TEST(AshaDescribeTest, PrintsCutoffsLikePython) {
  AshaScheduler asha(Options(9, 1, 3));
  Report(asha, "a", 1, 0.5);
  Report(asha, "b", 1, 0.7);
  Report(asha, "c", 1, 0.1);  // stopped: [0.5 0.7] -> 0.6333
  Report(asha, "a", 3, 2);
  EXPECT_EQ(asha.Describe(),
            "Using AsyncHyperBand: num_stopped=1\n"
            // [0.1 0.5 0.7] idx 1.333 -> 0.5 + 0.2/3; Python prints 2 as 2.0.
            "Bracket: Iter 9.000: None | Iter 3.000: 2.0 | Iter 1.000: 0.5666666666666667");
}

TEST(AshaDescribeTest, MinModeShowsCutoffsInMetricUnits) {
  AshaScheduler asha(Options(9, 1, 3, 1, Mode::kMin));
  Report(asha, "a", 1, 0.25);
  Report(asha, "b", 3, kNaN);
  EXPECT_EQ(asha.Describe(),
            "Using AsyncHyperBand: num_stopped=0\n"
            "Bracket: Iter 9.000: None | Iter 3.000: nan | Iter 1.000: 0.25");
}

// --- Golden sequences --------------------------------------------------------------------------
// Produced by a line-by-line transcription of Ray's AsyncHyperBandScheduler and _Bracket in
// Python with numpy 1.24 (grace 1, max_t 9, rf 3, one bracket), on random interleavings of six
// trials with jumps of 1-3 iterations and 10% NaN values. The Describe() line is Ray's
// debug_str with cutoffs shown in metric units.

struct Event {
  const char* trial_id;
  std::int64_t iteration;
  double value;
};

struct Golden {
  Mode mode;
  bool stop_last_trials;
  std::vector<Event> events;
  std::string decisions;  // C or S per event
  std::string bracket;
};

class AshaGoldenTest : public testing::TestWithParam<Golden> {};

TEST_P(AshaGoldenTest, MatchesRayTranscription) {
  const Golden& golden = GetParam();
  AshaOptions options = Options(9, 1, 3, 1, golden.mode);
  options.stop_last_trials = golden.stop_last_trials;
  AshaScheduler asha(options);
  std::string decisions;
  for (const Event& event : golden.events) {
    decisions += Report(asha, event.trial_id, event.iteration, event.value) == kS ? 'S' : 'C';
  }
  EXPECT_EQ(decisions, golden.decisions);
  const std::string description = asha.Describe();
  EXPECT_EQ(description.substr(description.find('\n') + 1), golden.bracket);
}

INSTANTIATE_TEST_SUITE_P(
    Ray, AshaGoldenTest,
    testing::Values(
        Golden{Mode::kMax,
               true,
               {{"t1", 3, 0.76},
                {"t2", 1, 0.45},
                {"t5", 2, 0.09},
                {"t0", 2, 0.76},
                {"t0", 4, 0.8},
                {"t4", 1, 0.03},
                {"t0", 7, kNaN},
                {"t3", 1, 0.73},
                {"t1", 5, 0.55},
                {"t2", 2, 0.76},
                {"t2", 3, 0.92},
                {"t3", 2, 0.99},
                {"t2", 4, 0.9},
                {"t3", 5, 0.42},
                {"t0", 8, 0.97},
                {"t2", 7, 0.85},
                {"t2", 8, 0.4},
                {"t0", 9, 0.7},
                {"t2", 9, 0.51}},
               "CCSCCSCCSCCCCSCCCSS",
               "Bracket: Iter 9.000: None | Iter 3.000: 0.8 | Iter 1.000: 0.6100000000000001"},
        Golden{Mode::kMin,
               true,
               {{"t0", 1, kNaN},
                {"t1", 1, 0.21},
                {"t0", 4, 1.0},
                {"t5", 2, 0.86},
                {"t4", 1, 0.44},
                {"t2", 1, 0.36},
                {"t2", 3, 0.88},
                {"t1", 4, 0.23},
                {"t1", 5, 0.51},
                {"t2", 6, 0.18},
                {"t3", 2, 0.91},
                {"t1", 8, 0.98},
                {"t1", 9, 0.4},
                {"t2", 9, 0.28},
                {"t0", 7, 0.8},
                {"t0", 9, 0.73}},
               "CCCSSCCCCCSCSSCS",
               "Bracket: Iter 9.000: None | Iter 3.000: 0.6633333333333332 | Iter 1.000: "
               "0.38666666666666666"},
        Golden{Mode::kMax,
               false,
               {{"t1", 3, 0.37},  {"t4", 2, 0.07},  {"t0", 2, 0.23},  {"t5", 2, 0.55},
                {"t3", 1, 0.15},  {"t5", 4, 0.67},  {"t0", 3, 0.59},  {"t2", 1, 0.27},
                {"t5", 6, 0.92},  {"t4", 5, 0.94},  {"t2", 2, kNaN},  {"t4", 6, 0.67},
                {"t2", 4, 0.39},  {"t4", 9, 0.58},  {"t4", 10, 0.99}, {"t1", 4, 0.9},
                {"t0", 4, 0.99},  {"t4", 11, 0.48}, {"t5", 7, 0.07},  {"t1", 5, 0.77},
                {"t0", 5, 0.76},  {"t5", 10, 0.88}, {"t4", 14, 0.04}, {"t0", 6, 0.54},
                {"t1", 7, 0.26},  {"t0", 7, 0.96},  {"t5", 12, 0.52}, {"t0", 10, 0.81},
                {"t4", 16, 0.72}, {"t4", 18, 0.52}, {"t4", 19, 0.99}, {"t4", 20, 0.59},
                {"t1", 8, 0.33},  {"t4", 21, 0.28}, {"t5", 13, 0.95}, {"t0", 11, 0.46},
                {"t4", 22, 0.31}, {"t4", 25, 0.79}, {"t0", 12, 0.68}, {"t1", 9, 0.65}},
               "CCCCSCCCCCCCSCCCCCCCCCCCCCCCCCCCCCCCCCCS",
               "Bracket: Iter 9.000: 0.81 | Iter 3.000: 0.6433333333333334 | Iter 1.000: "
               "0.2566666666666667"}));

}  // namespace
}  // namespace tune

namespace tune {
namespace {

// --- promotion: "optuna" (Optuna's SuccessiveHalvingPruner rule) -------------------------------
// Expected decisions are Optuna 5.0's: SuccessiveHalvingPruner(min_resource=1,
// reduction_factor=3) on the same histories, one trial at a time, each reporting steps 1, 2, ...
// until pruned (a trial that reached its last step is told COMPLETE).

AshaOptions OptunaRule(double max_t, Mode mode = Mode::kMax) {
  AshaOptions options = Options(max_t, 1, 3, 1, mode);
  options.promotion = AshaOptions::Promotion::kOptuna;
  return options;
}

// Runs each history as one trial (values at iterations 1, 2, ...) until a kStop, then completes
// it; returns one string per trial, a letter per result: C (go on) or S (stop).
std::vector<std::string> Decide(AshaScheduler& asha,
                                const std::vector<std::vector<double>>& histories) {
  std::vector<std::string> out;
  for (std::size_t t = 0; t < histories.size(); ++t) {
    const std::string id = "t" + std::to_string(t);
    std::string letters;
    Result last;
    for (std::size_t step = 0; step < histories[t].size(); ++step) {
      last = MakeResult(static_cast<std::int64_t>(step + 1), histories[t][step]);
      const bool stop = Report(asha, id, last.training_iteration, histories[t][step]) == kS;
      letters += stop ? 'S' : 'C';
      if (stop) break;
    }
    asha.OnTrialComplete(id, &last);
    out.push_back(letters);
  }
  return out;
}

const std::vector<std::vector<double>> kRungOneHistory = {
    {0.5}, {0.4}, {0.6}, {0.55}, {0.6}, {0.3}, {0.58}, {0.7}, {0.59}, {0.65}};

TEST(AshaOptunaPromotionTest, FirstTrialGoesOnThenTheBestOfEachRfThenTheTopThird) {
  // 0.5: first, nothing to compare with: on. 0.4: n=2, k=1, not the best: stop. 0.6: best of 3.
  // 0.55: n=4, not the best. 0.6: ties the best: on. 0.3: n=6, k=2. 0.58: the 2nd best is 0.6.
  // 0.7: best. 0.59: n=9, k=3 (0.7 0.6 0.6). 0.65: n=10, k=3 (0.7 0.65 0.6).
  AshaScheduler asha(OptunaRule(10));
  EXPECT_EQ(Decide(asha, kRungOneHistory),
            (std::vector<std::string>{"C", "S", "C", "S", "C", "S", "S", "C", "S", "C"}));
  // Ray's rule on the same values (numpy) lets 0.55 and 0.58 through: it compares with the
  // values before only (0.55 vs the 67th percentile of 0.5 0.4 0.6, 0.533).
  AshaScheduler ray(Options(10, 1, 3));
  EXPECT_EQ(Decide(ray, kRungOneHistory),
            (std::vector<std::string>{"C", "S", "C", "C", "C", "S", "C", "C", "S", "C"}));
}

TEST(AshaOptunaPromotionTest, MinModeKeepsTheSmallest) {
  AshaScheduler asha(OptunaRule(10, Mode::kMin));
  EXPECT_EQ(Decide(asha, kRungOneHistory),
            (std::vector<std::string>{"C", "C", "S", "S", "S", "C", "S", "S", "S", "S"}));
}

TEST(AshaOptunaPromotionTest, EachRungJudgesByItsOwnValues) {
  // max_t 8: rungs at 1 and 3; trials report 4 steps.
  AshaScheduler asha(OptunaRule(8));
  EXPECT_EQ(Decide(asha, {{0.5, 0.6, 0.7, 0.8},
                          {0.6, 0.6, 0.65, 0.7},
                          {0.7, 0.7, 0.6, 0.6},
                          {0.55, 0.5, 0.5, 0.5},
                          {0.8, 0.8, 0.75, 0.9},
                          {0.75, 0.8, 0.7, 0.8},
                          {0.9, 0.9, 0.9, 0.9}}),
            (std::vector<std::string>{"CCCC", "CCS", "CCS", "S", "CCCC", "CCS", "CCCC"}));
}

TEST(AshaOptunaPromotionTest, NanStopsAndIsNotCounted) {
  // Optuna prunes a NaN before recording it: 0.55 is the 5th value at the rung (k = 1: it must
  // be the best), not the 6th (k = 2: the 2nd best would do).
  AshaScheduler asha(OptunaRule(10));
  EXPECT_EQ(Decide(asha, {{0.5}, {kNaN}, {0.6}, {0.4}, {0.3}, {0.55}}),
            (std::vector<std::string>{"C", "S", "C", "S", "S", "S"}));
  EXPECT_EQ(CutoffAt(asha, 1), 0.55);  // 5 values, the next is the 6th: k = 2 (0.6 0.55)
}

// Optuna's _is_trial_promotable_to_next_rung, transcribed: the value goes on when it is >= the
// (floor(n / rf))-th largest (at least the largest) of the n values, its own included.
bool OptunaPromotes(std::vector<double> competing, double value, double rf) {
  competing.push_back(value);
  std::sort(competing.begin(), competing.end());
  const long index = std::max(0L, static_cast<long>(std::floor(competing.size() / rf)) - 1);
  return value >= competing[competing.size() - 1 - static_cast<std::size_t>(index)];
}

TEST(AshaOptunaPromotionTest, DecisionsOnARandomStreamEqualOptunasSortedRule) {
  for (const double rf : {2.0, 3.0, 4.0, 2.5}) {
    AshaOptions options = OptunaRule(1000);
    options.reduction_factor = rf;
    AshaScheduler asha(options);
    std::mt19937_64 rng(18);
    std::uniform_int_distribution<int> pick(0, 99);
    std::vector<double> recorded;
    for (int trial = 0; trial < 2000; ++trial) {
      const int k = pick(rng);
      const double value = k < 50 ? (k % 7) * 0.125 : pick(rng) / 97.0;  // many ties
      const std::string id = "t" + std::to_string(trial);
      ASSERT_EQ(Report(asha, id, 1, value), OptunaPromotes(recorded, value, rf) ? kC : kS)
          << "rf " << rf << " " << id;
      recorded.push_back(value);
    }
  }
}

TEST(AshaOptunaPromotionTest, SpecOptionPicksTheRuleAndRayStaysTheDefault) {
  const auto make = [](Json spec) {
    spec["type"] = "asha";
    const auto scheduler = MakeScheduler(spec, "acc", Mode::kMax, "scheduler");
    return dynamic_cast<const AshaScheduler&>(*scheduler).options();
  };
  EXPECT_EQ(make(Json::object()).promotion, AshaOptions::Promotion::kRay);
  EXPECT_EQ(make(Json{{"promotion", "ray"}}).promotion, AshaOptions::Promotion::kRay);
  EXPECT_EQ(make(Json{{"promotion", "optuna"}}).promotion, AshaOptions::Promotion::kOptuna);
  try {
    make(Json{{"promotion", "sha"}});
    ADD_FAILURE() << "accepted promotion \"sha\"";
  } catch (const SpecError& error) {
    EXPECT_NE(std::string(error.what()).find("scheduler.promotion"), std::string::npos)
        << error.what();
  }
}

TEST(AshaBudgetTest, BudgetExhaustedAtMaxTOnlyWhenStoppingLastTrials) {
  AshaOptions options;
  options.metric = "acc";
  options.time_attr = "epoch";
  options.max_t = 9;
  AshaScheduler asha(options);
  Result at_8, at_9;
  at_8.metrics = {{"epoch", 8}, {"acc", 0.5}};
  at_9.metrics = {{"epoch", 9}, {"acc", 0.5}};
  EXPECT_FALSE(asha.BudgetExhausted(at_8));
  EXPECT_TRUE(asha.BudgetExhausted(at_9));
  options.stop_last_trials = false;
  EXPECT_FALSE(AshaScheduler(options).BudgetExhausted(at_9));
}

}  // namespace
}  // namespace tune
