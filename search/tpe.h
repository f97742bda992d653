// TPE (Tree-structured Parzen Estimator; Bergstra et al. 2011, Optuna's TPESampler), selected by
// "search": {"algorithm": "tpe"}. After n_startup_trials random configs, every suggestion ranks
// the ended trials, fits a density l(x) to the best gamma(n) of them and g(x) to the rest (a
// mixture of one kernel per trial plus a broad prior), draws n_ei_candidates from l(x) and
// returns the one with the largest l(x) / g(x). Each parameter is modelled on its own for the
// first multivariate_after observations (0 by default), jointly after. It needs a metric and rejects
// grid_search (use "choice"). docs/tpe.md explains each option and the measurements behind them.
//
// Example:
//   SearcherConfig config = ParseSearcherOptions(Json::parse(R"({"algorithm": "tpe", "seed": 1,
//       "gamma": 0.2})"), "search", {"loss", Mode::kMin, /*num_samples=*/100});
//   std::unique_ptr<Searcher> tpe = MakeSearcher(space, config);
#pragma once

#include <cstdint>
#include <string>

#include "search/searcher.h"

namespace tune {

// The options (keys of the "search" object) and their defaults.
struct TpeOptions {
  std::int64_t n_startup_trials = 10;     // random configs before the model is used
  std::int64_t n_ei_candidates = 24;      // candidates drawn from l(x) per suggestion
  double gamma = 0;                       // (0, 1]: ceil(gamma n) good; 0: min(ceil(n/10), 25)
  double prior_weight = 1.0;              // weight of the prior kernel
  double categorical_prior_weight = 4.0;  // the same for categoricals; larger explores more
  bool consider_endpoints = false;        // domain bounds size the outermost kernels (default
                                          // true with several objectives: ParseTpe)
  bool multivariate = false;              // the joint model from the start
  std::int64_t multivariate_after = 0;    // observations before the joint model (docs/tpe.md)
  std::int64_t window = 10000;  // each set models at most its newest `window` trials; 0: all
  bool constant_liar = true;  // pending trials rank worst; default: max_concurrent != 1
  enum class Intermediate { kLast, kRank, kBudget };  // "last", "rank" (Optuna), "budget" (BOHB)
  Intermediate intermediate = Intermediate::kLast;  // how early-stopped trials rank
  std::string budget_attr = "training_iteration";   // the result attribute that is the budget
};

SearcherRegistry::Entry TpeEntry();  // "tpe" in the table of search/searcher.cc

}  // namespace tune
