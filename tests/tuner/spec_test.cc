#include "tuner/spec.h"

#include <boost/asio/io_context.hpp>

#include <filesystem>
#include <fstream>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/clock.h"
#include "tuner/timers.h"

namespace tune {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

Json MinimalSpec() {
  return Json::parse(R"({
    "name": "exp", "metric": "val_acc", "mode": "max",
    "trainer": {"command": ["prog"], "epochs": 3, "optim": {"name": "sgd", "momentum": 0.9}},
    "space": {"lr": {"loguniform": [1e-4, 0.1]}, "optim": {"name": {"choice": ["sgd", "adam"]}}}
  })");
}

std::string ErrorOf(const Json& raw) {
  try {
    ParseSpec(raw, ".");
  } catch (const SpecError& error) {
    return error.what();
  }
  return "";
}

TEST(SpecTest, ParsesFieldsAndDefaults) {
  ExperimentSpec spec = ParseSpec(MinimalSpec(), "/tmp");
  EXPECT_EQ(spec.name, "exp");
  EXPECT_EQ(spec.metric, "val_acc");
  EXPECT_EQ(spec.mode, Mode::kMax);
  EXPECT_EQ(spec.num_samples, 1);
  EXPECT_EQ(spec.max_concurrent, 0);
  EXPECT_EQ(spec.max_failures, 0);
  EXPECT_DOUBLE_EQ(spec.resources_per_trial.cpu, 1);
  EXPECT_DOUBLE_EQ(spec.resources_per_trial.gpu, 0);
  EXPECT_EQ(spec.command, std::vector<std::string>{"prog"});
  EXPECT_EQ(spec.space.parameters().size(), 2u);
}

TEST(SpecTest, WorkersDefaultToOnePerGpuWhenATrialHasSeveral) {
  Json raw = MinimalSpec();
  EXPECT_EQ(ParseSpec(raw, ".").resources_per_trial.workers, 1);
  raw["resources_per_trial"] = {{"gpu", 1}};
  EXPECT_EQ(ParseSpec(raw, ".").resources_per_trial.workers, 1);
  raw["resources_per_trial"] = {{"gpu", 4}};
  EXPECT_EQ(ParseSpec(raw, ".").resources_per_trial.workers, 4);
  raw["resources_per_trial"] = {{"gpu", 4}, {"workers", 1}};
  EXPECT_EQ(ParseSpec(raw, ".").resources_per_trial.workers, 1) << "one process driving 4 GPUs";
  raw["resources_per_trial"] = {{"cpu", 2}, {"workers", 2}};
  ExperimentSpec spec = ParseSpec(raw, ".");
  EXPECT_EQ(spec.resources_per_trial.workers, 2);
  EXPECT_DOUBLE_EQ(spec.resources_per_trial.cpu, 2) << "cpu counts for the whole trial";
  raw["resources_per_trial"] = {{"gpu", 6}, {"workers", 2}};
  EXPECT_EQ(ParseSpec(raw, ".").resources_per_trial.workers, 2) << "3 GPUs per rank: a model split over them";
}

TEST(SpecTest, BadWorkerCountsNameResourcesPerTrial) {
  Json raw = MinimalSpec();
  raw["resources_per_trial"] = {{"gpu", 0.5}, {"workers", 2}};
  EXPECT_THAT(ErrorOf(raw), StartsWith("resources_per_trial: 2 workers cannot share a fraction"));
  raw["resources_per_trial"] = {{"gpu", 2}, {"workers", 3}};
  EXPECT_THAT(ErrorOf(raw), StartsWith("resources_per_trial: 3 workers need the same whole number of GPUs each"));
  raw["resources_per_trial"] = {{"gpu", 8}, {"workers", 3}};
  EXPECT_THAT(ErrorOf(raw), StartsWith("resources_per_trial: 3 workers need the same whole number of GPUs each"));
  raw["resources_per_trial"] = {{"workers", 0}};
  EXPECT_THAT(ErrorOf(raw), StartsWith("resources_per_trial.workers: must be an integer"));
  raw["resources_per_trial"] = {{"workers", 1.5}};
  EXPECT_THAT(ErrorOf(raw), StartsWith("resources_per_trial.workers: must be an integer"));
}

