// libFuzzer target: any bytes as journal.jsonl, read from memory the way `tune resume` reads the
// file (tuner/journal.h: line framing, sequence numbers, checksums, the torn last line, the
// nesting limit, oversized lines) and every event decoded as the tuner's replay decodes it
// (tuner/events.h). Microseconds per input; journal_tuner_fuzz.cc resumes a whole Tuner instead.
//
// Checked:
//  - the reader either gives events or throws std::runtime_error naming the journal and the line
//    ("journal.jsonl:N: corrupt journal line (...)", or DecodeEvent's "journal line N: ...");
//  - the bytes it keeps (valid_bytes, what resume truncates the file to) end at a newline, and
//    read again they give the same events with nothing torn: a resumed journal stays readable;
//  - a torn last line is named in the warning, and only when the input does not end in '\n';
//  - an event that decodes survives Encode -> parse -> DecodeEvent -> Encode unchanged, so
//    what resume rebuilds from it is what the tuner wrote.
// Anything else (a crash, a sanitizer report, another exception type, a hang) is a bug.
#include <cstddef>
#include <cstdint>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "tuner/events.h"
#include "tuner/journal.h"

namespace {

struct Read {
  std::vector<std::string> encoded;  // each decoded event, encoded again
  tune::JournalContents contents;
  bool failed = false;
};

void Check(bool ok) {
  if (!ok) __builtin_trap();
}

Read ReadAll(std::string_view bytes) {
  Read read;
  std::istringstream in{std::string(bytes)};
  try {
    read.contents = tune::ForEachJournalEvent(in, "journal.jsonl", [&](tune::Json&& json,
                                                                       std::size_t line) {
      tune::JournalEvent event = tune::DecodeEvent(json, line);
      std::string text = tune::Encode(event);
      tune::Json again = tune::Json::parse(text);  // an encoded event is always valid JSON
      try {
        Check(tune::Encode(tune::DecodeEvent(again, line)) == text);
      } catch (const std::runtime_error&) {
        Check(false);  // the tuner's own encoding must decode
      }
      read.encoded.push_back(std::move(text));
    });
  } catch (const std::runtime_error& error) {
    const std::string_view what = error.what();
    Check(what.rfind("journal.jsonl:", 0) == 0 || what.rfind("journal line ", 0) == 0);
    read.failed = true;
  }
  return read;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  Read first = ReadAll(bytes);
  if (first.failed) return 0;
  const tune::JournalContents& contents = first.contents;
  Check(contents.valid_bytes <= size);
  Check(contents.valid_bytes == 0 || bytes[contents.valid_bytes - 1] == '\n');
  const bool torn = contents.warning.find("torn last line") != std::string::npos;
  const bool ends_line = size == 0 || bytes.back() == '\n';
  Check(torn != ends_line);
  Check(ends_line == (contents.valid_bytes == size));
  if (!torn) return 0;
  // What resume keeps of the file reads back the same, with nothing torn.
  Read kept = ReadAll(bytes.substr(0, contents.valid_bytes));
  Check(!kept.failed);
  Check(kept.encoded == first.encoded);
  Check(kept.contents.warning.find("torn last line") == std::string::npos);
  return 0;
}
