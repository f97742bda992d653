// End-to-end: `tune run` on the example programs, checked against the files it writes.
#include <dlfcn.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "schedulers/scheduler.h"
#include "tests/integration/run_helpers.h"
#include "tuner/spec.h"

namespace tune {
namespace {

using ::testing::HasSubstr;
using namespace integration;

class TuneRunTest : public StorageTest {
 protected:
  // Runs `tune run <spec> <args>` as experiment "exp" with `env` prefixed; waits for it.
  RunOutput Run(const std::string& spec, const std::string& args, const std::string& env = "") {
    return RunPath(spec, "exp", args, env);
  }
  std::string Curve() { return std::string(TUNE_SOURCE_DIR) + "/examples/curve.json"; }
};

TEST_F(TuneRunTest, AshaPrunesByTheRuleAndTheBestTrialIsTheTrueBest) {
  // One trial at a time makes the order of results, and so every ASHA decision, deterministic.
  RunOutput run = Run(Curve(), "--num-samples 12 --max-concurrent 1 trainer.sleep_ms=0");
  ASSERT_EQ(run.exit_code, 0) << run.out << run.err;

  Json spec = LoadSpecFile(Curve());
  auto replay = MakeScheduler(spec["scheduler"], "loss", Mode::kMin);
  const int max_t = spec["scheduler"]["max_t"];
  int stopped_early = 0;
  std::string best_id;
  double best_loss = 1e300;
  auto dirs = TrialDirs(run.dir);
  ASSERT_EQ(dirs.size(), 12u);
  for (const fs::path& dir : dirs) {
    std::string id = dir.filename();
    auto results = ReadJsonLines(dir / "result.json");
    ASSERT_FALSE(results.empty()) << id;
    replay->OnTrialAdd(id);
    std::size_t expected = 0;
    for (const Json& line : results) {
      ++expected;
      Result result;
      result.training_iteration = line["training_iteration"];
      result.metrics = line;
      if (replay->OnResult(id, result) == Decision::kStop) break;
    }
    EXPECT_EQ(results.size(), expected) << id << " did not stop where ASHA says";
    if (static_cast<int>(results.size()) < max_t) ++stopped_early;
    replay->OnTrialComplete(id, nullptr);
    double last = results.back()["loss"];
    if (last < best_loss) {
      best_loss = last;
      best_id = id;
    }
    // progress.csv has a header and one row per result.
    std::string csv = ReadFile(dir / "progress.csv");
    EXPECT_EQ(static_cast<std::size_t>(std::count(csv.begin(), csv.end(), '\n')),
              results.size() + 1);
    EXPECT_TRUE(fs::exists(dir / "params.json"));
  }
  EXPECT_GE(stopped_early, 6) << "ASHA with rf=3 should stop most of 12 trials";
  Json best = Json::parse(ReadFile(run.dir / "best_trial.json"));
  EXPECT_EQ(best["trial_id"], best_id);
  EXPECT_THAT(run.out, HasSubstr("Best trial: " + best_id));
  EXPECT_THAT(run.out, HasSubstr("Best trial config: "));
  EXPECT_THAT(run.out, HasSubstr("Best trial final loss: "));
  EXPECT_THAT(run.out, HasSubstr("STOPPED"));     // pruned early
  EXPECT_THAT(run.out, HasSubstr("TERMINATED"));  // ran to max_t
  EXPECT_TRUE(fs::exists(run.dir / "experiment.json"));
  for (const auto& entry : fs::directory_iterator(run.dir)) {
    if (entry.path().filename() == ".lock") continue;  // the experiment's lock file stays
    EXPECT_NE(entry.path().filename().string()[0], '.') << "left behind: " << entry.path();
  }
}

TEST_F(TuneRunTest, TimeTotalIsTheTrialsRunningTimeAtEachReport) {
  // Four 150 ms epochs: time_total_s grows by about 0.15 s per report (it once grew by the sum
  // of all the earlier totals: 0.15, 0.45, 0.9, 1.5).
  RunOutput run = Run(Curve(), "--num-samples 1 trainer.sleep_ms=150 trainer.max_epochs=4");
  ASSERT_EQ(run.exit_code, 0) << run.out << run.err;
  auto results = ReadJsonLines(TrialDirs(run.dir).at(0) / "result.json");
  ASSERT_EQ(results.size(), 4u);
  double previous = 0;
  for (const Json& line : results) {
    double total = line["time_total_s"];
    EXPECT_GE(total - previous, 0.14) << line.dump();
    EXPECT_LT(total - previous, 0.4) << line.dump();
    previous = total;
  }
}

TEST_F(TuneRunTest, TpeExperimentRunsEndToEnd) {
  RunOutput run = Run(Curve(),
                      "--num-samples 16 --max-concurrent 2 trainer.sleep_ms=0 "
                      "search.algorithm=tpe search.seed=3 search.n_startup_trials=5");
  ASSERT_EQ(run.exit_code, 0) << run.out << run.err;
  Json experiment = Json::parse(ReadFile(run.dir / "experiment.json"));
  EXPECT_EQ(experiment["search"]["algorithm"], "tpe");
  auto dirs = TrialDirs(run.dir);
  ASSERT_EQ(dirs.size(), 16u);
  for (const fs::path& dir : dirs) {
    Json params = Json::parse(ReadFile(dir / "params.json"));
    EXPECT_GE(params["x1"].get<double>(), -5);
    EXPECT_LE(params["x1"].get<double>(), 10);
    EXPECT_GT(params["lr"].get<double>(), 0.01 * 0.999);
  }
  EXPECT_THAT(run.out, HasSubstr("Best trial: "));
}

TEST_F(TuneRunTest, HalfGpuTrialsRunEightAtOnceOnFourFakeGpus) {
  RunOutput run = Run(Curve(),
                      "--gpus 4 --cpus 16 --num-samples 16 --max-concurrent 0 "
                      "resources_per_trial.gpu=0.5 scheduler=fifo trainer.max_epochs=3 "
                      "trainer.sleep_ms=400 trainer.record_env=true",
                      "CUDA_VISIBLE_DEVICES=0,1,2,3");
  ASSERT_EQ(run.exit_code, 0) << run.out << run.err;
  struct Interval {
    double start, end;
    std::string gpu;
  };
  std::vector<Interval> intervals;
  for (const fs::path& dir : TrialDirs(run.dir)) {
    Json env = Json::parse(ReadFile(dir / "env.json"));
    auto results = ReadJsonLines(dir / "result.json");
    ASSERT_EQ(results.size(), 3u);
    std::string gpu = env["CUDA_VISIBLE_DEVICES"];
    EXPECT_TRUE(gpu == "0" || gpu == "1" || gpu == "2" || gpu == "3") << gpu;
    EXPECT_THAT(env["TUNE_REPORT_SOCKET"].get<std::string>(), ::testing::StartsWith("@tune-"));
    intervals.push_back({env["start_s"].get<double>(), results.back()["timestamp"].get<double>(), gpu});
  }
  ASSERT_EQ(intervals.size(), 16u);
  std::size_t peak = 0;
  for (const Interval& at : intervals) {
    std::size_t running = 0;
    std::map<std::string, int> per_gpu;
    for (const Interval& other : intervals) {
      if (other.start <= at.start && at.start < other.end) {
        ++running;
        ++per_gpu[other.gpu];
      }
    }
    for (const auto& [gpu, count] : per_gpu) EXPECT_LE(count, 2) << "GPU " << gpu << " oversubscribed";
    peak = std::max(peak, running);
  }
  EXPECT_EQ(peak, 8u);
}

TEST_F(TuneRunTest, PythonTrainingScriptIsTunedThroughThePythonClient) {
  if (std::system("python3 -c 'import json' >/dev/null 2>&1") != 0) GTEST_SKIP() << "no python3";
  std::string spec = std::string(TUNE_SOURCE_DIR) + "/examples/python_sgd.json";
  RunOutput run = Run(spec, "--num-samples 2 --cpus 2");
  ASSERT_EQ(run.exit_code, 0) << run.out << run.err;
  auto dirs = TrialDirs(run.dir);
  ASSERT_EQ(dirs.size(), 4u) << "2 samples x grid of 2 batch sizes";
  for (const fs::path& dir : dirs) {
    auto results = ReadJsonLines(dir / "result.json");
    ASSERT_FALSE(results.empty()) << dir;
    EXPECT_TRUE(results.back()["val_loss"].is_number());
  }
  Json best = Json::parse(ReadFile(run.dir / "best_trial.json"));
  EXPECT_LT(best["value"].get<double>(), 1.0) << "SGD on a line should fit it";
}

// A spec named without a directory (`tune run space.json` from its folder) resolves
// ${spec_dir} to that folder.
TEST_F(TuneRunTest, SpecGivenAsABareFileNameRunsFromItsFolder) {
  if (std::system("python3 -c 'import json' >/dev/null 2>&1") != 0) GTEST_SKIP() << "no python3";
  RunOutput run = Run("python_sgd.json", "--num-samples 1 --cpus 2",
                      fmt::format("-C {}/examples", TUNE_SOURCE_DIR));  // env(1) --chdir
  ASSERT_EQ(run.exit_code, 0) << run.out << run.err;
  EXPECT_EQ(TrialDirs(run.dir).size(), 2u);
}

// Config groups (tuner/compose.h): the spec is composed from a base file and groups, the command
// line chooses one group's option and sweeps another's (a grid of whole objects in the trials'
// configs), and experiment.json keeps the composed spec.
TEST_F(TuneRunTest, ComposedSpecChoosesAndSweepsConfigGroups) {
  const fs::path conf = storage_ / "conf";
  fs::create_directories(conf / "search");
  fs::create_directories(conf / "trainer" / "pace");
  Json base = CurveSpec(/*num_samples=*/1, /*max_epochs=*/2);
  base.erase("search");
  std::ofstream(conf / "base.json") << base.dump();
  std::ofstream(conf / "search" / "random.json") << R"({"algorithm": "random", "seed": 0})";
  std::ofstream(conf / "search" / "seeded.json") << R"({"algorithm": "random", "seed": 7})";
  std::ofstream(conf / "trainer" / "pace" / "fast.json") << R"({"level": 1})";
  std::ofstream(conf / "trainer" / "pace" / "slow.json") << R"({"level": 2, "extra": true})";
  std::ofstream(conf / "space.json")
      << R"({"defaults": ["base", {"search": "random"}, {"trainer/pace": "fast"}], "max_concurrent": 2})";
  RunOutput run = Run((conf / "space.json").string(), "search=seeded -m trainer/pace=fast,slow");
  ASSERT_EQ(run.exit_code, 0) << run.out << run.err;
  const Json spec = Json::parse(ReadFile(run.dir / "experiment.json"));
  EXPECT_EQ(spec["search"], Json::parse(R"({"algorithm": "random", "seed": 7})"));
  EXPECT_FALSE(spec.contains("defaults"));
  EXPECT_EQ(spec["max_concurrent"], 2);
  std::vector<Json> paces;
  for (const fs::path& dir : TrialDirs(run.dir)) {
    paces.push_back(Json::parse(ReadFile(dir / "params.json"))["pace"]);
  }
  EXPECT_EQ(paces, (std::vector<Json>{Json::parse(R"({"level": 1})"),
                                      Json::parse(R"({"level": 2, "extra": true})")}));
  // --print-spec prints what experiment.json holds, and runs nothing.
  RunOutput printed = RunPath((conf / "space.json").string(), "printed",
                              "search=seeded -m trainer/pace=fast,slow --print-spec");
  ASSERT_EQ(printed.exit_code, 0) << printed.err;
  Json expected = spec;
  expected["name"] = "printed";
  EXPECT_EQ(Json::parse(printed.out), expected);
  EXPECT_FALSE(fs::exists(printed.dir));
  RunOutput wrong = RunPath((conf / "space.json").string(), "wrong", "search=seed");
  EXPECT_EQ(wrong.exit_code, 2);
  EXPECT_THAT(wrong.err, HasSubstr("defaults[1]: no option \"seed\" in group search (known: random, seeded)"));
}

// --free-gpus (Lightning's auto_select_gpus) against a fake NVML (tests/tuner/fake_nvml.cc): GPU
// 0 and 3 run other processes, 1 and 2 are idle; trials get only the idle ones, an inherited
// CUDA_VISIBLE_DEVICES (an index and a UUID) is honoured, and asking for more is an error.
TEST_F(TuneRunTest, FreeGpusAreTheOnesNoProcessComputesOn) {
  const std::string nvml = fmt::format("LD_LIBRARY_PATH={} FAKE_NVML=30000:2,900:0,10:0,0:1", TUNE_FAKE_NVML_DIR);
  const std::string args = "--cpus 4 --num-samples 4 resources_per_trial.gpu=1 scheduler=fifo "
                           "trainer.max_epochs=2 trainer.sleep_ms=0 trainer.record_env=true";
  auto gpus_of = [](const fs::path& experiment) {
    std::set<std::string> gpus;
    for (const fs::path& dir : TrialDirs(experiment)) {
      gpus.insert(Json::parse(ReadFile(dir / "env.json"))["CUDA_VISIBLE_DEVICES"].get<std::string>());
    }
    return gpus;
  };
  RunOutput run = Run(Curve(), "--free-gpus " + args, nvml);
  ASSERT_EQ(run.exit_code, 0) << run.out << run.err;
  EXPECT_THAT(run.err, HasSubstr("--free-gpus: using GPUs 2,1"));
  EXPECT_EQ(gpus_of(run.dir), (std::set<std::string>{"1", "2"}));
  // NVML's numbers are PCI bus order: so are the trials' CUDA device numbers.
  for (const fs::path& dir : TrialDirs(run.dir)) {
    EXPECT_EQ(Json::parse(ReadFile(dir / "env.json"))["CUDA_DEVICE_ORDER"], "PCI_BUS_ID") << dir;
  }
  RunOutput fastest = RunPath(Curve(), "fastest", "--free-gpus " + args, nvml + " CUDA_DEVICE_ORDER=FASTEST_FIRST");
  EXPECT_EQ(fastest.exit_code, 2);
  EXPECT_THAT(fastest.err, HasSubstr("--free-gpus: CUDA_DEVICE_ORDER=FASTEST_FIRST numbers the GPUs otherwise than NVML"));
  RunOutput one = RunPath(Curve(), "one", "--free-gpus --gpus 1 " + args,
                          nvml + " CUDA_VISIBLE_DEVICES=GPU-fake-3,1,0");
  ASSERT_EQ(one.exit_code, 0) << one.out << one.err;
  EXPECT_EQ(gpus_of(one.dir), (std::set<std::string>{"1"}));
  RunOutput short_of = RunPath(Curve(), "short", "--free-gpus --gpus 3 " + args, nvml);
  EXPECT_EQ(short_of.exit_code, 2);
  EXPECT_THAT(short_of.err, HasSubstr("asked for 3 free GPUs, but only 2 of 4 are free; busy: 0 (2 processes"));
  if (void* driver = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL)) {
    dlclose(driver);  // a real driver: there is no machine without NVML to check here
    return;
  }
  RunOutput no_driver = RunPath(Curve(), "nodriver", "--free-gpus " + args, "LD_LIBRARY_PATH=/nonexistent");
  EXPECT_EQ(no_driver.exit_code, 2);
  EXPECT_THAT(no_driver.err, HasSubstr("--free-gpus: NVML (libnvidia-ml.so.1, the NVIDIA driver's) could not be loaded"));
}

TEST_F(TuneRunTest, TrialsNumberTheirGpusInPciOrderUnlessTheUserChoseAnOrder) {
  const std::string args = "--cpus 2 --num-samples 2 scheduler=fifo trainer.max_epochs=1 "
                           "trainer.sleep_ms=0 trainer.record_env=true";
  auto orders_of = [](const fs::path& experiment) {
    std::set<std::string> orders;
    for (const fs::path& dir : TrialDirs(experiment)) {
      orders.insert(Json::parse(ReadFile(dir / "env.json"))["CUDA_DEVICE_ORDER"].get<std::string>());
    }
    return orders;
  };
  RunOutput pci = Run(Curve(), args + " resources_per_trial.gpu=1", "CUDA_VISIBLE_DEVICES=0,1");
  ASSERT_EQ(pci.exit_code, 0) << pci.err;
  EXPECT_EQ(orders_of(pci.dir), std::set<std::string>{"PCI_BUS_ID"});
  RunOutput own = RunPath(Curve(), "own", args + " resources_per_trial.gpu=1",
                          "CUDA_VISIBLE_DEVICES=0,1 CUDA_DEVICE_ORDER=FASTEST_FIRST");
  ASSERT_EQ(own.exit_code, 0) << own.err;
  EXPECT_EQ(orders_of(own.dir), std::set<std::string>{"FASTEST_FIRST"});
  RunOutput cpu = RunPath(Curve(), "cpu", args, "CUDA_VISIBLE_DEVICES=0,1");
  ASSERT_EQ(cpu.exit_code, 0) << cpu.err;
  EXPECT_EQ(orders_of(cpu.dir), std::set<std::string>{"<unset>"});
}

TEST_F(TuneRunTest, AskingForMoreGpusThanExistIsAClearError) {
  RunOutput run = Run(Curve(), "--gpus 8", "CUDA_VISIBLE_DEVICES=0,1");
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_THAT(run.err, HasSubstr("--gpus: asked for 8 GPUs, but only 2 visible (0,1)"));
}

TEST_F(TuneRunTest, BrokenSpecIsOneClearLine) {
  fs::path spec = storage_ / "bad.json";
  std::ofstream(spec) << R"({"metric": "loss", "space": {"lr": {"loguniform": [0, 1]}}})";
  RunOutput run = Run(spec.string(), "");
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_THAT(run.err, HasSubstr("tune: space.lr: "));
  EXPECT_EQ(std::count(run.err.begin(), run.err.end(), '\n'), 1);
}

TEST_F(TuneRunTest, MisbehavingConnectionsAreClosedAndTheExperimentCompletes) {
  fs::path spec = storage_ / "misbehave.json";
  std::ofstream(spec) << R"({"metric": "loss", "mode": "min", "num_samples": 3,
      "trainer": {"command": ["tune-test-misbehaving-trial"]}, "space": {"x": {"uniform": [0, 1]}}})";
  RunOutput run = Run(spec.string(), "--cpus 2");
  ASSERT_EQ(run.exit_code, 0) << run.out << run.err;
  for (const fs::path& dir : TrialDirs(run.dir)) {
    auto results = ReadJsonLines(dir / "result.json");
    ASSERT_EQ(results.size(), 3u) << dir;
    EXPECT_EQ(results.back()["closed_all"], true) << dir;
  }
  EXPECT_THAT(run.err, HasSubstr("closed a trial connection"));
  EXPECT_THAT(run.out, HasSubstr("TERMINATED"));
}

