#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
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

const std::vector<Objective> kObjectives = {{"acc", Mode::kMax}, {"ms", Mode::kMin}};

std::vector<Trial> SomeTrials() {
  // With several objectives: a, b on the front; c dominated by b; d the best of all but breaks
  // "mem <= 500"; e did not report ms.
  return {WithResult("a", {{"acc", 0.9}, {"ms", 20}, {"mem", 100}}),
          WithResult("b", {{"acc", 0.8}, {"ms", 10}, {"mem", 100}}),
          WithResult("c", {{"acc", 0.7}, {"ms", 15}, {"mem", 100}}),
          WithResult("d", {{"acc", 0.95}, {"ms", 5}, {"mem", 900}}),
          WithResult("e", {{"acc", 0.99}})};
}

TEST(ParetoTrackerTest, RanksFeasibleTrialsWithEveryObjective) {
  std::vector<Trial> trials = SomeTrials();
  ParetoTracker plain(kObjectives, {});
  ParetoTracker constrained(kObjectives, ParseConstraints(Json{"mem <= 500"}));
  for (std::size_t i = 0; i < trials.size(); ++i) {
    plain.Update(i, trials[i]);
    constrained.Update(i, trials[i]);
  }
  EXPECT_THAT(plain.Front(), ::testing::ElementsAre(3));  // d dominates a, b and c
  EXPECT_EQ(plain.Rank(4), -1);
  EXPECT_THAT(constrained.Front(), ::testing::ElementsAre(0, 1));
  EXPECT_EQ(constrained.Rank(2), 1);
  EXPECT_EQ(constrained.Rank(3), -1);
  // A new result moves the front: c now beats a in both objectives.
  trials[2] = WithResult("c", {{"acc", 0.95}, {"ms", 12}, {"mem", 100}});
  constrained.Update(2, trials[2]);
  EXPECT_THAT(constrained.Front(), ::testing::ElementsAre(1, 2));
  EXPECT_EQ(constrained.Rank(0), 1);
}

TEST(ParetoTrackerTest, BestTrialSkipsInfeasibleTrials) {
  std::vector<Trial> trials = SomeTrials();
  BestTrialTracker best("acc", Mode::kMax, ParseConstraints(Json{"mem <= 500"}));
  for (std::size_t i = 0; i < 4; ++i) best.Update(i, trials[i]);
  EXPECT_EQ(best.Best(trials)->id, "a");  // d has more accuracy but breaks the constraint
}

TEST(ParetoTrackerTest, TableShowsRanksAndTheEndWritesTheFront) {
  std::vector<Trial> trials = SomeTrials();
  ParetoTracker pareto(kObjectives, ParseConstraints(Json{"mem <= 500"}));
  for (std::size_t i = 0; i < trials.size(); ++i) pareto.Update(i, trials[i]);
  ExperimentView view;
  view.name = "exp";
  view.metric = "acc";
  view.trials = &trials;
  view.objectives = kObjectives;
  view.pareto = &pareto;
  const std::string table = RenderStatus(view, TableOptions{});
  EXPECT_THAT(table, ::testing::HasSubstr("Pareto front: 2 trials (a, b)"));
  EXPECT_THAT(table, ::testing::HasSubstr("| pareto rank |"));
  EXPECT_THAT(table, ::testing::HasSubstr(" ms |"));  // every objective is a column
  EXPECT_THAT(table, ::testing::Not(::testing::HasSubstr("Current best trial")));

  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("pareto_front_test_" + std::to_string(getpid()));
  std::filesystem::remove_all(dir);
  std::FILE* out = std::tmpfile();
  BestTrialReporter(dir, out).OnExperimentEnd(view);
  std::ifstream file(dir / "pareto_front.json");
  const Json front = Json::parse(file);
  EXPECT_EQ(front["metric"], Json({"acc", "ms"}));
  EXPECT_EQ(front["mode"], Json({"max", "min"}));
  ASSERT_EQ(front["pareto_front"].size(), 2u);
  EXPECT_EQ(front["pareto_front"][0]["trial_id"], "a");
  EXPECT_EQ(front["pareto_front"][0]["values"], Json({0.9, 20}));
  std::ifstream best(dir / "best_trial.json");
  EXPECT_EQ(Json::parse(best), front);
  std::rewind(out);
  char text[512] = {};
  const std::size_t n = std::fread(text, 1, sizeof(text) - 1, out);
  EXPECT_THAT(std::string(text, n), ::testing::StartsWith("Pareto front: 2 trials\n  a acc=0.9 ms=20"));
  std::fclose(out);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace tune
