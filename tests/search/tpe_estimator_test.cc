#include "search/tpe_estimator.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "search/space.h"
#include "search/tpe_dim.h"
#include "search/tpe_simd.h"

namespace tune {
namespace {

// Expected values below were computed with Optuna 5.0's samplers/_tpe/_truncnorm.py (logpdf,
// _log_gauss_mass) in the project's .venv, from kernel widths worked out by hand from the rule
// in search/tpe_estimator.h.

Dim DimOf(const char* domain) {
  Space space = ParseSpace(Json::parse(std::string(R"({"x": )") + domain + "}"));
  return MakeDim(space.parameters()[0]);
}

TEST(TpeDimTest, DomainsInKernelSpace) {
  Dim uniform = DimOf(R"({"uniform": [0, 10]})");
  EXPECT_FALSE(uniform.binned);
  EXPECT_EQ(uniform.low, 0);
  EXPECT_EQ(uniform.high, 10);
  EXPECT_EQ(uniform.prior_mu, 5);
  EXPECT_EQ(uniform.prior_sigma, 10);

  Dim integers = DimOf(R"({"randint": [0, 10]})");  // 0..9
  EXPECT_TRUE(integers.binned);
  EXPECT_EQ(integers.first, 0);
  EXPECT_EQ(integers.last, 9);
  EXPECT_EQ(integers.low, -0.5);
  EXPECT_EQ(integers.high, 9.5);
  EXPECT_EQ(Snap(integers, 2.4), 2);
  EXPECT_EQ(Snap(integers, 42), 9);

  Dim wide = DimOf(R"({"randint": [0, 5000]})");  // more than 1000 values: continuous density
  EXPECT_FALSE(wide.binned);
  EXPECT_EQ(wide.step, 1);

  Dim log = DimOf(R"({"loguniform": [0.001, 1]})");
  EXPECT_TRUE(log.log);
  EXPECT_DOUBLE_EQ(log.low, std::log(0.001));
  EXPECT_EQ(log.high, 0);
  EXPECT_DOUBLE_EQ(Snap(log, std::log(0.01)), 0.01);

  Dim normal = DimOf(R"({"normal": [10, 2]})");
  EXPECT_EQ(normal.low, 0);
  EXPECT_EQ(normal.high, 20);
  EXPECT_EQ(normal.prior_mu, 10);
  EXPECT_EQ(normal.prior_sigma, 2);

  Dim choice = DimOf(R"({"choice": ["a", "b", "c"]})");
  EXPECT_TRUE(choice.categorical);
  EXPECT_EQ(choice.choices, 3u);
  EXPECT_TRUE(DimOf(R"({"choice": ["only"]})").fixed);
}

TEST(TpeEstimatorTest, DefaultWeightsAreOptunas) {
  // optuna.samplers._tpe.sampler.default_weights(n)
  for (std::size_t rank = 0; rank < 10; ++rank) EXPECT_EQ(DefaultWeight(rank, 10), 1.0);
  EXPECT_DOUBLE_EQ(DefaultWeight(0, 26), 0.038461538461538464);
  EXPECT_EQ(DefaultWeight(1, 26), 1.0);
  const double ramp[] = {0.03333333333333333, 0.275, 0.5166666666666667, 0.7583333333333333};
  for (std::size_t rank = 0; rank < 4; ++rank) EXPECT_DOUBLE_EQ(DefaultWeight(rank, 30), ramp[rank]);
  for (std::size_t rank = 4; rank < 30; ++rank) EXPECT_EQ(DefaultWeight(rank, 30), 1.0);
}

TEST(TpeEstimatorTest, KernelWidthsAreNeighbourGapsWithTheMagicClip) {
  const Dim dim = DimOf(R"({"uniform": [0, 10]})");
  // With the prior's centre 5 among the neighbours; clip = 10 / min(100, 8 + 2) = 1.
  const std::vector<double> mus = {0.5, 1, 1.5, 4, 6, 6.2, 8, 9.5};
  std::vector<double> sigma(mus.size());
  NeighbourSigmas(dim, mus, false, sigma.data());
  const std::vector<double> expected = {1, 1, 2.5, 2.5, 1, 1.8, 1.8, 1.5};
  for (std::size_t i = 0; i < mus.size(); ++i) EXPECT_NEAR(sigma[i], expected[i], 1e-12) << i;

  // The outermost observations: their inner gap, or with consider_endpoints the larger of it
  // and the gap to the bound. Clip 10 / 5 = 2.
  const std::vector<double> few = {3, 4, 6};
  std::vector<double> inner(3), endpoints(3);
  NeighbourSigmas(dim, few, false, inner.data());
  NeighbourSigmas(dim, few, true, endpoints.data());
  EXPECT_EQ(inner, (std::vector<double>{2, 2, 2}));
  EXPECT_EQ(endpoints, (std::vector<double>{3, 2, 4}));
}

TEST(TpeEstimatorTest, WithoutThePriorAsANeighbourWidthsAreOptuna5s) {
  // Optuna 5.0's _ParzenEstimator on FloatDistribution(0, 10) (its sigmas, printed by Optuna):
  // [1, 1, 2.5, 2.5, 2, 1.8, 1.8, 1.5] and, for the one observation 2, [8]. With the prior's
  // centre 5 as a neighbour the 6 gets 1 and the 2 gets the clip 10 / 3.
  const Dim dim = DimOf(R"({"uniform": [0, 10]})");
  const std::vector<double> mus = {0.5, 1, 1.5, 4, 6, 6.2, 8, 9.5};
  std::vector<double> sigma(mus.size());
  NeighbourSigmas(dim, mus, false, sigma.data(), /*prior_neighbour=*/false);
  const std::vector<double> expected = {1, 1, 2.5, 2.5, 2, 1.8, 1.8, 1.5};
  for (std::size_t i = 0; i < mus.size(); ++i) EXPECT_NEAR(sigma[i], expected[i], 1e-12) << i;
  double one = 0;
  NeighbourSigmas(dim, {2.0}, false, &one, false);
  EXPECT_DOUBLE_EQ(one, 8);
  NeighbourSigmas(dim, {2.0}, false, &one, true);
  EXPECT_DOUBLE_EQ(one, 10.0 / 3);
}

TEST(TpeEstimatorTest, TiedObservationsTakeTheNarrowestKernel) {
  // Integers 0..10 (kernel bounds -0.5, 10.5); 7 observations: clip 11 / 9. Copies of a value
  // have a neighbour at distance 0, so every copy gets the clip, whether or not the prior's
  // centre (5) is a neighbour; before, the first 1 got the clip, the third 1 the gap 3 to 4, the
  // first 6 the gap 2 and the second 6 the gap 3: which copy was wide depended on trial order.
  const Dim dim = DimOf(R"({"randint": [0, 11]})");
  const std::vector<double> mus = {1, 1, 1, 4, 6, 6, 9};
  const double clip = 11.0 / 9;
  const std::vector<double> expected = {clip, clip, clip, 3, clip, clip, 3};
  for (bool prior_neighbour : {true, false}) {
    std::vector<double> sigma(mus.size());
    NeighbourSigmas(dim, mus, false, sigma.data(), prior_neighbour);
    for (std::size_t i = 0; i < mus.size(); ++i) {
      EXPECT_NEAR(sigma[i], expected[i], 1e-12) << i << " prior_neighbour " << prior_neighbour;
    }
  }
}

TEST(TpeEstimatorTest, ContinuousMixtureMatchesOptunasTruncatedNormals) {
  const Dim dim = DimOf(R"({"uniform": [0, 10]})");
  const std::vector<double> mus = {0.5, 1, 1.5, 4, 6, 6.2, 8, 9.5};
  const std::vector<double> ones(mus.size(), 1.0);
  ParzenOptions options;
  const NumericKernels kernels = FitNumeric(dim, mus, ones, options);
  ASSERT_EQ(kernels.mu.size(), 9);
  EXPECT_EQ(kernels.mu[8], 5);  // the prior, last
  EXPECT_EQ(kernels.sigma[8], 10);
  EXPECT_EQ(kernels.sigma[2], 2.5);
  for (Eigen::Index k = 0; k < 9; ++k) EXPECT_DOUBLE_EQ(kernels.weight[k], 1.0 / 9);

  options.width_free = true;
  const NumericKernels width_free = FitNumeric(dim, mus, ones, options);
  // {x, log density, log density without each kernel's 1/sigma}
  const double cases[][3] = {
      {0.0, -2.0835310862878353, -1.3664869498723866},
      {0.7, -1.8634173534015561, -1.2139221026106883},
      {3.3, -2.7736568610362813, -1.483066382720635},
      {5.0, -2.3772752315540555, -1.3511772377665987},
      {9.99, -2.60412520320066, -1.587601544649883},
  };
  for (const auto& c : cases) {
    EXPECT_NEAR(MixtureLogDensity(dim, kernels, c[0]), c[1], 1e-5) << c[0];  // float sums
    EXPECT_NEAR(MixtureLogDensity(dim, width_free, c[0]), c[2], 1e-5) << c[0];
  }
}

TEST(TpeEstimatorTest, BinnedMixtureScoresBinMasses) {
  const Dim dim = DimOf(R"({"randint": [0, 10]})");
  // Widths: 1 and the two tied 2s clipped to 10 / 6, then 2.5; the prior N(4.5, 10) on
  // [-0.5, 9.5]. Expected: the mixture of the kernels' bin masses (scipy's norm.cdf), each
  // kernel renormalised to the domain, weights 1/5.
  const NumericKernels kernels = FitNumeric(dim, {1, 2, 2, 7}, {1, 1, 1, 1}, ParzenOptions{});
  EXPECT_NEAR(kernels.sigma[0], 10.0 / 6, 1e-12);
  EXPECT_NEAR(kernels.sigma[2], 10.0 / 6, 1e-12);
  EXPECT_EQ(kernels.sigma[3], 2.5);
  EXPECT_EQ(kernels.distinct_mu.size(), 4);  // the two kernels at 2 share their width
  const double cases[][2] = {{0, -2.133591188035352},
                             {2, -1.742657134776422},
                             {5, -2.6195843032216657},
                             {9, -3.071160172488697}};
  for (const auto& c : cases) {
    EXPECT_NEAR(MixtureLogDensity(dim, kernels, c[0]), c[1], 1e-5) << c[0];
    // Any point of the bin scores the bin.
    EXPECT_NEAR(MixtureLogDensity(dim, kernels, c[0] + 0.3), c[1], 1e-5) << c[0];
  }
  double total = 0;
  for (int v = 0; v < 10; ++v) total += std::exp(MixtureLogDensity(dim, kernels, v));
  EXPECT_NEAR(total, 1.0, 1e-5);
}

TEST(TpeEstimatorTest, SamplesFollowTheMixture) {
  const Dim dim = DimOf(R"({"uniform": [0, 10]})");
  const NumericKernels kernels =
      FitNumeric(dim, {0.5, 1, 1.5, 4, 6, 6.2, 8, 9.5}, std::vector<double>(8, 1.0), {});
  std::mt19937_64 rng(5);
  constexpr int kDraws = 40000;
  int in_first = 0;
  for (int i = 0; i < kDraws; ++i) {
    const auto k = static_cast<Eigen::Index>(Pick(kernels.cumulative, rng));
    const double x = SampleKernel(dim, kernels, k, rng);
    ASSERT_GE(x, 0);
    ASSERT_LE(x, 10);
    in_first += x <= 2;
  }
  // The mixture's mass on [0, 2] (Optuna's _log_gauss_mass): 0.27835.
  EXPECT_NEAR(static_cast<double>(in_first) / kDraws, 0.2783539176595563, 0.01);

  const Dim integers = DimOf(R"({"randint": [0, 10]})");
  const NumericKernels binned = FitNumeric(integers, {1, 2, 2, 7}, {1, 1, 1, 1}, {});
  int twos = 0;
  for (int i = 0; i < kDraws; ++i) {
    const auto k = static_cast<Eigen::Index>(Pick(binned.cumulative, rng));
    const double x = SampleKernel(integers, binned, k, rng);
    ASSERT_EQ(x, std::round(x));
    ASSERT_GE(x, 0);
    ASSERT_LE(x, 9);
    twos += x == 2;
  }
  EXPECT_NEAR(static_cast<double>(twos) / kDraws, std::exp(-1.8185779237480255), 0.01);
}

TEST(TpeEstimatorTest, CategoricalMixture) {
  const Dim dim = DimOf(R"({"choice": ["a", "b", "c"]})");
  // Weights 1/7 each and 4/7 for the prior; base = 4 / (3 + 1) = 1, so an observed choice's
  // kernel puts 2/4 on it and 1/4 on each other choice.
  ParzenOptions options;
  const CategoricalKernels kernels = FitCategorical(dim, {0, 0, 2}, {1, 1, 1}, options);
  EXPECT_DOUBLE_EQ(kernels.base, 1.0);
  ASSERT_EQ(kernels.probs.size(), 3u);
  EXPECT_DOUBLE_EQ(kernels.probs[0], 7.75 / 21);
  EXPECT_DOUBLE_EQ(kernels.probs[1], 6.25 / 21);
  EXPECT_DOUBLE_EQ(kernels.probs[2], 7.0 / 21);
  EXPECT_DOUBLE_EQ(kernels.cumulative.back(), 1.0);

  // Kernel by weight, then a choice from the kernel: the same distribution.
  std::vector<double> cumulative;
  double sum = 0;
  for (Eigen::Index k = 0; k < kernels.weight.size(); ++k) cumulative.push_back(sum += kernels.weight[k]);
  std::mt19937_64 rng(9);
  constexpr int kDraws = 40000;
  int counts[3] = {0, 0, 0};
  for (int i = 0; i < kDraws; ++i) {
    const auto k = static_cast<Eigen::Index>(Pick(cumulative, rng));
    ++counts[SampleChoice(dim, kernels, k, rng)];
  }
  for (int c = 0; c < 3; ++c) {
    EXPECT_NEAR(static_cast<double>(counts[c]) / kDraws, kernels.probs[static_cast<std::size_t>(c)],
                0.01)
        << c;
  }
}

TEST(TpeEstimatorTest, JointMixtureMatchesAHandBuiltOne) {
  Space space = ParseSpace(
      Json::parse(R"({"x": {"uniform": [0, 10]}, "c": {"choice": ["a", "b", "c"]}})"));
  std::vector<Dim> dims;
  for (const Parameter& parameter : space.parameters()) dims.push_back(MakeDim(parameter));
  const std::size_t x = space.parameters()[0].path == "x" ? 0 : 1, c = 1 - x;
  // Members (x, c): m0 = (6, b), m1 = (2, a), m2 = (7, b). Per dimension, sorted by coordinate.
  JointObservations observations;
  observations.weights = {1, 1, 1};
  observations.sorted_x.resize(2);
  observations.member.resize(2);
  observations.sorted_x[x] = {2, 6, 7};
  observations.member[x] = {1, 0, 2};
  observations.sorted_x[c] = {0, 1, 1};
  observations.member[c] = {1, 0, 2};
  JointEstimator joint(dims, observations, ParzenOptions{});
  // Widths in x: 3 (m1), 2 (m0, m2; clipped to 10 / 5); kernel weights 1/4 with the prior's.
  // Categorical factors with base 1: 2/4 on the member's choice, 1/4 elsewhere; prior 1/3.
  const double cases[][3] = {{6.5, 1, -2.766527857582138},
                             {2.0, 0, -3.4122244072656103},
                             {9.0, 2, -3.8631706680435602}};
  for (const auto& k : cases) {
    std::vector<double> point(2);
    point[x] = k[0];
    point[c] = k[1];
    EXPECT_NEAR(joint.LogPdf(point), k[2], 1e-5) << k[0];
    EXPECT_NEAR(joint.LogPdf(point), k[2], 1e-5) << "cached " << k[0];
  }
  std::mt19937_64 rng(1);
  for (int i = 0; i < 1000; ++i) {
    const std::vector<double> point = joint.Sample(rng);
    ASSERT_GE(point[x], 0);
    ASSERT_LE(point[x], 10);
    ASSERT_TRUE(point[c] == 0 || point[c] == 1 || point[c] == 2);
  }
}

TEST(TpeEstimatorTest, JointOverOneDimensionIsTheUnivariateMixture) {
  const std::vector<Dim> dims = {DimOf(R"({"uniform": [-3, 4]})")};
  const std::vector<double> sorted = {-2.5, -1, 0.25, 0.3, 2, 3.9};
  const std::vector<double> weights = {0.2, 1, 1, 0.6, 1, 1};
  // The i-th smallest coordinate is member[i]'s: members are not in coordinate order.
  const std::vector<std::size_t> member = {3, 0, 5, 1, 4, 2};
  JointObservations observations;
  observations.sorted_x = {sorted};
  observations.member = {member};
  observations.weights.resize(sorted.size());
  for (std::size_t i = 0; i < sorted.size(); ++i) observations.weights[member[i]] = weights[i];
  for (bool width_free : {false, true}) {
    ParzenOptions options;
    options.width_free = width_free;
    JointEstimator joint(dims, observations, options);
    const NumericKernels univariate = FitNumeric(dims[0], sorted, weights, options);
    for (double x = -3; x <= 4; x += 0.37) {
      EXPECT_NEAR(joint.LogPdf({x}), MixtureLogDensity(dims[0], univariate, x), 1e-5) << x;
    }
  }
}

// Update() on a persistent estimator, as the searcher calls it (members join, leave and change
// weight from one suggestion to the next, now and then most of them at once), must give the
// estimator a fresh Fit() builds on the same members, bit for bit: every density and every draw.
TEST(TpeEstimatorTest, UpdatedEstimatorIsTheFreshlyFittedOne) {
  Space space = ParseSpace(Json::parse(R"({"a": {"uniform": [0, 10]},
      "b": {"loguniform": [0.0001, 1]}, "n": {"randint": [0, 12]},
      "c": {"choice": ["x", "y", "z"]}, "f": {"uniform": [-1, 1]}})"));
  std::vector<Dim> dims;
  for (const Parameter& parameter : space.parameters()) dims.push_back(MakeDim(parameter));
  for (std::size_t d = 0; d < dims.size(); ++d) {
    if (space.parameters()[d].path == "f") dims[d].fixed = true;  // another group's parameter
  }
  // A pool of trials (kernel-space rows); continuous coordinates repeat now and then.
  std::mt19937_64 rng(5);
  std::uniform_real_distribution<double> unit(0, 1);
  std::vector<std::vector<double>> rows(1000, std::vector<double>(dims.size()));
  for (std::size_t t = 0; t < rows.size(); ++t) {
    for (std::size_t d = 0; d < dims.size(); ++d) {
      const Dim& dim = dims[d];
      if (dim.categorical) {
        rows[t][d] = static_cast<double>(rng() % dim.choices);
      } else if (t > 0 && unit(rng) < 0.1) {
        rows[t][d] = rows[rng() % t][d];
      } else {
        const double x = dim.low + unit(rng) * (dim.high - dim.low);
        rows[t][d] = dim.binned ? Snap(dim, x) : x;
      }
    }
  }
  const RowOf row = [&](std::size_t key) { return rows[key].data(); };
  struct Variant {
    ParzenOptions options;
    bool scott;
  };
  std::vector<Variant> variants(5);
  variants[1].options.consider_endpoints = true;
  variants[2].options.prior_neighbour = false;
  variants[3].options.width_free = true;
  variants[3].options.prior_weight = 2.5;
  variants[4].scott = true;
  for (std::size_t v = 0; v < 2 * variants.size(); ++v) {
    const Variant& variant = variants[v / 2];
    // Starting from 5 members (fewer than 100: every width recomputed) or from 150 (past 100
    // only the moved members' neighbours are).
    const std::size_t start = v % 2 == 0 ? 5 : 150;
    JointEstimator updated;
    std::vector<std::size_t> members;  // ascending keys
    std::size_t next = 0;
    for (int step = 0; step < 400; ++step) {
      if (step % 97 == 96) {  // most members replaced at once: a fresh fit inside Update()
        members.erase(members.begin(), members.begin() + static_cast<std::ptrdiff_t>(members.size() * 3 / 4));
      }
      for (int i = 0; i < 3; ++i) {
        if (members.size() > 1 && unit(rng) < 0.3) {
          members.erase(members.begin() + static_cast<std::ptrdiff_t>(rng() % members.size()));
        }
      }
      const std::size_t join = step == 0 ? start : step % 97 == 96 ? 120 : unit(rng) < 0.9 ? 1 : 0;
      for (std::size_t i = 0; i < join && next < rows.size(); ++i) members.push_back(next++);
      if (members.empty()) members.push_back(next++);
      // A member that left may come back (a trial moving between the good and the bad set).
      if (unit(rng) < 0.2) {
        const std::size_t back = rng() % next;
        auto at = std::lower_bound(members.begin(), members.end(), back);
        if (at == members.end() || *at != back) members.insert(at, back);
      }
      JointMembers set;
      set.keys = members;
      for (std::size_t i = 0; i < members.size(); ++i) set.weights.push_back(0.1 + unit(rng));
      updated.Update(dims, set, row, variant.options, variant.scott);
      // The same members for Fit(): per dimension sorted by coordinate, then by key.
      JointObservations observations;
      observations.weights = set.weights;
      observations.sorted_x.resize(dims.size());
      observations.member.resize(dims.size());
      for (std::size_t d = 0; d < dims.size(); ++d) {
        std::vector<std::pair<double, std::size_t>> by_x;
        for (std::size_t i = 0; i < members.size(); ++i) by_x.emplace_back(rows[members[i]][d], i);
        std::sort(by_x.begin(), by_x.end());
        for (const auto& [x, i] : by_x) {
          observations.sorted_x[d].push_back(x);
          observations.member[d].push_back(i);
        }
      }
      JointEstimator fresh(dims, observations, variant.options, variant.scott);
      const std::uint64_t seed = rng();
      std::mt19937_64 a(seed), b(seed);
      for (int i = 0; i < 6; ++i) {
        const std::vector<double> x = fresh.Sample(a);
        ASSERT_EQ(updated.Sample(b), x) << "variant " << v << " step " << step;
        ASSERT_EQ(updated.LogPdf(x), fresh.LogPdf(x)) << "variant " << v << " step " << step;
      }
    }
  }
}

// The AVX2 scoring loops give the portable ones' results bit for bit (search/tpe_simd.h), at
// sizes with and without a tail; where the CPU has no AVX2 both runs take the portable loops.
TEST(TpeEstimatorTest, ScoringLoopsAgreeBitForBitWithAndWithoutAvx2) {
  std::mt19937_64 rng(3);
  std::uniform_real_distribution<float> unit(-1, 1);
  for (std::ptrdiff_t n : {1, 7, 8, 9, 31, 200, 2003}) {
    std::vector<float> base(n), mu0(n), inv0(n), mu1(n), inv1(n), t0(n), t1(n);
    for (std::ptrdiff_t k = 0; k < n; ++k) {
      base[k] = 10 * unit(rng);
      mu0[k] = unit(rng);
      inv0[k] = 50 * std::fabs(unit(rng)) + 1;
      mu1[k] = unit(rng);
      inv1[k] = 50 * std::fabs(unit(rng)) + 1;
      t0[k] = -std::fabs(unit(rng)) * 20;
      t1[k] = -std::fabs(unit(rng)) * 20;
    }
    struct Out {
      std::vector<float> one, two, added, kept;
      float top = 0;
      std::ptrdiff_t n_kept = 0;
    };
    auto run = [&](bool avx2) {
      simd::SetAvx2(avx2);
      Out out;
      out.one.resize(n);
      out.two.resize(n);
      simd::SubtractHalfSquares(base.data(), 0.3f, mu0.data(), inv0.data(), 0, nullptr, nullptr,
                                out.one.data(), n);
      simd::SubtractHalfSquares(base.data(), 0.3f, mu0.data(), inv0.data(), -0.2f, mu1.data(),
                                inv1.data(), out.two.data(), n);
      out.added = out.two;
      simd::AddTerms(out.added.data(), t0.data(), t1.data(), n);
      simd::AddTerms(out.added.data(), t0.data(), nullptr, n);
      out.top = simd::Max(out.added.data(), n);
      out.kept.resize(n);
      out.n_kept = simd::KeepAbove(out.added.data(), out.top, out.top - 30, out.kept.data(), n);
      out.kept.resize(out.n_kept);
      return out;
    };
    const Out portable = run(false);
    const Out wide = run(true);
    simd::SetAvx2(true);
    EXPECT_EQ(wide.one, portable.one) << n;
    EXPECT_EQ(wide.two, portable.two) << n;
    EXPECT_EQ(wide.added, portable.added) << n;
    EXPECT_EQ(wide.top, portable.top) << n;
    EXPECT_EQ(wide.kept, portable.kept) << n;
    EXPECT_GT(portable.n_kept, 0);
  }
}

}  // namespace
}  // namespace tune
