#include "search/tpe.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <any>
#include <cmath>
#include <set>
#include <string>
#include <vector>

#include "search/searcher.h"

namespace tune {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr double kPi = 3.14159265358979323846;

SearcherOptions Options(const char* search, std::int64_t num_samples = 1000,
                        std::uint64_t seed = 0, std::int64_t max_concurrent = 1) {
  SearcherOptions options;
  options.metric = "loss";
  options.mode = Mode::kMin;
  options.num_samples = num_samples;
  options.max_concurrent = max_concurrent;
  options.seed = seed;
  options.algorithm = Json::parse(search);
  return options;
}

void Tell(Searcher& searcher, const std::string& id, double loss) {
  Result result;
  result.training_iteration = 1;
  result.metrics["loss"] = loss;
  searcher.OnResult(id, result);
  searcher.OnComplete(id, TrialStatus::kTerminated, &result);
}

double Branin(const Json& c) {
  double x1 = c["x1"], x2 = c["x2"];
  double b = 5.1 / (4 * kPi * kPi), cc = 5.0 / kPi, t = 1.0 / (8 * kPi);
  return std::pow(x2 - b * x1 * x1 + cc * x1 - 6, 2) + 10 * (1 - t) * std::cos(x1) + 10;
}

const char* kBraninSpace = R"({"x1": {"uniform": [-5, 10]}, "x2": {"uniform": [0, 15]}})";

// Best Branin regret after `trials` sequential trials.
double BraninRegret(const char* search, std::uint64_t seed, int trials) {
  Space space = ParseSpace(Json::parse(kBraninSpace));
  auto searcher = MakeSearcher(space, Options(search, trials, seed));
  double best = INFINITY;
  for (int t = 0; t < trials; ++t) {
    std::string id = "t" + std::to_string(t);
    Suggestion suggestion = searcher->Suggest(id);
    EXPECT_EQ(suggestion.kind, Suggestion::Kind::kConfig);
    double value = Branin(suggestion.config);
    best = std::min(best, value);
    Tell(*searcher, id, value);
  }
  return best - 0.397887357729738;
}

double Median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  std::size_t n = values.size();
  return n % 2 ? values[n / 2] : 0.5 * (values[n / 2 - 1] + values[n / 2]);
}

const char* kEveryDomain = R"({
  "lin": {"uniform": [-2, 3]},
  "log": {"loguniform": [1e-5, 1e-1]},
  "q": {"quniform": [0, 1, 0.1]},
  "qlog": {"qloguniform": [1, 1000, 5]},
  "int": {"randint": [-3, 4]},
  "qint": {"qrandint": [0, 100, 7]},
  "logint": {"lograndint": [1, 1000]},
  "normal": {"normal": [10, 2]},
  "qnormal": {"qnormal": [0, 1, 0.25]},
  "cat": {"choice": ["a", 2, {"deep": true}, null]},
  "model": {"layers": [{"width": {"randint": [8, 65]}}, 3]},
  "fixed": "constant"
})";

double SumOfSquares(const Space& space, const Json& config) {
  double sum = 0;
  for (const Parameter& parameter : space.parameters()) {
    const Json& value = config[parameter.pointer];
    if (value.is_number()) {
      double x = value.get<double>();
      if (parameter.domain.kind == DomainKind::kLogUniform ||
          parameter.domain.kind == DomainKind::kLogRandInt) {
        x = std::log(x);
      }
      sum += x * x;
    } else {
      sum += value == Json(2) ? 0 : 1;
    }
  }
  return sum;
}

