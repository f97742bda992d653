// The tuner's loop driven with a fake launcher, a fake clock and a scripted scheduler: no
// processes, no sleeping. The test plays the trials through Tuner::handler(), as the report
// server would, and ends their "processes" through the fake launcher.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <sstream>

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/clock.h"
#include "core/text.h"
#include "tuner/journal.h"
#include "tuner/tuner.h"

namespace tune {
namespace {

namespace fs = std::filesystem;

// Records launches and signals; the test decides when a group exits.
class FakeLauncher : public Launcher {
 public:
  struct Group {
    std::vector<LaunchRequest> ranks;
    std::vector<int> signals;
    bool exited = false;
  };
  std::int64_t Launch(const std::vector<LaunchRequest>& ranks) override {
    std::int64_t id = next_id_++;
    groups_[id] = Group{ranks, {}, false};
    launched_.push_back(id);
    return id;
  }
  void Signal(std::int64_t group, int signal) override { groups_[group].signals.push_back(signal); }
  void SetExitCallback(ExitCallback callback) override { on_exit_ = std::move(callback); }

  void Exit(std::int64_t group, int code, int signal = 0) {
    groups_[group].exited = true;
    on_exit_(group, ExitStatus{code, signal, 0, 1});
  }
  const Group& group(std::int64_t id) { return groups_.at(id); }
  const std::vector<std::int64_t>& launched() const { return launched_; }
  // The env of the last launch of `trial_id`, and its group.
  std::int64_t LastGroupOf(const std::string& trial_id) const {
    for (auto it = launched_.rbegin(); it != launched_.rend(); ++it) {
      if (groups_.at(*it).ranks[0].env.at("TUNE_TRIAL_ID") == trial_id) return *it;
    }
    return 0;
  }
  std::string Env(std::int64_t group, const std::string& key) const {
    const auto& env = groups_.at(group).ranks[0].env;
    auto it = env.find(key);
    return it == env.end() ? "" : it->second;
  }

 private:
  std::int64_t next_id_ = 1000;
  std::map<std::int64_t, Group> groups_;
  std::vector<std::int64_t> launched_;
  ExitCallback on_exit_;
};

// A scheduler whose decisions the test writes: `decide` per result (default CONTINUE); the rest
// is the base class's (FIFO choice).
class ScriptedScheduler : public Scheduler {
 public:
  std::function<Decision(const std::string&, const Result&)> decide;
  std::function<std::optional<std::string>(const std::vector<const Trial*>&)> choose;
  std::vector<std::string> calls;

  void OnTrialAdd(const std::string& id) override { calls.push_back("add " + id); }
  Decision OnResult(const std::string& id, const Result& result) override {
    calls.push_back(fmt::format("result {} {}", id, result.training_iteration));
    return decide ? decide(id, result) : Decision::kContinue;
  }
  void OnTrialComplete(const std::string& id, const Result*) override {
    calls.push_back("complete " + id);
  }
  void OnTrialError(const std::string& id) override { calls.push_back("error " + id); }
  std::optional<std::string> ChooseTrialToRun(const std::vector<const Trial*>& waiting) override {
    return choose ? choose(waiting) : Scheduler::ChooseTrialToRun(waiting);
  }
  std::string Describe() const override { return "Scripted"; }
  TrialControl* control_for_test() const { return control(); }
};

class TunerLoopTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           fmt::format("tune_loop_{}_{}", getpid(),
                       ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    raw_ = Json::parse(R"({"name": "loop", "metric": "acc", "mode": "max",
                           "space": {"x": {"grid_search": [1, 2, 3]}},
                           "max_concurrent": 1,
                           "trainer": {"command": ["/bin/true"]}})");
  }
  void TearDown() override {
    if (!HasFailure()) fs::remove_all(dir_);
  }

  // A tuner on `raw_` with fakes; `scheduler` (optional) replaces the spec's.
  std::unique_ptr<Tuner> MakeTuner(bool resume = false, bool errored = false) {
    TunerOptions options;
    options.experiment_dir = dir_;
    options.cpus = 4;
    options.out = out_ = std::tmpfile();
    options.resume = resume;
    options.resume_errored = errored;
    options.clock = &clock_;
    options.handle_signals = false;
    options.snapshot_every_events = snapshot_every_;
    options.make_launcher = [this](boost::asio::io_context&) {
      auto launcher = std::make_unique<FakeLauncher>();
      launcher_ = launcher.get();
      return launcher;
    };
    if (scripted_) {
      options.make_scheduler = [this]() -> std::unique_ptr<Scheduler> {
        auto scheduler = std::make_unique<ScriptedScheduler>();
        scheduler->decide = decide_;
        scheduler->choose = choose_;
        scheduler_ = scheduler.get();
        return scheduler;
      };
    }
    auto tuner = std::make_unique<Tuner>(ParseSpec(raw_, dir_), std::move(options));
    tuner->Start();
    tuner->Poll();
    return tuner;
  }

