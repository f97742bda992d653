// Trial start-up: launch -> first training step, and memory per trial (issue 18, bench/README.md).
//
//   tune-bench-startup --trainer build/bin/tune-trainer [--concurrent 1,8] [--rounds 5]
//                      [--data data] [--warm 0|1]
//
// Launches tune-trainer (standalone: a config file, no tuner connection) through the tuner's own
// LocalLauncher, `concurrent` trials at a time, `rounds` times. Each trial trains one epoch of the
// race's MLP on Fashion-MNIST (60,000 images, 1 thread) and, with TUNE_LOG_FIRST_STEP=1, logs the
// wall clock of its first optimizer step. Latency = that clock - the clock just before Launch().
// The tuner's own cost: how long each Launch() call held its thread (the event loop waits
// meanwhile). Memory: every 25 ms the bench reads each running trial's VmRSS and its Pss (smaps_rollup:
// shared pages divided among the processes mapping them); per trial the peak of each, and per
// round the peak of the trials' summed Pss plus the warm trainer's, if any (what the concurrent
// trials cost the machine together). Each trial also logs the CPU time it had used at its first
// step (from its fork, for a warm one): the start-up's own work, which a busy machine inflates
// less than wall time.
// One trial runs first and is not counted (it builds the data cache on a fresh machine: "the
// data's first load ever"). --warm sets TUNE_WARM_START for the launcher (0 = plain spawn).
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include "tuner/launcher.h"

namespace fs = std::filesystem;

namespace {

std::int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// A "Name:   1234 kB" field of a /proc file, in MiB; 0 when absent (the process exited).
double ProcKb(const std::string& path, const std::string& name) {
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(name + ":", 0) == 0) return std::atof(line.c_str() + name.size() + 1) / 1024.0;
  }
  return 0;
}

double Percentile(std::vector<double> values, double q) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const double rank = q * static_cast<double>(values.size() - 1);
  const auto lo = static_cast<std::size_t>(rank);
  const std::size_t hi = std::min(lo + 1, values.size() - 1);
  return values[lo] + (values[hi] - values[lo]) * (rank - static_cast<double>(lo));
}

struct TrialRun {
  std::int64_t launched_ns = 0;
  fs::path log;
  double peak_rss = 0, peak_pss = 0, peak_anon = 0;
  bool done = false;
  bool ok = false;
};

// The "first step at <ns> ns, cpu <ms> ms" line of a trial's log: {ns, cpu ms}; ns 0 when missing.
std::pair<std::int64_t, double> FirstStep(const fs::path& log) {
  std::ifstream in(log);
  const std::string key = "tune-trainer: first step at ";
  for (std::string line; std::getline(in, line);) {
    if (auto at = line.find(key); at != std::string::npos) {
      const auto cpu = line.find("cpu ", at);
      return {std::stoll(line.substr(at + key.size())), cpu == std::string::npos ? 0.0 : std::stod(line.substr(cpu + 4))};
    }
  }
  return {0, 0.0};
}

struct RoundResult {
  std::vector<double> latency_ms, cpu_ms, rss, pss, anon;
  std::vector<double> launch_ms;  // how long Launch() held the tuner's thread
  double peak_total_pss = 0, peak_total_rss = 0;
};

// Runs `concurrent` trials at once to the end and measures them.
// One launcher for the whole run, as one tuner has (a warm launcher keeps its zygote).
RoundResult RunRound(boost::asio::io_context& io, tune::LocalLauncher& launcher, const std::string& trainer,
                     const fs::path& config, const fs::path& logs, int concurrent, int round) {
  io.restart();
  std::map<std::int64_t, TrialRun> trials;
  std::size_t remaining = 0;
  launcher.SetExitCallback([&](std::int64_t group, tune::ExitStatus status) {
    TrialRun& run = trials[group];
    run.done = true;
    run.ok = status.ok();
    if (--remaining == 0) io.stop();
  });
  RoundResult result;
  for (int i = 0; i < concurrent; ++i) {
    tune::LaunchRequest request;
    request.argv = {trainer, config.string()};
    const std::string id = "startup_" + std::to_string(round) + "_" + std::to_string(i);
    request.env = {{"TUNE_LOG_FIRST_STEP", "1"}, {"TUNE_TRIAL_ID", id}};
    request.stderr_path = logs / (id + ".log");
    request.stdout_path = request.stderr_path;
    fs::remove(request.stderr_path);
    const std::int64_t launched = NowNs();
    const std::int64_t pid = launcher.Launch({request});
    result.launch_ms.push_back(static_cast<double>(NowNs() - launched) / 1e6);
    trials[pid] = TrialRun{launched, request.stderr_path};
    ++remaining;
  }
  boost::asio::steady_timer sampler(io);
  std::function<void()> sample = [&] {
    double total_pss = 0, total_rss = 0;
    for (auto& [pid, run] : trials) {
      if (run.done) continue;
      const double rss = ProcKb("/proc/" + std::to_string(pid) + "/status", "VmRSS");
      const double pss = ProcKb("/proc/" + std::to_string(pid) + "/smaps_rollup", "Pss");
      run.peak_rss = std::max(run.peak_rss, rss);
      run.peak_pss = std::max(run.peak_pss, pss);
      run.peak_anon = std::max(run.peak_anon, ProcKb("/proc/" + std::to_string(pid) + "/status", "RssAnon"));
      total_pss += pss;
      total_rss += rss;
    }
    // The warm trainer holds its share of the pages the trials share with it (LibTorch, data).
    for (std::int64_t zygote : launcher.ZygotePids()) {
      total_pss += ProcKb("/proc/" + std::to_string(zygote) + "/smaps_rollup", "Pss");
      total_rss += ProcKb("/proc/" + std::to_string(zygote) + "/status", "VmRSS");
    }
    result.peak_total_pss = std::max(result.peak_total_pss, total_pss);
    result.peak_total_rss = std::max(result.peak_total_rss, total_rss);
    sampler.expires_after(std::chrono::milliseconds(25));
    sampler.async_wait([&](const boost::system::error_code& error) {
      if (!error) sample();
    });
  };
  sample();
  io.run();
  sampler.cancel();
  for (auto& [pid, run] : trials) {
    const auto [first, cpu_ms] = FirstStep(run.log);
    if (!run.ok || first == 0) {
      std::fprintf(stderr, "startup_bench: trial %lld failed or logged no first step; see %s\n",
                   static_cast<long long>(pid), run.log.c_str());
      std::exit(1);
    }
    result.latency_ms.push_back(static_cast<double>(first - run.launched_ns) / 1e6);
    result.cpu_ms.push_back(cpu_ms);
    result.rss.push_back(run.peak_rss);
    result.pss.push_back(run.peak_pss);
    result.anon.push_back(run.peak_anon);
  }
  return result;
}

