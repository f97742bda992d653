// LocalLauncher's group semantics with real processes: one callback per group, a failing rank
// takes the others down, stragglers after rank 0 are killed, a group starts whole or not at all.
#include "tuner/launcher.h"

#include <signal.h>

#include <chrono>
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

}  // namespace
}  // namespace tune