  // Plays one report of the running attempt of `trial_id`; returns the decision it got.
  Action Report(Tuner& tuner, const std::string& trial_id, std::int64_t iter, double acc,
                std::optional<std::string> checkpoint = std::nullopt) {
    ReportMessage report;
    report.iter = iter;
    report.metrics = {{"acc", acc}};
    report.checkpoint = std::move(checkpoint);
    Action action = tuner.handler().OnReport(trial_id, report);
    tuner.handler().BeforeReplies();
    return action;
  }
  // Connects, reports iters 1..n (acc = x / 10 * iter), says done and exits 0.
  void RunToEnd(Tuner& tuner, const std::string& trial_id, int n, double x) {
    tuner.handler().OnConnect(trial_id, 1);
    for (int i = 1; i <= n; ++i) Report(tuner, trial_id, i, x / 10 * i);
    tuner.handler().OnDone(trial_id);
    launcher_->Exit(launcher_->LastGroupOf(trial_id), 0);
    tuner.Poll();
  }
  // The snapshot tests' experiment: random search seeded `seed`, ASHA to iteration 6, a plateau
  // stopper (its windows are state too), 3 trials at once, a journal snapshot every 20 events.
  void UseSnapshotSpec(int seed) {
    raw_ = Json::parse(R"({"name": "snap", "metric": "acc", "mode": "max", "num_samples": 400,
                           "max_concurrent": 3, "search": {"algorithm": "random"},
                           "scheduler": {"type": "asha", "time_attr": "training_iteration",
                                         "max_t": 6, "grace_period": 1, "reduction_factor": 2},
                           "space": {"x": {"uniform": [0, 1]}},
                           "stop": {"plateau": {"std": 0.05, "num_results": 2,
                                                "grace_period": 2}},
                           "trainer": {"command": ["/bin/true"]}})");
    raw_["search"]["seed"] = seed;
    snapshot_every_ = 20;
  }
  // The PBT snapshot test's experiment: as UseSnapshotSpec's with PBT instead of ASHA (every 2
  // iterations the bottom half clones the top half's checkpoints and explores x), 6 trials.
  void UsePbtSnapshotSpec(int seed) {
    UseSnapshotSpec(seed);
    raw_["scheduler"] = Json::parse(R"({"type": "pbt", "time_attr": "training_iteration",
        "perturbation_interval": 2, "quantile_fraction": 0.5,
        "hyperparam_mutations": {"x": {"uniform": [0, 1]}}})");
    raw_["scheduler"]["seed"] = seed;
    raw_["num_samples"] = 6;  // a population that takes turns on the 3 slots
    raw_.erase("stop");       // that trains on
    snapshot_every_ = 150;    // a tail long enough to hold exploits
  }
  // `steps` reports, each from a running trial picked at random, with a random acc (and with
  // `checkpoints`, a new checkpoint directory each); a trial ends (done, exit 0) when told to
  // stop or at `last_iteration`, and pauses (exit 0) when told to (with `checkpoints`, a few
  // steps later: PBT's exploits wait for it meanwhile).
  // `stop_when`, when given, is asked after each step and ends the play early.
  void PlayRandomly(Tuner& tuner, int steps, unsigned seed, bool checkpoints = false,
                    int last_iteration = 6, const std::function<bool()>& stop_when = {}) {
    std::mt19937 random(seed);
    std::map<std::string, int> iterations;
    std::set<std::int64_t> connected;
    std::map<std::int64_t, std::pair<std::string, std::optional<std::string>>> pausing;
    for (int step = 0; step < steps; ++step) {
      std::vector<std::int64_t> running;
      for (std::int64_t group : launcher_->launched()) {
        if (!launcher_->group(group).exited && pausing.count(group) == 0) running.push_back(group);
      }
      for (auto it = pausing.begin(); it != pausing.end();) {
        if (!running.empty() && random() % 3 != 0) {
          ++it;
          continue;
        }
        tuner.handler().OnPaused(it->second.first, it->second.second);
        launcher_->Exit(it->first, 0);
        it = pausing.erase(it);
      }
      if (running.empty()) {
        tuner.Poll();
        continue;
      }
      const std::int64_t group = running[random() % running.size()];
      const std::string id = launcher_->Env(group, "TUNE_TRIAL_ID");
      if (connected.insert(group).second) tuner.handler().OnConnect(id, 1);
      const int iteration = ++iterations[id];
      std::optional<std::string> checkpoint;
      if (checkpoints) {
        const fs::path dir = fs::absolute(dir_ / "ck" / (id + "_" + std::to_string(iteration)));
        fs::create_directories(dir);
        std::ofstream(dir / "model.pt") << id << " " << iteration;
        checkpoint = dir.string();
      }
      const Action action =
          Report(tuner, id, iteration, (random() % 1000) / 1000.0, checkpoint);
      if (action == Action::kPause && checkpoints) {  // PBT's (an exploit is one too)
        pausing[group] = {id, checkpoint};
      } else if (action == Action::kPause) {
        tuner.handler().OnPaused(id, checkpoint);
        launcher_->Exit(group, 0);
      } else if (action != Action::kContinue || iteration == last_iteration) {
        tuner.handler().OnDone(id);
        launcher_->Exit(group, 0);
      }
      clock_.Advance(0.1);
      tuner.Poll();
      if (stop_when && stop_when()) return;
    }
  }
  std::vector<Json> Events() { return ReadJournal(dir_ / "journal.jsonl").events; }
  std::vector<std::string> EventTypes(const std::string& trial_id = "") {
    std::vector<std::string> types;
    for (const Json& event : Events()) {
      if (trial_id.empty() || event.value("trial_id", "") == trial_id) {
        types.push_back(event["event"].get<std::string>());
      }
    }
    return types;
  }
  const Trial& TrialOf(const Tuner& tuner, const std::string& id) {
    for (const Trial& trial : tuner.trials()) {
      if (trial.id == id) return trial;
    }
    throw std::logic_error("no trial " + id);
  }

  fs::path dir_;
  Json raw_;
  FakeClock clock_;
  FakeLauncher* launcher_ = nullptr;
  std::FILE* out_ = nullptr;
  bool scripted_ = false;
  // Kills a tuner after `play_seed`'s PlayRandomly, then resumes copies of the experiment from
  // its newest state file and by a full replay: both must end the same (with PBT, the lineage
  // files too), and the play must have shown the case.
  enum class PbtCase { kNone, kClonedOnBothSides, kExploitWaiting };
  void ExpectSnapshotResumeEqualsFullReplay(PbtCase pbt_case, unsigned play_seed);
  std::size_t snapshot_every_ = 10000;
  std::function<Decision(const std::string&, const Result&)> decide_;
  std::function<std::optional<std::string>(const std::vector<const Trial*>&)> choose_;
  ScriptedScheduler* scheduler_ = nullptr;
};

TEST_F(TunerLoopTest, RunsEveryTrialOneAtATimeAndEndsWithTheBest) {
  auto tuner = MakeTuner();
  for (const char* id : {"t_00001", "t_00002", "t_00003"}) {
    ASSERT_EQ(launcher_->launched().size(), static_cast<std::size_t>(id[6] - '0')) << id;
    RunToEnd(*tuner, id, 3, id[6] - '0');
  }
  EXPECT_FALSE(tuner->Poll());
  EXPECT_EQ(tuner->Finish(), 0);
  for (const Trial& trial : tuner->trials()) EXPECT_EQ(trial.status, TrialStatus::kTerminated);
  ASSERT_NE(tuner->best(), nullptr);
  EXPECT_EQ(tuner->best()->id, "t_00003");
  EXPECT_EQ(EventTypes("t_00002"),
            (std::vector<std::string>{"trial_created", "trial_started", "report", "report",
                                      "report", "trial_ended"}));
  EXPECT_TRUE(fs::exists(dir_ / "best_trial.json"));
  EXPECT_EQ(Json::parse(std::ifstream(dir_ / "best_trial.json"))["trial_id"], "t_00003");
}

