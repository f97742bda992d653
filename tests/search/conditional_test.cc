// Conditional spaces (search/space.h, docs/spec.md "Conditional spaces"): parsing, validation
// with JSON paths, sampling, and every searcher on them.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <set>
#include <string>

#include "search/searcher.h"
#include "search/space.h"

namespace tune {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

const char* kOptimizer = R"({
  "lr": {"loguniform": [1e-4, 1e-1]},
  "optimizer": {"choice": [
    {"type": "sgd", "momentum": {"uniform": [0, 0.99]}},
    {"type": "adam", "beta1": {"uniform": [0.8, 0.99]}, "eps": 1e-8},
    "none"
  ]},
  "depth": {"randint": [2, 6]},
  "width": {"randint": [1, {"ref": "depth"}]}
})";

std::string ParseError(const char* text) {
  try {
    ParseSpace(Json::parse(text));
  } catch (const SpecError& error) {
    return error.what();
  }
  return "";
}

TEST(ConditionalSpaceTest, ParsesBranchesAsConditionalParameters) {
  Space space = ParseSpace(Json::parse(kOptimizer));
  EXPECT_TRUE(space.conditional());
  std::map<std::string, const Parameter*> by_path;
  for (const Parameter& p : space.parameters()) by_path[p.path] = &p;
  ASSERT_TRUE(by_path.count("optimizer.choice[0].momentum"));
  ASSERT_TRUE(by_path.count("optimizer.choice[1].beta1"));
  const Parameter& momentum = *by_path["optimizer.choice[0].momentum"];
  EXPECT_EQ(momentum.pointer, Json::json_pointer("/optimizer/momentum"));
  ASSERT_EQ(momentum.conditions.size(), 1u);
  EXPECT_EQ(space.parameters()[momentum.conditions[0].parent].path, "optimizer");
  EXPECT_EQ(momentum.conditions[0].branch, 0u);
  EXPECT_TRUE(by_path["optimizer"]->domain.branches);
  EXPECT_TRUE(by_path["lr"]->conditions.empty());
  // The ref bound: the envelope is randint [1, 5) (depth is at most 5).
  EXPECT_GE(by_path["width"]->domain.high_ref, 0);
  EXPECT_EQ(by_path["width"]->domain.high, 5);
}

TEST(ConditionalSpaceTest, SamplesOnlyThePickedBranch) {
  Space space = ParseSpace(Json::parse(kOptimizer));
  std::mt19937_64 rng(1);
  std::map<std::string, int> seen;
  for (int i = 0; i < 600; ++i) {
    Json config = space.Sample(rng, 0);
    const Json& opt = config["optimizer"];
    if (opt == "none") {
      ++seen["none"];
    } else if (opt["type"] == "sgd") {
      ++seen["sgd"];
      EXPECT_EQ(opt.size(), 2u) << config;  // type and momentum only
      EXPECT_GE(opt["momentum"].get<double>(), 0);
      EXPECT_LE(opt["momentum"].get<double>(), 0.99);
    } else {
      ++seen["adam"];
      EXPECT_EQ(opt["type"], "adam");
      EXPECT_FALSE(opt.contains("momentum")) << config;
      EXPECT_EQ(opt["eps"], 1e-8);
      EXPECT_GE(opt["beta1"].get<double>(), 0.8);
    }
    EXPECT_LT(config["width"].get<int>(), config["depth"].get<int>()) << config;
    EXPECT_GE(config["width"].get<int>(), 1) << config;
    // Values() reads back what Sample() wrote; Assemble() rebuilds the config from it.
    EXPECT_EQ(space.Assemble(space.Values(config)), config);
  }
  EXPECT_GT(seen["sgd"], 150);
  EXPECT_GT(seen["adam"], 150);
  EXPECT_GT(seen["none"], 150);
}

// A sampled config's branch choice holds its option filled in (momentum drawn): that value is in
// the choice's domain (found by tune-corpus-spec: Contains compared it with the bare template).
TEST(ConditionalSpaceTest, AFilledBranchOptionIsInItsChoicesDomain) {
  Space space = ParseSpace(Json::parse(kOptimizer));
  const Parameter* optimizer = nullptr;
  for (const Parameter& parameter : space.parameters()) {
    if (parameter.path == "optimizer") optimizer = &parameter;
  }
  ASSERT_NE(optimizer, nullptr);
  std::mt19937_64 rng(3);
  for (int i = 0; i < 50; ++i) {
    Json config = space.Sample(rng, 0);
    EXPECT_TRUE(Space::Contains(optimizer->domain, config["optimizer"])) << config;
  }
  EXPECT_FALSE(Space::Contains(optimizer->domain, Json({{"type", "rmsprop"}})));
  EXPECT_FALSE(Space::Contains(optimizer->domain, Json("sgd")));
}

