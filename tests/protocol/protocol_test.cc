#include "tuner/client/protocol.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <string>

namespace tune {
namespace {

using ::testing::HasSubstr;

// The reason of a line that must not decode (fails the test if it does).
std::string ErrorOf(std::string_view line) {
  TrialMessage message = DecodeTrialMessage(line);
  auto* error = std::get_if<ProtocolError>(&message);
  if (error == nullptr) {
    ADD_FAILURE() << "expected an error for: " << line;
    return "";
  }
  return error->reason;
}

TEST(ProtocolTest, HelloRoundTrip) {
  HelloMessage hello{"t_00001", "secret", 4242};
  TrialMessage message = DecodeTrialMessage(EncodeHello(hello));
  auto* decoded = std::get_if<HelloMessage>(&message);
  ASSERT_NE(decoded, nullptr);
  EXPECT_EQ(decoded->trial_id, "t_00001");
  EXPECT_EQ(decoded->token, "secret");
  EXPECT_EQ(decoded->pid, 4242);
}

TEST(ProtocolTest, ReportRoundTripWithAndWithoutCheckpoint) {
  ReportMessage report;
  report.iter = 7;
  report.metrics = {{"val_acc", 0.81}, {"name", "x"}, {"ok", true}, {"none", nullptr}, {"n", 3}};
  report.checkpoint = "/tmp/ck_7";
  TrialMessage message = DecodeTrialMessage(EncodeReport(report));
  auto* decoded = std::get_if<ReportMessage>(&message);
  ASSERT_NE(decoded, nullptr);
  EXPECT_EQ(decoded->iter, 7);
  EXPECT_EQ(decoded->metrics, report.metrics);
  EXPECT_EQ(decoded->checkpoint, std::optional<std::string>("/tmp/ck_7"));

  report.checkpoint.reset();
  report.iter = 0;  // iteration 0 is allowed (a report before any training)
  std::string line = EncodeReport(report);
  EXPECT_EQ(line.find("checkpoint"), std::string::npos);
  message = DecodeTrialMessage(line);
  decoded = std::get_if<ReportMessage>(&message);
  ASSERT_NE(decoded, nullptr);
  EXPECT_EQ(decoded->iter, 0);
  EXPECT_FALSE(decoded->checkpoint.has_value());
}

TEST(ProtocolTest, DoneRoundTrip) {
  EXPECT_TRUE(std::holds_alternative<DoneMessage>(DecodeTrialMessage(EncodeDone())));
}

TEST(ProtocolTest, EncodedLinesHaveNoNewline) {
  ReportMessage report;
  report.metrics = {{"text", "a\nb"}};
  for (const std::string& line : {EncodeHello({"t\n", "k", 1}), EncodeReport(report), EncodeDone(),
                                  EncodeDecision(Action::kStop)}) {
    EXPECT_EQ(line.find('\n'), std::string::npos) << line;
  }
}

TEST(ProtocolTest, NonFiniteMetricsTravelAsStringsAndComeBackAsDoubles) {
  ReportMessage report;
  report.iter = 1;
  report.metrics = {{"loss", std::nan("")},
                    {"up", std::numeric_limits<double>::infinity()},
                    {"down", -std::numeric_limits<double>::infinity()},
                    {"fine", 1.5}};
  std::string line = EncodeReport(report);
  EXPECT_NE(line.find(R"("loss":"nan")"), std::string::npos) << line;
  EXPECT_NE(line.find(R"("up":"inf")"), std::string::npos) << line;
  EXPECT_NE(line.find(R"("down":"-inf")"), std::string::npos) << line;

  TrialMessage message = DecodeTrialMessage(line);
  auto* decoded = std::get_if<ReportMessage>(&message);
  ASSERT_NE(decoded, nullptr);
  ASSERT_TRUE(decoded->metrics["loss"].is_number_float());
  EXPECT_TRUE(std::isnan(decoded->metrics["loss"].get<double>()));
  EXPECT_EQ(decoded->metrics["up"].get<double>(), std::numeric_limits<double>::infinity());
  EXPECT_EQ(decoded->metrics["down"].get<double>(), -std::numeric_limits<double>::infinity());
  EXPECT_EQ(decoded->metrics["fine"].get<double>(), 1.5);
}

TEST(ProtocolTest, OtherStringsInMetricsStayStrings) {
  TrialMessage message =
      DecodeTrialMessage(R"({"type":"report","iter":1,"metrics":{"a":"NaN","b":"infinity"}})");
  auto* decoded = std::get_if<ReportMessage>(&message);
  ASSERT_NE(decoded, nullptr);
  EXPECT_EQ(decoded->metrics["a"], "NaN");
  EXPECT_EQ(decoded->metrics["b"], "infinity");
}

TEST(ProtocolTest, UnknownFieldsAreIgnored) {
  TrialMessage message = DecodeTrialMessage(R"({"type":"done","extra":[1,2]})");
  EXPECT_TRUE(std::holds_alternative<DoneMessage>(message));
}

TEST(ProtocolTest, InvalidJson) {
  EXPECT_THAT(ErrorOf("this is not json"), HasSubstr("invalid JSON at byte"));
  EXPECT_THAT(ErrorOf(""), HasSubstr("invalid JSON"));
  EXPECT_THAT(ErrorOf(R"({"type":"done"} trailing)"), HasSubstr("invalid JSON"));
  EXPECT_THAT(ErrorOf(R"({"type":"done")"), HasSubstr("invalid JSON"));
  EXPECT_THAT(ErrorOf("NaN"), HasSubstr("invalid JSON"));
}

TEST(ProtocolTest, InvalidUtf8IsNamedAndTheReasonIsPrintable) {
  std::string reason = ErrorOf("{\"type\":\"done\",\"x\":\"\xff\xfe\"}");
  EXPECT_THAT(reason, HasSubstr("invalid UTF-8"));
  // The reason goes to logs and the journal (JSON): it must itself be plain ASCII.
  for (char byte : ErrorOf("\x01\xc3\x28 garbage")) {
    EXPECT_TRUE(byte >= 0x20 && byte < 0x7f) << static_cast<int>(static_cast<unsigned char>(byte));
  }
}

TEST(ProtocolTest, NonObjectAndBadType) {
  EXPECT_THAT(ErrorOf("[1,2]"), HasSubstr("must be a JSON object, got array"));
  EXPECT_THAT(ErrorOf("42"), HasSubstr("must be a JSON object, got number"));
  EXPECT_THAT(ErrorOf(R"({"iter":1})"), HasSubstr("no \"type\""));
  EXPECT_THAT(ErrorOf(R"({"type":3})"), HasSubstr("\"type\" must be a string"));
  EXPECT_EQ(ErrorOf(R"({"type":"launch_missiles"})"), "unknown message type \"launch_missiles\"");
}

TEST(ProtocolTest, UnknownTypeNameIsBoundedInTheReason) {
  std::string reason = ErrorOf(R"({"type":")" + std::string(10000, 'z') + R"("})");
  EXPECT_LT(reason.size(), 200u);
  EXPECT_THAT(reason, HasSubstr("unknown message type"));
}

TEST(ProtocolTest, HelloFieldTypes) {
  EXPECT_THAT(ErrorOf(R"({"type":"hello","token":"k","pid":1})"), HasSubstr("hello.trial_id"));
  EXPECT_THAT(ErrorOf(R"({"type":"hello","trial_id":1,"token":"k","pid":1})"),
              HasSubstr("hello.trial_id must be a string"));
  EXPECT_THAT(ErrorOf(R"({"type":"hello","trial_id":"t","pid":1})"), HasSubstr("hello.token"));
  EXPECT_THAT(ErrorOf(R"({"type":"hello","trial_id":"t","token":null,"pid":1})"),
              HasSubstr("hello.token must be a string"));
  EXPECT_THAT(ErrorOf(R"({"type":"hello","trial_id":"t","token":"k"})"), HasSubstr("hello.pid"));
  EXPECT_THAT(ErrorOf(R"({"type":"hello","trial_id":"t","token":"k","pid":1.5})"),
              HasSubstr("hello.pid must be an integer"));
  EXPECT_THAT(ErrorOf(R"({"type":"hello","trial_id":"t","token":"k","pid":"1"})"),
              HasSubstr("hello.pid must be an integer"));
  EXPECT_THAT(ErrorOf(R"({"type":"hello","trial_id":"t","token":"k","pid":18446744073709551615})"),
              HasSubstr("hello.pid must be an integer"));
}

TEST(ProtocolTest, ReportFieldTypes) {
  EXPECT_THAT(ErrorOf(R"({"type":"report","metrics":{}})"), HasSubstr("report.iter"));
  EXPECT_THAT(ErrorOf(R"({"type":"report","iter":-1,"metrics":{}})"),
              HasSubstr("report.iter must be an integer >= 0"));
  EXPECT_THAT(ErrorOf(R"({"type":"report","iter":2.0,"metrics":{}})"), HasSubstr("report.iter"));
  EXPECT_THAT(ErrorOf(R"({"type":"report","iter":"2","metrics":{}})"), HasSubstr("report.iter"));
  EXPECT_THAT(ErrorOf(R"({"type":"report","iter":1})"),
              HasSubstr("report.metrics must be an object"));
  EXPECT_THAT(ErrorOf(R"({"type":"report","iter":1,"metrics":[1]})"),
              HasSubstr("report.metrics must be an object"));
  EXPECT_THAT(ErrorOf(R"({"type":"report","iter":1,"metrics":{"a":[1]}})"),
              HasSubstr("report.metrics.a must be a number, string, bool or null"));
  EXPECT_THAT(ErrorOf(R"({"type":"report","iter":1,"metrics":{"a":{"b":1}}})"),
              HasSubstr("report.metrics.a"));
  EXPECT_THAT(ErrorOf(R"({"type":"report","iter":1,"metrics":{},"checkpoint":5})"),
              HasSubstr("report.checkpoint must be a string"));
}

TEST(ProtocolTest, NullCheckpointMeansNone) {
  TrialMessage message =
      DecodeTrialMessage(R"({"type":"report","iter":1,"metrics":{},"checkpoint":null})");
  auto* decoded = std::get_if<ReportMessage>(&message);
  ASSERT_NE(decoded, nullptr);
  EXPECT_FALSE(decoded->checkpoint.has_value());
}

TEST(ProtocolTest, Decisions) {
  EXPECT_EQ(DecodeDecision(EncodeDecision(Action::kContinue)), Action::kContinue);
  EXPECT_EQ(DecodeDecision(EncodeDecision(Action::kStop)), Action::kStop);
  // Any equivalent JSON spelling is accepted, not just the tuner's own bytes.
  EXPECT_EQ(DecodeDecision(R"({ "action" : "stop", "type" : "decision" })"), Action::kStop);
  EXPECT_EQ(DecodeDecision(EncodeDecision(Action::kPause)), Action::kPause);
  EXPECT_EQ(DecodeDecision(R"({"type":"decision","action":"pause"})"), Action::kPause);
  EXPECT_EQ(DecodeDecision(R"({"type":"decision","action":"exploit"})"), std::nullopt);
  EXPECT_EQ(DecodeDecision(R"({"type":"report","action":"stop"})"), std::nullopt);
  EXPECT_EQ(DecodeDecision(R"({"type":"decision"})"), std::nullopt);
  EXPECT_EQ(DecodeDecision("stop"), std::nullopt);
  EXPECT_EQ(DecodeDecision("[]"), std::nullopt);
  EXPECT_STREQ(ToString(Action::kContinue), "continue");
  EXPECT_STREQ(ToString(Action::kStop), "stop");
  EXPECT_STREQ(ToString(Action::kPause), "pause");
}

TEST(ProtocolTest, PausedAcknowledgement) {
  auto with = DecodeTrialMessage(EncodePaused(std::string("/ck/3")));
  ASSERT_TRUE(std::holds_alternative<PausedMessage>(with));
  EXPECT_EQ(std::get<PausedMessage>(with).checkpoint, "/ck/3");
  auto without = DecodeTrialMessage(EncodePaused(std::nullopt));
  ASSERT_TRUE(std::holds_alternative<PausedMessage>(without));
  EXPECT_FALSE(std::get<PausedMessage>(without).checkpoint.has_value());
  auto bad = DecodeTrialMessage(R"({"type":"paused","checkpoint":3})");
  ASSERT_TRUE(std::holds_alternative<ProtocolError>(bad));
  EXPECT_EQ(std::get<ProtocolError>(bad).reason, "paused.checkpoint must be a string");
}

}  // namespace
namespace {

TEST(ProtocolHeartbeatTest, RoundTrips) {
  EXPECT_TRUE(std::holds_alternative<HeartbeatMessage>(DecodeTrialMessage(EncodeHeartbeat())));
  EXPECT_TRUE(std::holds_alternative<HeartbeatMessage>(
      DecodeTrialMessage(R"({"type": "heartbeat", "extra": 1})")));
}

}  // namespace
}  // namespace tune
