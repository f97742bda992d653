// The experiment trackers' reporter (reporters/tracker.h) as "wandb", with its real helper
// (reporters/tracker_helper.py + wandb_logger.py, run by python3) and a fake `wandb` package first
// on PYTHONPATH that records every call it gets: what tune asks of W&B for each trial event, and
// that nothing the tracker does (an import error, no API key, a failing run, a hang, a crash)
// stops or slows the experiment. The same C++ and helper loop serve "mlflow";
// tests/reporters/{wandb,mlflow}_reader_test.py run real experiments through the real libraries.
#include "reporters/tracker.h"

#include <cmath>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/options.h"
#include "reporters/registry.h"
#include "tests/scratch_dir.h"

namespace tune {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

// Records each call as a JSON line in $FAKE_WANDB_LOG (non-finite floats as "nan", "inf",
// "-inf"); $FAKE_WANDB_* choose failures.
constexpr const char* kFakeWandb = R"PY(
import json, math, os, sys, time
__version__ = os.environ.get("FAKE_WANDB_VERSION", "0.31.0")

def _plain(value):
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value

def _record(**event):
    with open(os.environ["FAKE_WANDB_LOG"], "a") as out:
        out.write(json.dumps(_plain(event)) + "\n")

class Settings:
    def __init__(self, **options):
        self.options = options
        self.mode = os.environ.get("WANDB_MODE", "online")

class _Setup:
    settings = Settings()

def setup():
    return _Setup()

def login(prompt=True, verify=True):
    return bool(os.environ.get("WANDB_API_KEY"))

class _Config:
    def __init__(self, run):
        self.run = run
    def update(self, values, allow_val_change=False):
        _record(call="config_update", run=self.run, config=values, allow_val_change=allow_val_change)

class _Summary:
    def __init__(self, run):
        self.run = run
    def __setitem__(self, key, value):
        _record(call="summary", run=self.run, key=key, value=value)

class Run:
    def __init__(self, options):
        self.id = options["id"]
        self.config = _Config(self.id)
        self.summary = _Summary(self.id)
    def define_metric(self, name, step_metric=None):
        _record(call="define_metric", run=self.id, name=name, step_metric=step_metric)
    def log(self, data):
        if os.environ.get("FAKE_WANDB_ON_LOG") == "hang":
            time.sleep(3600)
        if os.environ.get("FAKE_WANDB_ON_LOG") == "exit":
            _record(call="exiting")
            os._exit(3)
        _record(call="log", run=self.id, data=data)
    def finish(self, exit_code=0):
        if os.environ.get("FAKE_WANDB_ON_FINISH") == "exit":
            os._exit(3)
        _record(call="finish", run=self.id, exit_code=exit_code)

def init(**options):
    if options["name"] == os.environ.get("FAKE_WANDB_FAIL_INIT"):
        raise RuntimeError("the fake refuses " + options["name"])
    settings = options.pop("settings").options
    _record(call="init", options=options, settings=settings)
    return Run(options)
)PY";

// Sets environment variables for the scope of a test, and restores them.
class Env {
 public:
  void Set(const char* name, const std::string& value) {
    Save(name);
    ::setenv(name, value.c_str(), 1);
  }
  void Unset(const char* name) {
    Save(name);
    ::unsetenv(name);
  }
  ~Env() {
    for (auto it = saved_.rbegin(); it != saved_.rend(); ++it) {
      if (it->second) {
        ::setenv(it->first.c_str(), it->second->c_str(), 1);
      } else {
        ::unsetenv(it->first.c_str());
      }
    }
  }

 private:
  void Save(const char* name) {
    const char* value = std::getenv(name);
    saved_.emplace_back(name, value ? std::optional<std::string>(value) : std::nullopt);
  }
  std::vector<std::pair<std::string, std::optional<std::string>>> saved_;
};

class WandbTrackerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    scratch_.Write("fake/wandb/__init__.py", kFakeWandb);
    env_.Set("PYTHONPATH", (scratch_.path() / "fake").string());
    env_.Set("FAKE_WANDB_LOG", log_.string());
    env_.Set("WANDB_MODE", "offline");
    env_.Unset("WANDB_API_KEY");
    for (const char* name : {"FAKE_WANDB_ON_LOG", "FAKE_WANDB_ON_FINISH", "FAKE_WANDB_FAIL_INIT",
                             "FAKE_WANDB_VERSION"}) {
      env_.Unset(name);
    }
    fs::create_directories(experiment_);
    view_.name = "exp";
    view_.experiment_dir = experiment_.string();
  }

  // The reporter as a spec's "callbacks" item makes it.
  std::shared_ptr<Callback> Make(Json item) {
    item["type"] = "wandb";
    CallbackContext context;
    context.time_attr = "epoch";
    return MakeCallback(Callbacks().Parse(item, "callbacks[1]", context));
  }

  std::vector<Json> Calls() const {
    std::vector<Json> calls;
    std::ifstream in(log_);
    for (std::string line; std::getline(in, line);) calls.push_back(Json::parse(line));
    return calls;
  }
  std::vector<Json> CallsOf(const std::string& call) const {
    std::vector<Json> out;
    for (const Json& each : Calls()) {
      if (each["call"] == call) out.push_back(each);
    }
    return out;
  }

  Trial MakeTrial(const std::string& id, double lr) {
    Trial trial;
    trial.id = id;
    trial.params = {{"lr", lr}};
    trial.trainer = std::make_shared<const Json>(Json{{"max_epochs", 3}});
    trial.status = TrialStatus::kRunning;
    return trial;
  }

  Result MakeResult(std::int64_t epoch, double loss) {
    Result result;
    result.training_iteration = epoch;
    result.time_total_s = 0.5 * static_cast<double>(epoch);
    result.metrics = {{"epoch", epoch}, {"loss", loss}, {"nested", {{"acc", 0.5}}},
                      {"label", "text"}, {"flag", true}};
    return result;
  }

  std::string Key() const {
    std::ifstream in(experiment_ / "wandb" / "tune-key");
    std::string key;
    in >> key;
    return key;
  }

  testing::ScratchDir scratch_;
  fs::path log_ = scratch_.path() / "calls.jsonl";
  fs::path experiment_ = scratch_.path() / "exp";
  ExperimentView view_;
  Env env_;
};

TEST_F(WandbTrackerTest, EachTrialIsARunWithItsConfigHistoryAndStatus) {
  auto wandb = Make({{"project", "proj"}, {"tags", {"a", "b"}}, {"excludes", {"time_total_s"}}});
  wandb->OnExperimentStart(view_);
  Trial done = MakeTrial("t_00001", 0.1), failed = MakeTrial("t_00002", 0.2);
  wandb->OnTrialStart(done);
  wandb->OnTrialStart(failed);
  wandb->OnTrialResult(done, MakeResult(1, 2.5));
  Result second = MakeResult(2, std::nan(""));
  second.timestamp = 1796099356.5;
  wandb->OnTrialResult(done, second);
  wandb->OnTrialResult(failed, MakeResult(1, -INFINITY));
  done.status = TrialStatus::kTerminated;
  wandb->OnTrialEnd(done);
  failed.status = TrialStatus::kError;
  failed.error = "exit code 1";
  wandb->OnTrialEnd(failed);
  wandb->OnExperimentEnd(view_);

  const std::string key = Key();
  ASSERT_EQ(key.size(), 8u);
  const std::vector<Json> inits = CallsOf("init");
  ASSERT_EQ(inits.size(), 2u);
  const Json& init = inits[0]["options"];
  EXPECT_EQ(init["id"], key + "-t_00001");
  EXPECT_EQ(init["name"], "t_00001");
  EXPECT_EQ(init["group"], "exp");  // the experiment's name
  EXPECT_EQ(init["project"], "proj");
  EXPECT_EQ(init["tags"], Json({"a", "b"}));
  EXPECT_EQ(init["mode"], "offline");  // WANDB_MODE, as wandb reads it
  EXPECT_EQ(init["resume"], "allow");
  EXPECT_EQ(init["reinit"], "create_new");
  EXPECT_EQ(init["dir"], fs::absolute(experiment_).string());
  EXPECT_EQ(init["config"], Json({{"lr", 0.1}, {"max_epochs", 3}}));
  EXPECT_EQ(inits[1]["options"]["id"], key + "-t_00002");
  EXPECT_EQ(inits[0]["settings"]["console"], "off");

  // The scheduler's time_attr is every chart's x axis.
  const std::vector<Json> metrics = CallsOf("define_metric");
  ASSERT_EQ(metrics.size(), 4u);
  EXPECT_EQ(metrics[0]["name"], "epoch");
  EXPECT_EQ(metrics[1]["name"], "*");
  EXPECT_EQ(metrics[1]["step_metric"], "epoch");

  const std::vector<Json> logs = CallsOf("log");
  ASSERT_EQ(logs.size(), 3u);
  // Numbers only (not the string, not the boolean), nested as "a/b", the tuner's
  // training_iteration; time_total_s excluded by the options.
  EXPECT_EQ(logs[0]["run"], key + "-t_00001");
  EXPECT_EQ(logs[0]["data"], Json({{"epoch", 1}, {"loss", 2.5}, {"nested/acc", 0.5},
                                   {"training_iteration", 1}}));
  EXPECT_EQ(logs[1]["data"]["loss"], "nan");  // NaN reaches wandb as a float NaN
  EXPECT_EQ(logs[1]["data"]["_timestamp"], 1796099356.5);  // when the trial reported it
  EXPECT_EQ(logs[2]["run"], key + "-t_00002");
  EXPECT_EQ(logs[2]["data"]["loss"], "-inf");

  const std::vector<Json> finishes = CallsOf("finish");
  ASSERT_EQ(finishes.size(), 2u);
  EXPECT_EQ(finishes[0]["run"], key + "-t_00001");
  EXPECT_EQ(finishes[0]["exit_code"], 0);
  EXPECT_EQ(finishes[1]["run"], key + "-t_00002");
  EXPECT_EQ(finishes[1]["exit_code"], 1);
  std::vector<std::pair<std::string, Json>> summaries;
  for (const Json& call : CallsOf("summary")) summaries.emplace_back(call["key"], call["value"]);
  EXPECT_THAT(summaries, ::testing::ElementsAre(std::pair<std::string, Json>("status", "TERMINATED"),
                                                std::pair<std::string, Json>("status", "ERROR"),
                                                std::pair<std::string, Json>("error", "exit code 1")));
}

