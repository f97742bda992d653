// Warm starts (trainer/zygote.h, tuner/launcher.h): tune-trainer trials forked by a warm zygote
// through the tuner's real LocalLauncher behave as spawned ones: same results for the same seed,
// a signal reaches its trial only, exit codes and crashes are seen, a dead zygote is replaced,
// a child that cannot start fails the launch, other programs are spawned. And a `tune run` with
// PBT (pause, restore with a new config) runs its trials warm once the zygote is ready (it
// starts in the background: the first trials are spawned cold meanwhile).
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <optional>
#include <string>

#include <boost/asio/io_context.hpp>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/trainer/synthetic_data.h"
#include "tuner/launcher.h"

namespace tune {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using testing::ScratchDir;
using testing::SmallConfig;
using testing::WriteSeparableMnist;

const std::string kTrainer = std::string(TUNE_BIN_DIR) + "/tune-trainer";

std::string ReadText(const fs::path& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

std::int64_t ParentOf(std::int64_t pid) {
  for (const ProcessInfo& process : ListProcesses()) {
    if (process.pid == pid) return process.ppid;
  }
  return -1;
}

// A LocalLauncher on its own io_context, and the exit statuses it reported.
class Launches {
 public:
  Launches() {
    launcher.SetExitCallback([this](std::int64_t group, ExitStatus status) { exits[group] = status; });
  }
  // Starts the zygote for `request`'s program and runs the io_context until it is ready (at most
  // 120 s), as a tuner's loop does while it starts.
  void WarmUp(const LaunchRequest& request) {
    launcher.PrepareWarmStart(request);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    while (launcher.num_ready_zygotes() == 0 && std::chrono::steady_clock::now() < deadline) {
      io.restart();
      io.run_for(std::chrono::milliseconds(20));
    }
    ASSERT_EQ(launcher.num_ready_zygotes(), 1u) << "the zygote did not become ready";
  }
  // Runs the io_context until `group` has exited (at most 120 s).
  ExitStatus WaitFor(std::int64_t group) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    while (exits.count(group) == 0 && std::chrono::steady_clock::now() < deadline) {
      io.restart();
      io.run_for(std::chrono::milliseconds(50));
    }
    EXPECT_EQ(exits.count(group), 1u) << "group " << group << " did not exit";
    return exits[group];
  }
  LaunchRequest Request(const fs::path& dir, const std::string& name, const Json& config,
                        std::map<std::string, std::string> env = {}) {
    fs::create_directories(dir / name);
    std::ofstream(dir / name / "config.json") << config.dump();
    LaunchRequest request;
    request.argv = {kTrainer, (dir / name / "config.json").string()};
    env["TUNE_TRIAL_ID"] = name;
    request.env = env;
    request.cwd = dir / name;
    request.stdout_path = dir / name / "stdout.log";
    request.stderr_path = dir / name / "stderr.log";
    return request;
  }
  boost::asio::io_context io;
  LocalLauncher launcher{io};
  std::map<std::int64_t, ExitStatus> exits;
};

Json TrialConfig(const fs::path& dir, const std::string& out, int epochs) {
  Json config = SmallConfig(dir);
  config["max_epochs"] = epochs;
  config["output_dir"] = (dir / out / "checkpoints").string();
  config["seed"] = 7;
  return config;
}

// The metrics of every epoch, from the run's last checkpoint.
Json History(const fs::path& checkpoints) {
  std::optional<fs::path> last;
  for (const auto& entry : fs::directory_iterator(checkpoints)) {
    if (!last || entry.path().filename().string() > last->filename().string()) last = entry.path();
  }
  EXPECT_TRUE(last.has_value()) << checkpoints;
  return last ? Json::parse(ReadText(*last / "trainer.json"))["history"] : Json();
}

TEST(WarmStartTest, WarmTrialEqualsColdTrialWithTheSameSeed) {
  ScratchDir dir;
  WriteSeparableMnist(dir.path(), 300, 70);
  Launches run;
  const std::int64_t cold = run.launcher.Launch(
      {run.Request(dir.path(), "cold", TrialConfig(dir.path(), "cold", 3), {{"TUNE_WARM_START", "0"}})});
  ASSERT_TRUE(run.WaitFor(cold).ok()) << ReadText(dir.path() / "cold" / "stderr.log");
  EXPECT_EQ(run.launcher.num_warm_launches(), 0u);
  const LaunchRequest warm_request = run.Request(dir.path(), "warm", TrialConfig(dir.path(), "warm", 3));
  run.WarmUp(warm_request);
  const std::int64_t warm = run.launcher.Launch({warm_request});
  EXPECT_EQ(run.launcher.num_warm_launches(), 1u);
  EXPECT_EQ(ParentOf(warm), ::getpid()) << "re-parented to the launcher (subreaper)";
  // /proc/<pid>/environ names the trial, as a spawned trial's does (tune resume relies on it).
  EXPECT_EQ(TrialIdOf(warm), "warm");
  ASSERT_TRUE(run.WaitFor(warm).ok()) << ReadText(dir.path() / "warm" / "stderr.log");
  EXPECT_THAT(ReadText(dir.path() / "warm" / "stderr.log"), HasSubstr("started warm"));
  EXPECT_THAT(ReadText(dir.path() / "cold" / "stderr.log"), ::testing::Not(HasSubstr("started warm")));
  const Json cold_history = History(dir.path() / "cold" / "checkpoints");
  const Json warm_history = History(dir.path() / "warm" / "checkpoints");
  ASSERT_EQ(cold_history.size(), 3u);
  ASSERT_EQ(warm_history.size(), 3u);
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(warm_history[i]["train_loss"], cold_history[i]["train_loss"]) << i;
    EXPECT_EQ(warm_history[i]["val_loss"], cold_history[i]["val_loss"]) << i;
  }
  // The trial ran in the request's directory (its relative paths resolve there).
  EXPECT_TRUE(fs::exists(dir.path() / "warm" / "stdout.log"));
}

