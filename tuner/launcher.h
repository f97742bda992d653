// Launchers start trial processes and tell the tuner when they exit. The tuner only sees this
// interface, so its loop can be driven by real processes or by a fake in tests; a Slurm launcher
// would be another implementation.
//
// Example:
//   tune::LocalLauncher launcher(io);
//   launcher.SetExitCallback([](std::int64_t pid, tune::ExitStatus status) { ... });
//   std::int64_t pid = launcher.Launch({.argv = {"python3", "train.py"}, .env = {...}, ...});
//   launcher.Signal(pid, SIGTERM);    // the whole process group of the trial
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

namespace tune {

struct LaunchRequest {
  std::vector<std::string> argv;              // argv[0] is a path or a name looked up in PATH
  std::map<std::string, std::string> env;     // set on top of the tuner's own environment
  std::filesystem::path cwd;                  // working directory ("" = the tuner's)
  std::filesystem::path stdout_path;          // appended to; "" = inherit
  std::filesystem::path stderr_path;
};

struct ExitStatus {
  int code = 0;    // exit code when the process exited
  int signal = 0;  // the signal that killed it, or 0
  bool ok() const { return code == 0 && signal == 0; }
  // "exit code 3", "killed by signal 9 (SIGKILL)"
  std::string Describe() const;
};

class Launcher {
 public:
  using ExitCallback = std::function<void(std::int64_t pid, ExitStatus status)>;
  virtual ~Launcher() = default;
  // Starts a process in a process group of its own. Throws std::runtime_error naming the program
  // when it cannot be started (not found, not executable).
  virtual std::int64_t Launch(const LaunchRequest& request) = 0;
  // Sends `signal` to the process group of `pid` (the trial and everything it started).
  virtual void Signal(std::int64_t pid, int signal) = 0;
  // Called on the io_context's thread once per launched process, when it has exited.
  virtual void SetExitCallback(ExitCallback callback) = 0;
};

// Runs trials as local child processes (posix_spawn) and reaps them on SIGCHLD through the
// io_context. One per process: it owns SIGCHLD handling.
class LocalLauncher : public Launcher {
 public:
  explicit LocalLauncher(boost::asio::io_context& io);
  ~LocalLauncher() override;
  std::int64_t Launch(const LaunchRequest& request) override;
  void Signal(std::int64_t pid, int signal) override;
  void SetExitCallback(ExitCallback callback) override { on_exit_ = std::move(callback); }
  std::size_t num_running() const { return running_.size(); }

 private:
  void WaitForSignal();
  void Reap();

  boost::asio::signal_set sigchld_;
  ExitCallback on_exit_;
  std::vector<std::int64_t> running_;
};

}  // namespace tune
