#include "tuner/experiment_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include <fmt/format.h>

#include "core/types.h"

namespace tune {

ExperimentLock::ExperimentLock(const std::filesystem::path& dir) {
  std::filesystem::path path = dir / ".lock";
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd_ < 0) {
    throw std::runtime_error(fmt::format("cannot open {}: {}", path.string(), std::strerror(errno)));
  }
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    int error = errno;
    std::string holder;
    if (error == EWOULDBLOCK) {
      char buffer[32] = {};
      ssize_t n = ::pread(fd_, buffer, sizeof(buffer) - 1, 0);
      holder = n > 0 ? std::string(buffer, static_cast<std::size_t>(n)) : std::string();
      while (!holder.empty() && (holder.back() == '\n' || holder.back() == ' ')) holder.pop_back();
    }
    ::close(fd_);
    fd_ = -1;
    if (error != EWOULDBLOCK) {
      throw std::runtime_error(
          fmt::format("cannot lock {}: {}", path.string(), std::strerror(error)));
    }
    throw SpecError("", fmt::format("{} is in use by another tune (pid {}); wait for it to end, or "
                                    "stop it, before running or resuming this experiment",
                                    dir.string(), holder.empty() ? "unknown" : holder));
  }
  std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd_, 0) != 0 || ::pwrite(fd_, pid.data(), pid.size(), 0) < 0) {
    // The lock holds without the pid; only the message of a second tuner is poorer.
  }
}

ExperimentLock::~ExperimentLock() {
  if (fd_ >= 0) ::close(fd_);
}

}  // namespace tune