std::vector<int> ParseList(const std::string& text) {
  std::vector<int> values;
  std::stringstream in(text);
  for (std::string item; std::getline(in, item, ',');) values.push_back(std::stoi(item));
  return values;
}

}  // namespace

int main(int argc, char** argv) {
  std::string trainer = "build/bin/tune-trainer", data = "data", warm;
  std::vector<int> concurrency = {1, 8};
  int rounds = 5;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string key = argv[i], value = argv[i + 1];
    if (key == "--trainer") trainer = value;
    else if (key == "--concurrent") concurrency = ParseList(value);
    else if (key == "--rounds") rounds = std::stoi(value);
    else if (key == "--data") data = value;
    else if (key == "--warm") warm = value;
    else {
      std::fprintf(stderr, "usage: tune-bench-startup [--trainer PATH] [--concurrent 1,8] [--rounds 5] "
                           "[--data DIR] [--warm 0|1]\n");
      return 2;
    }
  }
  if (!warm.empty()) ::setenv("TUNE_WARM_START", warm.c_str(), 1);
  const fs::path work = fs::temp_directory_path() / ("tune-startup-bench-" + std::to_string(::getpid()));
  fs::create_directories(work);
  const fs::path config = work / "config.json";
  std::ofstream(config) << R"({"dataset": "fashion_mnist", "data_dir": ")" << fs::absolute(data).string()
                        << R"(", "model": {"type": "mlp", "activation": "relu", "hidden": 128, "layers": 2},)"
                        << R"( "max_epochs": 1, "threads": 1, "batch_size": 128, "precision": "32"})";
  trainer = fs::absolute(trainer).string();
  boost::asio::io_context io;
  tune::LocalLauncher launcher(io);
  RunRound(io, launcher, trainer, config, work, 1, -1);  // first load ever (the data cache), not counted
  std::printf("trainer %s, TUNE_WARM_START=%s, %d rounds\n", trainer.c_str(), warm.empty() ? "(unset)" : warm.c_str(),
              rounds);
  std::printf("| concurrent | trials | launch->first step p50 | p99 | max | trial's CPU time to first step p50 "
              "| peak RSS/trial p50 | of which anonymous | peak PSS/trial p50 | peak summed PSS | peak summed RSS "
              "| tuner's Launch() p50 | max |\n"
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
  for (int n : concurrency) {
    RoundResult all;
    for (int r = 0; r < rounds; ++r) {
      RoundResult one = RunRound(io, launcher, trainer, config, work, n, r);
      all.latency_ms.insert(all.latency_ms.end(), one.latency_ms.begin(), one.latency_ms.end());
      all.launch_ms.insert(all.launch_ms.end(), one.launch_ms.begin(), one.launch_ms.end());
      all.cpu_ms.insert(all.cpu_ms.end(), one.cpu_ms.begin(), one.cpu_ms.end());
      all.rss.insert(all.rss.end(), one.rss.begin(), one.rss.end());
      all.pss.insert(all.pss.end(), one.pss.begin(), one.pss.end());
      all.anon.insert(all.anon.end(), one.anon.begin(), one.anon.end());
      all.peak_total_pss = std::max(all.peak_total_pss, one.peak_total_pss);
      all.peak_total_rss = std::max(all.peak_total_rss, one.peak_total_rss);
    }
    std::printf("| %d | %zu | %.1f ms | %.1f ms | %.1f ms | %.1f ms | %.0f MiB | %.0f MiB | %.0f MiB | %.0f MiB | %.0f MiB "
                "| %.2f ms | %.2f ms |\n",
                n, all.latency_ms.size(), Percentile(all.latency_ms, 0.5), Percentile(all.latency_ms, 0.99),
                Percentile(all.latency_ms, 1.0), Percentile(all.cpu_ms, 0.5), Percentile(all.rss, 0.5), Percentile(all.anon, 0.5),
                Percentile(all.pss, 0.5),
                all.peak_total_pss, all.peak_total_rss, Percentile(all.launch_ms, 0.5),
                Percentile(all.launch_ms, 1.0));
    std::fflush(stdout);
  }
  fs::remove_all(work);
  return 0;
}