TEST_F(TuneRunTest, CrashingTrialIsRetriedFromItsCheckpoint) {
  RunOutput run = Run(Curve(),
                      "--num-samples 2 scheduler=fifo trainer.sleep_ms=0 trainer.max_epochs=6 "
                      "trainer.crash_at_epoch=4 max_failures=1");
  ASSERT_EQ(run.exit_code, 0) << run.out << run.err;
  for (const fs::path& dir : TrialDirs(run.dir)) {
    auto results = ReadJsonLines(dir / "result.json");
    std::vector<int> epochs;
    for (const Json& line : results) epochs.push_back(line["epoch"]);
    EXPECT_EQ(epochs, (std::vector<int>{1, 2, 3, 4, 5, 6})) << dir << ": each epoch exactly once";
    EXPECT_THAT(ReadFile(dir / "error.txt"), HasSubstr("exit code 3"));
    EXPECT_THAT(ReadFile(dir / "error.txt"), HasSubstr("simulated crash at epoch 4"));
  }
  EXPECT_THAT(run.err, HasSubstr("retrying (1 of 1)"));
}

TEST_F(TuneRunTest, TrialsThatKeepFailingEndAsErrorWithTheReason) {
  RunOutput run = Run(Curve(),
                      "--num-samples 2 scheduler=fifo trainer.sleep_ms=0 "
                      "trainer.crash_at_epoch=2 trainer.checkpoint=false max_failures=2");
  EXPECT_EQ(run.exit_code, 1) << "every trial failed";
  for (const fs::path& dir : TrialDirs(run.dir)) {
    std::string errors = ReadFile(dir / "error.txt");
    EXPECT_THAT(errors, HasSubstr("Failure #3: exit code 3"));
    // Without checkpoints each attempt restarts at epoch 1 and reports it again.
    EXPECT_EQ(ReadJsonLines(dir / "result.json").size(), 3u);
  }
  EXPECT_THAT(run.out, HasSubstr("ERROR"));
}

