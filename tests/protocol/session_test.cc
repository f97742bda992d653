#include "tuner/client/session.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>

#include "tests/protocol/test_server.h"

namespace tune::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

const char* const kEnvVars[] = {"TUNE_REPORT_ADDR", "TUNE_REPORT_SOCKET", "TUNE_TRIAL_ID", "TUNE_TOKEN", "TUNE_CONFIG",
                                "TUNE_CHECKPOINT", "RANK"};

// Each test gets a clean TUNE_* environment and a scratch directory with a params.json.
class SessionTest : public ServerTest {
 protected:
  void SetUp() override {
    for (const char* name : kEnvVars) ::unsetenv(name);
    dir_ = std::filesystem::temp_directory_path() /
           ("tune_session_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
    config_path_ = (dir_ / "params.json").string();
    std::ofstream(config_path_) << R"({"lr": 0.01, "hidden": 128, "optim": {"name": "sgd"}})";
  }
  void TearDown() override {
    ServerTest::TearDown();
    for (const char* name : kEnvVars) ::unsetenv(name);
    std::filesystem::remove_all(dir_);
  }
  void SetFullEnv() {
    ::setenv("TUNE_REPORT_ADDR", server_->address().c_str(), 1);
    ::setenv("TUNE_TRIAL_ID", "t_1", 1);
    ::setenv("TUNE_TOKEN", "token1", 1);
    ::setenv("TUNE_CONFIG", config_path_.c_str(), 1);
  }
  static std::string FromEnvError() {
    try {
      Session::FromEnv();
    } catch (const std::runtime_error& error) {
      return error.what();
    }
    return "";
  }

  // Runs `script` with python3 (SOURCE_DIR set, for the client module); its stdout and stderr
  // go to *output. Returns std::system's status.
  int RunPython(const std::string& script, std::string* output) {
    std::string log = (dir_ / "python.log").string();
    std::string command =
        "SOURCE_DIR='" TUNE_SOURCE_DIR "' python3 " + script + " >" + log + " 2>&1";
    int status = std::system(command.c_str());
    std::ifstream log_file(log);
    output->assign(std::istreambuf_iterator<char>(log_file), std::istreambuf_iterator<char>());
    return status;
  }

  std::filesystem::path dir_;
  std::string config_path_;
};

TEST_F(SessionTest, ReportsUntilStopThenDone) {
  StartServer();
  auto session = Session::Connect(server_->address(), "t_1", "token1");
  EXPECT_EQ(session->trial_id(), "t_1");
  EXPECT_EQ(session->Report(1, {{"val_acc", 0.5}}), Action::kContinue);
  EXPECT_EQ(session->Report(2, {{"val_acc", 0.6}}, std::string("/ck/2")), Action::kContinue);
  EXPECT_EQ(session->Report(3, {{"val_acc", 0.7}}), Action::kStop);
  session->Done();
  session->Done();  // idempotent
  ASSERT_FALSE(handler_.WaitFor("disconnect t_1").empty());
  EXPECT_THAT(handler_.Events(), ElementsAre("connect t_1", "report t_1 1", "report t_1 2",
                                             "report t_1 3", "done t_1", "disconnect t_1"));
  EXPECT_EQ(handler_.last_pid(), ::getpid());
  auto reports = handler_.Reports();
  ASSERT_EQ(reports.size(), 3u);
  EXPECT_EQ(reports[1].checkpoint, std::optional<std::string>("/ck/2"));
  EXPECT_EQ(reports[2].metrics["val_acc"], 0.7);
  EXPECT_THROW(session->Report(4, {{"val_acc", 0.8}}), std::runtime_error);
}

TEST_F(SessionTest, ReportsOverTheLocalSocket) {
  StartServer();
  const std::string local = server_->local_address();
  ASSERT_THAT(local, ::testing::StartsWith("@tune-" + std::to_string(::getpid()) + "-"));
  auto session = Session::Connect(local, "t_1", "token1");
  EXPECT_EQ(session->Report(1, {{"val_acc", 0.5}}), Action::kContinue);
  EXPECT_EQ(session->Report(3, {{"val_acc", 0.7}}), Action::kStop);
  session->Done();
  ASSERT_FALSE(handler_.WaitFor("disconnect t_1").empty());
  EXPECT_THAT(handler_.Events(), ElementsAre("connect t_1", "report t_1 1", "report t_1 3",
                                             "done t_1", "disconnect t_1"));
}

TEST_F(SessionTest, NoLocalSocketWhenTurnedOff) {
  ReportServer::Options options;
  options.local_socket = false;
  StartServer(options);
  EXPECT_EQ(server_->local_address(), "");
}

// FromEnv prefers TUNE_REPORT_SOCKET (the TCP address below leads nowhere) ...
TEST_F(SessionTest, FromEnvPrefersTheLocalSocket) {
  StartServer();
  SetFullEnv();
  ::setenv("TUNE_REPORT_ADDR", "127.0.0.1:1", 1);
  ::setenv("TUNE_REPORT_SOCKET", server_->local_address().c_str(), 1);
  auto session = Session::FromEnv();
  EXPECT_EQ(session->Report(1, {{"x", 1}}), Action::kContinue);
}

// ... and falls back to TCP when the socket cannot be reached (another network namespace).
TEST_F(SessionTest, FromEnvFallsBackToTcpWhenTheLocalSocketIsUnreachable) {
  StartServer();
  SetFullEnv();
  ::setenv("TUNE_REPORT_SOCKET", "@tune-no-such-socket", 1);
  auto session = Session::FromEnv();
  EXPECT_EQ(session->Report(1, {{"x", 1}}), Action::kContinue);
}

TEST_F(SessionTest, NonFiniteMetricsArriveAsNumbers) {
  StartServer();
  auto session = Session::Connect(server_->address(), "t_1", "token1");
  session->Report(1, {{"loss", std::nan("")}, {"gain", -HUGE_VAL}});
  auto reports = handler_.Reports();
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_TRUE(std::isnan(reports[0].metrics["loss"].get<double>()));
  EXPECT_EQ(reports[0].metrics["gain"].get<double>(), -HUGE_VAL);
}

TEST_F(SessionTest, FromEnvReadsConfigAndCheckpoint) {
  StartServer();
  SetFullEnv();
  ::setenv("TUNE_CHECKPOINT", "/runs/t_1/checkpoint_4", 1);
  auto session = Session::FromEnv();
  EXPECT_EQ(session->trial_id(), "t_1");
  EXPECT_EQ(session->config()["hidden"], 128);
  EXPECT_EQ(session->config()["optim"]["name"], "sgd");
  EXPECT_EQ(session->resume_checkpoint(), std::optional<std::string>("/runs/t_1/checkpoint_4"));
  EXPECT_EQ(session->Report(1, {{"x", 1}}), Action::kContinue);
  EXPECT_FALSE(handler_.WaitFor("connect t_1").empty());
}

// Multi-process trials: only rank 0 talks to the tuner. The test server answers "stop" from
// iter 3 on, so a "continue" at iter 5 shows that no round trip happened.
TEST_F(SessionTest, RanksOtherThanZeroDoNotConnect) {
  StartServer();
  SetFullEnv();
  ::setenv("RANK", "1", 1);
  auto silent = Session::FromEnv();
  EXPECT_FALSE(silent->is_reporting());
  EXPECT_EQ(silent->config()["hidden"], 128);
  EXPECT_EQ(silent->Report(5, {{"x", 1}}), Action::kContinue);
  silent->Heartbeat();
  silent->Done();
  ::setenv("RANK", "0", 1);
  auto rank0 = Session::FromEnv();
  EXPECT_TRUE(rank0->is_reporting());
  EXPECT_EQ(rank0->Report(5, {{"x", 1}}), Action::kStop);
  rank0->Done();
  ASSERT_FALSE(handler_.WaitFor("disconnect t_1").empty());
  EXPECT_THAT(handler_.Events(),
              ElementsAre("connect t_1", "report t_1 5", "done t_1", "disconnect t_1"));
}

TEST_F(SessionTest, PythonClientOnRankOneDoesNotConnect) {
  if (std::system("python3 -c '' >/dev/null 2>&1") != 0) GTEST_SKIP() << "python3 not found";
  StartServer();
  SetFullEnv();
  std::string script = (dir_ / "rank1.py").string();
  std::ofstream(script) << R"PY(
import os, sys
sys.path.insert(0, os.path.join(os.environ["SOURCE_DIR"], "python"))
import tune_client

os.environ["RANK"] = "1"
with tune_client.Session.from_env() as session:
    assert not session.is_reporting
    assert session.config["hidden"] == 128, session.config
    assert session.report(5, {"loss": 1.0}) == "continue"
    session.heartbeat()
os.environ["RANK"] = "0"
with tune_client.Session.from_env() as session:
    assert session.is_reporting
    assert session.report(5, {"loss": 1.0}) == "stop"
print("python ranks ok")
)PY";
  std::string output;
  int status = RunPython(script, &output);
  ASSERT_EQ(status, 0) << output;
  ASSERT_FALSE(handler_.WaitFor("disconnect t_1").empty());
  // Told "stop", the session closes without "done" (the trial did not finish by itself).
  EXPECT_THAT(handler_.Events(), ElementsAre("connect t_1", "report t_1 5", "disconnect t_1"));
}

