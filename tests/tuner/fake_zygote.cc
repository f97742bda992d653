// A stand-in for tune-trainer's warm trainer (tests/tuner/launcher_test.cc): it speaks the zygote
// protocol with trainer/zygote.cc's own RunZygote (which needs no LibTorch), and its trials are
// shell scripts.
//   tune-test-fake-zygote -c SCRIPT   a trial: /bin/sh -c SCRIPT (spawned, or forked by the zygote)
//   tune-test-fake-zygote --zygote    the zygote (as the launcher starts it): when FAKE_ZYGOTE_GO
//                                     names a file, it first waits for that file to exist, standing
//                                     for LibTorch's load; if it does not appear within 20 s it
//                                     exits without saying it is ready; FAKE_ZYGOTE_NO_CLONE3=1
//                                     makes clone3 fail with ENOSYS in it (a seccomp filter, as
//                                     container runtimes install), so it cannot start trials
//                                     inside their cgroup; FAKE_ZYGOTE_OLD=1 makes it a zygote
//                                     from before the "cgroup" field: a proxy in front of the real
//                                     one drops the descriptor and the field from each request
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "trainer/zygote.h"
#include "tuner/client/protocol.h"

namespace {

int RunShell(const std::vector<std::string>& args) {
  std::vector<std::string> copy = args;
  copy[0] = "/bin/sh";
  std::vector<char*> argv;
  for (std::string& arg : copy) argv.push_back(arg.data());
  argv.push_back(nullptr);
  ::execv("/bin/sh", argv.data());
  return 127;
}

// clone3 answers ENOSYS in this process and its children from now on.
bool RefuseClone3() {
  sock_filter filter[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, arch)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 0, 3),
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_clone3, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (ENOSYS & SECCOMP_RET_DATA)),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  sock_fprog program{static_cast<unsigned short>(sizeof filter / sizeof filter[0]), filter};
  return ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 &&
         ::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &program) == 0;
}

// Relays messages between the launcher (`outer`) and a real zygote (`inner`) as a zygote that
// knows nothing of cgroups would see and answer them: recv() takes no descriptor (the kernel
// closes one that was passed) and the request loses its "cgroup" field. Returns at EOF.
int RelayAsOldZygote(int outer, int inner) {
  std::vector<char> buffer(1 << 20);
  auto relay = [&](int from, int to, bool strip) {
    const ssize_t n = ::recv(from, buffer.data(), buffer.size(), 0);
    if (n <= 0) return false;
    std::string text(buffer.data(), static_cast<std::size_t>(n));
    if (strip) {
      tune::Json request = tune::Json::parse(text);
      request.erase("cgroup");
      text = request.dump();
    }
    return ::send(to, text.data(), text.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(text.size());
  };
  if (!relay(inner, outer, false)) return 5;  // {"ready": true}
  while (relay(outer, inner, true) && relay(inner, outer, false)) {
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv, argv + argc);
  if (args.size() < 2 || args[1] != "--zygote") return RunShell(args);
  const char* fd = std::getenv("TUNE_ZYGOTE_FD");
  if (fd == nullptr) return 2;
  if (const char* go = std::getenv("FAKE_ZYGOTE_GO")) {
    int waited_ms = 0;
    for (; ::access(go, F_OK) != 0 && waited_ms < 20000; waited_ms += 10) ::usleep(10000);
    if (waited_ms >= 20000) return 3;
  }
  if (const char* refuse = std::getenv("FAKE_ZYGOTE_NO_CLONE3");
      refuse != nullptr && std::string(refuse) == "1" && !RefuseClone3()) {
    std::perror("tune-test-fake-zygote: seccomp");
    return 4;
  }
  auto serve = [](int on) {
    return tune::RunZygote(
        on, [](const std::vector<std::string>&, const std::vector<std::string>&) {}, RunShell);
  };
  if (const char* old = std::getenv("FAKE_ZYGOTE_OLD"); old != nullptr && std::string(old) == "1") {
    int inner[2];
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, inner) != 0) return 6;
    const pid_t real = ::fork();
    if (real < 0) return 6;
    if (real == 0) {
      ::close(inner[0]);
      return serve(inner[1]);
    }
    ::close(inner[1]);
    return RelayAsOldZygote(std::atoi(fd), inner[0]);
  }
  return serve(std::atoi(fd));
}