TEST_F(TuneRunTest, NanMetricFailsTheTrialButNotTheExperiment) {
  RunOutput run = Run(Curve(),
                      "--num-samples 1 scheduler=fifo trainer.sleep_ms=0 trainer.max_epochs=4 "
                      "max_failures=3 -m nan_at_epoch=2,-1");
  // The multirun grid gives the first trial nan_at_epoch=2 and the second none.
  ASSERT_EQ(run.exit_code, 0) << run.out << run.err;
  auto dirs = TrialDirs(run.dir);
  ASSERT_EQ(dirs.size(), 2u);
  EXPECT_THAT(ReadFile(dirs[0] / "error.txt"), HasSubstr("reported loss = nan at iter 2"));
  EXPECT_EQ(ReadJsonLines(dirs[0] / "result.json").size(), 2u) << "NaN is recorded, not retried";
  EXPECT_EQ(ReadJsonLines(dirs[1] / "result.json").size(), 4u);
  EXPECT_THAT(run.out, HasSubstr("ERROR"));
}

TEST_F(TuneRunTest, HangingTrialIsKilledAfterTrialTimeout) {
  RunOutput run = Run(Curve(),
                      "--num-samples 1 scheduler=fifo trainer.sleep_ms=0 trainer.hang_at_epoch=2 "
                      "trial_timeout_s=1 max_failures=0 trainer.record_env=true");
  EXPECT_EQ(run.exit_code, 1) << run.out << run.err;
  fs::path trial = run.dir / "t_00001";
  EXPECT_THAT(ReadFile(trial / "error.txt"), HasSubstr("sent no report or heartbeat for 1 s"));
  EXPECT_EQ(ReadJsonLines(trial / "result.json").size(), 1u);
  Json env = Json::parse(ReadFile(trial / "env.json"));
  EXPECT_NE(kill(env["pid"].get<pid_t>(), 0), 0) << "the hung trial must be gone";
}

