// Nothing a trial started outlives it: per-trial cgroups (tuner/cgroup.h) where this process may
// create them, a child subreaper always. The cgroup tests are skipped, saying why, where cgroup v2
// is not writable here (no hierarchy, not delegated, no cgroup.kill); the subreaper ones always
// run.
#include "tuner/cgroup.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "tests/integration/run_helpers.h"
#include "tuner/launcher.h"

namespace tune {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// Whether `pid` is gone (or a zombie) within 5 s.
bool WaitGone(pid_t pid) {
  for (int i = 0; i < 100 && !integration::ProcessGone(pid); ++i) std::this_thread::sleep_for(50ms);
  return integration::ProcessGone(pid);
}

bool Contains(const std::vector<pid_t>& pids, pid_t pid) {
  return std::find(pids.begin(), pids.end(), pid) != pids.end();
}

TEST(TrialCgroupsTest, KillEndsWhatLeftTheSessionAndRemovesTheCgroups) {
  std::string why_not;
  std::unique_ptr<TrialCgroups> cgroups = TrialCgroups::Create(&why_not);
  if (!cgroups) GTEST_SKIP() << "no per-trial cgroups here: " << why_not;
  const fs::path root = cgroups->root();
  EXPECT_TRUE(fs::is_directory(root));
  // A "trial" that, once in its cgroup, starts a grandchild in a new session and reports its pid.
  int go[2], report[2];
  ASSERT_EQ(::pipe(go), 0);
  ASSERT_EQ(::pipe(report), 0);
  const pid_t trial = ::fork();
  if (trial == 0) {
    char byte;
    if (::read(go[0], &byte, 1) != 1) _exit(1);
    const pid_t escaped = ::fork();
    if (escaped == 0) {
      ::setsid();
      for (;;) ::pause();
    }
    if (::write(report[1], &escaped, sizeof escaped) != sizeof escaped) _exit(1);
    for (;;) ::pause();
  }
  ASSERT_TRUE(cgroups->Add(5, trial)) << std::strerror(errno);
  char byte = 1;
  ASSERT_EQ(::write(go[1], &byte, 1), 1);
  pid_t escaped = 0;
  ASSERT_EQ(::read(report[0], &escaped, sizeof escaped), static_cast<ssize_t>(sizeof escaped));
  const std::vector<pid_t> pids = cgroups->Pids(5);
  EXPECT_TRUE(Contains(pids, trial));
  EXPECT_TRUE(Contains(pids, escaped)) << "the setsid child stays in the trial's cgroup";

  cgroups->Kill(5);
  int status = 0;
  ASSERT_EQ(::waitpid(trial, &status, 0), trial);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  EXPECT_TRUE(WaitGone(escaped)) << "the setsid child outlived its trial's cgroup.kill";
  for (int i = 0; i < 100 && fs::exists(root / "g5"); ++i) {
    std::this_thread::sleep_for(10ms);
    cgroups->RemoveEmpty();
  }
  EXPECT_FALSE(fs::exists(root / "g5"));
  cgroups.reset();
  EXPECT_FALSE(fs::exists(root)) << "the tuner's cgroup is removed with it";
  for (int fd : {go[0], go[1], report[0], report[1]}) ::close(fd);
}

TEST(TrialCgroupsTest, OwnCgroupDirectoryIsTheCgroupOfThisProcess) {
  std::string why_not;
  const fs::path own = OwnCgroupDirectory(&why_not);
  if (own.empty()) GTEST_SKIP() << "no cgroup v2 here: " << why_not;
  std::ifstream procs(own / "cgroup.procs");
  std::vector<pid_t> pids;
  for (long pid = 0; procs >> pid;) pids.push_back(static_cast<pid_t>(pid));
  EXPECT_TRUE(Contains(pids, ::getpid())) << own;
}

// A trial (`sh`) that starts `sleep 1000` in a new session, writes its pid to `pid_file`, waits
// `linger_s` and exits 0: its process group is gone, the sleep is not. With `in_cgroup`, it
// first waits until the launcher has moved it into its cgroup (what it forks before that stays
// outside, caught by the subreaper only: tuner/cgroup.h).
LaunchRequest Escaping(const fs::path& pid_file, double linger_s, bool in_cgroup) {
  const std::string wait = in_cgroup ? "while ! grep -q tune- /proc/$$/cgroup; do sleep 0.01; done; " : "";
  return LaunchRequest{
      {"/bin/sh", "-c",
       fmt::format("{}setsid sleep 1000 & echo $! >{}; sleep {}", wait, pid_file.string(), linger_s)},
      {{"TUNE_TRIAL_ID", "t_1"}},
      {},
      {},
      {}};
}

pid_t ReadPid(const fs::path& file) {
  for (int i = 0; i < 200; ++i) {
    std::ifstream in(file);
    long pid = 0;
    if (in >> pid && pid > 0) return static_cast<pid_t>(pid);
    std::this_thread::sleep_for(25ms);
  }
  return 0;
}

class LauncherIsolationTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    pid_file_ = fs::temp_directory_path() / fmt::format("tune_cgroup_test_{}_{}", ::getpid(),
                                                        GetParam() ? "cgroup" : "subreaper");
    fs::remove(pid_file_);
  }
  void TearDown() override { fs::remove(pid_file_); }
  fs::path pid_file_;
};

