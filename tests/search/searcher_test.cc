#include "search/searcher.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

namespace tune {
namespace {

using ::testing::StartsWith;

Json Parse(const char* text) { return Json::parse(text); }

SearcherOptions Options(std::int64_t num_samples, const char* search = "{}",
                        const char* points = "[]") {
  SearcherOptions options;
  options.num_samples = num_samples;
  options.algorithm = Parse(search);
  options.points_to_evaluate = Parse(points);
  return options;
}

// Every config the searcher gives until it reports kFinished (and checks that it keeps saying
// so). Fails the test past `limit` configs.
std::vector<Json> Drain(Searcher& searcher, std::size_t limit = 1000) {
  std::vector<Json> configs;
  for (std::size_t i = 0; i <= limit; ++i) {
    Suggestion suggestion = searcher.Suggest("t_" + std::to_string(i));
    if (suggestion.kind == Suggestion::Kind::kFinished) {
      EXPECT_EQ(searcher.Suggest("again").kind, Suggestion::Kind::kFinished);
      return configs;
    }
    EXPECT_EQ(suggestion.kind, Suggestion::Kind::kConfig);
    configs.push_back(suggestion.config);
  }
  ADD_FAILURE() << "searcher never finished";
  return configs;
}

// The message of the SpecError MakeSearcher throws, or "" when it does not throw.
std::string MakeError(const Space& space, const SearcherOptions& options) {
  try {
    MakeSearcher(space, options);
  } catch (const SpecError& error) {
    return error.what();
  }
  return "";
}

const char* kMixedSpace = R"({
  "lr": {"loguniform": [1e-4, 0.1]},
  "hidden": {"choice": [64, 128, 256]},
  "layers": {"randint": [1, 4]},
  "epochs": 5
})";

TEST(SearcherTest, RandomGivesNumSamplesConfigsInsideTheSpaceThenFinishes) {
  Space space = ParseSpace(Parse(kMixedSpace));
  auto searcher = MakeSearcher(space, Options(25));
  EXPECT_EQ(searcher->TotalTrials(), 25);
  std::vector<Json> configs = Drain(*searcher);
  ASSERT_EQ(configs.size(), 25u);
  std::set<double> learning_rates;
  for (const Json& config : configs) {
    EXPECT_EQ(config["epochs"], 5);
    for (const Parameter& parameter : space.parameters()) {
      EXPECT_TRUE(Space::Contains(parameter.domain, config[parameter.pointer]))
          << parameter.path << " = " << config[parameter.pointer].dump();
    }
    EXPECT_TRUE(config["layers"].is_number_integer());
    learning_rates.insert(config["lr"].get<double>());
  }
  EXPECT_EQ(learning_rates.size(), 25u);  // fresh draws every time
}

TEST(SearcherTest, SameSeedSameConfigsOtherSeedOtherConfigs) {
  Space space = ParseSpace(Parse(kMixedSpace));
  SearcherOptions options = Options(10);
  options.seed = 7;
  auto first = Drain(*MakeSearcher(space, options));
  auto second = Drain(*MakeSearcher(space, options));
  EXPECT_EQ(first, second);
  options.seed = 8;
  EXPECT_NE(first, Drain(*MakeSearcher(space, options)));
}

TEST(SearcherTest, GridIsCrossedAndRepeatedNumSamplesTimesWithFreshRandomValues) {
  Space space = ParseSpace(Parse(R"({
    "a": {"grid_search": [1, 2, 3]}, "b": {"grid_search": ["x", "y"]},
    "r": {"uniform": [0, 1]}})"));
  auto searcher = MakeSearcher(space, Options(2, R"({"algorithm": "grid"})"));
  EXPECT_EQ(searcher->TotalTrials(), 12);
  std::vector<Json> configs = Drain(*searcher);
  ASSERT_EQ(configs.size(), 12u);
  const std::vector<std::pair<Json, Json>> grid = {{1, "x"}, {2, "x"}, {3, "x"},
                                                   {1, "y"}, {2, "y"}, {3, "y"}};
  std::set<double> randoms;
  for (std::size_t i = 0; i < configs.size(); ++i) {
    EXPECT_EQ(configs[i]["a"], grid[i % 6].first) << i;
    EXPECT_EQ(configs[i]["b"], grid[i % 6].second) << i;
    randoms.insert(configs[i]["r"].get<double>());
  }
  EXPECT_EQ(randoms.size(), 12u);  // drawn anew for every grid point and repetition
}