TEST_F(SessionTest, FromEnvWithoutCheckpointHasNone) {
  StartServer();
  SetFullEnv();
  auto session = Session::FromEnv();
  EXPECT_FALSE(session->resume_checkpoint().has_value());
}

TEST_F(SessionTest, FromEnvNamesTheMissingVariable) {
  StartServer();
  for (const char* missing : {"TUNE_REPORT_ADDR", "TUNE_TRIAL_ID", "TUNE_TOKEN", "TUNE_CONFIG"}) {
    SetFullEnv();
    ::unsetenv(missing);
    EXPECT_THAT(FromEnvError(), HasSubstr(std::string(missing) + " is not set")) << missing;
  }
  // Nothing connected: every variable is checked before connecting.
  EXPECT_EQ(handler_.WaitFor("connect", 0ms), "");
}

TEST_F(SessionTest, FromEnvBadConfigFile) {
  StartServer();
  SetFullEnv();
  ::setenv("TUNE_CONFIG", (dir_ / "missing.json").c_str(), 1);
  EXPECT_THAT(FromEnvError(), HasSubstr("cannot open TUNE_CONFIG file"));
  std::ofstream(config_path_) << "{not json";
  ::setenv("TUNE_CONFIG", config_path_.c_str(), 1);
  EXPECT_THAT(FromEnvError(), HasSubstr("is not valid JSON"));
}

