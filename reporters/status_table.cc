// The status block, modelled on Ray Tune's CLIReporter: a few header lines, then one row per
// trial in psql-style boxes (what Ray gets from tabulate), then the errored trials.

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <ctime>
#include <set>
#include <string_view>

#include "core/text.h"
#include "reporters/reporters.h"
#include "reporters/text_table.h"

namespace tune {
namespace {

// Row order and the order of the per-status counts: what is happening now first, then what
// is about to, then what is done.
constexpr std::array<TrialStatus, 6> kStatusOrder = {TrialStatus::kRunning, TrialStatus::kPending,
                                                     TrialStatus::kPaused, TrialStatus::kTerminated,
                                                     TrialStatus::kStopped, TrialStatus::kError};
constexpr std::size_t kMaxDefaultParameterColumns = 8;
constexpr std::size_t kMaxErrorChars = 120;

std::size_t StatusRank(TrialStatus status) {
  return static_cast<std::size_t>(std::find(kStatusOrder.begin(), kStatusOrder.end(), status) -
                                  kStatusOrder.begin());
}

std::vector<std::string> ParameterColumns(const std::vector<const Trial*>& trials,
                                          const TableOptions& options) {
  if (!options.parameter_columns.empty()) return options.parameter_columns;
  std::set<std::string> paths;
  for (const Trial* trial : trials) CollectLeafPaths(trial->params, "", paths);
  std::vector<std::string> columns(paths.begin(), paths.end());
  if (columns.size() > kMaxDefaultParameterColumns) columns.resize(kMaxDefaultParameterColumns);
  return columns;
}

Cell MetricCell(const Trial& trial, const std::string& metric) {
  if (!trial.last_result) return {};
  const Result& result = *trial.last_result;
  if (const Json* value = Lookup(result.metrics, metric)) return FormatValue(*value);
  if (metric == "training_iteration" || metric == "time_total_s") {
    return {FormatNumber(result.Get(metric)), true};
  }
  return {};
}

// "3 RUNNING, 2 TERMINATED": nonzero counts in kStatusOrder.
std::string CountsText(const std::array<std::size_t, kStatusOrder.size()>& counts) {
  std::string text;
  for (std::size_t rank = 0; rank < kStatusOrder.size(); ++rank) {
    if (counts[rank] == 0) continue;
    if (!text.empty()) text += ", ";
    text += fmt::format("{} {}", counts[rank], ToString(kStatusOrder[rank]));
  }
  return text;
}

// Picks at most `max_rows` of `sorted` (already in row order) the way Ray's
// _fair_filter_trials does: one more row for each status in turn while rows are left, so a
// flood of finished trials never hides the running ones. Returns how many of each status to
// show.
std::array<std::size_t, kStatusOrder.size()> FairShares(
    const std::array<std::size_t, kStatusOrder.size()>& counts, std::size_t max_rows) {
  std::array<std::size_t, kStatusOrder.size()> shown{};
  bool progress = true;
  while (max_rows > 0 && progress) {
    progress = false;
    for (std::size_t rank = 0; rank < kStatusOrder.size() && max_rows > 0; ++rank) {
      if (shown[rank] < counts[rank]) {
        ++shown[rank];
        --max_rows;
        progress = true;
      }
    }
  }
  return shown;
}

std::string ErrorSummary(const std::string& error) {
  std::string_view text = error;
  // The first non-blank line is the reason; the rest (tracebacks) lives in error.txt.
  std::size_t begin = text.find_first_not_of(" \t\r\n");
  if (begin == std::string_view::npos) return "";
  text.remove_prefix(begin);
  std::size_t end = text.find_first_of("\r\n");
  bool cut = end != std::string_view::npos &&
             text.find_first_not_of(" \t\r\n", end) != std::string_view::npos;
  std::string line = OneLine(text.substr(0, end));
  while (!line.empty() && line.back() == ' ') line.pop_back();
  if (line.size() > kMaxErrorChars) {
    line.resize(kMaxErrorChars);
    // Not in the middle of a character.
    while (!line.empty() && (static_cast<unsigned char>(line.back()) & 0xC0) == 0x80) line.pop_back();
    if (!line.empty() && static_cast<unsigned char>(line.back()) >= 0xC0) line.pop_back();
    cut = true;
  }
  if (cut) line += " ...";
  return line;
}

std::string LocalTimeText() {
  std::time_t now = std::time(nullptr);
  std::tm local{};
  localtime_r(&now, &local);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%d %H:%M:%S", &local);
  return text;
}

std::string ElapsedText(double elapsed_s) {
  // Round once to centiseconds so 59.999 s reads 00:01:00.00, never 00:00:60.00.
  long long centis = std::llround(std::max(0.0, elapsed_s) * 100);
  long long hours = centis / 360000;
  long long minutes = centis / 6000 % 60;
  double seconds = static_cast<double>(centis % 6000) / 100;
  return fmt::format("{:02d}:{:02d}:{:05.2f}", hours, minutes, seconds);
}

// The whole block except the clock line, which Update() leaves out when deciding whether
// anything changed.
std::string RenderBody(const ExperimentView& view, const TableOptions& options) {
  static const std::vector<Trial> kNoTrials;
  const std::vector<Trial>& trials = view.trials ? *view.trials : kNoTrials;
  std::string out;

  // The scheduler's lines (HyperBand's grow a line a bracket): its first (the summary) and the
  // newest kSchedulerLines - 1, so the table stays as long however long the experiment runs.
  constexpr std::size_t kSchedulerLines = 12;
  std::vector<std::string_view> lines;
  std::string_view description = view.scheduler_description;
  while (!description.empty()) {
    std::size_t end = description.find('\n');
    std::string_view line = description.substr(0, end);
    if (!line.empty()) lines.push_back(line);
    description.remove_prefix(end == std::string_view::npos ? description.size() : end + 1);
  }
  const std::size_t skipped = lines.size() > kSchedulerLines ? lines.size() - kSchedulerLines : 0;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    if (i == 1 && skipped > 0) {
      fmt::format_to(std::back_inserter(out), "... {} earlier scheduler lines\n", skipped);
      i += skipped;
    }
    fmt::format_to(std::back_inserter(out), "{}\n", lines[i]);
  }
  if (!view.stop_description.empty()) {
    fmt::format_to(std::back_inserter(out), "{}\n", view.stop_description);
  }
  if (!view.resources.empty()) fmt::format_to(std::back_inserter(out), "{}\n", view.resources);
  if (view.pareto != nullptr) {
    const std::vector<std::size_t> front = view.pareto->Front();
    if (!front.empty()) {
      std::string ids;
      for (std::size_t k = 0; k < front.size() && k < 5; ++k) {
        ids += (k ? ", " : "") + trials[front[k]].id;
      }
      fmt::format_to(std::back_inserter(out), "Pareto front: {} trial{} ({}{})\n", front.size(),
                     front.size() == 1 ? "" : "s", ids, front.size() > 5 ? ", ..." : "");
    }
  } else if (!view.metric.empty()) {
    const Trial* best = view.by_status ? view.best : BestTrial(trials, view.metric, view.mode);
    if (best != nullptr) {
      fmt::format_to(std::back_inserter(out), "Current best trial: {} with {}={}\n", best->id,
                     view.metric, FormatNumber(best->last_result->Get(view.metric)));
    }
  }

