// What the micro-benchmarks share: the sizes to run from the command line, and this thread's
// CPU time (what a decision costs, whatever else the shared machine is doing).
#pragma once

#include <cstdlib>
#include <ctime>
#include <vector>

namespace tune::bench {

// argv[1..] as sizes, or `defaults` when none are given.
inline std::vector<std::size_t> SizesFromArgs(int argc, char** argv,
                                              std::vector<std::size_t> defaults) {
  std::vector<std::size_t> sizes;
  for (int i = 1; i < argc; ++i) sizes.push_back(std::strtoull(argv[i], nullptr, 10));
  return sizes.empty() ? defaults : sizes;
}

// CPU seconds this thread has used.
inline double ThreadSeconds() {
  timespec now{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
  return static_cast<double>(now.tv_sec) + static_cast<double>(now.tv_nsec) * 1e-9;
}

}  // namespace tune::bench
