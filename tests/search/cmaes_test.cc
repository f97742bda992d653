#include "search/cmaes.h"

#include <gtest/gtest.h>

#include <cmath>
#include <deque>
#include <set>
#include <string>

#include "search/searcher.h"

namespace tune {
namespace {

std::unique_ptr<Searcher> MakeCma(const Space& space, std::uint64_t seed, int trials,
                                  Json extra = Json::object()) {
  SearcherOptions options;
  options.metric = "loss";
  options.mode = Mode::kMin;
  options.num_samples = trials;
  options.seed = seed;
  options.algorithm = Json{{"algorithm", "cmaes"}};
  options.algorithm.update(extra);
  return MakeSearcher(space, options);
}

template <typename F>
double Minimise(Searcher& searcher, int trials, F f, std::vector<Json>* configs = nullptr) {
  double best = INFINITY;
  for (int t = 0; t < trials; ++t) {
    const std::string id = "t" + std::to_string(t);
    Json config = searcher.Suggest(id).config;
    Result result;
    result.training_iteration = 1;
    result.metrics["loss"] = f(config);
    best = std::min(best, result.metrics["loss"].get<double>());
    searcher.OnResult(id, result);
    searcher.OnComplete(id, TrialStatus::kTerminated, &result);
    if (configs != nullptr) configs->push_back(config);
  }
  return best;
}

const char* kSphere4 = R"({"x0": {"uniform": [-5, 5]}, "x1": {"uniform": [-5, 5]},
                           "x2": {"uniform": [-5, 5]}, "x3": {"uniform": [-5, 5]}})";

double Sphere4(const Json& c) {
  double sum = 0;
  for (int i = 0; i < 4; ++i) {
    const double x = c["x" + std::to_string(i)].get<double>() - 1.0;
    sum += x * x;
  }
  return sum;
}

TEST(CmaEsTest, ConvergesOnASphereAndIsDeterministic) {
  Space space = ParseSpace(Json::parse(kSphere4));
  auto cma = MakeCma(space, 7, 400);
  const double best = Minimise(*cma, 400, Sphere4);
  EXPECT_LT(best, 1e-5);
  auto again = MakeCma(space, 7, 400);
  EXPECT_EQ(Minimise(*again, 400, Sphere4), best);
}

TEST(CmaEsTest, ConvergesOnRosenbrock) {
  Space space = ParseSpace(Json::parse(R"({"x": {"uniform": [-2, 2]}, "y": {"uniform": [-2, 2]}})"));
  auto cma = MakeCma(space, 1, 1500);
  const double best = Minimise(*cma, 1500, [](const Json& c) {
    const double x = c["x"], y = c["y"];
    return 100 * (y - x * x) * (y - x * x) + (1 - x) * (1 - x);
  });
  EXPECT_LT(best, 1e-4);
}

TEST(CmaEsTest, LogScaleAndLogLoss) {
  Space space = ParseSpace(Json::parse(R"({"lr": {"loguniform": [1e-6, 1]}, "u": {"uniform": [0, 1]}})"));
  auto cma = MakeCma(space, 2, 300);
  const double best = Minimise(*cma, 300, [](const Json& c) {
    const double l = std::log10(c["lr"].get<double>()) + 3, u = c["u"].get<double>() - 0.5;
    return l * l + u * u;
  });
  EXPECT_LT(best, 1e-6);
}

// Sphere in two continuous coordinates plus an integer one whose best value is 3: once the
// continuous part has converged, plain CMA-ES has shrunk the integer coordinate's spread to
// nothing and proposes one value only; with the margin other values keep coming.
std::size_t DistinctIntegersAtTheEnd(bool margin) {
  Space space = ParseSpace(Json::parse(
      R"({"a": {"uniform": [-1, 1]}, "b": {"uniform": [-1, 1]}, "n": {"randint": [0, 10]}})"));
  auto cma = MakeCma(space, 4, 800, Json{{"with_margin", margin}, {"restart_strategy", "none"}});
  std::vector<Json> configs;
  Minimise(*cma, 800, [](const Json& c) {
    const double a = c["a"], b = c["b"];
    const double n = c["n"].get<double>();
    return a * a + b * b + 0.01 * (n - 3) * (n - 3);
  }, &configs);
  std::set<std::int64_t> seen;
  for (std::size_t i = configs.size() - 200; i < configs.size(); ++i) {
    EXPECT_TRUE(configs[i]["n"].is_number_integer());
    seen.insert(configs[i]["n"].get<std::int64_t>());
  }
  return seen.size();
}