TEST(SpecTest, OverrideSetsDottedPathParsingJsonValues) {
  Json raw = MinimalSpec();
  ApplyOverride(raw, "num_samples=8", false);
  ApplyOverride(raw, "trainer.optim.momentum=0.5", false);
  ApplyOverride(raw, "trainer.optim.name=adamw", false);
  ApplyOverride(raw, "scheduler.max_t=30", false);
  ApplyOverride(raw, "trainer.layers=[64,32]", false);
  EXPECT_EQ(raw["num_samples"], 8);
  EXPECT_EQ(raw["trainer"]["optim"]["momentum"], 0.5);
  EXPECT_EQ(raw["trainer"]["optim"]["name"], "adamw");
  EXPECT_EQ(raw["scheduler"]["max_t"], 30);
  EXPECT_EQ(raw["trainer"]["layers"], Json::parse("[64,32]"));
}

TEST(SpecTest, MultirunTurnsListIntoGridInTheSpace) {
  Json raw = MinimalSpec();
  ApplyOverride(raw, "trainer.epochs=1,2,3", true);
  ApplyOverride(raw, "space.lr=0.1,0.01", true);
  ApplyOverride(raw, "hidden=[1,2],[3]", true);
  EXPECT_EQ(raw["space"]["epochs"], Json::parse(R"({"grid_search": [1, 2, 3]})"));
  EXPECT_EQ(raw["space"]["lr"], Json::parse(R"({"grid_search": [0.1, 0.01]})"));
  EXPECT_EQ(raw["space"]["hidden"], Json::parse(R"({"grid_search": [[1, 2], [3]]})"));
  ExperimentSpec spec = ParseSpec(raw, ".");
  EXPECT_EQ(spec.space.GridSize(), 12u);  // 3 epochs x 2 lr x 2 hidden
}

TEST(SpecTest, MalformedOverridesAreErrors) {
  Json raw = MinimalSpec();
  EXPECT_THROW(ApplyOverride(raw, "novalue", false), SpecError);
  EXPECT_THROW(ApplyOverride(raw, "=3", false), SpecError);
  EXPECT_THROW(ApplyOverride(raw, "a..b=3", false), SpecError);
  EXPECT_THROW(ApplyOverride(raw, "scheduler.max_t=1,2", true), SpecError);
}

TEST(SpecTest, ErrorsNameThePath) {
  Json raw = MinimalSpec();
  raw["num_sample"] = 3;
  EXPECT_EQ(ErrorOf(raw), "num_sample: unknown key (did you mean \"num_samples\"?)");

  raw = MinimalSpec();
  raw.erase("metric");
  EXPECT_THAT(ErrorOf(raw), StartsWith("metric: required"));

  raw = MinimalSpec();
  raw["mode"] = "maximum";
  EXPECT_THAT(ErrorOf(raw), StartsWith("mode: mode must be \"min\" or \"max\""));

  raw = MinimalSpec();
  raw["num_samples"] = 0;
  EXPECT_EQ(ErrorOf(raw), "num_samples: must be >= 1, got 0");

  raw = MinimalSpec();
  raw["resources_per_trial"] = {{"gpu", 1.5}};
  EXPECT_THAT(ErrorOf(raw), StartsWith("resources_per_trial.gpu: must be a fraction"));

  raw = MinimalSpec();
  raw["resources_per_trial"] = {{"gpus", 1}};
  EXPECT_EQ(ErrorOf(raw), "resources_per_trial.gpus: unknown key (did you mean \"gpu\"?)");

  raw = MinimalSpec();
  raw["trainer"]["command"] = "python3 train.py";
  EXPECT_THAT(ErrorOf(raw), StartsWith("trainer.command: must be a non-empty array"));

  raw = MinimalSpec();
  raw["space"]["lr"] = {{"loguniform", {0, 1}}};
  EXPECT_THAT(ErrorOf(raw), StartsWith("space.lr: "));

  raw = MinimalSpec();
  raw["reporter"] = {{"metric_columns", "val_acc"}};
  EXPECT_EQ(ErrorOf(raw), "reporter.metric_columns: must be an array of strings, got \"val_acc\"");

  // Found by tune-fuzz-spec: a non-string name used to escape as a raw JSON type_error.
  raw = MinimalSpec();
  raw["name"] = {{"type", {{"uniform", {0.0, 0.9}}}}};
  EXPECT_EQ(ErrorOf(raw), "name: must be a string");
}

