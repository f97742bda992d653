// Bayesian optimisation with a Gaussian process (Optuna's GPSampler), selected by
// "search": {"algorithm": "gp"}. After n_startup_trials random configs, every suggestion fits a
// GP with a Matern 5/2 ARD kernel to the ended trials' standardised values (kernel parameters by
// maximum marginal likelihood with Optuna's priors, refitted from the previous ones each trial
// up to 50 trials and then whenever the history grew by 2%; search/gp_model.h) and returns the point
// that maximises log expected improvement over the best value: n_preliminary_samples random
// points, then from the n_local_search best of them Optuna's mixed local search: L-BFGS-B over the
// continuous coordinates alternating with a search over
// each integer or quantized coordinate (every value up to 16 of them, else a line search) and
// each choice (every option), until none moves. Inputs are unit coordinates (log for log domains); choices enter the kernel through the
// Hamming distance of their option index, as in Optuna (equivalently one-hot). Parameters inside
// an option of a choice (conditional) are drawn at random, as Optuna's independent sampler does.
// Parallel trials: each pending trial enters the GP with the best value seen so far (a
// constant liar, Ginsbourger et al. 2010), so concurrent suggestions spread out.
//
// Example:
//   SearcherConfig config = ParseSearcherOptions(Json::parse(R"({"algorithm": "gp"})"),
//       "search", {"loss", Mode::kMin, /*num_samples=*/100});
//   std::unique_ptr<Searcher> gp = MakeSearcher(space, config);
#pragma once

#include <cstdint>

#include "search/searcher.h"

namespace tune {

struct GpOptions {
  std::int64_t n_startup_trials = 10;         // random configs first (Optuna's default)
  bool deterministic_objective = false;       // true: noise fixed at its minimum (1e-6)
  std::int64_t n_preliminary_samples = 512;   // random points scored before the local searches
  std::int64_t n_local_search = 6;            // local searches (from the best of those points)
};

SearcherRegistry::Entry GpEntry();  // "gp" in the table of search/searcher.cc

}  // namespace tune
