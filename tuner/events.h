// The journal's events as typed records: one Encode and one Decode, used by the tuner's loop
// (writing), by `tune resume` (replaying) and by the CLI (reading).
//
// One event per line of journal.jsonl, {"event": "<type>", ...}:
//   start           the experiment began: the spec as run and where space.json was
//   resume          `tune resume` took over (errored: with --errored)
//   trial_created   the searcher proposed params for a new trial
//   trial_started   a trial (attempt) was launched: its process group, GPUs, checkpoint
//   report          a result and the decision it got (continue / pause / stop)
//   trial_paused    a paused trial exited; it waits with `checkpoint` to run again
//   trial_exploited PBT: the trial now has `params` and a copy (`checkpoint`) of `source`'s
//   trial_failed    an attempt failed; `retry` says whether it runs again
//   trial_ended     the trial reached TERMINATED or STOPPED (`reason` when a stopper said so)
//   trial_requeued  `tune resume --errored` gives an ERROR trial another run
//   experiment_stopped  a stopper ended the experiment (`reason`)
//   snapshot        every result before it is in its trial's result.json / progress.csv; for each
//                   trial not finished then, those files' sizes (`trials`), so that `tune resume`
//                   repairs only the files of trials touched after the last snapshot
//   trial_placed    a launcher other than local processes placed the running attempt: `job` (a
//                   Slurm job or job step, "12" or "12.3"), `location` (its nodes); `tune resume`
//                   cancels what a dead tuner left there
//
// Example:
//   journal.Append(Encode(TrialCreated{"t_00001", params}));
//   JournalEvent event = DecodeEvent(json, /*line=*/3);   // throws naming the line
//   if (auto* report = std::get_if<ReportEvent>(&event)) ...
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "core/types.h"

namespace tune {

struct StartEvent {
  double time = 0;
  std::string spec_dir;
  Json spec;
};
struct ResumeEvent {
  double time = 0;
  bool errored = false;
};
struct TrialCreated {
  std::string trial_id;
  Json params;
};
struct TrialStarted {
  std::string trial_id;
  std::int64_t pid = 0;
  std::string gpus;
  std::optional<std::string> checkpoint;
};
struct ReportEvent {
  std::string trial_id;
  std::string decision;  // "continue", "pause", "stop" (the wire action)
  Result result;
  std::optional<std::string> checkpoint;
  std::string error;  // a fatal error found in the result (NaN metric)
};
struct TrialPaused {
  std::string trial_id;
  std::optional<std::string> checkpoint;
};
struct TrialExploited {
  std::string trial_id;
  std::string source;
  Json params;
  std::optional<std::string> checkpoint;  // the copy of source's checkpoint it now runs from
  // The training_iteration that checkpoint was reported at: the trial's count goes on from there
  // (as Ray restores a trial's iteration with its checkpoint). Absent in older journals.
  std::optional<std::int64_t> iteration;
};
struct TrialFailed {
  std::string trial_id;
  std::string reason;
  bool retry = false;
};
struct TrialEnded {
  std::string trial_id;
  TrialStatus status = TrialStatus::kTerminated;
  std::string reason;
};
struct TrialRequeued {
  std::string trial_id;
};
struct ExperimentStopped {
  std::string reason;
};
struct TrialPlaced {
  std::string trial_id;
  std::string job;       // the launcher's id of the running attempt ("12.3": Slurm job 12, step 3)
  std::string location;  // where it runs ("n1", "n[1-2]")
};

// Written by the tuner every TunerOptions::snapshot_every_events events and at the end.
struct JournalSnapshot {
  struct Files {
    std::string trial_id;
    std::uint64_t result_bytes = 0;    // of result.json then
    std::uint64_t progress_bytes = 0;  // of progress.csv then
  };
  std::vector<Files> trials;  // the trials that were not finished, in creation order
  // The experiment's whole state at this line, when the tuner wrote one (tuner/snapshot.h): its
  // file, relative to the experiment directory, with its length and CRC-32.
  struct State {
    std::string file;
    std::uint64_t bytes = 0;
    std::uint32_t crc = 0;
    bool operator==(const State& other) const {
      return file == other.file && bytes == other.bytes && crc == other.crc;
    }
  };
  std::optional<State> state;
};

using JournalEvent =
    std::variant<StartEvent, ResumeEvent, TrialCreated, TrialStarted, ReportEvent, TrialPaused,
                 TrialExploited, TrialFailed, TrialEnded, TrialRequeued, ExperimentStopped,
                 TrialPlaced, JournalSnapshot>;

// One line, without the newline.
std::string Encode(const JournalEvent& event);
// Throws std::runtime_error "journal line N: <what is wrong>" for an unknown type or a missing
// or mistyped field.
JournalEvent DecodeEvent(const Json& json, std::size_t line);

// The trial an event is about ("" for start, resume, experiment_stopped).
std::string TrialIdOf(const JournalEvent& event);

}  // namespace tune