TEST_F(TunerLoopTest, TimesAndTimeoutsFollowTheInjectedClock) {
  raw_["trial_timeout_s"] = 60;
  raw_["max_failures"] = 1;
  auto tuner = MakeTuner();
  std::int64_t group = launcher_->LastGroupOf("t_00001");
  tuner->handler().OnConnect("t_00001", 1);
  clock_.Advance(30);
  EXPECT_EQ(Report(*tuner, "t_00001", 1, 0.5), Action::kContinue);
  EXPECT_DOUBLE_EQ(TrialOf(*tuner, "t_00001").last_result->time_total_s, 30);
  EXPECT_DOUBLE_EQ(TrialOf(*tuner, "t_00001").last_result->timestamp, clock_.Wall());
  clock_.Advance(59);  // the report re-armed the watchdog: 59 s of silence is fine
  tuner->Poll();
  EXPECT_TRUE(launcher_->group(group).signals.empty());
  clock_.Advance(2);
  tuner->Poll();
  EXPECT_EQ(launcher_->group(group).signals, std::vector<int>{SIGKILL});
  launcher_->Exit(group, 0, SIGKILL);
  tuner->Poll();
  // A timeout is a failure and is retried, from the last checkpoint, as a new attempt.
  EXPECT_EQ(TrialOf(*tuner, "t_00001").num_failures, 1);
  EXPECT_EQ(TrialOf(*tuner, "t_00001").status, TrialStatus::kRunning);
  EXPECT_THAT(TrialOf(*tuner, "t_00001").error, ::testing::HasSubstr("sent no report"));
  EXPECT_EQ(launcher_->launched().size(), 2u);
}

TEST_F(TunerLoopTest, ATrialToldToStopIsKilledAfterTheGracePeriod) {
  raw_["stop_grace_s"] = 10;
  scripted_ = true;
  decide_ = [](const std::string&, const Result& r) {
    return r.training_iteration == 2 ? Decision::kStop : Decision::kContinue;
  };
  auto tuner = MakeTuner();
  std::int64_t group = launcher_->LastGroupOf("t_00001");
  tuner->handler().OnConnect("t_00001", 1);
  EXPECT_EQ(Report(*tuner, "t_00001", 1, 0.1), Action::kContinue);
  EXPECT_EQ(Report(*tuner, "t_00001", 2, 0.2), Action::kStop);
  clock_.Advance(9.9);
  tuner->Poll();
  EXPECT_TRUE(launcher_->group(group).signals.empty());
  clock_.Advance(0.2);
  tuner->Poll();
  EXPECT_EQ(launcher_->group(group).signals, std::vector<int>{SIGKILL});
  launcher_->Exit(group, 0, SIGKILL);
  tuner->Poll();
  EXPECT_EQ(TrialOf(*tuner, "t_00001").status, TrialStatus::kStopped);
  EXPECT_EQ(launcher_->LastGroupOf("t_00002"), launcher_->launched().back());
}

TEST_F(TunerLoopTest, APausedTrialFreesItsSlotAndRunsAgainFromItsCheckpoint) {
  scripted_ = true;
  decide_ = [](const std::string& id, const Result& r) {
    return id == "t_00001" && r.training_iteration == 2 ? Decision::kPause : Decision::kContinue;
  };
  auto tuner = MakeTuner();
  tuner->handler().OnConnect("t_00001", 1);
  Report(*tuner, "t_00001", 1, 0.1, "/ck/1");
  EXPECT_EQ(Report(*tuner, "t_00001", 2, 0.2, "/ck/2"), Action::kPause);
  // Another report after the pause decision gets "pause" again and changes nothing.
  EXPECT_EQ(Report(*tuner, "t_00001", 3, 0.3), Action::kPause);
  EXPECT_EQ(TrialOf(*tuner, "t_00001").num_results, 2);
  tuner->handler().OnPaused("t_00001", std::string("/ck/2b"));
  launcher_->Exit(launcher_->LastGroupOf("t_00001"), 0);
  tuner->Poll();
  EXPECT_EQ(TrialOf(*tuner, "t_00001").last_checkpoint, "/ck/2b");
  // FIFO's choice: the new pending trial before the paused one.
  EXPECT_EQ(TrialOf(*tuner, "t_00001").status, TrialStatus::kPaused);
  EXPECT_EQ(TrialOf(*tuner, "t_00002").status, TrialStatus::kRunning);
  RunToEnd(*tuner, "t_00002", 1, 2);
  RunToEnd(*tuner, "t_00003", 1, 3);
  // Then the paused trial, from the checkpoint it acknowledged; its results continue.
  std::int64_t again = launcher_->LastGroupOf("t_00001");
  EXPECT_EQ(launcher_->Env(again, "TUNE_CHECKPOINT"), "/ck/2b");
  tuner->handler().OnConnect("t_00001", 1);
  Report(*tuner, "t_00001", 3, 0.3);
  EXPECT_EQ(TrialOf(*tuner, "t_00001").num_results, 3);
  tuner->handler().OnDone("t_00001");
  launcher_->Exit(again, 0);
  EXPECT_FALSE(tuner->Poll());
  EXPECT_EQ(TrialOf(*tuner, "t_00001").status, TrialStatus::kTerminated);
  EXPECT_EQ(EventTypes("t_00001"),
            (std::vector<std::string>{"trial_created", "trial_started", "report", "report",
                                      "trial_paused", "trial_started", "report", "trial_ended"}));
  EXPECT_EQ(tuner->Finish(), 0);
}

