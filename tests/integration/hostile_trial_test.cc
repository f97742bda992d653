// `tune run` with trials that are careless or hostile (issue 17): what they inherit, what they
// leave running, what their output can do to the tuner's memory, its files and the terminal.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <sstream>
#include <thread>

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/integration/run_helpers.h"

namespace tune::integration {
namespace {

using ::testing::HasSubstr;

class HostileTrialTest : public StorageTest {
 protected:
  // Runs `tune run` on a spec whose trials are `tune-test-misbehaving-trial <args>`.
  int Run(const Json& args, int num_samples, const std::string& extra = "") {
    Json spec = {{"metric", "loss"},
                 {"mode", "min"},
                 {"num_samples", num_samples},
                 {"max_failures", 0},
                 {"trainer", {{"command", Json::array({"tune-test-misbehaving-trial"})}}},
                 {"space", {{"x", {{"uniform", {0, 1}}}}}}};
    for (const Json& arg : args) spec["trainer"]["command"].push_back(arg);
    RunOutput run = RunSpec(spec, "exp", "--cpus 4 " + extra);
    out_ = run.out;
    err_ = run.err;
    max_rss_kib_ = run.max_rss_kib;
    return run.exit_code;
  }

  fs::path Dir() const { return storage_ / "exp"; }

