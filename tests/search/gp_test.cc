#include "search/gp.h"

#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "search/gp_model.h"
#include "search/searcher.h"

namespace tune {
namespace {

// Three points, one continuous and one categorical coordinate, fixed kernel parameters. The
// expected numbers are numpy's (the formulas written out); Optuna 5.0's GPRegressor and
// default_log_prior on the same float64 input agree to 1e-12:
//   mean, var at (0.3, 1): -0.9303364960036324, 0.04630203314542847
//   -(log marginal likelihood + log prior) = 3.8595584120730493
TEST(GpModelTest, PosteriorAndLossMatchNumpyAndOptuna) {
  Eigen::MatrixXd X(3, 2);
  X << 0.1, 0, 0.4, 1, 0.9, 2;
  Eigen::VectorXd y(3);
  y << 0.5, -1.0, 0.3;
  GpModel model({false, true});
  GpParams params;
  params.theta = Eigen::Vector2d(2.0, 0.5);
  params.scale = 1.5;
  params.noise = 0.01;
  model.set_params(params);
  model.Condition(X, y);
  auto [mean, var] = model.Posterior(Eigen::Vector2d(0.3, 1.0));
  EXPECT_NEAR(mean, -0.9303364960036324, 1e-9);
  EXPECT_NEAR(var, 0.04630203314542847, 1e-9);
  EXPECT_NEAR(model.Loss(params, X, y, nullptr), 3.8595584120730493, 1e-9);
}

TEST(GpModelTest, LossGradientMatchesFiniteDifferences) {
  Eigen::MatrixXd X(6, 3);
  X << 0.1, 0.7, 0, 0.4, 0.2, 1, 0.9, 0.9, 2, 0.5, 0.5, 1, 0.2, 0.1, 0, 0.8, 0.3, 2;
  Eigen::VectorXd y(6);
  y << 0.5, -1.0, 0.3, 1.2, -0.4, 0.0;
  GpModel model({false, false, true});
  GpParams params;
  params.theta = Eigen::Vector3d(2.0, 0.7, 0.5);
  params.scale = 1.3;
  params.noise = 0.02;
  Eigen::VectorXd gradient;
  model.Loss(params, X, y, &gradient);
  // Raw coordinates: log theta, log scale, log(noise - 1e-6).
  auto at = [&](int index, double step) {
    GpParams p = params;
    if (index < 3) p.theta[index] *= std::exp(step);
    if (index == 3) p.scale *= std::exp(step);
    if (index == 4) p.noise = 1e-6 + (params.noise - 1e-6) * std::exp(step);
    return model.Loss(p, X, y, nullptr);
  };
  for (int i = 0; i < 5; ++i) {
    const double numeric = (at(i, 1e-6) - at(i, -1e-6)) / 2e-6;
    EXPECT_NEAR(gradient[i], numeric, 1e-5 * std::max(1.0, std::fabs(numeric))) << i;
  }
}

TEST(GpModelTest, LogEiGradientMatchesFiniteDifferences) {
  Eigen::MatrixXd X(5, 2);
  X << 0.1, 0.7, 0.4, 0.2, 0.9, 0.9, 0.5, 0.5, 0.2, 0.1;
  Eigen::VectorXd y(5);
  y << 0.5, -1.0, 0.3, 1.2, -0.4;
  GpModel model({false, false});
  model.Fit(X, y);
  for (const Eigen::Vector2d& x : {Eigen::Vector2d(0.3, 0.3), Eigen::Vector2d(0.95, 0.05)}) {
    Eigen::VectorXd gradient;
    model.LogEi(x, 1.2, &gradient);
    for (int d = 0; d < 2; ++d) {
      Eigen::Vector2d up = x, down = x;
      up[d] += 1e-6;
      down[d] -= 1e-6;
      const double numeric =
          (model.LogEi(up, 1.2, nullptr) - model.LogEi(down, 1.2, nullptr)) / 2e-6;
      EXPECT_NEAR(gradient[d], numeric, 1e-4 * std::max(1.0, std::fabs(numeric)));
    }
  }
}

TEST(GpModelTest, LogHIsStableInTheTail) {
  // log E[max(0, Z + z)] is continuous across the switch at z = -25 and finite far beyond.
  EXPECT_NEAR(LogH(-25.0001), LogH(-24.9999), 1e-2);
  EXPECT_TRUE(std::isfinite(LogH(-1e3)));
  EXPECT_NEAR(LogH(0), std::log(1 / std::sqrt(2 * M_PI)), 1e-12);
  EXPECT_NEAR(LogHDerivative(-25.0001), LogHDerivative(-24.9999), 1e-2);
}

double Sphere(const Json& c) {
  double x = c["x"], y = c["y"];
  return (x - 0.3) * (x - 0.3) + (y + 0.2) * (y + 0.2);
}

// Sequential trials: the best value after `trials`.
double Minimise(Searcher& searcher, int trials, double (*f)(const Json&)) {
  double best = INFINITY;
  for (int t = 0; t < trials; ++t) {
    const std::string id = "t" + std::to_string(t);
    Suggestion s = searcher.Suggest(id);
    Result result;
    result.training_iteration = 1;
    result.metrics["loss"] = f(s.config);
    best = std::min(best, result.metrics["loss"].get<double>());
    searcher.OnResult(id, result);
    searcher.OnComplete(id, TrialStatus::kTerminated, &result);
  }
  return best;
}

std::unique_ptr<Searcher> MakeGp(const Space& space, std::uint64_t seed, int trials) {
  SearcherOptions options;
  options.metric = "loss";
  options.mode = Mode::kMin;
  options.num_samples = trials;
  options.seed = seed;
  options.algorithm = Json{{"algorithm", "gp"}};
  return MakeSearcher(space, options);
}

TEST(GpSearcherTest, ConvergesOnASphereAndIsDeterministic) {
  Space space = ParseSpace(Json::parse(R"({"x": {"uniform": [-2, 2]}, "y": {"uniform": [-2, 2]}})"));
  auto first = MakeGp(space, 3, 30);
  const double best = Minimise(*first, 30, Sphere);
  EXPECT_LT(best, 1e-3);  // random search's median with 30 trials is ~0.05
  auto second = MakeGp(space, 3, 30);
  EXPECT_EQ(Minimise(*second, 30, Sphere), best);
}

TEST(GpSearcherTest, PendingTrialsSpreadTheBatch) {
  // With three trials pending, the constant liar keeps the next suggestions apart.
  Space space = ParseSpace(Json::parse(R"({"x": {"uniform": [0, 1]}, "y": {"uniform": [0, 1]}})"));
  auto gp = MakeGp(space, 1, 100);
  Minimise(*gp, 12, [](const Json& c) {
    double x = c["x"], y = c["y"];
    return (x - 0.5) * (x - 0.5) + (y - 0.5) * (y - 0.5);
  });
  std::vector<Json> batch;
  for (int i = 0; i < 3; ++i) batch.push_back(gp->Suggest("p" + std::to_string(i)).config);
  for (int i = 0; i < 3; ++i) {
    for (int j = i + 1; j < 3; ++j) {
      const double dx = batch[i]["x"].get<double>() - batch[j]["x"].get<double>();
      const double dy = batch[i]["y"].get<double>() - batch[j]["y"].get<double>();
      EXPECT_GT(std::hypot(dx, dy), 1e-3) << batch[i] << " " << batch[j];
    }
  }
}

TEST(GpSearcherTest, MixedSpaceFindsTheRightChoiceAndInteger) {
  Space space = ParseSpace(Json::parse(
      R"({"x": {"uniform": [-3, 3]}, "n": {"randint": [0, 10]}, "act": {"choice": ["a", "b", "c"]}})"));
  auto gp = MakeGp(space, 5, 40);
  auto f = [](const Json& c) {
    const double x = c["x"];
    const double n = c["n"].get<double>();
    const double offset = c["act"] == "b" ? 0.0 : 1.0;
    return offset + (x - 1) * (x - 1) + 0.1 * (n - 7) * (n - 7);
  };
  double best = INFINITY;
  Json best_config;
  for (int t = 0; t < 40; ++t) {
    const std::string id = "t" + std::to_string(t);
    Json config = gp->Suggest(id).config;
    ASSERT_TRUE(config["n"].is_number_integer()) << config;
    Result result;
    result.metrics["loss"] = f(config);
    if (f(config) < best) {
      best = f(config);
      best_config = config;
    }
    gp->OnComplete(id, TrialStatus::kTerminated, &result);
  }
  EXPECT_EQ(best_config["act"], "b");
  EXPECT_EQ(best_config["n"], 7);
  EXPECT_LT(best, 0.05);
}

TEST(GpSearcherTest, RejectsGridAndNeedsAMetric) {
  Space grid = ParseSpace(Json::parse(R"({"x": {"grid_search": [1, 2]}})"));
  EXPECT_THROW(MakeGp(grid, 0, 10), SpecError);
  SearcherContext context{"", Mode::kMin, 10};
  EXPECT_THROW(ParseSearcherOptions(Json{{"algorithm", "gp"}}, "search", context), SpecError);
}

}  // namespace
}  // namespace tune
