// The real `tune` binary against careless and hostile surroundings: a second tuner on the same
// experiment, reused directories, symbolic links planted in a shared --storage.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/integration/run_helpers.h"

namespace tune::integration {
namespace {

using ::testing::HasSubstr;

class HostileInputTest : public StorageTest {
 protected:
  void SetUp() override {
    StorageTest::SetUp();
    dir_ = storage_ / "exp";
  }
  // `tune run` on the curve example, one short trial unless `args` say otherwise.
  std::string RunCommand(const std::string& args, const std::string& log = "run") {
    return fmt::format(
        "{}/tune run {}/examples/curve.json --storage {} --name exp --num-samples 1 "
        "--max-concurrent 1 scheduler.max_t=2 trainer.max_epochs=2 {} >{}/{}.out "
        "2>{}/{}.err",
        TUNE_BIN_DIR, TUNE_SOURCE_DIR, storage_.string(), args, storage_.string(), log,
        storage_.string(), log);
  }
  std::string ResumeCommand(const std::string& log) {
    return fmt::format("{}/tune resume {} >{}/{}.out 2>{}/{}.err", TUNE_BIN_DIR, dir_.string(),
                       storage_.string(), log, storage_.string(), log);
  }
  // Waits until `pid` holds the experiment's lock (its pid is in .lock).
  bool WaitForLock(pid_t pid) {
    for (int i = 0; i < 200; ++i) {
      if (ReadFile(dir_ / ".lock") == fmt::format("{}\n", pid)) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
  }
  fs::path dir_;
};

TEST_F(HostileInputTest, SecondTunerOnOneExperimentIsRefusedNamingTheFirst) {
  pid_t run = SpawnShell(RunCommand("trainer.sleep_ms=1000 trainer.max_epochs=20 scheduler.max_t=20"));
  ASSERT_TRUE(WaitForLock(run)) << ReadFile(storage_ / "run.err");
  EXPECT_EQ(Shell(ResumeCommand("during_run")), 2);
  EXPECT_THAT(ReadFile(storage_ / "during_run.err"),
              HasSubstr(fmt::format("in use by another tune (pid {})", run)));
  kill(run, SIGINT);
  ASSERT_EQ(WaitExit(run), 130) << ReadFile(storage_ / "run.err");

  // Two resumes at once: the second exits 2 naming the first, which goes on undisturbed.
  pid_t first = SpawnShell(ResumeCommand("first"));
  ASSERT_TRUE(WaitForLock(first)) << ReadFile(storage_ / "first.err");
  EXPECT_EQ(Shell(ResumeCommand("second")), 2);
  EXPECT_THAT(ReadFile(storage_ / "second.err"),
              HasSubstr(fmt::format("in use by another tune (pid {})", first)));
  int status = 0;
  EXPECT_EQ(waitpid(first, &status, WNOHANG), 0) << "the first resume must still run";
  kill(first, SIGINT);
  EXPECT_EQ(WaitExit(first), 130) << ReadFile(storage_ / "first.err");
  // Only the first resume wrote to the journal.
  std::string journal = ReadFile(dir_ / "journal.jsonl");
  std::size_t resumes = 0;
  for (std::size_t at = journal.find("\"resume\""); at != std::string::npos;
       at = journal.find("\"resume\"", at + 1)) {
    ++resumes;
  }
  EXPECT_EQ(resumes, 1u);
}

// A Ctrl-C that comes before the tuner's loop handles signals (while tune reads the spec, locks
// the experiment, replays a journal) used to kill tune by the default action, exit by signal
// rather than 130, and a loaded machine made that window tens of milliseconds wide (the test
// above failed so). Here the Ctrl-C is already pending when tune starts: blocked signals stay
// pending across exec.
TEST_F(HostileInputTest, ACtrlCBeforeTheLoopStartsStopsTheRunCleanly) {
  const std::string command =
      "exec env " + RunCommand("trainer.sleep_ms=1000 trainer.max_epochs=20 scheduler.max_t=20");
  const pid_t run = ::fork();
  if (run == 0) {
    sigset_t interrupt;
    sigemptyset(&interrupt);
    sigaddset(&interrupt, SIGINT);
    ::sigprocmask(SIG_BLOCK, &interrupt, nullptr);
    ::raise(SIGINT);
    ::execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  EXPECT_EQ(WaitExit(run), 130) << ReadFile(storage_ / "run.err");
  EXPECT_THAT(ReadFile(storage_ / "run.err"), HasSubstr("Ctrl-C"));
  // Stopped as any Ctrl-C stops it: resumable.
  EXPECT_THAT(ReadFile(dir_ / "journal.jsonl"), HasSubstr("\"event\":\"start\""));
}

TEST_F(HostileInputTest, RunRefusesADirectoryWithAJournalEvenWithoutExperimentJson) {
  fs::create_directories(dir_);
  const std::string journal = "{\"event\":\"start\",\"wall\":1}\n";
  std::ofstream(dir_ / "journal.jsonl") << journal;
  EXPECT_EQ(Shell(RunCommand("trainer.sleep_ms=0")), 2);
  EXPECT_THAT(ReadFile(storage_ / "run.err"), HasSubstr("tune resume"));
  EXPECT_EQ(ReadFile(dir_ / "journal.jsonl"), journal);
  EXPECT_FALSE(fs::exists(dir_ / "experiment.json"));
}

TEST_F(HostileInputTest, PlantedJournalLinkIsNotAppendedTo) {
  fs::create_directories(dir_);
  std::ofstream(storage_ / "victim") << "secret\n";
  fs::create_symlink(storage_ / "victim", dir_ / "journal.jsonl");
  EXPECT_EQ(Shell(RunCommand("trainer.sleep_ms=0")), 2);
  EXPECT_EQ(ReadFile(storage_ / "victim"), "secret\n");
}

TEST_F(HostileInputTest, ExperimentDirectoryThatIsALinkIsRefused) {
  fs::create_directories(storage_ / "elsewhere");
  fs::create_directory_symlink(storage_ / "elsewhere", dir_);
  EXPECT_EQ(Shell(RunCommand("trainer.sleep_ms=0")), 2);
  EXPECT_THAT(ReadFile(storage_ / "run.err"), HasSubstr("symbolic link"));
  EXPECT_TRUE(fs::is_empty(storage_ / "elsewhere"));
}

TEST_F(HostileInputTest, PlantedTemporaryFileLinkIsNotFollowed) {
  // experiment.json used to be written through "<path>.tmp": a link there truncated its target.
  fs::create_directories(dir_);
  std::ofstream(storage_ / "victim") << "secret\n";
  fs::create_symlink(storage_ / "victim", dir_ / "experiment.json.tmp");
  EXPECT_EQ(Shell(RunCommand("trainer.sleep_ms=0")), 0) << ReadFile(storage_ / "run.err");
  EXPECT_EQ(ReadFile(storage_ / "victim"), "secret\n");
  EXPECT_TRUE(fs::is_regular_file(fs::symlink_status(dir_ / "experiment.json")));
}

TEST_F(HostileInputTest, PlantedTrialDirectoryLinkIsNotWrittenThrough) {
  fs::create_directories(dir_);
  fs::create_directories(storage_ / "elsewhere");
  fs::create_directory_symlink(storage_ / "elsewhere", dir_ / "t_00001");
  int code = Shell(RunCommand("trainer.sleep_ms=0"));
  EXPECT_NE(code, 0);
  EXPECT_THAT(ReadFile(storage_ / "run.err"), HasSubstr("symbolic link"));
  EXPECT_TRUE(fs::is_empty(storage_ / "elsewhere"));
}

}  // namespace
}  // namespace tune::integration
