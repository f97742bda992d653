// ASHA's per-decision cost against the number of values recorded at a rung (issue 19): the
// plain cutoff that every decision used to compute (copy the rung's values out of its map, sort
// them, interpolate: core/numpy.h NanPercentile), the rung's order-statistics structure that
// replaced it (schedulers/streaming_percentile.h: Value, then Add of the judged trial's value),
// and a whole AshaScheduler::OnResult of a new trial at that rung. See bench/README.md.
//
// Usage: tune-bench-asha [SIZES...]   (default 1000 10000 100000)
// Each column is the mean time per decision over a batch of decisions at a rung that starts with
// SIZE values, the fastest of 5 runs of the batch, in CPU time of the thread.
//
// Usage: tune-bench-asha --experiment [TRIALS...]   (default 100000)
// The scale bench's experiment (bench/scale_bench.py) through the scheduler alone: TRIALS trials
// "t_00000", ... with 9 reports each (ASHA on training_iteration, max_t 9, grace 1, rf 3), 16 at
// once, each ending when stopped or at max_t. Prints the heap the scheduler holds per finished
// trial (glibc's mallinfo2, allocated bytes after minus before), and its resume snapshot: the
// size of SaveState()'s text, the CPU time of SaveState() + dump() and of parse + LoadState().
#include <algorithm>
#include <chrono>
#include <memory>
#include <optional>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <malloc.h>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "bench/bench_util.h"
#include "core/numpy.h"
#include "schedulers/asha.h"
#include "schedulers/streaming_percentile.h"

