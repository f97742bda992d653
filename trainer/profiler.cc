#include "trainer/profiler.h"

#include <cstdio>

namespace tune {

std::string SimpleProfiler::Summary() const {
  double all = 0;
  for (const auto& entry : phases_) all += entry.total_s;
  std::string text = "Profiler report (SimpleProfiler)\n";
  char line[160];
  std::snprintf(line, sizeof line, "%-14s | %14s | %10s | %12s | %8s\n", "Action", "Mean (ms)",
                "Num calls", "Total (s)", "Percent");
  text += line;
  text += std::string(68, '-') + "\n";
  for (const auto& entry : phases_) {
    std::snprintf(line, sizeof line, "%-14s | %14.4f | %10lld | %12.4f | %7.1f%%\n", entry.name.c_str(),
                  entry.calls ? 1000.0 * entry.total_s / entry.calls : 0.0,
                  static_cast<long long>(entry.calls), entry.total_s,
                  all > 0 ? 100.0 * entry.total_s / all : 0.0);
    text += line;
  }
  std::snprintf(line, sizeof line, "%-14s | %14s | %10s | %12.4f | %7.1f%%\n", "Total", "", "", all, 100.0);
  text += line;
  return text;
}

}  // namespace tune
