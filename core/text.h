// Text that came from a trial (its stderr, its metric values, its error), made safe to quote:
// bounded in size, cut at a character boundary, with control characters escaped so that nothing
// a trial prints can move the cursor, clear the screen or retitle the terminal, and with cells a
// spreadsheet would run as formulas defused.
//
// Example:
//   std::string tail = ReadTail(trial_dir / "stderr.log");   // at most kMaxQuotedBytes
//   Log("trial failed: " + EscapeControl(LastLines(tail, 1), /*keep_newlines=*/false));
#pragma once

#include <cstddef>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace tune {

// How much of a trial's output is ever read to be quoted (error.txt, the journal, the log).
inline constexpr std::size_t kMaxQuotedBytes = 64 * 1024;

// The last `max_bytes` bytes of `file` (all of it when smaller), read by seeking from the end so
// that memory stays bounded whatever the file's size. The text starts at a UTF-8 character
// boundary (a partial leading character is dropped). "" when the file cannot be read.
std::string ReadTail(const std::filesystem::path& file, std::size_t max_bytes = kMaxQuotedBytes);

// The last `max_bytes` bytes of `text` (all of it when shorter), starting at a UTF-8 character
// boundary.
std::string_view TailBytes(std::string_view text, std::size_t max_bytes);

// The last `count` lines of `text` ('\n' separated; a trailing '\n' ends the last line).
std::string LastLines(std::string_view text, std::size_t count);

// `text` with control characters escaped: C0 controls (but '\n' and '\t' when `keep_newlines`),
// DEL, C1 controls and bidirectional overrides become visible escapes ("\r", "\x1b", "\u009b",
// "\u202e"); bytes that are not UTF-8 become "\xNN". The result is valid UTF-8.
std::string EscapeControl(std::string_view text, bool keep_newlines);

// The parts of `text` between the `separator`s, in order. Empty parts are dropped ("a,,b" ->
// {"a", "b"}, "" -> {}) unless `keep_empty` ("a,,b" -> {"a", "", "b"}, "" -> {""}).
std::vector<std::string> Split(std::string_view text, char separator, bool keep_empty = false);

// `text` with every `from` (non-empty) replaced by `to`, left to right.
std::string ReplaceAll(std::string text, std::string_view from, std::string_view to);

// True when a spreadsheet would run `cell` as a formula (it starts with = + - @, a tab or a
// carriage return).
bool LooksLikeFormula(std::string_view cell);

}  // namespace tune
