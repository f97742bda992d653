#include "schedulers/hyperband.h"

#include <gtest/gtest.h>

#include <limits>
#include <string>
#include <vector>

#include "tests/schedulers/fake_control.h"

namespace tune {
namespace {

Result At(std::int64_t iteration, double acc) {
  Result result;
  result.training_iteration = iteration;
  result.metrics["acc"] = acc;
  return result;
}

// max_t 3, eta 3: two brackets a band. Bracket s=0 takes 2 trials with milestone 3 (no halving);
// bracket s=1 takes 3 trials with milestone 1, keeps 1 of them, which runs to 3.
class HyperBandTest : public ::testing::Test {
 protected:
  HyperBandTest() : hyperband_(Options()) { hyperband_.SetControl(&control_); }

  static HyperBandOptions Options() {
    HyperBandOptions options;
    options.metric = "acc";
    options.max_t = 3;
    options.reduction_factor = 3;
    return options;
  }
  void Add(const std::string& id) {
    control_.Add(id);
    hyperband_.OnTrialAdd(id);
  }
  // Reports as the tuner would: a PAUSE leaves the trial PAUSED, a STOP ends it.
  Decision Report(const std::string& id, std::int64_t iteration, double acc) {
    control_.SetStatus(id, TrialStatus::kRunning);
    const Decision decision = hyperband_.OnResult(id, At(iteration, acc));
    if (decision == Decision::kPause) control_.SetStatus(id, TrialStatus::kPaused);
    if (decision == Decision::kStop) control_.SetStatus(id, TrialStatus::kStopped);
    return decision;
  }
  // t0, t1 in bracket 0 (running), t2..t4 in bracket 1.
  void FillTwoBrackets() {
    for (const char* id : {"t0", "t1", "t2", "t3", "t4"}) Add(id);
    control_.SetStatus("t0", TrialStatus::kRunning);
    control_.SetStatus("t1", TrialStatus::kRunning);
  }

