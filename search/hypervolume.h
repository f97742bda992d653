// Hypervolume and the quantities built on it, for the multi-objective searchers (MOTPE, NSGA-II)
// and the benchmarks. Points are loss vectors (every objective minimised; core/pareto.h).
//
// Example:
//   double hv = Hypervolume({{1, 2}, {2, 1}}, {3, 3});   // 3: the area they dominate up to (3, 3)
//   std::vector<double> d = CrowdingDistance(front);     // NSGA-II's diversity measure
#pragma once

#include <cstddef>
#include <vector>

namespace tune {

using Points = std::vector<std::vector<double>>;

// The volume dominated by `points` and bounded by `reference` (points not strictly better than
// the reference in every objective add nothing). Exact: a sweep in 2 objectives, slicing along
// the last objective above (fast for the few objectives and hundreds of points searchers see).
double Hypervolume(const Points& points, const std::vector<double>& reference);

// Optuna's reference point for a set of losses: 1.1 x the worst value of each objective (0.9 x
// when negative), a zero replaced by a tiny positive number.
std::vector<double> ReferencePoint(const Points& points);

// NSGA-II's crowding distance of each point within its front: the sum over objectives of the
// gap between its two neighbours in that objective, divided by the objective's range; the
// extremes of each objective get +inf; an objective where all are equal adds nothing; equal
// values ordered as Optuna's successive in-place sorts order them (Optuna's
// _calc_crowding_distance, number for number: tests/peers/nsga2_elite_diff.py). With `sorted`,
// also the points' order after those sorts (the list as Optuna leaves it, which its NSGA-II
// selection sorts by distance next).
std::vector<double> CrowdingDistance(const Points& front,
                                     std::vector<std::size_t>* sorted = nullptr);

// The greedy solution of the hypervolume subset selection problem (Optuna's _solve_hssp): picks
// `subset_size` of `points` one by one, each time the one adding the most hypervolume w.r.t.
// `reference`, among the distinct points in lexicographic order (so a tie goes to the
// lexicographically smallest, as Optuna's np.unique order does); with fewer distinct points than
// `subset_size`, the first of each distinct point and then the first duplicates, in input order.
// Returns the indices picked.
std::vector<std::size_t> SelectByHypervolume(const Points& points, std::size_t subset_size,
                                             const std::vector<double>& reference);

// MOTPE's good set (Optuna's _split_complete_trials_multi_objective): the positions of the
// `below` best of `losses`, whole non-dominated ranks first, the rank that does not fit whole cut
// by SelectByHypervolume against that rank's own ReferencePoint. Ascending positions.
// tests/peers/motpe_split_diff.py compares it with Optuna's on random sets.
std::vector<std::size_t> BestByRankAndHypervolume(const Points& losses, std::size_t below);

}  // namespace tune