TEST_F(TuneRunTest, HeartbeatsKeepASlowTrialAlive) {
  RunOutput run = Run(Curve(),
                      "--num-samples 1 scheduler=fifo trainer.max_epochs=2 trainer.sleep_ms=1500 "
                      "trainer.heartbeat_ms=250 trial_timeout_s=1 max_failures=0");
  EXPECT_EQ(run.exit_code, 0) << run.out << run.err;
  EXPECT_EQ(ReadJsonLines(run.dir / "t_00001" / "result.json").size(), 2u);
  EXPECT_FALSE(fs::exists(run.dir / "t_00001" / "error.txt"));
}

TEST_F(TuneRunTest, TrialThatNeverConnectsIsDetected) {
  fs::path spec = storage_ / "silent.json";
  std::ofstream(spec) << R"({"metric": "loss", "num_samples": 1, "connect_timeout_s": 1,
      "trainer": {"command": ["/bin/sleep", "60"]}, "space": {"x": {"uniform": [0, 1]}}})";
  auto begin = std::chrono::steady_clock::now();
  RunOutput run = Run(spec.string(), "");
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_LT(seconds, 10);
  EXPECT_THAT(ReadFile(run.dir / "t_00001" / "error.txt"),
              HasSubstr("did not connect to the tuner within 1 s"));
}

