// NonDominatedRanks (core/pareto.h) against the definition, on random sets with ties, duplicates
// and infinities: the rank of a vector is 0 when nothing dominates it, else one more than the
// highest rank among the vectors that dominate it.
#include <gtest/gtest.h>

#include <cmath>
#include <cstddef>
#include <limits>
#include <random>
#include <vector>

#include "core/pareto.h"

namespace tune {
namespace {

std::vector<int> RanksByDefinition(const std::vector<std::vector<double>>& losses) {
  const std::size_t n = losses.size();
  std::vector<int> rank(n, -1);
  // Repeatedly: the vectors not dominated by any unranked one form the next front.
  for (int r = 0;; ++r) {
    std::vector<std::size_t> front;
    for (std::size_t i = 0; i < n; ++i) {
      if (rank[i] >= 0) continue;
      bool dominated = false;
      for (std::size_t j = 0; j < n && !dominated; ++j) {
        dominated = rank[j] < 0 && j != i && Dominates(losses[j], losses[i]);
      }
      if (!dominated) front.push_back(i);
    }
    if (front.empty()) return rank;
    for (std::size_t i : front) rank[i] = r;
  }
}

TEST(NonDominatedRanksTest, EqualsTheDefinitionOnRandomSetsWithTiesAndInfinities) {
  std::mt19937_64 rng(7);
  const double inf = std::numeric_limits<double>::infinity();
  for (std::size_t m : {1, 2, 3, 4}) {
    for (int round = 0; round < 60; ++round) {
      const std::size_t n = 1 + rng() % 120;
      const int levels = round % 3 == 0 ? 3 : 50;  // few levels: many ties and duplicates
      std::vector<std::vector<double>> losses(n, std::vector<double>(m));
      for (auto& loss : losses) {
        for (double& value : loss) {
          const int level = static_cast<int>(rng() % (levels + 2));
          value = level == levels ? inf : level == levels + 1 ? -inf : level * 0.5 - 3;
        }
      }
      EXPECT_EQ(NonDominatedRanks(losses), RanksByDefinition(losses))
          << "m " << m << ", round " << round << ", n " << n;
    }
  }
}

TEST(NonDominatedRanksTest, NaNKeepsThePeelingsMeaning) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  // Dominates() ignores an objective where either side is NaN.
  const std::vector<std::vector<double>> losses = {{1, nan}, {2, 1}, {0, 5}, {3, 3}};
  EXPECT_EQ(NonDominatedRanks(losses), RanksByDefinition(losses));
}

TEST(NonDominatedRanksTest, AHundredThousandTwoObjectiveVectors) {
  // 100 fronts of 1,000: front k is the anti-diagonal (i, 999 - i + k), each point dominated by
  // the one below it on front k - 1. The peeling's O(n^2) pairs (5 * 10^9 here, and a list of
  // every dominated vector) made this out of reach at an experiment's 100,000 trials.
  std::vector<std::vector<double>> losses;
  for (int k = 0; k < 100; ++k) {
    for (int i = 0; i < 1000; ++i) losses.push_back({double(i), double(999 - i + k)});
  }
  const std::vector<int> ranks = NonDominatedRanks(losses);
  for (std::size_t i = 0; i < losses.size(); ++i) ASSERT_EQ(ranks[i], int(i / 1000)) << i;
}

}  // namespace
}  // namespace tune