TEST(WarmStartTest, SignalEndsItsTrialOnlyAndCrashesAndExitCodesAreSeen) {
  ScratchDir dir;
  WriteSeparableMnist(dir.path(), 300, 70);
  Launches run;
  const LaunchRequest a_request = run.Request(dir.path(), "a", TrialConfig(dir.path(), "a", 100000));
  run.WarmUp(a_request);
  const std::int64_t a = run.launcher.Launch({a_request});
  const std::int64_t b = run.launcher.Launch({run.Request(dir.path(), "b", TrialConfig(dir.path(), "b", 100000))});
  ASSERT_EQ(run.launcher.num_warm_launches(), 2u);
  ASSERT_EQ(run.launcher.ZygotePids().size(), 1u);
  const std::int64_t zygote = run.launcher.ZygotePids().front();
  // Each trial leads its own process group, as a spawned one does.
  EXPECT_EQ(::getpgid(static_cast<pid_t>(a)), a);
  EXPECT_EQ(::getpgid(static_cast<pid_t>(b)), b);
  run.launcher.Signal(a, SIGKILL);
  EXPECT_EQ(run.WaitFor(a).signal, SIGKILL);
  EXPECT_EQ(::kill(static_cast<pid_t>(b), 0), 0) << "the other trial still runs";
  EXPECT_EQ(::kill(static_cast<pid_t>(zygote), 0), 0) << "the zygote still runs";
  ::kill(static_cast<pid_t>(b), SIGSEGV);  // a crash
  EXPECT_EQ(run.WaitFor(b).signal, SIGSEGV);
  // A trial that fails on its own: its exit code.
  Json bad = TrialConfig(dir.path(), "c", 1);
  bad["no_such_key"] = 1;
  const std::int64_t c = run.launcher.Launch({run.Request(dir.path(), "c", bad)});
  const ExitStatus failed = run.WaitFor(c);
  EXPECT_EQ(failed.code, 1);
  EXPECT_THAT(ReadText(dir.path() / "c" / "stderr.log"), HasSubstr("no_such_key"));
  EXPECT_EQ(run.launcher.num_warm_launches(), 3u);
}

TEST(WarmStartTest, DeadZygoteIsReplacedInTheBackground) {
  ScratchDir dir;
  WriteSeparableMnist(dir.path(), 300, 70);
  Launches run;
  const LaunchRequest first_request = run.Request(dir.path(), "a", TrialConfig(dir.path(), "a", 1));
  run.WarmUp(first_request);
  const std::int64_t first = run.launcher.Launch({first_request});
  ASSERT_TRUE(run.WaitFor(first).ok());
  ASSERT_EQ(run.launcher.ZygotePids().size(), 1u);
  const std::int64_t zygote = run.launcher.ZygotePids().front();
  ::kill(static_cast<pid_t>(zygote), SIGKILL);
  // The launcher sees the SIGCHLD (it reaps the dead zygote, and must not count it a trial) and
  // starts a new zygote at once, in the background.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while ((run.launcher.num_ready_zygotes() == 0 || run.launcher.ZygotePids().front() == zygote) &&
         std::chrono::steady_clock::now() < deadline) {
    run.io.restart();
    run.io.run_for(std::chrono::milliseconds(20));
  }
  const std::int64_t second = run.launcher.Launch({run.Request(dir.path(), "b", TrialConfig(dir.path(), "b", 1))});
  ASSERT_TRUE(run.WaitFor(second).ok()) << ReadText(dir.path() / "b" / "stderr.log");
  EXPECT_EQ(run.launcher.num_warm_launches(), 2u) << "warm again, from a new zygote";
  ASSERT_EQ(run.launcher.ZygotePids().size(), 1u);
  EXPECT_NE(run.launcher.ZygotePids().front(), zygote);
}

