// Reporters turn the tuner's state into what people and tools read: the live status table,
// per-trial result files, and the best trial at the end. Each is a Callback (reporters/callback.h)
// in the tuner's list.
//
// Example:
//   tune::StatusTable table(options);                  // prints to stdout
//   table.Update(view, /*now_s=*/clock.Now());          // prints only when something changed
//   tune::ResultWriter files(experiment_dir);
//   files.OnTrialStart(trial);  files.OnTrialResult(trial, result);
//   if (const Trial* best = tune::BestTrial(trials, "val_acc", Mode::kMax)) ...
#pragma once

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/options.h"
#include "core/trial.h"
#include "reporters/callback.h"

namespace tune {

struct TableOptions {
  std::vector<std::string> parameter_columns;  // dotted paths into Trial::params; empty = all leaf
                                               // paths of all trials, sorted, at most 8
  std::vector<std::string> metric_columns;     // empty = the experiment's metric
  std::size_t max_rows = 20;                   // past that: "... N more trials" (0 = no limit)
  double min_interval_s = 2.0;                 // Update() prints at most this often
  bool live = false;                           // redraw in place (terminal) instead of appending
};

// The "reporter" object of space.json: parameter_columns, metric_columns, max_rows, refresh_s.
// Throws SpecError naming path.key.
TableOptions ParseTableOptions(const Json& json, const std::string& path);

// Renders the status block as text, modelled on Ray Tune's CLIReporter:
//   == Status ==
//   Current time: 2026-11-23 06:40:01 (running for 00:01:23.45)
//   <scheduler description lines>
//   <stoppers' line>                                     (when the experiment has stoppers)
//   <resources>
//   Current best trial: t_00002 with val_acc=0.93        (when a trial has the metric)
//   Pareto front: 3 trials (t_00002, t_00005, t_00007)   (instead, with several objectives;
//                                                        the table then has a "pareto rank"
//                                                        column, 1 = on the front)
//   Number of trials: 12 (6 RUNNING, 3 PENDING, 2 TERMINATED, 1 STOPPED)
//   +------------+---------+----------+------+---------+------+----------------+
//   | Trial name | status  | loc      |   lr | val_acc | iter | total time (s) |
//   ...
//   ... 4 more trials not shown (4 TERMINATED)
//   Number of errored trials: 1                          (then their first error lines)
// Rows go RUNNING, PENDING, PAUSED, TERMINATED, STOPPED, ERROR, then by id; past max_rows (0 = no
// limit) each status gets rows in turn so none is crowded out. Pure function, for tests.
std::string RenderStatus(const ExperimentView& view, const TableOptions& options);

// Prints RenderStatus() to a FILE when it changed and the interval has passed. Not live: each
// block is appended, followed by a blank line. Live: the previous block is erased first
// (cursor up over its lines, clear to end of screen), so lines wider than the terminal, which
// wrap, leave some of the old block behind.
class StatusTable : public Callback {
 public:
  explicit StatusTable(TableOptions options, std::FILE* out = stdout);
  // Update(view, view.now_s); at the end, forced.
  void OnTick(const ExperimentView& view) override;
  void OnExperimentEnd(const ExperimentView& view) override;
  // Prints if the rendering differs from the last printed one (ignoring the clock line) and at
  // least min_interval_s passed since the last print, or when `force`. Returns true if printed.
  bool Update(const ExperimentView& view, double now_s, bool force = false);