// Starts `tune run` in the background on the curve example; returns its pid once all
// `trials` trials have written env.json.
pid_t StartInBackground(const std::string& tune_args, int trials, const fs::path& storage) {
  std::string command = fmt::format(
      "exec {}/tune run {}/examples/curve.json --storage {} --name exp --cpus {} --num-samples {} "
      "--max-concurrent {} scheduler=fifo trainer.record_env=true {} >{}/out.txt 2>{}/err.txt",
      TUNE_BIN_DIR, TUNE_SOURCE_DIR, storage.string(), trials, trials, trials, tune_args,
      storage.string(), storage.string());
  pid_t pid = fork();
  if (pid == 0) {
    execl("/bin/sh", "sh", "-c", command.c_str(), nullptr);
    _exit(127);
  }
  for (int i = 0; i < 100; ++i) {
    int started = 0;
    for (int t = 1; t <= trials; ++t) {
      started += fs::exists(storage / "exp" / fmt::format("t_{:05d}", t) / "env.json");
    }
    if (started == trials) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return pid;
}

// Waits for `pid`; returns its exit code and how long the wait took.
std::pair<int, double> WaitFor(pid_t pid) {
  auto begin = std::chrono::steady_clock::now();
  int status = 0;
  waitpid(pid, &status, 0);
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, seconds};
}

