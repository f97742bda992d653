// TPE benchmark: search quality (regret) on the functions of
// /work/shared/baselines/optuna/bench_quality.py, time per suggestion, and a multi-fidelity run
// under ASHA. Prints tables; see bench/README-tpe.md.
//
// Usage: tune-bench-tpe [quality|speed|fidelity|all] [seeds=20] [only=SUBSTRING] [first_seed=0]
//        tune-bench-tpe speed-at SEARCH_JSON N1,N2,... [WINDOW]   (any searcher; see SpeedAt)
//        tune-bench-tpe snapshot [SEARCH_JSON] [N1,N2,...]   (resume snapshots; see Snapshot)
//        tune-bench-tpe tune FIRST_SEED SEEDS TRIALS SEARCH_JSON...   (variant selection; set
//        TUNE_ONLY=mixed to run one function). "x_..." keys in a search object ("x_width_free",
//        "x_subsample_mode", ...) set the switches of search/tpe_internal.h (TakeTpeInternalKeys).
// `only` keeps the runs whose "/function/sampler/" contains it, e.g. "/tpe/" (univariate TPE
// only) or "/branin/" (speed runs are named "/speed/sampler/"). For speed, a seeds argument
// >= 100 is the largest trial count to time (tune-bench-tpe speed 2000 /speed/tpe/).
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "bench/bench_util.h"
#include "schedulers/scheduler.h"
#include "search/searcher.h"
#include "search/space.h"
#include "search/tpe_internal.h"

namespace tune {
namespace {

constexpr double kPi = 3.14159265358979323846;

struct Problem {
  const char* name;
  const char* space;
  std::function<double(const Json&)> f;
  double minimum;
};

double Branin(const Json& c) {
  double x1 = c["x1"], x2 = c["x2"];
  double b = 5.1 / (4 * kPi * kPi), cc = 5.0 / kPi, t = 1.0 / (8 * kPi);
  return std::pow(x2 - b * x1 * x1 + cc * x1 - 6, 2) + 10 * (1 - t) * std::cos(x1) + 10;
}

double Hartmann6(const Json& c) {
  static const double alpha[4] = {1.0, 1.2, 3.0, 3.2};
  static const double a[4][6] = {{10, 3, 17, 3.5, 1.7, 8},
                                 {0.05, 10, 17, 0.1, 8, 14},
                                 {3, 3.5, 1.7, 10, 17, 8},
                                 {17, 8, 0.05, 10, 0.1, 14}};
  static const double p[4][6] = {{1312, 1696, 5569, 124, 8283, 5886},
                                 {2329, 4135, 8307, 3736, 1004, 9991},
                                 {2348, 1451, 3522, 2883, 3047, 6650},
                                 {4047, 8828, 8732, 5743, 1091, 381}};
  double sum = 0;
  for (int i = 0; i < 4; ++i) {
    double inner = 0;
    for (int j = 0; j < 6; ++j) {
      double x = c["x" + std::to_string(j)];
      inner += a[i][j] * std::pow(x - 1e-4 * p[i][j], 2);
    }
    sum += alpha[i] * std::exp(-inner);
  }
  return -sum;
}

double Rosenbrock4(const Json& c) {
  double x[4];
  for (int i = 0; i < 4; ++i) x[i] = c["x" + std::to_string(i)];
  double sum = 0;
  for (int i = 0; i < 3; ++i) sum += 100 * std::pow(x[i + 1] - x[i] * x[i], 2) + std::pow(1 - x[i], 2);
  return sum;
}

double Ackley5(const Json& c) {
  double sq = 0, cs = 0;
  for (int i = 0; i < 5; ++i) {
    double x = c["x" + std::to_string(i)];
    sq += x * x;
    cs += std::cos(2 * kPi * x);
  }
  return -20 * std::exp(-0.2 * std::sqrt(sq / 5)) - std::exp(cs / 5) + 20 + std::exp(1.0);
}

double Mixed(const Json& c) {
  static const std::map<std::string, double> off = {
      {"relu", 0.0}, {"tanh", 0.5}, {"sigmoid", 1.0}, {"linear", 2.0}};
  static const std::map<std::string, double> cen = {
      {"relu", 2.0}, {"tanh", -1.0}, {"sigmoid", 0.0}, {"linear", 3.0}};
  std::string act = c["act"];
  double x = c["x"], lr = c["lr"];
  double n = c["n"].get<double>();
  return off.at(act) + std::pow(x - cen.at(act), 2) + std::pow(std::log10(lr) + 2 + 0.1 * (n - 6), 2) +
         0.05 * std::pow(n - 11, 2);
}

std::vector<Problem> Problems() {
  return {
      {"branin", R"({"x1": {"uniform": [-5, 10]}, "x2": {"uniform": [0, 15]}})", Branin,
       0.397887357729738},
      {"hartmann6",
       R"({"x0": {"uniform": [0, 1]}, "x1": {"uniform": [0, 1]}, "x2": {"uniform": [0, 1]},
           "x3": {"uniform": [0, 1]}, "x4": {"uniform": [0, 1]}, "x5": {"uniform": [0, 1]}})",
       Hartmann6, -3.32236801141551},
      {"rosenbrock4",
       R"({"x0": {"uniform": [-5, 10]}, "x1": {"uniform": [-5, 10]}, "x2": {"uniform": [-5, 10]},
           "x3": {"uniform": [-5, 10]}})",
       Rosenbrock4, 0.0},
      {"ackley5",
       R"({"x0": {"uniform": [-32.768, 32.768]}, "x1": {"uniform": [-32.768, 32.768]},
           "x2": {"uniform": [-32.768, 32.768]}, "x3": {"uniform": [-32.768, 32.768]},
           "x4": {"uniform": [-32.768, 32.768]}})",
       Ackley5, 0.0},
      // Optuna's suggest_int("n", 1, 16) is inclusive: randint [1, 17).
      {"mixed",
       R"({"x": {"uniform": [-5, 5]}, "lr": {"loguniform": [1e-4, 1]}, "n": {"randint": [1, 17]},
           "act": {"choice": ["relu", "tanh", "sigmoid", "linear"]}})",
       Mixed, 0.0},
  };
}

