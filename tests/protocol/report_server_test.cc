#include "tuner/report_server.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "tests/protocol/test_server.h"

namespace tune::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

class ReportServerTest : public ServerTest {};

TEST_F(ReportServerTest, GoodClientGetsDecisionsUntilStop) {
  StartServer();
  EXPECT_EQ(server_->address(), "127.0.0.1:" + std::to_string(port()));
  RawClient client(port());
  ASSERT_TRUE(client.connected());
  ASSERT_TRUE(client.SendHello("t_1", "token1"));
  for (int iter = 1; iter <= 3; ++iter) {
    ASSERT_TRUE(client.SendReport(iter));
    EXPECT_EQ(client.ReadLine(), iter < 3 ? kContinue : kStop) << "iter " << iter;
  }
  ASSERT_TRUE(client.Send(EncodeDone() + "\n"));
  EXPECT_FALSE(handler_.WaitFor("done t_1").empty());
  EXPECT_EQ(handler_.last_pid(), 77);
}

// Group commit: a reply leaves only after BeforeReplies() (where the tuner commits its journal),
// and one BeforeReplies() covers every report handled in that turn of the loop.
TEST_F(ReportServerTest, RepliesWaitForOneCommitPerBatch) {
  StartServer();
  RawClient client(port());
  ASSERT_TRUE(client.SendHello("t_1", "token1"));
  ASSERT_TRUE(client.SendReport(1));
  ASSERT_EQ(client.ReadLine(), kContinue);
  EXPECT_EQ(handler_.commits.load(), 1);
  EXPECT_EQ(handler_.reports_at_last_commit.load(), 1);
  // Two reports in one segment are handled in one turn: one commit, then both replies.
  ReportMessage report;
  report.metrics = {{"loss", 1.0}};
  report.iter = 1;
  std::string two = EncodeReport(report) + "\n";
  report.iter = 2;
  two += EncodeReport(report) + "\n";
  ASSERT_TRUE(client.Send(two));
  EXPECT_EQ(client.ReadLine(), kContinue);
  EXPECT_EQ(client.ReadLine(), kContinue);
  EXPECT_EQ(handler_.commits.load(), 2);
  EXPECT_EQ(handler_.reports_at_last_commit.load(), 3);
}

TEST_F(ReportServerTest, DisconnectIsReportedOnceAfterDone) {
  StartServer();
  {
    RawClient client(port());
    client.SendHello("t_1", "token1");
    client.SendReport(1);
    ASSERT_EQ(client.ReadLine(), kContinue);
    client.Send(EncodeDone() + "\n");
  }
  ASSERT_FALSE(handler_.WaitFor("disconnect t_1").empty());
  RunOnIo([] {});  // let anything queued run
  EXPECT_THAT(handler_.Events(),
              ElementsAre("connect t_1", "report t_1 1", "done t_1", "disconnect t_1"));
}

// Each case: what a bad connection sends, and the reason it must be closed with. Meanwhile a
// good client on another connection keeps getting replies.
TEST_F(ReportServerTest, MisbehavingConnectionsAreClosedAndOthersContinue) {
  ReportServer::Options options;
  options.max_line_bytes = 1024;
  StartServer(options);
  RawClient good(port());
  ASSERT_TRUE(good.SendHello("t_1", "token1"));

  struct Case {
    std::string name;
    std::string payload;
    std::string expected_event;
  };
  const std::vector<Case> cases = {
      {"wrong token", EncodeHello({"t_2", "nope", 1}) + "\n",
       "error : wrong token for trial \"t_2\""},
      {"unknown id", EncodeHello({"t_99999", "x", 1}) + "\n",
       "error : unknown trial id \"t_99999\""},
      {"garbage", "this is not json\n", "error : invalid JSON at byte"},
      {"unknown type",
       R"({"type":"launch_missiles"})"
       "\n",
       "error : unknown message type \"launch_missiles\""},
      {"report first",
       R"({"type":"report","iter":1,"metrics":{}})"
       "\n",
       "error : the first message must be a hello"},
      {"duplicate", EncodeHello({"t_1", "token1", 1}) + "\n",
       "error : trial t_1 is already connected"},
      {"invalid utf-8", "{\"type\":\"hello\",\"trial_id\":\"\xff\"}\n", "error : invalid UTF-8"},
      {"long line, no newline", std::string(2000, 'x'), "error : line longer than 1024 bytes"},
      {"long line", std::string(1500, ' ') + EncodeDone() + "\n",
       "error : line longer than 1024 bytes"},
  };
  int iter = 0;
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    RawClient bad(port());
    ASSERT_TRUE(bad.Send(c.payload));
    EXPECT_TRUE(bad.WaitClosed());
    EXPECT_FALSE(handler_.WaitFor(c.expected_event).empty());
    ASSERT_TRUE(good.SendReport(++iter));
    EXPECT_EQ(good.ReadLine(), iter < 3 ? kContinue : kStop);
  }
  // Only the good connection was ever authenticated.
  EXPECT_EQ(handler_.Count("connect t_1"), 1);
  EXPECT_EQ(handler_.WaitFor("disconnect", 0ms), "");
}