  FakeControl control_;
  HyperBandScheduler hyperband_;
};

TEST_F(HyperBandTest, MilestonesAreEveryBracketsRungs) {
  // s=0: 3; s=1: 1, then 3.
  EXPECT_EQ(hyperband_.Milestones(), (std::vector<double>{1, 3}));
  // max_t 27, eta 3: s=3 starts at 1 and halves to 3, 9, 27; s=2 at 3; s=1 at 9; s=0 at 27.
  HyperBandOptions options = Options();
  options.max_t = 27;
  EXPECT_EQ(HyperBandScheduler(options).Milestones(), (std::vector<double>{1, 3, 9, 27}));
  // max_t 10, eta 3: s=2 starts at int(10/9) = 1, then 3, then 9; s=1 at 3, then 9; s=0 at 10.
  options.max_t = 10;
  EXPECT_EQ(HyperBandScheduler(options).Milestones(), (std::vector<double>{1, 3, 9, 10}));
}

TEST_F(HyperBandTest, BracketsFillInOrderAndDescribeLikeRay) {
  FillTwoBrackets();
  EXPECT_EQ(hyperband_.Describe(),
            "Using HyperBand: num_stopped=0 total_brackets=2\n"
            "Round #0:\n"
            "  Bracket(Max Size (n)=2, Milestone (r)=3, completed=0.0%): {RUNNING: 2} \n"
            "  Bracket(Max Size (n)=3, Milestone (r)=1, completed=0.0%): {PENDING: 3} ");
  Add("t5");  // a new band
  EXPECT_NE(hyperband_.Describe().find("total_brackets=3\nRound #0:"), std::string::npos);
  EXPECT_NE(hyperband_.Describe().find("Round #1:\n  Bracket(Max Size (n)=2, Milestone (r)=3"),
            std::string::npos);
}

TEST_F(HyperBandTest, PausesAtTheMilestoneUntilTheRungIsComplete) {
  FillTwoBrackets();
  EXPECT_EQ(Report("t2", 1, 0.5), Decision::kPause);
  EXPECT_EQ(Report("t3", 1, 0.9), Decision::kPause);
  // Nothing is promoted yet: the paused trials are not chosen, the pending one is.
  EXPECT_EQ(hyperband_.ChooseTrialToRun(control_.Waiting()), std::optional<std::string>("t4"));
  control_.SetStatus("t4", TrialStatus::kRunning);
  EXPECT_EQ(hyperband_.ChooseTrialToRun(control_.Waiting()), std::nullopt);
  EXPECT_TRUE(control_.stopped.empty());
}

TEST_F(HyperBandTest, CompleteRungKeepsTheTopThirdAndStopsTheRest) {
  FillTwoBrackets();
  Report("t2", 1, 0.5);
  Report("t3", 1, 0.9);
  control_.SetStatus("t4", TrialStatus::kRunning);
  // t4 completes the rung and is the worst: it gets STOP, paused t2 is stopped through the
  // control, t3 is promoted.
  EXPECT_EQ(Report("t4", 1, 0.1), Decision::kStop);
  EXPECT_FALSE(hyperband_.BudgetExhausted(At(1, 0.1)));  // pruned, not at the end of its budget
  EXPECT_EQ(control_.stopped, std::vector<std::string>{"t2"});
  EXPECT_EQ(hyperband_.num_stopped(), 2);
  EXPECT_EQ(hyperband_.ChooseTrialToRun(control_.Waiting()), std::optional<std::string>("t3"));

  // The tuner completes both; neither call changes anything more.
  hyperband_.OnTrialComplete("t4", nullptr);
  hyperband_.OnTrialComplete("t2", nullptr);
  EXPECT_EQ(control_.stopped, std::vector<std::string>{"t2"});

  // t3 runs to max_t: its bracket is finished and it stops at the end of its budget.
  EXPECT_EQ(Report("t3", 2, 0.95), Decision::kContinue);
  EXPECT_EQ(Report("t3", 3, 0.97), Decision::kStop);
  EXPECT_TRUE(hyperband_.BudgetExhausted(At(3, 0.97)));
  EXPECT_EQ(hyperband_.num_stopped(), 2);
}

TEST_F(HyperBandTest, PausedTrialsStoppedAtMaxTHaveCompleted) {
  FillTwoBrackets();
  // Bracket 0 has one rung, at max_t: t0 waits there for t1, then both are done.
  EXPECT_EQ(Report("t0", 3, 0.5), Decision::kPause);
  EXPECT_EQ(Report("t1", 3, 0.6), Decision::kStop);
  EXPECT_TRUE(hyperband_.BudgetExhausted(At(3, 0.6)));
  EXPECT_EQ(control_.stopped, std::vector<std::string>{"t0"});
  EXPECT_EQ(control_.completed_stops, std::vector<std::string>{"t0"});  // TERMINATED, not pruned
}

TEST_F(HyperBandTest, ReportingWinnerContinuesAndModeMinFlipsTheRanking) {
  HyperBandOptions options = Options();
  options.mode = Mode::kMin;
  HyperBandScheduler hyperband(options);
  FakeControl control;
  hyperband.SetControl(&control);
  for (const char* id : {"t0", "t1", "t2", "t3", "t4"}) {
    control.Add(id, TrialStatus::kRunning);
    hyperband.OnTrialAdd(id);
  }
  EXPECT_EQ(hyperband.OnResult("t2", At(1, 0.5)), Decision::kPause);
  control.SetStatus("t2", TrialStatus::kPaused);
  EXPECT_EQ(hyperband.OnResult("t3", At(1, 0.9)), Decision::kPause);
  control.SetStatus("t3", TrialStatus::kPaused);
  EXPECT_EQ(hyperband.OnResult("t4", At(1, 0.1)), Decision::kContinue);  // lowest wins
  EXPECT_EQ(control.stopped, (std::vector<std::string>{"t3", "t2"}));   // worst first
}

TEST_F(HyperBandTest, BracketsAreChosenByLeastCompletion) {
  FillTwoBrackets();
  control_.SetStatus("t0", TrialStatus::kPending);
  control_.SetStatus("t1", TrialStatus::kPending);
  // Both at 0%: the band's order, so bracket 0's t0 first.
  EXPECT_EQ(hyperband_.ChooseTrialToRun(control_.Waiting()), std::optional<std::string>("t0"));
  control_.SetStatus("t0", TrialStatus::kRunning);
  Report("t0", 1, 0.5);  // bracket 0: 1 of 6 units of work
  control_.SetStatus("t0", TrialStatus::kPending);
  // Bracket 1 (0%) now comes first.
  EXPECT_EQ(hyperband_.ChooseTrialToRun(control_.Waiting()), std::optional<std::string>("t2"));
}

TEST_F(HyperBandTest, ATrialLeavingCompletesTheRung) {
  FillTwoBrackets();
  Report("t2", 1, 0.5);
  Report("t3", 1, 0.9);
  control_.SetStatus("t4", TrialStatus::kError);
  hyperband_.OnTrialError("t4");  // Ray's on_trial_remove processes the bracket
  EXPECT_EQ(control_.stopped, std::vector<std::string>{"t2"});
  EXPECT_EQ(hyperband_.ChooseTrialToRun(control_.Waiting()), std::optional<std::string>("t3"));
}

// A tuner that completes a trial from inside StopTrial.
class ReentrantControl : public FakeControl {
 public:
  void StopTrial(const std::string& trial_id, bool completed) override {
    FakeControl::StopTrial(trial_id, completed);
    scheduler->OnTrialComplete(trial_id, nullptr);
  }
  Scheduler* scheduler = nullptr;
};

TEST_F(HyperBandTest, StopTrialMayCompleteTheTrialAtOnce) {
  ReentrantControl control;
  HyperBandScheduler hyperband(Options());
  control.scheduler = &hyperband;
  hyperband.SetControl(&control);
  for (const char* id : {"t0", "t1", "t2", "t3", "t4"}) {
    control.Add(id, TrialStatus::kRunning);
    hyperband.OnTrialAdd(id);
  }
  hyperband.OnResult("t2", At(1, 0.5));
  control.SetStatus("t2", TrialStatus::kPaused);
  hyperband.OnResult("t3", At(1, 0.9));
  control.SetStatus("t3", TrialStatus::kPaused);
  EXPECT_EQ(hyperband.OnResult("t4", At(1, 0.1)), Decision::kStop);
  EXPECT_EQ(control.stopped, std::vector<std::string>{"t2"});
}

TEST_F(HyperBandTest, ResultsWithoutTheKeysAreIgnoredAndStoppedTrialsStayStopped) {
  FillTwoBrackets();
  Result no_metric;
  no_metric.training_iteration = 1;
  EXPECT_EQ(hyperband_.OnResult("t2", no_metric), Decision::kContinue);
  Result nan_time = At(0, 0.5);
  nan_time.metrics["epoch"] = "x";
  HyperBandOptions options = Options();
  options.time_attr = "epoch";
  HyperBandScheduler by_epoch(options);
  EXPECT_EQ(by_epoch.OnResult("t0", nan_time), Decision::kContinue);
  // t2 still counts as not at the milestone: the rung is incomplete.
  Report("t3", 1, 0.9);
  Report("t4", 1, 0.1);
  EXPECT_TRUE(control_.stopped.empty());
  // A NaN metric ranks last.
  EXPECT_EQ(Report("t2", 1, std::numeric_limits<double>::quiet_NaN()), Decision::kStop);
  EXPECT_EQ(control_.stopped, std::vector<std::string>{"t4"});
  EXPECT_EQ(hyperband_.OnResult("t2", At(2, 0.99)), Decision::kStop);  // late result
}

TEST_F(HyperBandTest, WithoutStopLastTrialsTheLastRungNeverCloses) {
  HyperBandOptions options = Options();
  options.stop_last_trials = false;
  HyperBandScheduler hyperband(options);
  hyperband.OnTrialAdd("t0");
  for (int iteration = 1; iteration <= 10; ++iteration) {
    EXPECT_EQ(hyperband.OnResult("t0", At(iteration, 0.5)), Decision::kContinue) << iteration;
  }
}

TEST(HyperBandOptionsTest, DefaultsAndErrorsNamePaths) {
  auto scheduler = MakeScheduler(Json{{"type", "hyperband"}}, "acc", Mode::kMax);
  const auto* hyperband = dynamic_cast<const HyperBandScheduler*>(scheduler.get());
  ASSERT_NE(hyperband, nullptr);
  EXPECT_EQ(hyperband->options().time_attr, "training_iteration");
  EXPECT_EQ(hyperband->options().max_t, 81);
  EXPECT_EQ(hyperband->options().reduction_factor, 3);
  EXPECT_TRUE(hyperband->options().stop_last_trials);
  EXPECT_EQ(scheduler->Describe(), "Using HyperBand: num_stopped=0 total_brackets=0\nRound #0:");

  auto error = [](const Json& spec, const std::string& metric = "acc") -> std::string {
    try {
      MakeScheduler(spec, metric, Mode::kMax);
    } catch (const SpecError& e) {
      return e.what();
    }
    return "";
  };
  EXPECT_EQ(error(Json{{"type", "hyperband"}, {"max_t", 0.5}}),
            "scheduler.max_t: must be between 1 and 1e+09, got 0.5");
  EXPECT_EQ(error(Json{{"type", "hyperband"}, {"reduction_factor", 1}}),
            "scheduler.reduction_factor: must be > 1, got 1");
  EXPECT_EQ(error(Json{{"type", "hyperband"}, {"grace_period", 1}}),
            "scheduler.grace_period: unknown option");
  EXPECT_EQ(error(Json{{"type", "hyperband"}, {"stop_last_trial", true}}),
            "scheduler.stop_last_trial: unknown option (did you mean \"stop_last_trials\"?)");
  EXPECT_EQ(error(Json{{"type", "hyperband"}}, ""),
            "scheduler.metric: hyperband needs a metric: set \"metric\" in the experiment or in "
            "the scheduler");
}

// Bands whose trials have all left are skipped for good; an older band with a live trial still
// comes first.
TEST_F(HyperBandTest, ChoiceSkipsBandsWithoutLiveTrials) {
  for (int i = 0; i < 15; ++i) Add("t" + std::to_string(i));  // three bands of five
  const auto complete = [this](const std::string& id) {
    control_.SetStatus(id, TrialStatus::kTerminated);
    hyperband_.OnTrialComplete(id, nullptr);
  };
  for (const char* id : {"t0", "t1", "t3", "t4", "t5", "t6", "t7", "t8", "t9"}) complete(id);
  EXPECT_EQ(hyperband_.ChooseTrialToRun(control_.Waiting()), std::optional<std::string>("t2"));
  complete("t2");
  EXPECT_EQ(hyperband_.ChooseTrialToRun(control_.Waiting()), std::optional<std::string>("t10"));
  for (int i = 10; i < 15; ++i) complete("t" + std::to_string(i));
  EXPECT_EQ(hyperband_.ChooseTrialToRun(control_.Waiting()), std::nullopt);
  Add("t15");  // a fourth band
  EXPECT_EQ(hyperband_.ChooseTrialToRun(control_.Waiting()), std::optional<std::string>("t15"));
}

TEST_F(HyperBandTest, DoneRoundsAreDescribedOnceAndKept) {
  // Eight rounds of five trials, each round filled before its trials end (every fifth pruned),
  // then t40 (it joins round 7, where t39's end left room); t3 is still being stopped (not final).
  for (int round = 0; round < 8; ++round) {
    for (int i = 5 * round; i < 5 * round + 5; ++i) Add("t" + std::to_string(i));
    for (int i = 5 * round; i < 5 * round + 5; ++i) {
      control_.SetStatus("t" + std::to_string(i), i % 5 == 4 ? TrialStatus::kStopped : TrialStatus::kTerminated);
      hyperband_.OnTrialComplete("t" + std::to_string(i), nullptr);
    }
  }
  Add("t40");
  control_.SetStatus("t3", TrialStatus::kRunning);
  const std::string running = hyperband_.Describe();
  EXPECT_NE(running.find("total_brackets=16\nRound #0:\n  Bracket(Max Size (n)=2, Milestone (r)=3, "
                         "completed=100.0%): {TERMINATED: 2} \n  Bracket(Max Size (n)=1, Milestone "
                         "(r)=3, completed=100.0%): {RUNNING: 1, STOPPED: 1, TERMINATED: 2} \nRound #1:"),
            std::string::npos)
      << running;
  // Round 0 is not done while t3 is not final: it is described anew.
  control_.SetStatus("t3", TrialStatus::kTerminated);
  const std::string done = hyperband_.Describe();
  EXPECT_EQ(done.find("RUNNING"), std::string::npos) << done;
  std::string expected = running;
  expected.replace(expected.find("{RUNNING: 1, STOPPED: 1, TERMINATED: 2}"),
                   std::string("{RUNNING: 1, STOPPED: 1, TERMINATED: 2}").size(),
                   "{STOPPED: 1, TERMINATED: 3}");
  EXPECT_EQ(done, expected) << "the same text as Ray's debug_string";
  // Rounds 0-6 are done: their text is kept, not recounted (statuses of final trials do not
  // change within a run); the newest round is described anew.
  control_.SetStatus("t3", TrialStatus::kError);
  EXPECT_EQ(hyperband_.Describe(), done);
  control_.SetStatus("t40", TrialStatus::kRunning);
  const std::string newest = hyperband_.Describe();
  EXPECT_EQ(newest.substr(0, newest.find("\nRound #7:")), done.substr(0, done.find("\nRound #7:")));
  EXPECT_NE(newest.substr(newest.find("\nRound #7:")).find("RUNNING: 1"), std::string::npos) << newest;
}

}  // namespace
}  // namespace tune
