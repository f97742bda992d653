#include "tuner/show.h"

#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <variant>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "reporters/csv.h"
#include "reporters/reporters.h"
#include "reporters/text_table.h"
#include "tuner/events.h"
#include "tuner/journal.h"
#include "tuner/spec.h"

namespace tune {
namespace {

namespace fs = std::filesystem;

constexpr std::size_t kMaxDefaultParameterColumns = 8;

// The pid of the process holding the flock(2) of `dir`/.lock (tuner/experiment_lock.h), 0 when
// none does. Read from /proc/locks, so the lock is never taken, not even for a moment: a tune
// starting at that moment must not find the experiment in use.
std::int64_t LockHolder(const fs::path& dir) {
  const fs::path lock = dir / ".lock";
  struct stat info {};
  if (::stat(lock.c_str(), &info) != 0) return 0;
  std::int64_t recorded = 0;  // the pid the holder wrote into the file
  {
    std::ifstream in(lock);
    in >> recorded;
  }
  std::ifstream locks("/proc/locks");
  // "1: FLOCK  ADVISORY  WRITE 4242 00:2a:131090 0 EOF"; waiters have "->" after the number.
  for (std::string line; std::getline(locks, line);) {
    std::istringstream fields(line);
    std::string number, type, advisory, access, device;
    std::int64_t pid = 0;
    if (!(fields >> number >> type >> advisory >> access >> pid >> device)) continue;
    if (type != "FLOCK") continue;
    const std::size_t colon = device.rfind(':');
    if (colon == std::string::npos) continue;
    const std::string inode = device.substr(colon + 1);
    if (inode != std::to_string(info.st_ino)) continue;
    // The inode matches; the recorded pid guards against the same inode number on another
    // file system.
    if (recorded == 0 || recorded == pid) return pid;
  }
  return 0;
}

// Folds one journal event into the trial it is about, as the tuner's Apply* do.
void Apply(const JournalEvent& event, std::size_t line, ExperimentRecord& record,
           std::map<std::string, std::size_t>& index,
           const std::shared_ptr<const Json>& trainer) {
  if (const auto* stopped = std::get_if<ExperimentStopped>(&event)) {
    record.stop_reason = stopped->reason;
    return;
  }
  const std::string id = TrialIdOf(event);
  if (id.empty()) return;  // start, resume
  if (const auto* created = std::get_if<TrialCreated>(&event)) {
    TrialRecord trial;
    trial.trial.id = id;
    trial.trial.params = created->params;
    trial.trial.trainer = trainer;
    trial.trial.dir = record.dir / id;
    index[id] = record.trials.size();
    record.trials.push_back(std::move(trial));
    return;
  }
  auto found = index.find(id);
  if (found == index.end()) {
    throw SpecError("", fmt::format("{}:{}: the journal names trial {} before creating it",
                                    (record.dir / "journal.jsonl").string(), line, id));
  }
  TrialRecord& entry = record.trials[found->second];
  Trial& trial = entry.trial;
  if (std::holds_alternative<TrialStarted>(event)) {
    trial.status = TrialStatus::kRunning;
  } else if (const auto* report = std::get_if<ReportEvent>(&event)) {
    trial.last_result = report->result;
    trial.num_results += 1;
    trial.time_total_s = report->result.time_total_s;
    if (report->checkpoint) trial.last_checkpoint = report->checkpoint;
    const double value = report->result.Get(record.metric);
    if (std::isfinite(value) && (!entry.best || IsBetter(value, *entry.best, record.mode))) {
      entry.best = value;
      entry.best_iteration = report->result.training_iteration;
    }
  } else if (const auto* paused = std::get_if<TrialPaused>(&event)) {
    trial.status = TrialStatus::kPaused;
    if (paused->checkpoint) trial.last_checkpoint = paused->checkpoint;
  } else if (const auto* exploited = std::get_if<TrialExploited>(&event)) {
    trial.params = exploited->params;
    trial.num_exploits += 1;
    if (exploited->checkpoint) trial.last_checkpoint = exploited->checkpoint;
  } else if (const auto* failed = std::get_if<TrialFailed>(&event)) {
    trial.num_failures += 1;
    trial.error = failed->reason;
    trial.status = failed->retry ? TrialStatus::kPending : TrialStatus::kError;
  } else if (const auto* ended = std::get_if<TrialEnded>(&event)) {
    trial.status = ended->status;
  } else if (std::holds_alternative<TrialRequeued>(event)) {
    trial.status = TrialStatus::kPending;
  }
}

// ---- columns ----

enum class Kind { kTrialId, kStatus, kIteration, kTime, kFailures, kError, kParam, kMetric,
                  kBest, kBestIteration, kParetoRank };

struct Column {
  std::string name;  // as --columns names it and the CSV header shows it
  Kind kind;
  std::string key;   // the param path or the metric name
};

const std::vector<std::pair<std::string, Kind>>& Builtins() {
  static const std::vector<std::pair<std::string, Kind>> builtins = {
      {"trial_id", Kind::kTrialId},         {"status", Kind::kStatus},
      {"training_iteration", Kind::kIteration}, {"iter", Kind::kIteration},
      {"time_total_s", Kind::kTime},        {"time", Kind::kTime},
      {"num_failures", Kind::kFailures},    {"error", Kind::kError},
      {"pareto_rank", Kind::kParetoRank}};
  return builtins;
}

Column BuiltinColumn(Kind kind) {
  for (const auto& [name, builtin] : Builtins()) {
    if (builtin == kind) return {name, kind, ""};
  }
  return {"", kind, ""};
}

std::set<std::string> ParamPaths(const ExperimentRecord& record) {
  std::set<std::string> paths;
  for (const TrialRecord& trial : record.trials) CollectLeafPaths(trial.trial.params, "", paths);
  return paths;
}

// The metrics of the trials' last results, the experiment's objectives first, then by name.
std::vector<std::string> MetricNames(const ExperimentRecord& record) {
  std::set<std::string> names;
  for (const TrialRecord& trial : record.trials) {
    if (!trial.trial.last_result || !trial.trial.last_result->metrics.is_object()) continue;
    for (auto it = trial.trial.last_result->metrics.begin();
         it != trial.trial.last_result->metrics.end(); ++it) {
      names.insert(it.key());
    }
  }
  std::vector<std::string> ordered;
  for (const Objective& objective : record.objectives) {
    names.erase(objective.metric);
    ordered.push_back(objective.metric);
  }
  if (ordered.empty()) {
    names.erase(record.metric);
    ordered.push_back(record.metric);
  }
  ordered.insert(ordered.end(), names.begin(), names.end());
  return ordered;
}

}  // namespace

std::vector<std::string> ShowColumns(const ExperimentRecord& record) {
  std::vector<std::string> known;
  for (const auto& [builtin, kind] : Builtins()) known.push_back(builtin);
  for (const std::string& param : ParamPaths(record)) known.push_back("config/" + param);
  const std::vector<std::string> metrics = MetricNames(record);
  known.insert(known.end(), metrics.begin(), metrics.end());
  known.push_back("best/" + record.metric);
  known.push_back("best/training_iteration");
  return known;
}

const std::vector<std::string>& ShowStatuses() {
  static const std::vector<std::string> kStatuses = {"PENDING", "RUNNING", "PAUSED",
                                                     "TERMINATED", "STOPPED", "ERROR"};
  return kStatuses;
}

const std::vector<std::string>& ShowOrders() {
  static const std::vector<std::string> kOrders = {"asc", "desc"};
  return kOrders;
}

namespace {

// Resolves a column name; throws SpecError naming `option`.
Column Resolve(const std::string& name, const ExperimentRecord& record, const std::string& option) {
  for (const auto& [builtin, kind] : Builtins()) {
    if (name == builtin) return {name, kind, ""};
  }
  const std::set<std::string> params = ParamPaths(record);
  const std::vector<std::string> metrics = MetricNames(record);
  auto has_metric = [&](const std::string& metric) {
    return std::find(metrics.begin(), metrics.end(), metric) != metrics.end();
  };
  for (const char* prefix : {"config/", "config."}) {
    if (name.rfind(prefix, 0) == 0 && params.count(name.substr(7)) != 0) {
      return {"config/" + name.substr(7), Kind::kParam, name.substr(7)};
    }
  }
  if (name == "best/" + record.metric || name == "best") {
    return {"best/" + record.metric, Kind::kBest, record.metric};
  }
  if (name == "best/training_iteration") return {name, Kind::kBestIteration, ""};
  if (params.count(name) != 0) return {"config/" + name, Kind::kParam, name};
  if (has_metric(name)) return {name, Kind::kMetric, name};
  const std::vector<std::string> known = ShowColumns(record);
  std::string list;
  for (const std::string& column : known) list += (list.empty() ? "" : ", ") + column;
  throw SpecError(option, fmt::format("no column, parameter or metric \"{}\" in {} (known: {}){}",
                                      name, record.dir.string(), list, DidYouMean(name, known)));
}

// The value a trial has in a column (null when it has none).
Json ValueOf(const TrialRecord& record, const Column& column) {
  const Trial& trial = record.trial;
  switch (column.kind) {
    case Kind::kTrialId: return trial.id;
    case Kind::kStatus: return ToString(trial.status);
    case Kind::kIteration:
      return trial.last_result ? Json(trial.last_result->training_iteration) : Json();
    case Kind::kTime: return trial.last_result ? Json(trial.time_total_s) : Json();
    case Kind::kFailures: return trial.num_failures;
    case Kind::kError: return trial.error.empty() ? Json() : Json(trial.error);
    case Kind::kParam: {
      const Json* value = Lookup(trial.params, column.key);
      return value ? *value : Json();
    }
    case Kind::kMetric: {
      if (!trial.last_result) return Json();
      const Json* value = Lookup(trial.last_result->metrics, column.key);
      return value ? *value : Json();
    }
    case Kind::kBest: return record.best ? Json(*record.best) : Json();
    case Kind::kBestIteration: return record.best ? Json(record.best_iteration) : Json();
    case Kind::kParetoRank: return record.pareto_rank >= 0 ? Json(record.pareto_rank) : Json();
  }
  return Json();
}

std::vector<Column> DefaultColumns(const ExperimentRecord& record, ShowOptions::Format format) {
  std::vector<Column> columns = {BuiltinColumn(Kind::kTrialId), BuiltinColumn(Kind::kStatus)};
  const std::set<std::string> params = ParamPaths(record);
  std::size_t shown = 0;
  for (const std::string& path : params) {
    if (format == ShowOptions::Format::kTable && shown++ == kMaxDefaultParameterColumns) break;
    columns.push_back({"config/" + path, Kind::kParam, path});
  }
  const bool several = record.objectives.size() > 1;
  if (format == ShowOptions::Format::kTable) {
    for (const Objective& objective : record.objectives) {
      columns.push_back({objective.metric, Kind::kMetric, objective.metric});
    }
  } else {
    for (const std::string& metric : MetricNames(record)) {
      columns.push_back({metric, Kind::kMetric, metric});
    }
  }
  if (several) columns.push_back(BuiltinColumn(Kind::kParetoRank));
  columns.push_back({"best/" + record.metric, Kind::kBest, record.metric});
  if (format != ShowOptions::Format::kTable) {
    columns.push_back({"best/training_iteration", Kind::kBestIteration, ""});
  }
  columns.push_back(BuiltinColumn(Kind::kIteration));
  columns.push_back(BuiltinColumn(Kind::kTime));
  const bool any_failure = std::any_of(record.trials.begin(), record.trials.end(),
                                       [](const TrialRecord& t) { return t.trial.num_failures > 0; });
  if (format != ShowOptions::Format::kTable || any_failure) {
    columns.push_back(BuiltinColumn(Kind::kFailures));
    columns.push_back(BuiltinColumn(Kind::kError));
  }
  return columns;
}

// Orders JSON values for sorting: numbers by value, then strings, then anything else by its
// text; nulls (and NaN) are put last by the caller whatever the direction.
bool Less(const Json& a, const Json& b) {
  if (a.is_number() && b.is_number()) return a.get<double>() < b.get<double>();
  if (a.is_number() != b.is_number()) return a.is_number();
  if (a.is_string() && b.is_string()) return a.get_ref<const std::string&>() < b.get_ref<const std::string&>();
  return a.dump() < b.dump();
}

bool Missing(const Json& value) {
  return value.is_null() || (value.is_number_float() && std::isnan(value.get<double>()));
}

std::vector<const TrialRecord*> SelectRows(const ExperimentRecord& record,
                                           const ShowOptions& options) {
  std::set<std::string> statuses;
  for (const std::string& status : options.statuses) statuses.insert(status);
  std::vector<const TrialRecord*> rows;
  if (options.pareto && record.objectives.size() < 2) {
    throw SpecError("--pareto", fmt::format("{} has one objective ({}): no Pareto front",
                                            record.dir.string(), record.metric));
  }
  for (const TrialRecord& trial : record.trials) {
    if (options.pareto && trial.pareto_rank != 0) continue;
    if (statuses.empty() || statuses.count(ToString(trial.trial.status)) != 0) rows.push_back(&trial);
  }
  std::string sort = options.sort;
  if (sort.empty() && options.top) sort = record.objectives.size() > 1 ? "pareto_rank" : record.metric;
  if (!sort.empty()) {
    const Column column = Resolve(sort, record, "--sort");
    // An objective (last, or best for the first) sorts best first by default; the rest
    // ascending (pareto_rank: the front first).
    bool descending = false;
    if (column.kind == Kind::kMetric || column.kind == Kind::kBest) {
      for (const Objective& objective : record.objectives) {
        if (column.key == objective.metric) descending = objective.mode == Mode::kMax;
      }
    }
    if (!options.order.empty()) descending = options.order == "desc";
    std::stable_sort(rows.begin(), rows.end(), [&](const TrialRecord* a, const TrialRecord* b) {
      const Json left = ValueOf(*a, column), right = ValueOf(*b, column);
      if (Missing(left) || Missing(right)) return !Missing(left) && Missing(right);
      return descending ? Less(right, left) : Less(left, right);
    });
  }
  if (options.top && rows.size() > *options.top) rows.resize(*options.top);
  return rows;
}

std::vector<Column> ChosenColumns(const ExperimentRecord& record, const ShowOptions& options) {
  if (options.columns.empty()) return DefaultColumns(record, options.format);
  std::vector<Column> columns;
  for (const std::string& name : options.columns) columns.push_back(Resolve(name, record, "--columns"));
  return columns;
}

// The whole record of a trial, for --json.
Json TrialJson(const TrialRecord& record, const ExperimentRecord& experiment) {
  const std::string& metric = experiment.metric;
  const Trial& trial = record.trial;
  Json last = nullptr;
  if (trial.last_result) {
    last = trial.last_result->metrics.is_object() ? trial.last_result->metrics : Json::object();
    last["training_iteration"] = trial.last_result->training_iteration;
    last["time_total_s"] = trial.last_result->time_total_s;
  }
  Json best = nullptr;
  if (record.best) {
    best = {{"metric", metric}, {"value", *record.best}, {"training_iteration", record.best_iteration}};
  }
  Json json = {{"trial_id", trial.id},
               {"status", ToString(trial.status)},
               {"params", trial.params},
               {"config", trial.config()},
               {"last_result", last},
               {"best", best},
               {"num_results", trial.num_results},
               {"time_total_s", trial.time_total_s},
               {"num_failures", trial.num_failures},
               {"error", trial.error.empty() ? Json() : Json(trial.error)},
               {"last_checkpoint", trial.last_checkpoint ? Json(*trial.last_checkpoint) : Json()},
               {"dir", trial.dir.string()}};
  if (experiment.objectives.size() > 1) {
    // Every objective's last value, by metric (null when not reported), and the rank.
    Json objectives = Json::object();
    for (const Objective& objective : experiment.objectives) {
      const Json* value = trial.last_result ? Lookup(trial.last_result->metrics, objective.metric) : nullptr;
      objectives[objective.metric] = value ? *value : Json();
    }
    json["objectives"] = std::move(objectives);
    json["pareto_rank"] = record.pareto_rank >= 0 ? Json(record.pareto_rank) : Json();
  }
  return json;
}

std::string Dump(const Json& json) {
  return json.dump(2, ' ', false, Json::error_handler_t::replace) + "\n";
}

void AppendCsvRow(const std::vector<Json>& values, fmt::memory_buffer& out) {
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (i > 0) out.push_back(',');
    AppendCsvValue(values[i], out);
  }
  out.push_back('\n');
}

std::string CountsText(const std::vector<TrialRecord>& trials) {
  std::map<std::string, std::size_t> counts;
  for (const TrialRecord& trial : trials) ++counts[ToString(trial.trial.status)];
  std::string text;
  for (const char* status : {"RUNNING", "PENDING", "PAUSED", "TERMINATED", "STOPPED", "ERROR"}) {
    if (counts[status] == 0) continue;
    text += fmt::format("{}{} {}", text.empty() ? "" : ", ", counts[status], status);
  }
  return text;
}

std::string StateText(const ExperimentRecord& record) {
  std::string text = record.state;
  if (record.state == "running") text += fmt::format(" (tune pid {})", record.tune_pid);
  if (record.state == "interrupted") {
    text += fmt::format(": no tune runs it; `tune resume {}` continues it", record.dir.string());
  }
  if (!record.stop_reason.empty()) text += "; stopped: " + OneLine(record.stop_reason);
  return text;
}

const TrialRecord* Best(const ExperimentRecord& record, const std::vector<const TrialRecord*>& among) {
  std::vector<Trial> trials;
  for (const TrialRecord* trial : among) trials.push_back(trial->trial);
  const Trial* best = BestTrial(trials, record.metric, record.mode);
  if (best == nullptr) return nullptr;
  return among[static_cast<std::size_t>(best - trials.data())];
}

std::string RenderOne(const ExperimentRecord& record, const ShowOptions& options) {
  const std::vector<const TrialRecord*> rows = SelectRows(record, options);
  if (options.format == ShowOptions::Format::kJson && options.columns.empty()) {
    Json array = Json::array();
    for (const TrialRecord* row : rows) array.push_back(TrialJson(*row, record));
    return Dump(array);
  }
  const std::vector<Column> columns = ChosenColumns(record, options);
  if (options.format == ShowOptions::Format::kJson) {
    Json array = Json::array();
    for (const TrialRecord* row : rows) {
      Json object = Json::object();
      for (const Column& column : columns) object[column.name] = ValueOf(*row, column);
      array.push_back(std::move(object));
    }
    return Dump(array);
  }
  if (options.format == ShowOptions::Format::kCsv) {
    fmt::memory_buffer out;
    std::vector<Json> header;
    for (const Column& column : columns) header.push_back(column.name);
    AppendCsvRow(header, out);
    for (const TrialRecord* row : rows) {
      std::vector<Json> values;
      for (const Column& column : columns) values.push_back(ValueOf(*row, column));
      AppendCsvRow(values, out);
    }
    return fmt::to_string(out);
  }
  std::string metrics;
  for (const Objective& objective : record.objectives) {
    metrics += fmt::format("{}{} ({})", metrics.empty() ? "" : ", ", objective.metric,
                           ToString(objective.mode));
  }
  std::string out = fmt::format("Experiment: {} ({})\nState: {}\n{}: {}\n",
                                OneLine(record.name), record.dir.string(), StateText(record),
                                record.objectives.size() > 1 ? "Metrics" : "Metric", metrics);
  out += fmt::format("Number of trials: {}{}{}\n", record.trials.size(),
                     record.trials.empty() ? "" : " (" + CountsText(record.trials) + ")",
                     rows.size() == record.trials.size() ? "" : fmt::format("; {} shown", rows.size()));
  std::vector<std::string> header;
  for (const Column& column : columns) header.push_back(column.name);
  std::vector<std::vector<Cell>> cells;
  for (const TrialRecord* row : rows) {
    std::vector<Cell> line;
    for (const Column& column : columns) line.push_back(FormatValue(ValueOf(*row, column)));
    cells.push_back(std::move(line));
  }
  AppendTable(header, cells, out);
  std::vector<const TrialRecord*> all;
  for (const TrialRecord& trial : record.trials) all.push_back(&trial);
  if (record.objectives.size() > 1) {
    std::string front;
    std::size_t size = 0;
    for (const TrialRecord& trial : record.trials) {
      if (trial.pareto_rank != 0) continue;
      front += (front.empty() ? "" : ", ") + trial.trial.id;
      ++size;
    }
    out += fmt::format("Pareto front: {} trial{}{}{}\n", size, size == 1 ? "" : "s",
                       size ? ": " : "", front);
  } else if (const TrialRecord* best = Best(record, all)) {
    out += fmt::format("Best trial: {} with {}={} (last result, training_iteration {})\n",
                       best->trial.id, record.metric,
                       FormatNumber(best->trial.last_result->Get(record.metric)),
                       best->trial.last_result->training_iteration);
    out += "Best trial config: " + OneLine(best->trial.config().dump(-1, ' ', false,
                                                                   Json::error_handler_t::replace)) + "\n";
  }
  return out;
}

// Several experiments: one row each, with its best trial among those --status keeps.
std::string RenderComparison(const std::vector<ExperimentRecord>& experiments,
                             const ShowOptions& options) {
  struct Row {
    const ExperimentRecord* record;
    const TrialRecord* best;
  };
  std::vector<Row> rows;
  std::set<std::string> params;
  for (const ExperimentRecord& record : experiments) {
    ShowOptions filter;
    filter.statuses = options.statuses;
    const TrialRecord* best = Best(record, SelectRows(record, filter));
    rows.push_back({&record, best});
    if (best) CollectLeafPaths(best->trial.params, "", params);
  }
  auto value = [](const Row& row) -> Json {
    if (!row.best) return Json();
    double number = row.best->trial.last_result->Get(row.record->metric);
    return std::isfinite(number) ? Json(number) : Json();
  };
  if (options.format == ShowOptions::Format::kJson) {
    Json array = Json::array();
    for (const Row& row : rows) {
      array.push_back({{"dir", row.record->dir.string()},
                       {"name", row.record->name},
                       {"state", row.record->state},
                       {"metric", row.record->metric},
                       {"mode", ToString(row.record->mode)},
                       {"num_trials", row.record->trials.size()},
                       {"value", value(row)},
                       {"best", row.best ? TrialJson(*row.best, *row.record) : Json()}});
    }
    return Dump(array);
  }
  std::vector<std::string> header = {"experiment", "state", "trials", "metric", "mode",
                                     "best trial", "value", "training_iteration"};
  auto fields = [&](const Row& row) {
    std::vector<Json> values = {row.record->name, row.record->state, row.record->trials.size(),
                                row.record->metric, ToString(row.record->mode),
                                row.best ? Json(row.best->trial.id) : Json(), value(row),
                                row.best ? Json(row.best->trial.last_result->training_iteration)
                                         : Json()};
    for (const std::string& path : params) {
      const Json* param = row.best ? Lookup(row.best->trial.params, path) : nullptr;
      values.push_back(param ? *param : Json());
    }
    return values;
  };
  for (const std::string& path : params) header.push_back("config/" + path);
  if (options.format == ShowOptions::Format::kCsv) {
    fmt::memory_buffer out;
    header.insert(header.begin() + 1, "dir");
    AppendCsvRow(std::vector<Json>(header.begin(), header.end()), out);
    for (const Row& row : rows) {
      std::vector<Json> values = fields(row);
      values.insert(values.begin() + 1, row.record->dir.string());
      AppendCsvRow(values, out);
    }
    return fmt::to_string(out);
  }
  std::vector<std::vector<Cell>> cells;
  for (const Row& row : rows) {
    std::vector<Cell> line;
    for (const Json& field : fields(row)) line.push_back(FormatValue(field));
    cells.push_back(std::move(line));
  }
  std::string out;
  AppendTable(header, cells, out);
  // The overall best, when every experiment optimises the same metric the same way.
  const bool comparable = std::all_of(rows.begin(), rows.end(), [&](const Row& row) {
    return row.record->metric == rows[0].record->metric && row.record->mode == rows[0].record->mode;
  });
  const Row* winner = nullptr;
  for (const Row& row : rows) {
    if (!comparable || value(row).is_null()) continue;
    if (winner == nullptr ||
        IsBetter(value(row).get<double>(), value(*winner).get<double>(), row.record->mode)) {
      winner = &row;
    }
  }
  if (winner != nullptr) {
    out += fmt::format("Best: {} ({}) trial {} with {}={}\n", winner->record->name,
                       winner->record->dir.string(), winner->best->trial.id,
                       winner->record->metric, FormatNumber(value(*winner).get<double>()));
  }
  return out;
}

}  // namespace

