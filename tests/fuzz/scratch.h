// A scratch directory per fuzzing process, for targets whose code under test reads or writes
// files (spec: space.json; journal_tuner: a whole experiment directory). Nothing is left behind:
//  - the directory is removed at exit (atexit: libFuzzer's -runs and -max_total_time end with
//    exit(), and so does the corpus runner);
//  - a crash, a timeout, an out-of-memory stop or a kill ends the process without atexit
//    handlers (libFuzzer calls _Exit), so each process first removes the scratch directories of
//    processes that are gone: the name ends in the owner's pid.
// The directory is on tmpfs (/dev/shm, a write per execution) unless TMPDIR is set; then it is
// under TMPDIR (tests/fuzz/corpus_main.cc --no-leftovers uses that to check the above).
#pragma once

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

namespace tune::fuzz {

inline constexpr const char* kScratchPrefix = "tune_fuzz_";

// Where scratch directories go: TMPDIR when set, else /dev/shm when there is one, else /tmp.
inline std::filesystem::path ScratchBase() {
  if (const char* tmpdir = std::getenv("TMPDIR"); tmpdir && *tmpdir) return tmpdir;
  std::error_code ignored;
  if (std::filesystem::is_directory("/dev/shm", ignored)) return "/dev/shm";
  return "/tmp";
}

// The pid a scratch name `tune_fuzz_<name>_<pid>` ends in, or 0.
inline pid_t ScratchOwner(const std::string& name) {
  if (name.rfind(kScratchPrefix, 0) != 0) return 0;
  const std::size_t underscore = name.rfind('_');
  const std::string digits = name.substr(underscore + 1);
  if (digits.empty() || digits.size() > 9 || digits.find_first_not_of("0123456789") != std::string::npos) {
    return 0;
  }
  return static_cast<pid_t>(std::stol(digits));
}

// Removes, in `base`, the scratch entries of processes that no longer run (and any with this
// process's pid: a process that had it before is gone, and this one has made none yet).
inline void RemoveStaleScratch(const std::filesystem::path& base) {
  std::error_code error;
  std::vector<std::filesystem::path> stale;
  for (std::filesystem::directory_iterator it(base, error), end; !error && it != end;
       it.increment(error)) {
    const pid_t owner = ScratchOwner(it->path().filename().string());
    if (owner <= 0) continue;
    if (owner != ::getpid() && (::kill(owner, 0) == 0 || errno != ESRCH)) continue;  // running
    stale.push_back(it->path());
  }
  for (const std::filesystem::path& path : stale) std::filesystem::remove_all(path, error);
}

inline std::vector<std::filesystem::path>& ScratchDirsToRemove() {
  static auto* dirs = new std::vector<std::filesystem::path>();  // outlives the atexit handler
  return *dirs;
}

// Makes an empty directory `<base>/tune_fuzz_<name>_<pid>` (removed at exit), after removing
// stale ones in every base this or an earlier version of the fuzzers used. Call once per process
// (keep the result in a function-local static).
inline std::filesystem::path MakeScratchDir(const std::string& name) {
  std::error_code ignored;
  for (const std::filesystem::path& base :
       {ScratchBase(), std::filesystem::path("/dev/shm"), std::filesystem::path("/tmp"),
        std::filesystem::temp_directory_path(ignored)}) {
    if (!base.empty()) RemoveStaleScratch(base);
  }
  const std::filesystem::path dir =
      ScratchBase() / (kScratchPrefix + name + "_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  if (ScratchDirsToRemove().empty()) {
    std::atexit([] {
      std::error_code error;
      for (const std::filesystem::path& path : ScratchDirsToRemove()) {
        std::filesystem::remove_all(path, error);
      }
    });
  }
  ScratchDirsToRemove().push_back(dir);
  return dir;
}

}  // namespace tune::fuzz