// Sequential trials: `trials` suggestions, each evaluated on `problem` and told back as
// finished; after trial t (1-based) calls on_trial(t, best value so far). Returns the best value.
template <typename OnTrial>
double Minimise(Searcher& searcher, const Problem& problem, int trials, OnTrial on_trial) {
  double best = INFINITY;
  for (int t = 1; t <= trials; ++t) {
    std::string id = "t" + std::to_string(t);
    Json config = searcher.Suggest(id).config;
    Result result;
    result.training_iteration = 1;
    double value = problem.f(config);
    result.metrics["loss"] = value;
    searcher.OnResult(id, result);
    searcher.OnComplete(id, TrialStatus::kTerminated, &result);
    best = std::min(best, value);
    on_trial(t, best);
  }
  return best;
}

struct Variant {
  const char* name;
  const char* search;  // the "search" object, seed added
};

std::unique_ptr<Searcher> Make(const Space& space, const Variant& variant, std::uint64_t seed,
                               std::int64_t trials, std::int64_t concurrent = 1) {
  const SearcherContext context{"loss", Mode::kMin, trials, concurrent, seed};
  Json search = Json::parse(variant.search);
  // Internal switches (search/tpe_internal.h; no space.json key): "x_..." keys.
  bool has_internal = false;
  TpeInternalOptions internal;
  try {
    internal = TakeTpeInternalKeys(&search, &has_internal);
  } catch (const std::invalid_argument& error) {
    std::fprintf(stderr, "%s\n", error.what());
    std::exit(2);
  }
  SearcherConfig config = ParseSearcherOptions(search, "search", context);
  if (!has_internal) return MakeSearcher(space, config);
  return MakeTpeSearcher(space, config, internal);
}