  std::string out_, err_;
  long max_rss_kib_ = 0;
};

TEST_F(HostileTrialTest, ATrialInheritsOnlyStdinStdoutAndStderr) {
  // Several at once, so that other trials' connections and result files are open meanwhile.
  ASSERT_EQ(Run({"list-fds", "fds.txt"}, 4), 0) << err_;
  int trials = 0;
  for (const auto& entry : fs::directory_iterator(Dir())) {
    if (!entry.is_directory()) continue;
    ++trials;
    std::string fds = ReadFile(entry.path() / "fds.txt");
    std::istringstream lines(fds);
    std::vector<std::string> numbers;
    for (std::string line; std::getline(lines, line);) numbers.push_back(line.substr(0, line.find(' ')));
    EXPECT_EQ(numbers, (std::vector<std::string>{"0", "1", "2"})) << entry.path() << ":\n" << fds;
  }
  EXPECT_EQ(trials, 4);
}

TEST_F(HostileTrialTest, WhatATrialStartsInItsOwnSessionDiesWithIt) {
  ASSERT_EQ(Run({"escape", "escaped.pid"}, 2), 0) << err_;
  for (const auto& entry : fs::directory_iterator(Dir())) {
    if (!entry.is_directory()) continue;
    pid_t pid = std::stoi(ReadFile(entry.path() / "escaped.pid"));
    ASSERT_GT(pid, 0);
    for (int wait = 0; wait < 50 && !ProcessGone(pid); ++wait) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    bool gone = ProcessGone(pid);
    if (!gone) ::kill(pid, SIGKILL);  // do not leave it behind either way
    EXPECT_TRUE(gone) << "`setsid sleep 1000` of " << entry.path().filename() << " outlived it";
  }
  // tune says which of its two ways to end what trials leave running is in use.
  const bool cgroups = err_.find("[tune] each trial runs in a cgroup of its own") != std::string::npos;
  const bool subreaper = err_.find("[tune] no per-trial cgroups (") != std::string::npos;
  EXPECT_TRUE(cgroups != subreaper) << err_;
}

TEST_F(HostileTrialTest, HugeOutputWithoutNewlinesIsQuotedBoundedAndEscaped) {
  // 64 MiB without a newline, then escape sequences: the quotes stay small and inert.
  ASSERT_EQ(Run({"noisy-fail", std::to_string(64 << 20)}, 1), 1) << err_;  // all trials failed
  // It used to read the whole stderr.log into memory, and copy it: 22 GB for 1 GB of output.
  EXPECT_LT(max_rss_kib_, 100 * 1024) << "tune's peak resident memory, KiB";
  fs::path trial;
  for (const auto& entry : fs::directory_iterator(Dir())) {
    if (entry.is_directory()) trial = entry.path();
  }
  ASSERT_FALSE(trial.empty());
  std::string journal = ReadFile(Dir() / "journal.jsonl");
  std::string error_txt = ReadFile(trial / "error.txt");
  EXPECT_LT(journal.size(), 32u * 1024) << "the journal quotes the whole stderr.log";
  EXPECT_LT(error_txt.size(), 80u * 1024);
  EXPECT_LT(err_.size(), 16u * 1024);
  EXPECT_THAT(error_txt, HasSubstr("fatal: boom"));
  EXPECT_THAT(err_, HasSubstr("fatal: boom"));
  for (const std::string* text : {&error_txt, &err_, &out_}) {
    EXPECT_EQ(text->find('\x1b'), std::string::npos) << text->substr(0, 2000);
    EXPECT_EQ(text->find('\x07'), std::string::npos);
  }
  EXPECT_THAT(err_, HasSubstr("\\x1b[1A\\rfatal: boom"));
  // The journal stays readable: `tune resume` replays it (nothing left to run).
  RunOutput resume = Resume("exp");
  std::string resumed = resume.out + resume.err;
  EXPECT_THAT(resumed, HasSubstr("resumed"));
  EXPECT_THAT(resumed, ::testing::Not(HasSubstr("tune: error")));  // e.g. std::bad_alloc
}

TEST_F(HostileTrialTest, TrialLogsPastMaxLogBytesHaveTheirMiddleCut) {
  ASSERT_EQ(Run({"noisy-fail", std::to_string(8 << 20)}, 1, "max_log_bytes=1048576"), 1) << err_;
  for (const auto& entry : fs::directory_iterator(Dir())) {
    if (!entry.is_directory()) continue;
    std::string log = ReadFile(entry.path() / "stderr.log");
    EXPECT_LE(log.size(), 1048576u) << entry.path();
    EXPECT_THAT(log, HasSubstr("bytes here: this log passed max_log_bytes (1048576)"));
    EXPECT_EQ(log.rfind("xxxx", 0), 0u);  // the start is kept
    EXPECT_THAT(log.substr(log.size() - 200), HasSubstr("fatal: boom"));  // and the end
  }
}

TEST_F(HostileTrialTest, AnEmptyOrNumericReportHostIsRefusedAndEveryInterfaceIsSaid) {
  EXPECT_EQ(Run({"list-fds", "fds.txt"}, 1, "--report-host ''"), 2);
  EXPECT_THAT(err_, HasSubstr("--report-host: \"\" is not an address"));
  EXPECT_EQ(Run({"list-fds", "fds.txt"}, 1, "--report-host 0"), 2);
  EXPECT_THAT(err_, HasSubstr("--report-host: \"0\" is not an address"));
  fs::remove_all(Dir());
  EXPECT_EQ(Run({"list-fds", "fds.txt"}, 1, "--report-host 0.0.0.0"), 0) << err_;
  EXPECT_THAT(err_, HasSubstr("warning: the report server listens on 0.0.0.0 (every interface)"));
}

// `tune run` on the curve example in the background; returns its pid once a trial reported.
pid_t StartCurve(const fs::path& storage, const std::string& args) {
  std::string command = fmt::format(
      "{}/tune run {}/examples/curve.json --storage {} --name exp --cpus 2 --num-samples 2 "
      "--max-concurrent 2 scheduler=fifo {} >{}/out.txt 2>{}/err.txt",
      TUNE_BIN_DIR, TUNE_SOURCE_DIR, storage.string(), args, storage.string(), storage.string());
  pid_t pid = SpawnShell(command);
  for (int i = 0; i < 200; ++i) {
    if (ReadFile(storage / "exp" / "journal.jsonl").find("\"report\"") != std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return pid;
}

TEST_F(HostileTrialTest, SighupStopsCleanlyAndTheExperimentResumes) {
  pid_t pid = StartCurve(storage_, "trainer.sleep_ms=300 trainer.max_epochs=20");
  ASSERT_EQ(::kill(pid, SIGHUP), 0);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status)) << "killed by signal " << WTERMSIG(status);
  EXPECT_EQ(WEXITSTATUS(status), 130) << ReadFile(storage_ / "err.txt");
  EXPECT_THAT(ReadFile(storage_ / "err.txt"), HasSubstr("SIGHUP: stopping all trials"));
  RunOutput resume = Resume("exp");
  EXPECT_EQ(resume.exit_code, 0) << resume.err;
  EXPECT_TRUE(fs::exists(Dir() / "best_trial.json"));
}

TEST_F(HostileTrialTest, AClosedStdoutDoesNotEndTheExperiment) {
  // `tune run ... | head -c 1`: head exits after one byte; tune goes on to the end.
  std::string command = fmt::format(
      "bash -c 'set -o pipefail; {}/tune run {}/examples/curve.json --storage {} --name exp "
      "--cpus 2 --num-samples 3 scheduler=fifo trainer.sleep_ms=50 trainer.max_epochs=10 "
      "2>{}/err.txt | head -c 1 >/dev/null; echo ${{PIPESTATUS[0]}} >{}/code.txt'",
      TUNE_BIN_DIR, TUNE_SOURCE_DIR, storage_.string(), storage_.string(), storage_.string());
  Shell(command);
  EXPECT_EQ(ReadFile(storage_ / "code.txt"), "0\n") << ReadFile(storage_ / "err.txt");
  EXPECT_THAT(ReadFile(storage_ / "err.txt"), HasSubstr("the experiment goes on"));
  EXPECT_TRUE(fs::exists(Dir() / "best_trial.json"));
}

}  // namespace
}  // namespace tune::integration