void ExpectSamplesInsideDomain(const char* search) {
  Space space = ParseSpace(Json::parse(kEveryDomain));
  constexpr int kTrials = 1200;  // x 12 parameters, plus 24 candidates per parameter and trial
  auto searcher = MakeSearcher(space, Options(search, kTrials, 7));
  for (int t = 0; t < kTrials; ++t) {
    std::string id = "t" + std::to_string(t);
    Suggestion suggestion = searcher->Suggest(id);
    ASSERT_EQ(suggestion.kind, Suggestion::Kind::kConfig);
    const Json& config = suggestion.config;
    ASSERT_EQ(config["fixed"], "constant");
    ASSERT_EQ(config["model"]["layers"][1], 3);
    for (const Parameter& parameter : space.parameters()) {
      const Json& value = config[parameter.pointer];
      ASSERT_TRUE(Space::Contains(parameter.domain, value))
          << search << " trial " << t << ": " << parameter.path << " = " << value.dump();
      if (parameter.domain.integer) {
        ASSERT_TRUE(value.is_number_integer()) << parameter.path;
      }
    }
    // A loss that pulls towards the domains' edges (0 and small logs), where clipping matters.
    Tell(*searcher, id, SumOfSquares(space, config));
  }
  EXPECT_EQ(searcher->Suggest("extra").kind, Suggestion::Kind::kFinished);
}

TEST(TpeTest, SamplesStayInsideEveryDomain) { ExpectSamplesInsideDomain(R"({"algorithm": "tpe"})"); }

TEST(TpeTest, MultivariateSamplesStayInsideEveryDomain) {
  ExpectSamplesInsideDomain(R"({"algorithm": "tpe", "multivariate": true,
                                "consider_endpoints": true})");
}

TEST(TpeTest, SameSeedSameConfigsOtherSeedOtherConfigs) {
  Space space = ParseSpace(Json::parse(kEveryDomain));
  auto run = [&](std::uint64_t seed) {
    auto searcher = MakeSearcher(space, Options(R"({"algorithm": "tpe"})", 40, seed));
    std::vector<Json> configs;
    for (int t = 0; t < 40; ++t) {
      std::string id = "t" + std::to_string(t);
      configs.push_back(searcher->Suggest(id).config);
      Tell(*searcher, id, SumOfSquares(space, configs.back()));
    }
    return configs;
  };
  std::vector<Json> first = run(3);
  EXPECT_EQ(first, run(3));
  std::vector<Json> other = run(4);
  EXPECT_NE(first, other);
  // Past the random startup the model is in use, and the seed still fixes everything.
  EXPECT_NE(first[39], other[39]);
}

TEST(TpeTest, BeatsRandomSearchOnBranin) {
  std::vector<double> tpe, random;
  for (std::uint64_t seed = 0; seed < 10; ++seed) {
    tpe.push_back(BraninRegret(R"({"algorithm": "tpe"})", seed, 100));
    random.push_back(BraninRegret(R"({"algorithm": "random"})", seed, 100));
  }
  // Random search's median regret at 100 trials is about 0.3; TPE's is about 0.02.
  EXPECT_LT(Median(tpe), 0.5 * Median(random)) << "tpe " << Median(tpe) << " random "
                                                << Median(random);
  int wins = 0;
  for (std::size_t i = 0; i < tpe.size(); ++i) wins += tpe[i] < random[i];
  EXPECT_GE(wins, 7);
}

// A sphere on 6 integers in -5..5 (bench/suite's rastrigin_int6: at integers Rastrigin is the
// sum of squares), 100 trials. Before tied observations took the narrowest kernel
// (TpeEstimatorTest.TiedObservationsTakeTheNarrowestKernel) no seed of 0..9 reached the optimum
// (best 1-3, median 2; Optuna 5.0's TPESampler: 0 on 6 of 20 seeds); now most do.
TEST(TpeTest, FindsTheOptimumOfASphereOnIntegers) {
  Space space = ParseSpace(Json::parse(R"({"a": {"randint": [-5, 6]}, "b": {"randint": [-5, 6]},
      "c": {"randint": [-5, 6]}, "d": {"randint": [-5, 6]}, "e": {"randint": [-5, 6]},
      "f": {"randint": [-5, 6]}})"));
  std::vector<double> best;
  for (std::uint64_t seed = 0; seed < 10; ++seed) {
    auto searcher = MakeSearcher(space, Options(R"({"algorithm": "tpe"})", 100, seed));
    double lowest = INFINITY;
    for (int t = 0; t < 100; ++t) {
      std::string id = "t" + std::to_string(t);
      const Json config = searcher->Suggest(id).config;
      double value = 0;
      for (const auto& item : config.items()) value += std::pow(item.value().get<double>(), 2);
      lowest = std::min(lowest, value);
      Tell(*searcher, id, value);
    }
    best.push_back(lowest);
  }
  EXPECT_GE(std::count(best.begin(), best.end(), 0.0), 4);
  EXPECT_LE(Median(best), 0.5);
  EXPECT_LE(*std::max_element(best.begin(), best.end()), 2);
}