double Quantile(std::vector<double> values, double q) {
  std::sort(values.begin(), values.end());
  double pos = q * static_cast<double>(values.size() - 1);
  auto lo = static_cast<std::size_t>(std::floor(pos));
  std::size_t hi = std::min(lo + 1, values.size() - 1);
  return values[lo] + (pos - static_cast<double>(lo)) * (values[hi] - values[lo]);
}

std::string Cell(const std::vector<double>& values) {
  char text[64];
  std::snprintf(text, sizeof text, "%.4g [%.3g-%.3g]", Quantile(values, 0.5), Quantile(values, 0.25),
                Quantile(values, 0.75));
  return text;
}

bool Keep(const std::string& only, const char* function, const char* sampler) {
  return (std::string("/") + function + "/" + sampler + "/").find(only) != std::string::npos;
}

void Quality(int seeds, const std::vector<Variant>& variants, const std::string& only,
             int first_seed = 0) {
  const std::vector<int> checkpoints = {25, 50, 100, 200};
  std::printf("## Regret: median [IQR] over %d seeds %d..%d (sequential trials)\n\n", seeds,
              first_seed, first_seed + seeds - 1);
  std::printf("| function | sampler | 25 | 50 | 100 | 200 |\n|---|---|---|---|---|---|\n");
  for (const Problem& problem : Problems()) {
    Space space = ParseSpace(Json::parse(problem.space));
    for (const Variant& variant : variants) {
      if (!Keep(only, problem.name, variant.name)) continue;
      std::vector<std::vector<double>> at(checkpoints.size());
      for (int seed = first_seed; seed < first_seed + seeds; ++seed) {
        auto searcher = Make(space, variant, static_cast<std::uint64_t>(seed), 200);
        Minimise(*searcher, problem, 200, [&](int t, double best) {
          for (std::size_t c = 0; c < checkpoints.size(); ++c) {
            if (t == checkpoints[c]) at[c].push_back(best - problem.minimum);
          }
        });
      }
      std::printf("| %s | %s |", problem.name, variant.name);
      for (const auto& values : at) std::printf(" %s |", Cell(values).c_str());
      std::printf("\n");
      std::fflush(stdout);
    }
  }
  std::printf("\n");
}

// Variant selection: for each variant (a "search" object), the median regret at `trials` over
// seeds first_seed.. on each function, and the mean log10 regret (less noisy than the median).
void Tune(int first_seed, int seeds, int trials, const std::vector<std::string>& searches) {
  const std::vector<Problem> problems = Problems();
  std::printf("## Median regret at %d trials, seeds %d..%d (mean log10 regret) [IQR]\n\n",
              trials, first_seed, first_seed + seeds - 1);
  std::printf("| variant |");
  for (const Problem& problem : problems) std::printf(" %s |", problem.name);
  std::printf("\n|---|---|---|---|---|---|\n");
  for (const std::string& search : searches) {
    std::printf("| `%s` |", search.c_str());
    for (const Problem& problem : problems) {
      const char* only = std::getenv("TUNE_ONLY");  // a function name, to tune on one
      if (only != nullptr && std::strcmp(only, problem.name) != 0) {
        std::printf(" - |");
        continue;
      }
      Space space = ParseSpace(Json::parse(problem.space));
      Variant variant{"", search.c_str()};
      std::vector<double> regrets;
      double log_sum = 0;
      for (int seed = first_seed; seed < first_seed + seeds; ++seed) {
        auto searcher = Make(space, variant, static_cast<std::uint64_t>(seed), trials);
        const double best = Minimise(*searcher, problem, trials, [](int, double) {});
        regrets.push_back(best - problem.minimum);
        log_sum += std::log10(std::max(best - problem.minimum, 1e-12));
        if (std::getenv("TUNE_REGRETS") != nullptr) {  // per seed, for bench/peers/search.py
          std::fprintf(stderr, "REGRET %s %d %.17g\n", problem.name, seed, best - problem.minimum);
        }
      }
      std::printf(" %.4g (%.3f) [%.3g-%.3g] |", Quantile(regrets, 0.5), log_sum / seeds,
                  Quantile(regrets, 0.25), Quantile(regrets, 0.75));
      std::fflush(stdout);
    }
    std::printf("\n");
  }
  std::printf("\n");
}