TEST(SearcherTest, GridAndRandomAreTheSameGenerator) {
  Space space = ParseSpace(Parse(R"({"a": {"grid_search": [1, 2]}, "r": {"normal": [0, 1]}})"));
  auto grid = Drain(*MakeSearcher(space, Options(3, R"({"algorithm": "grid"})")));
  auto random = Drain(*MakeSearcher(space, Options(3, R"({"algorithm": "random"})")));
  EXPECT_EQ(grid.size(), 6u);
  EXPECT_EQ(grid, random);
}

TEST(SearcherTest, PointsToEvaluateComeFirstAndReplaceSamples) {
  Space space = ParseSpace(Parse(kMixedSpace));
  auto searcher = MakeSearcher(
      space, Options(4, "{}", R"([{"lr": 0.01, "hidden": 64, "layers": 2}, {"lr": 0.001}])"));
  EXPECT_EQ(searcher->TotalTrials(), 4);
  std::vector<Json> configs = Drain(*searcher);
  ASSERT_EQ(configs.size(), 4u);
  EXPECT_EQ(configs[0], Parse(R"({"lr": 0.01, "hidden": 64, "layers": 2, "epochs": 5})"));
  // A partial point: its value kept, the rest sampled from the space.
  EXPECT_EQ(configs[1]["lr"], 0.001);
  EXPECT_EQ(configs[1]["epochs"], 5);
  EXPECT_TRUE(Space::Contains(space.parameters()[0].domain, configs[1]["hidden"]));
  EXPECT_TRUE(configs[1]["layers"].is_number_integer());
  for (std::size_t i = 2; i < 4; ++i) {
    EXPECT_NE(configs[i]["lr"], 0.01);
    EXPECT_NE(configs[i]["lr"], 0.001);
  }
}

TEST(SearcherTest, PointsBeyondNumSamplesAreAllEvaluated) {
  Space space = ParseSpace(Parse(kMixedSpace));
  auto searcher =
      MakeSearcher(space, Options(1, "{}", R"([{"lr": 0.01}, {"lr": 0.02}, {"lr": 0.03}])"));
  EXPECT_EQ(searcher->TotalTrials(), 3);
  std::vector<Json> configs = Drain(*searcher);
  ASSERT_EQ(configs.size(), 3u);
  EXPECT_EQ(configs[2]["lr"], 0.03);
}

TEST(SearcherTest, PointsExpandOverTheGridParametersTheyLeaveOpen) {
  // Ray Tune: a point replaces one repetition of the grid; grid parameters it does not set are
  // still crossed. 1 (a fixed) + 2 (a open) + (3 - 2 points) * 2 = 5 trials.
  Space space = ParseSpace(Parse(R"({"a": {"grid_search": [1, 2]}, "r": {"uniform": [0, 1]}})"));
  auto searcher = MakeSearcher(space, Options(3, "{}", R"([{"a": 2, "r": 0.5}, {"r": 0.25}])"));
  EXPECT_EQ(searcher->TotalTrials(), 5);
  std::vector<Json> configs = Drain(*searcher);
  ASSERT_EQ(configs.size(), 5u);
  EXPECT_EQ(configs[0], Parse(R"({"a": 2, "r": 0.5})"));
  EXPECT_EQ(configs[1], Parse(R"({"a": 1, "r": 0.25})"));
  EXPECT_EQ(configs[2], Parse(R"({"a": 2, "r": 0.25})"));
  EXPECT_EQ(configs[3]["a"], 1);
  EXPECT_EQ(configs[4]["a"], 2);
  EXPECT_NE(configs[3]["r"], configs[4]["r"]);
}

TEST(SearcherTest, NestedPartialPointsAreCompleted) {
  Space space = ParseSpace(Parse(R"({
    "model": {"hidden": {"choice": [64, 128]}, "act": {"choice": ["relu", "gelu"]}, "bias": true},
    "layers": [{"randint": [1, 4]}, 7]})"));
  auto searcher = MakeSearcher(space, Options(1, "{}", R"([{"model": {"hidden": 128}}])"));
  std::vector<Json> configs = Drain(*searcher);
  ASSERT_EQ(configs.size(), 1u);
  EXPECT_EQ(configs[0]["model"]["hidden"], 128);
  EXPECT_TRUE(configs[0]["model"]["act"] == "relu" || configs[0]["model"]["act"] == "gelu");
  EXPECT_EQ(configs[0]["model"]["bias"], true);
  EXPECT_EQ(configs[0]["layers"][1], 7);
}

TEST(SearcherTest, IntegralFloatsInPointsBecomeIntegers) {
  Space space = ParseSpace(Parse(kMixedSpace));
  auto configs = Drain(*MakeSearcher(space, Options(1, "{}", R"([{"layers": 3.0}])")));
  ASSERT_EQ(configs.size(), 1u);
  EXPECT_TRUE(configs[0]["layers"].is_number_integer());
  EXPECT_EQ(configs[0]["layers"], 3);
}

