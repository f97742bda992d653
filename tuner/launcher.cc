#include "tuner/launcher.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include <fmt/format.h>

extern char** environ;

namespace tune {

std::string ExitStatus::Describe() const {
  if (signal != 0) {
    const char* name = sigabbrev_np(signal);
    return fmt::format("killed by signal {} (SIG{})", signal, name ? name : "?");
  }
  return fmt::format("exit code {}", code);
}

LocalLauncher::LocalLauncher(boost::asio::io_context& io) : sigchld_(io, SIGCHLD) {
  WaitForSignal();
}

LocalLauncher::~LocalLauncher() {
  boost::system::error_code ignored;
  sigchld_.cancel(ignored);
}

void LocalLauncher::WaitForSignal() {
  sigchld_.async_wait([this](const boost::system::error_code& error, int) {
    if (error) return;
    Reap();
    WaitForSignal();
  });
}

void LocalLauncher::Reap() {
  // SIGCHLD coalesces: one signal may stand for several exits, so poll every child we own.
  for (std::size_t i = 0; i < running_.size();) {
    int status = 0;
    pid_t pid = static_cast<pid_t>(running_[i]);
    pid_t reaped = waitpid(pid, &status, WNOHANG);
    if (reaped == 0 || (reaped < 0 && errno == EINTR)) {
      ++i;
      continue;
    }
    running_.erase(running_.begin() + static_cast<std::ptrdiff_t>(i));
    // The leader is gone; anything it left in its group (workers, ranks) goes with it. The group
    // id cannot have been reused while members remain, so this reaches only the trial's own.
    ::kill(-pid, SIGKILL);
    ExitStatus exit;
    if (reaped > 0 && WIFSIGNALED(status)) {
      exit.signal = WTERMSIG(status);
    } else if (reaped > 0) {
      exit.code = WEXITSTATUS(status);
    } else {
      exit.code = -1;  // already reaped elsewhere; report a failure rather than hang
    }
    if (on_exit_) on_exit_(pid, exit);
  }
}

std::int64_t LocalLauncher::Launch(const LaunchRequest& request) {
  if (request.argv.empty()) throw std::runtime_error("cannot launch an empty command");

  // Environment: ours, with the request's variables replacing same-named ones.
  std::vector<std::string> env_strings;
  for (char** entry = environ; *entry != nullptr; ++entry) {
    std::string_view text(*entry);
    std::string name(text.substr(0, text.find('=')));
    if (request.env.count(name) == 0) env_strings.emplace_back(text);
  }
  for (const auto& [name, value] : request.env) env_strings.push_back(name + "=" + value);
  std::vector<char*> envp;
  for (std::string& text : env_strings) envp.push_back(text.data());
  envp.push_back(nullptr);
  std::vector<std::string> argv_strings = request.argv;
  std::vector<char*> argv;
  for (std::string& arg : argv_strings) argv.push_back(arg.data());
  argv.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  if (!request.stdout_path.empty()) {
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, request.stdout_path.c_str(),
                                     O_WRONLY | O_CREAT | O_APPEND, 0644);
  }
  if (!request.stderr_path.empty()) {
    posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, request.stderr_path.c_str(),
                                     O_WRONLY | O_CREAT | O_APPEND, 0644);
  }
  if (!request.cwd.empty()) posix_spawn_file_actions_addchdir_np(&actions, request.cwd.c_str());

  posix_spawnattr_t attributes;
  posix_spawnattr_init(&attributes);
  // A group of its own, so one kill(-pgid) reaches the trial and whatever it forked
  // (DataLoader workers, DDP ranks). Signals the tuner ignores or blocks are reset.
  sigset_t defaults, empty;
  sigemptyset(&empty);
  sigfillset(&defaults);
  posix_spawnattr_setsigdefault(&attributes, &defaults);
  posix_spawnattr_setsigmask(&attributes, &empty);
  posix_spawnattr_setpgroup(&attributes, 0);
  posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF |
                                            POSIX_SPAWN_SETSIGMASK);

  pid_t pid = 0;
  int error = posix_spawnp(&pid, argv[0], &actions, &attributes, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attributes);
  if (error != 0) {
    throw std::runtime_error(
        fmt::format("cannot start \"{}\": {}", request.argv[0], std::strerror(error)));
  }
  running_.push_back(pid);
  return pid;
}

void LocalLauncher::Signal(std::int64_t pid, int signal) {
  if (std::find(running_.begin(), running_.end(), pid) == running_.end()) return;
  // The group first (it exists while its leader runs), then the leader itself in case it moved.
  ::kill(-static_cast<pid_t>(pid), signal);
  ::kill(static_cast<pid_t>(pid), signal);
}

}  // namespace tune
