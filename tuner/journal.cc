#include "tuner/journal.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <istream>
#include <optional>
#include <stdexcept>
#include <vector>

#include <fmt/format.h>

#include "core/json_depth.h"

namespace tune {
namespace {

// CRC-32 (IEEE 802.3, zlib's), table-driven.
}  // namespace

std::uint32_t Crc32(std::string_view data, std::uint32_t crc) {
  static const auto kTable = [] {
    std::array<std::uint32_t, 256> table{};
    for (std::uint32_t n = 0; n < 256; ++n) {
      std::uint32_t c = n;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      table[n] = c;
    }
    return table;
  }();
  crc ^= 0xFFFFFFFFu;
  for (unsigned char byte : data) crc = kTable[(crc ^ byte) & 0xFF] ^ (crc >> 8);
  return crc ^ 0xFFFFFFFFu;
}

namespace {

// A framed line is {"seq":N,<the event's fields>,"crc":"xxxxxxxx"}: the CRC-32 of everything
// before ,"crc", in 8 lowercase hex digits.
constexpr std::string_view kSeqPrefix = "{\"seq\":";
constexpr std::string_view kCrcKey = ",\"crc\":\"";
constexpr std::size_t kCrcSuffixSize = kCrcKey.size() + 8 + 2;  // ,"crc":"xxxxxxxx"}

// The sequence number at the start of a framed line; nullopt for a legacy line.
std::optional<std::uint64_t> SeqOf(std::string_view line) {
  if (line.substr(0, kSeqPrefix.size()) != kSeqPrefix) return std::nullopt;
  std::uint64_t seq = 0;
  std::size_t i = kSeqPrefix.size();
  if (i >= line.size() || line[i] < '0' || line[i] > '9') return std::nullopt;
  for (; i < line.size() && line[i] >= '0' && line[i] <= '9' && seq < (1ull << 60); ++i) {
    seq = seq * 10 + static_cast<std::uint64_t>(line[i] - '0');
  }
  return seq;
}

// The sequence number of the last complete line of the open file `fd`, 0 when it has none (empty
// or legacy).
std::uint64_t LastSeq(int fd) {
  off_t end = ::lseek(fd, 0, SEEK_END);
  if (end <= 0) return 0;
  // The last line ends at end - 1 (its newline); find where it starts.
  off_t line_start = 0;
  std::array<char, 4096> chunk;
  for (off_t pos = end - 1; pos > 0;) {
    off_t from = std::max<off_t>(0, pos - static_cast<off_t>(chunk.size()));
    ssize_t n = ::pread(fd, chunk.data(), static_cast<std::size_t>(pos - from), from);
    if (n <= 0) return 0;
    bool found = false;
    for (ssize_t i = n - 1; i >= 0; --i) {
      if (chunk[static_cast<std::size_t>(i)] == '\n') {
        line_start = from + i + 1;
        found = true;
        break;
      }
    }
    if (found) break;
    pos = from;
  }
  char head[32] = {};
  ssize_t n = ::pread(fd, head, sizeof(head), line_start);
  if (n <= 0) return 0;
  return SeqOf(std::string_view(head, static_cast<std::size_t>(n))).value_or(0);
}

}  // namespace

Journal::Journal(std::filesystem::path path, SyncPolicy sync, JournalFault fault)
    : path_(std::move(path)), sync_(sync), fault_(std::move(fault)) {
  fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd_ < 0) {
    throw std::runtime_error(fmt::format("cannot open {}: {}", path_.string(), std::strerror(errno)));
  }
  next_seq_ = LastSeq(fd_) + 1;
  const off_t end = ::lseek(fd_, 0, SEEK_END);
  size_ = end > 0 ? static_cast<std::uint64_t>(end) : 0;
}

Journal::~Journal() {
  if (fd_ >= 0) {
    try {
      Commit();
    } catch (const std::exception&) {
      // Already reported by the call that failed first; nothing more to do while closing.
    }
    if (dirty_) ::fdatasync(fd_);
    ::close(fd_);
  }
}

void Journal::Append(const Json& event) {
  Stage(event);
  Commit();
}

void Journal::Append(const JournalEvent& event) {
  StageText(Encode(event));
  Commit();
}