TEST(SearcherTest, BadPointsNameTheirPathAndReason) {
  Space space = ParseSpace(Parse(R"({
    "lr": {"loguniform": [1e-4, 0.1]}, "hidden": {"choice": [64, 128]},
    "layers": {"randint": [1, 4]}, "batch": {"grid_search": [32, 64]},
    "model": {"width": {"uniform": [0, 1]}}, "epochs": 5, "tags": [1, 2]})"));
  auto error = [&](const char* points) { return MakeError(space, Options(1, "{}", points)); };
  EXPECT_EQ(error(R"([{}, {}, {"lr": 0.5}])"),
            "points_to_evaluate[2].lr: 0.5 is not in loguniform [0.0001, 0.1]");
  EXPECT_EQ(error(R"([{"hidden": 32}])"),
            "points_to_evaluate[0].hidden: 32 is not in choice [64, 128]");
  EXPECT_EQ(error(R"([{"layers": 4}])"),
            "points_to_evaluate[0].layers: 4 is not in randint [1, 4)");
  EXPECT_EQ(error(R"([{"layers": "2"}])"),
            "points_to_evaluate[0].layers: \"2\" is not in randint [1, 4)");
  EXPECT_EQ(error(R"([{"batch": 48}])"),
            "points_to_evaluate[0].batch: 48 is not in grid_search [32, 64]");
  EXPECT_EQ(error(R"([{"model": {"width": 2}}])"),
            "points_to_evaluate[0].model.width: 2 is not in uniform [0, 1]");
  EXPECT_EQ(error(R"([{"lrr": 0.01}])"),
            "points_to_evaluate[0].lrr: is not in the space (did you mean \"lr\"?)");
  EXPECT_THAT(error(R"([{"epochs": 6}])"), StartsWith("points_to_evaluate[0].epochs: the space "
                                                      "holds the constant 5 here, got 6"));
  EXPECT_THAT(error(R"([{"model": 3}])"),
              StartsWith("points_to_evaluate[0].model: must be an object like the space"));
  EXPECT_THAT(error(R"([{"tags": [1]}])"),
              StartsWith("points_to_evaluate[0].tags: must have 2 elements like the space"));
  EXPECT_THAT(error(R"([{"lr": 0.01}, 5])"),
              StartsWith("points_to_evaluate[1]: must be an object (a partial config)"));
  EXPECT_THAT(MakeError(space,
                        [] {
                          SearcherOptions options = Options(1);
                          options.points_to_evaluate = Json::object();
                          return options;
                        }()),
              StartsWith("points_to_evaluate: must be an array"));
  // Repeating a constant's own value is fine.
  EXPECT_EQ(error(R"([{"epochs": 5, "tags": [1, 2], "batch": 64}])"), "");
}

TEST(SearcherTest, BadOptionsNameTheirPathAndReason) {
  Space space = ParseSpace(Parse(kMixedSpace));
  auto error = [&](const char* search) { return MakeError(space, Options(1, search)); };
  // Options() sets no metric, and TPE cannot model without one.
  EXPECT_EQ(error(R"({"algorithm": "tpe"})"), "search.algorithm: tpe needs a metric to optimise");
  EXPECT_EQ(error(R"({"algorithm": "rnadom"})"),
            "search.algorithm: must be one of random, grid, tpe, nsga2, cmaes, gp, got \"rnadom\" (did you mean "
            "\"random\"?)");
  EXPECT_EQ(error(R"({"algorithm": 3})"), "search.algorithm: expected a non-empty string, got 3");
  EXPECT_EQ(error(R"({"sed": 1})"), "search.sed: unknown option (did you mean \"seed\"?)");
  EXPECT_EQ(error(R"({"colour": 1})"), "search.colour: unknown option");
  EXPECT_EQ(error(R"({"n_startup_trials": 5})"),
            "search.n_startup_trials: applies only to algorithm \"tpe\" or \"cmaes\" or \"gp\", not "
            "\"random\"");
  EXPECT_EQ(error(R"({"algorithm": "grid", "gamma": 0.2})"),
            "search.gamma: applies only to algorithm \"tpe\", not \"grid\"");
  EXPECT_EQ(error(R"({"seed": -1})"), "search.seed: must be >= 0, got -1");
  EXPECT_EQ(error(R"({"seed": "1"})"), "search.seed: expected an integer, got \"1\"");
  EXPECT_EQ(error(R"([1])"), "search: expected an object, got [1]");
  EXPECT_EQ(error(R"({"algorithm": "random", "seed": 3})"), "");
  EXPECT_EQ(error("null"), "");

  SearcherOptions options = Options(1, R"({"bogus": 1})");
  options.path = "experiment.search";
  EXPECT_THAT(MakeError(space, options), StartsWith("experiment.search.bogus: unknown option"));
  EXPECT_EQ(MakeError(space, Options(0)), "num_samples: must be >= 1, got 0");
  // A typo of another searcher's option still gets its did-you-mean.
  EXPECT_EQ(error(R"({"n_startup_trails": 5})"),
            "search.n_startup_trails: unknown option (did you mean \"n_startup_trials\"?)");
}

