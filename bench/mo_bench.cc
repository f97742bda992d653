// Multi-objective search quality and speed (bench/README-search.md, "Multi-objective"): runs
// tune's searchers sequentially on ZDT1, ZDT2, ZDT3 (30 variables, 2 objectives) and DTLZ2
// (12 variables, 3 objectives) and prints, per seed, one JSON line with every trial's objective
// values, the mean time of a Suggest() call and that of the last 10 calls (tail_ms).
// bench/peers/mo.py computes the hypervolumes (with Optuna's own routine, for both sides) and
// runs Optuna's samplers on the same problems.
//
//   tune-bench-mo PROBLEM SEARCH_JSON FIRST_SEED LAST_SEED TRIALS [VARIANTS]
//   tune-bench-mo zdt1 '{"algorithm": "tpe"}' 0 19 300
// VARIANTS (TPE only, search/tpe_internal.h), comma-separated: no-width-free
// (TpeInternalOptions::width_free_density off), single-objective-estimator (motpe_as_optuna
// off: MOTPE with the single-objective estimator, as before Optuna 5.0's was adopted).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "core/pareto.h"
#include "search/searcher.h"
#include "search/tpe_internal.h"

namespace {

using tune::Json;

constexpr double kPi = 3.14159265358979323846;

struct Problem {
  int variables;
  int objectives;
  std::vector<double> (*evaluate)(const std::vector<double>& x);
};

double ZdtG(const std::vector<double>& x) {
  double sum = 0;
  for (std::size_t i = 1; i < x.size(); ++i) sum += x[i];
  return 1 + 9 * sum / static_cast<double>(x.size() - 1);
}

std::vector<double> Zdt1(const std::vector<double>& x) {
  const double g = ZdtG(x);
  return {x[0], g * (1 - std::sqrt(x[0] / g))};
}

std::vector<double> Zdt2(const std::vector<double>& x) {
  const double g = ZdtG(x);
  return {x[0], g * (1 - (x[0] / g) * (x[0] / g))};
}

std::vector<double> Zdt3(const std::vector<double>& x) {
  const double g = ZdtG(x);
  const double r = x[0] / g;
  return {x[0], g * (1 - std::sqrt(r) - r * std::sin(10 * kPi * x[0]))};
}

std::vector<double> Dtlz2(const std::vector<double>& x) {
  double g = 0;
  for (std::size_t i = 2; i < x.size(); ++i) g += (x[i] - 0.5) * (x[i] - 0.5);
  const double a = x[0] * kPi / 2, b = x[1] * kPi / 2;
  return {(1 + g) * std::cos(a) * std::cos(b), (1 + g) * std::cos(a) * std::sin(b),
          (1 + g) * std::sin(a)};
}

// Held out from the tables, for choosing MOTPE's defaults on problems they are not reported on
// (bench/README-search.md): ZDT4 (10 variables, 21^9 local fronts; x_2..x_10 mapped from
// [0, 1] onto ZDT4's [-5, 5], optimum at the centre), ZDT6 (10 variables, non-uniform density,
// optimum at the lower bound), DTLZ1 (7 variables, 3 objectives, 11^5 - 1 local fronts, optimum
// at the centre), DTLZ7 (22 variables, 3 objectives, 4 disconnected regions, optimum at the
// lower bound).
std::vector<double> Zdt4(const std::vector<double>& x) {
  double g = 1 + 10 * static_cast<double>(x.size() - 1);
  for (std::size_t i = 1; i < x.size(); ++i) {
    const double v = 10 * x[i] - 5;
    g += v * v - 10 * std::cos(4 * kPi * v);
  }
  return {x[0], g * (1 - std::sqrt(x[0] / g))};
}

std::vector<double> Zdt6(const std::vector<double>& x) {
  double sum = 0;
  for (std::size_t i = 1; i < x.size(); ++i) sum += x[i];
  const double g = 1 + 9 * std::pow(sum / static_cast<double>(x.size() - 1), 0.25);
  const double f1 = 1 - std::exp(-4 * x[0]) * std::pow(std::sin(6 * kPi * x[0]), 6);
  return {f1, g * (1 - (f1 / g) * (f1 / g))};
}

std::vector<double> Dtlz1(const std::vector<double>& x) {
  double g = 0;
  for (std::size_t i = 2; i < x.size(); ++i) {
    g += (x[i] - 0.5) * (x[i] - 0.5) - std::cos(20 * kPi * (x[i] - 0.5));
  }
  g = 100 * (static_cast<double>(x.size() - 2) + g);
  return {0.5 * x[0] * x[1] * (1 + g), 0.5 * x[0] * (1 - x[1]) * (1 + g), 0.5 * (1 - x[0]) * (1 + g)};
}

std::vector<double> Dtlz7(const std::vector<double>& x) {
  double sum = 0;
  for (std::size_t i = 2; i < x.size(); ++i) sum += x[i];
  const double g = 1 + 9 * sum / static_cast<double>(x.size() - 2);
  double h = 3;
  for (std::size_t i = 0; i < 2; ++i) h -= x[i] / (1 + g) * (1 + std::sin(3 * kPi * x[i]));
  return {x[0], x[1], (1 + g) * h};
}

Problem Find(const std::string& name) {
  if (name == "zdt1") return {30, 2, Zdt1};
  if (name == "zdt2") return {30, 2, Zdt2};
  if (name == "zdt3") return {30, 2, Zdt3};
  if (name == "dtlz2") return {12, 3, Dtlz2};
  if (name == "zdt4") return {10, 2, Zdt4};
  if (name == "zdt6") return {10, 2, Zdt6};
  if (name == "dtlz1") return {7, 3, Dtlz1};
  if (name == "dtlz7") return {22, 3, Dtlz7};
  std::fprintf(stderr, "unknown problem %s (zdt1, zdt2, zdt3, dtlz2; held out: zdt4, zdt6, dtlz1, dtlz7)\n",
               name.c_str());
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 6 && argc != 7) {
    std::fprintf(stderr, "usage: %s PROBLEM SEARCH_JSON FIRST_SEED LAST_SEED TRIALS\n", argv[0]);
    return 2;
  }
  const Problem problem = Find(argv[1]);
  const Json search = Json::parse(argv[2]);
  const int first = std::stoi(argv[3]), last = std::stoi(argv[4]), trials = std::stoi(argv[5]);
  Json space = Json::object();
  auto name = [](int i) { return std::string(i < 10 ? "x0" : "x") + std::to_string(i); };
  for (int i = 0; i < problem.variables; ++i) space[name(i)] = {{"uniform", {0.0, 1.0}}};
  const tune::Space parsed = tune::ParseSpace(space);
  for (int seed = first; seed <= last; ++seed) {
    tune::SearcherOptions options;
    options.metric = "f0";
    options.mode = tune::Mode::kMin;
    for (int k = 0; k < problem.objectives; ++k) {
      options.objectives.push_back({"f" + std::to_string(k), tune::Mode::kMin});
    }
    options.num_samples = trials;
    options.seed = static_cast<std::uint64_t>(seed);
    options.algorithm = search;
    std::unique_ptr<tune::Searcher> searcher;
    if (argc == 7) {
      // Benchmark-only variants (search/tpe_internal.h), comma-separated: "no-width-free",
      // "single-objective-estimator" (MOTPE with the single-objective estimator, as before).
      const std::string variants = std::string(",") + argv[6] + ",";
      tune::TpeInternalOptions internal;
      internal.width_free_density = variants.find(",no-width-free,") == std::string::npos;
      internal.motpe_as_optuna = variants.find(",single-objective-estimator,") == std::string::npos;
      searcher = tune::MakeTpeSearcher(
          parsed, tune::ParseSearcherOptions(search, "search", options), internal);
    } else {
      searcher = tune::MakeSearcher(parsed, options);
    }
    Json values = Json::array();
    double suggest_s = 0, tail_s = 0;
    const int tail = std::min(trials, 10);
    for (int t = 0; t < trials; ++t) {
      const std::string id = "t" + std::to_string(t);
      const auto begin = std::chrono::steady_clock::now();
      tune::Suggestion suggestion = searcher->Suggest(id);
      const double spent = std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
      suggest_s += spent;
      if (t >= trials - tail) tail_s += spent;
      std::vector<double> x;
      for (int i = 0; i < problem.variables; ++i) x.push_back(suggestion.config[name(i)].get<double>());
      const std::vector<double> f = problem.evaluate(x);
      tune::Result result;
      result.training_iteration = 1;
      for (int k = 0; k < problem.objectives; ++k) result.metrics["f" + std::to_string(k)] = f[k];
      searcher->OnResult(id, result);
      searcher->OnComplete(id, tune::TrialStatus::kTerminated, &result);
      values.push_back(f);
    }
    Json line = {{"seed", seed}, {"values", values}, {"suggest_ms", 1e3 * suggest_s / trials},
                 {"tail_ms", 1e3 * tail_s / tail}};
    std::printf("%s\n", line.dump().c_str());
    std::fflush(stdout);
  }
  return 0;
}