// Long histories ("window", docs/tpe.md): past the window each set models only its newest
// trials. The configs of `trials` sequential trials on the space of every domain with the search
// object `search` plus `extra` keys; `concurrent` trials are asked before the oldest is told
// (pending trials are in the model through the constant liar).
std::vector<Json> WindowRun(const char* search, const char* extra, std::uint64_t seed, int trials,
                            int concurrent = 1) {
  Space space = ParseSpace(Json::parse(kEveryDomain));
  Json object = Json::parse(search);
  object.update(Json::parse(extra));
  auto searcher = MakeSearcher(space, Options(object.dump().c_str(), trials, seed, concurrent));
  std::vector<Json> configs;
  std::vector<std::string> pending;
  for (int t = 0; t < trials; ++t) {
    std::string id = "t" + std::to_string(t);
    configs.push_back(searcher->Suggest(id).config);
    pending.push_back(id);
    if (static_cast<int>(pending.size()) == concurrent || t == trials - 1) {
      const std::string oldest = pending.front();
      pending.erase(pending.begin());
      Tell(*searcher, oldest, SumOfSquares(space, configs[std::stoul(oldest.substr(1))]));
    }
  }
  return configs;
}

TEST(TpeTest, WithinTheWindowSuggestionsAreThoseWithoutOne) {
  // 150 trials: the bad set reaches 135 trials, within the default window (10,000) and 136.
  for (const char* search : {R"({"algorithm": "tpe"})",
                             R"({"algorithm": "tpe", "multivariate_after": 1000})",
                             R"({"algorithm": "tpe", "gamma": 0.5})"}) {
    const std::vector<Json> all = WindowRun(search, R"({"window": 0})", 5, 150);
    EXPECT_EQ(WindowRun(search, "{}", 5, 150), all) << search;
    EXPECT_EQ(WindowRun(search, R"({"window": 136})", 5, 150), all) << search;
  }
}

TEST(TpeTest, PastTheWindowSuggestionsAreFixedByTheSeed) {
  for (const char* search : {R"({"algorithm": "tpe"})",
                             R"({"algorithm": "tpe", "multivariate_after": 1000})",
                             R"({"algorithm": "tpe", "gamma": 0.5})"}) {
    for (int concurrent : {1, 4}) {
      const char* window = R"({"window": 20})";
      const std::vector<Json> windowed = WindowRun(search, window, 5, 120, concurrent);
      EXPECT_EQ(WindowRun(search, window, 5, 120, concurrent), windowed) << search;
      // The window is in use: the configs part from those of the whole history...
      const std::vector<Json> all = WindowRun(search, R"({"window": 0})", 5, 120, concurrent);
      EXPECT_NE(windowed, all) << search;
      // ...but not before a set outgrows it (10 random, then a bad set of <= 20).
      EXPECT_TRUE(std::equal(windowed.begin(), windowed.begin() + 22, all.begin())) << search;
      EXPECT_NE(WindowRun(search, window, 6, 120, concurrent), windowed) << search;
    }
  }
}

TEST(TpeTest, AWindowedBadSetStillBeatsRandomSearchOnBranin) {
  // A window of 20 on Branin: past ~25 trials the bad set is its newest 20 trials.
  std::vector<double> windowed, random;
  for (std::uint64_t seed = 0; seed < 10; ++seed) {
    windowed.push_back(BraninRegret(R"({"algorithm": "tpe", "window": 20})", seed, 100));
    random.push_back(BraninRegret(R"({"algorithm": "random"})", seed, 100));
  }
  EXPECT_LT(Median(windowed), 0.5 * Median(random)) << "windowed " << Median(windowed)
                                                     << " random " << Median(random);
}

