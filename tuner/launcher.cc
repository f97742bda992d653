#include "tuner/launcher.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <set>
#include <sstream>
#include <stdexcept>

#include <fmt/format.h>

#include "core/spawn.h"
#include "tuner/client/protocol.h"

extern char** environ;

namespace tune {

namespace {

ExitStatus FromWaitStatus(pid_t reaped, int status) {
  ExitStatus exit;
  if (reaped > 0 && WIFSIGNALED(status)) {
    exit.signal = WTERMSIG(status);
  } else if (reaped > 0) {
    exit.code = WEXITSTATUS(status);
  } else {
    exit.code = -1;  // already reaped elsewhere; report a failure rather than hang
  }
  return exit;
}

// A trial's environment: ours, with the request's variables replacing same-named ones.
std::vector<std::string> TrialEnvironment(const LaunchRequest& request) {
  std::vector<std::string> env_strings;
  for (char** entry = environ; *entry != nullptr; ++entry) {
    std::string_view text(*entry);
    std::string name(text.substr(0, text.find('=')));
    if (request.env.count(name) == 0) env_strings.emplace_back(text);
  }
  for (const auto& [name, value] : request.env) env_strings.push_back(name + "=" + value);
  return env_strings;
}

// Where trials can start inside their cgroup (SpawnIntoCgroup: tuner/cgroup.h; close_range,
// Linux 5.9, for the child's descriptors): false once it failed, then trials are spawned and
// moved into their cgroup after.
bool clone_into_cgroup_works = true;

// The paths posix_spawnp would try for `program`, in order: itself when it holds a '/', else
// each directory of our PATH (the default search path when it is unset; "" is the directory the
// trial starts in) joined with it.
std::vector<std::string> ProgramCandidates(const std::string& program) {
  if (program.find('/') != std::string::npos) return {program};
  std::string path;
  if (const char* value = std::getenv("PATH")) {
    path = value;
  } else {
    path.resize(::confstr(_CS_PATH, nullptr, 0));
    ::confstr(_CS_PATH, path.data(), path.size());
    path.resize(std::strlen(path.c_str()));
  }
  std::vector<std::string> candidates;
  for (std::size_t start = 0;;) {
    const std::size_t colon = path.find(':', start);
    const std::string dir = path.substr(start, colon == std::string::npos ? colon : colon - start);
    candidates.push_back((dir.empty() ? std::string(".") : dir) + "/" + program);
    if (colon == std::string::npos) break;
    start = colon + 1;
  }
  return candidates;
}

// What the child of CloneIntoCgroup needs (it shares the tuner's memory until its exec).
struct TrialChild {
  const LaunchRequest* request;
  pid_t pgid;
  char* const* argv;
  char* const* envp;
  const std::vector<std::string>* candidates;
  int report;  // the pipe's write end: the child's errno when it fails before its exec
};

// posix_spawnp's work, done by hand in the child: the same process group, signal dispositions
// and mask, stdin/stdout/stderr, directory, closed descriptors and program search. Only system
// calls (it runs in the tuner's memory, the tuner waiting).
int RunTrialChild(void* data) {
  const TrialChild& child = *static_cast<const TrialChild*>(data);
  const LaunchRequest& request = *child.request;
  auto fail = [&](int error) {
    (void)!::write(child.report, &error, sizeof error);
    ::_exit(127);
  };
  struct sigaction fallback {};
  fallback.sa_handler = SIG_DFL;
  for (int signal = 1; signal < NSIG; ++signal) ::sigaction(signal, &fallback, nullptr);
  sigset_t empty;
  sigemptyset(&empty);
  ::sigprocmask(SIG_SETMASK, &empty, nullptr);
  if (::setpgid(0, child.pgid) != 0) fail(errno);
  auto open_as = [&](int target, const char* path, int flags) {
    const int fd = ::open(path, flags, 0644);
    if (fd < 0) fail(errno);
    if (fd != target) {
      if (::dup2(fd, target) < 0) fail(errno);
      ::close(fd);
    }
  };
  open_as(STDIN_FILENO, "/dev/null", O_RDONLY);
  const int append = O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW;
  if (!request.stdout_path.empty()) open_as(STDOUT_FILENO, request.stdout_path.c_str(), append);
  if (!request.stderr_path.empty()) open_as(STDERR_FILENO, request.stderr_path.c_str(), append);
  if (!request.cwd.empty() && ::chdir(request.cwd.c_str()) != 0) fail(errno);
  // Only stdin, stdout and stderr reach the trial (the report pipe closes at the exec).
  const unsigned keep = static_cast<unsigned>(child.report);
  if ((keep > 3 && ::syscall(SYS_close_range, 3u, keep - 1, 0u) != 0) ||
      ::syscall(SYS_close_range, keep + 1, ~0u, 0u) != 0) {
    fail(errno);
  }
  int error = ENOENT;
  bool denied = false;
  for (const std::string& candidate : *child.candidates) {
    ::execve(candidate.c_str(), child.argv, child.envp);
    error = errno;
    denied = denied || error == EACCES;
    if (error != ENOENT && error != ENOTDIR && error != EACCES && error != ESTALE &&
        error != ENODEV && error != ETIMEDOUT) {
      break;
    }
  }
  fail(denied ? EACCES : error);
  return 127;
}

// Starts the trial's program in the cgroup `cgroup_fd` (SpawnIntoCgroup, tuner/cgroup.h) with
// RunTrialChild. Returns the pid; -1 when it cannot be started in the cgroup (the caller spawns
// instead); throws like Spawn when the program could not start.
pid_t CloneIntoCgroup(const LaunchRequest& request, pid_t pgid, int cgroup_fd, char* const* argv,
                      char* const* envp) {
  // The child closes its descriptors with close_range (Linux 5.9): without it, spawn instead.
  static const bool has_close_range =
      ::syscall(SYS_close_range, ~0u, ~0u, 0u) == 0 || errno != ENOSYS;
  if (!has_close_range) {
    clone_into_cgroup_works = false;
    return -1;
  }
  const std::vector<std::string> candidates = ProgramCandidates(request.argv[0]);
  int report[2];  // the child's errno when it fails before its exec; closed by a successful one
  if (::pipe2(report, O_CLOEXEC) != 0) return -1;
  TrialChild child{&request, pgid, argv, envp, &candidates, report[1]};
  const pid_t pid = SpawnIntoCgroup(cgroup_fd, RunTrialChild, &child);
  ::close(report[1]);
  if (pid < 0) {
    const int error = errno;
    ::close(report[0]);
    if (error == ENOSYS || error == EINVAL || error == E2BIG || error == EPERM) {
      clone_into_cgroup_works = false;  // this kernel (or its seccomp filter) cannot
    }
    return -1;
  }
  int error = 0;
  ssize_t n = 0;
  while ((n = ::read(report[0], &error, sizeof error)) < 0 && errno == EINTR) {
  }
  ::close(report[0]);
  if (n > 0) {
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    throw std::runtime_error(
        fmt::format("cannot start \"{}\": {}", request.argv[0], std::strerror(error)));
  }
  return pid;
}

// Starts one process into process group `pgid` (0: a new group led by the process itself). With
// `cgroup_fd` (>= 0), where the kernel can, the process starts in that cgroup and `*in_cgroup` is
// set; else it is spawned outside it.
pid_t Spawn(const LaunchRequest& request, pid_t pgid, int cgroup_fd = -1,
            bool* in_cgroup = nullptr) {
  if (request.argv.empty()) throw std::runtime_error("cannot launch an empty command");

  std::vector<std::string> env_strings = TrialEnvironment(request);
  std::vector<char*> envp;
  for (std::string& text : env_strings) envp.push_back(text.data());
  envp.push_back(nullptr);
  std::vector<std::string> argv_strings = request.argv;
  std::vector<char*> argv;
  for (std::string& arg : argv_strings) argv.push_back(arg.data());
  argv.push_back(nullptr);
  if (cgroup_fd >= 0 && clone_into_cgroup_works) {
    const pid_t pid = CloneIntoCgroup(request, pgid, cgroup_fd, argv.data(), envp.data());
    if (pid > 0) {
      if (in_cgroup) *in_cgroup = true;
      return pid;
    }
  }

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  if (!request.stdout_path.empty()) {
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, request.stdout_path.c_str(),
                                     O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW, 0644);
  }
  if (!request.stderr_path.empty()) {
    posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, request.stderr_path.c_str(),
                                     O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW, 0644);
  }
  if (!request.cwd.empty()) posix_spawn_file_actions_addchdir_np(&actions, request.cwd.c_str());
  // A trial gets stdin, stdout and stderr only, even if a descriptor of the tuner (a library's,
  // or a stream that cannot be opened O_CLOEXEC) lacks close-on-exec: another trial's connection
  // or result files must never be reachable from this one.
  posix_spawn_file_actions_addclosefrom_np(&actions, STDERR_FILENO + 1);

