// The binsearch batch-size finder: the pure search, and Trainer::FindBatchSize with a memory
// budget standing in for the device's memory (no model change, training afterwards identical
// to a plain run at the found size).
#include <sstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/trainer/synthetic_data.h"
#include "trainer/batch_size_finder.h"
#include "trainer/config.h"
#include "trainer/data.h"
#include "trainer/trainer.h"

namespace tune {
namespace {

TEST(BinsearchBatchSizeTest, DoublesThenBisectsToTheLargestFit) {
  std::vector<int> tried;
  auto under_300 = [&](int size) {
    tried.push_back(size);
    return size <= 300;
  };
  EXPECT_EQ(BinsearchBatchSize({128, 0, 0, 40}, under_300), 300);
  EXPECT_EQ(tried, (std::vector<int>{128, 256, 512, 384, 320, 288, 304, 296, 300, 302, 301}));
  // A cap counts as a failure above it and is never exceeded; a limit (the dataset) likewise.
  tried.clear();
  EXPECT_EQ(BinsearchBatchSize({128, 200, 0, 40}, under_300), 200);
  EXPECT_EQ(tried, (std::vector<int>{128, 200}));
  EXPECT_EQ(BinsearchBatchSize({512, 250, 0, 40}, under_300), 250);
  EXPECT_EQ(BinsearchBatchSize({64, 0, 100, 40}, under_300), 100);
  // Nothing fits: 0; the initial size failing searches below it.
  EXPECT_EQ(BinsearchBatchSize({128, 0, 0, 40}, [](int) { return false; }), 0);
  EXPECT_EQ(BinsearchBatchSize({1024, 0, 0, 40}, under_300), 300);
  // max_trials bounds the calls.
  int calls = 0;
  BinsearchBatchSize({1, 0, 0, 5}, [&](int) { return ++calls > 0; });
  EXPECT_EQ(calls, 5);
}

TEST(BinsearchBatchSizeTest, RecognisesOutOfMemoryErrors) {
  EXPECT_TRUE(IsOutOfMemory(std::bad_alloc()));
  EXPECT_FALSE(IsOutOfMemory(std::runtime_error("out of memory")));  // not from the allocator
  try {
    // 2^60 floats: the CPU allocator refuses.
    torch::empty({1LL << 60}, torch::kFloat);
    ADD_FAILURE() << "allocated 4 EiB";
  } catch (const std::exception& error) {
    EXPECT_TRUE(IsOutOfMemory(error)) << error.what();
  }
}

TEST(TrainerBatchSizeFinderTest, BudgetOf300GivesThe300AndLeavesTheModelUntouched) {
  testing::ScratchDir dir;
  testing::WriteSeparableMnist(dir.path(), 1000, 100);
  Json json = testing::SmallConfig(dir.path());
  json["batch_size"] = 32;
  json["model"]["dropout"] = 0.2;  // the trial steps draw dropout masks: the RNG must come back
  TrainerConfig config = ParseTrainerConfig(json);
  std::ostringstream log;
  Trainer trainer(config, LoadDataset(config), nullptr, log);
  std::vector<torch::Tensor> before;
  for (const auto& p : trainer.model()->parameters()) before.push_back(p.detach().clone());
  std::vector<int> tried;
  const int found = trainer.FindBatchSize([&](int size) {
    tried.push_back(size);
    return size <= 300;
  });
  EXPECT_EQ(found, 300);
  EXPECT_EQ(trainer.batch_size(), 300);
  EXPECT_EQ(tried, (std::vector<int>{32, 64, 128, 256, 512, 384, 320, 288, 304, 296, 300, 302, 301}));
  auto after = trainer.model()->parameters();
  for (std::size_t i = 0; i < before.size(); ++i) EXPECT_TRUE(torch::equal(before[i], after[i])) << i;

  // Training after the search equals a run configured with batch_size 300 from the start:
  // weights, optimizer state and RNG were all restored.
  FitResult searched = trainer.Fit();
  json["batch_size"] = 300;
  TrainerConfig plain_config = ParseTrainerConfig(json);
  Trainer plain(plain_config, LoadDataset(plain_config), nullptr, log);
  FitResult direct = plain.Fit();
  EXPECT_EQ(testing::WithoutTimings(searched.history), testing::WithoutTimings(direct.history));
  auto p1 = trainer.model()->parameters(), p2 = plain.model()->parameters();
  for (std::size_t i = 0; i < p1.size(); ++i) EXPECT_TRUE(torch::equal(p1[i], p2[i])) << i;
}

TEST(TrainerBatchSizeFinderTest, ConfigKeyRunsItWithTheCap) {
  testing::ScratchDir dir;
  testing::WriteSeparableMnist(dir.path(), 400, 50);
  Json json = testing::SmallConfig(dir.path());
  json["auto_batch_size"] = true;
  json["max_batch_size"] = 96;
  json["max_epochs"] = 1;
  TrainerConfig config = ParseTrainerConfig(json);
  std::ostringstream log;
  Trainer trainer(config, LoadDataset(config), nullptr, log);
  FitResult result = trainer.Fit();
  EXPECT_EQ(trainer.batch_size(), 96);
  EXPECT_THAT(log.str(), ::testing::HasSubstr("auto_batch_size: batch_size 96"));
  EXPECT_EQ(result.history.back()["step"].get<int>(), (400 + 95) / 96);
}

}  // namespace
}  // namespace tune