TEST(SearcherTest, ParseSearcherOptionsThenMakeSearcher) {
  EXPECT_EQ(Searchers().Names(), "random, grid, tpe, nsga2, cmaes, gp");
  SearcherContext context{"val_acc", Mode::kMax, 6};
  context.seed = 4;
  SearcherConfig config = ParseSearcherOptions(Json(nullptr), "search", context);
  EXPECT_EQ(config.name(), "random");
  EXPECT_EQ(config.context.seed, 4u);
  EXPECT_EQ(config.context.space, nullptr);
  // The search object's seed (2.0 as a CLI override may give it) replaces the context's.
  config = ParseSearcherOptions(Parse(R"({"algorithm": "grid", "seed": 2.0})"), "search", context);
  EXPECT_EQ(config.name(), "grid");
  EXPECT_EQ(config.context.seed, 2u);
  EXPECT_EQ(config.context.num_samples, 6);
  EXPECT_EQ(config.context.metric, "val_acc");

  Space space = ParseSpace(Parse(kMixedSpace));
  SearcherOptions options = Options(6, R"({"algorithm": "grid", "seed": 2})");
  options.seed = 2;
  EXPECT_EQ(Drain(*MakeSearcher(space, config)), Drain(*MakeSearcher(space, options)));
  // One config builds any number of searchers (resume, tests).
  EXPECT_EQ(Drain(*MakeSearcher(space, config)), Drain(*MakeSearcher(space, config)));
}

TEST(SearcherTest, ParseSearcherOptionsChecksWhatNeedsNoSpace) {
  auto error = [](const char* search, SearcherContext context) {
    try {
      ParseSearcherOptions(Parse(search), "experiment.search", context);
    } catch (const SpecError& error) {
      return std::string(error.what());
    }
    return std::string();
  };
  const SearcherContext ok{"loss", Mode::kMin, 10};
  EXPECT_EQ(error(R"({"algorithm": "tpe", "gamma": 2})", ok),
            "experiment.search.gamma: must be a number in (0, 1] (the fraction of trials in the "
            "good set), got 2");
  EXPECT_EQ(error(R"({"algorithm": "tpe"})", SearcherContext{}),
            "experiment.search.algorithm: tpe needs a metric to optimise");
  EXPECT_EQ(error("{}", SearcherContext{"loss", Mode::kMin, 0}),
            "num_samples: must be >= 1, got 0");
  SearcherContext points = ok;
  points.points_to_evaluate = Json::object();
  EXPECT_EQ(error("{}", points), "points_to_evaluate: must be an array of configs");
  // Points are checked against the space by MakeSearcher, which has it.
  points.points_to_evaluate = Parse(R"([{"nope": 1}])");
  EXPECT_EQ(error("{}", points), "");
  Space space = ParseSpace(Parse(kMixedSpace));
  SearcherConfig config = ParseSearcherOptions(Json(nullptr), "search", points);
  try {
    MakeSearcher(space, config);
    ADD_FAILURE() << "no SpecError";
  } catch (const SpecError& error) {
    EXPECT_THAT(error.what(), StartsWith("points_to_evaluate[0].nope: is not in the space"));
  }
}

TEST(SearcherTest, ResultsDoNotChangeTheSequence) {
  // The basic generator ignores history, so replaying with or without results agrees (resume).
  Space space = ParseSpace(Parse(kMixedSpace));
  auto quiet = MakeSearcher(space, Options(5));
  auto busy = MakeSearcher(space, Options(5));
  for (int i = 0; i < 5; ++i) {
    std::string id = "t_" + std::to_string(i);
    Json expected = quiet->Suggest(id).config;
    Suggestion got = busy->Suggest(id);
    Result result;
    result.metrics = {{"val_acc", 0.5}};
    busy->OnResult(id, result);
    busy->OnComplete(id, TrialStatus::kTerminated, &result);
    EXPECT_EQ(got.config, expected);
  }
}

}  // namespace
}  // namespace tune