TEST_F(ReportServerTest, ErrorAfterHelloNamesTheTrialAndDisconnects) {
  StartServer();
  RawClient client(port());
  client.SendHello("t_2", "token2");
  client.Send("{oops\n");
  EXPECT_TRUE(client.WaitClosed());
  EXPECT_THAT(handler_.WaitFor("error t_2"), HasSubstr("invalid JSON"));
  EXPECT_FALSE(handler_.WaitFor("disconnect t_2").empty());
  EXPECT_EQ(handler_.Count("disconnect t_2"), 1);
}

TEST_F(ReportServerTest, SecondHelloAndMessagesAfterDoneAreErrors) {
  StartServer();
  RawClient twice(port());
  twice.SendHello("t_1", "token1");
  twice.SendHello("t_1", "token1");
  EXPECT_TRUE(twice.WaitClosed());
  EXPECT_FALSE(handler_.WaitFor("error t_1: hello sent twice").empty());

  RawClient after_done(port());
  after_done.SendHello("t_2", "token2");
  after_done.Send(EncodeDone() + "\n");
  after_done.SendReport(1);
  EXPECT_TRUE(after_done.WaitClosed());
  EXPECT_FALSE(handler_.WaitFor("error t_2: message after done").empty());
}

TEST_F(ReportServerTest, LineOfExactlyTheLimitIsAcceptedOneMoreByteIsNot) {
  ReportServer::Options options;
  options.max_line_bytes = 200;
  StartServer(options);
  RawClient client(port());
  client.SendHello("t_1", "token1");
  auto report_of_size = [](std::size_t size) {
    ReportMessage report;
    report.iter = 1;
    report.metrics = {{"pad", ""}};
    std::size_t base = EncodeReport(report).size();
    report.metrics["pad"] = std::string(size - base, 'p');
    std::string line = EncodeReport(report);
    EXPECT_EQ(line.size(), size);
    return line;
  };
  ASSERT_TRUE(client.Send(report_of_size(200) + "\n"));
  EXPECT_EQ(client.ReadLine(), kContinue);
  ASSERT_TRUE(client.Send(report_of_size(201) + "\n"));
  EXPECT_TRUE(client.WaitClosed());
  EXPECT_FALSE(handler_.WaitFor("error t_1: line longer than 200 bytes").empty());
}

TEST_F(ReportServerTest, PipelinedReportsAreAnsweredInOrder) {
  StartServer();
  RawClient client(port());
  std::string burst = EncodeHello({"t_1", "token1", 1}) + "\n";
  for (int iter = 1; iter <= 6; ++iter) {
    ReportMessage report;
    report.iter = iter;
    report.metrics = {{"loss", 1.0 / iter}};
    burst += EncodeReport(report) + "\n";
  }
  ASSERT_TRUE(client.Send(burst));
  for (int iter = 1; iter <= 6; ++iter) {
    EXPECT_EQ(client.ReadLine(), iter < 3 ? kContinue : kStop) << "iter " << iter;
  }
}

