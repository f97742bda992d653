#include "search/space.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace tune {
namespace {

using ::testing::StartsWith;

constexpr int kDraws = 5000;

Json Parse(const char* text) { return Json::parse(text); }

// The domain of a one-parameter space {"x": <distribution>}.
Domain DomainOf(const Json& distribution) {
  Space space = ParseSpace(Json{{"x", distribution}});
  EXPECT_EQ(space.parameters().size(), 1u);
  return space.parameters().at(0).domain;
}

// kDraws samples of `distribution`, each checked against Contains() (sampling and validation
// must agree, or points_to_evaluate would reject values the searcher itself produces).
std::vector<Json> Draws(const Json& distribution, std::uint64_t seed = 1) {
  Domain domain = DomainOf(distribution);
  std::mt19937_64 rng(seed);
  std::vector<Json> draws;
  for (int i = 0; i < kDraws; ++i) {
    Json value = Space::SampleDomain(domain, rng);
    EXPECT_TRUE(Space::Contains(domain, value)) << value.dump() << " from " << distribution.dump();
    draws.push_back(value);
  }
  return draws;
}

std::vector<double> Numbers(const std::vector<Json>& draws) {
  std::vector<double> numbers;
  for (const Json& value : draws) numbers.push_back(value.get<double>());
  return numbers;
}

double Mean(const std::vector<double>& xs) {
  double sum = 0;
  for (double x : xs) sum += x;
  return sum / static_cast<double>(xs.size());
}

double Median(std::vector<double> xs) {
  std::nth_element(xs.begin(), xs.begin() + static_cast<std::ptrdiff_t>(xs.size() / 2), xs.end());
  return xs[xs.size() / 2];
}

// The message of the SpecError that ParseSpace throws for `space`, or "" when it does not throw.
std::string ParseError(const Json& space) {
  try {
    ParseSpace(space);
  } catch (const SpecError& error) {
    return error.what();
  }
  return "";
}

TEST(SpaceTest, UniformStaysInBoundsAndIsFlat) {
  auto xs = Numbers(Draws(Parse(R"({"uniform": [-2, 3]})")));
  EXPECT_GE(*std::min_element(xs.begin(), xs.end()), -2.0);
  EXPECT_LE(*std::max_element(xs.begin(), xs.end()), 3.0);
  EXPECT_LT(*std::min_element(xs.begin(), xs.end()), -1.9);  // reaches both ends
  EXPECT_GT(*std::max_element(xs.begin(), xs.end()), 2.9);
  EXPECT_NEAR(Mean(xs), 0.5, 0.1);
  EXPECT_NEAR(Median(xs), 0.5, 0.15);
}

TEST(SpaceTest, UniformWithEqualBoundsIsThatValue) {
  for (const Json& value : Draws(Parse(R"({"uniform": [1.5, 1.5]})"))) EXPECT_EQ(value, 1.5);
}

TEST(SpaceTest, UniformOverTheWholeDoubleRangeStaysFinite) {
  Json distribution = {{"uniform", {-1e308, 1e308}}};
  for (double x : Numbers(Draws(distribution))) ASSERT_TRUE(std::isfinite(x));
}

TEST(SpaceTest, QuniformGivesOnlyMultiplesOfQInsideTheBounds) {
  // 0.05 is no multiple of 0.1: the smallest value is 0.1, never 0 (a rounding below low).
  std::set<double> seen;
  for (double x : Numbers(Draws(Parse(R"({"quniform": [0.05, 1, 0.1]})")))) {
    ASSERT_GE(x, 0.05);
    ASSERT_LE(x, 1.0);
    seen.insert(x);
  }
  std::set<double> expected;
  for (int k = 1; k <= 10; ++k) expected.insert(k / 10.0);
  EXPECT_EQ(seen, expected);  // exactly k/10, printed as 0.3 rather than 0.30000000000000004
}

TEST(SpaceTest, QuniformReachesBothEndsWhenTheyAreMultiples) {
  std::map<double, int> counts;
  for (double x : Numbers(Draws(Parse(R"({"quniform": [0, 1, 0.25]})")))) ++counts[x];
  EXPECT_EQ(counts.size(), 5u);
  EXPECT_GT(counts[0.0], 0);
  EXPECT_GT(counts[1.0], 0);
}

TEST(SpaceTest, QuniformWithAwkwardFloatingPointBoundsNeverLeavesThem) {
  // 0.3 / 0.1 and 0.7 / 0.1 are not whole numbers in binary; both bounds are still valid values.
  std::set<double> seen;
  for (double x : Numbers(Draws(Parse(R"({"quniform": [0.3, 0.7, 0.1]})")))) {
    ASSERT_GE(x, 0.3);
    ASSERT_LE(x, 0.7);
    seen.insert(x);
  }
  EXPECT_EQ(seen, (std::set<double>{0.3, 0.4, 0.5, 0.6, 0.7}));
}

TEST(SpaceTest, LoguniformMedianIsNearTheGeometricMean) {
  auto xs = Numbers(Draws(Parse(R"({"loguniform": [1e-4, 1e-1]})")));
  EXPECT_GE(*std::min_element(xs.begin(), xs.end()), 1e-4);
  EXPECT_LE(*std::max_element(xs.begin(), xs.end()), 1e-1);
  EXPECT_NEAR(std::log10(Median(xs)), -2.5, 0.1);  // geometric mean sqrt(1e-4 * 1e-1)
  // Each decade holds a third of the mass; a plain uniform would put ~99% above 1e-3.
  double below =
      static_cast<double>(std::count_if(xs.begin(), xs.end(), [](double x) { return x < 1e-3; })) /
      xs.size();
  EXPECT_NEAR(below, 1.0 / 3, 0.04);
}

TEST(SpaceTest, LoguniformAcceptsAnOptionalBase) {
  Domain domain = DomainOf(Parse(R"({"loguniform": [1, 100, 2]})"));
  EXPECT_EQ(domain.kind, DomainKind::kLogUniform);
  EXPECT_EQ(domain.low, 1);
  EXPECT_EQ(domain.high, 100);
}

TEST(SpaceTest, QloguniformGivesMultiplesInsideTheBounds) {
  auto xs = Numbers(Draws(Parse(R"({"qloguniform": [1, 1000, 5]})")));
  for (double x : xs) {
    ASSERT_GE(x, 5.0);  // the smallest positive multiple of 5 at or above 1
    ASSERT_LE(x, 1000.0);
    ASSERT_EQ(std::fmod(x, 5.0), 0.0) << x;
  }
  EXPECT_LT(Median(xs), 150);  // log scale: far below the uniform median of 500
}

TEST(SpaceTest, RandintIsIntegralAndNeverReachesHigh) {
  std::map<std::int64_t, int> counts;
  for (const Json& value : Draws(Parse(R"({"randint": [-3, 2]})"))) {
    ASSERT_TRUE(value.is_number_integer()) << value.dump();
    ++counts[value.get<std::int64_t>()];
  }
  EXPECT_EQ(counts.size(), 5u);
  EXPECT_EQ(counts.begin()->first, -3);
  EXPECT_EQ(counts.rbegin()->first, 1);  // 2 is exclusive
  for (const auto& [value, count] : counts) EXPECT_NEAR(count, kDraws / 5, 150) << value;
}

TEST(SpaceTest, RandintOfWidthOneIsConstant) {
  for (const Json& value : Draws(Parse(R"({"randint": [7, 8]})"))) EXPECT_EQ(value, 7);
}

TEST(SpaceTest, QrandintIncludesTheUpperBound) {
  std::map<std::int64_t, int> counts;
  for (const Json& value : Draws(Parse(R"({"qrandint": [0, 10, 5]})"))) {
    ASSERT_TRUE(value.is_number_integer());
    ++counts[value.get<std::int64_t>()];
  }
  EXPECT_EQ(counts.size(), 3u);
  EXPECT_GT(counts[0], 0);
  EXPECT_GT(counts[5], 0);
  EXPECT_GT(counts[10], 0);
}

TEST(SpaceTest, QrandintUsesOnlyMultiplesOfQInsideTheBounds) {
  std::set<std::int64_t> seen;
  for (const Json& value : Draws(Parse(R"({"qrandint": [1, 10, 3]})"))) {
    seen.insert(value.get<std::int64_t>());
  }
  EXPECT_EQ(seen, (std::set<std::int64_t>{3, 6, 9}));
  seen.clear();
  for (const Json& value : Draws(Parse(R"({"qrandint": [-7, -1, 2]})"))) {
    seen.insert(value.get<std::int64_t>());
  }
  EXPECT_EQ(seen, (std::set<std::int64_t>{-6, -4, -2}));
}

TEST(SpaceTest, LograndintIsIntegralLogScaledAndExclusive) {
  std::vector<double> xs;
  for (const Json& value : Draws(Parse(R"({"lograndint": [1, 1000]})"))) {
    ASSERT_TRUE(value.is_number_integer());
    xs.push_back(value.get<double>());
  }
  EXPECT_EQ(*std::min_element(xs.begin(), xs.end()), 1);
  EXPECT_LE(*std::max_element(xs.begin(), xs.end()), 999);
  EXPECT_GT(Median(xs), 20);  // floor of a log-uniform draw: median near sqrt(1000) = 31.6
  EXPECT_LT(Median(xs), 45);
  // Never 1000 even when the draw lands exactly on the bound.
  std::vector<Json> narrow = Draws(Parse(R"({"lograndint": [2, 3]})"));
  for (const Json& value : narrow) EXPECT_EQ(value, 2);
}

TEST(SpaceTest, NormalHasItsMeanAndSd) {
  auto xs = Numbers(Draws(Parse(R"({"normal": [10, 2]})")));
  double mean = Mean(xs);
  double variance = 0;
  for (double x : xs) variance += (x - mean) * (x - mean);
  EXPECT_NEAR(mean, 10, 0.15);
  EXPECT_NEAR(std::sqrt(variance / xs.size()), 2, 0.15);
}

TEST(SpaceTest, QnormalGivesMultiplesOfQ) {
  auto xs = Numbers(Draws(Parse(R"({"qnormal": [0, 1, 0.5]})")));
  std::set<double> seen(xs.begin(), xs.end());
  for (double x : seen) EXPECT_EQ(std::fmod(x, 0.5), 0.0) << x;
  EXPECT_GE(seen.size(), 8u);  // -2 .. 2 at least
  EXPECT_NEAR(Mean(xs), 0, 0.1);
}

TEST(SpaceTest, ChoiceDrawsEveryValueEquallyOften) {
  std::map<std::string, int> counts;
  for (const Json& value : Draws(Parse(R"({"choice": ["a", 2, {"x": 1}]})"))) {
    ++counts[value.dump()];
  }
  ASSERT_EQ(counts.size(), 3u);
  for (const char* key : {"\"a\"", "2", "{\"x\":1}"}) {
    EXPECT_NEAR(counts[key], kDraws / 3, 200) << key;
  }
}

TEST(SpaceTest, ContainsChecksBoundsQuantizationAndType) {
  Domain randint = DomainOf(Parse(R"({"randint": [0, 5]})"));
  EXPECT_TRUE(Space::Contains(randint, 0));
  EXPECT_TRUE(Space::Contains(randint, 4));
  EXPECT_TRUE(Space::Contains(randint, 4.0));  // integral, whatever its JSON type
  EXPECT_FALSE(Space::Contains(randint, 5));
  EXPECT_FALSE(Space::Contains(randint, -1));
  EXPECT_FALSE(Space::Contains(randint, 2.5));
  EXPECT_FALSE(Space::Contains(randint, "2"));
  EXPECT_FALSE(Space::Contains(randint, true));

  Domain log = DomainOf(Parse(R"({"loguniform": [1e-4, 1e-1]})"));
  EXPECT_TRUE(Space::Contains(log, 1e-4));
  EXPECT_TRUE(Space::Contains(log, 0.1));
  EXPECT_FALSE(Space::Contains(log, 0.5));
  EXPECT_FALSE(Space::Contains(log, std::numeric_limits<double>::quiet_NaN()));

  Domain quantized = DomainOf(Parse(R"({"quniform": [0, 1, 0.1]})"));
  EXPECT_TRUE(Space::Contains(quantized, 0.3));  // 0.3 / 0.1 is 2.9999999999999996
  EXPECT_TRUE(Space::Contains(quantized, 0.7));
  EXPECT_FALSE(Space::Contains(quantized, 0.35));

  Domain qrandint = DomainOf(Parse(R"({"qrandint": [0, 10, 5]})"));
  EXPECT_TRUE(Space::Contains(qrandint, 10));
  EXPECT_FALSE(Space::Contains(qrandint, 7));
  EXPECT_FALSE(Space::Contains(qrandint, 15));

  Domain normal = DomainOf(Parse(R"({"normal": [0, 1]})"));
  EXPECT_TRUE(Space::Contains(normal, -1e6));
  EXPECT_FALSE(Space::Contains(normal, std::numeric_limits<double>::infinity()));

  Domain choice = DomainOf(Parse(R"({"choice": [64, "relu", [1, 2]]})"));
  EXPECT_TRUE(Space::Contains(choice, 64));
  EXPECT_TRUE(Space::Contains(choice, Parse("[1, 2]")));
  EXPECT_FALSE(Space::Contains(choice, "64"));
  EXPECT_FALSE(Space::Contains(choice, 32));
}

TEST(SpaceTest, SamplingIsReproducibleWithTheSameSeedOnly) {
  Space space = ParseSpace(Parse(R"({
    "lr": {"loguniform": [1e-4, 0.1]}, "hidden": {"choice": [64, 128, 256]},
    "depth": {"randint": [1, 10]}, "noise": {"normal": [0, 1]}})"));
  auto run = [&](std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::vector<Json> configs;
    for (int i = 0; i < 20; ++i) configs.push_back(space.Sample(rng, 0));
    return configs;
  };
  EXPECT_EQ(run(42), run(42));
  EXPECT_NE(run(42), run(43));
  // Consecutive draws from one generator differ too.
  std::vector<Json> configs = run(42);
  EXPECT_NE(configs[0], configs[1]);
}

TEST(SpaceTest, FixedSeedGivesFixedValues) {
  // Pins the sampling transforms: a change here changes every recorded experiment's configs,
  // so it must be deliberate.
  Domain uniform = DomainOf(Parse(R"({"uniform": [0, 1]})"));
  std::mt19937_64 rng(0);
  double first = Space::SampleDomain(uniform, rng).get<double>();
  std::mt19937_64 again(0);
  EXPECT_EQ(first, static_cast<double>(again() >> 11) / 9007199254740992.0);
}

TEST(SpaceTest, ConstantsNestedObjectsAndArraysAreWalked) {
  Space space = ParseSpace(Parse(R"({
    "epochs": 10,
    "model": {"hidden": {"choice": [64, 128]}, "activation": "relu",
              "init": {"normal": [0, 0.02]}},
    "layers": [{"randint": [1, 4]}, 3, {"width": {"uniform": [0, 1]}}],
    "optimizer": {"choice": [1, 2], "name": "adam"},
    "empty": {},
    "note": null
  })"));
  std::vector<std::string> paths;
  for (const Parameter& parameter : space.parameters()) paths.push_back(parameter.path);
  // Key order (nlohmann objects are sorted), depth first.
  EXPECT_EQ(paths,
            (std::vector<std::string>{"layers.0", "layers.2.width", "model.hidden", "model.init"}));
  EXPECT_EQ(space.parameters()[1].pointer, Json::json_pointer("/layers/2/width"));
  EXPECT_TRUE(space.grid_parameters().empty());
  EXPECT_EQ(space.GridSize(), 1u);

  std::mt19937_64 rng(3);
  Json config = space.Sample(rng, 0);
  EXPECT_EQ(config["epochs"], 10);
  EXPECT_EQ(config["model"]["activation"], "relu");
  EXPECT_TRUE(config["model"]["hidden"] == 64 || config["model"]["hidden"] == 128);
  EXPECT_TRUE(config["model"]["init"].is_number_float());
  ASSERT_EQ(config["layers"].size(), 3u);
  EXPECT_TRUE(config["layers"][0].is_number_integer());
  EXPECT_EQ(config["layers"][1], 3);
  double width = config["layers"][2]["width"].get<double>();
  EXPECT_TRUE(width >= 0 && width <= 1);
  // Two keys: a nested object whose "choice" key is a plain constant.
  EXPECT_EQ(config["optimizer"], Parse(R"({"choice": [1, 2], "name": "adam"})"));
  EXPECT_EQ(config["empty"], Json::object());
  EXPECT_TRUE(config["note"].is_null());
}

TEST(SpaceTest, OneKeyObjectsThatAreNotDistributionsAreConstants) {
  Space space = ParseSpace(Parse(R"({"opt": {"name": "adam"}, "x": {"choices": 5},
                                     "y": {"lr": [1, 2]}})"));
  EXPECT_TRUE(space.parameters().empty());
  std::mt19937_64 rng(0);
  EXPECT_EQ(space.Sample(rng, 0)["x"], Parse(R"({"choices": 5})"));
}

TEST(SpaceTest, GridIsTheCartesianProductWithTheFirstParameterFastest) {
  Space space = ParseSpace(Parse(R"({
    "a": {"grid_search": [1, 2, 3]}, "b": {"grid_search": ["x", "y"]},
    "r": {"uniform": [0, 1]}})"));
  ASSERT_EQ(space.grid_parameters().size(), 2u);
  EXPECT_EQ(space.parameters().size(), 1u);
  EXPECT_EQ(space.GridSize(), 6u);
  std::mt19937_64 rng(0);
  std::vector<std::pair<Json, Json>> points;
  for (std::size_t i = 0; i < 6; ++i) {
    Json config = space.Sample(rng, i);
    points.emplace_back(config["a"], config["b"]);
  }
  EXPECT_EQ(points, (std::vector<std::pair<Json, Json>>{
                        {1, "x"}, {2, "x"}, {3, "x"}, {1, "y"}, {2, "y"}, {3, "y"}}));
  EXPECT_THROW(space.Sample(rng, 6), std::out_of_range);
}

TEST(SpaceTest, DefaultSpaceSamplesAnEmptyObject) {
  Space space;
  std::mt19937_64 rng(0);
  EXPECT_EQ(space.Sample(rng, 0), Json::object());
  EXPECT_EQ(ParseSpace(Json::object()).GridSize(), 1u);
}

TEST(SpaceTest, ErrorsNameThePathAndTheReason) {
  EXPECT_EQ(ParseError(Parse(R"({"lr": {"loguniform": [0, 1]}})")),
            "space.lr: loguniform needs 0 < low < high, got [0, 1]");
  EXPECT_EQ(ParseError(Parse(R"({"x": {"uniform": "a"}})")),
            "space.x: uniform needs 2 numbers [low, high], got \"a\"");
  EXPECT_EQ(ParseError(Parse(R"({"lr": {"loguniforn": [1e-4, 0.1]}})")),
            "space.lr: unknown distribution \"loguniforn\" (did you mean \"loguniform\"?)");
  EXPECT_THAT(ParseError(Parse(R"({"model": {"hidden": {"choice": []}}})")),
              StartsWith("space.model.hidden: choice needs a non-empty array"));
}

struct ErrorCase {
  const char* space;
  const char* prefix;
};

class SpaceErrorTest : public ::testing::TestWithParam<ErrorCase> {};

TEST_P(SpaceErrorTest, ThrowsSpecErrorWithPathAndReason) {
  EXPECT_THAT(ParseError(Parse(GetParam().space)), StartsWith(GetParam().prefix));
}

INSTANTIATE_TEST_SUITE_P(
    AllErrors, SpaceErrorTest,
    ::testing::Values(
        ErrorCase{R"({"x": {"choice": 3}})", "space.x: choice needs a non-empty array, got 3"},
        ErrorCase{R"({"x": {"grid_search": []}})", "space.x: grid_search needs a non-empty array"},
        ErrorCase{R"({"x": {"grid_search": {"a": 1}}})",
                  "space.x: grid_search needs a non-empty array"},
        ErrorCase{R"({"x": {"uniform": [2, 1]}})",
                  "space.x: uniform needs low <= high, got [2, 1]"},
        ErrorCase{R"({"x": {"uniform": [1, 2, 3]}})", "space.x: uniform needs 2 numbers"},
        ErrorCase{R"({"x": {"uniform": [1, "2"]}})", "space.x: uniform needs 2 numbers"},
        ErrorCase{R"({"x": {"uniform": [1]}})", "space.x: uniform needs 2 numbers"},
        ErrorCase{R"({"x": {"quniform": [0, 1]}})",
                  "space.x: quniform needs 3 numbers [low, high, q]"},
        ErrorCase{R"({"x": {"quniform": [0, 1, 0]}})",
                  "space.x: quniform needs q > 0, got [0, 1, 0]"},
        ErrorCase{R"({"x": {"quniform": [0, 1, -0.1]}})", "space.x: quniform needs q > 0"},
        ErrorCase{R"({"x": {"quniform": [0.11, 0.15, 0.1]}})",
                  "space.x: quniform needs a multiple of q in [low, high], got [0.11, 0.15, 0.1]"},
        ErrorCase{R"({"x": {"quniform": [1, 0, 0.1]}})", "space.x: quniform needs low <= high"},
        ErrorCase{R"({"x": {"loguniform": [-1, 1]}})", "space.x: loguniform needs 0 < low < high"},
        ErrorCase{R"({"x": {"loguniform": [1, 1]}})", "space.x: loguniform needs 0 < low < high"},
        ErrorCase{R"({"x": {"loguniform": [1, 10, 1]}})",
                  "space.x: loguniform needs a log base > 0 and != 1"},
        ErrorCase{R"({"x": {"loguniform": [1, 10, 10, 10]}})",
                  "space.x: loguniform needs 2 or 3 numbers"},
        ErrorCase{R"({"x": {"qloguniform": [0, 1, 0.1]}})",
                  "space.x: qloguniform needs 0 < low < high"},
        ErrorCase{R"({"x": {"qloguniform": [1, 10, 0]}})", "space.x: qloguniform needs q > 0"},
        ErrorCase{R"({"x": {"qloguniform": [1, 4, 5]}})",
                  "space.x: qloguniform needs a multiple of q in [low, high]"},
        ErrorCase{R"({"x": {"randint": [3, 3]}})",
                  "space.x: randint needs low < high (high is exclusive), got [3, 3]"},
        ErrorCase{R"({"x": {"randint": [0, 1.5]}})",
                  "space.x: randint needs 2 integers [low, high)"},
        ErrorCase{R"({"x": {"randint": [0, 1e300]}})", "space.x: randint needs 2 integers"},
        ErrorCase{R"({"x": {"randint": [0]}})", "space.x: randint needs 2 integers"},
        ErrorCase{R"({"x": {"qrandint": [0, 10, 0]}})", "space.x: qrandint needs q > 0"},
        ErrorCase{R"({"x": {"qrandint": [1, 2, 5]}})",
                  "space.x: qrandint needs a multiple of q in [low, high], got [1, 2, 5]"},
        ErrorCase{R"({"x": {"qrandint": [5, 0, 5]}})", "space.x: qrandint needs low <= high"},
        ErrorCase{R"({"x": {"lograndint": [0, 10]}})", "space.x: lograndint needs 0 < low < high"},
        ErrorCase{R"({"x": {"lograndint": [10, 10]}})", "space.x: lograndint needs 0 < low < high"},
        ErrorCase{R"({"x": {"normal": [0, 0]}})", "space.x: normal needs sd > 0, got [0, 0]"},
        ErrorCase{R"({"x": {"normal": [0, -1]}})", "space.x: normal needs sd > 0"},
        ErrorCase{R"({"x": {"normal": 1}})", "space.x: normal needs 2 numbers [mean, sd]"},
        ErrorCase{R"({"x": {"qnormal": [0, 1, 0]}})", "space.x: qnormal needs q > 0"},
        ErrorCase{R"({"x": {"qnormal": [0, 1]}})", "space.x: qnormal needs 3 numbers"},
        ErrorCase{R"({"layers": [1, {"choice": []}]})",
                  "space.layers.1: choice needs a non-empty array"},
        ErrorCase{R"({"a": {"b": {"c": {"unifrom": [0, 1]}}}})",
                  "space.a.b.c: unknown distribution \"unifrom\" (did you mean \"uniform\"?)"},
        ErrorCase{R"({"x": {"choise": [1, 2]}})",
                  "space.x: unknown distribution \"choise\" (did you mean \"choice\"?)"},
        ErrorCase{R"({"x": {"grid_serch": [1, 2]}})",
                  "space.x: unknown distribution \"grid_serch\" (did you mean \"grid_search\"?)"},
        ErrorCase{R"([1, 2])", "space: must be an object of parameters"}));

TEST(SpaceTest, NonFiniteNumbersAreRejected) {
  // JSON text cannot hold them, but CLI overrides and programs build Json directly.
  const double inf = std::numeric_limits<double>::infinity();
  const double nan = std::numeric_limits<double>::quiet_NaN();
  EXPECT_THAT(ParseError(Json{{"x", {{"uniform", {0.0, inf}}}}}),
              StartsWith("space.x: uniform needs finite numbers"));
  EXPECT_THAT(ParseError(Json{{"x", {{"normal", {nan, 1.0}}}}}),
              StartsWith("space.x: normal needs finite numbers"));
  EXPECT_THAT(ParseError(Json{{"x", {{"randint", {0.0, inf}}}}}),
              StartsWith("space.x: randint needs finite integers"));
}

TEST(SpaceTest, ErrorsUseTheGivenRootPath) {
  try {
    ParseSpace(Parse(R"({"x": {"choice": []}})"), "config.space");
    FAIL() << "no SpecError";
  } catch (const SpecError& error) {
    EXPECT_THAT(error.what(), StartsWith("config.space.x: choice"));
  }
}

TEST(SpaceTest, DomainsDescribeThemselves) {
  EXPECT_EQ(ToString(DomainOf(Parse(R"({"loguniform": [1e-4, 0.1]})"))),
            "loguniform [0.0001, 0.1]");
  EXPECT_EQ(ToString(DomainOf(Parse(R"({"randint": [1, 10]})"))), "randint [1, 10)");
  EXPECT_EQ(ToString(DomainOf(Parse(R"({"qrandint": [0, 10, 5]})"))), "qrandint [0, 10], q=5");
  EXPECT_EQ(ToString(DomainOf(Parse(R"({"choice": [64, 128]})"))), "choice [64, 128]");
  EXPECT_EQ(ToString(DomainOf(Parse(R"({"normal": [0, 2]})"))), "normal (mean 0, sd 2)");
}

}  // namespace
}  // namespace tune
