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
// Scheduling: the scheduler decides CONTINUE, PAUSE or STOP on every result, may stop or (PBT)
// exploit other trials through TrialControl, and chooses which PENDING or PAUSED trial runs when a
// slot frees (as Ray's controller, the tuner first keeps one new trial from the searcher PENDING,
// then asks). A paused trial is told "pause": it checkpoints, acknowledges and exits; it waits
// PAUSED, then runs again from that checkpoint (TUNE_CHECKPOINT). An exploited trial (PBT) waits
// with the new params and a copy of the source trial's checkpoint
// (<trial>/pbt_<n>_<source>/, its n-th exploit).
//
// Time comes from an injected Clock and processes from an injected Launcher, so
// tests/tuner/tuner_loop_test.cc drives the whole loop with fakes: Start(), then Poll() while it
// plays the trials through handler(), then Finish().
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
#include <set>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>

#include "core/clock.h"
#include "core/trial.h"
#include "reporters/callback.h"
#include "reporters/reporters.h"
#include "schedulers/scheduler.h"
#include "search/searcher.h"
#include "tuner/events.h"
#include "tuner/journal.h"
#include "tuner/launcher.h"
#include "tuner/report_server.h"
#include "tuner/resources.h"
#include "tuner/spec.h"
#include "tuner/timers.h"

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
  bool resume_errored = false;            // with resume: run the ERROR trials again
  // Makes the launcher; the default starts local processes. Tests may pass a fake.
  std::function<std::unique_ptr<Launcher>(boost::asio::io_context&)> make_launcher;
  // Makes the scheduler instead of the spec's (tests: a scripted one). Null = the spec's.
  std::function<std::unique_ptr<Scheduler>()> make_scheduler;
  // The clock; null = the system's. Tests pass a FakeClock.
  const Clock* clock = nullptr;
  // More callbacks, after the built-in ones (status table, result files, best trial).
  std::vector<std::shared_ptr<Callback>> callbacks;
  // Handle SIGINT/SIGTERM/SIGHUP (tests driving several tuners in one process turn it off).
  bool handle_signals = true;
  // Crash tests only: where the process dies (tuner/journal.h). Only `tune-test-hooks` sets it
  // (from TUNE_FAULT_EXIT_AFTER_EVENTS, tuner/main.cc); `tune` never does.
  JournalFault journal_fault;
  // A journal snapshot (tuner/events.h) every this many events, and one at the end of a run that
  // wrote a tenth of that since the last; `tune resume` then repairs only the result files of the
  // trials touched after it. 0 = never (resume rewrites every trial's files).
  std::size_t snapshot_every_events = 10000;
};

// SIGINT, SIGTERM and SIGHUP: each stops a Tuner cleanly (resumable) once it handles signals
// (TunerOptions::handle_signals). A program that blocks them until then (`tune run` and `tune
// resume`, from their start) gets one that came meanwhile handled then: the Tuner unblocks them.
void SetStopSignalsBlocked(bool blocked);

class Tuner : private ReportServer::Handler, private TrialControl {
 public:
  // Throws SpecError when the spec cannot run here (resources that never fit, bad searcher or
  // scheduler options, trainer command missing).
  Tuner(ExperimentSpec spec, TunerOptions options);
  ~Tuner() override;

  // Runs the experiment to the end. Returns the process exit code: 0 when it completed, 1 when
  // every trial failed, 130 when interrupted.
  int Run();

  // Run() in steps, for tests that drive the loop: Start() sets up (journal, replay, report
  // server, first launches); Poll() runs what is ready (io handlers, due timers) and returns
  // whether the experiment is still going; Finish() writes the end and returns the exit code.
  void Start();
  bool Poll();
  int Finish();
  // What the report server calls (tests call it directly, as a trial would).
  ReportServer::Handler& handler() { return *this; }
  // Ctrl-C / SIGTERM, as the signal handler would.
  void Interrupt(int signal) { OnSignal(signal); }