// Enough pipelined data to need several reads, buffer compaction and several writes.
TEST_F(ReportServerTest, LargePipelineKeepsOrder) {
  handler_.stop_at_iter = 1 << 30;
  StartServer();
  RawClient client(port());
  constexpr int kReports = 5000;
  std::string burst = EncodeHello({"t_1", "token1", 1}) + "\n";
  for (int iter = 1; iter <= kReports; ++iter) {
    ReportMessage report;
    report.iter = iter;
    report.metrics = {{"loss", 1.0 / iter}, {"note", std::string(iter % 97, 'n')}};
    burst += EncodeReport(report) + "\n";
  }
  // Sent from another thread: the server stops reading while its replies are not read, so one
  // thread doing both could deadlock on full socket buffers.
  std::thread sender([&] { client.Send(burst); });
  int replies = 0;
  while (auto line = client.ReadLine()) {
    ASSERT_EQ(*line, kContinue);
    if (++replies == kReports) break;
  }
  sender.join();
  EXPECT_EQ(replies, kReports);
  auto reports = handler_.Reports();
  ASSERT_EQ(reports.size(), static_cast<std::size_t>(kReports));
  for (int i = 0; i < kReports; ++i) ASSERT_EQ(reports[i].iter, i + 1);
}

TEST_F(ReportServerTest, BytesArrivingOneAtATimeAndCrlfAreFine) {
  StartServer();
  RawClient client(port());
  std::string line = EncodeHello({"t_1", "token1", 1}) + "\r\n" +
                     R"({"type":"report","iter":1,"metrics":{"loss":"nan"}})" + "\r\n";
  for (char byte : line) ASSERT_TRUE(client.Send(std::string(1, byte)));
  EXPECT_EQ(client.ReadLine(), kContinue);
  auto reports = handler_.Reports();
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_TRUE(std::isnan(reports[0].metrics["loss"].get<double>()));
}

TEST_F(ReportServerTest, IdleTimeoutClosesOnlySilentClients) {
  ReportServer::Options options;
  options.idle_timeout_s = 0.15;
  handler_.stop_at_iter = 1 << 30;
  StartServer(options);
  RawClient silent(port());
  RawClient busy(port());
  busy.SendHello("t_1", "token1");
  EXPECT_FALSE(silent.WaitClosed(50ms));  // not before its time
  // The busy client talks every 50 ms for longer than the timeout and must stay open.
  for (int iter = 1; iter <= 8; ++iter) {
    std::this_thread::sleep_for(50ms);
    ASSERT_TRUE(busy.SendReport(iter));
    ASSERT_EQ(busy.ReadLine(), kContinue) << "iter " << iter;
  }
  EXPECT_TRUE(silent.WaitClosed(100ms));
  EXPECT_THAT(handler_.WaitFor("error : no message"), HasSubstr("idle timeout"));
  EXPECT_EQ(handler_.WaitFor("error t_1", 0ms), "");
}

TEST_F(ReportServerTest, HelloTimeoutClosesOnlyConnectionsThatNeverAuthenticate) {
  ReportServer::Options options;
  options.hello_timeout_s = 0.15;
  handler_.stop_at_iter = 1 << 30;
  StartServer(options);
  RawClient silent(port());
  RawClient known(port());
  known.SendHello("t_1", "token1");
  EXPECT_FALSE(silent.WaitClosed(50ms));
  EXPECT_TRUE(silent.WaitClosed(300ms));
  EXPECT_THAT(handler_.WaitFor("error : no hello"), HasSubstr("within 0.15 s"));
  // An authenticated trial may stay silent far longer (a long epoch) and is still served.
  std::this_thread::sleep_for(200ms);
  ASSERT_TRUE(known.SendReport(1));
  EXPECT_EQ(known.ReadLine(), kContinue);
}

TEST_F(ReportServerTest, HeartbeatsReachTheHandlerWithoutAReply) {
  StartServer();
  RawClient client(port());
  client.SendHello("t_1", "token1");
  ASSERT_TRUE(client.Send(EncodeHeartbeat() + "\n"));
  EXPECT_EQ(handler_.WaitFor("heartbeat t_1"), "heartbeat t_1");
  // The next line the client reads is the reply to its report, not one to the heartbeat.
  ASSERT_TRUE(client.SendReport(1));
  EXPECT_EQ(client.ReadLine(), kContinue);
}

