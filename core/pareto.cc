#include "core/pareto.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <set>

namespace tune {

std::vector<Objective> ParseObjectives(const Json& metric, const Json& mode) {
  const bool several = metric.is_array();
  std::vector<std::string> metrics;
  if (metric.is_string()) {
    metrics.push_back(metric.get<std::string>());
  } else if (several) {
    for (const Json& name : metric) {
      if (!name.is_string()) {
        throw SpecError("metric", "must hold metric names (strings), got " + name.dump());
      }
      metrics.push_back(name.get<std::string>());
    }
  }
  if (metrics.empty() || (!metric.is_string() && !several)) {
    throw SpecError("metric", "required: the name of the metric to optimise, e.g. \"val_acc\", "
                              "or a list of them for several objectives");
  }
  std::set<std::string> seen;
  for (const std::string& name : metrics) {
    if (name.empty()) throw SpecError("metric", "a metric name must not be empty");
    if (!seen.insert(name).second) {
      throw SpecError("metric", "\"" + name + "\" is listed twice");
    }
  }
  std::vector<Objective> objectives;
  if (mode.is_array()) {
    if (mode.size() != metrics.size()) {
      throw SpecError("mode", "has " + std::to_string(mode.size()) + " entries but metric has " +
                                  std::to_string(metrics.size()) + ": one \"min\" or \"max\" per metric");
    }
    for (std::size_t i = 0; i < metrics.size(); ++i) {
      objectives.push_back({metrics[i], ParseMode(mode[i], "mode[" + std::to_string(i) + "]")});
    }
    return objectives;
  }
  if (several && !mode.is_null()) {
    // One mode for several metrics would be a silent guess about the others.
    throw SpecError("mode", "must be a list of " + std::to_string(metrics.size()) +
                                " modes (one per metric), got " + mode.dump());
  }
  const Mode one = ParseMode(mode.is_null() ? Json("max") : mode, "mode");
  for (const std::string& name : metrics) objectives.push_back({name, one});
  return objectives;
}

Json MetricsJson(const std::vector<Objective>& objectives) {
  if (objectives.size() == 1) return objectives.front().metric;
  Json out = Json::array();
  for (const Objective& o : objectives) out.push_back(o.metric);
  return out;
}

Json ModesJson(const std::vector<Objective>& objectives) {
  if (objectives.size() == 1) return ToString(objectives.front().mode);
  Json out = Json::array();
  for (const Objective& o : objectives) out.push_back(ToString(o.mode));
  return out;
}

std::vector<double> Losses(const Result& result, const std::vector<Objective>& objectives) {
  std::vector<double> loss;
  loss.reserve(objectives.size());
  for (const Objective& o : objectives) {
    const double value = result.Get(o.metric);
    loss.push_back(o.mode == Mode::kMax ? -value : value);
  }
  return loss;
}

bool AllFinite(const std::vector<double>& loss) {
  for (double v : loss) {
    if (!std::isfinite(v)) return false;
  }
  return true;
}

bool Dominates(const std::vector<double>& a, const std::vector<double>& b) {
  bool better = false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (a[i] > b[i]) return false;
    if (a[i] < b[i]) better = true;
  }
  return better;
}

namespace {

// The plain peeling (Deb's fast non-dominated sort): O(m n^2) time and memory. Kept for vectors
// holding NaN, which Dominates() treats as "no order" in that objective (not a total order, so
// the sorted algorithm below does not apply).
std::vector<int> PeelRanks(const std::vector<std::vector<double>>& losses) {
  const std::size_t n = losses.size();
  std::vector<int> rank(n, -1);
  std::vector<std::vector<std::size_t>> dominated(n);  // the vectors each one dominates
  std::vector<std::size_t> dominators(n, 0);
  for (std::size_t i = 0; i < n; ++i) {
    for (std::size_t j = i + 1; j < n; ++j) {
      if (Dominates(losses[i], losses[j])) {
        dominated[i].push_back(j);
        ++dominators[j];
      } else if (Dominates(losses[j], losses[i])) {
        dominated[j].push_back(i);
        ++dominators[i];
      }
    }
  }
  std::vector<std::size_t> front;
  for (std::size_t i = 0; i < n; ++i) {
    if (dominators[i] == 0) front.push_back(i);
  }
  for (int r = 0; !front.empty(); ++r) {
    std::vector<std::size_t> next;
    for (std::size_t i : front) {
      rank[i] = r;
      for (std::size_t j : dominated[i]) {
        if (--dominators[j] == 0) next.push_back(j);
      }
    }
    front = std::move(next);
  }
  return rank;
}

}  // namespace