void Journal::Stage(const Json& event) {
  StageText(event.dump(-1, ' ', /*ensure_ascii=*/false, Json::error_handler_t::replace));
}

void Journal::StageText(std::string_view event) {
  // {"event":...} becomes {"seq":N,"event":...,"crc":"xxxxxxxx"}.
  const std::size_t begin = staged_.size();
  staged_ += fmt::format("{}{}", kSeqPrefix, next_seq_++);
  std::string_view fields = event.substr(1, event.size() >= 2 ? event.size() - 2 : 0);
  if (!fields.empty()) staged_ += ',';
  staged_ += fields;
  const std::uint32_t crc = Crc32(std::string_view(staged_).substr(begin));
  staged_ += fmt::format("{}{:08x}\"}}\n", kCrcKey, crc);
  staged_ends_.push_back(staged_.size());
  if (fault_.after > 0 && !fault_staged_) {
    std::string_view line = std::string_view(staged_).substr(begin);
    bool matches = std::all_of(fault_.match.begin(), fault_.match.end(),
                               [&](const std::string& m) { return line.find(m) != line.npos; });
    if (matches && ++fault_matched_ == fault_.after) fault_staged_ = staged_ends_.size() - 1;
  }
}

void Journal::Commit() {
  if (staged_ends_.empty()) return;
  // Fault injection for the crash tests: when the N-th event is among the staged ones, write up
  // to its end and die as abruptly as kill -9 would, before anything acts on it.
  const bool die = fault_staged_.has_value();
  const std::size_t length = die ? staged_ends_[*fault_staged_] : staged_.size();
  // One write(2) for the batch: the kernel never shows another reader half of it, and a killed
  // tuner leaves at most one torn line (only on power loss or a full disk).
  std::size_t written = 0;
  while (written < length) {
    ssize_t n = ::write(fd_, staged_.data() + written, length - written);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      throw std::runtime_error(
          fmt::format("cannot write {}: {}", path_.string(), std::strerror(errno)));
    }
    written += static_cast<std::size_t>(n);
  }
  if (die) ::_exit(137);
  events_written_ += staged_ends_.size();
  size_ += length;
  staged_.clear();
  staged_ends_.clear();
  if (sync_ == SyncPolicy::kAlways) {
    ::fdatasync(fd_);
  } else {
    dirty_ = true;
  }
}

void Journal::Sync() {
  if (!dirty_) return;
  ::fdatasync(fd_);
  dirty_ = false;
}

Journal::SyncPolicy ParseJournalSync(const Json& value, const std::string& path) {
  if (value == "never") return Journal::SyncPolicy::kNever;
  if (value == "interval") return Journal::SyncPolicy::kInterval;
  if (value == "always") return Journal::SyncPolicy::kAlways;
  throw SpecError(path, "must be \"never\", \"interval\" or \"always\", got " + value.dump());
}

namespace {

// One line of a journal as LineReader returns it. A line longer than the reader's limit keeps
// only its first and last kKeptBytes (`head`, `tail`); `size` is its full length either way.
struct JournalLine {
  std::string text;  // the whole line when size <= the limit, else its head
  std::string tail;  // the bytes past the limit, trimmed to the last kKeptBytes
  std::uint64_t size = 0;
  bool complete = false;  // ended by a newline
};

constexpr std::size_t kKeptBytes = 4096;

// Reads a file line by line in fixed chunks: memory stays bounded by the limit whatever the
// file holds (a 6 GB line of a trial's output quoted by an old tuner included).
class LineReader {
 public:
  LineReader(std::istream& in, std::size_t max_line_bytes) : in_(in), max_(max_line_bytes) {}

  // False at the end of the file.
  bool Next(JournalLine& line) {
    line.text.clear();
    line.tail.clear();
    line.size = 0;
    line.complete = false;
    for (;;) {
      if (pos_ == filled_) {
        in_.read(buffer_.data(), static_cast<std::streamsize>(buffer_.size()));
        filled_ = static_cast<std::size_t>(in_.gcount());
        pos_ = 0;
        if (filled_ == 0) return line.size > 0;
      }
      const char* start = buffer_.data() + pos_;
      const auto* newline = static_cast<const char*>(std::memchr(start, '\n', filled_ - pos_));
      std::size_t take = newline ? static_cast<std::size_t>(newline - start) : filled_ - pos_;
      Append(line, std::string_view(start, take));
      pos_ += take;
      if (newline) {
        ++pos_;
        line.complete = true;
        return true;
      }
    }
  }