  const std::vector<Trial>& trials() const { return trials_; }
  const Trial* best() const { return best_.Best(trials_); }
  const Scheduler& scheduler() const { return *scheduler_; }
  const Searcher& searcher() const { return *searcher_; }

  // The experiment's state as a resume snapshot holds it (tuner/snapshot.h): the trials as a
  // replay of the journal rebuilds them, what replay keeps of the trials not finished, and the
  // scheduler's, searcher's and stoppers' states. nullopt when one of those keeps none (a custom
  // one) or the run is stopping (Ctrl-C, a stopper's experiment stop: the trials then carry
  // decisions that the journal does not).
  std::optional<Json> SaveState() const;
  // The same as text, piece by piece to `write` (never the whole state in memory at once), with
  // "journal": `journal_position`; false, and nothing written, when SaveState() would be nullopt.
  bool WriteState(const TextSink& write, const Json& journal_position) const;

 private:
  // PBT: what a trial is to restart from once its pause completes.
  struct PendingExploit {
    std::string source;
    Json params;
    std::optional<std::string> checkpoint;  // the copy of source's checkpoint
    std::int64_t at_iteration = 0;          // the trial's training_iteration when exploited
    std::optional<std::int64_t> source_iteration;  // when the cloned checkpoint was reported
  };

  struct Runtime {
    std::optional<Allocation> allocation;
    std::string token;
    double attempt_start_s = 0;
    double time_before_attempt_s = 0;  // the trial's running time over its earlier attempts
    bool stop_requested = false;   // the scheduler, a stopper (or Ctrl-C) said stop
    std::string stop_reason;       // a stopper's reason, journaled with trial_ended
    bool pause_requested = false;  // the scheduler said pause (or exploit)
    std::optional<std::string> paused_checkpoint;  // what the trial's "paused" named
    std::optional<PendingExploit> exploit;
    bool done_received = false;
    bool killed_after_grace = false;  // the grace period after stop/pause ran out: SIGKILLed
    bool budget_exhausted = false; // stopped at the end of its budget: it completed
    std::string fatal_error;       // a failure that must not be retried (NaN metric)
    std::string timeout_reason;    // set when the watchdog killed it
    int failed_rank = 0;           // the rank whose failure ended the attempt (its log is shown)
    bool lost = false;             // its machine failed (Slurm node, preemption): always retried
    std::string placed_job;        // the launcher's id of the attempt (trial_placed), for resume
    Timers::Id kill_timer = 0;
    Timers::Id watchdog = 0;       // connect / report timeouts
  };

  // ReportServer::Handler
  std::optional<std::string> ExpectedToken(const std::string& trial_id) override;
  void OnConnect(const std::string& trial_id, std::int64_t pid) override;
  Action OnReport(const std::string& trial_id, ReportMessage& report) override;
  void BeforeReplies() override;
  void OnDone(const std::string& trial_id) override;
  void OnPaused(const std::string& trial_id, const std::optional<std::string>& checkpoint) override;
  void OnHeartbeat(const std::string& trial_id) override;
  void OnDisconnect(const std::string& trial_id) override;
  void OnProtocolError(const std::string& trial_id, const std::string& reason) override;

  // TrialControl (the scheduler's view)
  const Trial* FindTrial(const std::string& trial_id) const override;
  void StopTrial(const std::string& trial_id, bool completed) override;
  void ExploitTrial(const std::string& trial_id, const std::string& source_trial_id,
                    const Json& params) override;