// tune-bench-tpe constrained SEARCH_JSON FIRST_SEED SEEDS TRIALS: minimise x^2 + y^2 on
// [-2, 2]^2 subject to x + y >= 1 (reported as the metric "s"; optimum 0.5 at (0.5, 0.5)), the
// problem of tests/search/gp_test.cc. One line per seed: "CONSTRAINED seed best_feasible
// feasible_trials" (best_feasible inf when no trial is feasible). bench/peers/search.py runs
// Optuna's GPSampler(constraints_func=...) on the same problem.
void Constrained(const std::string& search, int first_seed, int seeds, int trials) {
  const Space space = ParseSpace(
      Json::parse(R"({"x": {"uniform": [-2, 2]}, "y": {"uniform": [-2, 2]}})"));
  for (int seed = first_seed; seed < first_seed + seeds; ++seed) {
    SearcherContext context{"loss", Mode::kMin, trials, 1, static_cast<std::uint64_t>(seed)};
    context.constraints = ParseConstraints(Json::array({"s >= 1"}));
    auto searcher = MakeSearcher(space, ParseSearcherOptions(Json::parse(search), "search", context));
    double best = INFINITY;
    int feasible = 0;
    for (int t = 1; t <= trials; ++t) {
      const std::string id = "t" + std::to_string(t);
      const Json config = searcher->Suggest(id).config;
      const double x = config["x"].get<double>(), y = config["y"].get<double>();
      Result result;
      result.training_iteration = 1;
      result.metrics["loss"] = x * x + y * y;
      result.metrics["s"] = x + y;
      searcher->OnResult(id, result);
      searcher->OnComplete(id, TrialStatus::kTerminated, &result);
      if (x + y >= 1) {
        ++feasible;
        best = std::min(best, x * x + y * y);
      }
    }
    std::printf("CONSTRAINED %d %.17g %d\n", seed, best, feasible);
    std::fflush(stdout);
  }
}

double ThreadCpuMs() { return bench::ThreadSeconds() * 1e3; }

// The 6-parameter space of bench_sampler_speed.py.
const char* kSpeedSpace = R"({
  "lr": {"loguniform": [1e-5, 1e-1]}, "wd": {"loguniform": [1e-6, 1e-2]},
  "u1": {"uniform": [-5, 5]}, "u2": {"uniform": [0, 1]}, "n": {"randint": [1, 65]},
  "c": {"choice": ["a", "b", "c", "d"]}})";

double SpeedObjective(const Json& c) {
  static const std::map<std::string, double> off = {{"a", 0}, {"b", 0.3}, {"c", 0.6}, {"d", 1}};
  double lr = c["lr"], wd = c["wd"], u1 = c["u1"], u2 = c["u2"];
  double n = c["n"].get<double>();
  return std::pow(std::log10(lr) + 3, 2) + std::pow(std::log10(wd) + 4, 2) + std::pow(u1 - 1, 2) +
         std::pow(u2 - 0.25, 2) + 0.01 * std::pow(n - 20, 2) + off.at(c["c"].get<std::string>());
}

