#include "tuner/cgroup.h"

#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <sstream>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "tuner/client/clone3.h"
#include "tuner/launcher.h"

namespace tune {
namespace {

namespace fs = std::filesystem;

// Writes `text` to a cgroup control file; 0 or the errno of the failure.
int WriteControl(const fs::path& path, const std::string& text) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return errno;
  const ssize_t n = ::write(fd, text.data(), text.size());
  const int error = n == static_cast<ssize_t>(text.size()) ? 0 : (n < 0 ? errno : EIO);
  ::close(fd);
  return error;
}

// /proc/self/mountinfo escapes space, tab, newline and backslash as \ooo.
std::string Unescape(const std::string& field) {
  std::string out;
  for (std::size_t i = 0; i < field.size(); ++i) {
    if (field[i] == '\\' && i + 3 < field.size()) {
      const std::string octal = field.substr(i + 1, 3);
      if (octal.find_first_not_of("01234567") == std::string::npos) {
        out += static_cast<char>(std::stoi(octal, nullptr, 8));
        i += 3;
        continue;
      }
    }
    out += field[i];
  }
  return out;
}

// The pids in the cgroup at `dir` (its cgroup.procs; empty when it cannot be read).
std::vector<pid_t> ProcsOf(const fs::path& dir) {
  std::vector<pid_t> pids;
  std::istringstream procs(ReadProcFile((dir / "cgroup.procs").string()));
  for (long pid = 0; procs >> pid;) pids.push_back(static_cast<pid_t>(pid));
  return pids;
}

// Removes a cgroup directory, killing what is left in it first; waits up to ~1 s for the killed
// processes to leave. True when it is gone.
bool KillAndRemove(const fs::path& dir) {
  WriteControl(dir / "cgroup.kill", "1");
  for (int attempt = 0; attempt < 100; ++attempt) {
    if (::rmdir(dir.c_str()) == 0 || errno == ENOENT) return true;
    if (errno != EBUSY) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

}  // namespace

fs::path OwnCgroupDirectory(std::string* why_not) {
  std::string mount_point, mount_root;
  std::istringstream mounts(ReadProcFile("/proc/self/mountinfo"));
  for (std::string line; std::getline(mounts, line);) {
    // "36 35 98:0 <root> <mount point> <options> [optional...] - <fstype> <source> <super>"
    const std::size_t dash = line.find(" - ");
    if (dash == std::string::npos) continue;
    std::istringstream after(line.substr(dash + 3));
    std::string fstype;
    after >> fstype;
    if (fstype != "cgroup2") continue;
    std::istringstream before(line.substr(0, dash));
    std::string id, parent, device;
    before >> id >> parent >> device >> mount_root >> mount_point;
    mount_root = Unescape(mount_root);
    mount_point = Unescape(mount_point);
    break;
  }
  if (mount_point.empty()) {
    if (why_not) *why_not = "no cgroup v2 hierarchy is mounted";
    return {};
  }
  std::string path;
  std::istringstream cgroups(ReadProcFile("/proc/self/cgroup"));
  for (std::string line; std::getline(cgroups, line);) {
    if (line.rfind("0::", 0) == 0) path = line.substr(3);
  }
  if (path.empty() || path.front() != '/') {
    if (why_not) *why_not = "this process is in no cgroup v2 (/proc/self/cgroup has no 0:: line)";
    return {};
  }
  // A mount of a subtree (a container's /sys/fs/cgroup) shows the paths below its root.
  if (mount_root != "/" && path.rfind(mount_root, 0) == 0) path = path.substr(mount_root.size());
  return fs::path(mount_point) / fs::path(path).relative_path();
}

namespace {

#if defined(__x86_64__)
// clone3(args, size) whose child calls fn(arg) on args->stack and exits with what it returns;
// in the caller it returns what clone3 returns (the child's pid, or -errno). In assembly because
// the child starts on a stack with no frame to return to (glibc's clone3 wrapper is internal):
// fn and arg wait in r8 and r9, which the syscall leaves alone, as in glibc's clone3.S.
extern "C" long tune_clone3_run(CloneArgs* args, std::size_t size, int (*fn)(void*), void* arg);
asm(R"(
    .text
    .globl tune_clone3_run
    .hidden tune_clone3_run
    .type tune_clone3_run, @function
tune_clone3_run:
    mov %rdx, %r8
    mov %rcx, %r9
    mov $435, %eax
    syscall
    test %rax, %rax
    jnz 1f
    xor %ebp, %ebp
    mov %r9, %rdi
    call *%r8
    mov %eax, %edi
    mov $60, %eax
    syscall
    hlt
1:
    ret
    .size tune_clone3_run, .-tune_clone3_run
)");

// Whether clone3 with CLONE_INTO_CGROUP worked the last time (a kernel before 5.7, or a seccomp
// filter that answers clone3 with ENOSYS as container runtimes do, turn it off for good).
std::atomic<bool> clone3_into_cgroup_works{true};

// The child of clone3 starts in the cgroup `cgroup_fd` is open on: no migration at all. Writing a
// pid to cgroup.procs (the fallback below) takes the cgroup threadgroup lock for writing, which
// waits for an RCU grace period unless the hierarchy is mounted with favordynmods: ~20 ms a trial
// on the 2-core VM (a `tune run` of 1-slot 0.2 s trials: 23 ms from one trial's end to the next
// one's main(), 20 of them in that write; 3 ms before per-trial cgroups). -1 when clone3 could not.
pid_t Clone3IntoCgroup(int cgroup_fd, int (*child)(void*), void* arg, std::vector<char>& stack) {
  if (!clone3_into_cgroup_works.load(std::memory_order_relaxed)) return -1;
  CloneArgs args{};
  args.flags = CLONE_VM | CLONE_VFORK | kCloneIntoCgroup;
  args.exit_signal = SIGCHLD;
  args.stack = reinterpret_cast<std::uintptr_t>(stack.data());
  args.stack_size = stack.size();
  args.cgroup = static_cast<std::uint64_t>(cgroup_fd);
  const long result = tune_clone3_run(&args, sizeof args, child, arg);
  if (result > 0) return static_cast<pid_t>(result);
  if (result == -ENOSYS || result == -EINVAL || result == -E2BIG) {
    clone3_into_cgroup_works.store(false, std::memory_order_relaxed);
  }
  return -1;  // the caller tries the write to cgroup.procs, which says why if it fails too
}
#endif

// What SpawnIntoCgroup's child gets: it shares the caller's memory, so `error` reaches the caller.
struct Joining {
  int procs;  // the cgroup's cgroup.procs, open for writing
  int (*child)(void*);
  void* arg;
  int error;  // set by the child when it could not join
};

int JoinThenRun(void* data) {
  auto* joining = static_cast<Joining*>(data);
  if (::write(joining->procs, "0", 1) != 1) {  // "0": the writing process itself
    joining->error = errno != 0 ? errno : EIO;
    ::_exit(127);
  }
  return joining->child(joining->arg);
}

}  // namespace

pid_t SpawnIntoCgroup(int cgroup_fd, int (*child)(void*), void* arg) {
  // The child's stack until it execs: the caller waits (CLONE_VFORK), so it outlives the child's
  // use of it, and the thread's next child can have it again (made once: zeroing 256 KiB at each
  // launch was ~3 % of the tuner's CPU time in a 1-slot run of short trials).
  thread_local std::vector<char> stack(256 * 1024);
  // No handler of this process may run in the child (it shares this memory): every signal is
  // blocked until the child has set its own dispositions and mask.
  sigset_t all, before;
  sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, &before);
#if defined(__x86_64__)
  if (const pid_t pid = Clone3IntoCgroup(cgroup_fd, child, arg, stack); pid > 0) {
    ::pthread_sigmask(SIG_SETMASK, &before, nullptr);
    return pid;
  }
#endif
  // The fallback: the child writes itself to cgroup.procs.
  const int procs = ::openat(cgroup_fd, "cgroup.procs", O_WRONLY | O_CLOEXEC);
  if (procs < 0) {
    const int open_error = errno;
    ::pthread_sigmask(SIG_SETMASK, &before, nullptr);
    errno = open_error;
    return -1;
  }
  Joining joining{procs, child, arg, 0};
  const pid_t pid = ::clone(JoinThenRun, stack.data() + stack.size(),
                            CLONE_VM | CLONE_VFORK | SIGCHLD, &joining);
  const int clone_error = errno;
  ::pthread_sigmask(SIG_SETMASK, &before, nullptr);
  ::close(procs);
  if (pid < 0) {
    errno = clone_error;
    return -1;
  }
  if (joining.error != 0) {
    while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
    }
    errno = joining.error;
    return -1;
  }
  return pid;
}