 private:
  TableOptions options_;
  std::FILE* out_;
  std::string last_body_;
  double last_print_s_ = -1e300;
  std::size_t last_lines_ = 0;
  bool output_closed_ = false;  // a write failed (a closed pipe): said once on stderr
};

// The best trial by `metric` under `mode`, judged on each trial's last result (Ray Tune's
// scope="last"); trials without a numeric value are skipped; ties go to the earlier trial.
const Trial* BestTrial(const std::vector<Trial>& trials, const std::string& metric, Mode mode);

// BestTrial() kept up to date as results come, in O(log n) per update instead of a pass over
// every trial: an ordered set of (value, index) of each trial's last result.
//
// Example:
//   tune::BestTrialTracker best("val_acc", tune::Mode::kMax);
//   best.Update(index, trials[index]);   // after each change of trials[index].last_result
//   const Trial* now = best.Best(trials);   // == BestTrial(trials, "val_acc", kMax)
class BestTrialTracker {
 public:
  // Trials whose last result breaks one of `constraints` are not ranked.
  BestTrialTracker(std::string metric, Mode mode, std::vector<Constraint> constraints = {})
      : metric_(std::move(metric)), mode_(mode), constraints_(std::move(constraints)) {}
  // Records trials[index]'s current last result (replacing what was recorded for it).
  void Update(std::size_t index, const Trial& trial);
  const Trial* Best(const std::vector<Trial>& trials) const;

 private:
  struct Key {
    double value;
    std::size_t index;
  };
  struct Order {
    Mode mode;
    bool operator()(const Key& a, const Key& b) const;
  };
  std::string metric_;
  Mode mode_;
  std::vector<Constraint> constraints_;
  std::set<Key, Order> ranked_{Order{mode_}};
  std::vector<double> value_of_;  // by index; NaN = not ranked
};

// Writes the experiment directory's files (Ray Tune's layout):
//   <dir>/experiment.json, <dir>/best_trial.json,
//   <dir>/<trial>/params.json, result.json (one JSON line per report), progress.csv.
// Every write is flushed before the call returns.
class ResultWriter : public Callback {
 public:
  // Creates nothing until the first write. Errors creating or writing a file throw
  // std::runtime_error naming the path.
  explicit ResultWriter(std::filesystem::path experiment_dir);
  ~ResultWriter();
  void WriteExperiment(const Json& spec);
  // Creates the trial directory (trial.dir, or <dir>/<id> when empty) and params.json
  // (trial.config()), and opens its files for appending. Safe to call again on retry: earlier
  // lines are kept and progress.csv keeps its header. A new trial's result.json and progress.csv
  // are opened (made, without a spare: see KeepSpares) at its first result, or its end if it has
  // none, not here: this is on the path of every launch, while the first report comes later.
  void OnTrialStart(const Trial& trial) override;
  // Spare trial directories, so that starting a new trial allocates no inode on the tuner's
  // thread: a helper thread at idle priority (SCHED_IDLE: it runs only on a CPU nothing else
  // wants) keeps up to `count` hidden directories ready in the experiment directory
  // (`.spare-<n>`, holding the trial's five files, empty), and OnTrialStart renames one into
  // place. A directory and five files are six inode allocations (about 0.1 ms each on ext4, and
  // several times that for a while after many files were deleted); a rename allocates none.
  // Without a spare ready, OnTrialStart makes the directory itself. KeepSpares(0) only stops
  // making more (it never waits for the helper); RemoveSpares() stops the helper and deletes the
  // spares, with any left behind by a tuner that was killed.
  void KeepSpares(std::size_t count);
  void RemoveSpares();
  // Appends `result` (plus trial_id, training_iteration, time_total_s, timestamp, done=false;
  // these win over metrics of the same name) to result.json
  // and a row to progress.csv (header from the first result's keys; later new keys are dropped
  // from the csv, never from result.json).
  // The lines are buffered: they reach the files at Flush(), OnTrialEnd() or destruction (the
  // tuner flushes every 250 ms; its journal, not these files, is what must be durable).
  void OnTrialResult(const Trial& trial, const Result& result) override;
  // Hands every buffered line to the kernel. Throws std::runtime_error naming a file it cannot
  // write.
  void Flush();
  void OnTrialEnd(const Trial& trial) override;  // closes its files
  // A paused trial's files are closed too; its next attempt opens them again (and PBT's new
  // params.json is written then).
  void OnTrialPause(const Trial& trial) override { OnTrialEnd(trial); }
  void OnTick(const ExperimentView& view) override;  // Flush()
  // Flush(), then RemoveSpares().
  void OnExperimentEnd(const ExperimentView& view) override;
  // Deletes the trial's result.json and progress.csv, so that `tune resume` can write them
  // again from the journal (which makes every result appear exactly once).
  void ResetResults(const Trial& trial);
  // The sizes of the trial's result.json and progress.csv as the kernel has them (0 for a file
  // not made yet); call Flush() first. A journal snapshot records them (tuner/events.h).
  std::pair<std::uint64_t, std::uint64_t> ResultSizes(const Trial& trial) const;
  // Closes the trial's files and cuts them back to those sizes (what a snapshot recorded), so
  // that `tune resume` appends the results journaled after it exactly once. Sizes of 0 are
  // ResetResults().
  void TruncateResults(const Trial& trial, std::uint64_t result_bytes, std::uint64_t progress_bytes);
  // PBT's record of a trial (tuner: each exploit): one JSON line appended to
  // <trial>/lineage.jsonl ({"source", "training_iteration", "old_params", "new_params",
  // "checkpoint"}).
  void AppendLineage(const Trial& trial, const Json& entry);
  // Resume: cuts <trial>/lineage.jsonl back to its first `lines` complete lines (0: removes it),
  // before the lines of the replayed exploits are appended again.
  void CutLineage(const Trial& trial, int lines);