void Speed(const std::vector<Variant>& variants, const std::string& only, int last) {
  std::vector<int> checkpoints;
  for (int cp : {100, 500, 1000, 2000, 5000}) {
    if (cp <= last) checkpoints.push_back(cp);
  }
  const int total = checkpoints.back();
  constexpr int kWindow = 50;
  std::printf("## Time per suggestion (ms) over the %d trials ending at N: wall-clock mean "
              "(median), then mean thread CPU time (not inflated by preemption on a loaded "
              "machine)\n\n",
              kWindow);
  std::printf("| sampler |");
  for (int cp : checkpoints) std::printf(" %d |", cp);
  std::printf("\n|---|");
  for (std::size_t i = 0; i < checkpoints.size(); ++i) std::printf("---|");
  std::printf("\n");
  Space space = ParseSpace(Json::parse(kSpeedSpace));
  std::vector<std::string> fingerprints;
  for (const Variant& variant : variants) {
    if (!Keep(only, "speed", variant.name)) continue;
    auto searcher = Make(space, variant, 0, total);
    std::vector<double> ms, cpu_ms;
    std::uint64_t fingerprint = 1469598103934665603ULL;  // FNV-1a of every config, in order
    for (int t = 1; t <= total; ++t) {
      std::string id = "t" + std::to_string(t);
      auto start = std::chrono::steady_clock::now();
      const double cpu_start = ThreadCpuMs();
      Json config = searcher->Suggest(id).config;
      ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() -
                                                             start)
                       .count());
      cpu_ms.push_back(ThreadCpuMs() - cpu_start);
      for (char ch : config.dump()) {
        fingerprint = (fingerprint ^ static_cast<unsigned char>(ch)) * 1099511628211ULL;
      }
      Result result;
      result.training_iteration = 1;
      result.metrics["loss"] = SpeedObjective(config);
      searcher->OnResult(id, result);
      searcher->OnComplete(id, TrialStatus::kTerminated, &result);
    }
    std::printf("| %s |", variant.name);
    for (int cp : checkpoints) {
      std::vector<double> window(ms.begin() + (cp - kWindow), ms.begin() + cp);
      double sum = 0, cpu = 0;
      for (double v : window) sum += v;
      for (int i = cp - kWindow; i < cp; ++i) cpu += cpu_ms[static_cast<std::size_t>(i)];
      std::printf(" %.3f (%.3f) %.3f |", sum / kWindow, Quantile(window, 0.5), cpu / kWindow);
    }
    std::printf("\n");
    // The same fingerprint before and after a change that should not alter any suggestion.
    fingerprints.push_back(fmt::format("{} {:016x}", variant.name, fingerprint));
    std::fflush(stdout);
  }
  std::printf("\n");
  for (const std::string& line : fingerprints) std::printf("configs fingerprint: %s\n", line.c_str());
}

// Time per suggestion of any searcher at history sizes `points` (bench/README-search.md): for
// each N, a searcher whose first N trials are random ("n_startup_trials": N, untimed), one
// untimed model-based suggestion (the GP's first fit starts cold; in a real run every later fit
// starts from the previous one), then `window` timed Suggest() calls, each told its value before
// the next. The same procedure runs on Optuna's side (bench/peers/search.py), so CMA-ES and GP
// are timed with N trials of history without paying for N model-based suggestions first.
// Prints "SPEED N wall_ms cpu_ms" lines.
void SpeedAt(const std::string& search, const std::vector<int>& points, int window) {
  Space space = ParseSpace(Json::parse(kSpeedSpace));
  for (int n : points) {
    Json object = Json::parse(search);
    object["n_startup_trials"] = n;
    Variant variant{"", nullptr};
    const std::string text = object.dump();
    variant.search = text.c_str();
    auto searcher = Make(space, variant, 0, n + 1 + window);
    double wall = 0, cpu = 0;
    for (int t = 0; t < n + 1 + window; ++t) {
      std::string id = "t" + std::to_string(t);
      auto start = std::chrono::steady_clock::now();
      const double cpu_start = ThreadCpuMs();
      Json config = searcher->Suggest(id).config;
      if (t > n) {
        wall += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
                    .count();
        cpu += ThreadCpuMs() - cpu_start;
      }
      Result result;
      result.training_iteration = 1;
      result.metrics["loss"] = SpeedObjective(config);
      searcher->OnResult(id, result);
      searcher->OnComplete(id, TrialStatus::kTerminated, &result);
    }
    std::printf("SPEED %d %.4f %.4f\n", n, wall / window, cpu / window);
    std::fflush(stdout);
  }
}