  // Each status's trials in row order: with the tuner's index only the first few (what can be
  // shown), so a render costs the same at 100,000 trials as at 100; without it, all of them.
  std::array<std::size_t, kStatusOrder.size()> counts{};
  std::array<std::vector<const Trial*>, kStatusOrder.size()> by_rank;
  if (view.by_status != nullptr) {
    for (std::size_t rank = 0; rank < kStatusOrder.size(); ++rank) {
      counts[rank] = view.by_status->count(kStatusOrder[rank]);
    }
  } else {
    for (const Trial& trial : trials) ++counts[StatusRank(trial.status)];
  }
  std::size_t total = 0;
  for (std::size_t count : counts) total += count;
  std::string counts_text = CountsText(counts);
  fmt::format_to(std::back_inserter(out), "Number of trials: {}{}\n", total,
                 counts_text.empty() ? "" : " (" + counts_text + ")");
  if (total == 0) return out;

  std::size_t max_rows = options.max_rows == 0 ? total : options.max_rows;
  std::array<std::size_t, kStatusOrder.size()> shares = FairShares(counts, max_rows);
  if (view.by_status != nullptr) {
    for (std::size_t rank = 0; rank < kStatusOrder.size(); ++rank) {
      // Errored trials are listed again below the table, up to max_rows of them.
      std::size_t wanted = kStatusOrder[rank] == TrialStatus::kError ? std::max(shares[rank], max_rows)
                                                                      : shares[rank];
      for (std::size_t index : view.by_status->of(kStatusOrder[rank])) {
        if (by_rank[rank].size() == wanted) break;
        by_rank[rank].push_back(&trials[index]);
      }
    }
  } else {
    for (const Trial& trial : trials) by_rank[StatusRank(trial.status)].push_back(&trial);
    for (auto& list : by_rank) {
      std::stable_sort(list.begin(), list.end(),
                       [](const Trial* a, const Trial* b) { return a->id < b->id; });
    }
  }