  // State transitions shared by the live loop and journal replay: they update trials_ and tell
  // the searcher and scheduler, and touch no process, file or journal.
  std::size_t ApplyTrialCreated(const std::string& trial_id, const Json& params);
  void ApplyTrialStarted(std::size_t index, const std::string& gpus);
  Decision ApplyReport(std::size_t index, const Result& result,
                       const std::optional<std::string>& checkpoint, const std::string& error);
  void ApplyFailure(std::size_t index, const std::string& reason, bool retry);
  void ApplyFinish(std::size_t index, TrialStatus status);
  void ApplyPaused(std::size_t index, const std::optional<std::string>& checkpoint);
  void ApplyExploited(std::size_t index, const TrialExploited& event);
  void ApplyRequeued(std::size_t index);
  // What replay keeps while it streams the journal: not every event or result, only the results
  // journaled since the last snapshot (the files hold the older ones), which trials' files need
  // repair, PBT's lineage lines, and the last pid of the trials that were running.
  struct ReplayState {
    bool snapshot_seen = false;
    std::map<std::string, std::pair<std::uint64_t, std::uint64_t>> sizes;  // from the snapshot
    std::map<std::size_t, std::vector<Result>> results;  // by trial index, since the snapshot
    // Trials whose files resume repairs: those not finished at the last snapshot and those with
    // events since.
    std::set<std::size_t> touched;
    std::set<std::size_t> created_since;  // trials created since the last snapshot
    // PBT, per trial with replayed exploits: how many lines of its lineage.jsonl came before
    // them (the exploits in a state file), kept as they are, and the lines of the replayed ones.
    struct Lineage {
      int kept = 0;
      std::vector<Json> entries;
    };
    std::map<std::string, Lineage> lineage;
    std::map<std::string, std::int64_t> last_pid;  // of trials whose last attempt was running
    std::size_t num_results = 0;
  };
  // Applies one journal event (replay); `line` for errors.
  void ApplyEvent(const JournalEvent& event, std::size_t line, ReplayState& state);
  // `tune resume`: reads journal.jsonl once (events are applied as they are read, not held),
  // opens the journal for appending, repairs the result files of the trials touched since the
  // last snapshot and settles the trials that were running.
  void Replay(const std::filesystem::path& journal_path, Journal::SyncPolicy sync);
  // Throws SpecError when experiment.json changed in a way replay cannot follow.
  void CheckResumable(const Json& start_event) const;
  // Journals a snapshot (tuner/events.h): flushes the result files and records the sizes of
  // those of every trial not finished; with `with_state` (or when one is due) it first writes the
  // experiment's state (SaveState) to a state file that the event names (tuner/snapshot.h).
  void WriteSnapshot(bool with_state = false);
  // Sets the trials, scheduler, searcher and stoppers to a SaveState() (on a fresh tuner, before
  // replay): `state` without its trials, which are read from `file` (under the experiment) one at
  // a time; and `replay`'s pids of the trials that were running. Throws std::runtime_error when
  // it does not fit; ResetState() then undoes it.
  void LoadState(const Json& state, const std::string& file, ReplayState& replay);
  void ResetState();
  // Makes the searcher, stoppers and scheduler from the spec (the constructor, ResetState).
  void MakeComponents();
  std::size_t RunningTrials() const { return by_status_.count(TrialStatus::kRunning); }
  // Every change of a trial's status goes through here (the index by status follows it).
  void SetStatus(std::size_t index, TrialStatus status);
  // The indices of the trials in `status` now, in creation order (a copy: safe to change
  // statuses while going through it).
  std::vector<std::size_t> TrialsIn(TrialStatus status) const;
  void FillSlots();
  void LaunchWhileSlotsFree();
  bool LaunchTrial(std::size_t index, Allocation allocation);
  void OnExit(std::int64_t pid, ExitStatus status);
  void FinishTrial(std::size_t index, TrialStatus status, std::string reason = "");
  // The trial's pause is complete (its process is gone): journal, apply, tell the callbacks.
  void CompletePause(std::size_t index);
  // PBT: the PAUSED trial now has the exploit's params and checkpoint copy: journal
  // (trial_exploited), apply, append to lineage.jsonl.
  void CompleteExploit(std::size_t index, const PendingExploit& exploit);
  // PBT: where trial `index` keeps its copy of `source`'s latest checkpoint
  // (<trial>/pbt_<n>_<source>/<name> for its n-th exploit), nullopt when the source has none; the
  // same in replay as live. CopyCheckpoint() makes the copy (live only).
  std::optional<std::string> ExploitCheckpoint(std::size_t index, const std::string& source) const;
  void CopyCheckpoint(std::size_t index, const PendingExploit& exploit);
  void FailTrial(std::size_t index, std::string reason, bool retry_allowed);
  void ArmWatchdog(std::size_t index, double seconds, const std::string& reason);
  // Told stop or pause: it should exit by itself; SIGKILL after stop_grace_s.
  void StopTrial(std::size_t index);
  // Stopped without waiting for its next report (Ctrl-C, a stopper, the scheduler stopping another
  // trial): StopTrial(), and SIGTERM now.
  void TerminateTrial(std::size_t index);
  void OnSignal(int signal);
  // A stopper ended the experiment: journaled, running trials told to stop, no new ones.
  void StopExperiment(const std::string& reason);
  void CheckExperimentStop();
  void MaybeFinish();
  ExperimentView View() const;
  void Tick();
  // Cuts the middle of the trial's logs that passed spec_.max_log_bytes.
  void CapLogs(std::size_t index);
  void ScheduleRefresh();
  void RunLoop();
  double Now() const { return clock_->Now(); }
  Trial* Find(const std::string& trial_id, std::size_t* index = nullptr);
  // <experiment>/<id> of trial `index` (trials keep no path of their own: core/trial.h).
  std::filesystem::path TrialDir(std::size_t index) const {
    return DirOf(trials_[index], options_.experiment_dir);
  }
  std::vector<std::string> Command() const;
  void Log(const std::string& message) const;

