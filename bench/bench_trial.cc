// tune-bench-trial: the trial program of the tuner benchmarks (bench/README.md).
//
// Config: mode "sleep": `reports` reports spread evenly over `sleep_ms` milliseconds counted from
// the program's start (a trial of known length, for the bookkeeping-overhead benchmark). mode "flood": `reports` reports sent
// back to back, each waiting for its decision; the trial writes bench.json into its directory
// with its start/end wall times and round-trip latency percentiles. With TUNE_BENCH_TIMELINE set,
// a trial appends "<start> <end>" (steady clock, ns: its main() began, its last report was
// answered) to that file, from which bench/tuner_bench.py measures the gap between one trial's
// end and the next one's start.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <thread>
#include <vector>

#include "tuner/client/session.h"

int main() {
  using Clock = std::chrono::steady_clock;
  const Clock::time_point program_start = Clock::now();
  auto wall = [] {
    return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  };
  try {
    auto session = tune::Session::FromEnv();
    const tune::Json& config = session->config();
    std::string mode = config.value("mode", "sleep");
    int reports = config.value("reports", 1);
    double start_s = wall();
    if (mode == "sleep") {
      // Report k is due k * sleep_ms / reports after the program started, so the trial lasts
      // sleep_ms however late each sleep_for would wake up; what is added to that is the tuner's
      // (and the operating system's) doing.
      auto each = std::chrono::microseconds(
          static_cast<long>(config.value("sleep_ms", 1000.0) * 1000 / std::max(1, reports)));
      for (int i = 1; i <= reports; ++i) {
        std::this_thread::sleep_until(program_start + i * each);
        if (session->Report(i, {{"score", static_cast<double>(i)}}) == tune::Action::kStop) break;
      }
    } else {
      std::vector<double> latencies_us;
      latencies_us.reserve(reports);
      tune::Json metrics = {{"score", 0.0}, {"loss", 1.0}, {"epoch", 0}};
      for (int i = 1; i <= reports; ++i) {
        metrics["score"] = i * 0.001;
        metrics["epoch"] = i;
        auto begin = Clock::now();
        session->Report(i, metrics);
        latencies_us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - begin).count());
      }
      double end_s = wall();
      std::sort(latencies_us.begin(), latencies_us.end());
      auto at = [&](double q) { return latencies_us[static_cast<std::size_t>(q * (latencies_us.size() - 1))]; };
      const char* dir = std::getenv("TUNE_TRIAL_DIR");
      std::ofstream(std::string(dir ? dir : ".") + "/bench.json")
          << tune::Json{{"start_s", start_s}, {"end_s", end_s}, {"reports", reports},
                        {"p50_us", at(0.5)}, {"p99_us", at(0.99)}, {"max_us", latencies_us.back()}}
                 .dump();
    }
    session->Done();
    if (const char* timeline = std::getenv("TUNE_BENCH_TIMELINE")) {
      const auto ns = [](Clock::time_point at) {
        return static_cast<long long>(
            std::chrono::duration_cast<std::chrono::nanoseconds>(at.time_since_epoch()).count());
      };
      std::ofstream(timeline, std::ios::app)
          << ns(program_start) << ' ' << ns(Clock::now()) << '\n';  // one write(2), O_APPEND
    }
    return 0;
  } catch (const std::exception& error) {
    std::fprintf(stderr, "bench trial: %s\n", error.what());
    return 1;
  }
}
