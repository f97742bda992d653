#include "tuner/resources.h"

#include <cstdlib>

#include <gtest/gtest.h>

namespace tune {
namespace {

TEST(ResourcePoolTest, HalfGpuTrialsShareDevicesAndNeverOversubscribe) {
  ResourcePool pool({"0", "1", "2", "3"}, 16);
  std::vector<Allocation> held;
  std::map<std::string, int> per_device;
  for (int i = 0; i < 8; ++i) {
    auto allocation = pool.Acquire(TrialResources{0.5, 1});
    ASSERT_TRUE(allocation) << "trial " << i;
    ASSERT_EQ(allocation->gpu_ids.size(), 1u);
    ++per_device[allocation->Visible()];
    held.push_back(*allocation);
  }
  for (const auto& [device, count] : per_device) EXPECT_EQ(count, 2) << device;
  EXPECT_FALSE(pool.Acquire(TrialResources{0.5, 1}));
  EXPECT_DOUBLE_EQ(pool.gpus_used(), 4.0);
  pool.Release(held[3]);
  auto again = pool.Acquire(TrialResources{0.5, 1});
  ASSERT_TRUE(again);
  EXPECT_EQ(again->Visible(), held[3].Visible());
}

TEST(ResourcePoolTest, WholeGpusNeedFreeDevicesAndFractionsPack) {
  ResourcePool pool({"4", "5", "6"}, 8);
  auto quarter = pool.Acquire(TrialResources{0.25, 1});
  ASSERT_TRUE(quarter);
  // The next fraction packs onto the same device, keeping two whole devices free.
  auto quarter2 = pool.Acquire(TrialResources{0.25, 1});
  EXPECT_EQ(quarter2->Visible(), quarter->Visible());
  auto two = pool.Acquire(TrialResources{2, 1});
  ASSERT_TRUE(two);
  EXPECT_EQ(two->Visible(), "5,6");
  EXPECT_FALSE(pool.Acquire(TrialResources{1, 1}));
  EXPECT_EQ(pool.Describe(), "3.0/8 CPUs, 2.5/3 GPUs");
}

TEST(ResourcePoolTest, CpuSlotsLimitTrialsWithoutGpus) {
  ResourcePool pool({}, 2);
  auto a = pool.Acquire(TrialResources{0, 1});
  auto b = pool.Acquire(TrialResources{0, 1});
  EXPECT_TRUE(a && b);
  EXPECT_EQ(a->Visible(), "");
  EXPECT_FALSE(pool.Acquire(TrialResources{0, 1}));
  EXPECT_FALSE(pool.Fits(TrialResources{0.5, 1}));
  EXPECT_FALSE(pool.Fits(TrialResources{0, 3}));
  EXPECT_TRUE(pool.Fits(TrialResources{0, 2}));
}

// HasRoomFor answers what Acquire would do, and changes nothing (the tuner asks it before each
// new trial instead of acquiring and releasing, which drifted the CPU count in floating point).
TEST(ResourcePoolTest, HasRoomForAnswersAsAcquireWithoutTakingAnything) {
  ResourcePool pool({"0", "1"}, 1);
  const TrialResources tenth{0.3, 0.1};
  for (int i = 0; i < 1000; ++i) ASSERT_TRUE(pool.HasRoomFor(tenth));
  EXPECT_EQ(pool.cpus_used(), 0);
  EXPECT_EQ(pool.gpus_used(), 0);
  std::vector<Allocation> held;
  while (pool.HasRoomFor(tenth)) {
    auto allocation = pool.Acquire(tenth);
    ASSERT_TRUE(allocation.has_value());
    held.push_back(*allocation);
  }
  EXPECT_FALSE(pool.Acquire(tenth).has_value());
  EXPECT_EQ(held.size(), 6u);  // 3 per device by GPU; 10 by CPU
  EXPECT_FALSE(pool.HasRoomFor(TrialResources{1, 0}));
  pool.Release(held.back());
  EXPECT_TRUE(pool.HasRoomFor(tenth));
  EXPECT_FALSE(pool.HasRoomFor(TrialResources{1, 0}));  // no whole device is free
}

TEST(DetectGpusTest, CudaVisibleDevicesIsHonouredAndNoTestHookIs) {
  setenv("CUDA_VISIBLE_DEVICES", "", 1);
  setenv("TUNE_FAKE_GPUS", "0,1,2,3", 1);  // a stray test hook must not invent GPUs
  EXPECT_TRUE(DetectGpus().empty());
  unsetenv("TUNE_FAKE_GPUS");
  setenv("CUDA_VISIBLE_DEVICES", "2,5", 1);
  EXPECT_EQ(DetectGpus(), (std::vector<std::string>{"2", "5"}));
  setenv("CUDA_VISIBLE_DEVICES", "", 1);
  EXPECT_TRUE(DetectGpus().empty());
  unsetenv("CUDA_VISIBLE_DEVICES");
}

TEST(SelectGpusTest, AskingForMoreThanExistIsAnError) {
  EXPECT_EQ(SelectGpus({"0", "1", "2"}, 2), (std::vector<std::string>{"0", "1"}));
  try {
    SelectGpus({"0", "1"}, 8);
    FAIL();
  } catch (const SpecError& error) {
    EXPECT_STREQ(error.what(), "--gpus: asked for 8 GPUs, but only 2 visible (0,1)");
  }
  EXPECT_THROW(SelectGpus({}, 1), SpecError);
  EXPECT_TRUE(SelectGpus({}, 0).empty());
}

}  // namespace
}  // namespace tune

namespace tune {
namespace {

TEST(SelectFreeGpusTest, TakesIdleGpusLeastMemoryFirstAndNamesTheBusyOnesWhenShort) {
  const std::vector<GpuState> states = {
      {"0", 2, 30000, 81920}, {"1", 0, 900, 81920}, {"2", 0, 10, 81920}, {"3", 1, 0, 81920}};
  EXPECT_EQ(SelectFreeGpus(states, 0), (std::vector<std::string>{"2", "1"}));
  EXPECT_EQ(SelectFreeGpus(states, 1), (std::vector<std::string>{"2"}));
  try {
    SelectFreeGpus(states, 3);
    FAIL() << "3 of 2 free accepted";
  } catch (const SpecError& error) {
    EXPECT_STREQ(error.what(),
                 "--free-gpus: asked for 3 free GPUs, but only 2 of 4 are free; busy: 0 (2 processes, "
                 "29.3/80.0 GiB in use), 3 (1 process, 0.0/80.0 GiB in use)");
  }
  EXPECT_THROW(SelectFreeGpus(states, -1), SpecError);
  EXPECT_TRUE(SelectFreeGpus({{"0", 1, 0, 1}}, 0).empty());  // none free: no GPU, not an error
}

}  // namespace
}  // namespace tune
