// NSGA-II (Deb et al. 2002, Optuna's NSGAIISampler), selected by "search": {"algorithm": "nsga2"}.
// Trials come in generations of population_size. The first generation is random; each later
// trial is a child of the parent population: two parents picked by binary tournament (of two
// random members, the one of lower non-dominated rank, on a tie the one of larger crowding
// distance: Deb's crowded comparison; "tournament": "dominance" is Optuna's, the one that
// dominates, else the second), their parameters mixed by uniform crossover
// (probability crossover_prob; else one parent copied), each parameter then redrawn at random
// with probability mutation_prob (default 1 / number of parameters). When population_size
// trials of a generation have ended with every objective, the next parents are the best
// population_size of those trials and the old parents: by non-dominated rank, the last rank
// that fits cut by crowding distance (largest first). With constraints, domination is Deb's
// constrained domination (feasible first, then by total violation). Works with one objective
// too (then ranks are plain order).
//
// Example:
//   SearcherConfig config = ParseSearcherOptions(Json::parse(R"({"algorithm": "nsga2",
//       "population_size": 50})"), "search", context /* objectives set */);
//   std::unique_ptr<Searcher> nsga2 = MakeSearcher(space, config);
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "search/searcher.h"

namespace tune {

struct Nsga2Options {
  std::int64_t population_size = 50;  // >= 2
  double crossover_prob = 0.9;        // [0, 1]
  double swapping_prob = 0.5;         // [0, 1]: per parameter, take the second parent's value
  double mutation_prob = -1;          // [0, 1]; < 0: 1 / number of parameters
  bool crowded_tournament = true;     // "tournament": "crowded" (Deb) or "dominance" (Optuna)
};

SearcherRegistry::Entry Nsga2Entry();  // "nsga2" in the table of search/searcher.cc

// NSGA-II's survivor selection as Optuna's NSGAIIElitePopulationSelectionStrategy makes it: of
// `losses` (every objective minimised) with their total constraint violations (0: feasible), the
// best `size` by ConstrainedRanks (core/pareto.h), whole ranks first, then the rank that does not
// fit whole cut by crowding distance, largest first; equal distances in the order Optuna's sorts
// leave them (the population's order, stably sorted by each objective in turn, then by distance,
// then reversed). tests/peers/nsga2_elite_diff.py compares it with Optuna's on random populations.
struct EliteSelection {
  std::vector<std::size_t> chosen;  // positions in `losses`, rank by rank
  std::vector<int> rank;            // each one's rank
  std::vector<double> crowding;     // each one's crowding distance within its rank
};
EliteSelection SelectElite(const std::vector<std::vector<double>>& losses,
                           const std::vector<double>& violations, std::size_t size);

}  // namespace tune