// Resume snapshots (issue 19, core/state.h): the size of a TPE searcher's SaveState()
// and its cost both ways at `sizes` trials of history. A real run of 2,000 trials (9 reports each
// at most; 15 % pruned after 3, 5 % failed, 4 running at the end) gives the trials' columns; they
// are repeated up to each size (ids renumbered) and loaded into a fresh searcher, so the numbers
// are those of a real history of that size without paying for 100,000 suggestions. Prints
// "SNAPSHOT N bytes save_ms dump_ms parse_ms load_ms suggest_ms" lines (thread CPU, best of 3;
// suggest: the first Suggest() after loading).
void Snapshot(const std::string& search, const std::vector<int>& sizes) {
  constexpr int kRun = 2000, kReports = 9, kRunning = 4;
  Space space = ParseSpace(Json::parse(kSpeedSpace));
  const int samples = std::max(kRun, *std::max_element(sizes.begin(), sizes.end())) + 10;
  const Variant variant{"", search.c_str()};
  std::unique_ptr<Searcher> run = Make(space, variant, 0, samples);
  std::mt19937_64 rng(1);
  std::uniform_real_distribution<double> unit(0, 1);
  for (int t = 0; t < kRun; ++t) {
    const std::string id = "t" + std::to_string(t);
    const Json config = run->Suggest(id).config;
    if (t >= kRun - kRunning) continue;
    const double fate = unit(rng);
    const int reports = fate < 0.05 ? 1 : fate < 0.2 ? 3 : kReports;
    Result result;
    for (int r = 1; r <= reports; ++r) {
      result.training_iteration = r;
      result.metrics["loss"] = SpeedObjective(config) + 1.0 / r;
      run->OnResult(id, result);
    }
    const TrialStatus status = fate < 0.05  ? TrialStatus::kError
                               : fate < 0.2 ? TrialStatus::kStopped
                                            : TrialStatus::kTerminated;
    run->OnComplete(id, status, &result);
  }
  const Json base = *run->SaveState();
  const Json& model = base["model"];
  // Per trial: how many numbers of each column it has.
  const std::size_t dims = model["x"].size() / kRun, objectives = model["losses"].size() / kRun;
  std::vector<std::size_t> curve_at(kRun + 1, 0);
  for (int t = 0; t < kRun; ++t) curve_at[t + 1] = curve_at[t] + 2 * model["curve_length"][t].get<std::size_t>();
  auto ms = [](double seconds) { return seconds * 1000; };
  for (int n : sizes) {
    Json state = base;
    Json& m = state["model"];
    for (const char* key : {"ids", "state", "x", "curve_length", "curve", "losses", "violation"}) {
      m[key] = Json::array();
    }
    for (int i = 0; i < n; ++i) {
      const int t = i % kRun;
      m["ids"].push_back(fmt::format("t_{:06d}", i));
      m["state"].push_back(model["state"][t]);
      for (std::size_t d = 0; d < dims; ++d) m["x"].push_back(model["x"][t * dims + d]);
      m["curve_length"].push_back(model["curve_length"][t]);
      for (std::size_t k = curve_at[t]; k < curve_at[t + 1]; ++k) m["curve"].push_back(model["curve"][k]);
      for (std::size_t k = 0; k < objectives; ++k) m["losses"].push_back(model["losses"][t * objectives + k]);
      m["violation"].push_back(model["violation"][t]);
    }
    state["suggested"] = n;
    std::unique_ptr<Searcher> searcher = Make(space, variant, 0, samples);
    searcher->LoadState(state);
    double save = 1e30, dump = 1e30, parse = 1e30, load = 1e30;
    std::string text;
    for (int repeat = 0; repeat < 3; ++repeat) {
      double start = bench::ThreadSeconds();
      const Json saved = *searcher->SaveState();
      const double saved_at = bench::ThreadSeconds();
      text = saved.dump();
      const double dumped_at = bench::ThreadSeconds();
      save = std::min(save, saved_at - start);
      dump = std::min(dump, dumped_at - saved_at);
      std::unique_ptr<Searcher> fresh = Make(space, variant, 0, samples);
      start = bench::ThreadSeconds();
      const Json parsed = Json::parse(text);
      const double parsed_at = bench::ThreadSeconds();
      fresh->LoadState(parsed);
      const double loaded_at = bench::ThreadSeconds();
      parse = std::min(parse, parsed_at - start);
      load = std::min(load, loaded_at - parsed_at);
      if (fresh->SaveState()->dump() != text) {
        std::fprintf(stderr, "snapshot at %d trials does not read back equal\n", n);
        std::exit(1);
      }
    }
    const double start = bench::ThreadSeconds();
    searcher->Suggest("next");
    const double suggest = bench::ThreadSeconds() - start;
    std::printf("SNAPSHOT %d %zu %.1f %.1f %.1f %.1f %.1f\n", n, text.size(), ms(save), ms(dump),
                ms(parse), ms(load), ms(suggest));
    std::fflush(stdout);
  }
}

