#include "tuner/journal.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include <fmt/format.h>

namespace tune {

Journal::Journal(std::filesystem::path path, SyncPolicy sync) : path_(std::move(path)), sync_(sync) {
  if (const char* fault = std::getenv("TUNE_FAULT_EXIT_AFTER_EVENTS")) {
    exit_after_events_ = std::strtoull(fault, nullptr, 10);
  }
  fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd_ < 0) {
    throw std::runtime_error(fmt::format("cannot open {}: {}", path_.string(), std::strerror(errno)));
  }
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
  staged_ += event;
  staged_ += '\n';
  staged_ends_.push_back(staged_.size());
}

void Journal::Commit() {
  if (staged_ends_.empty()) return;
  // Fault injection for the crash tests: when the N-th event is among the staged ones, write up
  // to its end and die as abruptly as kill -9 would, before anything acts on it.
  std::size_t length = staged_.size();
  bool die = false;
  if (exit_after_events_ > events_written_ &&
      exit_after_events_ <= events_written_ + staged_ends_.size()) {
    length = staged_ends_[exit_after_events_ - events_written_ - 1];
    die = true;
  }
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

JournalContents ReadJournal(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(path.string() + ": cannot read the journal");
  std::stringstream buffer;
  buffer << in.rdbuf();
  const std::string text = buffer.str();

  JournalContents contents;
  std::size_t start = 0;
  std::size_t line_number = 0;
  while (start < text.size()) {
    ++line_number;
    std::size_t newline = text.find('\n', start);
    bool last = newline == std::string::npos || newline + 1 == text.size();
    std::string_view line(text.data() + start,
                          (newline == std::string::npos ? text.size() : newline) - start);
    Json event = Json::parse(line, nullptr, /*allow_exceptions=*/false);
    bool good = newline != std::string::npos && !event.is_discarded() && event.is_object() &&
                event.contains("event");
    if (!good) {
      if (last) {
        contents.warning = fmt::format(
            "{}:{}: ignoring a torn last line ({} bytes): the tuner stopped while writing it",
            path.string(), line_number, line.size());
        break;
      }
      throw std::runtime_error(
          fmt::format("{}:{}: corrupt journal line (not a JSON event)", path.string(), line_number));
    }
    contents.events.push_back(std::move(event));
    start = newline + 1;
    contents.valid_bytes = start;
  }
  return contents;
}

}  // namespace tune