// The density of g(x) is evaluated in float, in unit coordinates of the domain, and with long
// histories only over the kernels near each candidate: a domain far from 0 and 400 trials (so
// g(x) has hundreds of kernels) must still let TPE home in far better than random search.
double FarDomainDistance(const char* search, std::uint64_t seed) {
  Space space = ParseSpace(Json::parse(
      R"({"x": {"uniform": [1e6, 1000001]}, "y": {"loguniform": [1e-8, 1e-6]}})"));
  constexpr int kTrials = 400;
  auto searcher = MakeSearcher(space, Options(search, kTrials, seed));
  double best = INFINITY;
  for (int t = 0; t < kTrials; ++t) {
    std::string id = "t" + std::to_string(t);
    const Json config = searcher->Suggest(id).config;
    const double dx = config["x"].get<double>() - 1000000.3;
    const double dy = std::log(config["y"].get<double>() / 3e-7) / std::log(100.0);
    const double distance = std::sqrt(dx * dx + dy * dy);
    best = std::min(best, distance);
    Tell(*searcher, id, distance);
  }
  return best;
}

TEST(TpeTest, UnivariateThroughoutBeatsRandomSearchOnBranin) {
  // multivariate_after >= num_samples: Optuna 3.1's univariate TPE for the whole run.
  std::vector<double> tpe, random;
  for (std::uint64_t seed = 0; seed < 10; ++seed) {
    tpe.push_back(BraninRegret(R"({"algorithm": "tpe", "multivariate_after": 1000})", seed, 100));
    random.push_back(BraninRegret(R"({"algorithm": "random"})", seed, 100));
  }
  EXPECT_LT(Median(tpe), 0.5 * Median(random));
}

TEST(TpeTest, LongHistoryOnADomainFarFromZero) {
  // The default (joint from the first model-based suggestion) and univariate TPE throughout (its
  // windowed g(x)).
  for (const char* search :
       {R"({"algorithm": "tpe"})", R"({"algorithm": "tpe", "multivariate_after": 100000})"}) {
    std::vector<double> tpe, random;
    for (std::uint64_t seed = 0; seed < 3; ++seed) {
      tpe.push_back(FarDomainDistance(search, seed));
      random.push_back(FarDomainDistance(R"({"algorithm": "random"})", seed));
    }
    // Random search's best distance is about 0.03 (400 points in the unit square).
    EXPECT_LT(Median(tpe), 0.3 * Median(random)) << search << ": tpe " << Median(tpe)
                                                  << " random " << Median(random);
  }
}

TEST(TpeTest, MultivariateBeatsRandomSearchOnBranin) {
  std::vector<double> tpe, random;
  for (std::uint64_t seed = 0; seed < 10; ++seed) {
    tpe.push_back(BraninRegret(R"({"algorithm": "tpe", "multivariate": true})", seed, 100));
    random.push_back(BraninRegret(R"({"algorithm": "random"})", seed, 100));
  }
  EXPECT_LT(Median(tpe), 0.5 * Median(random));
}

// Minimum distance between the configs suggested while 8 trials are pending, after 30 told.
double PendingSpread(const char* search) {
  Space space = ParseSpace(Json::parse(kBraninSpace));
  std::vector<double> spreads;
  for (std::uint64_t seed = 0; seed < 5; ++seed) {
    auto searcher = MakeSearcher(space, Options(search, 100, seed, 8));
    for (int t = 0; t < 30; ++t) {
      std::string id = "t" + std::to_string(t);
      Tell(*searcher, id, Branin(searcher->Suggest(id).config));
    }
    std::vector<std::pair<double, double>> pending;
    for (int t = 30; t < 38; ++t) {
      Json config = searcher->Suggest("t" + std::to_string(t)).config;
      pending.emplace_back(config["x1"].get<double>() / 15, config["x2"].get<double>() / 15);
    }
    double closest = INFINITY;
    for (std::size_t i = 0; i < pending.size(); ++i) {
      for (std::size_t j = i + 1; j < pending.size(); ++j) {
        closest = std::min(closest, std::hypot(pending[i].first - pending[j].first,
                                               pending[i].second - pending[j].second));
      }
    }
    spreads.push_back(closest);
  }
  return Median(spreads);
}

