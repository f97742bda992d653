// Runs tune's CMA-ES searcher (search/cmaes.cc) on a test function and prints, after every
// trial, what it told the model and, after every update, the model's state, so that
// tests/peers/cmaes_diff.py can tell the same samples and values to the `cmaes` package (the
// backend of Optuna's CmaEsSampler) and compare the two, generation by generation.
//
// Input, one case per line:
//   {"space": {..space.json..}, "search": {"algorithm": "cmaes", ..}, "trials": N, "seed": S,
//    "objective": "sphere" | "ellipsoid" | "rosenbrock" | "plateau"}
// The objective is evaluated on the config's values, in the space's parameter order (x_i):
//   sphere      sum_i (x_i - 0.3 - 0.1 i)^2
//   ellipsoid   sum_i 10^(4 i / (n - 1)) (x_i - 0.3)^2   (condition number 1e4)
//   rosenbrock  sum_i 100 (x_{i+1} - x_i^2)^2 + (1 - x_i)^2
//   plateau     floor(4 sphere) / 4                      (ties, flat fitness)
// Output, one JSON object per line, in order:
//   {"trial": t, "loss": f, "raw": [..]}    trial t ended with f; raw is the sample of N(m, s^2 C)
//                                           it came from (null: not from a generation)
//   {"update": {"run": r, "generation": g, "popsize": p, "cma": {..}}}   the model after the
//                                           trial above completed a generation (cma: the
//                                           snapshot's, search/cmaes.cc SaveState)
//   {"end": true}                           the case is over
// Exits 2 with a message on stderr for a line it cannot parse or run (replay_lines.h).
#include <cmath>
#include <stdexcept>
#include <iostream>
#include <string>
#include <vector>

#include "search/searcher.h"
#include "search/space.h"
#include "tests/peers/replay_lines.h"

namespace tune {
namespace {

double Objective(const std::string& name, const std::vector<double>& x) {
  const auto n = x.size();
  double sphere = 0;
  for (std::size_t i = 0; i < n; ++i) sphere += std::pow(x[i] - 0.3 - 0.1 * static_cast<double>(i), 2);
  if (name == "sphere") return sphere;
  if (name == "plateau") return std::floor(4 * sphere) / 4;
  if (name == "ellipsoid") {
    double sum = 0;
    for (std::size_t i = 0; i < n; ++i) {
      const double exponent = n > 1 ? 4.0 * static_cast<double>(i) / static_cast<double>(n - 1) : 0;
      sum += std::pow(10.0, exponent) * std::pow(x[i] - 0.3, 2);
    }
    return sum;
  }
  if (name == "rosenbrock") {
    double sum = 0;
    for (std::size_t i = 0; i + 1 < n; ++i) {
      sum += 100 * std::pow(x[i + 1] - x[i] * x[i], 2) + std::pow(1 - x[i], 2);
    }
    return sum;
  }
  throw std::runtime_error("unknown objective \"" + name + "\"");
}

void RunCase(const Json& input) {
  const Space space = ParseSpace(input.at("space"));
  SearcherOptions options;
  options.metric = "loss";
  options.mode = Mode::kMin;
  options.num_samples = input.at("trials").get<std::int64_t>();
  options.seed = input.at("seed").get<std::uint64_t>();
  options.algorithm = input.at("search");
  std::unique_ptr<Searcher> searcher = MakeSearcher(space, options);
  const std::string objective = input.at("objective");
  Json last_at = Json::array({0, 0});  // (run, generation) of the model
  for (std::int64_t t = 0; t < options.num_samples; ++t) {
    const std::string id = "t" + std::to_string(t);
    const Json config = searcher->Suggest(id).config;
    std::vector<double> x;
    for (const Parameter& parameter : space.parameters()) x.push_back(config.at(parameter.pointer).get<double>());
    Result result;
    result.training_iteration = 1;
    result.metrics["loss"] = Objective(objective, x);
    searcher->OnResult(id, result);
    searcher->OnComplete(id, TrialStatus::kTerminated, &result);
    const Json model = searcher->SaveState().value().at("model");
    Json raw = nullptr;
    const Json& raw_trials = model.at("raw_trials");
    const std::size_t dims = raw_trials.empty() ? 0 : model.at("raw").size() / raw_trials.size();
    for (std::size_t i = 0; i < raw_trials.size(); ++i) {
      if (raw_trials[i].get<std::int64_t>() != t) continue;
      raw = Json::array();
      for (std::size_t j = 0; j < dims; ++j) raw.push_back(model.at("raw")[i * dims + j]);
    }
    std::cout << Json{{"trial", t}, {"loss", result.metrics["loss"]}, {"raw", raw}}.dump() << "\n";
    const Json at = Json::array({model.at("run"), model.at("generation")});
    if (at != last_at) {
      std::cout << Json{{"update", {{"run", model.at("run")},
                                    {"generation", model.at("generation")},
                                    {"popsize", model.at("popsize")},
                                    {"cma", model.at("cma")}}}}.dump()
                << "\n";
      last_at = at;
    }
  }
  std::cout << Json{{"end", true}}.dump() << std::endl;
}

}  // namespace
}  // namespace tune

int main() { return tune::ReplayLines("cmaes_replay", tune::RunCase); }
