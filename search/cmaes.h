// CMA-ES (Hansen's covariance matrix adaptation evolution strategy; Optuna's CmaEsSampler),
// selected by "search": {"algorithm": "cmaes"}. It models the numeric parameters that every
// trial has (not inside an option of a choice) in unit coordinates (log for log domains, the
// range mapped to [0, 1]); choices and conditional parameters are drawn at random for each
// trial, as Optuna's CmaEsSampler does with its independent sampler. Integer and quantized
// parameters use the margin of CMA-ES with Margin (Hamano et al. 2022, Optuna's with_margin):
// after each update the mean and a per-coordinate scale are corrected so that every discrete
// coordinate still leaves its current value with probability >= 1 / (n popsize), instead of
// collapsing onto one value. When the distribution has converged (flat fitness, tiny steps,
// ill-conditioned covariance) it restarts from a random mean with twice the population (IPOP).
//
// Parallel trials: every Suggest() draws from the current generation's distribution; the update
// happens when popsize trials of that generation have ended with a value (failed and pruned
// trials do not count; late results of an older generation are ignored), as Optuna does.
//
// Example:
//   SearcherConfig config = ParseSearcherOptions(Json::parse(R"({"algorithm": "cmaes"})"),
//       "search", {"loss", Mode::kMin, /*num_samples=*/200});
//   std::unique_ptr<Searcher> cma = MakeSearcher(space, config);
#pragma once

#include <cstdint>
#include <string>

#include "search/searcher.h"

namespace tune {

struct CmaEsOptions {
  std::int64_t n_startup_trials = 0;  // random configs first
  double sigma0 = 1.0 / 6;            // initial step, in unit coordinates (Optuna: range / 6)
  std::int64_t popsize = 0;           // 0: 4 + floor(3 ln n)
  bool restart = true;                // IPOP restarts ("restart_strategy": "ipop" | "none")
  std::int64_t inc_popsize = 2;       // population growth per restart
  bool with_margin = true;            // the margin for integer and quantized parameters
};

SearcherRegistry::Entry CmaEsEntry();  // "cmaes" in the table of search/searcher.cc

}  // namespace tune
