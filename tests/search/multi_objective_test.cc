// Pareto ranks, hypervolume, crowding distance, constraints (core/pareto.h,
// search/hypervolume.h) and the multi-objective searchers (MOTPE in "tpe", "nsga2").
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>

#include "core/pareto.h"
#include "search/hypervolume.h"
#include "search/searcher.h"

namespace tune {
namespace {

TEST(ParetoTest, NonDominatedRanksPeelFrontsAndShareTies) {
  // (1,4) (2,2) (4,1) are the front; (3,3) is dominated by (2,2) only; (4,4) by all;
  // (2,2) twice: both on the front.
  const std::vector<int> ranks =
      NonDominatedRanks({{1, 4}, {2, 2}, {4, 1}, {3, 3}, {4, 4}, {2, 2}});
  EXPECT_EQ(ranks, (std::vector<int>{0, 0, 0, 1, 2, 0}));
  EXPECT_TRUE(Dominates({1, 1}, {1, 2}));
  EXPECT_FALSE(Dominates({1, 1}, {1, 1}));
  EXPECT_FALSE(Dominates({0, 2}, {1, 1}));
}

TEST(ParetoTest, ConstrainedRanksPutInfeasibleAfterByViolation) {
  // Feasible: (1,1) rank 0, (2,2) rank 1; infeasible (0,0) violation 3, (5,5) violation 1.
  const std::vector<int> ranks =
      ConstrainedRanks({{1, 1}, {0, 0}, {2, 2}, {5, 5}}, {0, 3, 0, 1});
  EXPECT_EQ(ranks, (std::vector<int>{0, 3, 1, 2}));
  EXPECT_TRUE(ConstrainedDominates({9, 9}, 0, {0, 0}, 0.5));
  EXPECT_TRUE(ConstrainedDominates({9, 9}, 0.1, {0, 0}, 0.5));
  EXPECT_FALSE(ConstrainedDominates({0, 0}, 0.5, {9, 9}, 0));
}

TEST(HypervolumeTest, TwoObjectivesExact) {
  EXPECT_DOUBLE_EQ(Hypervolume({{1, 2}, {2, 1}}, {3, 3}), 3.0);
  // A dominated point and one outside the reference add nothing.
  EXPECT_DOUBLE_EQ(Hypervolume({{1, 2}, {2, 1}, {2, 2}, {0, 5}}, {3, 3}), 3.0);
  EXPECT_DOUBLE_EQ(Hypervolume({}, {3, 3}), 0.0);
}

TEST(HypervolumeTest, ThreeObjectivesKnownValueAndCellCount) {
  // Three unit-offset corners up to (2,2,2): 3 x 4 - 3 x 2 + 1 = 7 by inclusion-exclusion.
  EXPECT_DOUBLE_EQ(Hypervolume({{1, 0, 0}, {0, 1, 0}, {0, 0, 1}}, {2, 2, 2}), 7.0);
  // Integer points: the volume is the number of unit cells whose low corner some point
  // dominates, counted directly.
  std::mt19937_64 rng(3);
  std::uniform_int_distribution<int> coordinate(0, 5);
  for (int round = 0; round < 5; ++round) {
    Points points;
    for (int i = 0; i < 12; ++i) {
      points.push_back({double(coordinate(rng)), double(coordinate(rng)), double(coordinate(rng))});
    }
    int cells = 0;
    for (int x = 0; x < 6; ++x) {
      for (int y = 0; y < 6; ++y) {
        for (int z = 0; z < 6; ++z) {
          cells += std::any_of(points.begin(), points.end(), [&](const std::vector<double>& p) {
            return p[0] <= x && p[1] <= y && p[2] <= z;
          });
        }
      }
    }
    EXPECT_DOUBLE_EQ(Hypervolume(points, {6, 6, 6}), cells) << "round " << round;
  }
}

TEST(HypervolumeTest, ReferencePointIsOptunas) {
  EXPECT_THAT(ReferencePoint({{1, -2}, {3, -4}}), ::testing::ElementsAre(3.3000000000000003, -1.8));
}

TEST(HypervolumeTest, CrowdingDistanceGivesExtremesInfinityAndSumsNormalisedGaps) {
  const std::vector<double> d = CrowdingDistance({{0, 3}, {1, 2}, {2, 1}, {3, 0}});
  EXPECT_TRUE(std::isinf(d[0]));
  EXPECT_TRUE(std::isinf(d[3]));
  EXPECT_DOUBLE_EQ(d[1], 2.0 / 3 + 2.0 / 3);
  EXPECT_DOUBLE_EQ(d[2], 2.0 / 3 + 2.0 / 3);
  // An objective where all are equal adds nothing (Optuna).
  EXPECT_THAT(CrowdingDistance({{1, 5}, {1, 5}, {1, 5}}), ::testing::ElementsAre(0, 0, 0));
}

TEST(HypervolumeTest, SubsetSelectionPicksTheLargestContributionsGreedily) {
  // Alone, (1,1) dominates 4 of the 3x3 box, the others 3 each; then (0,2) and (2,0) add 1 each.
  EXPECT_THAT(SelectByHypervolume({{0, 2}, {1, 1}, {2, 0}}, 1, {3, 3}), ::testing::ElementsAre(1));
  // A tie ((0,2) and (2,0) add 1 each) goes to the lexicographically smaller, as Optuna's.
  EXPECT_THAT(SelectByHypervolume({{2, 0}, {1, 1}, {0, 2}}, 2, {3, 3}), ::testing::ElementsAre(1, 2));
  EXPECT_THAT(SelectByHypervolume({{0, 2}, {1, 1}, {2, 0}}, 3, {3, 3}),
              ::testing::ElementsAre(0, 1, 2));
  // Duplicates count once; with fewer distinct points than asked, the first duplicates follow.
  EXPECT_THAT(SelectByHypervolume({{1, 1}, {1, 1}, {0, 2}}, 2, {3, 3}), ::testing::ElementsAre(0, 2));
  EXPECT_THAT(SelectByHypervolume({{1, 1}, {1, 1}, {1, 1}}, 2, {3, 3}), ::testing::ElementsAre(0, 1));
}

TEST(HypervolumeTest, MotpeSplitTakesWholeRanksThenCutsTheNextByHypervolume) {
  // Rank 0: (0,2), (2,0); rank 1: (2,2), (1,3), (3,1); rank 2: (4,4).
  const Points losses = {{4, 4}, {0, 2}, {2, 2}, {2, 0}, {1, 3}, {3, 1}};
  EXPECT_THAT(BestByRankAndHypervolume(losses, 2), ::testing::ElementsAre(1, 3));
  // Rank 1 cut against 1.1 x its worst point, (3.3, 3.3): (2,2) alone adds 1.69, the others
  // 0.69; after it, (1,3) and (3,1) add 0.3 each and the tie goes to (1,3).
  EXPECT_THAT(BestByRankAndHypervolume(losses, 3), ::testing::ElementsAre(1, 2, 3));
  EXPECT_THAT(BestByRankAndHypervolume(losses, 4), ::testing::ElementsAre(1, 2, 3, 4));
  EXPECT_THAT(BestByRankAndHypervolume(losses, 6), ::testing::ElementsAre(0, 1, 2, 3, 4, 5));
  EXPECT_TRUE(BestByRankAndHypervolume(losses, 0).empty());
}

TEST(ObjectivesTest, ParsesOneOrSeveralWithClearErrors) {
  auto objectives = ParseObjectives(Json::parse(R"(["val_acc", "latency_ms"])"),
                                    Json::parse(R"(["max", "min"])"));
  ASSERT_EQ(objectives.size(), 2u);
  EXPECT_EQ(objectives[1].metric, "latency_ms");
  EXPECT_EQ(objectives[1].mode, Mode::kMin);
  EXPECT_EQ(ParseObjectives("loss", "min").front().mode, Mode::kMin);
  EXPECT_EQ(MetricsJson(objectives), Json::parse(R"(["val_acc", "latency_ms"])"));
  auto error = [](const char* metric, const char* mode) {
    try {
      ParseObjectives(Json::parse(metric), Json::parse(mode));
    } catch (const SpecError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_EQ(error(R"(["a", "b"])", R"(["max"])"),
            "mode: has 1 entries but metric has 2: one \"min\" or \"max\" per metric");
  EXPECT_THAT(error(R"(["a", "b"])", R"(["max", "maximise"])"), ::testing::StartsWith("mode[1]: "));
  EXPECT_THAT(error(R"(["a", "b"])", R"("max")"), ::testing::StartsWith("mode: must be a list of 2"));
  EXPECT_EQ(error(R"(["a", "a"])", "null"), "metric: \"a\" is listed twice");
  EXPECT_THAT(error("[]", "null"), ::testing::StartsWith("metric: required"));
  EXPECT_THAT(error(R"(["a", 3])", "null"), ::testing::StartsWith("metric: must hold metric names"));
}

TEST(ConstraintsTest, ParsesComparisonsAndComputesOptunaValues) {
  auto constraints = ParseConstraints(
      Json::parse(R"(["peak_mem_mb <= 8000", "latency_ms<20", "val_acc >= 0.9", "x > -1e3"])"));
  ASSERT_EQ(constraints.size(), 4u);
  EXPECT_EQ(constraints[0].metric, "peak_mem_mb");
  EXPECT_EQ(constraints[1].op, "<");
  EXPECT_EQ(constraints[3].bound, -1000);
  Result result;
  result.metrics = {{"peak_mem_mb", 9000}, {"latency_ms", 5}, {"val_acc", 0.95}};
  const std::vector<double> values = ConstraintValues(result, constraints);
  EXPECT_DOUBLE_EQ(values[0], 1000);
  EXPECT_DOUBLE_EQ(values[1], -15);
  EXPECT_NEAR(values[2], -0.05, 1e-12);
  EXPECT_TRUE(std::isinf(values[3]));  // x not reported: infeasible
  EXPECT_TRUE(std::isinf(Violation(values)));
  result.metrics["x"] = 0;
  EXPECT_DOUBLE_EQ(Violation(ConstraintValues(result, constraints)), 1000);

  auto error = [](const char* json) {
    try {
      ParseConstraints(Json::parse(json));
    } catch (const SpecError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_THAT(error(R"(["a <= 1", "latency 20"])"), ::testing::StartsWith("constraints[1]: needs one comparison"));
  EXPECT_THAT(error(R"(["a <= fast"])"), ::testing::StartsWith("constraints[0]: the bound after \"<=\" must be a finite number"));
  EXPECT_THAT(error(R"(["<= 3"])"), ::testing::StartsWith("constraints[0]: no metric"));
  EXPECT_THAT(error(R"([3])"), ::testing::StartsWith("constraints[0]: must be a string"));
  EXPECT_THAT(error(R"("a < 1")"), ::testing::StartsWith("constraints: must be a list"));
}

// ZDT1 in 6 variables (both objectives minimised; the front is f2 = 1 - sqrt(f1)).
const char* kZdt1Space = R"({"x0": {"uniform": [0, 1]}, "x1": {"uniform": [0, 1]},
    "x2": {"uniform": [0, 1]}, "x3": {"uniform": [0, 1]}, "x4": {"uniform": [0, 1]},
    "x5": {"uniform": [0, 1]}})";

std::vector<double> Zdt1(const Json& c) {
  const double f1 = c["x0"].get<double>();
  double g = 0;
  for (int i = 1; i < 6; ++i) g += c["x" + std::to_string(i)].get<double>();
  g = 1 + 9 * g / 5;
  return {f1, g * (1 - std::sqrt(f1 / g))};
}

std::unique_ptr<Searcher> MakeMulti(const std::string& space, Json search, std::uint64_t seed,
                                    int trials, std::vector<Constraint> constraints = {}) {
  SearcherOptions options;
  options.metric = "f1";
  options.mode = Mode::kMin;
  options.objectives = {{"f1", Mode::kMin}, {"f2", Mode::kMin}};
  options.constraints = std::move(constraints);
  options.num_samples = trials;
  options.seed = seed;
  options.algorithm = std::move(search);
  return MakeSearcher(ParseSpace(Json::parse(space)), options);
}

// Runs `trials` sequential trials on ZDT1; returns every trial's objectives.
Points RunZdt1(Searcher& searcher, int trials) {
  Points all;
  for (int t = 0; t < trials; ++t) {
    const std::string id = "t" + std::to_string(t);
    Suggestion s = searcher.Suggest(id);
    EXPECT_EQ(s.kind, Suggestion::Kind::kConfig);
    const std::vector<double> f = Zdt1(s.config);
    Result result;
    result.training_iteration = 1;
    result.metrics = {{"f1", f[0]}, {"f2", f[1]}};
    searcher.OnResult(id, result);
    searcher.OnComplete(id, TrialStatus::kTerminated, &result);
    all.push_back(f);
  }
  return all;
}

double MedianHypervolume(const Json& search, int trials) {
  std::vector<double> volumes;
  for (std::uint64_t seed : {1, 2, 3}) {
    auto searcher = MakeMulti(kZdt1Space, search, seed, trials);
    volumes.push_back(Hypervolume(RunZdt1(*searcher, trials), {1.1, 11}));
  }
  std::sort(volumes.begin(), volumes.end());
  return volumes[1];
}

TEST(MultiObjectiveSearchTest, MotpeAndNsga2BeatRandomOnZdt1) {
  const double random = MedianHypervolume(Json{{"algorithm", "random"}}, 200);
  const double motpe = MedianHypervolume(Json{{"algorithm", "tpe"}}, 200);
  const double nsga2 =
      MedianHypervolume(Json{{"algorithm", "nsga2"}, {"population_size", 20}}, 200);
  EXPECT_GT(motpe, random + 0.3) << "random " << random;
  EXPECT_GT(nsga2, random + 0.3) << "random " << random;
}

// Deb's crowded-comparison tournament (lower rank, then larger crowding distance: the default)
// selects harder than Optuna's dominance tournament (of two random parents the dominating one,
// else the second): on ZDT1 it reaches a larger hypervolume over the same seeds (30 variables,
// 200 seeds: 8.40 against 8.36 at 100 trials, 9.20 against 9.01 at 300; bench/README-search.md).
// Here (6 variables, population 20, 120 trials) the mean over 10 seeds varies by seed set (from
// -0.02 to +0.25 in four sets of 10), so the mean is over 40: +0.10.
TEST(MultiObjectiveSearchTest, Nsga2CrowdedTournamentBeatsDominanceTournament) {
  double crowded = 0, dominance = 0;
  for (std::uint64_t seed = 0; seed < 40; ++seed) {
    for (const char* tournament : {"crowded", "dominance"}) {
      auto searcher = MakeMulti(
          kZdt1Space, Json{{"algorithm", "nsga2"}, {"population_size", 20}, {"tournament", tournament}},
          seed, 120);
      const double volume = Hypervolume(RunZdt1(*searcher, 120), {1.1, 11});
      (std::string(tournament) == "crowded" ? crowded : dominance) += volume / 40;
    }
  }
  EXPECT_GT(crowded, dominance + 0.03) << "dominance " << dominance;
  EXPECT_THROW(
      {
        try {
          MakeMulti(kZdt1Space, Json{{"algorithm", "nsga2"}, {"tournament", "best"}}, 0, 10);
        } catch (const SpecError& e) {
          EXPECT_THAT(e.what(), ::testing::HasSubstr("search.tournament"));
          throw;
        }
      },
      SpecError);
}

TEST(MultiObjectiveSearchTest, SameSeedSameSuggestions) {
  for (const char* algorithm : {"tpe", "nsga2"}) {
    Json search = {{"algorithm", algorithm}, {"population_size", 10}};
    if (std::string(algorithm) == "tpe") search.erase("population_size");
    auto a = MakeMulti(kZdt1Space, search, 5, 60);
    auto b = MakeMulti(kZdt1Space, search, 5, 60);
    EXPECT_EQ(RunZdt1(*a, 60), RunZdt1(*b, 60)) << algorithm;
  }
}

TEST(MultiObjectiveSearchTest, CmaEsAndGpRefuseSeveralObjectives) {
  for (const char* algorithm : {"cmaes", "gp"}) {
    try {
      MakeMulti(kZdt1Space, Json{{"algorithm", algorithm}}, 0, 10);
      ADD_FAILURE() << algorithm << " accepted two objectives";
    } catch (const SpecError& e) {
      EXPECT_THAT(e.what(), ::testing::HasSubstr("optimises one metric, but metric lists 2"));
    }
  }
}

// Constraint f1 >= 0.5 on ZDT1 (half of x0's range infeasible, and the part random search and
// an unconstrained search would favour for f2): the fraction of infeasible trials among the
// last 100 of 200 must fall well below random's one half (MOTPE's kernels straddle the boundary
// at f1 = 0.5, where the constrained front starts: 0.22 with seed 2).
double InfeasibleFraction(const Json& search, std::uint64_t seed) {
  auto searcher = MakeMulti(kZdt1Space, search, seed, 200, ParseConstraints(Json{"f1 >= 0.5"}));
  Points all = RunZdt1(*searcher, 200);
  int infeasible = 0;
  for (int t = 100; t < 200; ++t) infeasible += all[t][0] < 0.5;
  return infeasible / 100.0;
}

TEST(MultiObjectiveSearchTest, ConstraintsSteerMotpeAndNsga2AwayFromInfeasibleConfigs) {
  for (std::uint64_t seed : {1, 2}) {
    EXPECT_LT(InfeasibleFraction(Json{{"algorithm", "tpe"}}, seed), 0.3) << "tpe seed " << seed;
    EXPECT_LT(InfeasibleFraction(Json{{"algorithm", "nsga2"}, {"population_size", 20}}, seed), 0.2)
        << "nsga2 seed " << seed;
    EXPECT_GT(InfeasibleFraction(Json{{"algorithm", "random"}}, seed), 0.35) << "random " << seed;
  }
}

TEST(ConstrainedSearchTest, SingleObjectiveTpeKeepsToTheFeasibleSide) {
  // Minimise -x on [0, 1] subject to x <= 0.3: the unconstrained optimum is infeasible.
  Space space = ParseSpace(Json::parse(R"({"x": {"uniform": [0, 1]}})"));
  SearcherOptions options;
  options.metric = "loss";
  options.mode = Mode::kMin;
  options.constraints = ParseConstraints(Json{"x <= 0.3"});
  options.num_samples = 100;
  options.seed = 4;
  options.algorithm = Json{{"algorithm", "tpe"}};
  auto tpe = MakeSearcher(space, options);
  int infeasible_late = 0;
  double best_feasible = -1;
  for (int t = 0; t < 100; ++t) {
    const std::string id = "t" + std::to_string(t);
    const double x = tpe->Suggest(id).config["x"].get<double>();
    Result result;
    result.training_iteration = 1;
    result.metrics = {{"loss", -x}, {"x", x}};
    tpe->OnResult(id, result);
    tpe->OnComplete(id, TrialStatus::kTerminated, &result);
    if (t >= 50) infeasible_late += x > 0.3;
    if (x <= 0.3) best_feasible = std::max(best_feasible, x);
  }
  // The optimum sits on the boundary, so TPE's kernels around it spill over: 20 of 50 measured;
  // random search: 35 of 50 expected (sd 3.2).
  EXPECT_LT(infeasible_late, 26);
  EXPECT_GT(best_feasible, 0.29);
}

}  // namespace
}  // namespace tune
