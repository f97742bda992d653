#include "tuner/spec.h"

#include "tuner/journal.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "core/json_depth.h"
#include "core/options.h"
#include "tuner/dashboard.h"

namespace tune {
namespace {

const std::vector<std::string> kTopLevelKeys = {
    "name",    "description",       "metric",    "mode",    "num_samples",
    "max_concurrent", "max_failures", "resources_per_trial", "search", "scheduler",
    "reporter", "trainer",          "space",     "points_to_evaluate", "storage",
    "stop_grace_s", "trial_timeout_s", "connect_timeout_s", "journal_fsync", "stop", "callbacks",
    "dashboard", "max_log_bytes", "launcher", "constraints"};
const std::vector<std::string> kResourceKeys = {"gpu", "cpu", "workers"};
const std::vector<std::string> kLauncherKeys = {"type",  "partition", "account",    "time",
                                                "args",  "nodes",     "report_host"};

void RejectUnknownKeys(const Json& object, const std::vector<std::string>& known,
                       const std::string& path) {
  for (const auto& [key, value] : object.items()) {
    if (std::find(known.begin(), known.end(), key) == known.end()) {
      throw SpecError(path.empty() ? key : path + "." + key,
                      "unknown key" + DidYouMean(key, known));
    }
  }
}

// A key's value read by core/options.h (type and range checked, the JSON path in the message),
// or `fallback` when the key is absent.
std::int64_t IntegerAt(const Json& object, const std::string& key, std::int64_t fallback,
                       const std::string& path, const Range& range) {
  return object.contains(key) ? ReadInteger(object[key], path, range) : fallback;
}

double NumberAt(const Json& object, const std::string& key, double fallback,
                const std::string& path, const Range& range) {
  return object.contains(key) ? ReadNumber(object[key], path, range) : fallback;
}

// Splits "a.b.0.c" into a JSON pointer, creating nothing.
Json::json_pointer PointerFor(std::string_view dotted, std::string_view assignment) {
  std::string pointer;
  std::size_t start = 0;
  while (start <= dotted.size()) {
    std::size_t dot = dotted.find('.', start);
    if (dot == std::string_view::npos) dot = dotted.size();
    std::string_view part = dotted.substr(start, dot - start);
    if (part.empty()) {
      throw SpecError("", fmt::format("override \"{}\": empty key in \"{}\"", assignment, dotted));
    }
    std::string escaped;
    for (char c : part) {
      if (c == '~') escaped += "~0";
      else if (c == '/') escaped += "~1";
      else escaped += c;
    }
    pointer += "/" + escaped;
    start = dot + 1;
  }
  return Json::json_pointer(pointer);
}

// raw[pointer] = value, walked one level at a time so that an override can neither fail with a
// raw library error nor allocate without bound: a level that does not exist becomes an object
// (never an array: nlohmann's json_pointer made "x.55555550=1" an array of 55 million nulls,
// 2 GB under the overrides fuzzer), an array takes an index below its size or one past its end
// (to append), and a value on the way that is not an object or array (scheduler=fifo, then
// scheduler.max_t=2) is a SpecError naming the key.
void SetAt(Json& raw, const Json::json_pointer& pointer, Json value, std::string_view key) {
  const std::string name(key.substr(0, 80));
  std::vector<std::string> tokens;
  for (Json::json_pointer rest = pointer; !rest.empty(); rest.pop_back()) {
    tokens.push_back(rest.back());
  }
  Json* at = &raw;
  for (auto token = tokens.rbegin(); token != tokens.rend(); ++token) {
    if (at->is_null()) *at = Json::object();
    if (at->is_object()) {
      at = &(*at)[*token];
    } else if (at->is_array()) {
      const std::size_t size = at->size();
      const bool digits = !token->empty() && token->size() <= 19 &&
                          std::all_of(token->begin(), token->end(),
                                      [](char c) { return c >= '0' && c <= '9'; }) &&
                          (*token == "0" || (*token)[0] != '0');
      const std::size_t index = digits ? std::stoull(*token) : 0;
      if (!digits || index > size) {
        throw SpecError(name, fmt::format("cannot be set: \"{}\" is not an index of its array "
                                          "({} elements; {} appends)",
                                          token->substr(0, 40), size, size));
      }
      if (index == size) at->push_back(Json());
      at = &(*at)[index];
    } else {
      throw SpecError(name, "cannot be set: a value on its path is not an object");
    }
  }
  *at = std::move(value);
}

Json ParseValue(std::string_view text) {
  Json value = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (value.is_discarded()) return Json(std::string(text));
  return value;
}

// Splits a multirun list on commas outside brackets and quotes ("1,[2,3],'a'").
std::vector<std::string> SplitList(std::string_view text) {
  std::vector<std::string> parts;
  std::string current;
  int depth = 0;
  bool quoted = false;
  for (char c : text) {
    if (c == '"') quoted = !quoted;
    if (!quoted && (c == '[' || c == '{')) ++depth;
    if (!quoted && (c == ']' || c == '}')) --depth;
    if (c == ',' && depth == 0 && !quoted) {
      parts.push_back(current);
      current.clear();
    } else {
      current += c;
    }
  }
  parts.push_back(current);
  return parts;
}

LauncherConfig ParseLauncher(Json json) {
  LauncherConfig config;
  if (json.is_string()) json = Json{{"type", json}};
  if (!json.is_object()) {
    throw SpecError("launcher", "must be \"local\", \"slurm\" or an object with \"type\"");
  }
  RejectUnknownKeys(json, kLauncherKeys, "launcher");
  auto text = [&](const char* key, std::string& out) {
    if (!json.contains(key)) return;
    if (!json[key].is_string()) throw SpecError(std::string("launcher.") + key, "must be a string");
    out = json[key].get<std::string>();
  };
  text("type", config.type);
  if (config.type != "local" && config.type != "slurm") {
    throw SpecError("launcher.type",
                    "must be \"local\" or \"slurm\", got \"" + config.type + "\"");
  }
  text("partition", config.partition);
  text("account", config.account);
  text("time", config.time);
  text("report_host", config.report_host);
  if (json.contains("args")) {
    const Json& args = json["args"];
    if (!args.is_array() ||
        !std::all_of(args.begin(), args.end(), [](const Json& v) { return v.is_string(); })) {
      throw SpecError("launcher.args", "must be an array of strings, e.g. [\"--qos=high\"]");
    }
    for (const Json& arg : args) config.args.push_back(arg.get<std::string>());
  }
  config.nodes = IntegerAt(json, "nodes", 0, "launcher.nodes", Range::AtLeast(0));
  return config;
}

}  // namespace

Json LoadSpecFile(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw SpecError(file.string(), "cannot read");
  std::stringstream buffer;
  buffer << in.rdbuf();
  std::string text = buffer.str();
  // nlohmann gives a byte offset; people want line and column.
  auto where = [&](std::size_t offset) {
    offset = std::min(offset, text.size());
    std::size_t line = 1, column = 1;
    for (std::size_t i = 0; i < offset; ++i) {
      if (text[i] == '\n') {
        ++line;
        column = 1;
      } else {
        ++column;
      }
    }
    return fmt::format("{}:{}:{}", file.string(), line, column);
  };
  if (std::size_t deep = FindDeepNesting(text); deep != std::string::npos) {
    throw SpecError(where(deep), fmt::format("nested deeper than {} levels", kMaxJsonDepth));
  }
  try {
    return Json::parse(text);
  } catch (const Json::parse_error& error) {
    std::string reason = error.what();
    // Drop nlohmann's "[json.exception.parse_error.101] parse error at line 1, column 2: " prefix.
    if (auto colon = reason.find(": "); colon != std::string::npos) reason = reason.substr(colon + 2);
    throw SpecError(where(error.byte == 0 ? 0 : error.byte - 1), reason);
  } catch (const Json::out_of_range& error) {
    // A number past a double ("1e99999"): nlohmann's out_of_range.406, which names the number
    // but not where it is. Found by tune-fuzz-spec.
    std::string reason = error.what();
    if (auto bracket = reason.find("] "); bracket != std::string::npos) reason = reason.substr(bracket + 2);
    throw SpecError(file.string(), reason);
  }
}

void ApplyOverride(Json& raw, std::string_view assignment, bool multirun) {
  // Bytes that are not UTF-8 would become a JSON string that no dump can write (experiment.json,
  // error messages: nlohmann's type_error.316 escaped ParseSpec). Found by tune-fuzz-overrides.
  try {
    (void)Json(std::string(assignment)).dump();
  } catch (const Json::type_error&) {
    throw SpecError("", "an override is not valid UTF-8 text");
  }
  std::size_t equals = assignment.find('=');
  if (equals == std::string_view::npos || equals == 0) {
    throw SpecError("", fmt::format("override \"{}\" must look like key=value", assignment));
  }
  std::string_view key = assignment.substr(0, equals);
  std::string_view text = assignment.substr(equals + 1);
  if (!raw.is_object()) throw SpecError("", "the spec must be a JSON object");
  // The key's levels and the value's together stay within the spec's nesting limit.
  const std::size_t key_depth = static_cast<std::size_t>(std::count(key.begin(), key.end(), '.')) + 2;
  if (key_depth > kMaxJsonDepth ||
      FindDeepNesting(text, kMaxJsonDepth - key_depth) != std::string_view::npos) {
    throw SpecError(std::string(key.substr(0, 80)),
                    fmt::format("override nested deeper than {} levels", kMaxJsonDepth));
  }
  if (!multirun) {
    SetAt(raw, PointerFor(key, assignment), ParseValue(text), key);
    return;
  }
  Json values = Json::array();
  for (const std::string& part : SplitList(text)) values.push_back(ParseValue(part));
  std::string_view rest = key;
  if (key.rfind("space.", 0) == 0) {
    rest = key.substr(6);
  } else if (key.rfind("trainer.", 0) == 0) {
    rest = key.substr(8);
  } else if (key.find('.') != std::string_view::npos || key == "space" || key == "trainer") {
    throw SpecError(std::string(key),
                    "multirun (-m) sweeps space.* or trainer.* keys (or bare config keys)");
  }
  SetAt(raw, Json::json_pointer("/space") / PointerFor(rest, assignment),
        Json{{"grid_search", values}}, key);
}

ExperimentSpec ParseSpec(const Json& raw, const std::filesystem::path& spec_dir) {
  if (!raw.is_object()) throw SpecError("", std::string("the spec must be a JSON object, got ") + raw.type_name());
  RejectUnknownKeys(raw, kTopLevelKeys, "");

  ExperimentSpec spec;
  spec.raw = raw;
  spec.spec_dir = spec_dir;

  if (!raw.value("name", Json("x")).is_string()) throw SpecError("name", "must be a string");
  spec.name = raw.value("name", std::string("experiment"));
  if (spec.name.empty() || spec.name.find('/') != std::string::npos || spec.name == "." ||
      spec.name == "..") {
    throw SpecError("name", "must be a non-empty name without '/', got \"" + spec.name + "\"");
  }
  spec.objectives = ParseObjectives(raw.value("metric", Json()), raw.value("mode", Json()));
  spec.metric = spec.objectives.front().metric;
  spec.mode = spec.objectives.front().mode;
  spec.constraints = ParseConstraints(raw.value("constraints", Json()));
  spec.num_samples = IntegerAt(raw, "num_samples", 1, "num_samples", Range::AtLeast(1));
  spec.max_concurrent = IntegerAt(raw, "max_concurrent", 0, "max_concurrent", Range::AtLeast(0));
  spec.max_failures = IntegerAt(raw, "max_failures", 0, "max_failures", Range::AtLeast(-1));
  if (raw.contains("storage")) {
    if (!raw["storage"].is_string()) throw SpecError("storage", "must be a path string");
    spec.storage = raw["storage"].get<std::string>();
  }
  // Any finite duration is accepted: the timers clamp what they wait (tuner/timers.cc).
  spec.stop_grace_s =
      NumberAt(raw, "stop_grace_s", spec.stop_grace_s, "stop_grace_s", Range::AtLeast(0));
  spec.trial_timeout_s =
      NumberAt(raw, "trial_timeout_s", spec.trial_timeout_s, "trial_timeout_s", Range::AtLeast(0));
  spec.connect_timeout_s = NumberAt(raw, "connect_timeout_s", spec.connect_timeout_s,
                                    "connect_timeout_s", Range::AtLeast(0));
  spec.max_log_bytes = static_cast<std::uint64_t>(
      IntegerAt(raw, "max_log_bytes", static_cast<std::int64_t>(spec.max_log_bytes),
                "max_log_bytes", Range::AtLeast(0)));
  if (raw.contains("journal_fsync")) {
    spec.journal_fsync = raw["journal_fsync"];
    ParseJournalSync(spec.journal_fsync, "journal_fsync");
  }

  if (raw.contains("resources_per_trial")) {
    const Json& resources = raw["resources_per_trial"];
    if (!resources.is_object()) throw SpecError("resources_per_trial", "must be an object");
    RejectUnknownKeys(resources, kResourceKeys, "resources_per_trial");
    spec.resources_per_trial.gpu =
        NumberAt(resources, "gpu", 0, "resources_per_trial.gpu", Range::AtLeast(0));
    spec.resources_per_trial.cpu =
        NumberAt(resources, "cpu", 1, "resources_per_trial.cpu", Range::AtLeast(0));
    double gpu = spec.resources_per_trial.gpu;
    if (gpu < 0 || (gpu > 1 && gpu != std::floor(gpu))) {
      throw SpecError("resources_per_trial.gpu",
                      fmt::format("must be a fraction in [0, 1] or a whole number, got {}", gpu));
    }
    if (spec.resources_per_trial.cpu < 0) {
      throw SpecError("resources_per_trial.cpu", "must be >= 0");
    }
    // Processes per trial (DDP ranks): by default one per GPU when the trial has several.
    int workers = gpu >= 2 ? static_cast<int>(gpu) : 1;
    if (resources.contains("workers")) {
      const Json& value = resources["workers"];
      if (!value.is_number_integer() || value.get<std::int64_t>() < 1 ||
          value.get<std::int64_t>() > 1024) {
        throw SpecError("resources_per_trial.workers",
                        "must be an integer in [1, 1024], got " + value.dump());
      }
      workers = static_cast<int>(value.get<std::int64_t>());
    }
    if (workers > 1 && gpu > 0 && gpu < 1) {
      throw SpecError("resources_per_trial",
                      fmt::format("{} workers cannot share a fraction of a GPU (gpu {:g}): a "
                                  "multi-worker trial takes one whole GPU per worker (gpu {}) or "
                                  "none (gpu 0)",
                                  workers, gpu, workers));
    }
    // Several GPUs per worker: each rank holds a model split over them (the trainer's
    // model_parallel).
    if (workers > 1 && gpu >= 1 && std::fmod(gpu, workers) != 0) {
      throw SpecError("resources_per_trial",
                      fmt::format("{} workers need the same whole number of GPUs each, but gpu is "
                                  "{:g}: set gpu to {} (one each), a multiple of {} (a model split "
                                  "over several GPUs per worker), or 0 for CPU workers",
                                  workers, gpu, workers, workers));
    }
    spec.resources_per_trial.workers = workers;
  }

  for (const char* key : {"search", "reporter", "trainer"}) {
    if (raw.contains(key) && !raw[key].is_object()) {
      throw SpecError(key, std::string("must be an object, got ") + raw[key].type_name());
    }
  }
  spec.scheduler = ParseSchedulerOptions(raw.value("scheduler", Json()), "scheduler",
                                         SchedulerContext{spec.metric, spec.mode});
  if (spec.objectives.size() > 1 && spec.scheduler.name() != "fifo") {
    // ASHA, HyperBand, the median rule and PBT compare trials by one number.
    throw SpecError("scheduler.type",
                    "\"" + spec.scheduler.name() + "\" ranks trials by one metric, but metric " +
                        "lists " + std::to_string(spec.objectives.size()) +
                        " objectives; use \"fifo\" with several objectives");
  }
  spec.reporter = ParseTableOptions(raw.value("reporter", Json()), "reporter");
  if (!raw.value("dashboard", Json()).is_null()) {
    ParseDashboardAddress(raw["dashboard"], "dashboard");  // checked here, bound when it runs
    spec.dashboard = raw["dashboard"];
  }
  if (raw.contains("trainer")) spec.trainer = raw["trainer"];
  if (spec.trainer.contains("command")) {
    const Json& command = spec.trainer["command"];
    if (!command.is_array() || command.empty() ||
        !std::all_of(command.begin(), command.end(), [](const Json& v) { return v.is_string(); })) {
      throw SpecError("trainer.command", "must be a non-empty array of strings, e.g. "
                                         "[\"python3\", \"${spec_dir}/train.py\"]");
    }
    for (const Json& arg : command) spec.command.push_back(arg.get<std::string>());
  }

  if (!raw.contains("space")) throw SpecError("space", "required: the parameters to search");
  if (!raw["space"].is_object()) throw SpecError("space", "must be an object");
  spec.space = ParseSpace(raw["space"], "space");
  if (raw.contains("points_to_evaluate")) {
    spec.points_to_evaluate = raw["points_to_evaluate"];
    if (!spec.points_to_evaluate.is_array()) {
      throw SpecError("points_to_evaluate", "must be an array of configs");
    }
  }
  SearcherContext searcher{spec.metric, spec.mode, spec.num_samples, spec.max_concurrent, 0,
                           spec.points_to_evaluate};
  searcher.objectives = spec.objectives;
  searcher.constraints = spec.constraints;
  spec.search = ParseSearcherOptions(raw.value("search", Json()), "search", searcher);
  if (raw.contains("launcher")) spec.launcher = ParseLauncher(raw["launcher"]);
  spec.stop = ParseStopOptions(raw.value("stop", Json()), "stop", spec.metric, spec.mode);
  // The scheduler's time_attr is the x axis of the reporters' curves (TensorBoard's step).
  CallbackContext callbacks;
  if (raw.contains("scheduler") && raw["scheduler"].is_object() &&
      raw["scheduler"].value("time_attr", Json()).is_string()) {
    callbacks.time_attr = raw["scheduler"]["time_attr"];
  }
  spec.callbacks = ParseCallbackOptions(raw.value("callbacks", Json()), "callbacks", callbacks);
  return spec;
}

}  // namespace tune