// Multi-fidelity: a trial's loss at iteration t is f(x) plus a transient that decays with t at
// a rate that depends on the config (so early rankings are informative but not exact).
void Fidelity(int seeds) {
  constexpr int kMaxT = 27, kConcurrent = 8, kBudget = 60 * kMaxT;
  const std::vector<Variant> variants = {
      {"random", R"({"algorithm": "random"})"},
      {"tpe (last value)", R"({"algorithm": "tpe", "intermediate": "last"})"},
      {"tpe (rank, Optuna)", R"({"algorithm": "tpe", "intermediate": "rank"})"},
      {"tpe (budget, BOHB)", R"({"algorithm": "tpe", "intermediate": "budget"})"},
  };
  std::printf("## Multi-fidelity: ASHA (max_t %d, rf 3), %d concurrent, %d iterations in all; "
              "regret of the best trial that reached max_t, median [IQR] over %d seeds\n\n",
              kMaxT, kConcurrent, kBudget, seeds);
  std::printf("| function | sampler | regret | trials |\n|---|---|---|---|\n");
  for (const Problem& problem : Problems()) {
    if (std::strcmp(problem.name, "hartmann6") != 0 && std::strcmp(problem.name, "mixed") != 0 &&
        std::strcmp(problem.name, "branin") != 0) {
      continue;
    }
    Space space = ParseSpace(Json::parse(problem.space));
    for (const Variant& variant : variants) {
      std::vector<double> regrets, counts;
      for (int seed = 0; seed < seeds; ++seed) {
        auto searcher = Make(space, variant, static_cast<std::uint64_t>(seed), 100000, kConcurrent);
        auto scheduler = MakeScheduler(
            Json::parse(R"({"type": "asha", "max_t": 27, "grace_period": 1, "reduction_factor": 3})"),
            "loss", Mode::kMin);
        struct Running {
          std::string id;
          Json config;
          double final_value;
          double rate;
          int t;
        };
        std::vector<Running> running;
        int next = 0, used = 0, started = 0;
        double best = INFINITY, best_any = INFINITY;
        auto start = [&] {
          std::string id = "t" + std::to_string(next++);
          Json config = searcher->Suggest(id).config;
          scheduler->OnTrialAdd(id);
          double value = problem.f(config);
          // A config-dependent learning speed from a hash of the config.
          double h = std::fmod(std::fabs(std::sin(value * 12.9898 + 78.233) * 43758.5453), 1.0);
          running.push_back({id, config, value, 0.1 + 0.4 * h, 0});
          ++started;
        };
        while (static_cast<int>(running.size()) < kConcurrent) start();
        while (used < kBudget) {
          for (std::size_t i = 0; i < running.size() && used < kBudget;) {
            Running& trial = running[i];
            ++trial.t;
            ++used;
            double scale = std::max(1.0, std::fabs(problem.minimum)) * 2;
            Result result;
            result.training_iteration = trial.t;
            result.metrics["loss"] = trial.final_value + scale * std::exp(-trial.rate * (trial.t - 1)) -
                                     scale * std::exp(-trial.rate * (kMaxT - 1));
            searcher->OnResult(trial.id, result);
            best_any = std::min(best_any, trial.final_value);
            Decision decision = scheduler->OnResult(trial.id, result);
            bool done = trial.t >= kMaxT || scheduler->BudgetExhausted(result);
            if (done || decision == Decision::kStop) {
              scheduler->OnTrialComplete(trial.id, &result);
              searcher->OnComplete(trial.id, done ? TrialStatus::kTerminated : TrialStatus::kStopped,
                                   &result);
              if (done) best = std::min(best, trial.final_value);
              running.erase(running.begin() + static_cast<std::ptrdiff_t>(i));
              start();
            } else {
              ++i;
            }
          }
        }
        regrets.push_back((std::isfinite(best) ? best : best_any) - problem.minimum);
        counts.push_back(started);
      }
      std::printf("| %s | %s | %s | %.0f |\n", problem.name, variant.name, Cell(regrets).c_str(),
                  Quantile(counts, 0.5));
      std::fflush(stdout);
    }
  }
  std::printf("\n");
}

}  // namespace
}  // namespace tune