  posix_spawnattr_t attributes;
  // One group per trial, so one kill(-pgid) reaches every rank and whatever they forked
  // (DataLoader workers, helpers).
  InitSpawnAttributes(&attributes, pgid);

  pid_t pid = 0;
  int error = posix_spawnp(&pid, argv[0], &actions, &attributes, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attributes);
  if (error != 0) {
    throw std::runtime_error(
        fmt::format("cannot start \"{}\": {}", request.argv[0], std::strerror(error)));
  }
  return pid;
}

}  // namespace

bool CutLogMiddle(const std::filesystem::path& path, std::uint64_t max_bytes) {
  if (max_bytes == 0) return false;
  max_bytes = std::max<std::uint64_t>(max_bytes, 64 * 1024);
  int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return false;
  struct stat info {};
  if (::fstat(fd, &info) != 0 || static_cast<std::uint64_t>(info.st_size) <= max_bytes) {
    ::close(fd);
    return false;
  }
  const std::uint64_t size = static_cast<std::uint64_t>(info.st_size);
  const std::uint64_t head = max_bytes / 2, keep = max_bytes / 4;
  const std::string marker =
      fmt::format("\n[... tune cut {} bytes here: this log passed max_log_bytes ({}) ...]\n",
                  size - head - keep, max_bytes);
  // The tail moves down over the cut part, in chunks (the destination stays behind the source).
  bool ok = ::pwrite(fd, marker.data(), marker.size(), static_cast<off_t>(head)) ==
            static_cast<ssize_t>(marker.size());
  std::vector<char> buffer(1 << 20);
  for (std::uint64_t done = 0; ok && done < keep;) {
    std::size_t chunk = static_cast<std::size_t>(std::min<std::uint64_t>(buffer.size(), keep - done));
    ssize_t n = ::pread(fd, buffer.data(), chunk, static_cast<off_t>(size - keep + done));
    ok = n > 0 && ::pwrite(fd, buffer.data(), static_cast<std::size_t>(n),
                           static_cast<off_t>(head + marker.size() + done)) == n;
    done += ok ? static_cast<std::uint64_t>(n) : 0;
  }
  if (ok) ok = ::ftruncate(fd, static_cast<off_t>(head + marker.size() + keep)) == 0;
  ::close(fd);
  return ok;
}