ExperimentRecord LoadExperiment(const fs::path& dir) {
  std::error_code error;
  if (!fs::is_directory(dir, error)) {
    throw SpecError("", fmt::format("{}: no such directory", dir.string()));
  }
  const fs::path journal = dir / "journal.jsonl";
  if (!fs::exists(fs::symlink_status(journal, error))) {
    throw SpecError("", fmt::format("{} is not a tune experiment (it has no journal.jsonl)",
                                    dir.string()));
  }
  ExperimentRecord record;
  record.dir = dir;
  // The lock first: a journal read after finding no tune can only be more complete.
  record.tune_pid = LockHolder(dir);
  JournalContents contents;
  try {
    contents = ReadJournal(journal);
  } catch (const std::exception& failure) {
    throw SpecError("", failure.what());
  }
  record.warning = contents.warning;
  if (contents.events.empty() || contents.events[0].value("event", "") != "start") {
    throw SpecError("", fmt::format("{}: {}", journal.string(),
                                    contents.events.empty()
                                        ? "empty: not a tune experiment, or one killed at once"
                                        : "does not begin with a start event: not a tune journal"));
  }
  std::map<std::string, std::size_t> index;
  std::shared_ptr<const Json> trainer;  // the spec's trainer section, shared by every trial
  std::vector<Constraint> constraints;
  for (std::size_t line = 0; line < contents.events.size(); ++line) {
    JournalEvent event;
    try {
      event = DecodeEvent(contents.events[line], line + 1);
    } catch (const std::exception& failure) {
      throw SpecError("", fmt::format("{}: {}", journal.string(), failure.what()));
    }
    if (const auto* start = std::get_if<StartEvent>(&event)) {
      const Json& spec = start->spec;
      record.name = spec.value("name", dir.filename().string());
      try {
        record.objectives = ParseObjectives(spec.value("metric", Json("")), spec.value("mode", Json("max")));
        constraints = ParseConstraints(spec.value("constraints", Json()));
      } catch (const SpecError& bad) {
        if (spec.value("metric", Json("")) != "") {
          throw SpecError("", fmt::format("{}:1: {}", journal.string(), bad.what()));
        }
        record.objectives = {{"", ParseMode(spec.value("mode", Json("max")), "mode")}};
      }
      record.metric = record.objectives[0].metric;
      record.mode = record.objectives[0].mode;
      if (spec.contains("trainer") && spec["trainer"].is_object()) {
        trainer = std::make_shared<const Json>(spec["trainer"]);
      }
      continue;
    }
    Apply(event, line + 1, record, index, trainer);
  }
  if (record.objectives.size() > 1) {  // ranks as pareto_front.json's: last results, feasible
    ParetoTracker pareto(record.objectives, constraints);
    for (std::size_t i = 0; i < record.trials.size(); ++i) pareto.Update(i, record.trials[i].trial);
    for (std::size_t i = 0; i < record.trials.size(); ++i) record.trials[i].pareto_rank = pareto.Rank(i);
  }
  const bool all_ended = std::all_of(record.trials.begin(), record.trials.end(),
                                     [](const TrialRecord& t) { return IsFinal(t.trial.status); });
  record.state = record.tune_pid != 0 ? "running" : all_ended ? "finished" : "interrupted";
  return record;
}

std::string RenderShow(const std::vector<ExperimentRecord>& experiments, const ShowOptions& options) {
  const std::vector<std::string>& orders = ShowOrders();
  if (!options.order.empty() && std::find(orders.begin(), orders.end(), options.order) == orders.end()) {
    throw SpecError("--order", fmt::format("must be asc or desc, got \"{}\"", options.order));
  }
  ShowOptions checked = options;
  for (std::string& status : checked.statuses) {
    std::string upper = status;
    std::transform(upper.begin(), upper.end(), upper.begin(),
                   [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
    const std::vector<std::string>& known = ShowStatuses();
    if (std::find(known.begin(), known.end(), upper) == known.end()) {
      throw SpecError("--status", fmt::format("unknown status \"{}\" (known: {}){}", status,
                                              fmt::join(known, ", "), DidYouMean(upper, known)));
    }
    status = upper;
  }
  if (experiments.size() == 1) return RenderOne(experiments[0], checked);
  if (!checked.sort.empty() || checked.top || !checked.columns.empty() || !checked.order.empty()) {
    throw SpecError("", "--sort, --order, --top and --columns apply to one experiment; with "
                        "several, tune show compares their best trials");
  }
  return RenderComparison(experiments, checked);
}

}  // namespace tune
