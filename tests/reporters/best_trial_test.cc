#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "reporters/reporters.h"

namespace tune {
namespace {

Trial WithResult(const std::string& id, Json metrics) {
  Trial trial;
  trial.id = id;
  Result result;
  result.training_iteration = 1;
  result.metrics = std::move(metrics);
  trial.last_result = result;
  trial.num_results = 1;
  return trial;
}

TEST(BestTrialTest, PicksByModeOnLastResult) {
  std::vector<Trial> trials = {WithResult("a", {{"loss", 0.5}}), WithResult("b", {{"loss", 0.2}}),
                               WithResult("c", {{"loss", 0.9}})};
  ASSERT_NE(BestTrial(trials, "loss", Mode::kMin), nullptr);
  EXPECT_EQ(BestTrial(trials, "loss", Mode::kMin)->id, "b");
  EXPECT_EQ(BestTrial(trials, "loss", Mode::kMax)->id, "c");
}

TEST(BestTrialTest, SkipsNanMissingAndNonNumeric) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  std::vector<Trial> trials = {
      WithResult("nan", {{"acc", nan}}), WithResult("missing", {{"loss", 0.1}}),
      WithResult("text", {{"acc", "high"}}), WithResult("real", {{"acc", 0.3}})};
  Trial no_result;
  no_result.id = "pending";
  trials.insert(trials.begin(), no_result);
  for (Mode mode : {Mode::kMin, Mode::kMax}) {
    const Trial* best = BestTrial(trials, "acc", mode);
    ASSERT_NE(best, nullptr);
    EXPECT_EQ(best->id, "real");
  }
}

TEST(BestTrialTest, TiesGoToTheEarlierTrial) {
  std::vector<Trial> trials = {WithResult("first", {{"acc", 1}}),
                               WithResult("second", {{"acc", 1.0}}),
                               WithResult("worse", {{"acc", 0.5}})};
  EXPECT_EQ(BestTrial(trials, "acc", Mode::kMax)->id, "first");
  std::swap(trials[0], trials[1]);
  EXPECT_EQ(BestTrial(trials, "acc", Mode::kMax)->id, "second");
}

TEST(BestTrialTest, NullWhenNoTrialHasTheMetric) {
  std::vector<Trial> none;
  EXPECT_EQ(BestTrial(none, "acc", Mode::kMax), nullptr);
  Trial pending;
  pending.id = "p";
  std::vector<Trial> trials = {pending, WithResult("other", {{"loss", 1}})};
  EXPECT_EQ(BestTrial(trials, "acc", Mode::kMax), nullptr);
}

TEST(BestTrialTest, JudgesAddedFieldsToo) {
  std::vector<Trial> trials = {WithResult("a", {}), WithResult("b", {})};
  trials[1].last_result->training_iteration = 7;
  EXPECT_EQ(BestTrial(trials, "training_iteration", Mode::kMax)->id, "b");
  EXPECT_EQ(BestTrial(trials, "training_iteration", Mode::kMin)->id, "a");
}

// The tracker, updated per result, names the trial BestTrial() finds by a pass over all: random
// streams of results (ties, NaN, infinities, missing metrics, values getting worse), both modes.
TEST(BestTrialTest, TrackerEqualsAFullPassOnRandomStreams) {
  const std::vector<double> values = {0.1, 0.5, 0.5, 0.9, -0.0, 0.0, std::nan(""),
                                      std::numeric_limits<double>::infinity(),
                                      -std::numeric_limits<double>::infinity()};
  for (Mode mode : {Mode::kMax, Mode::kMin}) {
    for (unsigned seed = 0; seed < 10; ++seed) {
      std::mt19937 random(seed);
      std::vector<Trial> trials;
      BestTrialTracker tracker("acc", mode);
      for (int step = 0; step < 4000; ++step) {
        if (trials.empty() || random() % 10 == 0) {
          trials.push_back(Trial{});
          trials.back().id = "t" + std::to_string(trials.size());
          tracker.Update(trials.size() - 1, trials.back());  // no result yet
        }
        const std::size_t index = random() % trials.size();
        Result result;
        if (random() % 20 != 0) result.metrics["acc"] = values[random() % values.size()];
        trials[index].last_result = result;
        tracker.Update(index, trials[index]);
        ASSERT_EQ(tracker.Best(trials), BestTrial(trials, "acc", mode)) << "step " << step;
      }
    }
  }
}

}  // namespace
}  // namespace tune
