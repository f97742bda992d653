// Crash tests for schedulers that pause, relaunch and clone trials: the tuner dies (as abruptly
// as kill -9) right after journal event N, for N at the trial_paused, trial_exploited and
// relaunching trial_started events and the reports and stops around them, and `tune resume`
// finishes the experiment. Nothing may be lost or duplicated: each result once, each trial
// ending once, no epoch skipped or repeated, every exploit applied and in lineage.jsonl.
// The median rule (one trial at a time) and HyperBand (every trial at once) have outcomes that
// do not depend on timing (run_helpers.h), so a resumed run must equal an uninterrupted one;
// PBT's does, so its invariants are checked. Only the median run's event order is fixed, so
// only its kill points land on chosen events every time; the others aim near them.
#include <algorithm>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "tests/integration/run_helpers.h"

namespace tune {
namespace {

using namespace integration;

// What journal event `event` is, for the tally of kill points: its type, "relaunch" for the
// trial_started of a trial that runs again from a checkpoint.
std::string KindOf(const Json& event) {
  if (event["event"] == "trial_started" && event["checkpoint"].is_string()) return "relaunch";
  if (event["event"] == "report" && event["decision"] != "continue") {
    return "report (" + event["decision"].get<std::string>() + ")";
  }
  return event["event"];
}

// Up to `count` of the 1-based numbers of the events whose KindOf is in `kinds`, spread evenly;
// none of the last 5 (a run whose order depends on timing may write a few events fewer).
std::vector<std::size_t> KillPoints(const std::vector<Json>& events,
                                    const std::vector<std::string>& kinds, std::size_t count) {
  std::vector<std::size_t> candidates;
  for (std::size_t i = 0; i + 5 < events.size(); ++i) {
    if (std::find(kinds.begin(), kinds.end(), KindOf(events[i])) != kinds.end()) {
      candidates.push_back(i + 1);
    }
  }
  if (candidates.size() <= count) return candidates;
  std::vector<std::size_t> points;
  for (std::size_t i = 0; i < count; ++i) points.push_back(candidates[i * candidates.size() / count]);
  return points;
}

class CrashResumeSchedulersTest : public StorageTest {
 protected:
  // For each kill point N: runs `spec` as experiment crash<N> with the tuner killed right after
  // journal event N, resumes it to the end (`args`: for both commands) and calls check(dir).
  // Returns how often the tuner was killed after each kind of event (KindOf).
  std::map<std::string, int> KillAndResume(const Json& spec, const std::string& args,
                                           const std::vector<std::size_t>& points,
                                           const std::function<void(const fs::path&)>& check) {
    std::map<std::string, int> kinds_hit;
    for (std::size_t after : points) {
      const std::string name = fmt::format("crash{}", after);
      RunOutput killed = RunSpec(spec, name, args,
                                 fmt::format("TUNE_FAULT_EXIT_AFTER_EVENTS={}", after),
                                 kFaultInjectingTune);
      EXPECT_EQ(killed.exit_code, 137) << name << "\n" << killed.err;
      const std::vector<Json> events = Events(killed.dir);
      EXPECT_EQ(events.size(), after) << name;
      const std::string kind = events.empty() ? "" : KindOf(events.back());
      ++kinds_hit[kind];
      SCOPED_TRACE(name + ", killed after " + kind);
      RunOutput resumed = Resume(name, args);
      EXPECT_EQ(resumed.exit_code, 0) << resumed.err;
      check(killed.dir);
    }
    return kinds_hit;
  }
};

TEST_F(CrashResumeSchedulersTest, MedianRuleKilledAtEveryPauseAndRelaunchResumesToTheSameOutcome) {
  const Json spec = MedianCurveSpec();
  RunOutput clean = RunSpec(spec, "clean");
  ASSERT_EQ(clean.exit_code, 0) << clean.err;
  const Curves clean_curves = ReadCurves(clean.dir);
  const std::map<std::string, std::string> clean_statuses = FinalStatuses(clean.dir);
  ASSERT_EQ(clean_statuses.size(), 6u);

  const std::vector<std::size_t> points =
      KillPoints(Events(clean.dir), {"report (pause)", "trial_paused", "relaunch"}, 16);
  auto kinds_hit = KillAndResume(spec, "", points, [&](const fs::path& dir) {
    EXPECT_EQ(ReadCurves(dir), clean_curves);
    EXPECT_EQ(FinalStatuses(dir), clean_statuses);
    ExpectEachResultOnce(dir);
    ExpectEpochsContinue(dir);
  });
  EXPECT_EQ(kinds_hit, (std::map<std::string, int>{
                           {"report (pause)", 4}, {"trial_paused", 4}, {"relaunch", 4}}));
}

TEST_F(CrashResumeSchedulersTest, HyperBandKilledAtPausesAndRelaunchesResumesToTheSameOutcome) {
  const Json spec = HyperBandCurveSpec(/*num_samples=*/8);  // brackets of 3 and 5 trials
  const std::string args = "--cpus 8";
  RunOutput clean = RunSpec(spec, "clean", args);
  ASSERT_EQ(clean.exit_code, 0) << clean.err;
  const Curves clean_curves = ReadCurves(clean.dir);
  const std::map<std::string, std::string> clean_statuses = FinalStatuses(clean.dir);
  ASSERT_EQ(clean_statuses.size(), 8u);

  const std::vector<std::size_t> points = KillPoints(
      Events(clean.dir), {"trial_paused", "relaunch", "report (pause)", "trial_ended"}, 8);
  auto kinds_hit = KillAndResume(spec, args, points, [&](const fs::path& dir) {
    EXPECT_EQ(ReadCurves(dir), clean_curves);
    ExpectEachResultOnce(dir);
    ExpectEpochsContinue(dir);
    // Which trials that completed max_t end TERMINATED and which STOPPED depends on who reported
    // last at the final rung; a pruned trial is STOPPED in every run.
    std::map<std::string, std::string> statuses = FinalStatuses(dir);
    ASSERT_EQ(statuses.size(), clean_statuses.size());
    for (const auto& [id, status] : clean_statuses) {
      if (clean_curves.at(id).size() < 9) {
        EXPECT_EQ(statuses[id], status) << id;
      }
    }
  });
  // Reports of trials running side by side interleave differently in each run, so a kill point
  // aimed at a pause, relaunch or stop may land on a report next to it; all are crashes to
  // survive. Some land on what they aimed at.
  int aimed = 0;
  for (const auto& [kind, count] : kinds_hit) aimed += kind == "report" ? 0 : count;
  EXPECT_GT(aimed, 0);
}

// Each report that paused a trial is followed by its trial_paused and, as every pause of
// PbtCurveSpec is an exploit, its trial_exploited, before the trial starts again. (A trial told
// to pause at its last epoch finishes instead and ends TERMINATED; but when the tuner died before
// the trial heard the decision, resume completes the pause and the exploit.)
void ExpectEveryPauseExploited(const fs::path& experiment, int max_epochs) {
  std::map<std::string, std::vector<std::string>> owed;  // trial -> the events it still owes
  for (const Json& event : Events(experiment)) {
    if (!event.contains("trial_id")) continue;
    const std::string id = event["trial_id"], kind = event["event"];
    if (kind == "report" && event["decision"] == "pause") {
      owed[id] = {"trial_paused", "trial_exploited"};
      if (event["result"]["metrics"]["epoch"] == max_epochs) owed[id] = {"trial_ended"};
    } else if (owed[id] == std::vector<std::string>{"trial_ended"} && kind == "trial_paused") {
      owed[id] = {"trial_exploited"};
    } else if (!owed[id].empty() && kind == owed[id].front()) {
      owed[id].erase(owed[id].begin());
    } else if (kind == "trial_started" || kind == "trial_ended") {
      EXPECT_TRUE(owed[id].empty()) << id << " lost its exploit: " << event.dump();
      owed[id].clear();
    }
  }
}

TEST_F(CrashResumeSchedulersTest, PbtKilledAtExploitsResumesWithNoExploitLostOrRepeated) {
  const Json spec = PbtCurveSpec();
  const std::string args = "--cpus 4";
  RunOutput clean = RunSpec(spec, "clean", args);
  ASSERT_EQ(clean.exit_code, 0) << clean.err;
  ASSERT_FALSE(Events(clean.dir, "trial_exploited").empty());

  const std::vector<std::size_t> points = KillPoints(
      Events(clean.dir), {"report (pause)", "trial_paused", "trial_exploited", "relaunch"}, 6);
  auto kinds_hit = KillAndResume(spec, args, points, [&](const fs::path& dir) {
    ExpectEachResultOnce(dir);
    ExpectEpochsContinue(dir);
    ExpectEveryPauseExploited(dir, spec["trainer"]["max_epochs"].get<int>());
    ExpectLineageOfEachExploit(dir);
    // No trial is pruned: each ends once, TERMINATED.
    std::map<std::string, std::string> statuses = FinalStatuses(dir);
    ASSERT_EQ(statuses.size(), 4u);
    for (const auto& [id, status] : statuses) EXPECT_EQ(status, "TERMINATED") << id;
  });
  // As with HyperBand, a kill point may land next to the exploit event it aimed at.
  EXPECT_GT(kinds_hit["report (pause)"] + kinds_hit["trial_paused"] +
                kinds_hit["trial_exploited"] + kinds_hit["relaunch"],
            0);
}

}  // namespace
}  // namespace tune
