// Weights & Biases: each trial is a W&B run, as with Ray Tune's WandbLoggerCallback, Optuna's
// WeightsAndBiasesCallback and Lightning's WandbLogger:
//   "callbacks": [{"type": "wandb", "project": "fashion", "mode": "offline"}]
// tune writes nothing in W&B's formats itself. It starts one helper per experiment in the user's
// Python (reporters/wandb_logger.py, embedded in the binary: `PYTHON -c <it> OPTIONS`, own
// process group) and hands it every trial's start, reports, pause and end as JSON lines. The
// helper opens and finishes the runs with wandb's own library, online or offline (`wandb sync`
// uploads an offline run later).
//
// What a run holds: id "<key>-<trial id>" (key: a random tag kept in <experiment>/wandb/tune-key,
// so `tune resume` continues the same runs), name the trial id, group the experiment's name,
// config the trial's config, one history row per report (numeric metrics, nested objects as
// "a/b"; training_iteration and time_total_s), charted against the scheduler's time_attr, and the
// summary's "status" (TERMINATED, STOPPED, ERROR with "error"; PAUSED while paused; INTERRUPTED,
// exit code 255, when the experiment was stopped with the trial running). wandb writes under
// <experiment>/wandb/; its messages go to <experiment>/wandb/tune-wandb.log.
//
// Options: project, entity, group, job_type, notes, tags (passed to wandb.init; absent: wandb's
// defaults, e.g. WANDB_PROJECT), mode ("online", "offline", "disabled"; absent: wandb's, e.g.
// WANDB_MODE), log_config (default true), excludes (metric names not logged), python (default
// "python3": the interpreter that has `wandb` >= 0.19.10), start_timeout_s (60: how long tune
// waits for the helper to import wandb), finish_timeout_s (300: how long it waits at the end for
// the runs to finish).
//
// Failures: a helper that cannot start (no such python, no wandb, no API key when online) is a
// SpecError naming the callback, before any trial runs. After that nothing W&B does can stop or
// slow the experiment: each message is handed to the kernel as it comes, without blocking (queued
// up to 64 MiB while the helper lags), so a tune killed the next moment has lost nothing it
// received; an error for one trial is printed and the others go on; a helper that dies is
// reported once.
//
// Example:
//   tune::WandbReporter wandb(options);            // starts the helper, waits for "ready"
//   wandb.OnExperimentStart(view);  wandb.OnTrialStart(trial);  wandb.OnTrialResult(trial, r);
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "core/types.h"
#include "reporters/callback.h"
#include "reporters/registry.h"

namespace tune {

struct WandbOptions {
  std::string path = "callbacks";  // where the spec names it, for errors
  std::string python = "python3";
  Json init;                       // to the helper: wandb.init's options, log_config, time_attr
  std::vector<std::string> excludes;
  double start_timeout_s = 60;
  double finish_timeout_s = 300;
};

class WandbReporter : public Callback {
 public:
  // Starts the helper and waits until it has imported wandb; throws SpecError(options.path, ...)
  // when it cannot.
  explicit WandbReporter(WandbOptions options);
  ~WandbReporter() override;
  WandbReporter(const WandbReporter&) = delete;
  WandbReporter& operator=(const WandbReporter&) = delete;

  void OnExperimentStart(const ExperimentView& view) override;
  void OnTrialStart(const Trial& trial) override;
  void OnTrialResult(const Trial& trial, const Result& result) override;
  void OnTrialPause(const Trial& trial) override;
  void OnTrialEnd(const Trial& trial) override;
  void OnTick(const ExperimentView& view) override;
  void OnExperimentEnd(const ExperimentView& view) override;

 private:
  void Send(const Json& message);
  // Writes what is queued without blocking, or (wait_s > 0) until it is written or the time is up.
  void Flush(double wait_s = 0);
  // Reads and handles the helper's replies without blocking, or (wait_s > 0) until it closes its
  // side, the time is up, or (until_a_line) a line came.
  void ReadReplies(double wait_s = 0, bool until_a_line = false);
  void Handle(const std::string& line);
  void Warn(const std::string& message) const;
  // Stops sending: the helper is gone or cannot keep up (said once).
  void Broken(const std::string& why);
  // Closes both pipes, kills the helper's process group and reaps it.
  void Stop();
  WandbOptions options_;
  pid_t pid_ = -1;
  int to_helper_ = -1;      // its stdin (a socket)
  int from_helper_ = -1;    // its fd 3
  std::string pending_;     // messages not written yet
  std::string replies_;     // a reply line not read whole yet
  std::string log_path_;    // <experiment>/wandb/tune-wandb.log
  std::string mode_;        // from {"ready": VERSION, "mode": MODE}; empty until then
  std::string start_error_; // an {"error"} before the experiment started
  bool started_ = false;    // OnExperimentStart was called
  bool dropping_ = false;   // over kMaxPending: reports are dropped
  int runs_done_ = -1;      // the helper's {"done": N}
};

CallbackRegistry::Entry WandbEntry();

}  // namespace tune
