// The experiment journal: journal.jsonl, one JSON event per line, appended in the order things
// happened. It is the record `tune resume` rebuilds an experiment from: replaying its events into
// the same searcher and scheduler code gives back their state, so nothing else is persisted.
//
// Integrity: each line is {"seq":N,<the event's fields>,"crc":"xxxxxxxx"}. seq counts events
// from 1 (a Journal opened on an existing file continues after its last line's); crc is the
// CRC-32 of the line up to ,"crc", (the LevelDB log's record checksum, kept inside the JSON so
// the file stays one JSON object per line). ReadJournal names the line of a duplicate, a gap, an
// out-of-order or a damaged event. Journals written before seq existed ("legacy" lines, no seq
// and no crc) are read as they are; once a line has a seq, every later line must.
//
// Durability: Append() hands the line to the kernel with one write(2) before it returns, so the
// event survives a crash or kill -9 of the tuner. With SyncPolicy::kAlways it is also fdatasync'ed
// before Append() returns (survives power loss; costs a disk flush per event); with
// SyncPolicy::kInterval, Sync() — called by the tuner's timer — flushes at most once per interval.
// The tuner appends a report's event before the trial sees its decision.
//
// Group commit: Stage() queues an event in memory and Commit() writes every queued event with one
// write(2) (and one fdatasync under kAlways). The report server handles every report that arrived
// in one turn of the event loop, the tuner stages their events, commits once, and only then are
// the decisions sent: under load one write (and one disk flush) covers many reports. Append()
// commits what is staged first, so the file order is always the order of the calls.
//
// Example:
//   tune::Journal journal(dir / "journal.jsonl", tune::Journal::SyncPolicy::kNever);
//   journal.Append(tune::TrialCreated{"t_00001", params});   // tuner/events.h
//   tune::JournalContents old = tune::ReadJournal(dir / "journal.jsonl");   // for resume
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <istream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/types.h"
#include "tuner/events.h"

namespace tune {

// Fault injection for the crash tests (only the test build of `tune` sets one): the process
// exits at once, status 137, right after writing the `after`-th event whose line contains every
// string of `match` (an empty `match` counts every event). after = 0: never.
struct JournalFault {
  std::size_t after = 0;
  std::vector<std::string> match;
};

class Journal {
 public:
  enum class SyncPolicy { kNever, kInterval, kAlways };
  // Opens (creating if needed) for appending. Throws std::runtime_error naming the path.
  // `fault`: see JournalFault.
  Journal(std::filesystem::path path, SyncPolicy sync, JournalFault fault = {});
  ~Journal();
  Journal(const Journal&) = delete;
  Journal& operator=(const Journal&) = delete;

  // Writes `event` as one line (after any staged ones). Throws std::runtime_error when the write
  // fails (disk full).
  void Append(const Json& event);
  // The same for a typed event (tuner/events.h): what the tuner writes.
  void Append(const JournalEvent& event);
  // Queues `event`; it reaches the file at the next Commit() or Append().
  void Stage(const Json& event);
  void Stage(const JournalEvent& event) { StageText(Encode(event)); }
  // The same for an event already serialized: one JSON object, without a newline.
  void StageText(std::string_view event);
  // Writes the staged events, if any, with one write(2). Throws like Append().
  void Commit();
  // Flushes written events to the disk if any were written since the last Sync() (kInterval).
  void Sync();
  std::size_t events_written() const { return events_written_; }
  // The file's length after the last committed event, and the sequence number the next event
  // gets: where the next line starts (resume snapshots, tuner/snapshot.h, record it).
  std::uint64_t size() const { return size_; }
  std::uint64_t next_seq() const { return next_seq_; }

 private:
  std::filesystem::path path_;
  SyncPolicy sync_;
  int fd_ = -1;
  bool dirty_ = false;
  std::size_t events_written_ = 0;
  std::uint64_t next_seq_ = 1;            // the sequence number of the next event
  std::uint64_t size_ = 0;                // the file's length after the last Commit()
  std::string staged_;                    // staged lines, written by Commit()
  std::vector<std::size_t> staged_ends_;  // end offset of each staged line in staged_
  JournalFault fault_;
  std::size_t fault_matched_ = 0;              // events that matched fault_.match so far
  std::optional<std::size_t> fault_staged_;    // the staged line to die after, once counted
};

// Parses "never" / "interval" / "always"; throws SpecError naming `path` otherwise.
Journal::SyncPolicy ParseJournalSync(const Json& value, const std::string& path);

// The longest journal line ReadJournal takes whole. The tuner writes far shorter events (it
// quotes at most 1 KiB of a trial's output in a `reason`); a longer line is read with bounded
// memory and, if it is an event whose long string can be cut in its middle, shortened with a
// warning, else reported as corrupt.
inline constexpr std::size_t kMaxJournalLineBytes = 16 << 20;

// The CRC-32 (IEEE, as zlib's crc32) the journal frames its lines with; resume snapshots
// (tuner/snapshot.h) check their state files with it too. As zlib's, `crc` continues an earlier
// result: Crc32(b, Crc32(a)) == Crc32(a + b).
std::uint32_t Crc32(std::string_view data, std::uint32_t crc = 0);

// A place in a journal: `offset` bytes, ending the `line`-th line, whose sequence number was
// `seq` (0 before the first line, or when that line had none). Reading from it (below) checks the
// lines that follow as if everything before had been read.
struct JournalPosition {
  std::uint64_t offset = 0;
  std::uint64_t seq = 0;
  std::size_t line = 0;
};

struct JournalContents {
  std::vector<Json> events;
  // Set when the last line was torn (no newline: the tuner died while writing it);
  // that line is not in `events`. Also names each oversized event that was shortened.
  std::string warning;
  std::size_t valid_bytes = 0;  // length of the file up to the end of the last good line
  JournalPosition end;          // after the last good line (end.offset == valid_bytes)
};

// Reads a journal. Only a last line without its newline is torn (dropped with `warning`); any
// other bad line (not a JSON event, nested too deep, a bad checksum, a sequence number repeated,
// skipped or out of order) is corruption and throws std::runtime_error naming the file and line.
JournalContents ReadJournal(const std::filesystem::path& path);

// ReadJournal() without holding the events: each one goes to `visit` (with its line number,
// from 1) as soon as its line is read and checked, so memory stays that of one line whatever the
// journal's length (`tune resume` replays through it). The result's `events` stays empty. A
// corrupt line throws after the events before it were visited.
// `from`: start there instead of at the beginning (resume from a snapshot reads only the tail).
JournalContents ForEachJournalEvent(const std::filesystem::path& path,
                                    const std::function<void(Json&& event, std::size_t line)>& visit,
                                    JournalPosition from = {});
// The same over any stream (a journal in memory: tests/fuzz/journal_fuzz.cc), read from its
// current place, which is `from`; `name` stands for the file in messages.
JournalContents ForEachJournalEvent(std::istream& in, const std::string& name,
                                    const std::function<void(Json&& event, std::size_t line)>& visit,
                                    JournalPosition from = {});

// The one event after `from` (checked as ForEachJournalEvent checks it), or nullopt when the
// journal ends there (or only a torn line follows). Throws like ForEachJournalEvent.
std::optional<Json> JournalEventAt(const std::filesystem::path& path, JournalPosition from = {});

}  // namespace tune