TEST_P(LauncherIsolationTest, WhatATrialStartsInANewSessionEndsWithTheTrial) {
  boost::asio::io_context io;
  auto launcher = std::make_unique<LocalLauncher>(io, 30, /*use_cgroups=*/GetParam());
  if (GetParam() && !launcher->cgroups()) GTEST_SKIP() << "no per-trial cgroups here";
  EXPECT_EQ(launcher->cgroups() != nullptr, GetParam());
  int exits = 0;
  launcher->SetExitCallback([&](std::int64_t, ExitStatus) { ++exits; });
  const std::int64_t group = launcher->Launch({Escaping(pid_file_, 0.5, GetParam())});
  const pid_t escaped = ReadPid(pid_file_);
  ASSERT_GT(escaped, 0);
  if (launcher->cgroups()) {
    EXPECT_TRUE(Contains(launcher->cgroups()->Pids(group), escaped));
  }
  boost::asio::steady_timer guard(io, 20s);
  guard.async_wait([&](const boost::system::error_code& error) {
    if (!error) launcher->Signal(group, SIGKILL);
  });
  while (exits == 0 && io.run_one() > 0) {
  }
  guard.cancel();
  EXPECT_EQ(exits, 1);
  const bool gone = WaitGone(escaped);
  if (!gone) ::kill(escaped, SIGKILL);
  EXPECT_TRUE(gone) << "`setsid sleep 1000` outlived its trial";
  if (launcher->cgroups()) {
    const fs::path root = launcher->cgroups()->root();
    launcher.reset();
    EXPECT_FALSE(fs::exists(root));
  }
}

TEST_P(LauncherIsolationTest, SignalReachesWhatLeftTheProcessGroupWhileTheTrialRuns) {
  boost::asio::io_context io;
  LocalLauncher launcher(io, 30, /*use_cgroups=*/GetParam());
  if (GetParam() && !launcher.cgroups()) GTEST_SKIP() << "no per-trial cgroups here";
  int exits = 0;
  launcher.SetExitCallback([&](std::int64_t, ExitStatus) { ++exits; });
  const std::int64_t group = launcher.Launch({Escaping(pid_file_, 1000, GetParam())});
  const pid_t escaped = ReadPid(pid_file_);
  ASSERT_GT(escaped, 0);
  launcher.Signal(group, SIGTERM);
  if (GetParam()) {
    // The cgroup holds it: SIGTERM reaches it at once, not only when the trial has ended.
    EXPECT_TRUE(WaitGone(escaped)) << "SIGTERM to the trial did not reach its setsid child";
  }
  while (exits == 0 && io.run_one() > 0) {
  }
  const bool gone = WaitGone(escaped);
  if (!gone) ::kill(escaped, SIGKILL);
  EXPECT_TRUE(gone) << "`setsid sleep 1000` outlived its trial";
}

INSTANTIATE_TEST_SUITE_P(CgroupsAndSubreaper, LauncherIsolationTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? "Cgroups" : "SubreaperOnly";
                         });

}  // namespace
}  // namespace tune