TEST(SpecTest, BadJsonFileReportsLineAndColumn) {
  auto file = std::filesystem::temp_directory_path() / "tune_spec_test_bad.json";
  std::ofstream(file) << "{\n  \"name\": \"x\",\n  \"metric\": oops\n}\n";
  try {
    LoadSpecFile(file);
    FAIL() << "expected a SpecError";
  } catch (const SpecError& error) {
    EXPECT_THAT(error.what(), StartsWith(file.string() + ":3:13: "));
  }
  std::filesystem::remove(file);
  EXPECT_THROW(LoadSpecFile("/nonexistent/space.json"), SpecError);
}

TEST(SpecTest, OverrideThatIsNotUtf8IsASpecError) {
  // Found by tune-fuzz-overrides: the value became a string that ParseSpec's messages (and
  // experiment.json) could not dump, and nlohmann's type_error escaped.
  Json raw = MinimalSpec();
  try {
    ApplyOverride(raw, "num_samples=\x83\x83", /*multirun=*/false);
    ADD_FAILURE() << "expected a SpecError";
  } catch (const SpecError& error) {
    EXPECT_EQ(std::string(error.what()), "an override is not valid UTF-8 text");
  }
  EXPECT_NO_THROW(ApplyOverride(raw, "description=d\xc3\xa9j\xc3\xa0", false));  // UTF-8 is fine
}

TEST(SpecTest, NumberPastADoubleIsASpecErrorNamingTheFile) {
  // Found by tune-fuzz-spec: it escaped LoadSpecFile as nlohmann's raw out_of_range.
  auto file = std::filesystem::temp_directory_path() / "tune_spec_test_overflow.json";
  std::ofstream(file) << "{\"name\": \"x\", \"num_samples\": 111181E1111111}\n";
  try {
    LoadSpecFile(file);
    ADD_FAILURE() << "expected a SpecError";
  } catch (const SpecError& error) {
    EXPECT_EQ(std::string(error.what()),
              file.string() + ": number overflow parsing '111181E1111111'");
  }
  std::filesystem::remove(file);
}

TEST(SpecTest, MergeConfigDeepMergesParamsOverTrainer) {
  Json trainer = Json::parse(R"({"command": ["x"], "epochs": 3, "optim": {"name": "sgd", "momentum": 0.9}})");
  Json params = Json::parse(R"({"lr": 0.1, "optim": {"name": "adam"}})");
  EXPECT_EQ(MergeConfig(trainer, params),
            Json::parse(R"({"epochs": 3, "lr": 0.1, "optim": {"name": "adam", "momentum": 0.9}})"));
}

// Numbers at and beyond their limits, and nesting deep enough to overflow a recursive walk: each
// gives one clear SpecError naming the JSON path, never a wrapped value, a raw library error or a
// stack overflow.
TEST(SpecLimitsTest, IntegersBeyondInt64AreReportedAsWritten) {
  Json raw = MinimalSpec();
  raw["num_samples"] = Json::parse("18446744073709551615");
  EXPECT_EQ(ErrorOf(raw), "num_samples: must be at most 9223372036854775807, got 18446744073709551615");
  raw["num_samples"] = Json::parse("9223372036854775807");
  EXPECT_EQ(ErrorOf(raw), "");
}

TEST(SpecLimitsTest, EveryTopLevelNumberIsCheckedWithItsPath) {
  for (const char* key : {"num_samples", "max_concurrent", "max_failures"}) {
    Json raw = MinimalSpec();
    raw[key] = "x";
    EXPECT_EQ(ErrorOf(raw), std::string(key) + ": expected an integer, got \"x\"");
    raw[key] = 2.5;
    EXPECT_EQ(ErrorOf(raw), std::string(key) + ": expected an integer, got 2.5");
  }
  for (const char* key : {"stop_grace_s", "trial_timeout_s", "connect_timeout_s"}) {
    Json raw = MinimalSpec();
    raw[key] = "x";
    EXPECT_EQ(ErrorOf(raw), std::string(key) + ": expected a number, got \"x\"");
    raw[key] = -1;
    EXPECT_EQ(ErrorOf(raw), std::string(key) + ": must be >= 0, got -1");
  }
  Json raw = MinimalSpec();
  raw["resources_per_trial"] = {{"cpu", "x"}};
  EXPECT_EQ(ErrorOf(raw), "resources_per_trial.cpu: expected a number, got \"x\"");
  raw = MinimalSpec();
  raw["reporter"] = {{"refresh_s", "x"}};
  EXPECT_EQ(ErrorOf(raw), "reporter.refresh_s: expected a number, got \"x\"");
}

