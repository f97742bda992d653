// One tuner per experiment: `tune run` and `tune resume` hold an exclusive flock(2) on
// <experiment_dir>/.lock for as long as they run, with the holder's pid written in the file. A
// second tuner on the same directory fails at once with a message naming that pid, instead of
// killing the first one's trials and interleaving its events. The lock goes with the process (the
// kernel drops it on exit, kill -9 included), so a crashed tuner never leaves a stale lock; the
// descriptor is close-on-exec, so trials never hold it. `tune show` and other readers take no
// lock.
//
// Example:
//   tune::ExperimentLock lock(dir);   // throws SpecError if another tuner holds it
//   ... run the experiment ...      // released when `lock` is destroyed or the process exits
#pragma once

#include <filesystem>

namespace tune {

class ExperimentLock {
 public:
  // Takes the lock on `dir`/.lock (the directory must exist). Throws SpecError naming the
  // holder's pid when another process holds it, std::runtime_error when the file cannot be
  // opened (a symlink planted as .lock is refused, not followed).
  explicit ExperimentLock(const std::filesystem::path& dir);
  ~ExperimentLock();
  ExperimentLock(const ExperimentLock&) = delete;
  ExperimentLock& operator=(const ExperimentLock&) = delete;

 private:
  int fd_ = -1;
};

}  // namespace tune
