// End-to-end: schedulers that pause and relaunch trials (HyperBand, the median rule without
// hard_stop, PBT's exploits), `tune resume --errored` and stoppers, with real tune-example-curve
// processes, checked against journal.jsonl and the files each trial leaves.
#include <chrono>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/integration/run_helpers.h"

namespace tune {
namespace {

using ::testing::HasSubstr;
using namespace integration;

class SchedulersRunTest : public StorageTest {};

// trial id -> its losses, epoch by epoch (result.json in order).
std::map<std::string, std::vector<double>> Losses(const fs::path& experiment) {
  std::map<std::string, std::vector<double>> losses;
  for (const fs::path& dir : TrialDirs(experiment)) {
    for (const Json& result : ReadJsonLines(dir / "result.json")) {
      losses[dir.filename()].push_back(result["loss"]);
    }
  }
  return losses;
}

TEST_F(SchedulersRunTest, HyperBandPausesAtRungsAndRelaunchesFromTheCheckpointLosingNoEpoch) {
  RunOutput run = RunSpec(HyperBandCurveSpec(17), "hb", "--cpus 17");
  ASSERT_EQ(run.exit_code, 0) << run.out << run.err;

  EXPECT_FALSE(Events(run.dir, "trial_paused").empty());
  std::set<std::string> relaunched;
  for (const Json& started : Events(run.dir, "trial_started")) {
    if (started["checkpoint"].is_string()) relaunched.insert(started["trial_id"]);
  }
  EXPECT_FALSE(relaunched.empty()) << "promoted trials run again from their checkpoint";
  ExpectEachResultOnce(run.dir);
  ExpectEpochsContinue(run.dir);

  // Successive halving keeps ceil(n / 3): of the 9 trials at epoch 1, 3 go on to 3 and 1 of them
  // to 9; of the 5 at epoch 3, 2 go on to 9; the 3 of the first bracket all run to 9. Pruned
  // trials are STOPPED; only trials that completed max_t may be TERMINATED.
  std::map<std::string, std::string> statuses = FinalStatuses(run.dir);
  ASSERT_EQ(statuses.size(), 17u);
  std::map<std::size_t, int> trials_by_length;
  for (const fs::path& dir : TrialDirs(run.dir)) {
    const std::string id = dir.filename();
    const std::size_t results = ReadJsonLines(dir / "result.json").size();
    ++trials_by_length[results];
    if (results < 9) {
      EXPECT_EQ(statuses[id], "STOPPED") << id;
    }
  }
  EXPECT_EQ(trials_by_length, (std::map<std::size_t, int>{{1, 6}, {3, 5}, {9, 6}}));
  int terminated = 0;
  for (const auto& [id, status] : statuses) terminated += status == "TERMINATED";
  EXPECT_GT(terminated, 0);

  // The same configs run uninterrupted (FIFO) give the same loss at every epoch: a paused and
  // relaunched trial's curve is the one it would have had (curve_trial seeds its noise by config
  // and epoch).
  Json fifo = HyperBandCurveSpec(17);
  fifo["scheduler"] = "fifo";
  RunOutput straight = RunSpec(fifo, "fifo", "--cpus 17");
  ASSERT_EQ(straight.exit_code, 0) << straight.err;
  auto paused_losses = Losses(run.dir);
  auto fifo_losses = Losses(straight.dir);
  for (const std::string& id : relaunched) {
    const std::vector<double>& losses = paused_losses[id];
    ASSERT_GT(losses.size(), 1u) << id;
    ASSERT_EQ(fifo_losses[id].size(), 9u) << id;
    EXPECT_EQ(losses, std::vector<double>(fifo_losses[id].begin(),
                                          fifo_losses[id].begin() + losses.size()))
        << id << " paused and relaunched";
  }
}

TEST_F(SchedulersRunTest, PbtClonesTheSourcesCheckpointAndParamsAndContinuesFromIt) {
  RunOutput run = RunSpec(PbtCurveSpec(), "pbt", "--cpus 4");
  ASSERT_EQ(run.exit_code, 0) << run.out << run.err;

  const std::vector<Json> events = Events(run.dir);
  std::map<std::string, std::vector<Json>> exploits;  // trial -> its trial_exploited events
  for (std::size_t at = 0; at < events.size(); ++at) {
    const Json& event = events[at];
    if (event["event"] != "trial_exploited") continue;
    const std::string id = event["trial_id"], source = event["source"];
    exploits[id].push_back(event);
    ASSERT_TRUE(event["checkpoint"].is_string()) << "every curve trial has a checkpoint";
    const fs::path copy = event["checkpoint"].get<std::string>();
    EXPECT_EQ(copy.parent_path().parent_path(), run.dir / id);
    EXPECT_THAT(copy.parent_path().filename().string(),
                ::testing::MatchesRegex(fmt::format("pbt_[0-9]+_{}", source)));
    // The copy is of the checkpoint the source had reported when the trial was exploited (its
    // last report before the trial's pausing one), and holds what that checkpoint held.
    std::size_t pausing = at;
    while (pausing > 0 && !(events[pausing]["event"] == "report" &&
                            events[pausing].value("trial_id", "") == id)) {
      --pausing;
    }
    ASSERT_EQ(events[pausing]["decision"], "pause") << event.dump();
    std::string source_checkpoint;
    for (std::size_t i = 0; i < pausing; ++i) {
      if (events[i]["event"] == "report" && events[i].value("trial_id", "") == source &&
          events[i].contains("checkpoint")) {
        source_checkpoint = events[i]["checkpoint"];
      }
    }
    ASSERT_FALSE(source_checkpoint.empty()) << event.dump();
    EXPECT_EQ(copy.filename(), fs::path(source_checkpoint).filename());
    EXPECT_EQ(ReadFile(copy / "state.json"), ReadFile(fs::path(source_checkpoint) / "state.json"));
    // It runs again from the copy, and its next result is the epoch after the copy's.
    const int copied_epoch = CheckpointEpoch(copy.string());
    if (event.contains("iteration") && event["iteration"].is_number()) {
      EXPECT_EQ(event["iteration"], copied_epoch) << "a curve trial reports one epoch an iteration";
    }
    const Json* started = nullptr;
    const Json* next_report = nullptr;
    for (std::size_t i = at + 1; i < events.size() && next_report == nullptr; ++i) {
      if (events[i].value("trial_id", "") != id) continue;
      if (events[i]["event"] == "trial_started" && started == nullptr) started = &events[i];
      if (events[i]["event"] == "report") next_report = &events[i];
    }
    ASSERT_NE(started, nullptr) << id << " was not relaunched after its exploit";
    EXPECT_EQ((*started)["checkpoint"], copy.string());
    if (copied_epoch < 8) {
      ASSERT_NE(next_report, nullptr) << id;
      EXPECT_EQ((*next_report)["result"]["metrics"]["epoch"], copied_epoch + 1);
      // Its training_iteration goes on from its own, or (as Ray restores it with the checkpoint)
      // from the iteration the cloned checkpoint was reported at, where the journal names it.
      const bool restored = event.contains("iteration") && event["iteration"].is_number();
      EXPECT_EQ((*next_report)["result"]["training_iteration"],
                (restored ? event["iteration"] : events[pausing]["result"]["training_iteration"])
                        .get<int>() +
                    1);
    }
  }
  ASSERT_FALSE(exploits.empty()) << "quantile_fraction 0.5 of 4 trials: some are exploited";

  EXPECT_EQ(ExpectLineageOfEachExploit(run.dir), exploits);
  for (const auto& [id, exploited] : exploits) {
    // params.json holds the latest params (on top of the trainer's keys).
    Json params = Json::parse(ReadFile(run.dir / id / "params.json"));
    for (const auto& [key, value] : exploited.back()["params"].items()) {
      EXPECT_EQ(params[key], value) << id << " " << key;
    }
    EXPECT_EQ(params["max_epochs"], 8);
  }
  ExpectEachResultOnce(run.dir);
  ExpectEpochsContinue(run.dir);
  EXPECT_EQ(FinalStatuses(run.dir).size(), 4u);
}

TEST_F(SchedulersRunTest, MedianRuleWithoutHardStopPausesAndTheExperimentStillEnds) {
  auto begin = std::chrono::steady_clock::now();
  RunOutput run = RunSpec(MedianCurveSpec(), "median", "", "timeout 60");
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
  ASSERT_EQ(run.exit_code, 0) << "124: it hung\n" << run.out << run.err;
  EXPECT_LT(seconds, 20);
  EXPECT_FALSE(Events(run.dir, "trial_paused").empty());
  ExpectEachResultOnce(run.dir);
  ExpectEpochsContinue(run.dir);
  std::map<std::string, std::string> statuses = FinalStatuses(run.dir);
  ASSERT_EQ(statuses.size(), 6u);
  for (const fs::path& dir : TrialDirs(run.dir)) {
    EXPECT_EQ(statuses[dir.filename()], "TERMINATED") << dir;
    EXPECT_EQ(ReadJsonLines(dir / "result.json").size(), 5u) << dir << " runs to the end";
  }
}

TEST_F(SchedulersRunTest, ResumeErroredRerunsTheFailedTrialFromItsLastCheckpoint) {
  Json spec = CurveSpec(/*num_samples=*/1, /*max_epochs=*/5);
  spec["space"]["crash_at_epoch"] = {{"grid_search", {3, -1}}};  // t_00001 crashes at epoch 3
  spec["max_failures"] = 0;
  RunOutput run = RunSpec(spec, "errored");
  ASSERT_EQ(run.exit_code, 0) << run.out << run.err;
  ASSERT_EQ(FinalStatuses(run.dir),
            (std::map<std::string, std::string>{{"t_00001", "ERROR"}, {"t_00002", "TERMINATED"}}));
  const fs::path crashed = run.dir / "t_00001";
  const std::vector<Json> before = ReadJsonLines(crashed / "result.json");
  ASSERT_EQ(before.size(), 2u);

  // A plain resume leaves an errored trial as it is.
  RunOutput plain = Resume("errored");
  ASSERT_EQ(plain.exit_code, 0) << plain.err;
  EXPECT_EQ(ReadJsonLines(crashed / "result.json"), before);
  EXPECT_EQ(Events(run.dir, "trial_started").size(), 2u);
  EXPECT_EQ(FinalStatuses(run.dir).at("t_00001"), "ERROR");

  RunOutput errored = Resume("errored", "--errored", "errored");
  ASSERT_EQ(errored.exit_code, 0) << errored.err;
  ASSERT_EQ(Events(run.dir, "trial_requeued").size(), 1u);
  EXPECT_EQ(Events(run.dir, "trial_requeued")[0]["trial_id"], "t_00001");
  const Json rerun = Events(run.dir, "trial_started").back();
  EXPECT_EQ(rerun["trial_id"], "t_00001");
  EXPECT_EQ(rerun["checkpoint"], (crashed / "checkpoint_2").string());
  EXPECT_EQ(FinalStatuses(run.dir),
            (std::map<std::string, std::string>{{"t_00001", "TERMINATED"},
                                                {"t_00002", "TERMINATED"}}));
  std::vector<int> epochs;
  for (const Json& result : ReadJsonLines(crashed / "result.json")) epochs.push_back(result["epoch"]);
  EXPECT_EQ(epochs, (std::vector<int>{1, 2, 3, 4, 5})) << "each epoch exactly once";
  ExpectEachResultOnce(run.dir);
  ExpectEpochsContinue(run.dir);
}

TEST_F(SchedulersRunTest, TrainingIterationStopperEndsEveryTrialAsTerminatedWithTheReason) {
  Json spec = CurveSpec(/*num_samples=*/3, /*max_epochs=*/10);
  spec["stop"] = {{"training_iteration", 3}};
  RunOutput run = RunSpec(spec, "iterations");
  ASSERT_EQ(run.exit_code, 0) << run.out << run.err;
  std::vector<Json> ended = Events(run.dir, "trial_ended");
  ASSERT_EQ(ended.size(), 3u);
  for (const Json& event : ended) {
    EXPECT_EQ(event["status"], "TERMINATED") << event.dump();
    EXPECT_EQ(event["reason"], "training_iteration >= 3") << event.dump();
    EXPECT_EQ(ReadJsonLines(run.dir / event["trial_id"].get<std::string>() / "result.json").size(),
              3u);
  }
}

TEST_F(SchedulersRunTest, MaxTotalTrialsCreatesNoMore) {
  Json spec = CurveSpec(/*num_samples=*/5, /*max_epochs=*/2);
  spec["stop"] = {{"max_total_trials", 2}};
  RunOutput run = RunSpec(spec, "capped");
  ASSERT_EQ(run.exit_code, 0) << run.out << run.err;
  EXPECT_EQ(Events(run.dir, "trial_created").size(), 2u);
  EXPECT_EQ(TrialDirs(run.dir).size(), 2u);
  EXPECT_EQ(FinalStatuses(run.dir).size(), 2u);
}

TEST_F(SchedulersRunTest, TimeBudgetEndsTheExperimentInTime) {
  Json spec = CurveSpec(/*num_samples=*/2, /*max_epochs=*/100);
  spec["trainer"]["sleep_ms"] = 100;  // 10 s per trial without the budget
  spec["stop"] = {{"time_budget_s", 1}};
  auto begin = std::chrono::steady_clock::now();
  RunOutput run = RunSpec(spec, "budget", "--cpus 2");
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
  ASSERT_EQ(run.exit_code, 0) << run.out << run.err;
  EXPECT_GE(seconds, 1.0);
  EXPECT_LT(seconds, 4.0);
  std::vector<Json> stopped = Events(run.dir, "experiment_stopped");
  ASSERT_EQ(stopped.size(), 1u);
  EXPECT_THAT(stopped[0]["reason"].get<std::string>(), HasSubstr("time budget 1 s reached"));
  EXPECT_THAT(run.out, HasSubstr("Experiment stopped: time budget 1 s reached"));
  std::map<std::string, std::string> statuses = FinalStatuses(run.dir);
  ASSERT_EQ(statuses.size(), 2u);
  for (const fs::path& dir : TrialDirs(run.dir)) {
    const std::size_t results = ReadJsonLines(dir / "result.json").size();
    EXPECT_GE(results, 5u) << dir;
    EXPECT_LE(results, 20u) << dir;
  }
}

}  // namespace
}  // namespace tune