std::string ExitStatus::Describe() const {
  if (!detail.empty()) return detail;
  std::string prefix = num_ranks > 1 ? fmt::format("rank {}: ", rank) : "";
  if (signal != 0) {
    const char* name = sigabbrev_np(signal);
    return fmt::format("{}killed by signal {} (SIG{})", prefix, signal, name ? name : "?");
  }
  return fmt::format("{}exit code {}", prefix, code);
}

LocalLauncher::LocalLauncher(boost::asio::io_context& io, double straggler_grace_s,
                             bool use_cgroups, bool start_inside_cgroups)
    : io_(io),
      straggler_grace_s_(straggler_grace_s),
      start_inside_cgroups_(start_inside_cgroups),
      sigchld_(io, SIGCHLD) {
  // Whatever a trial starts and detaches (setsid, a double fork) becomes our child when its
  // parent exits, instead of init's, so KillOrphans can end it with its trial and Reap reap it.
  ::prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
  std::string why_not = "turned off";
  if (use_cgroups) cgroups_ = TrialCgroups::Create(&why_not);
  if (cgroups_) {
    std::fprintf(stderr, "[tune] each trial runs in a cgroup of its own under %s\n",
                 cgroups_->root().c_str());
  } else {
    std::fprintf(stderr, "[tune] no per-trial cgroups (%s): a child subreaper ends what trials "
                 "leave running\n", why_not.c_str());
  }
  WaitForSignal();
}

LocalLauncher::~LocalLauncher() {
  alive_.reset();
  for (auto& [program, zygote] : zygotes_) StopZygote(zygote);
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
  // SIGCHLD coalesces: one signal may stand for several exits. Every member first (one that is no
  // longer our child, reaped elsewhere, ends as a failure rather than hanging its group)...
  for (auto& [group_id, group] : groups_) {
    for (std::size_t rank = 0; rank < group.pids.size(); ++rank) {
      if (group.pids[rank] == 0) continue;
      int status = 0;
      pid_t reaped = waitpid(static_cast<pid_t>(group.pids[rank]), &status, WNOHANG);
      if (reaped == 0 || (reaped < 0 && errno == EINTR)) continue;
      OnMemberExit(group_id, group, static_cast<int>(rank), FromWaitStatus(reaped, status));
    }
  }
  // ...then every other child that has exited: a zygote, or what a trial left running (our child
  // as the subreaper), whether it ended on its own or was killed with its trial.
  std::vector<std::string> dead_zygotes;
  for (;;) {
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid < 0 && errno == EINTR) continue;
    if (pid <= 0) break;  // none has exited, or no child is left
    if (ReapedMember(pid, status)) continue;  // a member that exited since the loop above
    for (auto& [program, zygote] : zygotes_) {
      if (zygote.pid != pid) continue;
      zygote.pid = 0;  // reaped: its pid may be reused by a trial now
      if (zygote.fd >= 0) dead_zygotes.push_back(program);
    }
  }
  std::vector<std::pair<std::int64_t, ExitStatus>> finished;
  bool may_have_left_orphans = false;  // a group not contained in its cgroup ended
  for (auto& [group_id, group] : groups_) {
    if (group.running > 0) continue;
    // The last member is gone; anything the ranks left in the group goes with them. The group id
    // cannot have been reused while members remain, so this reaches only the trial's own.
    ::kill(-static_cast<pid_t>(group_id), SIGKILL);
    if (cgroups_) cgroups_->Kill(group_id);
    if (group.straggler_timer) group.straggler_timer->cancel();
    may_have_left_orphans = may_have_left_orphans || !group.contained;
    ExitStatus status;
    status.num_ranks = static_cast<int>(group.pids.size());
    finished.emplace_back(group_id, group.failure.value_or(status));
  }
  // Callbacks last: they may launch new groups.
  for (const auto& [group_id, status] : finished) groups_.erase(group_id);
  if (may_have_left_orphans) KillOrphans();
  if (cgroups_) cgroups_->RemoveEmpty();
  for (const std::string& program : dead_zygotes) OnZygoteDied(program);
  for (const auto& [group_id, status] : finished) {
    if (on_exit_) on_exit_(group_id, status);
  }
}