// Efficient non-dominated sort with binary search over the fronts (ENS-BS, Zhang et al. 2015):
// the vectors in lexicographic order, so that none can be dominated by one that comes later;
// each goes to the first front none of whose members dominates it, found by binary search ("some
// member of front k dominates p" holds for every k below p's rank and for none from it on: a
// dominator in a later front is itself dominated by one of an earlier front, which then
// dominates p too). O(n) memory. With two objectives a front is summed up by its lowest second
// loss and the lowest first loss among the members that have it, so each test is O(1) and the
// whole sort O(n log n) (an experiment's 100,000 trials: the peeling took O(n^2) time and memory).
std::vector<int> NonDominatedRanks(const std::vector<std::vector<double>>& losses) {
  const std::size_t n = losses.size();
  for (const std::vector<double>& loss : losses) {
    for (double value : loss) {
      if (std::isnan(value)) return PeelRanks(losses);
    }
  }
  std::vector<std::size_t> order(n);
  for (std::size_t i = 0; i < n; ++i) order[i] = i;
  std::sort(order.begin(), order.end(),
            [&](std::size_t a, std::size_t b) { return losses[a] < losses[b]; });
  std::vector<int> rank(n, -1);
  const bool two = n > 0 && losses[order[0]].size() == 2;
  struct Summary {
    double low2;  // the lowest second loss among the front's members so far
    double low1;  // the lowest first loss among those of them with second loss low2
  };
  std::vector<Summary> summaries;                 // two objectives
  std::vector<std::vector<std::size_t>> fronts;  // otherwise: members, in order of arrival
  auto dominated_by = [&](std::size_t k, std::size_t p) {
    const std::vector<double>& loss = losses[p];
    if (two) {
      const Summary& s = summaries[k];
      return s.low2 < loss[1] || (s.low2 == loss[1] && s.low1 < loss[0]);
    }
    // Latest members first: the closest to p in the order, the likeliest to dominate it.
    for (auto q = fronts[k].rbegin(); q != fronts[k].rend(); ++q) {
      if (Dominates(losses[*q], loss)) return true;
    }
    return false;
  };
  for (std::size_t p : order) {
    std::size_t lo = 0, hi = two ? summaries.size() : fronts.size();  // first k not dominating p
    while (lo < hi) {
      const std::size_t mid = lo + (hi - lo) / 2;
      if (dominated_by(mid, p)) {
        lo = mid + 1;
      } else {
        hi = mid;
      }
    }
    rank[p] = static_cast<int>(lo);
    if (two) {
      const double f1 = losses[p][0], f2 = losses[p][1];
      if (lo == summaries.size()) {
        summaries.push_back({f2, f1});
      } else if (f2 < summaries[lo].low2) {
        summaries[lo] = {f2, f1};  // an earlier member's first loss is no greater than f1's
      }
    } else {
      if (lo == fronts.size()) fronts.emplace_back();
      fronts[lo].push_back(p);
    }
  }
  return rank;
}