TEST_F(TunerLoopTest, TheSchedulerChoosesWhichWaitingTrialRuns) {
  scripted_ = true;
  raw_["space"] = Json::parse(R"({"x": {"grid_search": [1, 2]}})");
  decide_ = [](const std::string&, const Result& r) {
    return r.training_iteration == 1 ? Decision::kPause : Decision::kContinue;
  };
  // Holds paused trials back until both are paused, then runs the later one first.
  choose_ = [](const std::vector<const Trial*>& waiting) -> std::optional<std::string> {
    for (const Trial* trial : waiting) {
      if (trial->status == TrialStatus::kPending) return trial->id;
    }
    if (waiting.size() == 2) return waiting.back()->id;
    return std::nullopt;
  };
  auto tuner = MakeTuner();
  for (const char* id : {"t_00001", "t_00002"}) {
    tuner->handler().OnConnect(id, 1);
    EXPECT_EQ(Report(*tuner, id, 1, 0.1, std::string("/ck/") + id), Action::kPause);
    launcher_->Exit(launcher_->LastGroupOf(id), 0);
    tuner->Poll();
  }
  EXPECT_EQ(launcher_->launched().size(), 3u);
  EXPECT_EQ(launcher_->LastGroupOf("t_00002"), launcher_->launched().back());
  EXPECT_EQ(launcher_->Env(launcher_->launched().back(), "TUNE_CHECKPOINT"), "/ck/t_00002");
}

TEST_F(TunerLoopTest, AnExploitRestartsTheTrialFromACopyOfTheSourcesCheckpoint) {
  raw_["max_concurrent"] = 2;
  raw_["space"] = Json::parse(R"({"x": {"grid_search": [1, 2]}, "lr": 0.1})");
  scripted_ = true;
  decide_ = [](const std::string& id, const Result& r) {
    if (id == "t_00001" && r.training_iteration == 2) {
      return Decision::Exploit("t_00002", Json{{"x", 2}, {"lr", 0.12}});
    }
    return Decision(Decision::kContinue);
  };
  auto tuner = MakeTuner();
  const fs::path source_ck = dir_ / "source_ck";
  fs::create_directories(source_ck);
  std::ofstream(source_ck / "weights.bin") << "trial 2 at iteration 1";
  tuner->handler().OnConnect("t_00001", 1);
  tuner->handler().OnConnect("t_00002", 1);
  Report(*tuner, "t_00002", 1, 0.9, source_ck.string());
  Report(*tuner, "t_00001", 1, 0.1);
  EXPECT_EQ(Report(*tuner, "t_00001", 2, 0.2), Action::kPause);
  // The source moves on and overwrites its checkpoint: the copy keeps what was cloned.
  std::ofstream(source_ck / "weights.bin") << "trial 2 later";
  launcher_->Exit(launcher_->LastGroupOf("t_00001"), 0);
  tuner->Poll();
  const Trial& trial = TrialOf(*tuner, "t_00001");
  EXPECT_EQ(trial.params, (Json{{"x", 2}, {"lr", 0.12}}));
  // Its iterations go on from the cloned checkpoint's (t_00002's first report), as in Ray.
  EXPECT_EQ(trial.num_results, 1);
  EXPECT_EQ(trial.config()["lr"], 0.12);
  ASSERT_TRUE(trial.last_checkpoint);
  const fs::path copy = *trial.last_checkpoint;
  EXPECT_EQ(copy, fs::absolute(dir_ / "t_00001" / "pbt_1_t_00002" / "source_ck"));
  std::stringstream cloned;
  cloned << std::ifstream(copy / "weights.bin").rdbuf();
  EXPECT_EQ(cloned.str(), "trial 2 at iteration 1");
  // Relaunched at once (a slot is free) with the copy and the new params.json.
  std::int64_t again = launcher_->LastGroupOf("t_00001");
  EXPECT_EQ(launcher_->Env(again, "TUNE_CHECKPOINT"), copy.string());
  EXPECT_EQ(Json::parse(std::ifstream(dir_ / "t_00001" / "params.json"))["lr"], 0.12);
  Json lineage = Json::parse(std::ifstream(dir_ / "t_00001" / "lineage.jsonl"));
  EXPECT_EQ(lineage["source"], "t_00002");
  EXPECT_EQ(lineage["old_params"]["x"], 1);
  EXPECT_EQ(lineage["new_params"]["lr"], 0.12);
  EXPECT_EQ(EventTypes("t_00001"),
            (std::vector<std::string>{"trial_created", "trial_started", "report", "report",
                                      "trial_paused", "trial_exploited", "trial_started"}));
}

TEST_F(TunerLoopTest, CtrlCStopsTheRunningTrialsAndEndsWith130) {
  raw_["max_concurrent"] = 2;
  auto tuner = MakeTuner();
  ASSERT_EQ(launcher_->launched().size(), 2u);
  tuner->Interrupt(SIGINT);
  for (std::int64_t group : launcher_->launched()) {
    EXPECT_EQ(launcher_->group(group).signals, std::vector<int>{SIGTERM});
    launcher_->Exit(group, 0, SIGTERM);
  }
  EXPECT_FALSE(tuner->Poll());
  EXPECT_EQ(tuner->Finish(), 130);
  // Not journaled as ended: resume runs them again.
  for (const std::string& type : EventTypes()) EXPECT_NE(type, "trial_ended");
}

TEST_F(TunerLoopTest, ResumeRebuildsPausedAndRunningTrialsFromTheJournal) {
  scripted_ = true;
  raw_["max_concurrent"] = 2;
  decide_ = [](const std::string& id, const Result& r) {
    return id == "t_00001" && r.training_iteration == 1 ? Decision::kPause : Decision::kContinue;
  };
  {
    auto tuner = MakeTuner();
    tuner->handler().OnConnect("t_00001", 1);
    tuner->handler().OnConnect("t_00002", 1);
    Report(*tuner, "t_00001", 1, 0.1, "/ck/a");
    launcher_->Exit(launcher_->LastGroupOf("t_00001"), 0);
    tuner->Poll();
    Report(*tuner, "t_00002", 1, 0.2, "/ck/b");
    // The tuner dies here (no Finish): t_00001 paused, t_00002 and t_00003 running.
  }
  auto tuner = MakeTuner(/*resume=*/true);
  EXPECT_EQ(TrialOf(*tuner, "t_00001").num_results, 1);
  EXPECT_EQ(TrialOf(*tuner, "t_00002").num_results, 1);
  // The scheduler heard the same history again.
  EXPECT_THAT(scheduler_->calls, ::testing::Contains("result t_00002 1"));
  // Running ones go first (FIFO: pending before paused); each from its last checkpoint.
  EXPECT_EQ(launcher_->Env(launcher_->LastGroupOf("t_00002"), "TUNE_CHECKPOINT"), "/ck/b");
  EXPECT_EQ(TrialOf(*tuner, "t_00001").status, TrialStatus::kPaused);
  RunToEnd(*tuner, "t_00002", 2, 2);
  EXPECT_EQ(launcher_->Env(launcher_->LastGroupOf("t_00001"), "TUNE_CHECKPOINT"), "/ck/a");
  // result.json holds each result once, rewritten from the journal.
  std::ifstream results(dir_ / "t_00002" / "result.json");
  int lines = 0;
  for (std::string line; std::getline(results, line);) ++lines;
  EXPECT_EQ(lines, 3);  // 1 before the crash, 2 after
}

