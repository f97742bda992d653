// core/trial.h's compact storage of many trials: TrialIndex (ids to positions) and LastResult (a
// finished trial's metrics kept as text).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <map>
#include <random>
#include <string>

#include <fmt/format.h>

#include "core/trial.h"

namespace tune {
namespace {

// Against a std::map on a random mix of the tuner's ids ("t_00001".."t_123456"), ids of
// another width or prefix, numbers with extra zeros, far numbers and arbitrary text, with
// repeated Sets and lookups of ids never set.
TEST(TrialIndexTest, AgreesWithAMapOnAnyIds) {
  for (unsigned seed = 0; seed < 20; ++seed) {
    std::mt19937 random(seed);
    TrialIndex index;
    std::map<std::string, std::size_t> expected;
    auto some_id = [&random]() -> std::string {
      const int number = static_cast<int>(random() % 300);
      switch (random() % 8) {
        case 0: return fmt::format("t_{:06d}", number);       // another width
        case 1: return fmt::format("x_{:05d}", number);       // another prefix
        case 2: return fmt::format("t_{}", number);           // unpadded
        case 3: return fmt::format("t_{:05d}", number + 10000000);  // far past the others
        case 4: return "trial" + std::to_string(random() % 5);
        case 5: return "";
        default: return fmt::format("t_{:05d}", number);
      }
    };
    // The first id decides the prefix and width: sometimes the tuner's, sometimes not.
    if (seed % 2 == 0) {
      index.Set("t_00000", 0);
      expected["t_00000"] = 0;
    }
    for (std::size_t step = 0; step < 2000; ++step) {
      const std::string id = some_id();
      if (random() % 2 == 0) {
        index.Set(id, step);
        expected[id] = step;
      }
      const std::string probe = some_id();
      auto it = expected.find(probe);
      ASSERT_EQ(index.Find(probe), it == expected.end() ? TrialIndex::kNone : it->second)
          << "seed " << seed << " id '" << probe << "'";
    }
    EXPECT_EQ(index.size(), expected.size());
    for (const auto& [id, position] : expected) EXPECT_EQ(index.At(id), position) << id;
  }
  TrialIndex index;
  index.Set("t_00001", 0);
  index.Set("t_123456", 1);  // past five digits: the tuner's ids grow wider
  EXPECT_EQ(index.Find("t_123456"), 1u);
  EXPECT_EQ(index.Find("t_0123456"), TrialIndex::kNone);
  EXPECT_EQ(index.Find("t_1"), TrialIndex::kNone);
  EXPECT_THROW(index.At("t_00002"), std::out_of_range);
}

Result Sample() {
  Result result;
  result.training_iteration = 9;
  result.time_total_s = 1.25;
  result.timestamp = 1795959155.296;
  result.metrics = Json::parse(R"({"score": 0.1, "iter": 9, "big": 18446744073709551615,
      "neg": -3, "f": 1.0, "tiny": 4.9e-324, "s": "text \u00e9", "nested": {"a": [1, 2.5, null]},
      "flag": true})");
  result.metrics["third"] = 1.0 / 3;
  return result;
}

// Compact keeps exactly what it was given: the same Result (every number type and value, text,
// nesting) through Get, Decoded and the Result read back, and copies of either form.
TEST(LastResultTest, CompactRoundTripsEveryValue) {
  const Result original = Sample();
  LastResult last = original;
  ASSERT_TRUE(last);
  last.Compact();
  EXPECT_TRUE(last.compact());
  EXPECT_EQ(last.Get("score"), 0.1);
  EXPECT_EQ(last.Get("training_iteration"), 9);
  EXPECT_EQ(last.Get("time_total_s"), 1.25);
  EXPECT_TRUE(std::isnan(last.Get("s")));
  EXPECT_TRUE(std::isnan(last.Get("missing")));
  EXPECT_TRUE(last.compact());  // Get and Decoded leave it compact
  const Result decoded = last.Decoded();
  EXPECT_TRUE(last.compact());
  EXPECT_EQ(decoded.metrics.dump(), original.metrics.dump());
  const LastResult copy = last;  // a copy of the compact form
  EXPECT_EQ(copy->metrics.dump(), original.metrics.dump());
  EXPECT_EQ(last->metrics, original.metrics);  // read: expanded for good
  EXPECT_FALSE(last.compact());
  for (const auto& [key, value] : original.metrics.items()) {
    EXPECT_EQ(last->metrics[key].dump(), value.dump()) << key;
    EXPECT_EQ(last->metrics[key].is_number_float(), value.is_number_float()) << key;
  }
  EXPECT_EQ(last->metrics["third"].get<double>(), 1.0 / 3);
  EXPECT_EQ(last->training_iteration, 9);
  EXPECT_EQ(last->time_total_s, 1.25);
  EXPECT_EQ(last->timestamp, 1795959155.296);
  // Writable as an optional's value, then compact again.
  last->metrics["score"] = 0.7;
  last.Compact();
  EXPECT_EQ(last.Get("score"), 0.7);
  EXPECT_EQ((*last).metrics["score"], 0.7);
}

// What JSON text cannot hold (NaN, infinities) stays expanded; an empty or absent result has
// nothing to keep; assigning a new result or nothing replaces a compact one.
TEST(LastResultTest, NonFiniteAndEmptyStayAsTheyAre) {
  Result result = Sample();
  result.metrics["nested"]["a"].push_back(std::numeric_limits<double>::infinity());
  LastResult last = result;
  last.Compact();
  EXPECT_FALSE(last.compact());
  EXPECT_TRUE(std::isinf(last->metrics["nested"]["a"][3].get<double>()));
  result.metrics = {{"loss", std::nan("")}};
  last = result;
  last.Compact();
  EXPECT_FALSE(last.compact());
  EXPECT_TRUE(std::isnan(last.Get("loss")));
  last = Result();
  last.Compact();
  EXPECT_FALSE(last.compact());
  EXPECT_TRUE(last);
  last = Sample();
  last.Compact();
  last = std::nullopt;
  EXPECT_FALSE(last);
  EXPECT_TRUE(std::isnan(last.Get("score")));
  last.Compact();
  EXPECT_FALSE(last.has_value());
  last = Sample();
  last.Compact();
  Result other;
  other.metrics = {{"score", 2}};
  last = other;
  EXPECT_FALSE(last.compact());
  EXPECT_EQ(last.Get("score"), 2);
}

}  // namespace
}  // namespace tune