TEST(ConditionalSpaceTest, NestedBranches) {
  Space space = ParseSpace(Json::parse(R"({"model": {"choice": [
      {"kind": "mlp", "layers": {"choice": [{"n": 1, "w0": {"randint": [8, 64]}},
                                            {"n": 2, "w0": {"randint": [8, 64]}, "w1": {"randint": [8, 64]}}]}},
      {"kind": "linear"}]}})"));
  std::mt19937_64 rng(2);
  std::set<std::string> shapes;
  for (int i = 0; i < 200; ++i) {
    Json config = space.Sample(rng, 0);
    const Json& model = config["model"];
    if (model["kind"] == "linear") {
      shapes.insert("linear");
      EXPECT_EQ(model.size(), 1u);
    } else {
      const Json& layers = model["layers"];
      shapes.insert("mlp" + std::to_string(layers["n"].get<int>()));
      EXPECT_EQ(layers.size(), layers["n"].get<std::size_t>() + 1) << config;
    }
  }
  EXPECT_EQ(shapes, (std::set<std::string>{"linear", "mlp1", "mlp2"}));
}

TEST(ConditionalSpaceTest, ErrorsNameTheirJsonPath) {
  EXPECT_THAT(ParseError(R"({"opt": {"choice": [{"lr": {"uniform": [0, 1]}}, {"lr": {"loguniform": [1e-3, 1]}}]}})"),
              StartsWith("space.opt: options 0 and 1 must differ in a constant"));
  EXPECT_THAT(ParseError(R"({"opt": {"choice": [{"t": "a", "x": {"unifrom": [0, 1]}}]}})"),
              StartsWith("space.opt.choice[0].x: unknown distribution \"unifrom\""));
  EXPECT_THAT(ParseError(R"({"opt": {"choice": [{"t": "a", "x": {"uniform": [1, 0]}}]}})"),
              StartsWith("space.opt.choice[0].x: uniform needs low <= high"));
  EXPECT_THAT(ParseError(R"({"opt": {"choice": [{"t": "a", "g": {"grid_search": [1, 2]}}]}})"),
              StartsWith("space.opt.choice[0].g: grid_search cannot sit inside an option"));
  EXPECT_THAT(ParseError(R"({"w": {"randint": [1, {"ref": "depht"}]}, "depth": {"randint": [2, 5]}})"),
              StartsWith("space.w: ref \"depht\" is not a parameter"));
  EXPECT_THAT(ParseError(R"({"w": {"randint": [1, {"ref": "depth"}]}, "depth": {"randint": [1, 5]}})"),
              AllOf(StartsWith("space.w: randint needs low < high for every value of its refs"),
                    HasSubstr("low can be 1 and high 1")));
  EXPECT_THAT(ParseError(R"({"w": {"randint": [1, {"ref": "d"}]}, "d": {"uniform": [2, 5]}})"),
              StartsWith("space.w: ref \"d\" must name a bounded integer parameter"));
  EXPECT_THAT(ParseError(R"({"a": {"uniform": [0, {"ref": "b"}]}, "b": {"uniform": [{"ref": "a"}, 1]}})"),
              HasSubstr("refs form a cycle"));
  EXPECT_THAT(ParseError(R"({"a": {"uniform": [0, {"ref": 3}]}})"),
              StartsWith("space.a.uniform[1]: ref needs the config path of another parameter"));
  EXPECT_THAT(ParseError(R"({"a": {"uniform": [{"ref": "b"}, "c"]}, "b": {"uniform": [0, 1]}})"),
              StartsWith("space.a.uniform[1]: must be a finite number or {\"ref\": \"path\"}"));
  // A parameter of one branch is not present whenever one of another branch is.
  EXPECT_THAT(ParseError(R"({"o": {"choice": [{"t": 1, "a": {"uniform": [0, 1]}},
                                             {"t": 2, "b": {"uniform": [0, {"ref": "o.a"}]}}]}})"),
              StartsWith("space.o.choice[1].b: ref \"o.a\" is not a parameter"));
}

TEST(ConditionalSpaceTest, PointsCannotSetConditionalParameters) {
  Space space = ParseSpace(Json::parse(kOptimizer));
  EXPECT_THROW(space.ParsePoint(Json{{"optimizer", {{"type", "sgd"}}}}, "points_to_evaluate[0]"),
               SpecError);
  EXPECT_NO_THROW(space.ParsePoint(Json{{"lr", 0.01}}, "points_to_evaluate[0]"));
}

