#include "tuner/events.h"

#include <cstdint>
#include <stdexcept>

#include <fmt/format.h>

namespace tune {
namespace {

std::string Dump(const Json& json) { return json.dump(-1, ' ', false, Json::error_handler_t::replace); }
std::string Quoted(const std::string& text) { return Dump(Json(text)); }
Json OptionalString(const std::optional<std::string>& text) { return text ? Json(*text) : Json(); }

TrialStatus EndStatus(const std::string& text) {
  if (text == "TERMINATED") return TrialStatus::kTerminated;
  if (text == "STOPPED") return TrialStatus::kStopped;
  throw std::runtime_error("status must be TERMINATED or STOPPED, got \"" + text + "\"");
}

// Reads fields of one event, naming the field in errors.
class Fields {
 public:
  explicit Fields(const Json& json) : json_(json) {}
  std::string String(const char* key) const {
    const Json& value = Get(key);
    if (!value.is_string()) throw Mistyped(key, "a string", value);
    return value.get<std::string>();
  }
  std::string StringOr(const char* key, const std::string& fallback) const {
    return json_.contains(key) && json_[key].is_string() ? json_[key].get<std::string>() : fallback;
  }
  double NumberOr(const char* key, double fallback) const {
    if (!json_.contains(key)) return fallback;
    const Json& value = json_[key];
    if (!value.is_number()) throw Mistyped(key, "a number", value);
    return value.get<double>();
  }
  std::int64_t IntegerOr(const char* key, std::int64_t fallback) const {
    if (!json_.contains(key)) return fallback;
    const Json& value = json_[key];
    if (!value.is_number_integer() ||
        (value.is_number_unsigned() && value.get<std::uint64_t>() > INT64_MAX)) {
      throw Mistyped(key, "an integer", value);
    }
    return value.get<std::int64_t>();
  }
  bool BoolOr(const char* key, bool fallback) const {
    if (!json_.contains(key)) return fallback;
    const Json& value = json_[key];
    if (!value.is_boolean()) throw Mistyped(key, "true or false", value);
    return value.get<bool>();
  }
  std::optional<std::string> OptionalString(const char* key) const {
    if (!json_.contains(key) || json_[key].is_null()) return std::nullopt;
    return String(key);
  }
  const Json& Get(const char* key) const {
    if (!json_.contains(key)) throw std::runtime_error(std::string("missing \"") + key + "\"");
    return json_[key];
  }
  static std::runtime_error Mistyped(const char* key, const char* expected, const Json& value) {
    std::string text = value.dump(-1, ' ', false, Json::error_handler_t::replace);
    if (text.size() > 80) text = text.substr(0, 77) + "...";
    return std::runtime_error(fmt::format("\"{}\" must be {}, got {}", key, expected, text));
  }

