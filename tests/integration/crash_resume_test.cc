// Crash tests: the tuner dies (as abruptly as kill -9) right after journal event N, for many N
// covering every kind of event; `tune resume` finishes the experiment. The results must equal an
// uninterrupted run's: nothing lost, nothing duplicated, every trial in a final state, the same
// best trial. One trial at a time and seeded sampling make the uninterrupted run deterministic.
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/integration/run_helpers.h"
#include "tuner/journal.h"

namespace tune {
namespace {

using namespace integration;

using Outcome = Curves;  // trial id -> the (epoch, loss) of each result

class CrashResumeTest : public StorageTest {
 protected:
  // `tune run`; with `env` (fault injection), the test build tune-test-hooks, since `tune`
  // honours no test hook.
  std::string RunCommand(const std::string& name, const std::string& env,
                         const char* program = nullptr) {
    if (program == nullptr) program = env.empty() ? "tune" : kFaultInjectingTune;
    return fmt::format(
        "{} {}/{} run {}/examples/curve.json --storage {} --name {} --num-samples 6 "
        "--max-concurrent 1 scheduler.max_t=9 trainer.max_epochs=9 trainer.sleep_ms=0 "
        ">{}/{}.out 2>{}/{}.err",
        env, TUNE_BIN_DIR, program, TUNE_SOURCE_DIR, storage_.string(), name, storage_.string(),
        name, storage_.string(), name);
  }
};

TEST_F(CrashResumeTest, KilledAtTwentyFourPointsResumesWithNothingLostOrDuplicated) {
  ASSERT_EQ(Shell(RunCommand("clean", "")), 0) << ReadFile(storage_ / "clean.err");
  Outcome clean = ReadCurves(storage_ / "clean");
  Json clean_best = Json::parse(ReadFile(storage_ / "clean" / "best_trial.json"));
  std::size_t events = ReadJournal(storage_ / "clean" / "journal.jsonl").events.size();
  ASSERT_GT(events, 30u);

  std::map<std::string, int> kinds_hit;
  auto clean_events = ReadJournal(storage_ / "clean" / "journal.jsonl").events;
  for (int point = 0; point < 24; ++point) {
    // Spread over the whole run, always including the first events (creation, start).
    std::size_t after = 1 + point * (events - 2) / 23;
    kinds_hit[clean_events[after - 1]["event"].get<std::string>()]++;
    std::string name = fmt::format("crash{}", point);
    int code = Shell(RunCommand(name, fmt::format("TUNE_FAULT_EXIT_AFTER_EVENTS={}", after)));
    ASSERT_EQ(code, 137) << "point " << point << " (after event " << after << ")";
    fs::path dir = storage_ / name;
    int resumed = Shell(fmt::format("{}/tune resume {} >{}/{}.resume.out 2>{}/{}.resume.err",
                                    TUNE_BIN_DIR, dir.string(), storage_.string(), name,
                                    storage_.string(), name));
    ASSERT_EQ(resumed, 0) << ReadFile(storage_ / (name + ".resume.err"));

    EXPECT_EQ(ReadCurves(dir), clean) << "results differ after a crash after event " << after;
    Json best = Json::parse(ReadFile(dir / "best_trial.json"));
    EXPECT_EQ(best["trial_id"], clean_best["trial_id"]) << "point " << point;
    EXPECT_EQ(best["config"], clean_best["config"]) << "point " << point;
    // Every trial ends in a final state, recorded once.
    std::map<std::string, int> ended;
    for (const Json& event : ReadJournal(dir / "journal.jsonl").events) {
      if (event["event"] == "trial_ended" || (event["event"] == "trial_failed" && !event["retry"])) {
        ended[event["trial_id"]]++;
      }
    }
    EXPECT_EQ(ended.size(), clean.size()) << "point " << point;
    for (const auto& [id, count] : ended) EXPECT_EQ(count, 1) << id << " at point " << point;
  }
  // The kill points cover trial creation, start, reports (between report and decision) and ends.
  EXPECT_GT(kinds_hit["trial_created"] + kinds_hit["trial_started"], 0);
  EXPECT_GT(kinds_hit["report"], 0);
  EXPECT_GT(kinds_hit["trial_ended"], 0);
}

TEST_F(CrashResumeTest, ResumeRefusesASpecThatChangedHowItSearches) {
  ASSERT_EQ(Shell(RunCommand("edited", "TUNE_FAULT_EXIT_AFTER_EVENTS=12")), 137);
  fs::path dir = storage_ / "edited";
  Json spec = Json::parse(ReadFile(dir / "experiment.json"));
  spec["space"]["lr"] = {{"loguniform", {0.001, 1.0}}};
  std::ofstream(dir / "experiment.json") << spec.dump();
  std::string resume = fmt::format("{}/tune resume {} >/dev/null 2>{}/err", TUNE_BIN_DIR,
                                   dir.string(), storage_.string());
  EXPECT_EQ(Shell(resume), 2);
  EXPECT_THAT(ReadFile(storage_ / "err"), ::testing::HasSubstr("tune: space: changed since"));
  // Limits may change: more samples resume fine.
  spec = Json::parse(ReadFile(dir / "experiment.json"));
  spec["space"]["lr"] = {{"loguniform", {0.01, 1.0}}};
  spec["num_samples"] = 8;
  std::ofstream(dir / "experiment.json") << spec.dump();
  EXPECT_EQ(Shell(resume), 0) << ReadFile(storage_ / "err");
  int trials = 0;
  for (const auto& entry : fs::directory_iterator(dir)) trials += entry.is_directory();
  EXPECT_EQ(trials, 8);
}

// `tune resume DIR --dashboard 0` serves the live page of the resumed experiment, which holds
// the trials (and their curves) of the run before the crash.
TEST_F(CrashResumeTest, ResumeServesTheDashboardWithTheTrialsOfTheRunBefore) {
  ASSERT_EQ(Shell(RunCommand("dash", "TUNE_FAULT_EXIT_AFTER_EVENTS=12")), 137);
  fs::path dir = storage_ / "dash";
  std::string resume = fmt::format("{}/tune resume {} --dashboard 0 >{}/out 2>{}/err", TUNE_BIN_DIR,
                                   dir.string(), storage_.string(), storage_.string());
  ASSERT_EQ(Shell(resume), 0) << ReadFile(storage_ / "err");
  EXPECT_THAT(ReadFile(storage_ / "out"), ::testing::HasSubstr("Dashboard: http://127.0.0.1:"));
  // The page it served is the one report.html holds at the end: every trial, one run.
  std::string report = ReadFile(dir / "report.html");
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.is_directory()) {
      EXPECT_THAT(report, ::testing::HasSubstr("\"" + entry.path().filename().string() + "\""));
    }
  }
  // A bad address is refused before anything runs.
  EXPECT_EQ(Shell(fmt::format("{}/tune resume {} --dashboard nope 2>{}/err", TUNE_BIN_DIR,
                              dir.string(), storage_.string())),
            2);
  EXPECT_THAT(ReadFile(storage_ / "err"), ::testing::HasSubstr("--dashboard"));
}

TEST_F(CrashResumeTest, TheShippedTuneHonoursNoFaultInjection) {
  // A stray TUNE_FAULT_EXIT_AFTER_EVENTS must not kill a production run (issue 17).
  EXPECT_EQ(Shell(RunCommand("stray", "TUNE_FAULT_EXIT_AFTER_EVENTS=3", "tune")), 0)
      << ReadFile(storage_ / "stray.err");
}

TEST_F(CrashResumeTest, ResumeRefusesWhatIsNotAnExperiment) {
  EXPECT_EQ(Shell(fmt::format("{}/tune resume {} 2>{}/err", TUNE_BIN_DIR, storage_.string(),
                              storage_.string())),
            2);
  EXPECT_THAT(ReadFile(storage_ / "err"), ::testing::HasSubstr("is not a tune experiment"));
}

TEST_F(CrashResumeTest, RunOnAnExistingExperimentPointsToResume) {
  ASSERT_EQ(Shell(RunCommand("again", "")), 0);
  EXPECT_EQ(Shell(RunCommand("again", "")), 2);
  EXPECT_THAT(ReadFile(storage_ / "again.err"), ::testing::HasSubstr("tune resume"));
}

}  // namespace
}  // namespace tune