  ExperimentSpec spec_;
  // spec_.trainer, shared by every Trial (Trial::config() merges its params into it).
  std::shared_ptr<const Json> trainer_;
  TunerOptions options_;
  SystemClock system_clock_;
  const Clock* clock_;
  boost::asio::io_context io_;
  Timers timers_;
  std::unique_ptr<Launcher> launcher_;
  std::unique_ptr<Searcher> searcher_;
  std::unique_ptr<Scheduler> scheduler_;
  std::unique_ptr<Stoppers> stoppers_;
  std::string experiment_stop_;  // why a stopper ended the experiment ("" while it runs)
  ResourcePool pool_;
  std::shared_ptr<ResultWriter> writer_;  // also in callbacks_; resume rewrites its files
  std::vector<std::shared_ptr<Callback>> callbacks_;
  std::unique_ptr<ReportServer> server_;
  std::unique_ptr<Journal> journal_;
  boost::asio::signal_set signals_;
  Timers::Id refresh_timer_ = 0;
  bool replaying_ = false;  // Replay(): control calls change state only, the journal has the rest
  std::size_t events_at_snapshot_ = 0;  // journal_->events_written() at the last snapshot
  std::size_t events_at_state_ = 0;     // ... at the last snapshot with a state file
  std::size_t lines_at_open_ = 0;       // lines the journal had when journal_ opened it

  std::vector<Trial> trials_;
  // By index into trials_, for trials that have not reached a final status: made when first
  // used, let go at the end (an experiment may hold 100,000 trials; a Runtime is ~400 bytes).
  // unordered_map: references to an element stay valid while others come and go.
  std::unordered_map<std::size_t, Runtime> runtime_;
  TrialsByStatus by_status_;      // trials_ by status: no pass over every trial per event
  BestTrialTracker best_;         // the best trial, updated per report
  std::unique_ptr<ParetoTracker> pareto_;  // several objectives: the front, updated per report
  TrialIndex index_by_id_;  // core/trial.h: 8 bytes a "t_00001"-like id
  std::map<std::int64_t, std::size_t> index_by_pid_;  // by launcher group id (rank 0's pid)
  bool searcher_finished_ = false;
  int interrupts_ = 0;
  bool finished_ = false;
  double start_s_ = 0;
  double start_wall_s_ = 0;  // when the experiment first started (the start event), for stoppers
};

}  // namespace tune