void ExpectNoTrialProcessLeft(const fs::path& dir) {
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (!entry.is_directory()) continue;
    Json env = Json::parse(ReadFile(entry.path() / "env.json"));
    pid_t trial_pid = env["pid"].get<pid_t>();
    EXPECT_NE(kill(trial_pid, 0), 0) << "trial process " << trial_pid << " still running";
  }
}

TEST_F(TuneRunTest, CtrlCStopsTrialsAndLeavesNoProcessBehind) {
  pid_t pid = StartInBackground("trainer.sleep_ms=2000", 4, storage_);
  kill(pid, SIGINT);
  auto [exit_code, seconds] = WaitFor(pid);
  EXPECT_EQ(exit_code, 130);
  EXPECT_LT(seconds, 5.0);
  ExpectNoTrialProcessLeft(storage_ / "exp");
  EXPECT_THAT(ReadFile(storage_ / "out.txt"), HasSubstr("STOPPED"));
}

TEST_F(TuneRunTest, SecondCtrlCKillsTrialsThatIgnoreTheFirst) {
  pid_t pid = StartInBackground("trainer.sleep_ms=2000 trainer.ignore_sigterm=true stop_grace_s=60",
                                2, storage_);
  kill(pid, SIGINT);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  int status = 0;
  EXPECT_EQ(waitpid(pid, &status, WNOHANG), 0) << "tune must wait for trials after one Ctrl-C";
  kill(pid, SIGINT);
  auto [exit_code, seconds] = WaitFor(pid);
  EXPECT_EQ(exit_code, 130);
  EXPECT_LT(seconds, 3.0);
  ExpectNoTrialProcessLeft(storage_ / "exp");
}

// Multi-process (DDP) trials, with tune-test-ddp-trial as every rank.