std::string FileText(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Snapshots (every 20 events here) let resume leave the files of trials finished before the last
// one alone and repair the others from the tail; the outcome must be what a full replay of the
// same journal without snapshots gives: trial states, scheduler, result files, relaunches.
TEST_F(TunerLoopTest, ResumeFromASnapshotEqualsAFullReplay) {
  UseSnapshotSpec(3);
  ExpectSnapshotResumeEqualsFullReplay(PbtCase::kNone, 11);
}

// The same with PBT: its state file holds the population, the exploits so far and one waiting
// for a trial's pause; lineage.jsonl keeps its lines from before the snapshot and gets those of
// the tail's exploits again.
TEST_F(TunerLoopTest, APbtResumeFromASnapshotEqualsAFullReplay) {
  UsePbtSnapshotSpec(3);
  ExpectSnapshotResumeEqualsFullReplay(PbtCase::kClonedOnBothSides, 11);
}

// A state file every few events, and the tuner killed right after one that holds an exploit
// waiting for its trial's pause: only the state file knows of it.
TEST_F(TunerLoopTest, APbtExploitWaitingAtTheCrashIsKeptByTheStateFile) {
  UsePbtSnapshotSpec(3);
  snapshot_every_ = 5;
  ExpectSnapshotResumeEqualsFullReplay(PbtCase::kExploitWaiting, 11);
}

void TunerLoopTest::ExpectSnapshotResumeEqualsFullReplay(PbtCase pbt_case, unsigned play_seed) {
  const bool pbt = pbt_case != PbtCase::kNone;
  // The newest state file, and whether it holds an exploit waiting for its trial's pause.
  auto newest_state = [this] {
    fs::path newest;
    std::error_code none;
    for (fs::directory_iterator it(dir_ / "snapshots", none), end; !none && it != end; ++it) {
      newest = std::max(newest, it->path());
    }
    return newest;
  };
  auto holds_waiting_exploit = [](const fs::path& file) {
    const Json state = Json::parse(std::ifstream(file));
    for (const Json& live : state.at("live")) {
      if (!live.at(8).is_null()) return true;
    }
    return false;
  };
  fs::path seen;
  std::function<bool()> stop_when;
  if (pbt_case == PbtCase::kExploitWaiting) {
    // Right after a state file with a waiting exploit is written: the pause is still to come
    // (a pause completing before the file was written would have ended the wait).
    stop_when = [&, steps = 0]() mutable {
      if (++steps < 150) return false;  // after a while: exploits and state files behind it
      const fs::path newest = newest_state();
      if (newest.empty() || newest == seen) return false;
      seen = newest;
      return holds_waiting_exploit(newest);
    };
  }
  std::set<std::string> running_at_crash;
  {
    auto tuner = MakeTuner();
    PlayRandomly(*tuner, pbt ? 300 : 150, play_seed, /*checkpoints=*/pbt, pbt ? 100 : 6,
                 stop_when);
    for (const Trial& trial : tuner->trials()) {
      if (trial.status == TrialStatus::kRunning) running_at_crash.insert(trial.id);
    }
    // The tuner dies here, without Finish().
  }
  std::vector<Json> events = Events();
  std::size_t last_snapshot = 0;
  for (std::size_t i = 0; i < events.size(); ++i) {
    if (events[i]["event"] == "snapshot") last_snapshot = i;
  }
  ASSERT_GT(last_snapshot, 0u) << "no snapshot was written";
  if (pbt_case != PbtCase::kExploitWaiting) {  // that one stops right after it
    ASSERT_LT(last_snapshot + 5, events.size()) << "no tail after the last snapshot";
  }
  ASSERT_FALSE(running_at_crash.empty());
  if (pbt_case == PbtCase::kClonedOnBothSides) {
    // A trial cloned on both sides of the last snapshot: lineage.jsonl has lines to keep and
    // lines to redo.
    std::set<std::string> before, both;
    for (std::size_t i = 0; i < events.size(); ++i) {
      if (events[i]["event"] != "trial_exploited") continue;
      const std::string id = events[i]["trial_id"];
      if (i < last_snapshot) before.insert(id);
      else if (before.count(id) != 0) both.insert(id);
    }
    ASSERT_FALSE(both.empty());
  }
  if (pbt_case == PbtCase::kExploitWaiting) {
    ASSERT_TRUE(!seen.empty() && holds_waiting_exploit(seen)) << "the play never got there";
  }

  // The same experiment with the journal rewritten without its snapshots (new seq and crc).
  const fs::path snapshot_dir = dir_;
  const fs::path full_dir = dir_.string() + "_full";
  fs::remove_all(full_dir);
  fs::copy(dir_, full_dir, fs::copy_options::recursive);
  fs::remove(full_dir / "journal.jsonl");
  {
    Journal plain(full_dir / "journal.jsonl", Journal::SyncPolicy::kNever);
    for (const Json& event : events) {
      if (event["event"] != "snapshot") plain.Append(event);
    }
  }
  // The crash left the files of the running trials out of step with the journal: a result line
  // the journal never got.
  for (const fs::path& dir : {snapshot_dir, full_dir}) {
    for (const std::string& id : running_at_crash) {
      std::ofstream(dir / id / "result.json", std::ios::app) << "{\"lost\": true}\n";
      std::ofstream(dir / id / "progress.csv", std::ios::app) << "lost\n";
    }
  }
  // A trial finished before the last snapshot: its files must not even be rewritten.
  std::string finished_early;
  std::set<std::string> touched_after;
  for (std::size_t i = last_snapshot; i < events.size(); ++i) {
    touched_after.insert(events[i].value("trial_id", ""));
  }
  for (std::size_t i = 0; i < last_snapshot && finished_early.empty(); ++i) {
    const std::string id = events[i].value("trial_id", "");
    if (events[i]["event"] == "trial_ended" && touched_after.count(id) == 0) finished_early = id;
  }
  ASSERT_TRUE(pbt || !finished_early.empty());  // PBT's population trains on
  const auto old_time = fs::file_time_type::clock::now() - std::chrono::hours(24);
  if (!finished_early.empty()) {
    fs::last_write_time(snapshot_dir / finished_early / "result.json", old_time);
  }

  struct Outcome {
    std::vector<std::string> trials;  // id, status, results, last acc
    std::map<std::string, std::string> files;
    std::string scheduler;
    std::vector<std::string> relaunched;
    std::string state;  // SaveState(): trials, what replay keeps of live ones, scheduler, searcher
    std::string log;
  };
  auto resume = [&](const fs::path& dir) {
    dir_ = dir;
    ::testing::internal::CaptureStderr();
    auto tuner = MakeTuner(/*resume=*/true);
    Outcome outcome;
    outcome.log = ::testing::internal::GetCapturedStderr();
    const std::optional<Json> state = tuner->SaveState();
    outcome.state = state ? state->dump() : "none";
    for (const Trial& trial : tuner->trials()) {
      outcome.trials.push_back(fmt::format(
          "{} {} {} {}", trial.id, ToString(trial.status), trial.num_results,
          trial.last_result ? trial.last_result->metrics.dump() : "-"));
      for (const char* name : {"result.json", "progress.csv", "lineage.jsonl"}) {
        outcome.files[trial.id + "/" + name] = FileText(dir / trial.id / name);
      }
    }
    outcome.scheduler = tuner->scheduler().Describe();
    for (std::int64_t group : launcher_->launched()) {
      outcome.relaunched.push_back(launcher_->Env(group, "TUNE_TRIAL_ID"));
    }
    return outcome;
  };
  ASSERT_TRUE(fs::exists(snapshot_dir / "snapshots")) << "no state snapshot was written";
  const Outcome from_snapshot = resume(snapshot_dir);
  Outcome full = resume(full_dir);
  // Paths that a resume writes (PBT's checkpoint copies) name each its own directory.
  for (auto& [name, text] : full.files) {
    text = ReplaceAll(text, full_dir.string() + "/", snapshot_dir.string() + "/");
  }
  full.state = ReplaceAll(full.state, full_dir.string() + "/", snapshot_dir.string() + "/");
  dir_ = snapshot_dir;
  // The first loaded the newest state file and replayed the tail; the second found its state
  // files disowned by its rewritten journal and replayed everything.
  EXPECT_NE(from_snapshot.log.find("resume: from snapshots/state-"), std::string::npos)
      << from_snapshot.log;
  EXPECT_EQ(full.log.find("resume: from snapshots/state-"), std::string::npos) << full.log;
  EXPECT_NE(full.log.find("resume: not using snapshots/state-"), std::string::npos) << full.log;
  EXPECT_NE(from_snapshot.state, "none");
  EXPECT_EQ(from_snapshot.state, full.state);
  EXPECT_EQ(from_snapshot.trials, full.trials);
  EXPECT_EQ(from_snapshot.scheduler, full.scheduler);
  EXPECT_EQ(from_snapshot.relaunched, full.relaunched);
  EXPECT_EQ(from_snapshot.files.size(), full.files.size());
  for (const auto& [name, text] : full.files) {
    EXPECT_EQ(from_snapshot.files.at(name), text) << name;
    EXPECT_EQ(text.find("lost"), std::string::npos) << name;
  }
  if (!finished_early.empty()) {
    EXPECT_EQ(fs::last_write_time(snapshot_dir / finished_early / "result.json"), old_time);
  }
  if (pbt) {
    std::size_t lineage_lines = 0;
    for (const auto& [name, text] : full.files) {
      if (name.find("lineage.jsonl") != std::string::npos) {
        lineage_lines += static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n'));
      }
    }
    // One line per exploit in the journal (resume may have completed one that was waiting).
    std::size_t exploited = 0;
    for (const Json& event : ReadJournal(full_dir / "journal.jsonl").events) {
      exploited += event["event"] == "trial_exploited" ? 1 : 0;
    }
    EXPECT_GT(lineage_lines, 0u);
    EXPECT_EQ(lineage_lines, exploited);
  }
  if (!::testing::Test::HasFailure()) fs::remove_all(full_dir);
}

TEST_F(TunerLoopTest, ADamagedOrUnvouchedStateFileIsSkippedForAnOlderOneOrTheJournal) {
  UseSnapshotSpec(5);
  {
    auto tuner = MakeTuner();
    PlayRandomly(*tuner, 120, 7);
  }  // killed
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(dir_ / "snapshots")) files.push_back(entry.path());
  std::sort(files.begin(), files.end());
  ASSERT_EQ(files.size(), 2u) << "the two newest state files are kept";
  const fs::path base = dir_;
  auto resume_copy = [&](const std::string& suffix, const std::function<void(const fs::path&)>& edit) {
    const fs::path dir = base.string() + suffix;
    fs::remove_all(dir);
    fs::copy(base, dir, fs::copy_options::recursive);
    edit(dir);
    dir_ = dir;
    ::testing::internal::CaptureStderr();
    auto tuner = MakeTuner(/*resume=*/true);
    const std::string log = ::testing::internal::GetCapturedStderr();
    const std::string state = tuner->SaveState().value_or(Json()).dump();
    tuner.reset();
    dir_ = base;
    fs::remove_all(dir);
    return std::make_pair(log, state);
  };
  const std::string newest = "snapshots/" + files[1].filename().string();
  const std::string older = "snapshots/" + files[0].filename().string();
  const auto [full_log, full] = resume_copy("_none", [](const fs::path& dir) {
    fs::remove_all(dir / "snapshots");
  });
  EXPECT_EQ(full_log.find("resume: from"), std::string::npos) << full_log;
  // One digit in the middle of the newest changed (still JSON, its trials' "journal" place
  // intact): its CRC no longer matches the event's; the older one serves.
  const auto [damaged_log, damaged] = resume_copy("_damaged", [&](const fs::path& dir) {
    std::string text = FileText(dir / newest);
    const std::size_t digit = text.find_first_of("0123456789", text.size() / 2);
    ASSERT_NE(digit, std::string::npos);
    text[digit] = text[digit] == '7' ? '8' : '7';
    std::ofstream(dir / newest, std::ios::binary | std::ios::trunc) << text;
  });
  EXPECT_NE(damaged_log.find("not using " + newest + ": does not match the snapshot event"),
            std::string::npos) << damaged_log;
  EXPECT_NE(damaged_log.find("resume: from " + older), std::string::npos) << damaged_log;
  EXPECT_EQ(damaged, full);
  // Torn (a crash while writing it, on a file system that lost the rename's order): skipped.
  const auto [torn_log, torn] = resume_copy("_torn", [&](const fs::path& dir) {
    fs::resize_file(dir / newest, fs::file_size(dir / newest) / 2);
  });
  EXPECT_NE(torn_log.find("not using " + newest + ": is not a JSON object"), std::string::npos)
      << torn_log;
  EXPECT_EQ(torn, full);
  // The journal cut back before both snapshot events (a user's repair): neither is vouched for.
  const auto [cut_log, cut] = resume_copy("_cut", [&](const fs::path& dir) {
    const Json state = Json::parse(std::ifstream(dir / older));
    fs::resize_file(dir / "journal.jsonl", state["journal"]["offset"].get<std::uint64_t>());
  });
  EXPECT_NE(cut_log.find("not using " + older + ": journal.jsonl has no snapshot event"),
            std::string::npos) << cut_log;
  EXPECT_EQ(cut_log.find("resume: from"), std::string::npos) << cut_log;
  EXPECT_NE(full, "null");
}