TEST(SpecLimitsTest, HugeTimeoutsAreAcceptedAndNeverFireEarly) {
  Json raw = MinimalSpec();
  raw["connect_timeout_s"] = 1e10;
  raw["trial_timeout_s"] = 1e300;
  EXPECT_EQ(ErrorOf(raw), "");
  boost::asio::io_context io;
  FakeClock clock;
  Timers timers(io, clock);
  bool fired = false;
  timers.After(1e10, [&] { fired = true; });
  timers.After(1e300, [&] { fired = true; });
  io.poll();
  timers.FireDue();
  io.poll();
  EXPECT_FALSE(fired);
}

TEST(SpecLimitsTest, DeeplyNestedSpecFileIsAClearError) {
  auto file = std::filesystem::temp_directory_path() / "tune_spec_limits_deep.json";
  {
    std::ofstream out(file);
    out << "{\"name\": \"x\",\n \"description\": ";
    out << std::string(100000, '[') << std::string(100000, ']') << "}";
  }
  try {
    LoadSpecFile(file);
    ADD_FAILURE() << "expected a SpecError";
  } catch (const SpecError& error) {
    EXPECT_THAT(error.what(), StartsWith(file.string() + ":2:"));
    EXPECT_THAT(error.what(), HasSubstr("nested deeper than 128 levels"));
  }
  // A spec nested as deep as the limit still loads.
  {
    std::ofstream out(file);
    out << "{\"description\": " << std::string(127, '[') << std::string(127, ']') << "}";
  }
  EXPECT_NO_THROW(LoadSpecFile(file));
  std::filesystem::remove(file);
}

TEST(SpecLimitsTest, DeeplyNestedOverridesAreAClearError) {
  Json raw = MinimalSpec();
  std::string deep_value = "description=" + std::string(60000, '[') + std::string(60000, ']');
  EXPECT_THROW(ApplyOverride(raw, deep_value, false), SpecError);
  std::string deep_key;
  for (int i = 0; i < 60000; ++i) deep_key += "a.";
  EXPECT_THROW(ApplyOverride(raw, deep_key + "b=1", false), SpecError);
  try {
    ApplyOverride(raw, deep_value, false);
  } catch (const SpecError& error) {
    EXPECT_THAT(error.what(), HasSubstr("nested deeper than 128 levels"));
  }
  // Brackets inside a string do not count.
  EXPECT_NO_THROW(ApplyOverride(raw, "description=\"" + std::string(1000, '[') + "\"", false));
  EXPECT_NO_THROW(ApplyOverride(raw, "trainer.optim={\"name\": [1, [2, [3]]]}", false));
  EXPECT_EQ(raw["trainer"]["optim"]["name"][1][1][0], 3);
}

TEST(SpecLimitsTest, OverrideThroughANonObjectIsAClearError) {
  Json raw = MinimalSpec();
  ApplyOverride(raw, "scheduler=fifo", false);
  try {
    ApplyOverride(raw, "scheduler.max_t=2", false);
    ADD_FAILURE() << "expected a SpecError";
  } catch (const SpecError& error) {
    EXPECT_STREQ(error.what(), "scheduler.max_t: cannot be set: a value on its path is not an object");
  }
  raw["trainer"]["layers"] = Json::array({1, 2});
  EXPECT_THROW(ApplyOverride(raw, "trainer.layers.x=1", false), SpecError);
}