// Alive and not a zombie (a killed grandchild waits for init to reap it).
bool IsAlive(pid_t pid) {
  std::ifstream stat_file("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(stat_file)), std::istreambuf_iterator<char>());
  std::size_t paren = stat.rfind(')');
  return paren != std::string::npos && paren + 2 < stat.size() && stat[paren + 2] != 'Z';
}

class DdpTrialTest : public TuneRunTest {
 protected:
  fs::path WriteSpec(const std::string& resources, const std::string& trainer_extra = "") {
    fs::path spec = storage_ / "ddp.json";
    std::ofstream(spec) << fmt::format(
        R"({{"metric": "loss", "mode": "min", "num_samples": 1, "resources_per_trial": {},
            "trainer": {{"command": ["tune-test-ddp-trial"]{}}}, "space": {{"x": {{"uniform": [0, 1]}}}}}})",
        resources, trainer_extra);
    return spec;
  }
  // The launcher's last kill(-group, SIGKILL) reaches a rank's forked child (not the tuner's
  // child, so nobody waits for it) asynchronously: on a loaded machine it can still be dying when
  // `tune` has exited. Each process must be gone within 2 s; one that survives fails the test.
  static bool Dies(pid_t pid) {
    for (int i = 0; i < 200 && IsAlive(pid); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return !IsAlive(pid);
  }
  void ExpectNothingLeft(const fs::path& trial, int ranks) {
    for (int rank = 0; rank < ranks; ++rank) {
      Json record = Json::parse(ReadFile(trial / fmt::format("rank{}.json", rank)));
      EXPECT_TRUE(Dies(record["pid"].get<pid_t>())) << "rank " << rank << " still running";
      EXPECT_TRUE(Dies(record["child_pid"].get<pid_t>()))
          << "rank " << rank << "'s child still running";
    }
  }
};

TEST_F(DdpTrialTest, RanksGetTorchrunEnvironmentAndOnlyRankZeroReports) {
  RunOutput run = Run(WriteSpec(R"({"cpu": 2, "workers": 2})").string(), "--cpus 2");
  ASSERT_EQ(run.exit_code, 0) << run.out << run.err;
  fs::path trial = run.dir / "t_00001";
  auto results = ReadJsonLines(trial / "result.json");
  ASSERT_EQ(results.size(), 3u) << "one report per iter, from rank 0 only";
  for (const Json& result : results) EXPECT_EQ(result["rank"], 0);
  Json rank0 = Json::parse(ReadFile(trial / "rank0.json"));
  Json rank1 = Json::parse(ReadFile(trial / "rank1.json"));
  EXPECT_EQ(rank0["RANK"], "0");
  EXPECT_EQ(rank1["RANK"], "1");
  EXPECT_EQ(rank1["LOCAL_RANK"], "1");
  EXPECT_EQ(rank0["WORLD_SIZE"], "2");
  EXPECT_EQ(rank1["WORLD_SIZE"], "2");
  EXPECT_EQ(rank0["MASTER_ADDR"], "127.0.0.1");
  EXPECT_NE(rank0["MASTER_PORT"], "");
  EXPECT_EQ(rank0["MASTER_PORT"], rank1["MASTER_PORT"]);
  EXPECT_EQ(rank0["reporting"], true);
  EXPECT_EQ(rank1["reporting"], false);
  EXPECT_TRUE(fs::exists(trial / "stdout.log"));
  EXPECT_TRUE(fs::exists(trial / "stdout.rank1.log"));
  EXPECT_TRUE(fs::exists(trial / "stderr.rank1.log"));
  EXPECT_FALSE(fs::exists(trial / "error.txt"));
  ExpectNothingLeft(trial, 2);
}

TEST_F(DdpTrialTest, FailingRankEndsTheTrialAsErrorNamingItAndLeavesNoProcess) {
  RunOutput run = Run(WriteSpec(R"({"cpu": 3, "workers": 3})", R"(, "fail_rank": 1)").string(),
                      "--cpus 3 max_failures=0");
  EXPECT_EQ(run.exit_code, 1) << run.out << run.err;
  fs::path trial = run.dir / "t_00001";
  std::string error = ReadFile(trial / "error.txt");
  EXPECT_THAT(error, HasSubstr("Failure #1: rank 1: exit code 3"));
  EXPECT_THAT(error, HasSubstr("stderr.rank1.log"));
  EXPECT_THAT(error, HasSubstr("rank 1: simulated failure"));
  EXPECT_THAT(run.out, HasSubstr("ERROR"));
  ExpectNothingLeft(trial, 3);
}