TEST(WarmStartTest, ChildThatCannotStartFailsTheLaunchAndOtherProgramsAreSpawned) {
  ScratchDir dir;
  WriteSeparableMnist(dir.path(), 300, 70);
  Launches run;
  LaunchRequest request = run.Request(dir.path(), "a", TrialConfig(dir.path(), "a", 1));
  run.WarmUp(request);
  request.stderr_path = dir.path() / "no_such_dir" / "stderr.log";
  try {
    run.launcher.Launch({request});
    ADD_FAILURE() << "the launch should fail as a spawn with an unopenable stderr does";
  } catch (const std::runtime_error& error) {
    EXPECT_THAT(error.what(), HasSubstr("cannot start"));
    EXPECT_THAT(error.what(), HasSubstr("stderr"));
  }
  EXPECT_EQ(run.launcher.num_running(), 0u);
  // Any other program is spawned as before.
  LaunchRequest other;
  other.argv = {"/bin/sh", "-c", "exit 3"};
  const std::int64_t group = run.launcher.Launch({other});
  EXPECT_EQ(run.WaitFor(group).code, 3);
  EXPECT_EQ(run.launcher.num_warm_launches(), 0u);
}

TEST(WarmStartTest, TuneRunWithPbtPausesAndRestoresWarmTrials) {
  ScratchDir dir;
  WriteSeparableMnist(dir.path() / "data", 256, 64);
  Json spec = {
      {"name", "warm_pbt"}, {"metric", "val_acc"}, {"mode", "max"}, {"num_samples", 4},
      {"max_concurrent", 4}, {"resources_per_trial", {{"cpu", 0.5}}},
      {"search", {{"algorithm", "random"}, {"seed", 0}}},
      {"scheduler", {{"type", "pbt"}, {"time_attr", "training_iteration"}, {"perturbation_interval", 2},
                     {"quantile_fraction", 0.5}, {"synch", true}, {"seed", 0},
                     {"hyperparam_mutations", {{"lr", {{"loguniform", {1e-5, 3e-2}}}}}}}},
      {"trainer", {{"dataset", "mnist"}, {"data_dir", (dir.path() / "data").string()}, {"max_epochs", 6},
                   {"batch_size", 64}, {"threads", 1}, {"model", {{"hidden", 16}}}}},
      {"space", {{"lr", {{"loguniform", {1e-5, 3e-2}}}}}}};
  std::ofstream(dir.path() / "spec.json") << spec.dump();
  const std::string command = std::string(TUNE_BIN_DIR) + "/tune run " + (dir.path() / "spec.json").string() +
                              " --storage " + dir.path().string() + " --name exp >" +
                              (dir.path() / "out.txt").string() + " 2>&1";
  const int status = std::system(command.c_str());
  const std::string out = ReadText(dir.path() / "out.txt");
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << out;
  int trials = 0, resumed = 0, resumed_warm = 0;
  for (const auto& entry : fs::directory_iterator(dir.path() / "exp")) {
    if (!entry.is_directory() || !fs::exists(entry.path() / "stderr.log")) continue;
    ++trials;
    const std::string log = ReadText(entry.path() / "stderr.log");
    // The first attempts start while the zygote loads LibTorch (spawned cold, each loading it
    // too); a trial restored after PBT's pause has trained epochs since, so its zygote, started
    // before any of them, has loaded: it is forked warm (and says so before what it resumed from).
    if (const std::size_t restored = log.rfind("resumed from"); restored != std::string::npos) {
      ++resumed;
      resumed_warm += log.substr(0, restored).find("started warm") != std::string::npos;
    }
  }
  EXPECT_EQ(trials, 4) << out;
  // synch: every trial but the last to reach epoch 2 pauses there, whatever order the trials
  // run in, and is restored (the lower half with the upper half's checkpoints): 3 at least.
  EXPECT_GE(resumed, 3) << "PBT paused and restored the trials at its sync point\n" << out;
  EXPECT_GE(resumed_warm, 1) << "restored trials run warm\n" << out;
}

}  // namespace
}  // namespace tune
