// `tune show DIR [DIR ...]`: an experiment's trials, read from its journal (the record `tune
// resume` replays), so it works on a finished experiment, on one still running (it takes no lock:
// the journal is only appended to, whole lines at a time) and on one that was killed.
//
// One directory: the trials table, filtered (--status), sorted (--sort, --order), cut (--top),
// with chosen columns (--columns), or the same rows as JSON or CSV. Several: one row per
// experiment with its best trial (best as best_trial.json judges it: the last result).
//
// Columns, for --columns, --sort and the CSV header:
//   trial_id, status, training_iteration (iter), time_total_s (time), num_failures, error
//   config/<param>     a sampled parameter (dotted path); the bare name works when not ambiguous
//   <metric>           the last reported value of a metric
//   best/<metric>      the best value of the experiment's metric over all the trial's reports
//   best/training_iteration   the report that value came from
//   pareto_rank        several objectives: the trial's non-dominated rank by its last result
//                      (0: on the Pareto front; empty: not ranked, as pareto_front.json's)
//
// Several objectives ("metric": [..], "mode": [..]): the table shows every objective and
// pareto_rank, --sort by any objective puts its best first, --pareto keeps the front's trials,
// --top without --sort takes the lowest ranks, and --json adds "objectives" and "pareto_rank".
// best/<metric> is the first objective's.
//
// Example:
//   tune::ExperimentRecord record = tune::LoadExperiment("tune_results/exp");   // throws SpecError
//   tune::ShowOptions options;
//   options.sort = "loss";
//   options.top = 5;
//   std::string text = tune::RenderShow({record}, options);
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "core/pareto.h"
#include "core/trial.h"
#include "core/types.h"

namespace tune {

// A trial as its journal leaves it, with the best value of the experiment's metric.
struct TrialRecord {
  Trial trial;
  std::optional<double> best;          // of the experiment's metric over every report
  std::int64_t best_iteration = 0;     // training_iteration of that report
  int pareto_rank = -1;                // several objectives: the non-dominated rank, -1 = none
};

struct ExperimentRecord {
  std::filesystem::path dir;
  std::string name;
  std::string metric;                  // the first objective's
  Mode mode = Mode::kMax;
  std::vector<Objective> objectives;   // every objective (one, or several: a Pareto front)
  // running: a tune holds the experiment's lock now; finished: no tune holds it and every
  // trial ended; interrupted: no tune holds it and trials are left (killed or Ctrl-C: `tune
  // resume` continues it).
  std::string state;
  std::int64_t tune_pid = 0;           // of the running tune
  std::string stop_reason;             // a stopper ended the experiment
  std::vector<TrialRecord> trials;     // in creation order
  std::string warning;                 // a torn last journal line was ignored
};

// Reads `dir`/journal.jsonl (and nothing else: the spec comes from its start event). Throws
// SpecError naming the directory or file when it is not an experiment, or the journal cannot be
// read or is corrupt.
ExperimentRecord LoadExperiment(const std::filesystem::path& dir);

struct ShowOptions {
  enum class Format { kTable, kJson, kCsv };
  Format format = Format::kTable;
  std::string sort;                    // a column; "" = creation order (the metric with --top)
  std::string order;                   // "asc" | "desc" | "" (best first for the metric)
  std::optional<std::size_t> top;      // the first K rows after sorting
  std::vector<std::string> statuses;   // keep only these (PENDING, RUNNING, ...); empty = all
  std::vector<std::string> columns;    // empty = the defaults of the format
  bool pareto = false;                 // only the Pareto front's trials (several objectives)
};

// Every name --columns and --sort accept for `record`: the built-in columns, config/<param> of each
// parameter, each metric, best/<metric> and best/training_iteration (shell completion, errors).
std::vector<std::string> ShowColumns(const ExperimentRecord& record);
// What --status and --order accept.
const std::vector<std::string>& ShowStatuses();  // PENDING, RUNNING, PAUSED, TERMINATED, ...
const std::vector<std::string>& ShowOrders();    // asc, desc

// The text `tune show` prints. Throws SpecError naming the option (--sort, --columns,
// --status, --order) for a bad value.
std::string RenderShow(const std::vector<ExperimentRecord>& experiments, const ShowOptions& options);

}  // namespace tune