bool LocalLauncher::ReapedMember(pid_t pid, int status) {
  for (auto& [group_id, group] : groups_) {
    for (std::size_t rank = 0; rank < group.pids.size(); ++rank) {
      if (group.pids[rank] != pid) continue;
      OnMemberExit(group_id, group, static_cast<int>(rank), FromWaitStatus(pid, status));
      return true;
    }
  }
  return false;
}

void LocalLauncher::OnMemberExit(std::int64_t group_id, Group& group, int rank, ExitStatus status) {
  group.pids[static_cast<std::size_t>(rank)] = 0;
  --group.running;
  status.rank = rank;
  status.num_ranks = static_cast<int>(group.pids.size());
  // Members this launcher kills below are reaped later and do not replace the recorded cause.
  if (!status.ok() && !group.failure) group.failure = status;
  if (group.running == 0) return;
  if (!status.ok()) {
    // A rank that failed leaves the others waiting in a collective: end them now.
    ::kill(-static_cast<pid_t>(group_id), SIGKILL);
    return;
  }
  if (rank == 0 && !group.straggler_timer) {
    group.straggler_timer = std::make_unique<boost::asio::steady_timer>(io_);
    group.straggler_timer->expires_after(
        std::chrono::duration_cast<std::chrono::steady_clock::duration>(
            std::chrono::duration<double>(std::min(straggler_grace_s_, 1e6))));  // no overflow
    group.straggler_timer->async_wait([this, group_id](const boost::system::error_code& error) {
      if (error || groups_.count(group_id) == 0) return;
      ::kill(-static_cast<pid_t>(group_id), SIGKILL);
    });
  }
}