TEST(TpeTest, ConstantLiarSpreadsConcurrentSuggestions) {
  double with_liar = PendingSpread(R"({"algorithm": "tpe", "constant_liar": true})");
  // Pending trials in the model keep it univariate, so the comparison is with univariate TPE
  // without the liar (the joint model's whole-config draws spread a little by themselves).
  double without = PendingSpread(
      R"({"algorithm": "tpe", "constant_liar": false, "multivariate_after": 1000})");
  EXPECT_GT(with_liar, 2 * without) << "liar " << with_liar << " no liar " << without;
}

TEST(TpeTest, LearnsFromPrunedTrials) {
  // Trials with x1 > 0 are pruned at iteration 1 with a bad value; the rest finish. With
  // "rank", pruned trials fill the bad set, so suggestions move to x1 < 0 even though finished
  // trials alone say nothing about x1. ("budget" fits only the trials of the largest budget,
  // the finished ones here, so it cannot learn this; see tpe.h.)
  Space space = ParseSpace(Json::parse(kBraninSpace));
  for (const char* mode : {"rank", "last"}) {
    std::string search = std::string(R"({"algorithm": "tpe", "intermediate": ")") + mode + "\"}";
    auto searcher = MakeSearcher(space, Options(search.c_str(), 200, 1));
    int negative = 0;
    for (int t = 0; t < 120; ++t) {
      std::string id = "t" + std::to_string(t);
      Json config = searcher->Suggest(id).config;
      double x1 = config["x1"];
      if (t >= 60) negative += x1 < 0;
      Result result;
      result.training_iteration = 1;
      result.metrics["loss"] = x1 > 0 ? 100.0 : 50.0;
      searcher->OnResult(id, result);
      if (x1 > 0) {
        searcher->OnComplete(id, TrialStatus::kStopped, &result);
      } else {
        result.training_iteration = 10;
        result.metrics["loss"] = 1.0 + std::fabs(config["x2"].get<double>() - 7);
        searcher->OnResult(id, result);
        searcher->OnComplete(id, TrialStatus::kTerminated, &result);
      }
    }
    EXPECT_GT(negative, 45) << mode;  // of 60; x1 < 0 is a third of the range
  }
}

TEST(TpeTest, FailedTrialsAndMissingMetricsAreIgnored) {
  Space space = ParseSpace(Json::parse(kBraninSpace));
  auto searcher = MakeSearcher(space, Options(R"({"algorithm": "tpe", "n_startup_trials": 2})"));
  for (int t = 0; t < 30; ++t) {
    std::string id = "t" + std::to_string(t);
    Json config = searcher->Suggest(id).config;
    ASSERT_TRUE(config.contains("x1"));
    if (t % 3 == 0) {
      searcher->OnComplete(id, TrialStatus::kError, nullptr);
    } else if (t % 3 == 1) {
      Result result;
      result.metrics["other"] = 1;
      searcher->OnResult(id, result);
      searcher->OnComplete(id, TrialStatus::kTerminated, &result);
    } else {
      Tell(*searcher, id, Branin(config));
    }
  }
}