 private:
  struct TrialFiles;
  std::filesystem::path TrialDir(const Trial& trial) const;
  // `fresh`: the trial's directory was just created, so its files are new and empty.
  TrialFiles& Open(const Trial& trial, bool fresh = false);
  std::filesystem::path dir_;
  std::map<std::string, std::unique_ptr<TrialFiles>> open_;
  std::set<std::string> not_created_;  // new trials whose result files are created later
  class Spares;
  std::unique_ptr<Spares> spares_;
  bool may_have_spares_ = true;  // from this tuner, or one that was killed before deleting them
};

// The Pareto front of view.pareto as written to pareto_front.json: {"metric": [...], "mode":
// [...], "pareto_front": [{trial_id, values (one per metric), config, last_result, dir}, ...]}.
Json ParetoFrontJson(const ExperimentView& view, const std::filesystem::path& experiment_dir);

// At the end: best_trial.json (trial_id, metric, mode, value, config, last_result, dir; written
// to a temporary file and renamed, so readers never see half of it) and the summary lines
// "Best trial: ...", "Best trial config: ...", "Best trial final <metric>: ...", "Results: DIR".
// With several objectives (view.objectives): pareto_front.json (ParetoFrontJson), best_trial.json
// the same front, and "Pareto front: N trials" with one line per trial of it.
class BestTrialReporter : public Callback {
 public:
  BestTrialReporter(std::filesystem::path experiment_dir, std::FILE* out = stdout)
      : dir_(std::move(experiment_dir)), out_(out) {}
  void OnExperimentEnd(const ExperimentView& view) override;

 private:
  void WriteFront(const ExperimentView& view);
  std::filesystem::path dir_;
  std::FILE* out_;
};

// A result's numeric metrics as the views log them: nested objects as "a/b" (booleans are not
// numbers), then training_iteration and time_total_s (the tuner's, over metrics of those names),
// as result.json has them. TensorBoard's scalars and W&B's history rows.
std::vector<std::pair<std::string, double>> ResultScalars(const Result& result);
// The trial has ended for good: a final status, and not an attempt stopped by Ctrl-C (STOPPED
// with error "interrupted"), which `tune resume` runs again.
bool IsFinalEnd(const Trial& trial);

// Writes `text` to `path` through a temporary file and a rename. Throws std::runtime_error
// naming the path.
void WriteFileAtomically(const std::filesystem::path& path, const std::string& text);
// The same for a text made piece by piece: `produce` hands every piece, in order, to the sink it
// is given (a few MB of report.html need not be one string first).
using TextSink = std::function<void(std::string_view)>;
void WriteFileAtomically(const std::filesystem::path& path,
                         const std::function<void(const TextSink&)>& produce);

}  // namespace tune