// The whole of a small /proc file, or "" when it cannot be read: the process may exit while we
// read (a stream would throw "No such process" from underflow then).
std::string ReadProcFile(const std::string& path) {
  std::string text;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return text;
  char buffer[4096];
  for (;;) {
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    text.append(buffer, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return text;
}

namespace {

// The process `pid` as its /proc/<pid>/stat shows it; nullopt when it is gone.
std::optional<ProcessInfo> ReadProcessInfo(std::int64_t pid) {
  const std::string stat = ReadProcFile(fmt::format("/proc/{}/stat", pid));
  // "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses, so parse after the
  // last ')'.
  std::size_t paren = stat.rfind(')');
  if (paren == std::string::npos) return std::nullopt;
  std::istringstream fields(stat.substr(paren + 1));
  ProcessInfo process;
  process.pid = pid;
  long long ppid = 0, pgrp = 0;
  if (!(fields >> process.state >> ppid >> pgrp)) return std::nullopt;
  process.ppid = ppid;
  process.pgrp = pgrp;
  return process;
}

}  // namespace

std::vector<ProcessInfo> ListProcesses() {
  std::vector<ProcessInfo> processes;
  std::error_code error;
  std::filesystem::directory_iterator it("/proc", error), end;
  for (; !error && it != end; it.increment(error)) {
    const std::string name = it->path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    if (std::optional<ProcessInfo> process = ReadProcessInfo(std::stoll(name))) {
      processes.push_back(std::move(*process));
    }
  }
  return processes;
}

std::vector<ProcessInfo> ListProcesses(const std::vector<pid_t>& pids) {
  std::vector<ProcessInfo> processes;
  for (pid_t pid : pids) {
    if (std::optional<ProcessInfo> process = ReadProcessInfo(pid)) {
      processes.push_back(std::move(*process));
    }
  }
  return processes;
}

std::string TrialIdOf(std::int64_t pid) {
  std::istringstream environ_text(ReadProcFile(fmt::format("/proc/{}/environ", pid)));
  std::string trial_id;
  for (std::string variable; std::getline(environ_text, variable, '\0');) {
    if (variable.rfind("TUNE_TRIAL_ID=", 0) == 0) trial_id = variable.substr(14);
  }
  return trial_id;
}

void LocalLauncher::KillOrphans() {
  // Our children that are not members of a group: descendants of trials, reparented to us (the
  // subreaper) when their parent exited. One that belongs to a running trial (its environment
  // names it) is left alone; the others outlived their trial and are killed, then reaped by Reap
  // on their SIGCHLD. Without cgroups such a process may be anywhere; with them, one that is not
  // in its trial's cgroup (which cgroup.kill has emptied) was forked before its trial was moved
  // in, so it is in this process's own cgroup, where the trial started.
  std::set<std::int64_t> members;
  std::set<std::string> running_trials;
  for (const auto& [group_id, group] : groups_) {
    members.insert(group.pids.begin(), group.pids.end());
    running_trials.insert(group.trial_id);
  }
  std::set<std::int64_t> zygote_pids;  // the warm trainers: ours, not a trial's
  for (const auto& [program, zygote] : zygotes_) {
    if (zygote.pid > 0) zygote_pids.insert(zygote.pid);
  }
  const std::int64_t self = ::getpid();
  const std::vector<ProcessInfo> processes =
      cgroups_ ? ListProcesses(cgroups_->HomePids()) : ListProcesses();
  for (const ProcessInfo& process : processes) {
    if (process.ppid != self || process.state == "Z" || members.count(process.pid) > 0 ||
        zygote_pids.count(process.pid) > 0) {
      continue;
    }
    const std::string trial_id = TrialIdOf(process.pid);
    if (!trial_id.empty() && running_trials.count(trial_id) > 0) continue;
    ::kill(static_cast<pid_t>(process.pid), SIGKILL);
  }
}

std::int64_t LocalLauncher::Launch(const std::vector<LaunchRequest>& ranks) {
  if (ranks.empty()) throw std::runtime_error("cannot launch an empty group");
  // Members start in the group's cgroup where the kernel can (tuner/cgroup.h): a spawned one by
  // this process's clone3, a zygote's trial by the zygote's (trainer/zygote.h); else they are
  // moved in once started.
  const int cgroup_fd =
      cgroups_ && start_inside_cgroups_ && clone_into_cgroup_works ? cgroups_->Prepare() : -1;
  std::vector<std::int64_t> pids;
  std::vector<bool> in_cgroup(ranks.size(), false);
  try {
    if (ranks.size() == 1) {
      bool started_inside = false;
      if (std::optional<std::int64_t> pid = LaunchWarm(ranks.front(), cgroup_fd, &started_inside)) {
        pids.push_back(*pid);
        in_cgroup[0] = started_inside;
      }
    }
    for (std::size_t rank = pids.size(); rank < ranks.size(); ++rank) {
      bool started_inside = false;
      pids.push_back(Spawn(ranks[rank], pids.empty() ? 0 : static_cast<pid_t>(pids.front()),
                           cgroup_fd, &started_inside));
      in_cgroup[rank] = started_inside;
    }
  } catch (...) {
    // All or nothing: the ranks already started would wait for the missing one forever. Rank 0
    // is not reaped before the others are spawned, so the group id stays valid until here.
    if (!pids.empty()) ::kill(-static_cast<pid_t>(pids.front()), SIGKILL);
    for (std::int64_t pid : pids) {
      int status = 0;
      while (waitpid(static_cast<pid_t>(pid), &status, 0) < 0 && errno == EINTR) {
      }
    }
    if (cgroup_fd >= 0) cgroups_->Discard(cgroup_fd);  // and what they forked in it
    throw;
  }
  if (cgroups_) {
    if (cgroup_fd >= 0) cgroups_->Adopt(cgroup_fd, pids.front());
    for (std::size_t rank = 0; rank < pids.size(); ++rank) {
      if (!in_cgroup[rank]) cgroups_->Add(pids.front(), static_cast<pid_t>(pids[rank]));
    }
  }
  Group& group = groups_[pids.front()];
  group.pids = pids;
  group.contained =
      cgroups_ && std::all_of(in_cgroup.begin(), in_cgroup.end(), [](bool in) { return in; });
  if (auto it = ranks.front().env.find("TUNE_TRIAL_ID"); it != ranks.front().env.end()) {
    group.trial_id = it->second;
  }
  group.running = pids.size();
  return pids.front();
}

void LocalLauncher::Signal(std::int64_t group_id, int signal) {
  auto it = groups_.find(group_id);
  if (it == groups_.end()) return;
  // The group first (it exists while any member runs), then each member in case one moved.
  ::kill(-static_cast<pid_t>(group_id), signal);
  for (std::int64_t pid : it->second.pids) {
    if (pid != 0) ::kill(static_cast<pid_t>(pid), signal);
  }
  if (cgroups_) cgroups_->Signal(group_id, signal);  // what left the process group too
}

// ---- Warm starts (launcher.h; the zygote's side and its protocol: trainer/zygote.h) ----

namespace {

namespace fs = std::filesystem;

// TUNE_WARM_START from the request's environment, else the tuner's: "0", "1" or "" (unset).
std::string WarmStartSetting(const LaunchRequest& request) {
  if (auto it = request.env.find("TUNE_WARM_START"); it != request.env.end()) return it->second;
  const char* value = std::getenv("TUNE_WARM_START");
  return value != nullptr ? value : "";
}

// The program posix_spawnp would run for `request` ("" when none is found): a path with a '/'
// (relative to the trial's directory, where the spawned trial would exec it), else a PATH search.
std::string ResolveProgram(const LaunchRequest& request) {
  const std::string& name = request.argv.front();
  std::error_code error;
  if (name.find('/') != std::string::npos) {
    fs::path path = name;
    if (path.is_relative() && !request.cwd.empty()) path = request.cwd / path;
    path = fs::absolute(path, error);
    return !error && ::access(path.c_str(), X_OK) == 0 ? path.lexically_normal().string() : "";
  }
  const char* path_env = std::getenv("PATH");
  if (auto it = request.env.find("PATH"); it != request.env.end()) path_env = it->second.c_str();
  std::istringstream dirs(path_env != nullptr ? path_env : "/usr/bin:/bin");
  for (std::string dir; std::getline(dirs, dir, ':');) {
    fs::path candidate = fs::absolute(fs::path(dir.empty() ? "." : dir) / name, error);
    if (!error && ::access(candidate.c_str(), X_OK) == 0) return candidate.lexically_normal().string();
  }
  return "";
}

// Sends one request to the zygote, with `cgroup_fd` (when >= 0) passed along (SCM_RIGHTS). False
// when it could not be sent whole (errno says why).
bool SendToZygote(int fd, const std::string& text, int cgroup_fd) {
  iovec data{const_cast<char*>(text.data()), text.size()};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msghdr message{};
  message.msg_iov = &data;
  message.msg_iovlen = 1;
  if (cgroup_fd >= 0) {
    message.msg_control = control;
    message.msg_controllen = sizeof control;
    cmsghdr* header = CMSG_FIRSTHDR(&message);
    header->cmsg_level = SOL_SOCKET;
    header->cmsg_type = SCM_RIGHTS;
    header->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(header), &cgroup_fd, sizeof(int));
  }
  ssize_t sent = 0;
  while ((sent = ::sendmsg(fd, &message, MSG_NOSIGNAL)) < 0 && errno == EINTR) {
  }
  return sent == static_cast<ssize_t>(text.size());
}

// One message from the zygote within `timeout_ms`; nullopt when it closed, timed out or sent
// something that is not JSON.
std::optional<Json> ReceiveFromZygote(int fd, int timeout_ms) {
  pollfd ready{fd, POLLIN, 0};
  int polled = 0;
  while ((polled = ::poll(&ready, 1, timeout_ms)) < 0 && errno == EINTR) {
  }
  if (polled <= 0) return std::nullopt;
  std::vector<char> buffer(1 << 16);
  ssize_t n = 0;
  while ((n = ::recv(fd, buffer.data(), buffer.size(), 0)) < 0 && errno == EINTR) {
  }
  if (n <= 0) return std::nullopt;
  Json message = Json::parse(buffer.data(), buffer.data() + n, nullptr, /*allow_exceptions=*/false);
  if (message.is_discarded() || !message.is_object()) return std::nullopt;
  return message;
}

}  // namespace

bool LocalLauncher::StartZygote(const std::string& program, Zygote& zygote) {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds) != 0) return false;
  LaunchRequest request;
  request.argv = {program, "--zygote"};
  // Room in the zygote's environment block for each trial to write its own over it, so that
  // /proc/<pid>/environ names the trial (TrialIdOf; trainer/zygote.cc, RewriteProcEnviron).
  request.env = {{"TUNE_ZYGOTE_FD", "3"}, {"TUNE_ZYGOTE_ENV_SPACE", std::string(16384, '.')}};
  std::vector<std::string> env_strings = TrialEnvironment(request);
  std::vector<char*> envp, argv;
  for (std::string& text : env_strings) envp.push_back(text.data());
  envp.push_back(nullptr);
  for (std::string& arg : request.argv) argv.push_back(arg.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  // dup2 onto itself (fds[1] == 3) clears close-on-exec, as POSIX 2024 and glibc >= 2.29 do.
  posix_spawn_file_actions_adddup2(&actions, fds[1], 3);
  posix_spawn_file_actions_addclosefrom_np(&actions, 4);
  posix_spawnattr_t attributes;
  InitSpawnAttributes(&attributes, 0);  // its own group: a Ctrl-C to the tuner's is the tuner's
  pid_t pid = 0;
  const int error = ::posix_spawn(&pid, program.c_str(), &actions, &attributes, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attributes);
  ::close(fds[1]);
  if (error != 0) {
    ::close(fds[0]);
    std::fprintf(stderr, "tune: cannot start the warm trainer %s: %s\n", program.c_str(), std::strerror(error));
    return false;
  }
  zygote.pid = pid;
  zygote.fd = fds[0];
  zygote.ready = false;
  // Loading LibTorch takes about a second (more on a busy machine): its ready message is awaited
  // on the io_context (on a duplicate of the socket, which the stream_descriptor owns), so the
  // loop goes on serving trials meanwhile.
  const int watched = ::fcntl(zygote.fd, F_DUPFD_CLOEXEC, 0);
  if (watched < 0) {
    StopZygote(zygote);
    return false;
  }
  const std::uint64_t generation = ++zygote.generation;
  zygote.starting = std::make_unique<boost::asio::posix::stream_descriptor>(io_, watched);
  zygote.deadline = std::make_unique<boost::asio::steady_timer>(io_, std::chrono::seconds(120));
  std::weak_ptr<int> alive = alive_;
  zygote.deadline->async_wait([this, alive, program, generation](const boost::system::error_code& error) {
    if (!error && !alive.expired()) OnZygoteStarted(program, generation, /*timed_out=*/true);
  });
  WatchZygoteStart(program, zygote);
  return true;
}

