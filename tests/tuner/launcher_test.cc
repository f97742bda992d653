// LocalLauncher's group semantics with real processes: one callback per group, a failing rank
// takes the others down, stragglers after rank 0 are killed, a group starts whole or not at all.
// And warm starts (tune-test-fake-zygote: the real zygote code, shell-script trials): the warm
// trainer starts without blocking the loop, and is restarted in the background when it dies.
#include "tuner/launcher.h"

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <stdexcept>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace tune {
namespace {

LaunchRequest Shell(const std::string& script) {
  return LaunchRequest{{"/bin/sh", "-c", script}, {}, {}, {}, {}};
}

struct Exit {
  std::int64_t group = 0;
  ExitStatus status;
  int callbacks = 0;
  double seconds = 0;
};

// Launches `ranks` and runs the loop until the group's exit callback (or 20 s).
Exit RunGroup(const std::vector<LaunchRequest>& ranks, double straggler_grace_s = 30) {
  boost::asio::io_context io;
  LocalLauncher launcher(io, straggler_grace_s);
  Exit exit;
  launcher.SetExitCallback([&](std::int64_t group, ExitStatus status) {
    exit.group = group;
    exit.status = status;
    ++exit.callbacks;
  });
  const auto start = std::chrono::steady_clock::now();
  std::int64_t group = launcher.Launch(ranks);
  boost::asio::steady_timer guard(io, std::chrono::seconds(20));
  guard.async_wait([&](const boost::system::error_code& error) {
    if (!error) launcher.Signal(group, SIGKILL);
  });
  while (exit.callbacks == 0 && io.run_one() > 0) {
  }
  guard.cancel();
  exit.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(exit.group, group);
  EXPECT_EQ(launcher.num_running(), 0u);
  return exit;
}

TEST(LocalLauncherTest, OneCallbackWhenTheLastRankHasExited) {
  Exit exit = RunGroup({Shell("exit 0"), Shell("sleep 0.3; exit 0"), Shell("exit 0")});
  EXPECT_EQ(exit.callbacks, 1);
  EXPECT_TRUE(exit.status.ok()) << exit.status.Describe();
  EXPECT_EQ(exit.status.num_ranks, 3);
  EXPECT_GE(exit.seconds, 0.3) << "waits for the slowest rank";
}

TEST(LocalLauncherTest, AFailingRankKillsTheOthersAndIsNamed) {
  Exit exit = RunGroup({Shell("exec sleep 60"), Shell("sleep 0.1; exit 4")});
  EXPECT_EQ(exit.callbacks, 1);
  EXPECT_EQ(exit.status.rank, 1);
  EXPECT_EQ(exit.status.code, 4);
  EXPECT_EQ(exit.status.Describe(), "rank 1: exit code 4");
  EXPECT_LT(exit.seconds, 10) << "rank 0 was killed, not waited for";
}

TEST(LocalLauncherTest, RanksLingeringAfterRankZeroAreKilledAfterTheGrace) {
  Exit exit = RunGroup({Shell("exit 0"), Shell("exec sleep 60")}, /*straggler_grace_s=*/0.2);
  EXPECT_EQ(exit.status.rank, 1);
  EXPECT_EQ(exit.status.signal, SIGKILL);
  EXPECT_THAT(exit.status.Describe(), ::testing::StartsWith("rank 1: killed by signal 9"));
  EXPECT_LT(exit.seconds, 10);
}

TEST(LocalLauncherTest, SingleProcessStatusKeepsItsOldWording) {
  Exit exit = RunGroup({Shell("exit 3")});
  EXPECT_EQ(exit.status.Describe(), "exit code 3");
}

TEST(LocalLauncherTest, AGroupStartsWholeOrNotAtAll) {
  boost::asio::io_context io;
  LocalLauncher launcher(io);
  LaunchRequest missing{{"/nonexistent/tune-test-program"}, {}, {}, {}, {}};
  EXPECT_THROW(launcher.Launch({Shell("exec sleep 60"), missing}), std::runtime_error);
  EXPECT_EQ(launcher.num_running(), 0u) << "rank 0 was killed and reaped";
}

const std::string kFakeZygote = std::string(TUNE_BIN_DIR) + "/tune-test-fake-zygote";

// A trial of the fake warm trainer: `/bin/sh -c script`, warm whenever its zygote is ready.
LaunchRequest WarmShell(const std::string& script) {
  return LaunchRequest{{kFakeZygote, "-c", script}, {{"TUNE_WARM_START", "1"}}, {}, {}, {}};
}

// Runs `io` until `done` (or 30 s pass); returns `done()`.
bool RunUntil(boost::asio::io_context& io, const std::function<bool()>& done) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!done() && std::chrono::steady_clock::now() < deadline) {
    io.restart();
    io.run_for(std::chrono::milliseconds(20));
  }
  return done();
}