TEST_F(TunerLoopTest, ResumeErroredRunsErrorTrialsAgainFromTheirLastCheckpoint) {
  raw_["space"] = Json::parse(R"({"x": {"grid_search": [1, 2]}})");
  {
    auto tuner = MakeTuner();
    tuner->handler().OnConnect("t_00001", 1);
    Report(*tuner, "t_00001", 1, 0.1, "/ck/e1");
    launcher_->Exit(launcher_->LastGroupOf("t_00001"), 3);
    tuner->Poll();
    EXPECT_EQ(TrialOf(*tuner, "t_00001").status, TrialStatus::kError);
    RunToEnd(*tuner, "t_00002", 1, 2);
    EXPECT_FALSE(tuner->Poll());
    EXPECT_EQ(tuner->Finish(), 0);
  }
  {
    // A plain resume has nothing to do.
    auto tuner = MakeTuner(/*resume=*/true);
    EXPECT_FALSE(tuner->Poll());
    EXPECT_EQ(launcher_->launched().size(), 0u);
  }
  auto tuner = MakeTuner(/*resume=*/true, /*errored=*/true);
  ASSERT_EQ(launcher_->launched().size(), 1u);
  EXPECT_EQ(launcher_->Env(launcher_->launched()[0], "TUNE_TRIAL_ID"), "t_00001");
  EXPECT_EQ(launcher_->Env(launcher_->launched()[0], "TUNE_CHECKPOINT"), "/ck/e1");
  EXPECT_EQ(TrialOf(*tuner, "t_00001").num_failures, 0);
  RunToEnd(*tuner, "t_00001", 2, 1);
  EXPECT_EQ(TrialOf(*tuner, "t_00001").status, TrialStatus::kTerminated);
  EXPECT_EQ(tuner->Finish(), 0);
  auto types = EventTypes("t_00001");
  EXPECT_EQ(std::count(types.begin(), types.end(), "trial_requeued"), 1);
}