void LocalLauncher::WatchZygoteStart(const std::string& program, Zygote& zygote) {
  std::weak_ptr<int> alive = alive_;
  zygote.starting->async_wait(
      boost::asio::posix::stream_descriptor::wait_read,
      [this, alive, program, generation = zygote.generation](const boost::system::error_code& error) {
        if (!error && !alive.expired()) OnZygoteStarted(program, generation, /*timed_out=*/false);
      });
}

void LocalLauncher::OnZygoteStarted(const std::string& program, std::uint64_t generation, bool timed_out) {
  const auto it = zygotes_.find(program);
  if (it == zygotes_.end()) return;
  Zygote& zygote = it->second;
  if (zygote.generation != generation || zygote.fd < 0 || zygote.ready) return;  // a stale wait
  if (!timed_out) {
    pollfd readable{zygote.fd, POLLIN, 0};
    if (::poll(&readable, 1, 0) == 0) {
      WatchZygoteStart(program, zygote);  // woken with nothing to read: wait on
      return;
    }
  }
  const std::optional<Json> ready = timed_out ? std::nullopt : ReceiveFromZygote(zygote.fd, 0);
  zygote.starting.reset();
  zygote.deadline.reset();
  if (ready && ready->value("ready", false)) {
    zygote.ready = true;
    return;
  }
  GiveUpZygote(program, zygote,
               timed_out ? "--zygote did not start within 120 s" : "--zygote did not start");
}

