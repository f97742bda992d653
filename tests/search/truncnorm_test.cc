#include "search/truncnorm.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

namespace tune {
namespace {

// log P(a <= Z <= b) from Optuna 5.0's _truncnorm._log_gauss_mass (log_ndtr-based, accurate in
// the tails).
struct MassCase {
  double a, b, log_mass;
};
const MassCase kMasses[] = {
    {-1, 2, -0.20016629432446262},     {0.5, 1.5, -1.4199324821566266},
    {-3, -2, -3.8443534263342047},     {2, 30, -3.783184333682031},
    {-30, -8, -35.013437159914545},    {-0.1, 0.1, -2.5300420015472382},
    {5, 6, -15.06844609652945},        {10, 11, -53.231310225583115},
    {-12, -11, -63.82494339220964},
};

TEST(TruncNormTest, LogNormalMassMatchesOptuna) {
  for (const MassCase& c : kMasses) {
    EXPECT_NEAR(LogNormalMass(c.a, c.b), c.log_mass, 1e-12 * std::fabs(c.log_mass) + 1e-14)
        << c.a << ", " << c.b;
  }
}

TEST(TruncNormTest, LogNormalMassIsExactlyZeroOverTheWholeLineAndClampedFarOut) {
  EXPECT_EQ(LogNormalMass(-9, 9), 0.0);
  EXPECT_EQ(LogNormalMass(-INFINITY, INFINITY), 0.0);
  // Just inside +-8.5 the mass is computed (and is 1 to double precision).
  EXPECT_NEAR(LogNormalMass(-8, 9), 0.0, 1e-15);
  EXPECT_EQ(LogNormalMass(40, 41), std::log(1e-300));
}

TEST(TruncNormTest, NormalMassIsWithinAbramowitzStegunsError) {
  Eigen::ArrayXd za(std::size(kMasses)), zb(std::size(kMasses));
  for (std::size_t i = 0; i < std::size(kMasses); ++i) {
    za[static_cast<Eigen::Index>(i)] = kMasses[i].a;
    zb[static_cast<Eigen::Index>(i)] = kMasses[i].b;
  }
  const Eigen::ArrayXd mass = NormalMass(za, zb);
  for (std::size_t i = 0; i < std::size(kMasses); ++i) {
    const double exact = std::exp(kMasses[i].log_mass);
    const double got = mass[static_cast<Eigen::Index>(i)];
    EXPECT_NEAR(got, exact, 1.5e-7) << kMasses[i].a << ", " << kMasses[i].b;
    // Tails stay positive and within a few percent (1.4% at worst on a grid over [-9, 9], 2.5%
    // on [-12, -11]).
    EXPECT_NEAR(got / exact, 1.0, 0.03) << kMasses[i].a << ", " << kMasses[i].b;
  }
  // Everything on an interval, nothing (but the floor) on an empty one.
  Eigen::ArrayXd lo(2), hi(2);
  lo << -40, 1;
  hi << 40, 1;
  const Eigen::ArrayXd edge = NormalMass(lo, hi);
  EXPECT_NEAR(edge[0], 1.0, 1e-15);
  EXPECT_EQ(edge[1], 1e-300);
}

// Mean and variance of N(mu, sigma) truncated to [low, high] (closed form, Optuna's _ndtr).
struct Truncated {
  double mu, sigma, low, high, mean, variance;
};

TEST(TruncNormTest, SamplesHaveTheTruncatedMeanAndVariance) {
  const Truncated cases[] = {
      {0.3, 0.5, 0, 1, 0.4422479990456062, 0.0710215448397199},
      {2, 1, 0, 1, 0.6168309533684473, 0.07274288610060164},  // mostly outside: rejection
      {0, 1, -1, 3, 0.28278611072715404, 0.6161417353578292},
  };
  std::mt19937_64 rng(11);
  constexpr int kDraws = 200000;
  for (const Truncated& c : cases) {
    double sum = 0, sum_sq = 0;
    for (int i = 0; i < kDraws; ++i) {
      const double x = SampleTruncatedNormal(c.mu, c.sigma, c.low, c.high, rng);
      ASSERT_GE(x, c.low);
      ASSERT_LE(x, c.high);
      sum += x;
      sum_sq += x * x;
    }
    const double mean = sum / kDraws;
    const double variance = sum_sq / kDraws - mean * mean;
    // Five standard errors.
    EXPECT_NEAR(mean, c.mean, 5 * std::sqrt(c.variance / kDraws)) << c.mu << " " << c.sigma;
    EXPECT_NEAR(variance, c.variance, 0.02 * c.variance) << c.mu << " " << c.sigma;
  }
}

TEST(TruncNormTest, AKernelWithNoMassOnTheIntervalGivesItsNearestBound) {
  std::mt19937_64 rng(0);
  EXPECT_EQ(SampleTruncatedNormal(10, 0.1, 0, 1, rng), 1.0);
  EXPECT_EQ(SampleTruncatedNormal(-10, 0.1, 0, 1, rng), 0.0);
}

TEST(TruncNormTest, UniformAndNormalDraws) {
  std::mt19937_64 rng(3), copy(3);
  // Uniform01 is the top 53 bits of one draw; StandardNormal takes two.
  EXPECT_EQ(Uniform01(rng), static_cast<double>(copy() >> 11) / 9007199254740992.0);
  StandardNormal(rng);
  copy();
  copy();
  EXPECT_EQ(rng(), copy());
  double sum = 0, sum_sq = 0, low = 1, high = 0;
  constexpr int kDraws = 100000;
  for (int i = 0; i < kDraws; ++i) {
    const double u = Uniform01(rng);
    low = std::min(low, u);
    high = std::max(high, u);
    const double z = StandardNormal(rng);
    sum += z;
    sum_sq += z * z;
  }
  EXPECT_GE(low, 0.0);
  EXPECT_LT(high, 1.0);
  EXPECT_NEAR(sum / kDraws, 0.0, 5 / std::sqrt(kDraws));
  EXPECT_NEAR(sum_sq / kDraws, 1.0, 0.02);
}

}  // namespace
}  // namespace tune