// kill -9 cannot take a tuner's trials along: `tune resume` must find every rank of the trial
// (its process group, which the journal names) and kill it before running the trial again.
TEST_F(DdpTrialTest, ResumeKillsEveryRankAKilledTunerLeftBehind) {
  fs::path spec = WriteSpec(R"({"cpu": 2, "workers": 2})", R"(, "block": true)");
  fs::path trial = storage_ / "exp" / "t_00001";
  std::string command = fmt::format(
      "exec {}/tune run {} --storage {} --name exp --cpus 2 trial_timeout_s=1 max_failures=0 "
      ">{}/out.txt 2>{}/err.txt",
      TUNE_BIN_DIR, spec.string(), storage_.string(), storage_.string(), storage_.string());
  pid_t tune = fork();
  if (tune == 0) {
    execl("/bin/sh", "sh", "-c", command.c_str(), nullptr);
    _exit(127);
  }
  for (int i = 0;
       i < 200 && !(fs::exists(trial / "rank0.json") && fs::exists(trial / "rank1.json")); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  std::vector<pid_t> left;
  for (int rank = 0; rank < 2; ++rank) {
    Json record = Json::parse(ReadFile(trial / fmt::format("rank{}.json", rank)));
    left.push_back(record["pid"].get<pid_t>());
    left.push_back(record["child_pid"].get<pid_t>());
  }
  kill(tune, SIGKILL);
  waitpid(tune, nullptr, 0);
  for (pid_t pid : left) ASSERT_TRUE(IsAlive(pid)) << "the killed tuner left its trial running";
  // Rank 0, whose pid the journal records, dies meanwhile: the other ranks must still be found.
  kill(left[0], SIGKILL);
  for (int i = 0; i < 200 && IsAlive(left[0]); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  fs::remove(trial / "rank0.json");
  fs::remove(trial / "rank1.json");

  int status = std::system(fmt::format("{}/tune resume {} --cpus 2 >{}/resume.out 2>{}/resume.err",
                                       TUNE_BIN_DIR, (storage_ / "exp").string(), storage_.string(),
                                       storage_.string())
                               .c_str());
  EXPECT_EQ(WIFEXITED(status) ? WEXITSTATUS(status) : -1, 1) << "the relaunched trial times out";
  for (pid_t pid : left) EXPECT_FALSE(IsAlive(pid)) << "pid " << pid << " of the first attempt";
  ExpectNothingLeft(trial, 2);  // the relaunched attempt too
}

TEST_F(DdpTrialTest, EachRankGetsOneWholeGpuOfTheTrial) {
  RunOutput run = Run(WriteSpec(R"({"cpu": 1, "gpu": 2})").string(), "--gpus 4 --cpus 2",
                      "CUDA_VISIBLE_DEVICES=0,1,2,3");
  ASSERT_EQ(run.exit_code, 0) << run.out << run.err;
  fs::path trial = run.dir / "t_00001";
  Json rank0 = Json::parse(ReadFile(trial / "rank0.json"));
  Json rank1 = Json::parse(ReadFile(trial / "rank1.json"));
  EXPECT_EQ(rank0["WORLD_SIZE"], "2") << "gpu 2 means two workers by default";
  EXPECT_EQ(rank0["CUDA_VISIBLE_DEVICES"], "0");
  EXPECT_EQ(rank1["CUDA_VISIBLE_DEVICES"], "1");
}

TEST_F(DdpTrialTest, EachRankOfAModelParallelTrialGetsItsRunOfGpus) {
  // gpu 4 over 2 workers: each rank holds a model split over two GPUs (model_parallel 2), and
  // the trial's allocation is --gpus' 1,3,5,7 (not 0..3) so the runs are the allocation's own.
  RunOutput run = Run(WriteSpec(R"({"cpu": 1, "gpu": 4, "workers": 2})").string(), "--gpus 4 --cpus 2",
                      "CUDA_VISIBLE_DEVICES=1,3,5,7");
  ASSERT_EQ(run.exit_code, 0) << run.out << run.err;
  fs::path trial = run.dir / "t_00001";
  Json rank0 = Json::parse(ReadFile(trial / "rank0.json"));
  Json rank1 = Json::parse(ReadFile(trial / "rank1.json"));
  EXPECT_EQ(rank0["WORLD_SIZE"], "2");
  EXPECT_EQ(rank0["CUDA_VISIBLE_DEVICES"], "1,3");
  EXPECT_EQ(rank1["CUDA_VISIBLE_DEVICES"], "5,7");
}

TEST_F(DdpTrialTest, FractionalGpuWithSeveralWorkersIsASpecError) {
  RunOutput run =
      Run(WriteSpec(R"({"gpu": 0.5, "workers": 2})").string(), "--gpus 1", "CUDA_VISIBLE_DEVICES=0");
  EXPECT_NE(run.exit_code, 0);
  EXPECT_THAT(run.err,
              HasSubstr("resources_per_trial: 2 workers cannot share a fraction of a GPU"));
}

}  // namespace
}  // namespace tune