void LocalLauncher::OnZygoteDied(const std::string& program) {
  Zygote& zygote = zygotes_[program];
  if (zygote.fd >= 0 && !zygote.ready) {
    // It died while it started: as one that never says it is ready.
    GiveUpZygote(program, zygote, "--zygote did not start");
    return;
  }
  StopZygote(zygote);
  if (++zygote.deaths >= 3) {
    GiveUpZygote(program, zygote, "keeps dying");
    return;
  }
  if (!StartZygote(program, zygote)) cold_programs_.insert(program);
}

void LocalLauncher::GiveUpZygote(const std::string& program, Zygote& zygote, const char* why) {
  std::fprintf(stderr, "tune: the warm trainer %s %s; its trials start cold\n", program.c_str(),
               why);
  StopZygote(zygote);
  cold_programs_.insert(program);
}

void LocalLauncher::StopZygote(Zygote& zygote) {
  zygote.starting.reset();  // cancels the waits (and closes the duplicate socket)
  zygote.deadline.reset();
  zygote.ready = false;
  if (zygote.fd >= 0) ::close(zygote.fd);  // EOF: the zygote exits
  zygote.fd = -1;
  // Only while it is still our unreaped child (Reap reaps a zygote that died): its pid cannot
  // have been reused then.
  int status = 0;
  if (zygote.pid > 0 && ::waitpid(static_cast<pid_t>(zygote.pid), &status, WNOHANG) == 0) {
    ::kill(static_cast<pid_t>(zygote.pid), SIGKILL);
    while (::waitpid(static_cast<pid_t>(zygote.pid), &status, 0) < 0 && errno == EINTR) {
    }
  }
  zygote.pid = 0;
}