 private:
  void Append(JournalLine& line, std::string_view bytes) {
    line.size += bytes.size();
    std::size_t room = max_ - std::min(max_, line.text.size());
    line.text.append(bytes.substr(0, std::min(room, bytes.size())));
    if (bytes.size() <= room) return;
    line.tail.append(bytes.substr(room));
    if (line.tail.size() > 2 * kKeptBytes) line.tail.erase(0, line.tail.size() - kKeptBytes);
  }

  std::istream& in_;
  std::size_t max_;
  std::vector<char> buffer_ = std::vector<char>(1 << 16);
  std::size_t pos_ = 0, filled_ = 0;
};

// An oversized line shortened to its first and last kKeptBytes, cut inside a JSON string: the
// journals of tuners before the bounded quotes (issue 17) could hold a trial's whole stderr in
// a `reason`. The cuts avoid escape sequences and UTF-8 characters; a cut elsewhere (the
// structure of the event) does not parse and is reported as corrupt by the caller.
std::string Shortened(const JournalLine& line) {
  std::string head = line.text.substr(0, kKeptBytes);
  std::string tail = line.text.substr(line.text.size() - std::min(line.text.size(), kKeptBytes)) + line.tail;
  tail.erase(0, tail.size() - std::min(tail.size(), kKeptBytes));
  auto unsafe = [](char c) { return c == '\\' || (static_cast<unsigned char>(c) & 0x80) != 0; };
  std::size_t end = head.size();
  for (std::size_t back = 1; back <= 6 && back <= head.size(); ++back) {
    if (unsafe(head[head.size() - back])) end = head.size() - back;
  }
  while (end > 0 && (static_cast<unsigned char>(head[end - 1]) & 0x80) != 0) --end;
  std::size_t begin = std::min<std::size_t>(6, tail.size());
  for (std::size_t i = 0; i < begin; ++i) {
    if (unsafe(tail[i])) begin = i + 1;
  }
  while (begin < tail.size() && ((static_cast<unsigned char>(tail[begin]) & 0x80) != 0 ||
                                 (begin > 0 && tail[begin - 1] == '\\'))) {
    ++begin;
  }
  return head.substr(0, end) +
         fmt::format(" [... {} bytes cut by tune resume ...] ",
                     line.size - end - (tail.size() - begin)) +
         tail.substr(begin);
}

}  // namespace

JournalContents ReadJournal(const std::filesystem::path& path) {
  std::vector<Json> events;
  JournalContents contents = ForEachJournalEvent(
      path, [&](Json&& event, std::size_t) { events.push_back(std::move(event)); });
  contents.events = std::move(events);
  return contents;
}

JournalContents ForEachJournalEvent(const std::filesystem::path& path,
                                    const std::function<void(Json&& event, std::size_t line)>& visit,
                                    JournalPosition from) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(path.string() + ": cannot read the journal");
  if (from.offset > 0 && !in.seekg(static_cast<std::streamoff>(from.offset))) {
    throw std::runtime_error(fmt::format("{}: cannot read the journal from byte {}", path.string(),
                                         from.offset));
  }
  return ForEachJournalEvent(in, path.string(), visit, from);
}