TEST_F(TunerLoopTest, TheSchedulerMayStopAPausedTrial) {
  scripted_ = true;
  raw_["space"] = Json::parse(R"({"x": {"grid_search": [1, 2]}})");
  decide_ = [this](const std::string& id, const Result& r) {
    if (id == "t_00001") return Decision(Decision::kPause);
    if (id == "t_00002" && r.training_iteration == 1) {
      scheduler_->control_for_test()->StopTrial("t_00001");
    }
    return Decision(Decision::kContinue);
  };
  choose_ = [](const std::vector<const Trial*>& waiting) -> std::optional<std::string> {
    for (const Trial* trial : waiting) {
      if (trial->status == TrialStatus::kPending) return trial->id;
    }
    return std::nullopt;
  };
  auto tuner = MakeTuner();
  tuner->handler().OnConnect("t_00001", 1);
  Report(*tuner, "t_00001", 1, 0.1);
  launcher_->Exit(launcher_->LastGroupOf("t_00001"), 0);
  tuner->Poll();
  tuner->handler().OnConnect("t_00002", 1);
  Report(*tuner, "t_00002", 1, 0.5);
  EXPECT_EQ(TrialOf(*tuner, "t_00001").status, TrialStatus::kStopped);
  EXPECT_THAT(scheduler_->calls, ::testing::Contains("complete t_00001"));
}

TEST_F(TunerLoopTest, ATrialThatFinishesInsteadOfPausingIsTerminated) {
  scripted_ = true;
  decide_ = [](const std::string&, const Result&) { return Decision(Decision::kPause); };
  auto tuner = MakeTuner();
  RunToEnd(*tuner, "t_00001", 1, 1);  // paused at its last report; it said done and exited 0
  EXPECT_EQ(TrialOf(*tuner, "t_00001").status, TrialStatus::kTerminated);
  EXPECT_EQ(EventTypes("t_00001").back(), "trial_ended");
}

// The same, but its exit outlasts the grace period and is SIGKILLed (a Lightning process tearing
// down): it said done, so it finished; it was PAUSED before and relaunched with nothing to run.
TEST_F(TunerLoopTest, ATrialThatFinishesInsteadOfPausingButExitsLateIsTerminated) {
  raw_["stop_grace_s"] = 10;
  scripted_ = true;
  decide_ = [](const std::string&, const Result&) { return Decision(Decision::kPause); };
  auto tuner = MakeTuner();
  const std::int64_t group = launcher_->LastGroupOf("t_00001");
  tuner->handler().OnConnect("t_00001", 1);
  EXPECT_EQ(Report(*tuner, "t_00001", 1, 0.1), Action::kPause);
  tuner->handler().OnDone("t_00001");
  clock_.Advance(10.1);
  tuner->Poll();
  EXPECT_EQ(launcher_->group(group).signals, std::vector<int>{SIGKILL});
  launcher_->Exit(group, 0, SIGKILL);
  tuner->Poll();
  EXPECT_EQ(TrialOf(*tuner, "t_00001").status, TrialStatus::kTerminated);
  EXPECT_EQ(EventTypes("t_00001").back(), "trial_ended");
}