TEST_F(ReportServerTest, PartialLineTimeoutClosesAStuckClientOnly) {
  ReportServer::Options options;
  options.partial_line_timeout_s = 0.15;
  handler_.stop_at_iter = 1 << 30;
  StartServer(options);
  RawClient stuck(port());
  RawClient good(port());
  stuck.SendHello("t_1", "token1");
  good.SendHello("t_2", "token2");
  ASSERT_TRUE(stuck.Send(R"({"type":"report","iter":1,"met)"));  // never finished
  for (int iter = 1; iter <= 6; ++iter) {
    std::this_thread::sleep_for(50ms);
    ASSERT_TRUE(good.SendReport(iter));
    ASSERT_EQ(good.ReadLine(), kContinue) << "iter " << iter;
  }
  EXPECT_TRUE(stuck.WaitClosed(300ms));
  EXPECT_THAT(handler_.WaitFor("error t_1"), HasSubstr("line not finished within 0.15 s"));
}

TEST_F(ReportServerTest, DisconnectFromInsideOnReport) {
  handler_.on_report = [this](const std::string& trial_id, const ReportMessage& report) {
    if (report.iter == 2) server_->Disconnect(trial_id);
  };
  StartServer();
  RawClient client(port());
  client.SendHello("t_1", "token1");
  client.SendReport(1);
  EXPECT_EQ(client.ReadLine(), kContinue);
  client.SendReport(2);
  EXPECT_TRUE(client.WaitClosed());  // no reply to the report that caused the disconnect
  EXPECT_FALSE(handler_.WaitFor("disconnect t_1").empty());
  RunOnIo([] {});
  EXPECT_EQ(handler_.Count("disconnect t_1"), 1);

  // The trial may connect again (a restarted attempt).
  RawClient again(port());
  again.SendHello("t_1", "token1");
  again.SendReport(1);
  EXPECT_EQ(again.ReadLine(), kContinue);
}

TEST_F(ReportServerTest, CloseFromInsideACallbackClosesEverything) {
  handler_.on_report = [this](const std::string&, const ReportMessage& report) {
    if (report.iter == 2) server_->Close();
  };
  StartServer();
  RawClient first(port());
  RawClient second(port());
  first.SendHello("t_1", "token1");
  second.SendHello("t_2", "token2");
  second.SendReport(1);
  EXPECT_EQ(second.ReadLine(), kContinue);
  first.SendReport(2);
  EXPECT_TRUE(first.WaitClosed());
  EXPECT_TRUE(second.WaitClosed());
  EXPECT_FALSE(handler_.WaitFor("disconnect t_1").empty());
  EXPECT_FALSE(handler_.WaitFor("disconnect t_2").empty());
  RawClient late(port());
  EXPECT_TRUE(!late.connected() || late.WaitClosed());
}

TEST_F(ReportServerTest, DestroyingTheServerWithOpenConnectionsIsSafe) {
  StartServer();
  RawClient client(port());
  client.SendHello("t_1", "token1");
  client.SendReport(1);
  EXPECT_EQ(client.ReadLine(), kContinue);
  RunOnIo([this] { server_.reset(); });
  EXPECT_TRUE(client.WaitClosed());
  RunOnIo([] {});  // handlers of the dead server run (and must do nothing)
  EXPECT_EQ(handler_.WaitFor("disconnect", 0ms), "");
}

TEST_F(ReportServerTest, BindingAPortInUseThrows) {
  StartServer();
  ReportServer::Options options;
  options.port = port();
  options.host = "127.0.0.1";
  RecordingHandler other;
  boost::asio::io_context io;
  try {
    ReportServer second(io, other, options);
    FAIL() << "bound a port already in use";
  } catch (const std::system_error& error) {
    EXPECT_THAT(error.what(), HasSubstr("cannot listen on 127.0.0.1:" + std::to_string(port())));
  }
}

}  // namespace
}  // namespace tune::testing
