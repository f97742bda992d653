// `tune run` with two objectives: the table's Pareto rank, pareto_front.json / best_trial.json at
// the end, and the same front after a crash and `tune resume`.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "core/pareto.h"
#include "tests/integration/run_helpers.h"

namespace tune::integration {
namespace {

class ParetoRunTest : public StorageTest {};

// The front computed from each trial's last line of result.json.
std::set<std::string> FrontFromResults(const fs::path& experiment) {
  std::vector<std::string> ids;
  std::vector<std::vector<double>> losses;
  for (const fs::path& dir : TrialDirs(experiment)) {
    const std::vector<Json> lines = ReadJsonLines(dir / "result.json");
    if (lines.empty()) continue;
    ids.push_back(dir.filename().string());
    losses.push_back({lines.back()["loss"].get<double>(), -lines.back()["epoch"].get<double>()});
  }
  const std::vector<int> ranks = NonDominatedRanks(losses);
  std::set<std::string> front;
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (ranks[i] == 0) front.insert(ids[i]);
  }
  return front;
}

std::set<std::string> FrontInFile(const fs::path& file) {
  std::set<std::string> front;
  const Json json = Json::parse(ReadFile(file));
  for (const Json& trial : json["pareto_front"]) front.insert(trial["trial_id"].get<std::string>());
  return front;
}

TEST_F(ParetoRunTest, WritesTheParetoFrontAndShowsRanks) {
  RunOutput run = RunSpec(TwoObjectiveSpec(), "mo");
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const std::set<std::string> front = FrontFromResults(run.dir);
  ASSERT_GE(front.size(), 2u);  // a trade-off, not one best trial
  EXPECT_EQ(FrontInFile(run.dir / "pareto_front.json"), front);
  const Json json = Json::parse(ReadFile(run.dir / "pareto_front.json"));
  EXPECT_EQ(json["metric"], Json({"loss", "epoch"}));
  EXPECT_EQ(json["mode"], Json({"min", "max"}));
  EXPECT_EQ(json["pareto_front"][0]["values"].size(), 2u);
  EXPECT_EQ(ReadFile(run.dir / "best_trial.json"), ReadFile(run.dir / "pareto_front.json"));
  EXPECT_THAT(run.out, ::testing::HasSubstr("pareto rank"));
  EXPECT_THAT(run.out, ::testing::HasSubstr(fmt::format("Pareto front: {} trials", front.size())));
}

TEST_F(ParetoRunTest, AResumedExperimentHasTheSameFront) {
  RunOutput clean = RunSpec(TwoObjectiveSpec(), "clean");
  ASSERT_EQ(clean.exit_code, 0) << clean.err;
  const std::set<std::string> front = FrontInFile(clean.dir / "pareto_front.json");
  // Killed after its 20th journal event (mid-experiment), then resumed.
  RunOutput crashed =
      RunSpec(TwoObjectiveSpec(), "crashed", "", "TUNE_FAULT_EXIT_AFTER_EVENTS=20", kFaultInjectingTune);
  ASSERT_EQ(crashed.exit_code, 137) << crashed.err;
  EXPECT_FALSE(fs::exists(crashed.dir / "pareto_front.json"));
  RunOutput resumed = Resume("crashed");
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  EXPECT_EQ(FrontInFile(crashed.dir / "pareto_front.json"), front);
  EXPECT_EQ(FrontFromResults(crashed.dir), front);
}

TEST_F(ParetoRunTest, AshaWithTwoObjectivesIsOneClearLine) {
  Json spec = TwoObjectiveSpec();
  spec["scheduler"] = {{"type", "asha"}, {"max_t", 4}};
  RunOutput run = RunSpec(spec, "asha");
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_THAT(run.err, ::testing::HasSubstr("scheduler.type: \"asha\" ranks trials by one metric"));
}

}  // namespace
}  // namespace tune::integration
