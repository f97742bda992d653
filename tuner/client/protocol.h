// The wire protocol between a trial and the tuner (see docs/protocol.md and DESIGN.md).
//
// Newline-delimited JSON over TCP, one connection per trial. The trial speaks first:
//   {"type":"hello","trial_id":"t_00001","token":"...","pid":1234}
//   {"type":"report","iter":3,"metrics":{"val_acc":0.81},"checkpoint":"/path"}   (checkpoint optional)
//   {"type":"heartbeat"}   (no reply: "still alive" during a long epoch, for trial_timeout_s)
//   {"type":"paused","checkpoint":"/path"}   (after a "pause" decision: saved, about to exit 0)
//   {"type":"done"}
// The tuner answers every report with exactly one line:
//   {"type":"decision","action":"continue"}, {"type":"decision","action":"stop"} or
//   {"type":"decision","action":"pause"}
// "pause": the trial saves a checkpoint, acknowledges with "paused" naming it, and exits 0; the
// tuner relaunches it later with TUNE_CHECKPOINT set to that checkpoint (maybe with a new config,
// for PBT). A trial that cannot checkpoint may treat "pause" as "stop": it is relaunched from its
// last reported checkpoint, or from scratch.
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

// What the tuner tells a trial after each report. (A scheduler's richer decision, core/decision.h,
// is translated into one of these by the tuner.)
enum class Action { kContinue, kStop, kPause };
const char* ToString(Action action);  // "continue", "stop", "pause"

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
// The acknowledgement of a "pause" decision: the checkpoint just saved (optional).
struct PausedMessage {
  std::optional<std::string> checkpoint;
};
struct HeartbeatMessage {};

struct ProtocolError {
  std::string reason;  // e.g. "invalid JSON at byte 12: ...", "report.metrics must be an object"
};

using TrialMessage =
    std::variant<HelloMessage, ReportMessage, DoneMessage, HeartbeatMessage, PausedMessage,
                 ProtocolError>;

// Decodes one line (without its newline) sent by a trial.
TrialMessage DecodeTrialMessage(std::string_view line);

// Encoders return one line without the trailing newline.
std::string EncodeHello(const HelloMessage& hello);
std::string EncodeReport(const ReportMessage& report);
std::string EncodeReport(std::int64_t iter, const Json& metrics,
                         const std::optional<std::string>& checkpoint);
std::string EncodeDone();
std::string EncodeHeartbeat();
std::string EncodePaused(const std::optional<std::string>& checkpoint);
std::string EncodeDecision(Action action);

// Decodes the tuner's reply line; nullopt if it is not a valid decision.
std::optional<Action> DecodeDecision(std::string_view line);

}  // namespace tune
