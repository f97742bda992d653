#include "trainer/zygote.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "tuner/client/clone3.h"
#include "tuner/client/protocol.h"

namespace tune {
namespace {

void Send(int fd, const Json& message) {
  const std::string text = message.dump();
  while (::send(fd, text.data(), text.size(), MSG_NOSIGNAL) < 0 && errno == EINTR) {
  }
}

// One request into `buffer`, and the descriptor it carried (SCM_RIGHTS, close-on-exec) in
// `*passed_fd` (-1 when none; any more are closed). Returns what recvmsg returns.
ssize_t Receive(int fd, std::vector<char>& buffer, int* passed_fd) {
  iovec data{buffer.data(), buffer.size()};
  alignas(cmsghdr) char control[CMSG_SPACE(4 * sizeof(int))];
  msghdr message{};
  message.msg_iov = &data;
  message.msg_iovlen = 1;
  message.msg_control = control;
  message.msg_controllen = sizeof control;
  const ssize_t n = ::recvmsg(fd, &message, MSG_CMSG_CLOEXEC);
  if (n < 0) return n;
  for (cmsghdr* header = CMSG_FIRSTHDR(&message); header != nullptr;
       header = CMSG_NXTHDR(&message, header)) {
    if (header->cmsg_level != SOL_SOCKET || header->cmsg_type != SCM_RIGHTS) continue;
    const std::size_t count = (header->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (std::size_t i = 0; i < count; ++i) {
      int passed = -1;
      std::memcpy(&passed, CMSG_DATA(header) + i * sizeof(int), sizeof passed);
      if (*passed_fd < 0) {
        *passed_fd = passed;
      } else {
        ::close(passed);
      }
    }
  }
  return n;
}

// What the child reports through the pipe before it runs the trial.
struct ChildStatus {
  std::int32_t error = 0;  // errno, 0 = started
  std::int32_t stage = 0;  // index into kStages
};
const char* const kStages[] = {"started", "open /dev/null", "open stdout", "open stderr", "chdir", "setpgid"};

// /proc/<pid>/environ shows the environment block the process was exec'd with: the zygote's.
// The tuner tells trials by the TUNE_TRIAL_ID there (tune resume kills a dead tuner's leftover
// trials by it; orphans are told by it), so the trial writes its own environment over that block,
// TUNE_TRIAL_ID first, and zeroes the rest. The launcher starts the zygote with a padding
// variable (TUNE_ZYGOTE_ENV_SPACE) so that the block has room for the trial's variables.
void RewriteProcEnviron(const std::vector<std::string>& env) {
  std::FILE* stat = std::fopen("/proc/self/stat", "r");
  if (stat == nullptr) return;
  char text[4096];
  const std::size_t n = std::fread(text, 1, sizeof text - 1, stat);
  std::fclose(stat);
  text[n] = '\0';
  const char* after = std::strrchr(text, ')');  // "pid (comm) state ...": comm may hold spaces
  if (after == nullptr) return;
  std::vector<std::string> fields;  // fields[0] is field 3 (state)
  std::istringstream words(after + 1);
  for (std::string word; words >> word;) fields.push_back(word);
  if (fields.size() < 49) return;  // env_start and env_end are fields 50 and 51 (Linux >= 3.5)
  const unsigned long long env_start = std::strtoull(fields[47].c_str(), nullptr, 10);
  const unsigned long long env_end = std::strtoull(fields[48].c_str(), nullptr, 10);
  if (env_start == 0 || env_end <= env_start) return;
  char* block = reinterpret_cast<char*>(env_start);
  const std::size_t room = env_end - env_start;
  std::size_t used = 0;
  auto put = [&](const std::string& entry) {
    if (used + entry.size() + 1 > room) return;
    std::memcpy(block + used, entry.c_str(), entry.size() + 1);
    used += entry.size() + 1;
  };
  for (const std::string& entry : env) {
    if (entry.rfind("TUNE_TRIAL_ID=", 0) == 0) put(entry);
  }
  for (const std::string& entry : env) {
    if (entry.rfind("TUNE_TRIAL_ID=", 0) != 0) put(entry);
  }
  std::memset(block + used, 0, room - used);
}

// Opens `path` as descriptor `target` (O_APPEND, as the launcher's posix_spawn does).
bool OpenAs(const std::string& path, int flags, int target) {
  const int fd = ::open(path.c_str(), flags, 0644);
  if (fd < 0) return false;
  if (fd != target) {
    if (::dup2(fd, target) < 0) return false;
    ::close(fd);
  }
  return true;
}

// In the trial's process: become the process the request describes. Returns the failed stage.
ChildStatus BecomeTrial(const Json& request) {
  auto fail = [](int stage) { return ChildStatus{errno == 0 ? EINVAL : errno, stage}; };
  if (::setpgid(0, 0) != 0) return fail(5);
  for (int signal = 1; signal < NSIG; ++signal) ::signal(signal, SIG_DFL);  // SIGKILL/SIGSTOP fail: fine
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  ::clearenv();
  std::vector<std::string> env;
  for (const auto& entry : request.at("env")) env.push_back(entry.get<std::string>());
  for (const std::string& entry : env) ::putenv(::strdup(entry.c_str()));  // kept by putenv: leaked on purpose
  RewriteProcEnviron(env);
  if (!OpenAs("/dev/null", O_RDONLY, STDIN_FILENO)) return fail(1);
  const std::string out = request.value("stdout", ""), err = request.value("stderr", "");
  const int flags = O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW;
  if (!out.empty() && !OpenAs(out, flags, STDOUT_FILENO)) return fail(2);
  if (!err.empty() && !OpenAs(err, flags, STDERR_FILENO)) return fail(3);
  const std::string cwd = request.value("cwd", "");
  if (!cwd.empty() && ::chdir(cwd.c_str()) != 0) return fail(4);
  return {};
}

std::vector<std::string> Strings(const Json& array) {
  std::vector<std::string> out;
  for (const auto& item : array) out.push_back(item.get<std::string>());
  return out;
}

// Maps the trial's data in the zygote, from the trial's directory; failures are the child's to
// report (it loads the data itself then).
void Prepare(const Json& request, const WarmPrepare& prepare) {
  const int here = ::open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  const std::string cwd = request.value("cwd", "");
  try {
    if (cwd.empty() || ::chdir(cwd.c_str()) == 0) prepare(Strings(request.at("argv")), Strings(request.at("env")));
  } catch (const std::exception&) {
  }
  if (here >= 0) {
    if (::fchdir(here) != 0) std::perror("tune-trainer --zygote: fchdir");
    ::close(here);
  }
}

// The middle process, made by fork(), or with `cgroup_fd` >= 0 by clone3 straight into the cgroup
// that descriptor is open on (CLONE_INTO_CGROUP, Linux >= 5.7): the trial it forks is then in its
// cgroup before it runs anything, and the tuner has no process to move. Like fork(): 0 in the
// child, its pid in the parent, -1 with errno. The middle only calls fork() and _exit(); it skips
// glibc's fork bookkeeping (at-fork handlers, the thread's cached id), which its fork() of the
// trial does again for the trial. The zygote is single-threaded here, so no lock is held.
pid_t ForkMiddle(int cgroup_fd) {
  if (cgroup_fd < 0) return ::fork();
#if defined(SYS_clone3)
  CloneArgs args{};
  args.flags = kCloneIntoCgroup;
  args.exit_signal = SIGCHLD;
  args.cgroup = static_cast<std::uint64_t>(cgroup_fd);
  return static_cast<pid_t>(::syscall(SYS_clone3, &args, sizeof args));
#else
  errno = ENOSYS;
  return -1;
#endif
}

Json Fork(const Json& request, int cgroup_fd, const WarmPrepare& prepare,
          const WarmTrialMain& trial_main) {
  std::vector<std::string> argv = Strings(request.at("argv"));
  if (argv.empty()) return Json{{"error", "empty argv"}, {"disable", false}};
  Strings(request.at("env"));  // validates before forking
  Prepare(request, prepare);
  if (const int threads = CountThreads(); threads != 1) {
    return Json{{"error", "the zygote has " + std::to_string(threads) + " threads; forking it is unsafe"},
                {"disable", true}};
  }
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) return Json{{"error", std::strerror(errno)}, {"disable", false}};
  std::fflush(nullptr);  // nothing buffered may be written twice
  const pid_t middle = ForkMiddle(cgroup_fd);
  if (middle < 0) {
    const int error = errno;
    ::close(pipe_fds[0]);
    ::close(pipe_fds[1]);
    if (cgroup_fd >= 0) {
      return Json{{"error", std::string("clone3 into the trial's cgroup: ") + std::strerror(error)},
                  {"disable", false},
                  {"cgroup_refused", true}};
    }
    return Json{{"error", std::string("fork: ") + std::strerror(error)}, {"disable", false}};
  }
  if (middle == 0) {
    const pid_t trial = ::fork();
    if (trial != 0) ::_exit(trial < 0 ? 1 : 0);  // the trial becomes the tuner's child (subreaper)
    ::close(pipe_fds[0]);
    ChildStatus status = BecomeTrial(request);
    const std::int32_t message[3] = {static_cast<std::int32_t>(::getpid()), status.error, status.stage};
    if (::write(pipe_fds[1], message, sizeof message) != sizeof message || status.error != 0) ::_exit(127);
    ::close_range(3, ~0U, 0);  // the zygote's socket, the pipe, everything else
    const std::string name = std::filesystem::path(argv[0]).filename().string().substr(0, 15);
    ::prctl(PR_SET_NAME, name.c_str(), 0, 0, 0);
    std::exit(trial_main(argv));
  }
  ::close(pipe_fds[1]);
  int ignored = 0;
  while (::waitpid(middle, &ignored, 0) < 0 && errno == EINTR) {
  }
  std::int32_t message[3] = {0, 0, 0};
  ssize_t n = 0;
  while ((n = ::read(pipe_fds[0], message, sizeof message)) < 0 && errno == EINTR) {
  }
  ::close(pipe_fds[0]);
  if (n != sizeof message) return Json{{"error", "the trial process died before it started"}, {"disable", false}};
  if (message[1] != 0) {
    const int stage = message[2] >= 0 && message[2] < 6 ? message[2] : 0;
    return Json{{"error", std::string(kStages[stage]) + ": " + std::strerror(message[1])},
                {"pid", message[0]},
                {"disable", false}};
  }
  Json reply = {{"pid", message[0]}};
  if (cgroup_fd >= 0) reply["cgroup"] = true;  // it started in the cgroup it was given
  return reply;
}

}  // namespace

int CountThreads() {
  int count = 0;
  if (DIR* dir = ::opendir("/proc/self/task")) {
    while (const dirent* entry = ::readdir(dir)) count += entry->d_name[0] != '.';
    ::closedir(dir);
  }
  return count;
}

int RunZygote(int fd, const WarmPrepare& prepare, const WarmTrialMain& trial_main) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);  // never outlive the tuner
  // The trials are re-parented to the tuner, but the middle processes are ours to reap; the
  // default SIGCHLD disposition (ignore-but-reapable) keeps waitpid working.
  ::signal(SIGCHLD, SIG_DFL);
  Send(fd, Json{{"ready", true}, {"pid", ::getpid()}});
  std::vector<char> buffer(1 << 20);
  for (;;) {
    int cgroup_fd = -1;
    const ssize_t n = Receive(fd, buffer, &cgroup_fd);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return 0;  // the launcher is gone
    Json reply;
    try {
      Json request = Json::parse(buffer.data(), buffer.data() + n);
      const bool into_cgroup = request.value("cgroup", false);
      if (into_cgroup && cgroup_fd < 0) {
        reply = Json{{"error", "bad request: \"cgroup\" without a descriptor"}, {"disable", false}};
      } else {
        reply = Fork(request, into_cgroup ? cgroup_fd : -1, prepare, trial_main);
      }
    } catch (const std::exception& error) {
      reply = Json{{"error", std::string("bad request: ") + error.what()}, {"disable", false}};
    }
    if (cgroup_fd >= 0) ::close(cgroup_fd);
    Send(fd, reply);
  }
}

}  // namespace tune