std::unique_ptr<TrialCgroups> TrialCgroups::Create(std::string* why_not) {
  std::string reason;
  const fs::path own = OwnCgroupDirectory(&reason);
  if (own.empty()) {
    if (why_not) *why_not = reason;
    return nullptr;
  }
  const fs::path root = own / fmt::format("tune-{}", ::getpid());
  if (::mkdir(root.c_str(), 0755) != 0 && errno != EEXIST) {
    if (why_not) *why_not = fmt::format("cannot create {}: {}", root.string(), std::strerror(errno));
    return nullptr;
  }
  auto fail = [&](std::string message) -> std::unique_ptr<TrialCgroups> {
    ::rmdir(root.c_str());
    if (why_not) *why_not = std::move(message);
    return nullptr;
  };
  if (::access((root / "cgroup.kill").c_str(), W_OK) != 0) {
    return fail(fmt::format("{} has no writable cgroup.kill (Linux >= 5.14)", root.string()));
  }
  // Moving a process needs write access to cgroup.procs here and in the common ancestor (our own
  // cgroup): try it with a child that waits to be killed, and kill it through cgroup.kill.
  std::unique_ptr<TrialCgroups> cgroups(new TrialCgroups(root));
  const pid_t probe = ::fork();
  if (probe < 0) return fail(fmt::format("fork: {}", std::strerror(errno)));
  if (probe == 0) {
    for (;;) ::pause();
  }
  const bool moved = cgroups->Add(0, probe);
  const int move_error = errno;
  if (moved) cgroups->Kill(0);
  ::kill(probe, SIGKILL);  // in case the move or the kill failed
  int status = 0;
  while (::waitpid(probe, &status, 0) < 0 && errno == EINTR) {
  }
  const bool killed = WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
  cgroups->RemoveEmpty();
  if (!moved) {
    cgroups.reset();
    KillAndRemove(root / "g0");
    return fail(fmt::format("cannot move a process into {}: {}", root.string(),
                            std::strerror(move_error)));
  }
  if (!killed) {
    cgroups.reset();
    return fail(fmt::format("cgroup.kill of {} did not end its process", root.string()));
  }
  return cgroups;
}