TEST(TpeTest, PointsToEvaluateComeFirst) {
  Space space = ParseSpace(Json::parse(kBraninSpace));
  SearcherOptions options = Options(R"({"algorithm": "tpe"})", 5);
  options.points_to_evaluate = Json::parse(R"([{"x1": 1.5}, {"x1": 2, "x2": 3}])");
  auto searcher = MakeSearcher(space, options);
  EXPECT_EQ(searcher->TotalTrials(), 5);
  EXPECT_EQ(searcher->Suggest("a").config["x1"], 1.5);
  Json second = searcher->Suggest("b").config;
  EXPECT_EQ(second["x1"], 2);
  EXPECT_EQ(second["x2"], 3);
  for (const char* id : {"c", "d", "e"}) {
    EXPECT_EQ(searcher->Suggest(id).kind, Suggestion::Kind::kConfig);
  }
  EXPECT_EQ(searcher->Suggest("f").kind, Suggestion::Kind::kFinished);
}

TEST(TpeTest, MaximisesWhenModeIsMax) {
  Space space = ParseSpace(Json::parse(R"({"x": {"uniform": [0, 1]}})"));
  SearcherOptions options = Options(R"({"algorithm": "tpe"})", 80, 2);
  options.mode = Mode::kMax;
  auto searcher = MakeSearcher(space, options);
  double late = 0;
  for (int t = 0; t < 80; ++t) {
    std::string id = "t" + std::to_string(t);
    double x = searcher->Suggest(id).config["x"];
    if (t >= 40) late += x;
    Tell(*searcher, id, x);  // "loss" is maximised here
  }
  EXPECT_GT(late / 40, 0.7);
}

std::string MakeError(const char* space_text, const SearcherOptions& options) {
  try {
    MakeSearcher(ParseSpace(Json::parse(space_text)), options);
  } catch (const SpecError& error) {
    return error.what();
  }
  return "";
}

TEST(TpeTest, BadOptionsNameTheirPathAndReason) {
  auto error = [](const char* search) { return MakeError(kBraninSpace, Options(search)); };
  EXPECT_EQ(error(R"({"algorithm": "tpe", "seed": 1, "n_startup_trials": 5, "gamma": 0.25,
                      "n_ei_candidates": 10, "prior_weight": 2, "consider_endpoints": true,
                      "multivariate": true, "constant_liar": false, "intermediate": "budget",
                      "budget_attr": "epoch", "multivariate_after": 20,
                      "categorical_prior_weight": 0.5})"),
            "");
  EXPECT_EQ(error(R"({"algorithm": "tpe", "n_startup_trails": 5})"),
            "search.n_startup_trails: unknown option (did you mean \"n_startup_trials\"?)");
  EXPECT_EQ(error(R"({"algorithm": "tpe", "multivarite": true})"),
            "search.multivarite: unknown option (did you mean \"multivariate\"?)");
  EXPECT_EQ(error(R"({"algorithm": "tpe", "gamma": 0})"),
            "search.gamma: must be a number in (0, 1] (the fraction of trials in the good set), "
            "got 0");
  EXPECT_EQ(error(R"({"algorithm": "tpe", "gamma": "auto"})"),
            "search.gamma: expected a number, got \"auto\"");
  EXPECT_EQ(error(R"({"algorithm": "tpe", "n_startup_trials": -1})"),
            "search.n_startup_trials: must be >= 0, got -1");
  EXPECT_EQ(error(R"({"algorithm": "tpe", "n_ei_candidates": 0})"),
            "search.n_ei_candidates: must be >= 1, got 0");
  EXPECT_EQ(error(R"({"algorithm": "tpe", "n_ei_candidates": 2.5})"),
            "search.n_ei_candidates: expected an integer, got 2.5");
  EXPECT_EQ(error(R"({"algorithm": "tpe", "multivariate": 1})"),
            "search.multivariate: expected true or false, got 1");
  EXPECT_EQ(error(R"({"algorithm": "tpe", "prior_weight": -1})"),
            "search.prior_weight: must be > 0, got -1");
  EXPECT_EQ(error(R"({"algorithm": "tpe", "categorical_prior_weight": 0})"),
            "search.categorical_prior_weight: must be > 0, got 0");
  EXPECT_EQ(error(R"({"algorithm": "tpe", "multivariate_after": -1})"),
            "search.multivariate_after: must be >= 0, got -1");
  EXPECT_EQ(error(R"({"algorithm": "tpe", "window": -5})"), "search.window: must be >= 0, got -5");
  EXPECT_EQ(error(R"({"algorithm": "tpe", "intermediate": "rnak"})"),
            "search.intermediate: must be one of last, rank, budget, got \"rnak\" (did you mean "
            "\"rank\"?)");
  EXPECT_EQ(error(R"({"algorithm": "tpe", "budget_attr": ""})"),
            "search.budget_attr: expected a non-empty string, got \"\"");
  EXPECT_EQ(error(R"({"algorithm": "random", "multivariate": true})"),
            "search.multivariate: applies only to algorithm \"tpe\", not \"random\"");
}