std::vector<std::int64_t> LocalLauncher::ZygotePids() const {
  std::vector<std::int64_t> pids;
  for (const auto& [program, zygote] : zygotes_) {
    if (zygote.fd >= 0) pids.push_back(zygote.pid);
  }
  return pids;
}

std::size_t LocalLauncher::num_ready_zygotes() const {
  std::size_t ready = 0;
  for (const auto& [program, zygote] : zygotes_) ready += zygote.fd >= 0 && zygote.ready;
  return ready;
}

std::string LocalLauncher::WarmProgram(const LaunchRequest& request) const {
  if (request.argv.empty() || request.argv.front().empty()) return "";
  const std::string setting = WarmStartSetting(request);
  if (setting == "0") return "";
  const std::string program = ResolveProgram(request);
  if (program.empty() || cold_programs_.count(program) > 0) return "";
  if (setting != "1" && fs::path(program).filename() != "tune-trainer") return "";
  int subreaper = 0;
  if (::prctl(PR_GET_CHILD_SUBREAPER, &subreaper) != 0 || subreaper == 0) {
    return "";  // the trial would become init's child, out of our reach
  }
  return program;
}

void LocalLauncher::PrepareWarmStart(const LaunchRequest& request) {
  const std::string program = WarmProgram(request);
  if (program.empty()) return;
  Zygote& zygote = zygotes_[program];
  if (zygote.fd < 0 && !StartZygote(program, zygote)) cold_programs_.insert(program);
}

std::optional<std::int64_t> LocalLauncher::LaunchWarm(const LaunchRequest& request, int cgroup_fd,
                                                      bool* in_cgroup) {
  const std::string program = WarmProgram(request);
  if (program.empty()) return std::nullopt;
  std::error_code ignored;
  auto absolute = [&](const fs::path& path) { return path.empty() ? "" : fs::absolute(path, ignored).string(); };
  Zygote& zygote = zygotes_[program];
  const bool into_cgroup = cgroup_fd >= 0 && zygote.clones_into_cgroups;
  Json message = {{"argv", request.argv},
                  {"env", TrialEnvironment(request)},
                  {"cwd", absolute(request.cwd)},
                  {"stdout", absolute(request.stdout_path)},
                  {"stderr", absolute(request.stderr_path)}};
  if (into_cgroup) message["cgroup"] = true;
  std::string text;
  try {
    text = message.dump();
  } catch (const Json::exception&) {
    return std::nullopt;  // not UTF-8 (an environment variable's bytes): spawn it instead
  }
  if (zygote.fd < 0) {
    // The program's first warm launch starts its zygote (unless PrepareWarmStart did), in the
    // background; this trial and any launched before the zygote is ready are spawned cold.
    PrepareWarmStart(request);
    return std::nullopt;
  }
  if (!zygote.ready) return std::nullopt;
  std::optional<Json> reply;
  if (SendToZygote(zygote.fd, text, into_cgroup ? cgroup_fd : -1)) {
    reply = ReceiveFromZygote(zygote.fd, 60 * 1000);
  } else if (errno == EMSGSIZE) {
    return std::nullopt;  // a request larger than the socket takes (a huge environment): spawn
  }
  if (!reply) {
    // Found dead (its socket closed): restarted in the background, this trial spawned.
    OnZygoteDied(program);
    return std::nullopt;
  }
  zygote.deaths = 0;
  const std::int64_t pid = reply->value("pid", std::int64_t{0});
  if (!reply->contains("error") && pid > 0) {
    ++num_warm_launches_;
    // Only where the zygote says so: one built before it knew of cgroups ignores the descriptor.
    *in_cgroup = into_cgroup && reply->value("cgroup", false);
    return pid;
  }
  const std::string error = reply->value("error", std::string("no pid"));
  if (pid > 0) {
    // The trial's process exists (our child now) but could not become the trial: as a failed
    // posix_spawn, the launch fails.
    int status = 0;
    while (::waitpid(static_cast<pid_t>(pid), &status, 0) < 0 && errno == EINTR) {
    }
    throw std::runtime_error(fmt::format("cannot start \"{}\": {}", request.argv.front(), error));
  }
  std::fprintf(stderr, "tune: the warm trainer %s could not start a trial (%s); starting it cold\n",
               program.c_str(), error.c_str());
  // A zygote whose clone3 cannot start trials in their cgroup (a seccomp filter of its own, say)
  // forks them as before, and they are moved in once started.
  if (reply->value("cgroup_refused", false)) zygote.clones_into_cgroups = false;
  if (reply->value("disable", false)) {
    StopZygote(zygote);
    cold_programs_.insert(program);
  }
  return std::nullopt;
}

}  // namespace tune