// The grace-period kill is per attempt: a trial SIGKILLed after the grace period in its first
// attempt (no "done": PAUSED), relaunched, that says done at its next pause and then crashes by
// itself is PAUSED again (a crash is not a finish), not TERMINATED by the first attempt's flag.
TEST_F(TunerLoopTest, AGracePeriodKillCountsOnlyForItsOwnAttempt) {
  raw_["stop_grace_s"] = 10;
  scripted_ = true;
  decide_ = [](const std::string&, const Result&) { return Decision(Decision::kPause); };
  int relaunches = 0;  // t_00001 runs again once; nothing else runs
  choose_ = [&relaunches](const std::vector<const Trial*>& waiting) -> std::optional<std::string> {
    for (const Trial* trial : waiting) {
      if (trial->id != "t_00001") continue;
      if (trial->status == TrialStatus::kPending || relaunches++ == 0) return trial->id;
    }
    return std::nullopt;
  };
  auto tuner = MakeTuner();
  const std::int64_t first = launcher_->LastGroupOf("t_00001");
  tuner->handler().OnConnect("t_00001", 1);
  EXPECT_EQ(Report(*tuner, "t_00001", 1, 0.1, std::string("/ck/1")), Action::kPause);
  clock_.Advance(10.1);
  tuner->Poll();
  ASSERT_EQ(launcher_->group(first).signals, std::vector<int>{SIGKILL});
  launcher_->Exit(first, 0, SIGKILL);
  tuner->Poll();
  ASSERT_EQ(TrialOf(*tuner, "t_00001").status, TrialStatus::kRunning);  // relaunched at once
  const std::int64_t second = launcher_->LastGroupOf("t_00001");
  ASSERT_NE(second, first);
  tuner->handler().OnConnect("t_00001", 1);
  EXPECT_EQ(Report(*tuner, "t_00001", 2, 0.2, std::string("/ck/2")), Action::kPause);
  tuner->handler().OnDone("t_00001");
  launcher_->Exit(second, 1);
  tuner->Poll();
  // PAUSED, then run again at once (none other runs): not TERMINATED.
  EXPECT_NE(TrialOf(*tuner, "t_00001").status, TrialStatus::kTerminated);
  auto types = EventTypes("t_00001");
  EXPECT_EQ(std::count(types.begin(), types.end(), "trial_paused"), 2);
  EXPECT_EQ(std::count(types.begin(), types.end(), "trial_ended"), 0);
}

TEST_F(TunerLoopTest, StoppersEndTrialsAndTheExperiment) {
  raw_["max_concurrent"] = 3;
  raw_["stop"] = {{"training_iteration", 2}, {"time_budget_s", 100}};
  auto tuner = MakeTuner();
  tuner->handler().OnConnect("t_00001", 1);
  EXPECT_EQ(Report(*tuner, "t_00001", 1, 0.1), Action::kContinue);
  EXPECT_EQ(Report(*tuner, "t_00001", 2, 0.2), Action::kStop);
  launcher_->Exit(launcher_->LastGroupOf("t_00001"), 0);
  tuner->Poll();
  // Stopped by what the user asked for: it completed.
  EXPECT_EQ(TrialOf(*tuner, "t_00001").status, TrialStatus::kTerminated);
  EXPECT_EQ(Events()[9], (Json{{"event", "trial_ended"}, {"trial_id", "t_00001"},
                               {"status", "TERMINATED"}, {"reason", "training_iteration >= 2"}}));
  // The time budget ends the experiment: the running trials are told to stop.
  clock_.Advance(101);
  tuner->Poll();
  for (const char* id : {"t_00002", "t_00003"}) {
    EXPECT_EQ(launcher_->group(launcher_->LastGroupOf(id)).signals, std::vector<int>{SIGTERM});
    launcher_->Exit(launcher_->LastGroupOf(id), 0, SIGTERM);
  }
  EXPECT_FALSE(tuner->Poll());
  EXPECT_EQ(TrialOf(*tuner, "t_00002").status, TrialStatus::kTerminated);
  EXPECT_EQ(tuner->Finish(), 0);
  auto types = EventTypes();
  EXPECT_EQ(std::count(types.begin(), types.end(), "experiment_stopped"), 1);
}

TEST_F(TunerLoopTest, ASpecNamesOptionalReportersFromTheRegistry) {
  raw_["callbacks"] = Json::parse(R"(["trials_json"])");
  auto tuner = MakeTuner();
  RunToEnd(*tuner, "t_00001", 2, 1);
  RunToEnd(*tuner, "t_00002", 1, 2);
  RunToEnd(*tuner, "t_00003", 1, 3);
  EXPECT_FALSE(tuner->Poll());
  EXPECT_EQ(tuner->Finish(), 0);
  Json trials = Json::parse(std::ifstream(dir_ / "trials.json"));
  ASSERT_EQ(trials.size(), 3u);
  EXPECT_EQ(trials[0]["trial_id"], "t_00001");
  EXPECT_EQ(trials[0]["status"], "TERMINATED");
  EXPECT_EQ(trials[0]["num_results"], 2);
  EXPECT_EQ(trials[2]["params"]["x"], 3);
  EXPECT_DOUBLE_EQ(trials[2]["last_result"]["acc"].get<double>(), 0.3);
  // Written one trial at a time: the same text as the whole array's dump.
  EXPECT_EQ(FileText(dir_ / "trials.json"), trials.dump(1) + "\n");

  raw_["callbacks"] = Json::parse(R"([{"type": "trials_jsn"}])");
  try {
    ParseSpec(raw_, dir_);
    ADD_FAILURE() << "a misspelled reporter was accepted";
  } catch (const SpecError& error) {
    EXPECT_EQ(std::string(error.what()),
              "callbacks[0].type: unknown callback \"trials_jsn\" (known: trials_json, "
              "tensorboard, wandb, mlflow) (did you mean \"trials_json\"?)");
  }
}

TEST_F(TunerLoopTest, MaxTotalTrialsLimitsTheTrialsCreated) {
  raw_["stop"] = {{"max_total_trials", 2}};
  auto tuner = MakeTuner();
  RunToEnd(*tuner, "t_00001", 1, 1);
  RunToEnd(*tuner, "t_00002", 1, 2);
  EXPECT_FALSE(tuner->Poll());
  EXPECT_EQ(tuner->trials().size(), 2u);
}

}  // namespace
}  // namespace tune
