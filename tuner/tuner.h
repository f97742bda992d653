// The tuner: one experiment, run on one Asio io_context on one thread.
//
// Every event that changes the experiment goes to journal.jsonl (tuner/journal.h) before its
// effects are visible: a trial's config before it starts, a report (with its decision) before the
// trial gets the decision. `tune resume` replays that journal through the same code paths
// (Apply* below) into a fresh searcher and scheduler, then relaunches the trials that were
// running, from their last checkpoint.
//
// It asks the searcher for configs while the resource pool has room, launches each trial as its
// own process, or as `resources_per_trial.workers` processes with torchrun's environment (one
// launcher group: they end together, and a failing rank fails the trial; CUDA_VISIBLE_DEVICES
// from the pool, one whole GPU per rank), answers every report with the scheduler's
// decision, records results through the ResultWriter and refreshes the status table. A trial
// that exits non-zero, dies by a signal or reports a NaN/inf metric fails; it is retried from its
// last checkpoint up to max_failures times, then marked ERROR; the experiment goes on. The first
// SIGINT/SIGTERM stops the trials (SIGTERM, then SIGKILL after stop_grace_s) and finishes with what
// was recorded; a second one kills them at once.
//
// Example:
//   tune::Tuner tuner(spec, {.experiment_dir = "tune_results/exp", .gpu_ids = {"0", "1"}});
//   int exit_code = tuner.Run();
//   const tune::Trial* best = tuner.best();
#pragma once

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include "reporters/reporters.h"
#include "schedulers/scheduler.h"
#include "search/searcher.h"
#include "tuner/journal.h"
#include "tuner/launcher.h"
#include "tuner/report_server.h"
#include "tuner/resources.h"
#include "tuner/spec.h"
#include "core/trial.h"

namespace tune {

struct TunerOptions {
  std::filesystem::path experiment_dir;   // <storage>/<name>; created if missing
  std::vector<std::string> gpu_ids;       // GPUs this experiment may use
  double cpus = 1;                        // CPU slots
  std::filesystem::path bin_dir;          // where `tune` lives: bare command names look here first
  std::FILE* out = stdout;                // status table and the final summary
  bool live_table = false;                // redraw the table in place (stdout is a terminal)
  std::string report_host = "127.0.0.1";
  bool resume = false;                    // continue the experiment in experiment_dir
  // Makes the launcher; the default starts local processes. Tests may pass a fake.
  std::function<std::unique_ptr<Launcher>(boost::asio::io_context&)> make_launcher;
};

class Tuner : private ReportServer::Handler {
 public:
  // Throws SpecError when the spec cannot run here (resources that never fit, bad searcher or
  // scheduler options, trainer command missing).
  Tuner(ExperimentSpec spec, TunerOptions options);
  ~Tuner() override;

  // Runs the experiment to the end. Returns the process exit code: 0 when it completed, 1 when
  // every trial failed, 130 when interrupted.
  int Run();

  const std::vector<Trial>& trials() const { return trials_; }
  const Trial* best() const { return BestTrial(trials_, spec_.metric, spec_.mode); }

 private:
  struct Runtime {
    std::optional<Allocation> allocation;
    std::string token;
    double attempt_start_s = 0;
    double time_before_attempt_s = 0;  // the trial's running time over its earlier attempts
    bool stop_requested = false;   // the scheduler (or Ctrl-C) said stop
    bool done_received = false;
    bool budget_exhausted = false; // stopped at the end of its budget: it completed
    std::string fatal_error;       // a failure that must not be retried (NaN metric)
    std::string timeout_reason;    // set when the watchdog killed it
    int failed_rank = 0;           // the rank whose failure ended the attempt (its log is shown)
    std::unique_ptr<boost::asio::steady_timer> kill_timer;
    std::unique_ptr<boost::asio::steady_timer> watchdog;  // connect / report timeouts
  };

  // ReportServer::Handler
  std::optional<std::string> ExpectedToken(const std::string& trial_id) override;
  void OnConnect(const std::string& trial_id, std::int64_t pid) override;
  Action OnReport(const std::string& trial_id, ReportMessage& report) override;
  void BeforeReplies() override;
  void OnDone(const std::string& trial_id) override;
  void OnHeartbeat(const std::string& trial_id) override;
  void OnDisconnect(const std::string& trial_id) override;
  void OnProtocolError(const std::string& trial_id, const std::string& reason) override;

  // State transitions shared by the live loop and journal replay: they update trials_ and tell
  // the searcher and scheduler, and touch no process, file or journal.
  std::size_t ApplyTrialCreated(const std::string& trial_id, const Json& params);
  void ApplyTrialStarted(std::size_t index, const std::string& gpus);
  Decision ApplyReport(std::size_t index, const Result& result,
                       const std::optional<std::string>& checkpoint, const std::string& error);
  void ApplyFailure(std::size_t index, const std::string& reason, bool retry);
  void ApplyFinish(std::size_t index, TrialStatus status);

  void Replay(const std::vector<Json>& events);
  // Throws SpecError when experiment.json changed in a way replay cannot follow.
  void CheckResumable(const std::vector<Json>& events) const;
  std::size_t RunningTrials() const;
  void FillSlots();
  void LaunchWhileSlotsFree();
  bool LaunchTrial(std::size_t index, Allocation allocation);
  void OnExit(std::int64_t pid, ExitStatus status);
  void FinishTrial(std::size_t index, TrialStatus status);
  void FailTrial(std::size_t index, const std::string& reason, bool retry_allowed);
  void ArmWatchdog(std::size_t index, double seconds, const std::string& reason);
  void StopTrial(std::size_t index);  // SIGTERM now, SIGKILL after stop_grace_s
  void OnSignal(int signal);
  void MaybeFinish();
  void RefreshTable(bool force);
  void ScheduleRefresh();
  void RunLoop();
  double Now() const;
  Trial* Find(const std::string& trial_id, std::size_t* index = nullptr);
  std::vector<std::string> Command() const;
  void Log(const std::string& message) const;

  ExperimentSpec spec_;
  TunerOptions options_;
  boost::asio::io_context io_;
  std::unique_ptr<Launcher> launcher_;
  std::unique_ptr<Searcher> searcher_;
  std::unique_ptr<Scheduler> scheduler_;
  ResourcePool pool_;
  ResultWriter writer_;
  StatusTable table_;
  std::unique_ptr<ReportServer> server_;
  std::unique_ptr<Journal> journal_;
  boost::asio::signal_set signals_;
  boost::asio::steady_timer refresh_timer_;

  std::vector<Trial> trials_;
  std::vector<Runtime> runtime_;  // parallel to trials_
  std::map<std::string, std::size_t> index_by_id_;
  std::map<std::int64_t, std::size_t> index_by_pid_;  // by launcher group id (rank 0's pid)
  bool searcher_finished_ = false;
  int interrupts_ = 0;
  bool finished_ = false;
  double start_s_ = 0;
};

}  // namespace tune