// The fake zygote waits for the file FAKE_ZYGOTE_GO names before it says it is ready (standing for
// LibTorch's load); this makes one in a fresh folder and removes both when done.
class ZygoteGate {
 public:
  ZygoteGate() {
    dir_ = std::filesystem::temp_directory_path() / ("tune-launcher-test-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
    ::setenv("FAKE_ZYGOTE_GO", (dir_ / "go").c_str(), 1);
  }
  ~ZygoteGate() {
    ::unsetenv("FAKE_ZYGOTE_GO");
    std::filesystem::remove_all(dir_);
  }
  void Open() { std::ofstream(dir_ / "go") << "go"; }

 private:
  std::filesystem::path dir_;
};

TEST(LocalLauncherTest, TheWarmTrainerStartsWithoutBlockingTheLoop) {
  ZygoteGate gate;
  boost::asio::io_context io;
  LocalLauncher launcher(io, 30, /*use_cgroups=*/false);
  std::map<std::int64_t, ExitStatus> exits;
  launcher.SetExitCallback([&](std::int64_t group, ExitStatus status) { exits[group] = status; });
  // The first warm launch starts the zygote and returns at once: this trial is spawned cold.
  const std::int64_t cold = launcher.Launch({WarmShell("exit 0")});
  EXPECT_EQ(launcher.num_warm_launches(), 0u);
  EXPECT_EQ(launcher.ZygotePids().size(), 1u) << "the zygote is starting";
  EXPECT_EQ(launcher.num_ready_zygotes(), 0u);
  // The loop serves a timer (another trial's report, a dashboard request) while the zygote starts;
  // the zygote becomes ready only once that timer has fired. A launcher that waited for the
  // zygote inside Launch() would never get here: the zygote gives up after 20 s, and its program
  // is spawned cold from then on.
  boost::asio::steady_timer other_work(io, std::chrono::milliseconds(0));
  other_work.async_wait([&](const boost::system::error_code& error) {
    if (!error) gate.Open();
  });
  ASSERT_TRUE(RunUntil(io, [&] { return exits.count(cold) == 1 && launcher.num_ready_zygotes() == 1; }))
      << "the cold trial exited: " << exits.count(cold) << ", zygotes ready: " << launcher.num_ready_zygotes();
  EXPECT_TRUE(exits[cold].ok()) << exits[cold].Describe();
  // Launches after it is ready are warm: the trial is forked by the zygote, a child of ours.
  const std::int64_t warm = launcher.Launch({WarmShell("exit 5")});
  EXPECT_EQ(launcher.num_warm_launches(), 1u);
  ASSERT_TRUE(RunUntil(io, [&] { return exits.count(warm) == 1; }));
  EXPECT_EQ(exits[warm].code, 5);
}

TEST(LocalLauncherTest, ADeadWarmTrainerIsRestartedInTheBackground) {
  ZygoteGate gate;
  gate.Open();
  boost::asio::io_context io;
  LocalLauncher launcher(io, 30, /*use_cgroups=*/false);
  std::map<std::int64_t, ExitStatus> exits;
  launcher.SetExitCallback([&](std::int64_t group, ExitStatus status) { exits[group] = status; });
  const std::int64_t first = launcher.Launch({WarmShell("exit 0")});
  ASSERT_TRUE(RunUntil(io, [&] { return exits.count(first) == 1 && launcher.num_ready_zygotes() == 1; }));
  const std::int64_t zygote = launcher.ZygotePids().front();
  ::kill(static_cast<pid_t>(zygote), SIGKILL);
  // Its death (SIGCHLD) starts a new one at once, before any launch asks for it.
  ASSERT_TRUE(RunUntil(io, [&] {
    return launcher.num_ready_zygotes() == 1 && launcher.ZygotePids().front() != zygote;
  }));
  const std::int64_t second = launcher.Launch({WarmShell("exit 0")});
  EXPECT_EQ(launcher.num_warm_launches(), 1u) << "warm, from the new zygote";
  ASSERT_TRUE(RunUntil(io, [&] { return exits.count(second) == 1; }));
  EXPECT_TRUE(exits[second].ok()) << exits[second].Describe();
}

}  // namespace
}  // namespace tune