TEST_F(WandbTrackerTest, PausedRunsStayOpenAndAnInterruptedExperimentResumesTheSameRuns) {
  {
    auto wandb = Make(Json::object());
    wandb->OnExperimentStart(view_);
    Trial paused = MakeTrial("t_00001", 0.1), interrupted = MakeTrial("t_00002", 0.2);
    wandb->OnTrialStart(paused);
    wandb->OnTrialStart(interrupted);
    paused.status = TrialStatus::kPaused;
    wandb->OnTrialPause(paused);
    // PBT: the paused trial comes back with new values; its run stays the same one.
    paused.params = {{"lr", 0.05}};
    paused.status = TrialStatus::kRunning;
    wandb->OnTrialStart(paused);
    // Ctrl-C: the attempt ends STOPPED "interrupted", which resume runs again.
    interrupted.status = TrialStatus::kStopped;
    interrupted.error = "interrupted";
    wandb->OnTrialEnd(interrupted);
    wandb->OnExperimentEnd(view_);
  }
  const std::string key = Key();
  EXPECT_EQ(CallsOf("init").size(), 2u);
  const std::vector<Json> updates = CallsOf("config_update");
  ASSERT_EQ(updates.size(), 1u);
  EXPECT_EQ(updates[0]["run"], key + "-t_00001");
  EXPECT_EQ(updates[0]["config"]["lr"], 0.05);
  EXPECT_TRUE(updates[0]["allow_val_change"]);
  // Both runs were still open at the end: finished as interrupted (255).
  const std::vector<Json> finishes = CallsOf("finish");
  ASSERT_EQ(finishes.size(), 2u);
  for (const Json& finish : finishes) EXPECT_EQ(finish["exit_code"], 255);
  std::vector<Json> statuses;
  for (const Json& call : CallsOf("summary")) statuses.push_back(call["value"]);
  EXPECT_EQ(statuses, std::vector<Json>({"PAUSED", "INTERRUPTED", "INTERRUPTED"}));

  // `tune resume`: the same key, so the same run ids.
  fs::remove(log_);
  auto resumed = Make(Json::object());
  resumed->OnExperimentStart(view_);
  Trial again = MakeTrial("t_00002", 0.2);
  resumed->OnTrialStart(again);
  resumed->OnExperimentEnd(view_);
  const std::vector<Json> inits = CallsOf("init");
  ASSERT_EQ(inits.size(), 1u);
  EXPECT_EQ(inits[0]["options"]["id"], key + "-t_00002");
}

