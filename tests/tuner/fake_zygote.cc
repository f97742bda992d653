// A stand-in for tune-trainer's warm trainer (tests/tuner/launcher_test.cc): it speaks the zygote
// protocol with trainer/zygote.cc's own RunZygote (which needs no LibTorch), and its trials are
// shell scripts.
//   tune-test-fake-zygote -c SCRIPT   a trial: /bin/sh -c SCRIPT (spawned, or forked by the zygote)
//   tune-test-fake-zygote --zygote    the zygote (as the launcher starts it): when FAKE_ZYGOTE_GO
//                                     names a file, it first waits for that file to exist, standing
//                                     for LibTorch's load; if it does not appear within 20 s it
//                                     exits without saying it is ready
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "trainer/zygote.h"

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
  return tune::RunZygote(
      std::atoi(fd), [](const std::vector<std::string>&, const std::vector<std::string>&) {}, RunShell);
}
