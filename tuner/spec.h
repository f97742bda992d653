// The experiment spec: space.json after CLI overrides, validated into typed fields.
//
// Overrides follow Hydra: `key=value` sets any field by dotted path (the value is parsed as JSON
// when it is valid JSON, else taken as a string: `lr=0.1`, `trainer.optimizer=adam`,
// `scheduler.max_t=30`). With multirun (`-m key=a,b,c`) the comma list becomes a grid_search
// over those values in the space: `space.lr=...` and `trainer.x=...` become `space.lr` and
// `space.x` grids (a trial's config is the trainer section with the sampled space merged in).
//
// Example:
//   tune::Json raw = tune::LoadSpecFile("examples/curve.json");
//   tune::ApplyOverride(raw, "num_samples=8", /*multirun=*/false);
//   tune::ExperimentSpec spec = tune::ParseSpec(raw, "examples");
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "core/pareto.h"
#include "core/trial.h"  // MergeConfig
#include "core/types.h"
#include "reporters/registry.h"
#include "reporters/reporters.h"
#include "schedulers/scheduler.h"
#include "search/searcher.h"
#include "search/space.h"
#include "stoppers/stopper.h"

namespace tune {

struct TrialResources {
  double gpu = 0;   // whole GPUs (1, 2, ...) or a fraction of one (0.5 = two trials share a GPU)
  double cpu = 1;   // CPU slots of the whole trial (all its workers together)
  int workers = 1;  // processes (DDP ranks) per trial; > 1 needs gpu 0 or a multiple of workers
};

// "launcher": where trials run. "local" (processes of this machine, the default) or "slurm"
// (tuner/slurm_launcher.h: job steps inside an allocation, sbatch jobs outside one); `tune run
// --launcher` overrides the type. The other keys are Slurm's.
struct LauncherConfig {
  std::string type = "local";
  std::string partition;             // -p (sbatch jobs; inside an allocation the job's)
  std::string account;               // -A
  std::string time;                  // -t, a trial's time limit ("1:00:00")
  std::vector<std::string> args;     // more srun/sbatch arguments, passed as given
  std::int64_t nodes = 0;            // nodes per trial (multi-node DDP); 0 = as Slurm packs it
  std::string report_host;           // the address nodes reach the tuner at; "" = chosen
};

struct ExperimentSpec {
  Json raw;                          // the spec as run (written to experiment.json)
  std::filesystem::path spec_dir;    // directory of space.json; ${spec_dir} in commands
  std::string name;
  std::string metric;                // the first objective's (what schedulers and stoppers use)
  Mode mode = Mode::kMax;
  std::vector<Objective> objectives;  // "metric"/"mode": one, or several (a Pareto front)
  std::vector<Constraint> constraints;  // "constraints": metrics a trial must keep in bounds
  std::int64_t num_samples = 1;
  std::int64_t max_concurrent = 0;   // 0 = as many as resources allow
  std::int64_t max_failures = 0;     // retries of a failed trial; -1 = unlimited
  TrialResources resources_per_trial;
  std::filesystem::path storage = "tune_results";
  Space space;
  Json points_to_evaluate = Json::array();
  SearcherConfig search;             // parsed "search" (random when absent)
  SchedulerConfig scheduler;         // parsed "scheduler" (FIFO when absent)
  LauncherConfig launcher;           // parsed "launcher" (local processes when absent)
  TableOptions reporter;             // parsed "reporter": the status table's options
  StopConfig stop;                   // parsed "stop" (nothing when absent)
  std::vector<CallbackConfig> callbacks;  // parsed "callbacks": optional reporters by name
  Json dashboard;                    // "[HOST:]PORT" of the live dashboard (tuner/dashboard.h); null = none
  Json trainer = Json::object();     // base config of every trial
  std::vector<std::string> command;  // trainer.command; empty = the built-in tune-trainer
  double stop_grace_s = 10;          // how long a trial told to stop may take to exit
  double trial_timeout_s = 0;        // kill a trial silent (no report) this long; 0 = never
  double connect_timeout_s = 120;    // kill a trial that has not connected after this long
  Json journal_fsync = "never";      // "never" | "interval" | "always" (tuner/journal.h)
  // A trial log (stdout.log, stderr.log) past this many bytes has its middle cut (CutLogMiddle
  // in tuner/launcher.h); 0 = no limit.
  std::uint64_t max_log_bytes = std::uint64_t{1} << 30;
};

// Reads and parses a JSON file. Throws SpecError "<file>:<line>:<column>: <reason>" on bad JSON
// and "<file>: cannot read" when it cannot be opened.
Json LoadSpecFile(const std::filesystem::path& file);

// Applies one `key=value` override (or, with multirun, `key=a,b,c` as a grid) to `raw`. A level
// that does not exist is created as an object ("a.3=1" makes {"a": {"3": 1}}); a number indexes
// an existing array, up to one past its end (which appends). Throws SpecError naming the key
// when the assignment is malformed, nested too deep, or goes through a value it cannot index.
void ApplyOverride(Json& raw, std::string_view assignment, bool multirun);

// Validates `raw` completely (every module's options included: the scheduler's, the table's) and
// fills an ExperimentSpec, so a bad option fails before anything runs. Throws SpecError naming the
// JSON path of the first problem (unknown keys get a "did you mean").
ExperimentSpec ParseSpec(const Json& raw, const std::filesystem::path& spec_dir);

}  // namespace tune