namespace tune {
namespace {

// CPU time of this thread: on the shared 2-core VM wall time mostly measures the neighbours.
struct Clock {
  using duration = std::chrono::nanoseconds;
  using time_point = std::chrono::nanoseconds;
  static time_point now() {
    timespec now{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
    return std::chrono::seconds(now.tv_sec) + std::chrono::nanoseconds(now.tv_nsec);
  }
};

constexpr double kReductionFactor = 4;
const double kQuantile = (1 - 1 / kReductionFactor) * 100;

volatile double sink = 0;  // keeps the cutoffs from being optimised away

double MicrosPer(Clock::duration elapsed, int count) {
  return std::chrono::duration<double, std::micro>(elapsed).count() / count;
}

// Accuracy-like values with ties (3 decimals) and a few NaN.
std::vector<double> Values(std::size_t count, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal(0.8, 0.05);
  std::vector<double> values;
  for (std::size_t i = 0; i < count; ++i) {
    values.push_back(i % 101 == 7 ? std::nan("") : std::round(normal(rng) * 1000) / 1000);
  }
  return values;
}

// What AshaScheduler::Cutoff did before: the rung's values by trial id, copied and sorted.
double PlainSortMicros(const std::vector<double>& recorded, const std::vector<double>& judged) {
  std::unordered_map<std::string, double> rung;
  for (std::size_t i = 0; i < recorded.size(); ++i) rung["t" + std::to_string(i)] = recorded[i];
  std::vector<std::string> ids;
  for (std::size_t i = 0; i < judged.size(); ++i) ids.push_back("n" + std::to_string(i));
  const Clock::time_point start = Clock::now();
  for (std::size_t i = 0; i < judged.size(); ++i) {
    std::vector<double> values;
    values.reserve(rung.size());
    for (const auto& entry : rung) values.push_back(entry.second);
    sink = sink + NanPercentile(std::move(values), kQuantile);
    rung[ids[i]] = judged[i];
  }
  return MicrosPer(Clock::now() - start, static_cast<int>(judged.size()));
}

double StreamingMicros(const std::vector<double>& recorded, const std::vector<double>& judged) {
  StreamingNanPercentile rung(kQuantile);
  for (double value : recorded) rung.Add(value);
  const Clock::time_point start = Clock::now();
  for (double value : judged) {
    sink = sink + rung.Value();
    rung.Add(value);
  }
  return MicrosPer(Clock::now() - start, static_cast<int>(judged.size()));
}

double SchedulerMicros(const std::vector<double>& recorded, const std::vector<double>& judged) {
  AshaOptions options;
  options.metric = "acc";
  options.max_t = 64;
  options.reduction_factor = kReductionFactor;
  AshaScheduler asha(options);
  auto result_of = [](double value) {
    Result result;
    result.training_iteration = 1;  // the lowest rung
    result.metrics["acc"] = value;
    return result;
  };
  for (std::size_t i = 0; i < recorded.size(); ++i) {
    asha.OnResult("t" + std::to_string(i), result_of(recorded[i]));
  }
  std::vector<std::string> ids;
  std::vector<Result> results;
  for (std::size_t i = 0; i < judged.size(); ++i) {
    ids.push_back("n" + std::to_string(i));
    results.push_back(result_of(judged[i]));
  }
  int stops = 0;
  const Clock::time_point start = Clock::now();
  for (std::size_t i = 0; i < judged.size(); ++i) {
    stops += asha.OnResult(ids[i], results[i]).kind == Decision::kStop;
  }
  const double micros = MicrosPer(Clock::now() - start, static_cast<int>(judged.size()));
  sink = sink + stops;
  return micros;
}

// The fastest of a few runs from the same start: on a shared VM the slower ones measure the
// neighbours.
double Fastest(double (*run)(const std::vector<double>&, const std::vector<double>&),
               const std::vector<double>& recorded, const std::vector<double>& judged) {
  constexpr int kRuns = 5;
  double best = run(recorded, judged);
  for (int i = 1; i < kRuns; ++i) best = std::min(best, run(recorded, judged));
  return best;
}

// Bytes the program has allocated and not freed (glibc).
double HeapBytes() { return static_cast<double>(mallinfo2().uordblks); }

AshaOptions ExperimentOptions() {
  AshaOptions options;
  options.metric = "acc";
  options.max_t = 9;
  options.grace_period = 1;
  options.reduction_factor = 3;
  return options;
}

void Experiment(std::size_t trials) {
  constexpr int kConcurrent = 16;
  const double heap_before = HeapBytes();
  auto asha = std::make_unique<AshaScheduler>(ExperimentOptions());
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> uniform(0, 1);
  struct Running {
    std::string id;
    std::int64_t iteration = 0;
    double skill = 0;
  };
  std::vector<Running> running;
  std::size_t started = 0, stops = 0;
  Result result;
  const double start = bench::ThreadSeconds();
  while (started < trials || !running.empty()) {
    while (running.size() < kConcurrent && started < trials) {
      char id[32];
      std::snprintf(id, sizeof id, "t_%05zu", started++);
      running.push_back(Running{id, 0, uniform(rng)});
      asha->OnTrialAdd(running.back().id);
    }
    for (std::size_t i = 0; i < running.size();) {
      Running& trial = running[i];
      result.training_iteration = ++trial.iteration;
      result.metrics["acc"] = trial.skill * (1 - 1.0 / static_cast<double>(trial.iteration + 1));
      const Decision decision = asha->OnResult(trial.id, result);
      if (decision.kind == Decision::kStop) {
        ++stops;
        asha->OnTrialComplete(trial.id, &result);
        running[i] = std::move(running.back());
        running.pop_back();
      } else {
        ++i;
      }
    }
  }
  const double run_seconds = bench::ThreadSeconds() - start;
  const double heap_after = HeapBytes();
  std::printf("| %zu | %.2f s | %zu | %.1f B |", trials, run_seconds, stops,
              (heap_after - heap_before) / static_cast<double>(trials));
  double save_seconds = bench::ThreadSeconds();
  const std::optional<Json> state = asha->SaveState();
  if (!state) {
    std::printf(" none (SaveState() is nullopt) | - | - |\n");
    return;
  }
  const std::string text = state->dump();
  save_seconds = bench::ThreadSeconds() - save_seconds;
  double load_seconds = bench::ThreadSeconds();
  AshaScheduler loaded(ExperimentOptions());
  loaded.LoadState(Json::parse(text));
  load_seconds = bench::ThreadSeconds() - load_seconds;
  const bool same = loaded.Describe() == asha->Describe();
  std::printf(" %.2f MB (%.1f B a trial) | %.1f ms | %.1f ms%s |\n", text.size() / 1e6,
              static_cast<double>(text.size()) / static_cast<double>(trials), save_seconds * 1e3,
              load_seconds * 1e3, same ? "" : " (Describe() differs!)");
}

}  // namespace
}  // namespace tune

int main(int argc, char** argv) {
  if (argc > 1 && std::string(argv[1]) == "--experiment") {
    std::vector<std::size_t> sizes;
    for (int i = 2; i < argc; ++i) sizes.push_back(std::strtoull(argv[i], nullptr, 10));
    if (sizes.empty()) sizes = {100000};
    std::printf(
        "ASHA in the scale bench's experiment (max_t 9, grace 1, rf 3, 9 reports a trial, 16 at "
        "once): scheduler heap per finished trial (mallinfo2), resume snapshot size and CPU time\n");
    std::printf(
        "| trials | run (CPU) | stops | heap per trial | SaveState text | SaveState + dump | "
        "parse + LoadState |\n|---|---|---|---|---|---|---|\n");
    for (std::size_t trials : sizes) tune::Experiment(trials);
    return 0;
  }
  const std::vector<std::size_t> sizes = tune::bench::SizesFromArgs(argc, argv, {1000, 10000, 100000});
  std::printf(
      "ASHA per-decision time (rf %.0f, q = %.0f): thread CPU time per decision, mean over the "
      "decisions timed, fastest of 5 runs\n",
      tune::kReductionFactor, tune::kQuantile);
  std::printf(
      "| values at the rung | plain sort (before) | streaming cutoff | "
      "AshaScheduler::OnResult |\n");
  std::printf("|---|---|---|---|\n");
  for (std::size_t size : sizes) {
    const std::vector<double> recorded = tune::Values(size, 1);
    // Enough decisions to time, few enough that the plain sort finishes in seconds; the rung
    // grows by them (at most 10 %), which the plain sort pays for and the others barely notice.
    const std::size_t plain_count = std::max<std::size_t>(
        20, std::min<std::size_t>(1000, 2000000 / std::max<std::size_t>(size, 1)));
    const std::vector<double> judged_plain = tune::Values(plain_count, 2);
    const std::vector<double> judged = tune::Values(std::max<std::size_t>(size / 10, 1000), 2);
    const double plain = tune::Fastest(tune::PlainSortMicros, recorded, judged_plain);
    const double streaming = tune::Fastest(tune::StreamingMicros, recorded, judged);
    const double scheduler = tune::Fastest(tune::SchedulerMicros, recorded, judged);
    std::printf("| %zu | %.2f µs | %.3f µs | %.3f µs |\n", size, plain, streaming, scheduler);
  }
  return 0;
}
