// Nothing a trial started outlives it: per-trial cgroups (tuner/cgroup.h) where this process may
// create them, a child subreaper always. The cgroup tests are skipped, saying why, where cgroup v2
// is not writable here (no hierarchy, not delegated, no cgroup.kill); the subreaper ones always
// run.
#include "tuner/cgroup.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <optional>
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

// Whether `pid`, a child of ours, has been reaped (not left a zombie) once `io` has run for up
// to 5 s.
bool RunUntilReaped(boost::asio::io_context& io, pid_t pid) {
  const fs::path proc = fmt::format("/proc/{}", pid);
  for (int i = 0; i < 100 && fs::exists(proc); ++i) io.run_for(50ms);
  return !fs::exists(proc);
}

// Runs `io` until the launcher's only trial, `group`, has exited (SIGKILLed if it runs past 20 s),
// then whether `escaped`, what it left running, is gone (killed either way: no test leaves it).
bool EndsWithItsTrial(boost::asio::io_context& io, LocalLauncher& launcher, std::int64_t group,
                      const int& exits, pid_t escaped) {
  boost::asio::steady_timer guard(io, 20s);
  guard.async_wait([&](const boost::system::error_code& error) {
    if (!error) launcher.Signal(group, SIGKILL);
  });
  while (exits == 0 && io.run_one() > 0) {
  }
  guard.cancel();
  EXPECT_EQ(exits, 1);
  const bool gone = WaitGone(escaped);
  if (!gone) ::kill(escaped, SIGKILL);
  return gone;
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
  EXPECT_TRUE(EndsWithItsTrial(io, *launcher, group, exits, escaped))
      << "`setsid sleep 1000` outlived its trial";
  // Our child since its parent exited (the subreaper): reaped, not left a zombie.
  EXPECT_TRUE(RunUntilReaped(io, escaped));
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

// Whether a child can join a cgroup here before its program starts (SpawnIntoCgroup: write
// access to cgroup.procs, close_range from Linux 5.9); why not in `why_not`.
bool CanCloneIntoCgroup(TrialCgroups& cgroups, std::string* why_not) {
  const int fd = cgroups.Prepare();
  if (fd < 0) {
    *why_not = std::string("cannot make a cgroup: ") + std::strerror(errno);
    return false;
  }
  const pid_t child = SpawnIntoCgroup(fd, [](void*) -> int { ::_exit(0); }, nullptr);
  const int error = errno;
  if (child > 0) ::waitpid(child, nullptr, 0);
  cgroups.Discard(fd);
  if (child < 0) {
    *why_not = std::string("a child cannot join a cgroup here: ") + std::strerror(error);
    return false;
  }
  if (::syscall(SYS_close_range, ~0u, ~0u, 0u) != 0 && errno == ENOSYS) {
    *why_not = "no close_range (Linux >= 5.9)";
    return false;
  }
  return true;
}

// The child of SpawnIntoCgroup is in the cgroup before its function runs: what it reads in
// /proc/self/cgroup before anything else, and what it forks at once, are the cgroup's.
TEST(TrialCgroupsTest, SpawnIntoCgroupStartsTheChildInsideIt) {
  std::string why_not;
  std::unique_ptr<TrialCgroups> cgroups = TrialCgroups::Create(&why_not);
  if (!cgroups) GTEST_SKIP() << "no per-trial cgroups here: " << why_not;
  if (!CanCloneIntoCgroup(*cgroups, &why_not)) GTEST_SKIP() << why_not;
  const int fd = cgroups->Prepare();
  ASSERT_GE(fd, 0) << std::strerror(errno);
  int report[2];
  ASSERT_EQ(::pipe(report), 0);
  // Only system calls in the child (it runs in this memory): a raw fork, then an exec that
  // waits to be killed.
  const pid_t child = SpawnIntoCgroup(
      fd,
      [](void* data) -> int {
        const int out = *static_cast<const int*>(data);
        char line[512] = {};
        const int in = ::open("/proc/self/cgroup", O_RDONLY);
        const ssize_t n = in < 0 ? 0 : ::read(in, line, sizeof line - 1);
        const pid_t grandchild = static_cast<pid_t>(::syscall(SYS_fork));
        if (grandchild == 0) {
          for (;;) ::pause();
        }
        if (::write(out, &grandchild, sizeof grandchild) != sizeof grandchild ||
            ::write(out, line, static_cast<std::size_t>(std::max<ssize_t>(n, 0))) < 0) {
          ::_exit(1);
        }
        ::execl("/bin/sleep", "sleep", "1000", static_cast<char*>(nullptr));
        ::_exit(1);
      },
      &report[1]);
  ASSERT_GE(child, 0) << std::strerror(errno);
  ::close(report[1]);
  cgroups->Adopt(fd, child);
  pid_t grandchild = 0;
  ASSERT_EQ(::read(report[0], &grandchild, sizeof grandchild), static_cast<ssize_t>(sizeof grandchild));
  // One read: the line comes in one write (at most 511 bytes, atomic on a pipe), and the child
  // keeps the pipe open.
  char buffer[512];
  const ssize_t n = ::read(report[0], buffer, sizeof buffer);
  const std::string first_read(buffer, static_cast<std::size_t>(std::max<ssize_t>(n, 0)));
  ::close(report[0]);
  EXPECT_NE(first_read.find(cgroups->root().filename().string() + "/n"), std::string::npos)
      << "the child's first look at /proc/self/cgroup: " << first_read;
  const std::vector<pid_t> pids = cgroups->Pids(child);
  EXPECT_TRUE(Contains(pids, child));
  EXPECT_TRUE(Contains(pids, grandchild));
  cgroups->Kill(child);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  EXPECT_TRUE(WaitGone(grandchild));
}

// A trial spawned by the launcher runs its program inside its cgroup from the start (before,
// it was moved in after posix_spawn returned: what it did first ran outside). `cat` found on
// PATH, as posix_spawnp would find it.
TEST(LauncherCgroupTest, ASpawnedTrialStartsInItsCgroup) {
  {
    // Before the launcher's: both would be <own cgroup>/tune-<pid>, which the probe removes.
    std::string why_not;
    std::unique_ptr<TrialCgroups> probe = TrialCgroups::Create(&why_not);
    if (!probe) GTEST_SKIP() << "no per-trial cgroups here: " << why_not;
    if (!CanCloneIntoCgroup(*probe, &why_not)) GTEST_SKIP() << why_not;
  }
  boost::asio::io_context io;
  LocalLauncher launcher(io, 30, /*use_cgroups=*/true);
  ASSERT_TRUE(launcher.cgroups());
  const fs::path out = fs::temp_directory_path() / fmt::format("tune_cgroup_cat_{}", ::getpid());
  fs::remove(out);
  LaunchRequest request{{"cat", "/proc/self/cgroup"}, {{"TUNE_TRIAL_ID", "t_1"}}, {}, {}, {}};
  request.stdout_path = out;
  std::optional<ExitStatus> exit;
  launcher.SetExitCallback([&](std::int64_t, ExitStatus status) { exit = status; });
  const std::int64_t group = launcher.Launch({request});
  while (!exit && io.run_one() > 0) {
  }
  ASSERT_TRUE(exit);
  EXPECT_EQ(exit->code, 0) << exit->Describe();
  std::ifstream in(out);
  const std::string seen((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(seen.find(launcher.cgroups()->root().filename().string() + "/n"), std::string::npos)
      << "cat saw itself in " << seen << " (group " << group << ")";
  fs::remove(out);

  // A program that cannot start is the same error as posix_spawnp's, and leaves no cgroup.
  LaunchRequest missing{{"tune-no-such-program"}, {}, {}, {}, {}};
  try {
    launcher.Launch({missing});
    ADD_FAILURE() << "expected a launch error";
  } catch (const std::runtime_error& error) {
    EXPECT_STREQ(error.what(), "cannot start \"tune-no-such-program\": No such file or directory");
  }
  LaunchRequest unwritable{{"/bin/true"}, {}, {}, {}, {}};
  unwritable.stdout_path = "/nonexistent-dir/out";
  EXPECT_THROW(launcher.Launch({unwritable}), std::runtime_error);
  std::size_t left = 0;
  for (const auto& entry : fs::directory_iterator(launcher.cgroups()->root())) {
    if (entry.is_directory() && entry.path().filename().string()[0] == 'n') ++left;
  }
  EXPECT_LE(left, 1u) << "only the finished trial's cgroup (removed once empty) may be left";
}

// Where a trial is moved into its cgroup after it started (a zygote's trial; a spawned one where
// the kernel cannot start it inside), what it forked before the move is in the tuner's own
// cgroup, out of cgroup.kill's reach: the launcher finds it there (without reading every process
// of the machine) and ends it with its trial. Here the trial's child moves itself there, as if
// forked before the move.
TEST(LauncherCgroupTest, WhatATrialForkedBeforeItsMoveEndsWithIt) {
  boost::asio::io_context io;
  LocalLauncher launcher(io, 30, /*use_cgroups=*/true, /*start_inside_cgroups=*/false);
  if (!launcher.cgroups()) GTEST_SKIP() << "no per-trial cgroups here";
  const fs::path home = launcher.cgroups()->root().parent_path();
  const fs::path pid_file =
      fs::temp_directory_path() / fmt::format("tune_cgroup_home_{}", ::getpid());
  fs::remove(pid_file);
  LaunchRequest request{
      {"/bin/sh", "-c",
       fmt::format("setsid sh -c 'echo 0 >{}/cgroup.procs && exec sleep 1000' & echo $! >{}; "
                   "sleep 0.5",
                   home.string(), pid_file.string())},
      {{"TUNE_TRIAL_ID", "t_1"}},
      {},
      {},
      {}};
  int exits = 0;
  launcher.SetExitCallback([&](std::int64_t, ExitStatus) { ++exits; });
  const std::int64_t group = launcher.Launch({request});
  const pid_t escaped = ReadPid(pid_file);
  ASSERT_GT(escaped, 0);
  for (int i = 0; i < 100 && !Contains(launcher.cgroups()->HomePids(), escaped); ++i) {
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_TRUE(Contains(launcher.cgroups()->HomePids(), escaped));
  EXPECT_FALSE(Contains(launcher.cgroups()->Pids(group), escaped));
  EXPECT_TRUE(EndsWithItsTrial(io, launcher, group, exits, escaped))
      << "what the trial forked before its move outlived it";
  EXPECT_TRUE(RunUntilReaped(io, escaped));
  fs::remove(pid_file);
}

// Trials of the fake warm trainer (tests/tuner/fake_zygote.cc: trainer/zygote.cc's own zygote,
// whose trials are shell scripts) under a launcher with per-trial cgroups.
class WarmCgroupTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why_not;
    // Before the launcher's: both would be <own cgroup>/tune-<pid>, which the probe removes.
    std::unique_ptr<TrialCgroups> probe = TrialCgroups::Create(&why_not);
    if (!probe) GTEST_SKIP() << "no per-trial cgroups here: " << why_not;
    if (!CanCloneIntoCgroup(*probe, &why_not)) GTEST_SKIP() << why_not;
    probe.reset();
    ::unsetenv("FAKE_ZYGOTE_GO");  // the fake zygote is ready at once
    launcher_ = std::make_unique<LocalLauncher>(io_, 30, /*use_cgroups=*/true);
    ASSERT_TRUE(launcher_->cgroups());
    launcher_->SetExitCallback([this](std::int64_t group, ExitStatus status) {
      exits_[group] = status;
      ++ended_;
    });
  }
  // Starts the zygote, with `variable`=1 in its environment if given (a fake zygote's option),
  // through a first trial (spawned cold), and runs until both are ready and that trial is done.
  void StartZygote(const char* variable = nullptr) {
    if (variable) ::setenv(variable, "1", 1);
    const std::int64_t first = launcher_->Launch({Warm("exit 0")});
    for (int i = 0; i < 1000 && !(exits_.count(first) && launcher_->num_ready_zygotes() == 1); ++i) {
      io_.run_for(20ms);
    }
    if (variable) ::unsetenv(variable);
    ASSERT_EQ(launcher_->num_ready_zygotes(), 1u);
    exits_.clear();
    ended_ = 0;
  }
  static LaunchRequest Warm(const std::string& script) {
    return LaunchRequest{{std::string(TUNE_BIN_DIR) + "/tune-test-fake-zygote", "-c", script},
                         {{"TUNE_WARM_START", "1"}, {"TUNE_TRIAL_ID", "t_warm"}},
                         {},
                         {},
                         {}};
  }
  // Runs until `n` trials launched after StartZygote have ended.
  void RunUntilEnded(int n) {
    for (int i = 0; i < 1000 && ended_ < n; ++i) io_.run_for(20ms);
    ASSERT_EQ(ended_, n);
  }
  bool InItsCgroup(std::int64_t group) const {
    return Contains(launcher_->cgroups()->Pids(group), static_cast<pid_t>(group));
  }

  boost::asio::io_context io_;
  std::unique_ptr<LocalLauncher> launcher_;
  std::map<std::int64_t, ExitStatus> exits_;
  int ended_ = 0;
};

// A trial the warm trainer forks (trainer/zygote.h) is in its cgroup before it runs anything: the
// zygote starts it there by clone3, with the cgroup the launcher passes it. Before, the launcher
// moved it in once the zygote had said its pid (a write to cgroup.procs, ~20 ms here), and what
// the trial did first ran in the tuner's cgroup. The trial's shell reads its own cgroup at once
// (builtins: no fork), and forks a process of its own session that outlives it.
TEST_F(WarmCgroupTest, AWarmTrialStartsInItsCgroup) {
  StartZygote();
  const fs::path dir = fs::temp_directory_path() / fmt::format("tune_cgroup_warm_{}", ::getpid());
  fs::create_directories(dir);
  const std::int64_t group = launcher_->Launch({Warm(fmt::format(
      "while read -r line; do case $line in 0::*) echo \"$line\" >{0}/seen;; esac; "
      "done </proc/self/cgroup; setsid sleep 1000 & echo $! >{0}/escaped; sleep 0.3",
      dir.string()))});
  ASSERT_EQ(launcher_->num_warm_launches(), 1u) << "the trial was not started by the zygote";
  const pid_t escaped = ReadPid(dir / "escaped");
  ASSERT_GT(escaped, 0);
  EXPECT_TRUE(Contains(launcher_->cgroups()->Pids(group), escaped));
  EXPECT_FALSE(Contains(launcher_->cgroups()->HomePids(), escaped));
  EXPECT_TRUE(EndsWithItsTrial(io_, *launcher_, group, ended_, escaped))
      << "what the warm trial left outlived it";
  std::ifstream in(dir / "seen");
  const std::string seen((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(seen.find(launcher_->cgroups()->root().filename().string() + "/n"), std::string::npos)
      << "the warm trial's first look at its cgroup saw " << seen;
  EXPECT_TRUE(RunUntilReaped(io_, escaped));
  fs::remove_all(dir);
}

// A zygote whose clone3 is refused (a seccomp filter of a container runtime that answers it with
// ENOSYS) says so; the trial it could not start is spawned instead (inside its cgroup, by this
// process), and its later trials are forked as before clone3 was used, then moved in.
TEST_F(WarmCgroupTest, AZygoteThatCannotCloneIntoACgroupHasItsTrialsMovedIn) {
  StartZygote("FAKE_ZYGOTE_NO_CLONE3");
  testing::internal::CaptureStderr();
  const std::int64_t refused = launcher_->Launch({Warm("exit 3")});
  const std::string said = testing::internal::GetCapturedStderr();
  EXPECT_EQ(launcher_->num_warm_launches(), 0u) << "the zygote could not start it";
  EXPECT_NE(said.find("clone3 into the trial's cgroup: Function not implemented"), std::string::npos)
      << said;
  const std::int64_t moved = launcher_->Launch({Warm("sleep 0.3; exit 4")});
  EXPECT_EQ(launcher_->num_warm_launches(), 1u) << "forked by the zygote, as before clone3";
  EXPECT_TRUE(InItsCgroup(moved)) << "the zygote's trial was not moved into its cgroup";
  RunUntilEnded(2);
  EXPECT_EQ(exits_[refused].code, 3) << exits_[refused].Describe();
  EXPECT_EQ(exits_[moved].code, 4) << exits_[moved].Describe();
}

// A zygote from before the "cgroup" field (a tune-trainer, or a program of the user's speaking
// the protocol, built earlier than this tuner) ignores the descriptor and forks the trial where
// it is: its reply does not say "cgroup", so the launcher moves the trial in, as before.
TEST_F(WarmCgroupTest, AZygoteThatKnowsNoCgroupsHasItsTrialsMovedIn) {
  StartZygote("FAKE_ZYGOTE_OLD");
  const std::int64_t moved = launcher_->Launch({Warm("sleep 0.3; exit 4")});
  EXPECT_EQ(launcher_->num_warm_launches(), 1u);
  EXPECT_TRUE(InItsCgroup(moved)) << "the old zygote's trial was not moved into its cgroup";
  RunUntilEnded(1);
  EXPECT_EQ(exits_[moved].code, 4) << exits_[moved].Describe();
}

INSTANTIATE_TEST_SUITE_P(CgroupsAndSubreaper, LauncherIsolationTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? "Cgroups" : "SubreaperOnly";
                         });

}  // namespace
}  // namespace tune