JournalContents ForEachJournalEvent(std::istream& in, const std::string& name,
                                    const std::function<void(Json&& event, std::size_t line)>& visit,
                                    JournalPosition from) {
  JournalContents contents;
  LineReader reader(in, kMaxJournalLineBytes);
  JournalLine read;
  std::uint64_t offset = from.offset;
  std::size_t line_number = from.line;
  std::uint64_t last_seq = from.seq;  // of the previous framed line; 0 before the first
  std::size_t last_seq_line = from.line;  // its line number
  contents.valid_bytes = offset;
  contents.end = from;
  auto corrupt = [&](const std::string& what) {
    return std::runtime_error(
        fmt::format("{}:{}: corrupt journal line ({})", name, line_number, what));
  };
  while (reader.Next(read)) {
    ++line_number;
    if (!read.complete) {
      // Only a line without its newline is torn: the tuner stopped while writing it.
      if (!contents.warning.empty()) contents.warning += "\n";
      contents.warning += fmt::format(
          "{}:{}: ignoring a torn last line ({} bytes): the tuner stopped while writing it",
          name, line_number, read.size);
      break;
    }
    // A line past the limit (bounded memory: only its ends were kept) can only be a legacy
    // event whose long string is cut in its middle; the tuner frames none that long.
    const bool oversized = read.size > kMaxJournalLineBytes;
    const std::string shortened = oversized ? Shortened(read) : std::string();
    std::string_view line = oversized ? std::string_view(shortened) : std::string_view(read.text);
    std::optional<std::uint64_t> seq = SeqOf(line);
    if (oversized && seq) {
      throw corrupt(fmt::format("{} bytes, more than the {} an event may take", read.size,
                                kMaxJournalLineBytes));
    }
    if (seq) {
      // A framed line: checksum first, so a damaged line is named as such.
      const bool framed = line.size() >= kSeqPrefix.size() + kCrcSuffixSize &&
                          line.substr(line.size() - kCrcSuffixSize, kCrcKey.size()) == kCrcKey &&
                          line.back() == '}' && line[line.size() - 2] == '"';
      if (!framed) throw corrupt("no checksum");
      const std::string_view hex = line.substr(line.size() - 10, 8);
      const std::string expected = fmt::format("{:08x}", Crc32(line.substr(0, line.size() - kCrcSuffixSize)));
      if (hex != expected) throw corrupt("checksum mismatch");
      if (*seq == last_seq && last_seq != 0) {
        throw corrupt(fmt::format("a duplicate of line {} (sequence number {})", last_seq_line,
                                  *seq));
      }
      if (*seq != last_seq + 1) {
        throw corrupt(fmt::format("sequence number {} where {} was expected{}", *seq,
                                  last_seq + 1,
                                  *seq > last_seq + 1 ? ": events are missing" : ": out of order"));
      }
      last_seq = *seq;
      last_seq_line = line_number;
    } else if (last_seq != 0) {
      throw corrupt(fmt::format("no sequence number after line {} had one", last_seq_line));
    }
    if (FindDeepNesting(line) != std::string_view::npos) {
      throw corrupt(fmt::format("nested deeper than {} levels", kMaxJsonDepth));
    }
    Json event = Json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (event.is_discarded() || !event.is_object() || !event.contains("event") ||
        !event["event"].is_string()) {
      throw corrupt(oversized ? fmt::format("{} bytes, more than the {} an event may take, and "
                                            "not an event whose long text can be shortened",
                                            read.size, kMaxJournalLineBytes)
                              : std::string("not a JSON event"));
    }
    if (!seq && (event.contains("seq") || event.contains("crc"))) throw corrupt("misplaced seq");
    if (seq) {
      // The framing is the journal's: readers get the event's own fields.
      event.erase("seq");
      event.erase("crc");
    }
    if (oversized) {
      if (!contents.warning.empty()) contents.warning += "\n";
      contents.warning += fmt::format(
          "{}:{}: an event of {} bytes (more than {}) was shortened to its first and last {} "
          "bytes (a trial's output quoted whole by an older tune)",
          name, line_number, read.size, kMaxJournalLineBytes, kKeptBytes);
    }
    visit(std::move(event), line_number);
    offset += read.size + 1;
    contents.valid_bytes = offset;
    contents.end = {offset, seq.value_or(0), line_number};
  }
  return contents;
}

std::optional<Json> JournalEventAt(const std::filesystem::path& path, JournalPosition from) {
  struct Enough {};  // thrown by the visitor: the first event is all that is wanted
  std::optional<Json> found;
  try {
    ForEachJournalEvent(
        path,
        [&](Json&& event, std::size_t) {
          found = std::move(event);
          throw Enough{};
        },
        from);
  } catch (const Enough&) {
  }
  return found;
}

}  // namespace tune
