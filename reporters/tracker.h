// Experiment trackers: each trial a run in Weights & Biases or MLflow, as Ray Tune's
// WandbLoggerCallback and MLflowLoggerCallback, Optuna's WeightsAndBiasesCallback and
// MLflowCallback, and Lightning's WandbLogger and MLFlowLogger do:
//   "callbacks": [{"type": "wandb", "project": "fashion", "mode": "offline"}]
//   "callbacks": [{"type": "mlflow", "tracking_uri": "http://127.0.0.1:5000"}]
// tune writes nothing in a tracker's formats itself. It starts one helper per experiment in the
// user's Python (reporters/tracker_helper.py followed by wandb_logger.py or mlflow_logger.py, all
// embedded in the binary: `PYTHON -c <them> OPTIONS`, own process group) and hands it every
// trial's start, reports, pause and end as JSON lines; the tracker's own library (wandb, mlflow)
// opens, logs and finishes the runs.
//
// W&B ("wandb"): id "<key>-<trial id>" (key: a random tag kept in <experiment>/wandb/tune-key, so
// `tune resume` continues the same runs), name the trial id, group the experiment's name, config
// the trial's config, one history row per report (numeric metrics, nested objects as "a/b";
// training_iteration and time_total_s; stamped with the report's time), charted against the
// scheduler's time_attr, and the summary's "status" (TERMINATED, STOPPED, ERROR with "error";
// PAUSED while paused; INTERRUPTED, exit code 255, when the experiment was stopped with the trial
// running). wandb writes under <experiment>/wandb/. Options: project, entity, group, job_type,
// notes, tags (to wandb.init; absent: wandb's defaults, e.g. WANDB_PROJECT), mode ("online",
// "offline", "disabled"; absent: wandb's, e.g. WANDB_MODE), log_config (true).
//
// MLflow ("mlflow"): the MLflow experiment named after tune's (experiment_name), a run per trial
// named after it, tagged tune.run_key "<key>-<trial id>" (key in <experiment>/mlflow/tune-key;
// `tune resume` finds the run by it), the config as parameters (dotted keys; a value PBT changes
// later as the tag "tune.config.<key>"), each report's numbers as metrics at step = time_attr,
// tune.status as a tag, FINISHED / FAILED / KILLED at the end. Options: tracking_uri (absent:
// MLflow's, e.g. MLFLOW_TRACKING_URI), experiment_name, tags (an object), log_config (true).
//
// Both: excludes (metric names not logged), python (default "python3": the interpreter that has
// the library), start_timeout_s (60: how long tune waits for the helper to import it),
// finish_timeout_s (300: how long it waits at the end for the runs to finish). The helper's and
// the library's messages go to <experiment>/<type>/tune-<type>.log.
//
// Failures: a helper that cannot start (no such python, no library, no W&B API key when online,
// an MLflow store it cannot reach) is a SpecError naming the callback, before any trial runs.
// After that nothing the tracker does can stop or slow the experiment: each message is handed to
// the kernel without blocking (a trial's start, pause and end at once, reports every 0.25 s or
// 64 KiB; queued up to 64 MiB while the helper lags), so a tune killed with kill -9 loses at most
// its last 0.25 s of reports (the journal and result.json have them); an error for one trial is
// printed (each distinct one once, the repeats counted at the end) and the others go on; a helper
// that dies is reported once.
//
// Example:
//   tune::TrackerReporter wandb(options);          // starts the helper, waits for "ready"
//   wandb.OnExperimentStart(view);  wandb.OnTrialStart(trial);  wandb.OnTrialResult(trial, r);
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "core/types.h"
#include "reporters/callback.h"
#include "reporters/registry.h"

namespace tune {

struct TrackerOptions {
  std::string type;                // "wandb", "mlflow": also the name of its directory and log
  std::string script;              // what the helper runs (python -c)
  std::string path = "callbacks";  // where the spec names it, for errors
  std::string python = "python3";
  Json init;                       // to the helper: the library's options, log_config, time_attr
  std::vector<std::string> excludes;
  double start_timeout_s = 60;
  double finish_timeout_s = 300;
};

class TrackerReporter : public Callback {
 public:
  // Starts the helper and waits until it has imported wandb; throws SpecError(options.path, ...)
  // when it cannot.
  explicit TrackerReporter(TrackerOptions options);
  ~TrackerReporter() override;
  TrackerReporter(const TrackerReporter&) = delete;
  TrackerReporter& operator=(const TrackerReporter&) = delete;

  void OnExperimentStart(const ExperimentView& view) override;
  void OnTrialStart(const Trial& trial) override;
  void OnTrialResult(const Trial& trial, const Result& result) override;
  void OnTrialPause(const Trial& trial) override;
  void OnTrialEnd(const Trial& trial) override;
  void OnTick(const ExperimentView& view) override;
  void OnExperimentEnd(const ExperimentView& view) override;

 private:
  // Queues `message` and sends the queue.
  void Send(const Json& message);
  // Queues a line; sends the queue now, or (!now) once it holds 64 KiB or at the next tick.
  void Queue(std::string line, bool now);
  // Writes what is queued without blocking, or (wait_s > 0) until it is written or the time is up.
  void Flush(double wait_s = 0);
  // Reads and handles the helper's replies without blocking, or (wait_s > 0) until it closes its
  // side, the time is up, or (until_a_line) a line came.
  void ReadReplies(double wait_s = 0, bool until_a_line = false);
  void Handle(const std::string& line);
  // "[tune] <type>: <message>" on stderr, control characters escaped.
  void Warn(const std::string& message) const;
  // Stops sending: the helper is gone or cannot keep up (said once).
  void Broken(const std::string& why);
  // Closes both pipes, kills the helper's process group and reaps it.
  void Stop();
  TrackerOptions options_;
  pid_t pid_ = -1;
  int to_helper_ = -1;      // its stdin (a socket)
  int from_helper_ = -1;    // its fd 3
  std::string pending_;     // messages not written yet, from sent_ on
  std::size_t sent_ = 0;
  std::string replies_;     // a reply line not read whole yet
  std::string log_path_;    // <experiment>/<type>/tune-<type>.log
  bool ready_ = false;      // {"ready": ...} came
  std::string start_error_; // an {"error"} before the experiment started
  bool started_ = false;    // OnExperimentStart was called
  bool dropping_ = false;   // over kMaxPending: reports are dropped
  bool said_broken_ = false;  // Broken() told the user
  std::set<std::string> said_;  // errors printed (each once)
  std::int64_t not_said_ = 0;   // errors not printed again
  int runs_done_ = -1;      // the helper's {"done": N, "hint": TEXT}
  std::string hint_;
};

CallbackRegistry::Entry WandbEntry();
CallbackRegistry::Entry MlflowEntry();

}  // namespace tune
