#include "schedulers/fifo.h"

#include <gtest/gtest.h>

#include <limits>

namespace tune {
namespace {

TEST(FifoTest, AlwaysContinues) {
  FifoScheduler fifo;
  fifo.OnTrialAdd("a");
  for (std::int64_t iteration = 1; iteration <= 1000; iteration *= 10) {
    Result result;
    result.training_iteration = iteration;
    result.metrics["acc"] = -1e9 * static_cast<double>(iteration);
    EXPECT_EQ(fifo.OnResult("a", result), Decision::kContinue);
  }
  Result nan_result;
  nan_result.metrics["acc"] = std::numeric_limits<double>::quiet_NaN();
  EXPECT_EQ(fifo.OnResult("never_added", nan_result), Decision::kContinue);
  fifo.OnTrialComplete("a", nullptr);
  fifo.OnTrialError("never_added");
}

TEST(FifoTest, DescribesItselfLikeRay) {
  EXPECT_EQ(FifoScheduler().Describe(), "Using FIFO scheduling algorithm.");
}

}  // namespace
}  // namespace tune
