#include "schedulers/streaming_percentile.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "core/numpy.h"

namespace tune {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

std::uint64_t Bits(double value) {
  std::uint64_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  return bits;
}

// The structure's answer must be NanPercentile's, to the bit: both NaN, or equal with the same
// bits (a zero may differ in sign only, which NanPercentile's sort does not fix either).
void ExpectSame(const StreamingNanPercentile& streaming, const std::vector<double>& values,
                double q) {
  const double expected = NanPercentile(values, q);
  const double actual = streaming.Value();
  if (std::isnan(expected)) {
    EXPECT_TRUE(std::isnan(actual)) << "q=" << q << " n=" << values.size() << " got " << actual;
    return;
  }
  EXPECT_EQ(actual, expected) << "q=" << q << " n=" << values.size();
  if (expected != 0) {
    EXPECT_EQ(Bits(actual), Bits(expected)) << "q=" << q;
  }
}

// Feeds `values` one at a time, comparing after each.
void Check(const std::vector<double>& values, double q) {
  StreamingNanPercentile streaming(q);
  std::vector<double> so_far;
  for (double value : values) {
    streaming.Add(value);
    so_far.push_back(value);
    ASSERT_EQ(streaming.size(), so_far.size());
    ExpectSame(streaming, so_far, q);
    if (::testing::Test::HasFailure()) return;
  }
}

// ASHA's quantiles (rf 2, 3, 4, 1.5, 10) and the edges.
const double kQuantiles[] = {
    (1 - 1 / 2.0) * 100, (1 - 1 / 3.0) * 100, (1 - 1 / 4.0) * 100, (1 - 1 / 1.5) * 100,
    (1 - 1 / 10.0) * 100, 0, 100, 50, 99.99999999999999, 1e-12};

TEST(StreamingNanPercentile, EmptyIsNaN) {
  StreamingNanPercentile streaming(75);
  EXPECT_TRUE(streaming.empty());
  EXPECT_TRUE(std::isnan(streaming.Value()));
  streaming.Add(kNaN);
  EXPECT_FALSE(streaming.empty());
  EXPECT_TRUE(std::isnan(streaming.Value()));
}

TEST(StreamingNanPercentile, OneValue) {
  for (double q : kQuantiles) {
    for (double value : {0.5, -3.0, 0.0, kInf, -kInf, 1e308, -5e-324}) {
      Check({value}, q);
      Check({kNaN, value, kNaN}, q);
    }
  }
}

TEST(StreamingNanPercentile, InfinitiesGiveNumpysNaNs) {
  for (double q : kQuantiles) {
    Check({kInf, kInf, 1.0, -kInf, kNaN, 2.0, -kInf, kInf}, q);
    Check({-kInf, -kInf, -kInf}, q);
    Check({1.0, kInf}, q);
  }
}

TEST(StreamingNanPercentile, SortedAndReversedStreams) {
  std::vector<double> up, down;
  for (int i = 0; i < 300; ++i) {
    up.push_back(i * 0.1);
    down.push_back(-i * 0.1);
  }
  for (double q : kQuantiles) {
    Check(up, q);
    Check(down, q);
  }
}

// Random streams: few distinct values (many ties), NaN, infinities, wide magnitudes.
TEST(StreamingNanPercentile, RandomStreamsMatchNanPercentile) {
  std::mt19937_64 rng(19);
  std::uniform_real_distribution<double> unit(0, 1);
  std::uniform_int_distribution<int> small(-3, 3);
  std::uniform_int_distribution<int> kind(0, 99);
  for (int stream = 0; stream < 60; ++stream) {
    const int length = 1 + static_cast<int>(unit(rng) * 400);
    const int flavour = stream % 4;
    std::vector<double> values;
    for (int i = 0; i < length; ++i) {
      const int k = kind(rng);
      if (k < 5) {
        values.push_back(kNaN);
      } else if (k < 7 && flavour != 0) {
        values.push_back(k == 5 ? kInf : -kInf);
      } else if (flavour == 1) {
        values.push_back(small(rng) * 0.25);  // ties
      } else if (flavour == 2) {
        values.push_back(std::ldexp(unit(rng) - 0.5, small(rng) * 300));  // magnitudes
      } else {
        values.push_back(unit(rng));
      }
    }
    for (double q : kQuantiles) Check(values, q);
    const double random_q = unit(rng) * 100;
    Check(values, random_q);
  }
}

TEST(StreamingNanPercentile, LongStreamAtAshasQuantile) {
  std::mt19937_64 rng(7);
  std::normal_distribution<double> normal(0.8, 0.1);
  StreamingNanPercentile streaming((1 - 1 / 4.0) * 100);
  std::vector<double> values;
  for (int i = 0; i < 20000; ++i) {
    const double value = i % 97 == 0 ? kNaN : std::round(normal(rng) * 1000) / 1000;
    streaming.Add(value);
    values.push_back(value);
    if (i % 331 == 0 || i > 19900) ExpectSame(streaming, values, (1 - 1 / 4.0) * 100);
  }
}

}  // namespace
}  // namespace tune