 private:
  const Json& json_;
};

Result DecodeResult(const Json& json) {
  if (!json.is_object()) throw Fields::Mistyped("result", "an object", json);
  Fields f(json);
  Result result;
  f.Get("training_iteration");
  result.training_iteration = f.IntegerOr("training_iteration", 0);
  f.Get("time_total_s");
  result.time_total_s = f.NumberOr("time_total_s", 0);
  result.timestamp = f.NumberOr("timestamp", 0.0);
  result.metrics = f.Get("metrics");
  return result;
}

struct Encoder {
  std::string operator()(const StartEvent& e) const {
    return Dump({{"event", "start"}, {"time", e.time}, {"spec_dir", e.spec_dir}, {"spec", e.spec}});
  }
  std::string operator()(const ResumeEvent& e) const {
    Json json = {{"event", "resume"}, {"time", e.time}};
    if (e.errored) json["errored"] = true;
    return Dump(json);
  }
  std::string operator()(const TrialCreated& e) const {
    return Dump({{"event", "trial_created"}, {"trial_id", e.trial_id}, {"params", e.params}});
  }
  std::string operator()(const TrialStarted& e) const {
    return Dump({{"event", "trial_started"},
                 {"trial_id", e.trial_id},
                 {"pid", e.pid},
                 {"gpus", e.gpus},
                 {"checkpoint", OptionalString(e.checkpoint)}});
  }
  // The one event per report: written as text rather than built as a Json first.
  std::string operator()(const ReportEvent& e) const {
    std::string text = fmt::format(
        R"({{"event":"report","trial_id":{},"decision":{},"result":{{"training_iteration":{},)"
        R"("time_total_s":{},"timestamp":{},"metrics":{}}})",
        Quoted(e.trial_id), Quoted(e.decision), e.result.training_iteration, e.result.time_total_s,
        e.result.timestamp, Dump(e.result.metrics));
    if (e.checkpoint) text += ",\"checkpoint\":" + Quoted(*e.checkpoint);
    if (!e.error.empty()) text += ",\"error\":" + Quoted(e.error);
    text += '}';
    return text;
  }
  std::string operator()(const TrialPaused& e) const {
    return Dump({{"event", "trial_paused"},
                 {"trial_id", e.trial_id},
                 {"checkpoint", OptionalString(e.checkpoint)}});
  }
  std::string operator()(const TrialExploited& e) const {
    return Dump({{"event", "trial_exploited"},
                 {"trial_id", e.trial_id},
                 {"source", e.source},
                 {"params", e.params},
                 {"checkpoint", OptionalString(e.checkpoint)},
                 {"iteration", e.iteration ? Json(*e.iteration) : Json()}});
  }
  std::string operator()(const TrialFailed& e) const {
    return Dump({{"event", "trial_failed"},
                 {"trial_id", e.trial_id},
                 {"reason", e.reason},
                 {"retry", e.retry}});
  }
  std::string operator()(const TrialEnded& e) const {
    Json json = {{"event", "trial_ended"}, {"trial_id", e.trial_id}, {"status", ToString(e.status)}};
    if (!e.reason.empty()) json["reason"] = e.reason;
    return Dump(json);
  }
  std::string operator()(const TrialRequeued& e) const {
    return Dump({{"event", "trial_requeued"}, {"trial_id", e.trial_id}});
  }
  std::string operator()(const ExperimentStopped& e) const {
    return Dump({{"event", "experiment_stopped"}, {"reason", e.reason}});
  }
  std::string operator()(const JournalSnapshot& e) const {
    Json trials = Json::array();
    for (const JournalSnapshot::Files& files : e.trials) {
      trials.push_back({{"trial_id", files.trial_id},
                        {"result_bytes", files.result_bytes},
                        {"progress_bytes", files.progress_bytes}});
    }
    Json json = {{"event", "snapshot"}, {"trials", trials}};
    if (e.state) {
      json["state"] = {{"file", e.state->file},
                       {"bytes", e.state->bytes},
                       {"crc", fmt::format("{:08x}", e.state->crc)}};
    }
    return Dump(json);
  }
  std::string operator()(const TrialPlaced& e) const {
    return Dump({{"event", "trial_placed"},
                 {"trial_id", e.trial_id},
                 {"job", e.job},
                 {"location", e.location}});
  }
};

JournalEvent DecodeFields(const Json& json, const std::string& type) {
  Fields f(json);
  if (type == "start") {
    return StartEvent{f.NumberOr("time", 0.0), f.StringOr("spec_dir", ""), f.Get("spec")};
  }
  if (type == "resume") return ResumeEvent{f.NumberOr("time", 0.0), f.BoolOr("errored", false)};
  if (type == "trial_created") return TrialCreated{f.String("trial_id"), f.Get("params")};
  if (type == "trial_started") {
    return TrialStarted{f.String("trial_id"), f.IntegerOr("pid", 0),
                        f.StringOr("gpus", ""), f.OptionalString("checkpoint")};
  }
  if (type == "report") {
    return ReportEvent{f.String("trial_id"), f.StringOr("decision", "continue"),
                       DecodeResult(f.Get("result")), f.OptionalString("checkpoint"),
                       f.StringOr("error", "")};
  }
  if (type == "trial_paused") return TrialPaused{f.String("trial_id"), f.OptionalString("checkpoint")};
  if (type == "trial_exploited") {
    const Json& iteration = json.contains("iteration") ? json["iteration"] : Json();
    return TrialExploited{f.String("trial_id"), f.String("source"), f.Get("params"),
                          f.OptionalString("checkpoint"),
                          iteration.is_number_integer()
                              ? std::optional<std::int64_t>(iteration.get<std::int64_t>())
                              : std::nullopt};
  }
  if (type == "trial_failed") {
    f.Get("retry");
    return TrialFailed{f.String("trial_id"), f.String("reason"), f.BoolOr("retry", false)};
  }
  if (type == "trial_ended") {
    return TrialEnded{f.String("trial_id"), EndStatus(f.String("status")), f.StringOr("reason", "")};
  }
  if (type == "trial_requeued") return TrialRequeued{f.String("trial_id")};
  if (type == "experiment_stopped") return ExperimentStopped{f.StringOr("reason", "")};
  if (type == "trial_placed") {
    return TrialPlaced{f.String("trial_id"), f.String("job"), f.StringOr("location", "")};
  }
  if (type == "snapshot") {
    const Json& trials = f.Get("trials");
    if (!trials.is_array()) throw Fields::Mistyped("trials", "an array", trials);
    JournalSnapshot snapshot;
    for (const Json& entry : trials) {
      if (!entry.is_object()) throw Fields::Mistyped("trials[]", "an object", entry);
      Fields files(entry);
      const std::int64_t result_bytes = files.IntegerOr("result_bytes", 0);
      const std::int64_t progress_bytes = files.IntegerOr("progress_bytes", 0);
      if (result_bytes < 0 || progress_bytes < 0) {
        throw std::runtime_error("trials[]: sizes must not be negative");
      }
      snapshot.trials.push_back({files.String("trial_id"), static_cast<std::uint64_t>(result_bytes),
                                 static_cast<std::uint64_t>(progress_bytes)});
    }
    if (json.contains("state") && !json["state"].is_null()) {
      const Json& state = json["state"];
      if (!state.is_object()) throw Fields::Mistyped("state", "an object", state);
      Fields fields(state);
      const std::string crc = fields.String("crc");
      const std::int64_t bytes = fields.IntegerOr("bytes", -1);
      if (bytes < 0) throw Fields::Mistyped("state.bytes", "a size", state["bytes"]);
      if (crc.size() != 8 || crc.find_first_not_of("0123456789abcdef") != std::string::npos) {
        throw Fields::Mistyped("state.crc", "8 hexadecimal digits", state["crc"]);
      }
      snapshot.state = JournalSnapshot::State{fields.String("file"), static_cast<std::uint64_t>(bytes),
                                              static_cast<std::uint32_t>(std::stoul(crc, nullptr, 16))};
    }
    return snapshot;
  }
  throw std::runtime_error("unknown type \"" + type + "\"");
}

}  // namespace

std::string Encode(const JournalEvent& event) { return std::visit(Encoder{}, event); }

JournalEvent DecodeEvent(const Json& json, std::size_t line) {
  std::string type = json.is_object() ? json.value("event", "") : "";
  try {
    return DecodeFields(json, type);
  } catch (const std::exception& error) {
    throw std::runtime_error(fmt::format("journal line {}: {}{}", line,
                                         type.empty() ? "" : "event \"" + type + "\": ",
                                         error.what()));
  }
}

std::string TrialIdOf(const JournalEvent& event) {
  return std::visit(
      [](const auto& e) -> std::string {
        if constexpr (std::is_same_v<std::decay_t<decltype(e)>, StartEvent> ||
                      std::is_same_v<std::decay_t<decltype(e)>, ResumeEvent> ||
                      std::is_same_v<std::decay_t<decltype(e)>, ExperimentStopped> ||
                      std::is_same_v<std::decay_t<decltype(e)>, JournalSnapshot>) {
          return "";
        } else {
          return e.trial_id;
        }
      },
      event);
}

}  // namespace tune
