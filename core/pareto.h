// Several objectives at once: a trial's objective vector, Pareto dominance and non-dominated
// ranks (NSGA-II's fast non-dominated sort), and constraints on reported metrics (Optuna's
// semantics: a trial is feasible when every constraint value is <= 0).
//
// Every vector here is a *loss* vector: each objective turned into one to minimise (a "max"
// objective negated), so one dominance rule serves all modes.
//
// Example:
//   std::vector<Objective> objectives = {{"val_acc", Mode::kMax}, {"latency_ms", Mode::kMin}};
//   std::vector<double> loss = Losses(result, objectives);   // {-0.93, 12.5}
//   std::vector<int> ranks = NonDominatedRanks({{-0.9, 10}, {-0.8, 5}, {-0.7, 20}});  // {0, 0, 1}
#pragma once

#include <string>
#include <vector>

#include "core/types.h"

namespace tune {

struct Objective {
  std::string metric;
  Mode mode = Mode::kMax;
};

// The spec's "metric" and "mode": a string each (one objective) or arrays of the same length.
// Throws SpecError naming "metric", "mode" or "mode[1]": a missing or empty metric, a repeated
// one, lengths that differ, a mode that is not "min"/"max".
std::vector<Objective> ParseObjectives(const Json& metric, const Json& mode);
// The objectives' metrics as the spec writes them: one string, or an array for several.
Json MetricsJson(const std::vector<Objective>& objectives);
Json ModesJson(const std::vector<Objective>& objectives);

// The result's objective values as losses (a "max" metric negated); NaN where a metric is
// missing or not a number.
std::vector<double> Losses(const Result& result, const std::vector<Objective>& objectives);
// True when every entry is a finite number.
bool AllFinite(const std::vector<double>& loss);

// True when `a` is no worse than `b` in every objective and better in one (losses).
bool Dominates(const std::vector<double>& a, const std::vector<double>& b);

// Non-dominated rank of each loss vector: 0 for the Pareto front, 1 for the front of the rest,
// and so on. Equal vectors share a rank. O(n log n) for two objectives; for more, O(m n^2) at
// worst, far less in practice (each vector is tested against the fronts a binary search visits);
// O(n) memory. Vectors holding NaN fall back to the plain O(m n^2) peeling.
std::vector<int> NonDominatedRanks(const std::vector<std::vector<double>>& losses);

// Ranks under Deb's constrained domination (Optuna's NSGA-II): the feasible vectors
// (violations[i] == 0) by NonDominatedRanks, then the infeasible ones after the worst feasible
// rank, by increasing violation (equal violations share a rank).
std::vector<int> ConstrainedRanks(const std::vector<std::vector<double>>& losses,
                                  const std::vector<double>& violations);
// Constrained domination: a feasible vector beats an infeasible one, of two infeasible ones the
// smaller violation wins, two feasible ones compare by Dominates().
bool ConstrainedDominates(const std::vector<double>& a, double violation_a,
                          const std::vector<double>& b, double violation_b);

// One constraint on a metric a trial reports: "peak_mem_mb <= 8000", "latency_ms < 20",
// "val_acc >= 0.9". Its value is metric - bound for <, <= and bound - metric for >, >=, so the
// trial satisfies it when the value is <= 0 (Optuna's constraints_func convention; a strict
// "<" is read as "<=", as floating-point metrics make no difference between them).
struct Constraint {
  std::string metric;
  std::string op;  // "<=", "<", ">=", ">"
  double bound = 0;
  std::string text;  // as written in the spec
};
// Parses the spec's "constraints" (null or an array of strings). Throws SpecError naming
// "constraints[1]": not a string, no comparison, a bound that is not a number.
std::vector<Constraint> ParseConstraints(const Json& constraints);
// Each constraint's value for `result`: +inf when the metric is missing or not a number (a trial
// that does not report a constrained metric is infeasible).
std::vector<double> ConstraintValues(const Result& result, const std::vector<Constraint>& constraints);
// Optuna's total violation: the sum of the positive constraint values (0 = feasible).
double Violation(const std::vector<double>& constraint_values);

}  // namespace tune