// nlohmann's json_pointer filled the way to a numeric level with nulls: "x.55555550=1" made an
// array of 55 million nulls (2 GB under tune-fuzz-overrides). An override now creates objects
// only, and indexes an existing array within its size (or appends one past its end).
TEST(SpecLimitsTest, AnOverrideNeverGrowsAnArrayPastOneElement) {
  Json raw = MinimalSpec();
  ApplyOverride(raw, "description.55555550=1", false);
  EXPECT_EQ(raw["description"], Json::parse(R"({"55555550": 1})"));
  raw["trainer"]["layers"] = Json::array({64, 32});
  ApplyOverride(raw, "trainer.layers.1=16", false);
  ApplyOverride(raw, "trainer.layers.2=8", false);  // one past the end appends
  EXPECT_EQ(raw["trainer"]["layers"], Json::array({64, 16, 8}));
  for (const char* bad : {"trainer.layers.55555550=1", "trainer.layers.4=1", "trainer.layers.01=1",
                          "trainer.layers.99999999999999999999999=1", "trainer.layers.-=1"}) {
    try {
      ApplyOverride(raw, bad, false);
      ADD_FAILURE() << "expected a SpecError for " << bad;
    } catch (const SpecError& error) {
      EXPECT_THAT(error.what(), StartsWith("trainer.layers."));
      EXPECT_THAT(error.what(), HasSubstr("is not an index of its array (3 elements; 3 appends)"));
    }
  }
  EXPECT_EQ(raw["trainer"]["layers"].size(), 3u);
  ApplyOverride(raw, "width=1,2", /*multirun=*/true);
  EXPECT_EQ(raw["space"]["width"]["grid_search"], Json::array({1, 2}));
}

// Several objectives ("metric"/"mode" as lists) and "constraints".
Json TwoObjectiveSpec() {
  return Json::parse(R"({
    "name": "exp", "metric": ["val_acc", "latency_ms"], "mode": ["max", "min"],
    "constraints": ["peak_mem_mb <= 8000"],
    "search": {"algorithm": "nsga2", "population_size": 8},
    "trainer": {"command": ["prog"]},
    "space": {"lr": {"loguniform": [1e-4, 0.1]}}
  })");
}

TEST(MultiObjectiveSpecTest, ParsesObjectivesAndConstraints) {
  ExperimentSpec spec = ParseSpec(TwoObjectiveSpec(), ".");
  ASSERT_EQ(spec.objectives.size(), 2u);
  EXPECT_EQ(spec.metric, "val_acc");  // the first objective, for schedulers and stoppers
  EXPECT_EQ(spec.mode, Mode::kMax);
  EXPECT_EQ(spec.objectives[1].metric, "latency_ms");
  EXPECT_EQ(spec.objectives[1].mode, Mode::kMin);
  ASSERT_EQ(spec.constraints.size(), 1u);
  EXPECT_EQ(spec.constraints[0].bound, 8000);
  EXPECT_EQ(spec.search.name(), "nsga2");
  EXPECT_EQ(spec.search.context.objectives.size(), 2u);
  EXPECT_EQ(spec.search.context.constraints.size(), 1u);
}

TEST(MultiObjectiveSpecTest, BadObjectivesNameTheirPath) {
  Json raw = TwoObjectiveSpec();
  raw["mode"] = {"max"};
  EXPECT_THAT(ErrorOf(raw), StartsWith("mode: has 1 entries but metric has 2"));
  raw["mode"] = {"max", "down"};
  EXPECT_THAT(ErrorOf(raw), StartsWith("mode[1]: "));
  raw = TwoObjectiveSpec();
  raw["constraints"] = {"peak_mem_mb <= lots"};
  EXPECT_THAT(ErrorOf(raw), StartsWith("constraints[0]: the bound after \"<=\""));
}

TEST(MultiObjectiveSpecTest, SchedulersThatRankByOneMetricAreRefused) {
  for (const char* type : {"asha", "hyperband", "median", "pbt"}) {
    Json raw = TwoObjectiveSpec();
    raw["scheduler"] = {{"type", type}};
    if (std::string(type) == "pbt") {
      raw["scheduler"]["hyperparam_mutations"] = {{"lr", {{"loguniform", {1e-4, 0.1}}}}};
    }
    EXPECT_THAT(ErrorOf(raw), StartsWith("scheduler.type: \"" + std::string(type) +
                                         "\" ranks trials by one metric"))
        << type;
  }
  Json raw = TwoObjectiveSpec();
  raw["scheduler"] = {{"type", "fifo"}};
  EXPECT_EQ(ErrorOf(raw), "");
}

TEST(MultiObjectiveSpecTest, CmaEsRefusesSeveralObjectives) {
  Json raw = TwoObjectiveSpec();
  raw["search"] = {{"algorithm", "cmaes"}};
  EXPECT_THAT(ErrorOf(raw), HasSubstr("search.algorithm: \"cmaes\" optimises one metric"));
}

}  // namespace
}  // namespace tune
