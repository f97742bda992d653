// The fuzz targets without libFuzzer: runs a target's LLVMFuzzerTestOneInput over each file (or
// each file in each directory, in name order) given on the command line. In the ordinary build
// (gcc, no sanitizers) this makes every committed corpus a regression test under CTest: an input
// that once found a bug must still be handled (the targets trap on a wrong outcome). It is also
// the way to profile a target: `--repeat N` runs the inputs N times and prints executions per
// second.
//
// Usage: tune-corpus-TARGET [--repeat N] PATH...
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
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

int main(int argc, char** argv) {
  namespace fs = std::filesystem;
  long repeat = 1;
  std::vector<fs::path> files;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--repeat") == 0 && i + 1 < argc) {
      repeat = std::max(1L, std::strtol(argv[++i], nullptr, 10));
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
  const auto begin = std::chrono::steady_clock::now();
  for (long round = 0; round < repeat; ++round) {
    for (const std::string& input : inputs) {
      LLVMFuzzerTestOneInput(reinterpret_cast<const std::uint8_t*>(input.data()), input.size());
    }
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
  const double runs = static_cast<double>(inputs.size()) * static_cast<double>(repeat);
  std::printf("%zu inputs x %ld: %.0f executions in %.2f s (%.0f/s)\n", inputs.size(), repeat, runs,
              seconds, seconds > 0 ? runs / seconds : 0.0);
  return 0;
}
