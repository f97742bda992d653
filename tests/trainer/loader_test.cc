// BatchLoader (same batches in the same order with and without workers, errors surface),
// ResolveDevice on a machine without CUDA, and the one-time normalisation of staged images.
#include <chrono>
#include <cstdlib>
#include <sstream>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/trainer/synthetic_data.h"
#include "trainer/config.h"
#include "trainer/data.h"
#include "trainer/device.h"
#include "trainer/loader.h"
#include "trainer/trainer.h"

namespace tune {
namespace {

using ::testing::HasSubstr;

// Batch i: rows i*5 .. i*5+4 of a fixed tensor; odd batches take longer, so with two workers
// they finish out of order and the loader must put them back in order.
Batch SlowGather(const torch::Tensor& data, std::int64_t i) {
  std::this_thread::sleep_for(std::chrono::milliseconds(i % 2 ? 6 : 1));
  torch::Tensor rows = torch::arange(i * 5, i * 5 + 5, torch::kLong);
  return Batch{data.index_select(0, rows), rows, {}, {}};
}

TEST(BatchLoaderTest, SameBatchesInTheSameOrderWithZeroAndTwoWorkers) {
  torch::Tensor data = torch::randn({200, 3});
  std::vector<std::vector<torch::Tensor>> seen(2);
  for (int workers : {0, 2}) {
    BatchLoader loader(40, [&](std::int64_t i) { return SlowGather(data, i); }, workers, torch::kCPU);
    while (auto batch = loader.Next()) seen[workers == 0 ? 0 : 1].push_back(batch->x);
  }
  ASSERT_EQ(seen[0].size(), 40u);
  ASSERT_EQ(seen[1].size(), 40u);
  for (std::size_t i = 0; i < 40; ++i) {
    EXPECT_TRUE(torch::equal(seen[0][i], seen[1][i])) << i;
    EXPECT_TRUE(torch::equal(seen[0][i], data.slice(0, 5 * i, 5 * i + 5))) << i;
  }
}

TEST(BatchLoaderTest, WorkerErrorsReachTheConsumerAndEarlyExitJoins) {
  BatchLoader failing(10, [](std::int64_t i) -> Batch {
    if (i == 3) throw std::runtime_error("gather failed at 3");
    return Batch{torch::zeros({1}), torch::zeros({1}, torch::kLong), {}, {}};
  }, 2, torch::kCPU);
  std::string message;
  try {
    while (failing.Next()) {
    }
  } catch (const std::runtime_error& error) {
    message = error.what();
  }
  EXPECT_EQ(message, "gather failed at 3");
  // Dropped after one batch of many: the destructor stops and joins the workers.
  torch::Tensor data = torch::randn({500, 3});
  auto loader = std::make_unique<BatchLoader>(100, [&](std::int64_t i) { return SlowGather(data, i); }, 3,
                                              torch::kCPU);
  ASSERT_TRUE(loader->Next().has_value());
  loader.reset();
}

TEST(BatchLoaderTest, TrainingWithTwoWorkersEqualsTrainingWithout) {
  testing::ScratchDir dir;
  testing::WriteSeparableMnist(dir.path(), 600, 100);
  std::vector<std::vector<torch::Tensor>> params;
  std::vector<Json> histories;
  for (int workers : {0, 2}) {
    Json json = testing::SmallConfig(dir.path());
    json["num_workers"] = workers;
    json["model"]["dropout"] = 0.2;
    TrainerConfig config = ParseTrainerConfig(json);
    std::ostringstream log;
    Trainer trainer(config, LoadDataset(config), nullptr, log);
    FitResult result = trainer.Fit();
    histories.push_back(testing::WithoutTimings(result.history));
    params.emplace_back();
    for (const auto& p : trainer.model()->parameters()) params.back().push_back(p.detach().clone());
  }
  EXPECT_EQ(histories[0], histories[1]);
  for (std::size_t i = 0; i < params[0].size(); ++i) EXPECT_TRUE(torch::equal(params[0][i], params[1][i])) << i;
}

TEST(DeviceTest, CpuHereAndCudaRefusedWithAReason) {
  EXPECT_EQ(ResolveDevice("cpu"), torch::Device(torch::kCPU));
  if (torch::cuda::is_available()) GTEST_SKIP() << "this machine has a GPU";
  EXPECT_EQ(ResolveDevice("auto"), torch::Device(torch::kCPU));
  try {
    ResolveDevice("cuda");
    ADD_FAILURE() << "device cuda without CUDA did not throw";
  } catch (const std::runtime_error& error) {
    EXPECT_THAT(error.what(), HasSubstr("device cuda"));
  }
  setenv("CUDA_VISIBLE_DEVICES", "", 1);
  EXPECT_EQ(ResolveDevice("auto"), torch::Device(torch::kCPU));
  unsetenv("CUDA_VISIBLE_DEVICES");
  EXPECT_THROW(ParseTrainerConfig(Json{{"device", "tpu"}}), ConfigError);
}

TEST(StagingTest, StagedBatchesEqualPerBatchNormalisation) {
  testing::ScratchDir dir;
  testing::WriteSeparableMnist(dir.path(), 300, 50);
  TrainerConfig config = ParseTrainerConfig(testing::SmallConfig(dir.path()));
  Dataset raw = LoadDataset(config);
  Dataset staged = LoadDataset(config);
  StageNormalised(staged, torch::kCPU);
  ASSERT_TRUE(staged.train.normalised.defined());
  EXPECT_EQ(StagedBytes(raw), (300 + 50) * 16 * 4);
  torch::Tensor indices = torch::randperm(300, torch::kLong).slice(0, 0, 64);
  auto [x_raw, y_raw] = GatherBatch(raw, raw.train, indices);
  auto [x_staged, y_staged] = GatherBatch(staged, staged.train, indices);
  EXPECT_TRUE(torch::equal(x_raw, x_staged));
  EXPECT_TRUE(torch::equal(y_raw, y_staged));
}

}  // namespace
}  // namespace tune