TEST(ConditionalSpaceTest, GridExpandsBranches) {
  Space space = ParseSpace(Json::parse(R"({"opt": {"grid_search": [
      {"type": "sgd", "momentum": {"uniform": [0, 1]}}, {"type": "adam"}]}})"));
  EXPECT_EQ(space.GridSize(), 2u);
  SearcherOptions options;
  options.num_samples = 3;
  options.algorithm = Json{{"algorithm", "grid"}};
  auto grid = MakeSearcher(space, options);
  EXPECT_EQ(grid->TotalTrials(), 6);
  int sgd = 0, adam = 0;
  for (int i = 0; i < 6; ++i) {
    Json config = grid->Suggest("t" + std::to_string(i)).config;
    if (config["opt"]["type"] == "sgd") {
      ++sgd;
      EXPECT_TRUE(config["opt"]["momentum"].is_number()) << config;
    } else {
      ++adam;
      EXPECT_EQ(config["opt"].size(), 1u) << config;
    }
  }
  EXPECT_EQ(sgd, 3);
  EXPECT_EQ(adam, 3);
}

double Objective(const Json& c) {
  double loss = std::pow(std::log10(c["lr"].get<double>()) + 2, 2);
  const Json& opt = c["optimizer"];
  if (opt == "none") return loss + 1;
  if (opt["type"] == "sgd") return loss + std::pow(opt["momentum"].get<double>() - 0.9, 2);
  return loss + 0.2 + std::pow(opt["beta1"].get<double>() - 0.9, 2);
}

class EverySearcherTest : public ::testing::TestWithParam<const char*> {};

TEST_P(EverySearcherTest, ProducesValidConfigsWithInactiveParametersAbsent) {
  Space space = ParseSpace(Json::parse(kOptimizer));
  SearcherOptions options;
  options.metric = "loss";
  options.mode = Mode::kMin;
  options.num_samples = 60;
  options.seed = 3;
  options.algorithm = Json{{"algorithm", GetParam()}};
  auto searcher = MakeSearcher(space, options);
  std::set<std::string> branches;
  for (int t = 0; t < 60; ++t) {
    const std::string id = "t" + std::to_string(t);
    Suggestion s = searcher->Suggest(id);
    ASSERT_EQ(s.kind, Suggestion::Kind::kConfig);
    const Json& c = s.config;
    const Json& opt = c["optimizer"];
    if (opt.is_object()) {
      branches.insert(opt["type"]);
      EXPECT_EQ(opt.contains("momentum"), opt["type"] == "sgd") << c;
      EXPECT_EQ(opt.contains("beta1"), opt["type"] == "adam") << c;
    } else {
      branches.insert(opt);
      EXPECT_EQ(opt, "none");
    }
    EXPECT_LT(c["width"].get<int>(), c["depth"].get<int>()) << c;
    EXPECT_GE(c["width"].get<int>(), 1) << c;
    EXPECT_EQ(space.Assemble(space.Values(c)), c);
    Result result;
    result.metrics["loss"] = Objective(c);
    searcher->OnComplete(id, TrialStatus::kTerminated, &result);
  }
  EXPECT_EQ(branches.size(), 3u);
}

INSTANTIATE_TEST_SUITE_P(Searchers, EverySearcherTest,
                         ::testing::Values("random", "grid", "tpe", "cmaes", "gp"));

// TPE's group decomposition: each branch's "x" is modelled on the trials of that branch only, so
// late suggestions put x near its own branch's optimum (0.2 for a, 0.8 for b) even though the
// two branches are equally good. One model over both would mix the modes.
TEST(ConditionalTpeTest, ModelsEachBranchOnItsOwnTrials) {
  Space space = ParseSpace(Json::parse(R"({"o": {"choice": [
      {"t": "a", "x": {"uniform": [0, 1]}}, {"t": "b", "x": {"uniform": [0, 1]}}]}})"));
  SearcherOptions options;
  options.metric = "loss";
  options.mode = Mode::kMin;
  options.num_samples = 200;
  options.seed = 11;
  options.algorithm = Json{{"algorithm", "tpe"}};
  auto tpe = MakeSearcher(space, options);
  int near = 0, late = 0;
  for (int t = 0; t < 200; ++t) {
    const std::string id = "t" + std::to_string(t);
    Json c = tpe->Suggest(id).config;
    const double target = c["o"]["t"] == "a" ? 0.2 : 0.8;
    const double x = c["o"]["x"];
    if (t >= 100) {
      ++late;
      near += std::fabs(x - target) < 0.1 ? 1 : 0;
    }
    Result result;
    result.metrics["loss"] = (x - target) * (x - target);
    tpe->OnComplete(id, TrialStatus::kTerminated, &result);
  }
  EXPECT_GT(near, late * 8 / 10);
}

}  // namespace
}  // namespace tune