TrialCgroups::~TrialCgroups() {
  for (const auto& [fd, name] : prepared_) ::close(fd);
  std::error_code error;
  std::vector<fs::path> dirs;
  for (fs::directory_iterator it(root_, error), end; !error && it != end; it.increment(error)) {
    if (it->is_directory()) dirs.push_back(it->path());
  }
  for (const fs::path& dir : dirs) KillAndRemove(dir);
  ::rmdir(root_.c_str());
}

fs::path TrialCgroups::Dir(std::int64_t group) const {
  auto adopted = adopted_.find(group);
  return root_ / (adopted != adopted_.end() ? adopted->second : fmt::format("g{}", group));
}

int TrialCgroups::Prepare() {
  const std::string name = fmt::format("n{}", ++num_prepared_);
  const fs::path dir = root_ / name;
  if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) return -1;
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    const int error = errno;
    ::rmdir(dir.c_str());
    errno = error;
    return -1;
  }
  prepared_[fd] = name;
  return fd;
}

void TrialCgroups::Adopt(int fd, std::int64_t group) {
  auto it = prepared_.find(fd);
  if (it == prepared_.end()) return;
  adopted_[group] = it->second;
  prepared_.erase(it);
  ::close(fd);
}

void TrialCgroups::Discard(int fd) {
  auto it = prepared_.find(fd);
  if (it == prepared_.end()) return;
  ::close(fd);
  KillAndRemove(root_ / it->second);
  prepared_.erase(it);
}

bool TrialCgroups::Add(std::int64_t group, pid_t pid) {
  const fs::path dir = Dir(group);
  if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) return false;
  const int error = WriteControl(dir / "cgroup.procs", std::to_string(pid));
  errno = error;
  return error == 0;
}

std::vector<pid_t> TrialCgroups::Pids(std::int64_t group) const {
  return ProcsOf(Dir(group));
}

std::vector<pid_t> TrialCgroups::HomePids() const {
  return ProcsOf(root_.parent_path());
}

void TrialCgroups::Signal(std::int64_t group, int signal) {
  for (pid_t pid : Pids(group)) ::kill(pid, signal);
}

void TrialCgroups::Kill(std::int64_t group) {
  WriteControl(Dir(group) / "cgroup.kill", "1");
  ended_.insert(group);
  RemoveEmpty();
}

void TrialCgroups::RemoveEmpty() {
  for (auto it = ended_.begin(); it != ended_.end();) {
    if (::rmdir(Dir(*it).c_str()) == 0 || errno == ENOENT) {
      adopted_.erase(*it);
      it = ended_.erase(it);
    } else {
      ++it;
    }
  }
}

}  // namespace tune