  // Default columns: the leaf paths of the trials shown with the tuner's index (those of every
  // trial would be a pass over all), else of every trial.
  std::vector<const Trial*> column_source;
  for (std::size_t rank = 0; rank < kStatusOrder.size(); ++rank) {
    const std::size_t n = view.by_status != nullptr ? shares[rank] : by_rank[rank].size();
    column_source.insert(column_source.end(), by_rank[rank].begin(), by_rank[rank].begin() + n);
  }
  std::vector<std::string> parameter_columns = ParameterColumns(column_source, options);
  std::vector<std::string> metric_columns = options.metric_columns;
  if (metric_columns.empty() && !view.metric.empty()) metric_columns.push_back(view.metric);
  if (options.metric_columns.empty() && view.objectives.size() > 1) {
    metric_columns.clear();
    for (const Objective& objective : view.objectives) metric_columns.push_back(objective.metric);
  }

  std::vector<std::string> header = {"Trial name", "status", "loc"};
  header.insert(header.end(), parameter_columns.begin(), parameter_columns.end());
  header.insert(header.end(), metric_columns.begin(), metric_columns.end());
  if (view.pareto != nullptr) header.push_back("pareto rank");
  header.push_back("iter");
  header.push_back("total time (s)");

  std::vector<std::vector<Cell>> rows;
  std::array<std::size_t, kStatusOrder.size()> hidden{};
  for (std::size_t rank = 0; rank < kStatusOrder.size(); ++rank) {
    hidden[rank] = counts[rank] - shares[rank];
    for (std::size_t k = 0; k < shares[rank]; ++k) {
      const Trial* trial = by_rank[rank][k];
      std::vector<Cell> row;
      row.reserve(header.size());
      row.push_back({trial->id, false});
      row.push_back({ToString(trial->status), false});
      bool running = trial->status == TrialStatus::kRunning && trial->pid != 0;
      row.push_back({!running                   ? ""
                     : trial->location.empty() ? fmt::format("pid={}", trial->pid)
                                               : trial->location,
                     false});
      for (const std::string& path : parameter_columns) {
        const Json* value = Lookup(trial->params, path);
        row.push_back(value ? FormatValue(*value) : Cell{});
      }
      for (const std::string& metric : metric_columns) row.push_back(MetricCell(*trial, metric));
      if (view.pareto != nullptr) {
        // 1 = on the front; blank = no value for every objective (or infeasible).
        const int pareto_rank = view.pareto->Rank(static_cast<std::size_t>(trial - trials.data()));
        row.push_back({pareto_rank < 0 ? "" : std::to_string(pareto_rank + 1), true});
      }
      row.push_back({std::to_string(trial->num_results), true});
      row.push_back({FormatNumber(trial->time_total_s), true});
      rows.push_back(std::move(row));
    }
  }
  AppendTable(header, rows, out);
  std::size_t num_hidden = total - rows.size();
  if (num_hidden > 0) {
    fmt::format_to(std::back_inserter(out), "... {} more trials not shown ({})\n", num_hidden,
                   CountsText(hidden));
  }