TEST_F(WandbTrackerTest, AHelperThatCannotStartIsASpecErrorNamingTheCallback) {
  try {
    Make({{"python", "/nonexistent/python3"}});
    FAIL() << "expected a SpecError";
  } catch (const SpecError& error) {
    EXPECT_THAT(error.what(), ::testing::StartsWith(
                                  "callbacks[1].python: cannot run \"/nonexistent/python3\""));
  }
  env_.Set("PYTHONPATH", (scratch_.path() / "empty").string());  // no wandb at all
  env_.Set("PYTHONNOUSERSITE", "1");
  try {
    Make({{"python", "/usr/bin/python3"}, {"mode", "offline"}});
    FAIL() << "expected a SpecError";
  } catch (const SpecError& error) {
    EXPECT_THAT(error.what(), ::testing::StartsWith("callbacks[1]: wandb: /usr/bin/python3"));
    EXPECT_THAT(error.what(), HasSubstr("cannot import wandb"));
    EXPECT_THAT(error.what(), HasSubstr("pip install wandb"));
  }
  env_.Set("PYTHONPATH", (scratch_.path() / "fake").string());
  env_.Set("FAKE_WANDB_VERSION", "0.16.6");
  try {
    Make(Json::object());
    FAIL() << "expected a SpecError";
  } catch (const SpecError& error) {
    EXPECT_THAT(error.what(), HasSubstr("wandb 0.16.6 is too old"));
  }
  env_.Unset("FAKE_WANDB_VERSION");
  env_.Unset("WANDB_MODE");  // online, and no API key
  try {
    Make(Json::object());
    FAIL() << "expected a SpecError";
  } catch (const SpecError& error) {
    EXPECT_THAT(error.what(), HasSubstr("no W&B API key"));
    EXPECT_THAT(error.what(), HasSubstr("\"mode\": \"offline\""));
  }
  env_.Set("WANDB_API_KEY", std::string(40, 'x'));
  EXPECT_NO_THROW(Make(Json::object()));
  env_.Unset("WANDB_API_KEY");
  EXPECT_NO_THROW(Make({{"mode", "offline"}}));  // the option over WANDB_MODE
}

TEST_F(WandbTrackerTest, OneTrialsFailureIsReportedAndTheOthersGoOn) {
  env_.Set("FAKE_WANDB_FAIL_INIT", "t_00001");
  auto wandb = Make(Json::object());
  wandb->OnExperimentStart(view_);
  Trial refused = MakeTrial("t_00001", 0.1), fine = MakeTrial("t_00002", 0.2);
  ::testing::internal::CaptureStderr();
  wandb->OnTrialStart(refused);
  wandb->OnTrialStart(fine);
  wandb->OnTrialResult(refused, MakeResult(1, 1.0));
  wandb->OnTrialResult(fine, MakeResult(1, 2.0));
  wandb->OnTrialStart(refused);  // a retry: the same error again
  fine.status = TrialStatus::kTerminated;
  wandb->OnTrialEnd(fine);
  wandb->OnExperimentEnd(view_);
  const std::string printed = ::testing::internal::GetCapturedStderr();
  const std::string error = "[tune] wandb: trial t_00001: RuntimeError: the fake refuses t_00001";
  EXPECT_THAT(printed, HasSubstr(error));
  EXPECT_EQ(printed.find(error), printed.rfind(error)) << "said once: " << printed;
  EXPECT_THAT(printed, HasSubstr("[tune] wandb: 1 more errors, repeats of those above"));
  const std::vector<Json> logs = CallsOf("log");
  ASSERT_EQ(logs.size(), 1u);
  EXPECT_EQ(logs[0]["data"]["loss"], 2.0);
  EXPECT_EQ(CallsOf("finish").size(), 1u);
}

