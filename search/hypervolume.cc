#include "search/hypervolume.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

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

std::vector<double> CrowdingDistance(const Points& front) {
  const std::size_t n = front.size();
  std::vector<double> distance(n, 0.0);
  if (n == 0) return distance;
  const std::size_t m = front.front().size();
  std::vector<std::size_t> order(n);
  for (std::size_t k = 0; k < m; ++k) {
    std::iota(order.begin(), order.end(), 0);
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
  return distance;
}

std::vector<std::size_t> SelectByHypervolume(const Points& points, std::size_t subset_size,
                                             const std::vector<double>& reference) {
  std::vector<std::size_t> picked;
  std::vector<bool> taken(points.size(), false);
  subset_size = std::min(subset_size, points.size());
  for (const double r : reference) {
    if (!std::isfinite(r)) {  // as Optuna: no volume to compare, keep the first ones
      for (std::size_t i = 0; i < subset_size; ++i) picked.push_back(i);
      return picked;
    }
  }
  Points chosen;
  double volume = 0;
  while (picked.size() < subset_size) {
    double best_gain = -1;
    std::size_t best = 0;
    for (std::size_t i = 0; i < points.size(); ++i) {
      if (taken[i]) continue;
      chosen.push_back(points[i]);
      const double gain = Hypervolume(chosen, reference) - volume;
      chosen.pop_back();
      if (gain > best_gain) {
        best_gain = gain;
        best = i;
      }
    }
    taken[best] = true;
    picked.push_back(best);
    chosen.push_back(points[best]);
    volume += best_gain;
  }
  return picked;
}

}  // namespace tune
