// The wire protocol between a trial and the tuner (see docs/protocol.md and DESIGN.md).
//
// Newline-delimited JSON over TCP, one connection per trial. The trial speaks first:
//   {"type":"hello","trial_id":"t_00001","token":"...","pid":1234}
//   {"type":"report","iter":3,"metrics":{"val_acc":0.81},"checkpoint":"/path"}   (checkpoint optional)
//   {"type":"heartbeat"}   (no reply: "still alive" during a long epoch, for trial_timeout_s)
//   {"type":"done"}
// The tuner answers every report with exactly one line:
//   {"type":"decision","action":"continue"}   or   {"type":"decision","action":"stop"}
// A line longer than kMaxLineBytes, invalid JSON, a wrong token or an unknown type closes the
// connection. Decoding never throws: errors come back as a message naming what was wrong.
//
// Example:
//   auto message = tune::DecodeTrialMessage(R"({"type":"done"})");
//   if (auto* error = std::get_if<tune::ProtocolError>(&message)) Log(error->reason);
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include <nlohmann/json.hpp>

namespace tune {

using Json = nlohmann::json;

// What the tuner tells a trial after each report (and what a scheduler decides).
enum class Decision { kContinue, kStop };
const char* ToString(Decision decision);

// Longest line either side accepts, newline excluded.
inline constexpr std::size_t kMaxLineBytes = 1 << 20;

struct HelloMessage {
  std::string trial_id;
  std::string token;
  std::int64_t pid = 0;
};

struct ReportMessage {
  std::int64_t iter = 0;   // the trial's own iteration counter (epoch); >= 0
  // A JSON object of numbers, strings, bools or nulls. Non-finite numbers travel as the strings
  // "nan", "inf", "-inf" and are decoded back into doubles (docs/protocol.md).
  Json metrics;
  std::optional<std::string> checkpoint;
};

struct DoneMessage {};
struct HeartbeatMessage {};

struct ProtocolError {
  std::string reason;  // e.g. "invalid JSON at byte 12: ...", "report.metrics must be an object"
};

using TrialMessage =
    std::variant<HelloMessage, ReportMessage, DoneMessage, HeartbeatMessage, ProtocolError>;

// Decodes one line (without its newline) sent by a trial.
TrialMessage DecodeTrialMessage(std::string_view line);

// Encoders return one line without the trailing newline.
std::string EncodeHello(const HelloMessage& hello);
std::string EncodeReport(const ReportMessage& report);
std::string EncodeReport(std::int64_t iter, const Json& metrics,
                         const std::optional<std::string>& checkpoint);
std::string EncodeDone();
std::string EncodeHeartbeat();
std::string EncodeDecision(Decision decision);

// Decodes the tuner's reply line; nullopt if it is not a valid decision.
std::optional<Decision> DecodeDecision(std::string_view line);

}  // namespace tune