int main(int argc, char** argv) {
  std::string what = argc > 1 ? argv[1] : "all";
  int seeds = argc > 2 ? std::atoi(argv[2]) : 20;
  const std::string only = argc > 3 ? argv[3] : "";
  const std::vector<tune::Variant> variants = {
      {"random", R"({"algorithm": "random"})"},
      {"tpe", R"({"algorithm": "tpe"})"},
      {"tpe multivariate", R"({"algorithm": "tpe", "multivariate": true})"},
      // Before the switch to joint kernels: univariate throughout, as Optuna 3.1's default.
      {"tpe univariate", R"({"algorithm": "tpe", "multivariate_after": 1000000000})"},
      // Joint from the start with Optuna's Scott-like widths (the multivariate mode before).
      {"tpe multivariate scott",
       R"({"algorithm": "tpe", "multivariate": true, "x_joint_scott_widths": 1})"},
  };
  if (what == "tune") {
    // tune-bench-tpe tune FIRST_SEED SEEDS TRIALS SEARCH_JSON...
    std::vector<std::string> searches;
    for (int i = 5; i < argc; ++i) searches.push_back(argv[i]);
    tune::Tune(std::atoi(argv[2]), std::atoi(argv[3]), std::atoi(argv[4]), searches);
    return 0;
  }
  if (what == "constrained") {
    // tune-bench-tpe constrained SEARCH_JSON FIRST_SEED SEEDS TRIALS
    if (argc != 6) {
      std::fprintf(stderr, "usage: %s constrained SEARCH_JSON FIRST_SEED SEEDS TRIALS\n", argv[0]);
      return 2;
    }
    tune::Constrained(argv[2], std::atoi(argv[3]), std::atoi(argv[4]), std::atoi(argv[5]));
    return 0;
  }
  if (what == "speed-at") {
    // tune-bench-tpe speed-at SEARCH_JSON N1,N2,... [WINDOW=10]
    std::vector<int> points;
    for (const char* p = argv[3]; *p != '\0';) {
      char* end = nullptr;
      points.push_back(static_cast<int>(std::strtol(p, &end, 10)));
      p = *end == ',' ? end + 1 : end;
    }
    tune::SpeedAt(argv[2], points, argc > 4 ? std::atoi(argv[4]) : 10);
    return 0;
  }
  if (what == "snapshot") {
    // tune-bench-tpe snapshot [SEARCH_JSON] [N1,N2,...]
    std::vector<int> sizes;
    for (const char* p = argc > 3 ? argv[3] : "10000,100000"; *p != '\0';) {
      char* end = nullptr;
      sizes.push_back(static_cast<int>(std::strtol(p, &end, 10)));
      p = *end == ',' ? end + 1 : end;
    }
    tune::Snapshot(argc > 2 ? argv[2] : R"({"algorithm": "tpe"})", sizes);
    return 0;
  }
  if (what == "quality" || what == "all") {
    tune::Quality(seeds, variants, only, argc > 4 ? std::atoi(argv[4]) : 0);
  }
  if (what == "speed" || what == "all") {
    tune::Speed(variants, only, argc > 2 && seeds >= 100 ? seeds : 5000);
  }
  if (what == "fidelity" || what == "all") tune::Fidelity(seeds);
  return 0;
}