// A two-valued integer starts with the mean (0.5) exactly on the boundary between its values;
// the margin must not freeze it there (a zero scale A would make every later step 0 / 0).
TEST(CmaEsTest, ATwoValuedIntegerStillMovesAndFindsItsBestValue) {
  Space space = ParseSpace(Json::parse(
      R"({"a": {"uniform": [-1, 1]}, "flag": {"randint": [0, 2]}, "n": {"randint": [0, 3]}})"));
  auto cma = MakeCma(space, 3, 300, Json{{"restart_strategy", "none"}});
  std::vector<Json> configs;
  const double best = Minimise(*cma, 300, [](const Json& c) {
    const double a = c["a"];
    return a * a + (c["flag"].get<int>() == 1 ? 0.0 : 1.0) + 0.1 * std::abs(c["n"].get<int>() - 2);
  }, &configs);
  EXPECT_LT(best, 1e-3);
  std::set<std::int64_t> flags;
  for (const Json& config : configs) flags.insert(config["flag"].get<std::int64_t>());
  EXPECT_EQ(flags.size(), 2u);
  EXPECT_EQ(configs.back()["flag"], 1);
  EXPECT_EQ(configs.back()["n"], 2);
}

TEST(CmaEsTest, MarginKeepsIntegerCoordinatesFromCollapsing) {
  EXPECT_EQ(DistinctIntegersAtTheEnd(false), 1u);
  EXPECT_GE(DistinctIntegersAtTheEnd(true), 2u);
}

TEST(CmaEsTest, ParallelTrialsAreBatchedIntoGenerations) {
  // Four trials in flight at all times; results arrive in suggestion order.
  Space space = ParseSpace(Json::parse(kSphere4));
  auto cma = MakeCma(space, 3, 600);
  std::deque<std::pair<std::string, Json>> running;
  double best = INFINITY;
  for (int t = 0; t < 600; ++t) {
    const std::string id = "t" + std::to_string(t);
    running.emplace_back(id, cma->Suggest(id).config);
    if (running.size() < 4) continue;
    auto [done, config] = running.front();
    running.pop_front();
    Result result;
    result.metrics["loss"] = Sphere4(config);
    best = std::min(best, Sphere4(config));
    cma->OnComplete(done, TrialStatus::kTerminated, &result);
  }
  EXPECT_LT(best, 1e-4);
}

// How many of trials 1000..2000 on a 2-D sphere land farther than 0.1 from its minimum: the
// run has converged long before, so only a restart (a new random mean) sends trials away.
int FarTrialsAfterConvergence(const char* restart) {
  Space space = ParseSpace(Json::parse(R"({"x": {"uniform": [0, 1]}, "y": {"uniform": [0, 1]}})"));
  auto cma = MakeCma(space, 5, 2000, Json{{"restart_strategy", restart}});
  std::vector<Json> configs;
  auto f = [](const Json& c) {
    const double x = c["x"].get<double>() - 0.3, y = c["y"].get<double>() - 0.6;
    return x * x + y * y;
  };
  Minimise(*cma, 2000, f, &configs);
  int far = 0;
  for (std::size_t i = 1000; i < configs.size(); ++i) far += f(configs[i]) > 0.01 ? 1 : 0;
  return far;
}

TEST(CmaEsTest, IpopRestartsWhenConverged) {
  EXPECT_EQ(FarTrialsAfterConvergence("none"), 0);
  EXPECT_GT(FarTrialsAfterConvergence("ipop"), 0);
}

TEST(CmaEsTest, OptionsAreValidated) {
  SearcherContext context{"loss", Mode::kMin, 10};
  EXPECT_THROW(ParseSearcherOptions(Json{{"algorithm", "cmaes"}, {"popsize", 1}}, "search", context),
               SpecError);
  EXPECT_THROW(
      ParseSearcherOptions(Json{{"algorithm", "cmaes"}, {"restart_strategy", "bipop"}}, "search",
                           context),
      SpecError);
  Space grid = ParseSpace(Json::parse(R"({"x": {"grid_search": [1, 2]}})"));
  EXPECT_THROW(MakeCma(grid, 0, 10), SpecError);
}

}  // namespace
}  // namespace tune