TEST(TpeTest, GridParametersAreASpecError) {
  EXPECT_THAT(MakeError(R"({"x": {"uniform": [0, 1]}, "opt": {"grid_search": ["sgd", "adam"]}})",
                        Options(R"({"algorithm": "tpe"})")),
              StartsWith("space.opt: grid_search cannot be used with algorithm \"tpe\""));
  EXPECT_THAT(MakeError(kBraninSpace, [] {
                SearcherOptions options = Options(R"({"algorithm": "tpe"})");
                options.metric.clear();
                return options;
              }()),
              HasSubstr("tpe needs a metric"));
}

// The parsed options, as the "search" object that would set them.
Json ParsedTpe(const char* search, std::int64_t max_concurrent) {
  SearcherConfig config =
      ParseSearcherOptions(Json::parse(search), "search", {"loss", Mode::kMin, 10, max_concurrent});
  EXPECT_EQ(config.name(), "tpe");
  const auto& o = std::any_cast<const TpeOptions&>(config.options);
  const char* intermediate[] = {"last", "rank", "budget"};
  return {{"n_startup_trials", o.n_startup_trials},
          {"n_ei_candidates", o.n_ei_candidates},
          {"gamma", o.gamma},
          {"prior_weight", o.prior_weight},
          {"categorical_prior_weight", o.categorical_prior_weight},
          {"consider_endpoints", o.consider_endpoints},
          {"multivariate", o.multivariate},
          {"multivariate_after", o.multivariate_after},
          {"window", o.window},
          {"constant_liar", o.constant_liar},
          {"intermediate", intermediate[static_cast<int>(o.intermediate)]},
          {"budget_attr", o.budget_attr}};
}

TEST(TpeTest, ParseSearcherOptionsGivesTpeOptions) {
  EXPECT_EQ(ParsedTpe(R"({"algorithm": "tpe"})", 1), Json::parse(R"({"n_startup_trials": 10,
      "n_ei_candidates": 24, "gamma": 0.0, "prior_weight": 1.0, "categorical_prior_weight": 4.0,
      "consider_endpoints": false, "multivariate": false, "multivariate_after": 0,
      "window": 10000, "constant_liar": false, "intermediate": "last", "budget_attr": "training_iteration"})"));
  // The constant liar is on by default unless trials run one at a time.
  EXPECT_EQ(ParsedTpe(R"({"algorithm": "tpe"})", 0)["constant_liar"], true);
  EXPECT_EQ(ParsedTpe(R"({"algorithm": "tpe"})", 8)["constant_liar"], true);
  const char* every = R"({"n_startup_trials": 5, "n_ei_candidates": 10, "gamma": 0.25,
      "prior_weight": 2.0, "categorical_prior_weight": 0.5, "consider_endpoints": true,
      "multivariate": true, "multivariate_after": 20, "window": 0, "constant_liar": true,
      "intermediate": "budget", "budget_attr": "epoch"})";
  Json search = Json::parse(every);
  search["algorithm"] = "tpe";
  search["n_ei_candidates"] = 10.0;  // a whole float is an integer (CLI overrides)
  EXPECT_EQ(ParsedTpe(search.dump().c_str(), 1), Json::parse(every));
  EXPECT_EQ(ParsedTpe(R"({"algorithm": "tpe", "intermediate": "rank"})", 1)["intermediate"],
            "rank");
}

}  // namespace
}  // namespace tune
