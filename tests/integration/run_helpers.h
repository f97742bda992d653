// What the integration tests share: a temporary storage directory per test, running the built
// `tune` on a spec (a file, or a Json written to one), and reading back the files an experiment
// leaves: journal.jsonl, each trial's result.json.
//
// Example:
//   class MyTest : public tune::integration::StorageTest {};
//   TEST_F(MyTest, Runs) {
//     Json spec = CurveSpec(/*num_samples=*/4, /*max_epochs=*/5);
//     RunOutput run = RunSpec(spec, "exp");
//     ASSERT_EQ(run.exit_code, 0) << run.err;
//     for (const Json& event : Events(run.dir, "trial_ended")) ...
//   }
#pragma once

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "core/types.h"
#include "tuner/journal.h"

namespace tune::integration {

namespace fs = std::filesystem;

inline std::string ReadFile(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

inline std::vector<Json> ReadJsonLines(const fs::path& path) {
  std::vector<Json> lines;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) lines.push_back(Json::parse(line));
  return lines;
}

// Runs `command` with /bin/sh; its exit code, or -1 when the shell died by a signal.
inline int Shell(const std::string& command) {
  int status = std::system(command.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// Starts `command` with /bin/sh in the background, exec'd through env (the pid is the command's
// own, and a command may start with VAR=value assignments, which `exec` alone would take for the
// program's name).
inline pid_t SpawnShell(const std::string& command) {
  pid_t pid = fork();
  if (pid == 0) {
    execl("/bin/sh", "sh", "-c", ("exec env " + command).c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  return pid;
}

// Waits for a child: its exit code, or -1 when it died by a signal. With `max_rss_kib`, also the
// peak resident memory of the child and of the descendants it waited for (wait4's ru_maxrss).
inline int WaitExit(pid_t pid, long* max_rss_kib = nullptr) {
  int status = 0;
  rusage usage{};
  while (wait4(pid, &status, 0, &usage) < 0 && errno == EINTR) {
  }
  if (max_rss_kib) *max_rss_kib = usage.ru_maxrss;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// True when `pid` runs no more: gone, or a zombie nobody reaped yet.
inline bool ProcessGone(pid_t pid) {
  const std::string stat = ReadFile(fmt::format("/proc/{}/stat", pid));
  if (stat.empty()) return true;
  const std::size_t paren = stat.rfind(')');
  return paren != std::string::npos && stat.compare(paren + 2, 1, "Z") == 0;
}

// The trial directories of an experiment, sorted by name (t_00001, t_00002, ...).
inline std::vector<fs::path> TrialDirs(const fs::path& experiment) {
  std::vector<fs::path> dirs;
  for (const auto& entry : fs::directory_iterator(experiment)) {
    if (entry.is_directory()) dirs.push_back(entry.path());
  }
  std::sort(dirs.begin(), dirs.end());
  return dirs;
}

// The events of an experiment's journal, in order; with `kind`, only those of that type.
inline std::vector<Json> Events(const fs::path& experiment, const std::string& kind = "") {
  std::vector<Json> events = ReadJournal(experiment / "journal.jsonl").events;
  if (!kind.empty()) {
    events.erase(std::remove_if(events.begin(), events.end(),
                                [&](const Json& event) { return event["event"] != kind; }),
                 events.end());
  }
  return events;
}

// trial id -> the status of its trial_ended event, or "ERROR" for a trial_failed that was not
// retried; each trial must end once.
inline std::map<std::string, std::string> FinalStatuses(const fs::path& experiment) {
  std::map<std::string, std::string> statuses;
  for (const Json& event : Events(experiment)) {
    std::string status;
    if (event["event"] == "trial_ended") status = event["status"];
    if (event["event"] == "trial_failed" && !event["retry"].get<bool>()) status = "ERROR";
    if (event["event"] == "trial_requeued") statuses.erase(event["trial_id"].get<std::string>());
    if (status.empty()) continue;
    auto [it, inserted] = statuses.emplace(event["trial_id"], status);
    EXPECT_TRUE(inserted) << event["trial_id"] << " ended twice, now " << event.dump();
  }
  return statuses;
}

// Checks what every experiment's result files must satisfy, however its trials were paused,
// relaunched, cloned or resumed: each trial's result.json holds its journal's reports, each
// once, in order; training_iteration counts 1, 2, 3, ..., except that a PBT clone whose
// trial_exploited names the `iteration` of the checkpoint it cloned goes on from there.
inline void ExpectEachResultOnce(const fs::path& experiment) {
  std::map<std::string, std::vector<Json>> reported;
  std::map<std::string, std::int64_t> next_iteration;
  for (const Json& event : Events(experiment)) {
    const std::string kind = event["event"];
    if (kind == "trial_exploited" && event.contains("iteration") &&
        event["iteration"].is_number_integer()) {
      next_iteration[event["trial_id"]] = event["iteration"].get<std::int64_t>() + 1;
    }
    if (kind != "report") continue;
    const std::string id = event["trial_id"];
    const std::int64_t iteration = event["result"]["training_iteration"];
    if (next_iteration.count(id) == 0) next_iteration[id] = 1;
    EXPECT_EQ(iteration, next_iteration[id]) << id << ": " << event.dump();
    next_iteration[id] = iteration + 1;
    reported[id].push_back(event["result"]);
  }
  for (const fs::path& dir : TrialDirs(experiment)) {
    const std::string id = dir.filename();
    std::vector<Json> results = ReadJsonLines(dir / "result.json");
    const std::vector<Json>& journal = reported[id];
    ASSERT_EQ(results.size(), journal.size()) << id << ": result.json vs the journal";
    for (std::size_t i = 0; i < results.size(); ++i) {
      EXPECT_EQ(results[i]["training_iteration"], journal[i]["training_iteration"]) << id;
      EXPECT_EQ(results[i]["loss"], journal[i]["metrics"]["loss"]) << id << " result " << i + 1;
    }
  }
}

// trial id -> the (epoch, loss) of each line of its result.json, in order.
using Curves = std::map<std::string, std::vector<std::pair<int, double>>>;

inline Curves ReadCurves(const fs::path& experiment) {
  Curves curves;
  for (const fs::path& dir : TrialDirs(experiment)) {
    auto& curve = curves[dir.filename()];
    for (const Json& result : ReadJsonLines(dir / "result.json")) {
      curve.emplace_back(result["epoch"].get<int>(), result["loss"].get<double>());
    }
  }
  return curves;
}

// The epoch a tune-example-curve checkpoint holds (its state.json); -1, failing the test, when
// the checkpoint is gone.
inline int CheckpointEpoch(const std::string& checkpoint) {
  const fs::path state = fs::path(checkpoint) / "state.json";
  if (!fs::exists(state)) {
    ADD_FAILURE() << "checkpoint " << checkpoint << " is gone (no state.json)";
    return -1;
  }
  return Json::parse(ReadFile(state)).at("epoch").get<int>();
}

// Checks, for tune-example-curve trials, that pausing, relaunching, cloning and resuming lost and
// repeated no epoch: each attempt starts from the trial's latest checkpoint (the one it last
// reported or acknowledged, or PBT's copy of another trial's), and its first report is the epoch
// after that checkpoint's (epoch 1 without one), each later report the epoch after the previous.
inline void ExpectEpochsContinue(const fs::path& experiment) {
  std::map<std::string, int> next_epoch;
  std::map<std::string, std::string> checkpoint;  // the trial's latest, "" for none
  for (const Json& event : Events(experiment)) {
    const std::string kind = event["event"];
    if (!event.contains("trial_id")) continue;
    const std::string id = event["trial_id"];
    const bool has_checkpoint = event.contains("checkpoint") && event["checkpoint"].is_string();
    if (kind == "trial_started") {
      EXPECT_EQ(has_checkpoint ? event["checkpoint"].get<std::string>() : "", checkpoint[id])
          << "attempt of " << id << " starts from another checkpoint than its latest";
      next_epoch[id] = has_checkpoint ? CheckpointEpoch(event["checkpoint"]) + 1 : 1;
    } else if (kind == "report") {
      const int epoch = event["result"]["metrics"]["epoch"];
      EXPECT_EQ(epoch, next_epoch[id]) << id << ": " << event.dump();
      next_epoch[id] = epoch + 1;
      if (has_checkpoint) checkpoint[id] = event["checkpoint"];
    } else if (kind == "trial_paused" && has_checkpoint) {
      EXPECT_EQ(event["checkpoint"], checkpoint[id]) << id << " acknowledged an older checkpoint";
    } else if (kind == "trial_exploited") {
      // Without a checkpoint of the source's, it starts again from scratch with the new params.
      checkpoint[id] = has_checkpoint ? event["checkpoint"].get<std::string>() : "";
    }
  }
}

// PBT: each trial's lineage.jsonl has one line per trial_exploited event of the journal, in
// order, naming its source, new params and checkpoint copy; each copy exists. Returns the
// trial_exploited events by trial.
inline std::map<std::string, std::vector<Json>> ExpectLineageOfEachExploit(
    const fs::path& experiment) {
  std::map<std::string, std::vector<Json>> exploits;
  for (const Json& event : Events(experiment, "trial_exploited")) {
    exploits[event["trial_id"]].push_back(event);
    if (event["checkpoint"].is_string()) {
      EXPECT_TRUE(fs::exists(fs::path(event["checkpoint"].get<std::string>()) / "state.json"))
          << event.dump();
    }
  }
  for (const fs::path& dir : TrialDirs(experiment)) {
    auto found = exploits.find(dir.filename());
    const std::vector<Json> exploited = found == exploits.end() ? std::vector<Json>{} : found->second;
    const std::vector<Json> lineage =
        fs::exists(dir / "lineage.jsonl") ? ReadJsonLines(dir / "lineage.jsonl") : std::vector<Json>{};
    EXPECT_EQ(lineage.size(), exploited.size()) << dir << ": lineage.jsonl vs the journal";
    for (std::size_t i = 0; i < std::min(lineage.size(), exploited.size()); ++i) {
      EXPECT_EQ(lineage[i]["source"], exploited[i]["source"]) << dir;
      EXPECT_EQ(lineage[i]["new_params"], exploited[i]["params"]) << dir;
      EXPECT_EQ(lineage[i]["checkpoint"], exploited[i]["checkpoint"]) << dir;
    }
  }
  return exploits;
}

// A spec of tune-example-curve trials (examples/curve_trial.cc), minimising loss, random search
// with seed 0, no sleep; tests add a scheduler, stop, ...
inline Json CurveSpec(int num_samples, int max_epochs) {
  return Json{{"metric", "loss"},
              {"mode", "min"},
              {"num_samples", num_samples},
              {"search", {{"algorithm", "random"}, {"seed", 0}}},
              {"trainer",
               {{"command", {"tune-example-curve"}}, {"max_epochs", max_epochs}, {"sleep_ms", 0}}},
              {"space",
               {{"x1", {{"uniform", {-5, 10}}}},
                {"x2", {{"uniform", {0, 15}}}},
                {"lr", {{"loguniform", {0.01, 1.0}}}}}}};
}

// Curve trials of 1 to 4 epochs, minimising loss and maximising epochs: the lowest loss came
// from a short trial here, so the front trades loss against epochs (3 trials with seed 0). One
// trial at a time: the same trials, in the same order, each run.
inline Json TwoObjectiveSpec() {
  Json spec = CurveSpec(/*num_samples=*/8, /*max_epochs=*/4);
  spec["metric"] = {"loss", "epoch"};
  spec["mode"] = {"min", "max"};
  spec["max_concurrent"] = 1;
  spec["trainer"]["noise"] = 0;
  spec["space"]["max_epochs"] = {{"randint", {1, 5}}};
  return spec;
}

// HyperBand with max_t 9 and eta 3 over curve trials of 9 epochs, every trial running at once:
// brackets of 3 (milestone 9), 5 (3) and 9 (1) trials fill in that order, each full before its
// first result, so its rungs cut by the (seeded, deterministic) losses alone.
inline Json HyperBandCurveSpec(int num_samples) {
  Json spec = CurveSpec(num_samples, /*max_epochs=*/9);
  spec["max_concurrent"] = num_samples;
  spec["scheduler"] = {{"type", "hyperband"}, {"max_t", 9}, {"reduction_factor", 3}};
  return spec;
}

// The median stopping rule without hard_stop over 6 curve trials of 5 epochs, one at a time: each
// is judged at every epoch against the trials before it, a worse one is paused, and the paused
// ones run to the end once no new trial is left. One trial at a time makes it deterministic.
inline Json MedianCurveSpec() {
  Json spec = CurveSpec(/*num_samples=*/6, /*max_epochs=*/5);
  spec["max_concurrent"] = 1;
  spec["scheduler"] = {{"type", "median"},       {"time_attr", "training_iteration"},
                       {"grace_period", 1},      {"min_samples_required", 1},
                       {"hard_stop", false}};
  return spec;
}

// PBT over 4 curve trials of 8 epochs, all running at once (so none waits, and every pause is
// an exploit): every 2 iterations the worse half clones the better half, mutating lr and x1.
// Epochs of 30 ms keep the trials side by side, so they are ranked together.
inline Json PbtCurveSpec() {
  Json spec = CurveSpec(/*num_samples=*/4, /*max_epochs=*/8);
  spec["max_concurrent"] = 4;
  spec["trainer"]["sleep_ms"] = 30;
  spec["scheduler"] = {{"type", "pbt"},
                       {"time_attr", "training_iteration"},
                       {"perturbation_interval", 2},
                       {"quantile_fraction", 0.5},
                       {"seed", 1},
                       {"hyperparam_mutations",
                        {{"lr", {{"loguniform", {0.01, 0.5}}}}, {"x1", {{"uniform", {-5, 10}}}}}}};
  return spec;
}

// The build of `tune` that honours the crash tests' TUNE_FAULT_EXIT_AFTER_EVENTS=N (it dies
// right after writing journal event N); the shipped `tune` honours no test hook.
inline constexpr const char* kFaultInjectingTune = "tune-test-hooks";

struct RunOutput {
  int exit_code = -1;
  std::string out;
  std::string err;
  fs::path dir;  // the experiment directory
  long max_rss_kib = 0;  // peak resident memory of tune (and of its trials), KiB
};

// A fresh directory under /tmp per test (kept when the test fails, for a look).
class StorageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    storage_ = fs::temp_directory_path() /
               fmt::format("tune_it_{}_{}", getpid(),
                           ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(storage_);
    fs::create_directories(storage_);
  }
  void TearDown() override {
    if (!HasFailure()) fs::remove_all(storage_);
  }

  // Runs `<env> <program> run <spec> --storage <storage> --name <name> <args>` and waits for it
  // (`env` is what env(1) takes before the program: VAR=value assignments, -C DIR);
  // its output goes to <storage>/<name>.out and .err. `program` is `tune` or another build of it
  // beside it (kFaultInjectingTune).
  RunOutput RunPath(const std::string& spec, const std::string& name, const std::string& args,
                    const std::string& env = "", const std::string& program = "tune") {
    return Tune(fmt::format("{} {}/{} run {} --storage {} --name {} {}", env, TUNE_BIN_DIR,
                            program, spec, storage_.string(), name, args),
                name, name);
  }
  // The same for a spec given as Json, written to <storage>/<name>.json.
  RunOutput RunSpec(const Json& spec, const std::string& name, const std::string& args = "",
                    const std::string& env = "", const std::string& program = "tune") {
    const fs::path path = storage_ / (name + ".json");
    std::ofstream(path) << spec.dump(2);
    return RunPath(path.string(), name, args, env, program);
  }
  // `tune resume <storage>/<name> <args>`; output to <storage>/<name>.<label>.out and .err.
  RunOutput Resume(const std::string& name, const std::string& args = "",
                   const std::string& label = "resume") {
    return Tune(fmt::format("{}/tune resume {} {}", TUNE_BIN_DIR, (storage_ / name).string(), args),
                name, name + "." + label);
  }

  fs::path storage_;

 private:
  RunOutput Tune(const std::string& command, const std::string& name, const std::string& logs) {
    RunOutput output;
    output.dir = storage_ / name;
    const fs::path out = storage_ / (logs + ".out"), err = storage_ / (logs + ".err");
    output.exit_code = WaitExit(
        SpawnShell(fmt::format("{} >{} 2>{}", command, out.string(), err.string())),
        &output.max_rss_kib);
    output.out = ReadFile(out);
    output.err = ReadFile(err);
    return output;
  }
};

}  // namespace tune::integration
