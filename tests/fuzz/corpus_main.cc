// The fuzz targets without libFuzzer: runs a target's LLVMFuzzerTestOneInput over each file (or
// each file in each directory, in name order) given on the command line. In the ordinary build
// (gcc, no sanitizers) this makes every committed corpus a regression test under CTest: an input
// that once found a bug must still be handled (the targets trap on a wrong outcome). It is also
// the way to profile a target: `--repeat N` runs the inputs N times and prints executions per
// second.
//
// With --no-leftovers (how CTest runs it) it also checks that the target leaves nothing behind in
// the temporary directory, /dev/shm or the working directory, also when a fuzzing process ends
// without exit handlers (libFuzzer _Exit()s on a crash, a timeout or the RSS limit): one child
// process runs the first input and _exit()s, then a second one runs every input and exits
// normally. Both run with TMPDIR and the working directory set to fresh empty directories, which
// must be empty again afterwards (the second child removes what the first left:
// tests/fuzz/scratch.h), and no entry in /dev/shm or /tmp may end in either child's pid.
//
// Usage: tune-corpus-TARGET [--repeat N] [--no-leftovers] PATH...
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <system_error>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

namespace {

namespace fs = std::filesystem;

void RunOne(const std::string& input) {
  LLVMFuzzerTestOneInput(reinterpret_cast<const std::uint8_t*>(input.data()), input.size());
}

void Run(const std::vector<std::string>& inputs, long repeat) {
  const auto begin = std::chrono::steady_clock::now();
  for (long round = 0; round < repeat; ++round) {
    for (const std::string& input : inputs) RunOne(input);
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
  const double runs = static_cast<double>(inputs.size()) * static_cast<double>(repeat);
  std::printf("%zu inputs x %ld: %.0f executions in %.2f s (%.0f/s)\n", inputs.size(), repeat, runs,
              seconds, seconds > 0 ? runs / seconds : 0.0);
}

std::vector<std::string> Entries(const fs::path& dir) {
  std::vector<std::string> names;
  std::error_code error;
  for (fs::directory_iterator it(dir, error), end; !error && it != end; it.increment(error)) {
    names.push_back(it->path().filename().string());
  }
  return names;
}

// Runs `body` (which must not return) in a child process with TMPDIR=tmp and the working
// directory cwd. The child's pid when it exited with status 0, else -1.
template <typename Body>
int InChild(const fs::path& tmp, const fs::path& cwd, Body body) {
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) {
    std::perror("fork");
    std::exit(2);
  }
  if (pid == 0) {
    ::setenv("TMPDIR", tmp.c_str(), 1);
    if (::chdir(cwd.c_str()) != 0) _exit(2);
    body();
    _exit(2);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return static_cast<int>(pid);
  std::printf("child %d ended with %s %d\n", static_cast<int>(pid),
              WIFEXITED(status) ? "exit status" : "signal",
              WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
  return -1;
}

bool EndsWith(const std::string& name, const std::string& suffix) {
  return name.size() > suffix.size() &&
         name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// 0 when neither a crashed nor a finished run of the target leaves anything behind.
int CheckNoLeftovers(const std::vector<std::string>& inputs) {
  const fs::path root =
      fs::temp_directory_path() / ("tune_corpus_leftovers_" + std::to_string(::getpid()));
  const fs::path tmp = root / "tmp", cwd = root / "cwd";
  fs::remove_all(root);
  fs::create_directories(tmp);
  fs::create_directories(cwd);
  const std::size_t shm_before = Entries("/dev/shm").size(), tmp_before = Entries("/tmp").size();
  // A process that ends without exit handlers, as libFuzzer's crash and timeout paths do.
  const int crashed = InChild(tmp, cwd, [&] {
    if (!inputs.empty()) RunOne(inputs.front());
    std::fflush(nullptr);
    _exit(0);
  });
  const std::size_t after_crash = Entries(tmp).size() + Entries(cwd).size();
  const int finished = InChild(tmp, cwd, [&] {
    Run(inputs, 1);
    std::exit(0);
  });
  int failures = crashed < 0 || finished < 0 ? 1 : 0;
  for (const fs::path& dir : {tmp, cwd}) {
    for (const std::string& name : Entries(dir)) {
      std::printf("left behind: %s\n", (dir / name).c_str());
      failures = 1;
    }
  }
  for (const char* dir : {"/dev/shm", "/tmp"}) {
    for (const std::string& name : Entries(dir)) {
      for (int pid : {crashed, finished}) {
        if (pid > 0 && EndsWith(name, "_" + std::to_string(pid))) {
          std::printf("left behind: %s/%s\n", dir, name.c_str());
          failures = 1;
        }
      }
    }
  }
  std::printf(
      "scratch entries: %zu after a crashed run, %zu after a finished one; /dev/shm %zu -> %zu, "
      "/tmp %zu -> %zu entries (other processes' included)\n",
      after_crash, Entries(tmp).size() + Entries(cwd).size(), shm_before,
      Entries("/dev/shm").size(), tmp_before, Entries("/tmp").size());
  fs::remove_all(root);
  return failures;
}

}  // namespace

int main(int argc, char** argv) {
  long repeat = 1;
  bool no_leftovers = false;
  std::vector<fs::path> files;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--repeat") == 0 && i + 1 < argc) {
      repeat = std::max(1L, std::strtol(argv[++i], nullptr, 10));
      continue;
    }
    if (std::strcmp(argv[i], "--no-leftovers") == 0) {
      no_leftovers = true;
      continue;
    }
    const fs::path path = argv[i];
    if (fs::is_directory(path)) {
      std::vector<fs::path> inside;
      for (const auto& entry : fs::directory_iterator(path)) {
        if (entry.is_regular_file()) inside.push_back(entry.path());
      }
      std::sort(inside.begin(), inside.end());
      files.insert(files.end(), inside.begin(), inside.end());
    } else if (fs::is_regular_file(path)) {
      files.push_back(path);
    } else {
      std::fprintf(stderr, "%s: no such file or directory\n", path.c_str());
      return 2;
    }
  }
  std::vector<std::string> inputs;
  for (const fs::path& file : files) {
    std::ifstream in(file, std::ios::binary);
    inputs.emplace_back(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  if (no_leftovers) return CheckNoLeftovers(inputs);
  Run(inputs, repeat);
  return 0;
}