TEST_F(SessionTest, ConnectFailureNamesTheAddress) {
  StartServer();
  std::string address = server_->address();
  RunOnIo([this] { server_->Close(); });
  try {
    Session::Connect(address, "t_1", "token1");
    FAIL() << "connected to a closed server";
  } catch (const std::runtime_error& error) {
    EXPECT_THAT(error.what(), HasSubstr("tune: cannot connect to tuner at " + address));
  }
  EXPECT_THROW(Session::Connect("no-port-here", "t_1", "x"), std::runtime_error);
}

TEST_F(SessionTest, LostConnectionIsAClearError) {
  handler_.on_report = [this](const std::string& trial_id, const ReportMessage& report) {
    if (report.iter == 2) server_->Disconnect(trial_id);
  };
  StartServer();
  auto session = Session::Connect(server_->address(), "t_1", "token1");
  EXPECT_EQ(session->Report(1, {{"x", 1}}), Action::kContinue);
  try {
    session->Report(2, {{"x", 2}});
    FAIL() << "report on a closed connection succeeded";
  } catch (const std::runtime_error& error) {
    EXPECT_THAT(error.what(), HasSubstr("tune: lost connection to tuner at " + server_->address()));
  }
}

TEST_F(SessionTest, WrongTokenSurfacesOnFirstReport) {
  StartServer();
  auto session = Session::Connect(server_->address(), "t_1", "not-the-token");
  EXPECT_THROW(session->Report(1, {{"x", 1}}), std::runtime_error);
  EXPECT_FALSE(handler_.WaitFor("error : wrong token").empty());
}

// The Python client uses TUNE_REPORT_SOCKET when it can, TCP otherwise.
TEST_F(SessionTest, PythonClientPrefersTheLocalSocket) {
  if (std::system("python3 -c '' >/dev/null 2>&1") != 0) GTEST_SKIP() << "python3 not found";
  StartServer();
  SetFullEnv();
  ::setenv("TUNE_REPORT_SOCKET", server_->local_address().c_str(), 1);
  std::string script = (dir_ / "local.py").string();
  std::ofstream(script) << R"PY(
import os, sys
sys.path.insert(0, os.path.join(os.environ["SOURCE_DIR"], "python"))
import tune_client

# The TCP address leads nowhere: this works over the Unix-domain socket only.
tcp = os.environ["TUNE_REPORT_ADDR"]
os.environ["TUNE_REPORT_ADDR"] = "127.0.0.1:1"
with tune_client.Session.from_env() as session:
    assert session.report(1, {"loss": 0.5}) == "continue"
# An unreachable socket falls back to TCP.
os.environ.update(TUNE_REPORT_ADDR=tcp, TUNE_REPORT_SOCKET="@tune-no-such-socket",
                  TUNE_TRIAL_ID="t_2", TUNE_TOKEN="token2")
with tune_client.Session.from_env() as session:
    assert session.report(1, {"loss": 0.5}) == "continue"
print("both ok")
)PY";
  std::string output;
  ASSERT_EQ(RunPython(script, &output), 0) << output;
  EXPECT_THAT(output, HasSubstr("both ok"));
  EXPECT_FALSE(handler_.WaitFor("disconnect t_2").empty());
}