TEST_F(WandbTrackerTest, AHangingOrDeadHelperNeverBlocksTheTuner) {
  using Clock = std::chrono::steady_clock;
  {
    env_.Set("FAKE_WANDB_ON_LOG", "hang");
    auto wandb = Make({{"finish_timeout_s", 1}});
    wandb->OnExperimentStart(view_);
    Trial trial = MakeTrial("t_00001", 0.1);
    trial.trainer = std::make_shared<const Json>(Json{{"blob", std::string(100000, 'x')}});
    const Clock::time_point start = Clock::now();
    // ~3 MB of starts and reports: more than a pipe holds, to a helper stuck in its first log.
    for (int i = 0; i < 30; ++i) {
      wandb->OnTrialStart(trial);
      wandb->OnTrialResult(trial, MakeResult(i + 1, 1.0));
      wandb->OnTick(view_);
    }
    EXPECT_LT(Clock::now() - start, std::chrono::seconds(1));
    ::testing::internal::CaptureStderr();
    const Clock::time_point end = Clock::now();
    wandb->OnExperimentEnd(view_);
    EXPECT_LT(Clock::now() - end, std::chrono::seconds(5));  // finish_timeout_s 1, then killed
    EXPECT_THAT(::testing::internal::GetCapturedStderr(),
                HasSubstr("did not finish the runs within 1 s (finish_timeout_s); stopped it"));
  }
  {
    env_.Set("FAKE_WANDB_ON_LOG", "exit");
    auto wandb = Make(Json::object());
    wandb->OnExperimentStart(view_);
    Trial trial = MakeTrial("t_00001", 0.1);
    wandb->OnTrialStart(trial);
    ::testing::internal::CaptureStderr();
    wandb->OnTrialResult(trial, MakeResult(1, 1.0));
    wandb->OnTick(view_);
    // The fake says "exiting" in its log just before it exits; then tune sees its end.
    const Clock::time_point deadline = Clock::now() + std::chrono::seconds(20);
    while (CallsOf("exiting").empty() && Clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ASSERT_FALSE(CallsOf("exiting").empty());
    for (int i = 0; i < 50; ++i) {
      wandb->OnTrialResult(trial, MakeResult(i + 2, 1.0));
      wandb->OnTick(view_);
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    wandb->OnExperimentEnd(view_);
    const std::string printed = ::testing::internal::GetCapturedStderr();
    EXPECT_THAT(printed, HasSubstr("[tune] wandb: the helper exited (its log: "));
    EXPECT_THAT(printed, HasSubstr("logging to wandb stops here, the experiment goes on"));
    // Said once, not again for every later report.
    EXPECT_EQ(printed.find("[tune] wandb:"), printed.rfind("[tune] wandb:")) << printed;
  }
  {
    // Dying while it finishes the runs at the end: said, not taken for a clean end.
    env_.Unset("FAKE_WANDB_ON_LOG");
    env_.Set("FAKE_WANDB_ON_FINISH", "exit");
    auto wandb = Make(Json::object());
    wandb->OnExperimentStart(view_);
    Trial trial = MakeTrial("t_00001", 0.1);
    wandb->OnTrialStart(trial);
    ::testing::internal::CaptureStderr();
    wandb->OnExperimentEnd(view_);
    EXPECT_THAT(::testing::internal::GetCapturedStderr(),
                HasSubstr("[tune] wandb: the helper exited before it finished the runs"));
  }
}

TEST_F(WandbTrackerTest, OptionsAreCheckedWhereTheSpecNamesThem) {
  CallbackContext context;
  EXPECT_THROW(Callbacks().Parse(Json{{"type", "wandb"}, {"mode", "sometimes"}}, "callbacks[0]", context),
               SpecError);
  try {
    Callbacks().Parse(Json{{"type", "wandb"}, {"projekt", "x"}}, "callbacks[0]", context);
    FAIL();
  } catch (const SpecError& error) {
    EXPECT_THAT(error.what(), ::testing::StartsWith("callbacks[0].projekt: "));
    EXPECT_THAT(error.what(), HasSubstr("\"project\""));
  }
  EXPECT_THROW(Callbacks().Parse(Json{{"type", "wandb"}, {"tags", "a"}}, "callbacks[0]", context),
               SpecError);
  try {
    Callbacks().Parse(Json{{"type", "mlflow"}, {"tags", {"a"}}}, "callbacks[2]", context);
    FAIL();
  } catch (const SpecError& error) {
    EXPECT_THAT(error.what(), ::testing::StartsWith("callbacks[2].tags: expected an object"));
  }
  EXPECT_THROW(Callbacks().Parse(Json{{"type", "mlflow"}, {"project", "x"}}, "callbacks[0]", context),
               SpecError);  // a W&B option
}

}  // namespace
}  // namespace tune