  std::size_t num_errored = counts[StatusRank(TrialStatus::kError)];
  if (num_errored > 0) {
    fmt::format_to(std::back_inserter(out), "Number of errored trials: {}\n", num_errored);
    std::vector<std::vector<Cell>> error_rows;
    for (const Trial* trial : by_rank[StatusRank(TrialStatus::kError)]) {
      if (error_rows.size() == max_rows) break;
      error_rows.push_back({{trial->id, false},
                            {std::to_string(trial->num_failures), true},
                            {ErrorSummary(trial->error), false}});
    }
    AppendTable({"Trial name", "# failures", "error"}, error_rows, out);
    if (error_rows.size() < num_errored) {
      fmt::format_to(std::back_inserter(out), "... {} more errored trials not shown\n",
                     num_errored - error_rows.size());
    }
  }
  return out;
}

std::string ClockLine(const ExperimentView& view) {
  return fmt::format("Current time: {} (running for {})\n",
                     view.clock_text.empty() ? LocalTimeText() : view.clock_text,
                     ElapsedText(view.elapsed_s));
}

constexpr std::string_view kTitleLine = "== Status ==\n";

}  // namespace

std::string RenderStatus(const ExperimentView& view, const TableOptions& options) {
  std::string text(kTitleLine);
  text += ClockLine(view);
  text += RenderBody(view, options);
  return text;
}

StatusTable::StatusTable(TableOptions options, std::FILE* out)
    : options_(std::move(options)), out_(out) {}

void StatusTable::OnTick(const ExperimentView& view) { Update(view, view.now_s); }
void StatusTable::OnExperimentEnd(const ExperimentView& view) { Update(view, view.now_s, true); }

TableOptions ParseTableOptions(const Json& json, const std::string& path) {
  OptionsReader in(json, path, {"parameter_columns", "metric_columns", "max_rows", "refresh_s"});
  TableOptions options;
  options.parameter_columns = in.Strings("parameter_columns");
  options.metric_columns = in.Strings("metric_columns");
  options.max_rows = static_cast<std::size_t>(
      in.Integer("max_rows", static_cast<std::int64_t>(options.max_rows), Range::AtLeast(0)));
  options.min_interval_s = in.Number("refresh_s", options.min_interval_s, Range::AtLeast(0));
  return options;
}

bool StatusTable::Update(const ExperimentView& view, double now_s, bool force) {
  // The interval check comes first: it is free, and rendering is not.
  if (!force && now_s - last_print_s_ < options_.min_interval_s) return false;
  std::string body = RenderBody(view, options_);
  if (!force && body == last_body_) return false;

  std::string text(kTitleLine);
  text += ClockLine(view);
  text += body;
  if (options_.live && last_lines_ > 0) {
    // Back to the first line of the previous block, then clear to the end of the screen.
    std::fprintf(out_, "\x1b[%zuF\x1b[J", last_lines_);
  }
  std::fputs(text.c_str(), out_);
  if (!options_.live) std::fputs("\n", out_);
  std::fflush(out_);
  if (std::ferror(out_)) {
    // E.g. `tune run ... | head` after head exited (SIGPIPE is ignored): the experiment goes on.
    if (!output_closed_) {
      std::fprintf(stderr, "[tune] cannot write the status table (%s); the experiment goes on\n",
                   std::strerror(errno));
    }
    output_closed_ = true;
    std::clearerr(out_);
  }

  last_body_ = std::move(body);
  last_print_s_ = now_s;
  last_lines_ = static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n'));
  return true;
}

}  // namespace tune
