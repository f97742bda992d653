// Resume snapshots: the experiment's whole state (trials, scheduler, searcher, stoppers) in one
// file, so that `tune resume` of a long journal loads that file and replays only the journal's
// tail instead of every event since the start. The journal stays the source of truth:
//
// - The tuner writes <experiment>/snapshots/state-<seq>.json (through a temporary file and a
//   rename), then journals the snapshot event (tuner/events.h's JournalSnapshot) naming the file
//   with its length and CRC-32; the file records where in the journal that event starts
//   ("journal": {"offset", "seq", "line"}). The two newest state files are kept.
// - Resume takes the newest state file that the journal vouches for: the journal's line at the
//   recorded offset is a well-formed snapshot event (its own sequence number and checksum) that
//   names this very file, length and CRC. A file that is torn, damaged, from another journal
//   (a journal rewritten or cut back) or of another format is skipped with a message; with none
//   left, resume replays the whole journal as before.
// - What goes into the file is the Tuner's (Tuner::SaveState, tuner/tuner.cc) and the components'
//   (Scheduler/Searcher::SaveState): the state that a full replay of the journal up to that
//   line would rebuild, no more (tests/tuner/tuner_loop_test.cc checks that a resume from the
//   snapshot and a full replay end equal).
//
// Example:
//   JournalSnapshot::State ref = WriteStateFile(dir, journal.next_seq(), [&](const TextSink& out) {
//     out("{\"format\":1,"); ...
//   });
//   std::optional<StateSnapshot> found = FindStateSnapshot(dir, dir / "journal.jsonl", log);
//   if (found) { Load(found->state); ForEachJournalEvent(journal, visit, found->at); }
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>

#include "core/types.h"
#include "reporters/reporters.h"
#include "tuner/events.h"
#include "tuner/journal.h"

namespace tune {

// The version of the state files' layout; a file of another is not loaded.
inline constexpr int kStateFormat = 1;

// Writes the text `produce` hands to its sink piece by piece (a state whose "journal" names the
// snapshot event's place, seq == `seq`: at 100,000 trials it is never one string or one Json) to
// <experiment_dir>/snapshots/state-<seq>.json atomically and returns what the snapshot event
// records of it. Throws std::runtime_error naming the file when it cannot be written.
JournalSnapshot::State WriteStateFile(const std::filesystem::path& experiment_dir,
                                      std::uint64_t seq,
                                      const std::function<void(const TextSink&)>& produce);
// Removes every state file but the `keep` newest (after their snapshot events were journaled).
void PruneStateFiles(const std::filesystem::path& experiment_dir, std::size_t keep = 2);

// Parses the state file at `path`, handing each element of its "trials" array to `trial` as soon
// as it is read (then dropping it: at 100,000 trials the whole file as one Json would take ~150
// MB); returns the rest ("trials" left empty), or a discarded Json when the file is not JSON.
Json ParseStateFile(const std::filesystem::path& path, const std::function<void(Json&&)>& trial);

struct StateSnapshot {
  Json state;           // the file's object without its trials (ParseStateFile)
  std::string file;     // "snapshots/state-<seq>.json"
  JournalPosition at;   // just before the snapshot event: replay from here, that event first
};

// The newest state file that `journal` vouches for (above), parsed; nullopt when there is none.
// Each file passed over is named to `log` with why.
std::optional<StateSnapshot> FindStateSnapshot(
    const std::filesystem::path& experiment_dir, const std::filesystem::path& journal,
    const std::function<void(const std::string&)>& log);

}  // namespace tune
