// Crash tests for schedulers that pause, relaunch and clone trials: the tuner dies (as abruptly
// as kill -9) right after journal event N, for N at the trial_paused, trial_exploited and
// relaunching trial_started events and the reports and stops around them, and `tune resume`
// finishes the experiment. Nothing may be lost or duplicated: each result once, each trial
// ending once, no epoch skipped or repeated, every exploit applied and in lineage.jsonl.
// The median rule (one trial at a time) and HyperBand (every trial at once) have outcomes that
// do not depend on timing (run_helpers.h), so a resumed run must equal an uninterrupted one;
// PBT's does, so its invariants are checked. Only the median run's event order is fixed, so its
// kill points are event numbers; the others name the n-th event of a kind (the test build's
// TUNE_FAULT_EXIT_AFTER_EVENTS=n@kind), which lands on that kind whatever the interleaving.
#include <algorithm>
#include <functional>
#include <map>
#include <string>
#include <utility>
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

// Up to `count` of the 1-based numbers of the events whose KindOf is in `kinds`, spread evenly,
// none of the last 5, as TUNE_FAULT_EXIT_AFTER_EVENTS values (for a run whose order is fixed).
std::vector<std::string> KillPoints(const std::vector<Json>& events,
                                    const std::vector<std::string>& kinds, std::size_t count) {
  std::vector<std::size_t> candidates;
  for (std::size_t i = 0; i + 5 < events.size(); ++i) {
    if (std::find(kinds.begin(), kinds.end(), KindOf(events[i])) != kinds.end()) {
      candidates.push_back(i + 1);
    }
  }
  std::vector<std::string> points;
  const std::size_t n = std::min(count, candidates.size());
  for (std::size_t i = 0; i < n; ++i) {
    points.push_back(std::to_string(candidates[i * candidates.size() / n]));
  }
  return points;
}

// The test build's selector of each KindOf (tuner/main.cc: N@EVENT+KEY[=VALUE]).
std::string FaultSelector(const std::string& kind) {
  if (kind == "relaunch") return "trial_started+checkpoint";
  if (kind == "report (pause)") return "report+decision=pause";
  return kind;
}

// For each of `kinds`, `per_kind` kill points "n@selector" spread over the first `share` of that
// kind's events in `events` (a run whose order depends on timing may have a few fewer of a
// kind, never fewer than that share), with the kind each must land on.
std::vector<std::pair<std::string, std::string>> KindKillPoints(
    const std::vector<Json>& events, const std::vector<std::string>& kinds, std::size_t per_kind,
    double share) {
  std::vector<std::pair<std::string, std::string>> points;
  for (const std::string& kind : kinds) {
    auto total = static_cast<std::size_t>(std::count_if(
        events.begin(), events.end(), [&](const Json& e) { return KindOf(e) == kind; }));
    const auto last = std::max<std::size_t>(1, static_cast<std::size_t>(total * share));
    EXPECT_GT(total, 0u) << "the clean run has no " << kind;
    for (std::size_t i = 0; total > 0 && i < std::min(per_kind, last); ++i) {
      const std::size_t nth = 1 + i * (last - 1) / std::max<std::size_t>(1, per_kind - 1);
      points.emplace_back(fmt::format("{}@{}", nth, FaultSelector(kind)), kind);
    }
  }
  return points;
}

class CrashResumeSchedulersTest : public StorageTest {
 protected:
  // For each kill point (a TUNE_FAULT_EXIT_AFTER_EVENTS value): runs `spec` as experiment
  // crash<i> with the tuner killed there, resumes it to the end (`args`: for both commands) and
  // calls check(dir). Returns how often the tuner was killed after each kind of event (KindOf).
  std::map<std::string, int> KillAndResume(const Json& spec, const std::string& args,
                                           const std::vector<std::string>& points,
                                           const std::function<void(const fs::path&)>& check) {
    std::map<std::string, int> kinds_hit;
    for (std::size_t i = 0; i < points.size(); ++i) {
      const std::string name = fmt::format("crash{}", i);
      RunOutput killed = RunSpec(spec, name, args,
                                 "TUNE_FAULT_EXIT_AFTER_EVENTS=" + points[i], kFaultInjectingTune);
      EXPECT_EQ(killed.exit_code, 137) << name << " at " << points[i] << "\n" << killed.err;
      const std::vector<Json> events = Events(killed.dir);
      if (points[i].find('@') == std::string::npos) {
        EXPECT_EQ(std::to_string(events.size()), points[i]) << name;
      }
      const std::string kind = events.empty() ? "" : KindOf(events.back());
      ++kinds_hit[kind];
      SCOPED_TRACE(name + " at " + points[i] + ", killed after " + kind);
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

  const std::vector<std::string> points =
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

  const auto aimed = KindKillPoints(
      Events(clean.dir), {"trial_paused", "relaunch", "report (pause)", "trial_ended"}, 2, 0.5);
  std::vector<std::string> points;
  std::map<std::string, int> expected;
  for (const auto& [point, kind] : aimed) points.push_back(point), ++expected[kind];
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
  EXPECT_EQ(kinds_hit, expected);
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

  // PBT's exploits depend on timing: aim at the first half of each kind's events.
  const auto aimed = KindKillPoints(
      Events(clean.dir), {"report (pause)", "trial_paused", "trial_exploited", "relaunch"}, 2, 0.5);
  std::vector<std::string> points;
  std::map<std::string, int> expected;
  for (const auto& [point, kind] : aimed) points.push_back(point), ++expected[kind];
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
  EXPECT_EQ(kinds_hit, expected);
}

}  // namespace
}  // namespace tune