std::vector<int> ConstrainedRanks(const std::vector<std::vector<double>>& losses,
                                  const std::vector<double>& violations) {
  std::vector<std::vector<double>> feasible;
  std::vector<std::size_t> feasible_at, infeasible_at;
  for (std::size_t i = 0; i < losses.size(); ++i) {
    if (violations[i] > 0) {
      infeasible_at.push_back(i);
    } else {
      feasible.push_back(losses[i]);
      feasible_at.push_back(i);
    }
  }
  std::vector<int> rank(losses.size(), 0);
  const std::vector<int> feasible_ranks = NonDominatedRanks(feasible);
  int next = 0;
  for (std::size_t k = 0; k < feasible_at.size(); ++k) {
    rank[feasible_at[k]] = feasible_ranks[k];
    next = std::max(next, feasible_ranks[k] + 1);
  }
  std::stable_sort(infeasible_at.begin(), infeasible_at.end(),
                   [&](std::size_t a, std::size_t b) { return violations[a] < violations[b]; });
  for (std::size_t k = 0; k < infeasible_at.size(); ++k) {
    if (k > 0 && violations[infeasible_at[k]] > violations[infeasible_at[k - 1]]) ++next;
    rank[infeasible_at[k]] = next;
  }
  return rank;
}

bool ConstrainedDominates(const std::vector<double>& a, double violation_a,
                          const std::vector<double>& b, double violation_b) {
  if (violation_a > 0 || violation_b > 0) return violation_a < violation_b;
  return Dominates(a, b);
}

std::vector<Constraint> ParseConstraints(const Json& constraints) {
  std::vector<Constraint> out;
  if (constraints.is_null()) return out;
  if (!constraints.is_array()) {
    throw SpecError("constraints", "must be a list of strings like \"peak_mem_mb <= 8000\"");
  }
  for (std::size_t i = 0; i < constraints.size(); ++i) {
    const std::string path = "constraints[" + std::to_string(i) + "]";
    if (!constraints[i].is_string()) {
      throw SpecError(path, "must be a string like \"peak_mem_mb <= 8000\", got " +
                                constraints[i].dump());
    }
    const std::string text = constraints[i].get<std::string>();
    std::size_t at = text.find_first_of("<>");
    if (at == std::string::npos || text.find_first_of("<>", at + 2) != std::string::npos) {
      throw SpecError(path, "needs one comparison <=, <, >= or > between a metric and a number, "
                            "got \"" + text + "\"");
    }
    Constraint c;
    c.text = text;
    c.op = text.substr(at, 1);
    std::size_t after = at + 1;
    if (after < text.size() && text[after] == '=') {
      c.op += "=";
      ++after;
    }
    auto trim = [](std::string s) {
      const char* space = " \t";
      s.erase(0, s.find_first_not_of(space));
      s.erase(s.find_last_not_of(space) + 1);
      return s;
    };
    c.metric = trim(text.substr(0, at));
    const std::string bound = trim(text.substr(after));
    if (c.metric.empty()) throw SpecError(path, "no metric before \"" + c.op + "\" in \"" + text + "\"");
    char* end = nullptr;
    c.bound = std::strtod(bound.c_str(), &end);
    if (bound.empty() || end != bound.c_str() + bound.size() || !std::isfinite(c.bound)) {
      throw SpecError(path, "the bound after \"" + c.op + "\" must be a finite number, got \"" +
                                bound + "\"");
    }
    out.push_back(std::move(c));
  }
  return out;
}

std::vector<double> ConstraintValues(const Result& result,
                                     const std::vector<Constraint>& constraints) {
  std::vector<double> values;
  values.reserve(constraints.size());
  for (const Constraint& c : constraints) {
    const double metric = result.Get(c.metric);
    if (!std::isfinite(metric)) {
      values.push_back(std::numeric_limits<double>::infinity());
    } else {
      values.push_back(c.op[0] == '<' ? metric - c.bound : c.bound - metric);
    }
  }
  return values;
}

double Violation(const std::vector<double>& constraint_values) {
  double total = 0;
  for (double v : constraint_values) {
    if (v > 0) total += v;
  }
  return total;
}

}  // namespace tune
