// The median stopping rule's per-decision cost against the number of finished trials (issue 19).
// N trials ran 9 iterations each and completed; then new trials report iterations 1..9, 16 at a
// time, and each of their results is one timed decision (MedianStoppingRule::OnResult). Only the
// public API is used, so the same file measures the rule before the ranked trees (plain: every
// other trial's running mean and numpy's median per decision) and after. See bench/README.md.
//
// Usage: tune-bench-median [SIZES...]   (default 1000 10000 100000)
// Thread CPU time per decision, mean over the batch, fastest of 3 runs. Then the resume snapshot
// of the rule after the N finished trials: the size of SaveState()'s text, the CPU time of
// SaveState() + dump() and of parse + LoadState() (which rebuilds the ranked trees).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <random>
#include <string>
#include <vector>

#include "bench/bench_util.h"
#include "schedulers/median.h"

namespace tune {
namespace {

using bench::ThreadSeconds;

Result At(std::int64_t iteration, double acc) {
  Result result;
  result.training_iteration = iteration;
  result.metrics["acc"] = acc;
  return result;
}

MedianOptions Options() {
  MedianOptions options;
  options.metric = "acc";
  options.time_attr = "training_iteration";
  options.grace_period = 1;
  options.min_samples_required = 3;
  return options;
}

// `finished` trials report 9 iterations each and complete.
template <typename Value>
void Finish(MedianStoppingRule& median, std::size_t finished, Value& value) {
  for (std::size_t i = 0; i < finished; ++i) {
    const std::string id = "t" + std::to_string(i);
    median.OnTrialAdd(id);
    Result last;
    for (int iteration = 1; iteration <= 9; ++iteration) {
      last = At(iteration, value());
      median.OnResult(id, last);
    }
    median.OnTrialComplete(id, &last);
  }
}

// Microseconds per decision of `decisions` results of new trials, after `finished` trials.
double MicrosPerDecision(std::size_t finished, int decisions, std::uint64_t seed, int* stops) {
  MedianStoppingRule median(Options());
  std::mt19937_64 random(seed);
  std::normal_distribution<double> normal(0.8, 0.05);
  auto value = [&] { return std::round(normal(random) * 1000) / 1000; };  // ties
  Finish(median, finished, value);
  // New trials, 16 running at once, round robin over their iterations.
  std::vector<Result> results;
  std::vector<std::string> ids;
  for (int k = 0; k < decisions; ++k) {
    const int trial = k / 9 % 16 + 16 * (k / (9 * 16));
    ids.push_back("n" + std::to_string(trial));
    results.push_back(At(k % 9 + 1, value()));
  }
  for (int k = 0; k < decisions; k += 9) median.OnTrialAdd(ids[k]);
  const double start = ThreadSeconds();
  for (int k = 0; k < decisions; ++k) *stops += median.OnResult(ids[k], results[k]).kind != Decision::kContinue;
  return (ThreadSeconds() - start) * 1e6 / decisions;
}

// The snapshot after `finished` trials (and 16 running at their 5th iteration, so that the
// iterations have ranked trees): text size, save and load times.
void Snapshot(std::size_t finished) {
  MedianStoppingRule median(Options());
  std::mt19937_64 random(7);
  std::normal_distribution<double> normal(0.8, 0.05);
  auto value = [&] { return std::round(normal(random) * 1000) / 1000; };
  Finish(median, finished, value);
  for (int k = 0; k < 16 * 5; ++k) median.OnResult("n" + std::to_string(k % 16), At(k / 16 + 1, value()));
  double save = ThreadSeconds();
  const std::string text = median.SaveState()->dump();
  save = ThreadSeconds() - save;
  double parse = ThreadSeconds();
  const Json state = Json::parse(text);
  parse = ThreadSeconds() - parse;
  double load = ThreadSeconds();
  MedianStoppingRule loaded(Options());
  loaded.LoadState(state);
  load = ThreadSeconds() - load;
  std::printf("| %zu | %.2f MB (%.0f B a trial) | %.1f ms | %.1f ms + %.1f ms |\n", finished,
              text.size() / 1e6, static_cast<double>(text.size()) / static_cast<double>(finished),
              save * 1e3, parse * 1e3, load * 1e3);
  std::fflush(stdout);
}

}  // namespace
}  // namespace tune

int main(int argc, char** argv) {
  const std::vector<std::size_t> sizes = tune::bench::SizesFromArgs(argc, argv, {1000, 10000, 100000});
  std::printf("| finished trials | median rule decision (CPU) | stopped |\n|---|---|---|\n");
  for (std::size_t size : sizes) {
    // Fewer decisions where each costs a pass over every trial (the plain rule at 100k).
    const int decisions = size >= 100000 ? 144 : 1440;
    double best = 1e300;
    int stops = 0;
    for (int run = 0; run < 3; ++run) {
      stops = 0;
      best = std::min(best, tune::MicrosPerDecision(size, decisions, 7, &stops));
    }
    std::printf("| %zu | %.2f us | %d of %d |\n", size, best, stops, decisions);
    std::fflush(stdout);
  }
  std::printf("\n| finished trials | snapshot text | SaveState + dump | parse + LoadState |\n|---|---|---|---|\n");
  for (std::size_t size : sizes) tune::Snapshot(size);
  return 0;
}