// A pause: the trial acknowledges with its checkpoint and the connection ends (no "done").
TEST_F(SessionTest, PauseIsAcknowledgedWithTheCheckpoint) {
  handler_.pause_at_iter = 2;
  StartServer();
  auto session = Session::Connect(server_->address(), "t_1", "token1");
  EXPECT_EQ(session->Report(1, {{"x", 1}}), Action::kContinue);
  EXPECT_EQ(session->Report(2, {{"x", 2}}, std::string("/ck/2")), Action::kPause);
  session->Paused(std::string("/ck/2"));
  EXPECT_FALSE(handler_.WaitFor("paused t_1 /ck/2").empty());
  EXPECT_FALSE(handler_.WaitFor("disconnect t_1").empty());
  EXPECT_EQ(handler_.Count("done t_1"), 0);
  session->Done();  // after Paused(): nothing is sent
}

TEST_F(SessionTest, PythonClientPauses) {
  if (std::system("python3 -c '' >/dev/null 2>&1") != 0) GTEST_SKIP() << "python3 not found";
  handler_.pause_at_iter = 2;
  StartServer();
  SetFullEnv();
  std::string script = (dir_ / "pause.py").string();
  std::ofstream(script) << R"PY(
import os, sys
sys.path.insert(0, os.path.join(os.environ["SOURCE_DIR"], "python"))
import tune_client

with tune_client.Session.from_env() as session:
    assert session.report(1, {"loss": 1.0}) == "continue"
    assert session.report(2, {"loss": 0.5}, checkpoint="/ck/2") == "pause"
    assert session.should_pause
    session.paused("/ck/2")
print("python pause ok")
)PY";
  std::string output;
  ASSERT_EQ(RunPython(script, &output), 0) << output;
  EXPECT_THAT(output, HasSubstr("python pause ok"));
  EXPECT_FALSE(handler_.WaitFor("paused t_1 /ck/2").empty());
  EXPECT_FALSE(handler_.WaitFor("disconnect t_1").empty());
  EXPECT_EQ(handler_.Count("done t_1"), 0);
}

// The Python client (python/tune_client) against the real server.
TEST_F(SessionTest, PythonClient) {
  if (std::system("python3 -c '' >/dev/null 2>&1") != 0) GTEST_SKIP() << "python3 not found";
  StartServer();
  SetFullEnv();
  ::setenv("TUNE_CHECKPOINT", "/ck/3", 1);
  std::string script = (dir_ / "trial.py").string();
  std::ofstream(script) << R"PY(
import os, sys
sys.path.insert(0, os.path.join(os.environ["SOURCE_DIR"], "python"))
import tune_client

with tune_client.Session.from_env() as session:
    assert session.config["hidden"] == 128, session.config
    assert session.checkpoint == "/ck/3", session.checkpoint
    assert session.report(0, {"loss": float("nan"), "up": float("inf"), "name": "x",
                              "ok": True, "none": None}) == "continue"
    iter = 1
    while session.report(iter, {"loss": 1.0 / iter}, checkpoint="/ck/%d" % iter) == "continue":
        iter += 1
    assert session.should_stop and iter == 3, iter

saved = os.environ.pop("TUNE_TOKEN")
try:
    tune_client.Session.from_env()
    sys.exit("from_env without TUNE_TOKEN did not fail")
except tune_client.TuneError as error:
    assert "TUNE_TOKEN is not set" in str(error), error
print("python client ok")
)PY";
  std::string output;
  int status = RunPython(script, &output);
  ASSERT_EQ(status, 0) << output;
  EXPECT_THAT(output, HasSubstr("python client ok"));
  ASSERT_FALSE(handler_.WaitFor("disconnect t_1").empty());
  EXPECT_THAT(handler_.Events(),
              ElementsAre("connect t_1", "report t_1 0", "report t_1 1", "report t_1 2",
                          "report t_1 3", "disconnect t_1"));  // stopped: no "done"
  auto reports = handler_.Reports();
  ASSERT_EQ(reports.size(), 4u);
  EXPECT_TRUE(std::isnan(reports[0].metrics["loss"].get<double>()));
  EXPECT_EQ(reports[0].metrics["up"].get<double>(), HUGE_VAL);
  EXPECT_EQ(reports[0].metrics["name"], "x");
  EXPECT_EQ(reports[0].metrics["ok"], true);
  EXPECT_TRUE(reports[0].metrics["none"].is_null());
  EXPECT_EQ(reports[3].checkpoint, std::optional<std::string>("/ck/3"));
}

}  // namespace
}  // namespace tune::testing
