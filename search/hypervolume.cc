#include "search/hypervolume.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "core/pareto.h"

namespace tune {
namespace {

constexpr double kEps = 1e-12;

// 2 objectives: sort by the first, sweep keeping the lowest second seen.
double Hypervolume2d(Points points, const std::vector<double>& reference) {
  std::sort(points.begin(), points.end());
  double volume = 0;
  double ceiling = reference[1];
  for (const std::vector<double>& p : points) {
    if (p[1] < ceiling) {
      volume += (reference[0] - p[0]) * (ceiling - p[1]);
      ceiling = p[1];
    }
  }
  return volume;
}

// m > 2 objectives: slices between consecutive values of the last objective, each slice's
// (m-1)-dimensional volume of the points below it (the HSO scheme).
double HypervolumeSlices(Points points, const std::vector<double>& reference) {
  const std::size_t m = reference.size();
  if (m == 2) return Hypervolume2d(std::move(points), reference);
  std::sort(points.begin(), points.end(),
            [m](const std::vector<double>& a, const std::vector<double>& b) {
              return a[m - 1] < b[m - 1];
            });
  const std::vector<double> lower(reference.begin(), reference.end() - 1);
  Points prefix;
  double volume = 0;
  for (std::size_t i = 0; i < points.size(); ++i) {
    prefix.emplace_back(points[i].begin(), points[i].end() - 1);
    const double top = i + 1 < points.size() ? points[i + 1][m - 1] : reference[m - 1];
    const double depth = top - points[i][m - 1];
    if (depth > 0) volume += depth * HypervolumeSlices(prefix, lower);
  }
  return volume;
}

}  // namespace

double Hypervolume(const Points& points, const std::vector<double>& reference) {
  Points inside;
  for (const std::vector<double>& p : points) {
    bool in = true;
    for (std::size_t k = 0; k < reference.size(); ++k) in = in && p[k] < reference[k];
    if (in) inside.push_back(p);
  }
  if (inside.empty()) return 0;
  if (reference.size() == 1) {
    double best = reference[0];
    for (const std::vector<double>& p : inside) best = std::min(best, p[0]);
    return reference[0] - best;
  }
  return HypervolumeSlices(std::move(inside), reference);
}

std::vector<double> ReferencePoint(const Points& points) {
  std::vector<double> worst(points.empty() ? 0 : points.front().size(),
                            -std::numeric_limits<double>::infinity());
  for (const std::vector<double>& p : points) {
    for (std::size_t k = 0; k < p.size(); ++k) worst[k] = std::max(worst[k], p[k]);
  }
  for (double& w : worst) {
    w = std::max(1.1 * w, 0.9 * w);
    if (w == 0) w = kEps;
  }
  return worst;
}

std::vector<double> CrowdingDistance(const Points& front, std::vector<std::size_t>* sorted) {
  const std::size_t n = front.size();
  std::vector<double> distance(n, 0.0);
  if (sorted != nullptr) sorted->clear();
  if (n == 0) return distance;
  const std::size_t m = front.front().size();
  // One order, stably re-sorted by each objective in turn (Optuna sorts its list in place), so
  // equal values keep the previous objectives' order: that decides which of two duplicated
  // points gets which neighbours.
  std::vector<std::size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  for (std::size_t k = 0; k < m; ++k) {
    std::stable_sort(order.begin(), order.end(),
                     [&](std::size_t a, std::size_t b) { return front[a][k] < front[b][k]; });
    const double low = front[order.front()][k];
    const double high = front[order.back()][k];
    if (!(high > low)) continue;  // all equal in this objective: no spread to measure
    distance[order.front()] = distance[order.back()] = std::numeric_limits<double>::infinity();
    for (std::size_t i = 1; i + 1 < n; ++i) {
      distance[order[i]] += (front[order[i + 1]][k] - front[order[i - 1]][k]) / (high - low);
    }
  }
  if (sorted != nullptr) *sorted = std::move(order);
  return distance;
}

std::vector<std::size_t> SelectByHypervolume(const Points& points, std::size_t subset_size,
                                             const std::vector<double>& reference) {
  subset_size = std::min(subset_size, points.size());
  if (subset_size == points.size()) {
    std::vector<std::size_t> all(points.size());
    std::iota(all.begin(), all.end(), std::size_t{0});
    return all;
  }
  // The first of each distinct point, in lexicographic order of the points (np.unique).
  std::vector<std::size_t> order(points.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t a, std::size_t b) { return points[a] < points[b]; });
  std::vector<std::size_t> distinct;
  for (std::size_t i : order) {
    if (distinct.empty() || points[distinct.back()] != points[i]) distinct.push_back(i);
  }
  if (distinct.size() < subset_size) {
    std::vector<bool> chosen(points.size(), false);
    for (std::size_t i : distinct) chosen[i] = true;
    std::size_t missing = subset_size - distinct.size();
    for (std::size_t i = 0; i < points.size() && missing > 0; ++i) {
      if (!chosen[i]) {
        chosen[i] = true;
        --missing;
      }
    }
    std::vector<std::size_t> picked;
    for (std::size_t i = 0; i < points.size(); ++i) {
      if (chosen[i]) picked.push_back(i);
    }
    return picked;
  }
  std::vector<std::size_t> picked;
  for (const double r : reference) {
    if (!std::isfinite(r)) {  // as Optuna: no volume to compare, the first distinct ones
      picked.assign(distinct.begin(), distinct.begin() + static_cast<std::ptrdiff_t>(subset_size));
      return picked;
    }
  }
  // Lazy greedy (Optuna's _lazy_contribs_update, Minoux's accelerated greedy): a point's gain
  // only shrinks as others are picked (hypervolume is submodular), so each step evaluates the
  // points in decreasing order of their last known gain (an upper bound) and stops at the first
  // whose bound is below the best gain found. Gains within 1e-9 (relative) of the best are a tie
  // (rounding: symmetric points give the same gain up to the order of the additions), which the
  // lexicographically first point keeps, as Optuna's order does for an exact tie.
  constexpr double kTie = 1e-9;
  std::vector<double> bound(distinct.size());
  for (std::size_t k = 0; k < distinct.size(); ++k) {
    double box = 1;
    for (std::size_t j = 0; j < reference.size(); ++j) {
      box *= std::max(0.0, reference[j] - points[distinct[k]][j]);
    }
    bound[k] = box;
  }
  std::vector<bool> taken(distinct.size(), false);
  std::vector<std::size_t> by_bound(distinct.size());
  Points chosen;
  double volume = 0;
  while (picked.size() < subset_size) {
    by_bound.clear();
    for (std::size_t k = 0; k < distinct.size(); ++k) {
      if (!taken[k]) by_bound.push_back(k);
    }
    std::stable_sort(by_bound.begin(), by_bound.end(),
                     [&](std::size_t a, std::size_t b) { return bound[a] > bound[b]; });
    double best_gain = -1;
    std::vector<std::size_t> evaluated;
    for (std::size_t k : by_bound) {
      if (best_gain >= 0 && bound[k] < best_gain - kTie * best_gain) break;
      if (!chosen.empty()) {
        chosen.push_back(points[distinct[k]]);
        bound[k] = Hypervolume(chosen, reference) - volume;
        chosen.pop_back();
      }
      evaluated.push_back(k);
      best_gain = std::max(best_gain, bound[k]);
    }
    std::size_t best = distinct.size();
    for (std::size_t k : evaluated) {
      if (bound[k] >= best_gain - kTie * best_gain && (best == distinct.size() || k < best)) best = k;
    }
    taken[best] = true;
    picked.push_back(distinct[best]);
    chosen.push_back(points[distinct[best]]);
    volume += bound[best];
  }
  return picked;
}

std::vector<std::size_t> BestByRankAndHypervolume(const Points& losses, std::size_t below) {
  below = std::min(below, losses.size());
  const std::vector<int> ranks = NonDominatedRanks(losses);
  std::vector<std::size_t> picked;
  for (int r = 0; picked.size() < below; ++r) {
    std::vector<std::size_t> at_rank;
    for (std::size_t i = 0; i < losses.size(); ++i) {
      if (ranks[i] == r) at_rank.push_back(i);
    }
    if (picked.size() + at_rank.size() > below) {
      Points points;
      for (std::size_t i : at_rank) points.push_back(losses[i]);
      for (std::size_t k : SelectByHypervolume(points, below - picked.size(), ReferencePoint(points))) {
        picked.push_back(at_rank[k]);
      }
      break;
    }
    picked.insert(picked.end(), at_rank.begin(), at_rank.end());
  }
  std::sort(picked.begin(), picked.end());
  return picked;
}

}  // namespace tune
