// Fits tune's univariate Parzen estimator (search/tpe_estimator.h, as MOTPE uses it: Optuna
// 5.0's kernel widths, no prior centre as a neighbour, densities with each kernel's 1/sigma) and
// prints its log density at given points, for tests/peers/parzen_diff.py to compare with
// Optuna's _ParzenEstimator.
//
// Input, one case per line:
//   {"domain": {"uniform": [a, b]} | {"loguniform": [a, b]}, "observations": [..],
//    "weights": [..], "prior_weight": p, "consider_endpoints": bool, "points": [..]}
// Output, one line per case: {"log_pdf": [..]} (kernel space: log x for log domains)
// Exits 2 with a message on stderr for a line it cannot parse (replay_lines.h).
#include <algorithm>
#include <iostream>
#include <numeric>
#include <vector>

#include "search/space.h"
#include "search/tpe_dim.h"
#include "search/tpe_estimator.h"
#include "tests/peers/replay_lines.h"

int main() {
  return tune::ReplayLines("parzen_replay", [](const tune::Json& input) {
    const tune::Space space = tune::ParseSpace(tune::Json{{"x", input.at("domain")}});
    const tune::Dim dim = tune::MakeDim(space.parameters().front());
    const auto observations = input.at("observations").get<std::vector<double>>();
    const auto weights = input.at("weights").get<std::vector<double>>();
    std::vector<std::size_t> order(observations.size());
    std::iota(order.begin(), order.end(), std::size_t{0});
    std::sort(order.begin(), order.end(),
              [&](std::size_t a, std::size_t b) { return observations[a] < observations[b]; });
    std::vector<double> mus, raw;
    for (std::size_t i : order) {
      mus.push_back(tune::ToKernelSpace(dim, observations[i]));
      raw.push_back(weights[i]);
    }
    tune::ParzenOptions options;
    options.prior_weight = input.at("prior_weight").get<double>();
    options.consider_endpoints = input.at("consider_endpoints").get<bool>();
    options.prior_neighbour = false;
    const tune::NumericKernels kernels = tune::FitNumeric(dim, mus, raw, options);
    tune::Json out = tune::Json::array();
    for (double point : input.at("points").get<std::vector<double>>()) {
      out.push_back(tune::MixtureLogDensity(dim, kernels, tune::ToKernelSpace(dim, point)));
    }
    std::cout << tune::Json{{"log_pdf", out}}.dump() << "\n";
  });
}
