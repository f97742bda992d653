#include "tuner/client/protocol.h"

#include <cmath>
#include <cstdio>
#include <limits>

namespace tune {
namespace {

// Longest piece of client-supplied text quoted in an error reason: reasons end up in logs and in
// the journal, so a hostile client must not be able to make them huge.
constexpr std::size_t kMaxQuotedBytes = 64;

// Client bytes made safe to log: printable ASCII stays, anything else (control bytes, invalid or
// valid UTF-8) becomes \xNN, so the reason is always valid UTF-8 and fits on one line. Truncated
// to kMaxQuotedBytes input bytes.
std::string Printable(std::string_view text) {
  std::string out;
  std::size_t n = std::min(text.size(), kMaxQuotedBytes);
  out.reserve(n + 8);
  for (std::size_t i = 0; i < n; ++i) {
    auto byte = static_cast<unsigned char>(text[i]);
    if (byte >= 0x20 && byte < 0x7f && byte != '\\') {
      out += static_cast<char>(byte);
    } else {
      char escaped[5];
      std::snprintf(escaped, sizeof escaped, "\\x%02x", byte);
      out += escaped;
    }
  }
  if (text.size() > n) out += "...";
  return out;
}

// nlohmann's parse_error::what() is "[json.exception.parse_error.101] parse error at line 1,
// column 7: syntax error while parsing value - ..."; keep only the part after the position.
std::string ParseErrorReason(const Json::parse_error& error) {
  std::string_view what = error.what();
  std::size_t column = what.find("column ");
  if (column != std::string_view::npos) {
    std::size_t colon = what.find(": ", column);
    if (colon != std::string_view::npos) what.remove_prefix(colon + 2);
  }
  if (what.find("UTF-8") != std::string_view::npos) {
    return "invalid UTF-8 at byte " + std::to_string(error.byte) + " (JSON text must be UTF-8)";
  }
  return "invalid JSON at byte " + std::to_string(error.byte) + ": " + Printable(what);
}

// The whole message is a JSON object with a string "type"; returns an error reason or "".
std::string CheckEnvelope(const Json& json) {
  if (!json.is_object())
    return std::string("message must be a JSON object, got ") + json.type_name();
  auto type = json.find("type");
  if (type == json.end()) return "message has no \"type\"";
  if (!type->is_string()) return "message \"type\" must be a string";
  return "";
}

bool IsInt64(const Json& value) {
  if (value.is_number_integer() && !value.is_number_unsigned()) return true;
  return value.is_number_unsigned() &&
         value.get<std::uint64_t>() <=
             static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
}

TrialMessage DecodeHello(const Json& json) {
  HelloMessage hello;
  auto trial_id = json.find("trial_id");
  if (trial_id == json.end() || !trial_id->is_string()) {
    return ProtocolError{"hello.trial_id must be a string"};
  }
  auto token = json.find("token");
  if (token == json.end() || !token->is_string())
    return ProtocolError{"hello.token must be a string"};
  auto pid = json.find("pid");
  if (pid == json.end() || !IsInt64(*pid)) return ProtocolError{"hello.pid must be an integer"};
  hello.trial_id = trial_id->get<std::string>();
  hello.token = token->get<std::string>();
  hello.pid = pid->get<std::int64_t>();
  return hello;
}

// Non-finite floats cannot be JSON, so both clients send them as these strings (docs/protocol.md);
// turning them back into doubles lets the tuner see a NaN loss as a number and fail the trial.
bool NonFiniteFromString(const std::string& text, double* value) {
  if (text == "nan") {
    *value = std::numeric_limits<double>::quiet_NaN();
  } else if (text == "inf") {
    *value = std::numeric_limits<double>::infinity();
  } else if (text == "-inf") {
    *value = -std::numeric_limits<double>::infinity();
  } else {
    return false;
  }
  return true;
}

TrialMessage DecodeReport(Json& json) {
  ReportMessage report;
  auto iter = json.find("iter");
  if (iter == json.end() || !IsInt64(*iter) || iter->get<std::int64_t>() < 0) {
    return ProtocolError{"report.iter must be an integer >= 0"};
  }
  report.iter = iter->get<std::int64_t>();
  auto metrics = json.find("metrics");
  if (metrics == json.end() || !metrics->is_object()) {
    return ProtocolError{"report.metrics must be an object"};
  }
  for (auto& [key, value] : metrics->items()) {
    if (value.is_string()) {
      double number = 0;
      if (NonFiniteFromString(value.get_ref<const std::string&>(), &number)) value = number;
    } else if (value.is_structured() || value.is_binary()) {
      return ProtocolError{"report.metrics." + Printable(key) +
                           " must be a number, string, bool or null"};
    }
  }
  auto checkpoint = json.find("checkpoint");
  if (checkpoint != json.end() && !checkpoint->is_null()) {
    if (!checkpoint->is_string()) return ProtocolError{"report.checkpoint must be a string"};
    report.checkpoint = std::move(checkpoint->get_ref<std::string&>());
  }
  report.metrics = std::move(*metrics);
  return report;
}

std::string Dump(const Json& json) {
  // Replace invalid UTF-8 in user strings rather than throwing mid-training.
  return json.dump(-1, ' ', false, Json::error_handler_t::replace);
}

// Metrics on the way out: non-finite doubles become "nan"/"inf"/"-inf" (dump() would write null).
std::string EncodeMetrics(const Json& metrics) {
  bool clean = true;
  if (metrics.is_object()) {
    for (const auto& value : metrics) {
      if (value.is_number_float() && !std::isfinite(value.get<double>())) clean = false;
    }
  }
  if (clean) return Dump(metrics);
  Json out = metrics;
  for (auto& value : out) {
    if (!value.is_number_float()) continue;
    double number = value.get<double>();
    if (std::isnan(number)) {
      value = "nan";
    } else if (std::isinf(number)) {
      value = number > 0 ? "inf" : "-inf";
    }
  }
  return Dump(out);
}

}  // namespace

const char* ToString(Action action) {
  switch (action) {
    case Action::kContinue: return "continue";
    case Action::kStop: return "stop";
    case Action::kPause: return "pause";
  }
  return "?";
}

TrialMessage DecodeTrialMessage(std::string_view line) {
  Json json;
  try {
    json = Json::parse(line.begin(), line.end());
  } catch (const Json::parse_error& error) {
    return ProtocolError{ParseErrorReason(error)};
  } catch (const Json::exception& error) {
    return ProtocolError{std::string("invalid JSON: ") + Printable(error.what())};
  }
  std::string envelope_error = CheckEnvelope(json);
  if (!envelope_error.empty()) return ProtocolError{std::move(envelope_error)};
  const auto& type = json["type"].get_ref<const std::string&>();
  if (type == "report") return DecodeReport(json);
  if (type == "hello") return DecodeHello(json);
  if (type == "done") return DoneMessage{};
  if (type == "heartbeat") return HeartbeatMessage{};
  if (type == "paused") {
    PausedMessage paused;
    auto checkpoint = json.find("checkpoint");
    if (checkpoint != json.end() && !checkpoint->is_null()) {
      if (!checkpoint->is_string()) return ProtocolError{"paused.checkpoint must be a string"};
      paused.checkpoint = checkpoint->get<std::string>();
    }
    return paused;
  }
  return ProtocolError{"unknown message type \"" + Printable(type) + "\""};
}

std::string EncodeHello(const HelloMessage& hello) {
  return Json{
      {"type", "hello"}, {"trial_id", hello.trial_id}, {"token", hello.token}, {"pid", hello.pid}}
      .dump(-1, ' ', false, Json::error_handler_t::replace);
}

std::string EncodeReport(std::int64_t iter, const Json& metrics,
                         const std::optional<std::string>& checkpoint) {
  // Written as text: building a Json object first would copy the metrics on every report.
  std::string line = R"({"type":"report","iter":)" + std::to_string(iter) + R"(,"metrics":)";
  line += EncodeMetrics(metrics);
  if (checkpoint) line += R"(,"checkpoint":)" + Dump(*checkpoint);
  line += '}';
  return line;
}

std::string EncodeReport(const ReportMessage& report) {
  return EncodeReport(report.iter, report.metrics, report.checkpoint);
}

std::string EncodeDone() { return R"({"type":"done"})"; }
std::string EncodeHeartbeat() { return R"({"type":"heartbeat"})"; }

std::string EncodePaused(const std::optional<std::string>& checkpoint) {
  return checkpoint ? R"({"type":"paused","checkpoint":)" + Dump(*checkpoint) + "}"
                    : std::string(R"({"type":"paused"})");
}

std::string EncodeDecision(Action action) {
  return std::string(R"({"type":"decision","action":")") + ToString(action) + "\"}";
}

std::optional<Action> DecodeDecision(std::string_view line) {
  // The tuner's own encoding is matched directly: this is on every report's round trip.
  if (line == R"({"type":"decision","action":"continue"})") return Action::kContinue;
  if (line == R"({"type":"decision","action":"stop"})") return Action::kStop;
  Json json = Json::parse(line.begin(), line.end(), nullptr, /*allow_exceptions=*/false);
  if (!json.is_object()) return std::nullopt;
  auto type = json.find("type");
  auto action = json.find("action");
  if (type == json.end() || *type != "decision" || action == json.end()) return std::nullopt;
  if (*action == "continue") return Action::kContinue;
  if (*action == "stop") return Action::kStop;
  if (*action == "pause") return Action::kPause;
  return std::nullopt;
}

}  // namespace tune
