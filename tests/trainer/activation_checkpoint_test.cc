// Activation checkpointing (activation_checkpoint.h): the same gradients as the plain model (MLP
// and CNN, with dropout and BatchNorm; the config key through a whole Fit), and less memory held
// for backward, measured by counting the CPU allocator's live bytes (and, on a GPU, the CUDA
// caching allocator's peak).
#include "trainer/activation_checkpoint.h"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <sstream>

#include <c10/core/CPUAllocator.h>
#include <c10/core/CachingDeviceAllocator.h>
#include <gtest/gtest.h>

#include "tests/trainer/synthetic_data.h"
#include "trainer/builtin.h"
#include "trainer/trainer.h"

namespace tune {
namespace {

using testing::Copies;
using testing::MaxDifference;
using testing::ScratchDir;
using testing::WriteSeparableMnist;

// Counts the bytes of live CPU tensors allocated while installed (c10::SetCPUAllocator), and
// their peak. Never destroyed (Instance()): a tensor it allocated may be freed at any later time.
class CountingCpuAllocator : public c10::Allocator {
 public:
  static CountingCpuAllocator& Instance() {
    static auto* instance = new CountingCpuAllocator();
    return *instance;
  }
  void Install() {
    inner_ = c10::GetCPUAllocator();
    c10::SetCPUAllocator(this, /*priority=*/255);
  }
  void Uninstall() { c10::SetCPUAllocator(inner_, /*priority=*/255); }

  c10::DataPtr allocate(size_t bytes) override {
    auto* block = new Block{inner_->allocate(bytes), bytes, this};
    const std::int64_t now = live_ += static_cast<std::int64_t>(bytes);
    std::int64_t peak = peak_.load();
    while (now > peak && !peak_.compare_exchange_weak(peak, now)) {
    }
    void* data = block->inner.get();
    return {data, block, &Free, block->inner.device()};
  }
  void copy_data(void* dest, const void* src, std::size_t count) const override { default_copy_data(dest, src, count); }

  void ResetPeak() { peak_ = live_.load(); }
  std::int64_t live() const { return live_; }
  std::int64_t peak() const { return peak_; }

 private:
  struct Block {
    c10::DataPtr inner;
    std::size_t bytes;
    CountingCpuAllocator* owner;
  };
  static void Free(void* context) {
    auto* block = static_cast<Block*>(context);
    block->owner->live_ -= static_cast<std::int64_t>(block->bytes);
    delete block;
  }
  c10::Allocator* inner_ = nullptr;
  std::atomic<std::int64_t> live_{0}, peak_{0};
};

// Linear -> BatchNorm -> ReLU -> Dropout blocks and a classifier.
struct Blocks {
  std::vector<torch::nn::Sequential> blocks;
  torch::nn::Linear head{nullptr};
  std::vector<torch::Tensor> parameters() const {
    std::vector<torch::Tensor> all;
    for (const auto& block : blocks) {
      for (const auto& p : block->parameters()) all.push_back(p);
    }
    for (const auto& p : head->parameters()) all.push_back(p);
    return all;
  }
  std::vector<torch::Tensor> buffers() const {
    std::vector<torch::Tensor> all;
    for (const auto& block : blocks) {
      for (const auto& b : block->buffers()) all.push_back(b);
    }
    return all;
  }
  torch::Tensor Forward(torch::Tensor x, bool checkpointed) {
    for (auto& block : blocks) x = checkpointed ? Checkpoint(block, x) : block->forward(x);
    return head->forward(x);
  }
};

Blocks MakeBlocks(int depth, int width, int features) {
  torch::manual_seed(5);
  Blocks net;
  for (int i = 0; i < depth; ++i) {
    net.blocks.push_back(torch::nn::Sequential(torch::nn::Linear(i == 0 ? features : width, width),
                                               torch::nn::BatchNorm1d(width), torch::nn::ReLU(),
                                               torch::nn::Dropout(0.3)));
  }
  net.head = torch::nn::Linear(width, 10);
  return net;
}

// Gradients (parameters and input) and BatchNorm statistics after one forward/backward.
struct Step {
  std::vector<torch::Tensor> gradients, buffers;
  torch::Tensor input_gradient;
};

Step RunStep(Blocks& net, const torch::Tensor& x, const torch::Tensor& y, bool checkpointed) {
  for (const auto& p : net.parameters()) p.mutable_grad() = torch::Tensor();
  torch::manual_seed(11);  // the dropout masks
  torch::Tensor input = x.clone().requires_grad_(true);
  torch::nn::functional::cross_entropy(net.Forward(input, checkpointed), y).backward();
  Step step;
  for (const auto& p : net.parameters()) step.gradients.push_back(p.grad().clone());
  step.buffers = Copies(net.buffers());
  step.input_gradient = input.grad().clone();
  return step;
}

TEST(ActivationCheckpointTest, MlpWithDropoutAndBatchNormHasTheSameGradients) {
  torch::manual_seed(1);
  const torch::Tensor x = torch::randn({64, 20}), y = torch::randint(0, 10, {64}, torch::kLong);
  Blocks plain = MakeBlocks(3, 32, 20), checkpointed = MakeBlocks(3, 32, 20);
  const Step expected = RunStep(plain, x, y, false);
  const Step got = RunStep(checkpointed, x, y, true);
  const double gradient_diff = MaxDifference(expected.gradients, got.gradients);
  std::printf("checkpointed MLP: max |gradient diff| %g, |input gradient diff| %g, |running stats diff| %g\n",
              gradient_diff, (expected.input_gradient - got.input_gradient).abs().max().item<double>(),
              MaxDifference(expected.buffers, got.buffers));
  EXPECT_LE(gradient_diff, 1e-6);
  EXPECT_LE((expected.input_gradient - got.input_gradient).abs().max().item<double>(), 1e-6);
  EXPECT_EQ(MaxDifference(expected.buffers, got.buffers), 0.0) << "running statistics moved once, not twice";
  // Dropout is on, so the recomputation must have drawn the first run's masks to agree.
  Blocks other = MakeBlocks(3, 32, 20);
  torch::manual_seed(12);
  torch::Tensor input = x.clone().requires_grad_(true);
  torch::nn::functional::cross_entropy(other.Forward(input, false), y).backward();  // other masks
  std::vector<torch::Tensor> other_gradients;
  for (const auto& p : other.parameters()) other_gradients.push_back(p.grad());
  EXPECT_GT(MaxDifference(expected.gradients, other_gradients), 1e-4) << "other dropout masks give other gradients";
}

// The built-in CNN with activation_checkpointing (blocks: conv-bn-act-pool twice, then
// flatten-linear-act-dropout; the classifier plain) against the same CNN without.
TEST(ActivationCheckpointTest, BuiltInCnnWithTheConfigKeyHasTheSameGradients) {
  Json json = {{"dataset", "mnist"},
               {"model", {{"type", "cnn"}, {"channels", 4}, {"hidden", 16}, {"dropout", 0.4}, {"batch_norm", true}}}};
  torch::manual_seed(2);
  const torch::Tensor x = torch::randn({16, 144}), y = torch::randint(0, 10, {16}, torch::kLong);
  std::vector<std::vector<torch::Tensor>> gradients, buffers;
  for (bool on : {false, true}) {
    json["activation_checkpointing"] = on;
    const TrainerConfig config = ParseTrainerConfig(json);
    torch::manual_seed(3);
    BuiltinModel model(config, 144, 10);
    model.train();
    torch::manual_seed(4);
    torch::nn::functional::cross_entropy(model.forward(Batch{x, y, {}, {}}), y).backward();
    std::vector<torch::Tensor> g;
    for (const auto& p : model.parameters()) g.push_back(p.grad().clone());
    gradients.push_back(g);
    buffers.push_back(Copies(model.buffers()));
  }
  const double diff = MaxDifference(gradients[0], gradients[1]);
  std::printf("checkpointed CNN: max |gradient diff| %g\n", diff);
  EXPECT_LE(diff, 1e-6);
  EXPECT_EQ(MaxDifference(buffers[0], buffers[1]), 0.0);
}

TEST(ActivationCheckpointTest, FitWithTheConfigKeyTrainsTheSameWeights) {
  ScratchDir dir;
  WriteSeparableMnist(dir.path() / "data", 256, 64);
  Json json = testing::SmallConfig(dir.path() / "data");
  json["model"] = {{"type", "mlp"}, {"hidden", 32}, {"layers", 3}, {"dropout", 0.2}, {"batch_norm", true}};
  std::vector<std::vector<torch::Tensor>> weights;
  std::vector<Json> histories;
  for (bool on : {false, true}) {
    json["activation_checkpointing"] = on;
    const TrainerConfig config = ParseTrainerConfig(json);
    std::ostringstream log;
    Trainer trainer(config, LoadDataset(config), nullptr, log);
    const FitResult result = trainer.Fit();
    weights.push_back(Copies(trainer.model()->parameters()));
    histories.push_back(testing::WithoutTimings(result.history));
  }
  EXPECT_LE(MaxDifference(weights[0], weights[1]), 1e-5);
  ASSERT_EQ(histories[0].size(), 2u);
  EXPECT_NEAR(histories[0].back()["val_loss"].get<double>(), histories[1].back()["val_loss"].get<double>(), 1e-5);
}

TEST(ActivationCheckpointTest, SequenceModelsRefuseTheKey) {
  Json json = {{"dataset", "parity_seq"}, {"model", "gru"}, {"activation_checkpointing", true}};
  try {
    ParseTrainerConfig(json);
    FAIL() << "accepted";
  } catch (const ConfigError& error) {
    EXPECT_NE(std::string(error.what()).find("activation_checkpointing"), std::string::npos) << error.what();
  }
}

// Bytes held for backward: the peak of live CPU tensor bytes above the start, over one forward
// and backward of an 8-block MLP (width 512, batch 256).
TEST(ActivationCheckpointTest, HoldsLessMemoryForBackward) {
  torch::manual_seed(1);
  const torch::Tensor x = torch::randn({256, 512}), y = torch::randint(0, 10, {256}, torch::kLong);
  std::int64_t peak[2] = {0, 0};
  for (bool checkpointed : {false, true}) {
    Blocks net = MakeBlocks(8, 512, 512);
    for (const auto& p : net.parameters()) p.mutable_grad() = torch::zeros_like(p);  // allocated up front
    CountingCpuAllocator& counter = CountingCpuAllocator::Instance();
    counter.Install();
    counter.ResetPeak();
    const std::int64_t before = counter.live();
    torch::nn::functional::cross_entropy(net.Forward(x, checkpointed), y).backward();
    peak[checkpointed] = counter.peak() - before;
    counter.Uninstall();
  }
  const double mb = 1024.0 * 1024.0;
  std::printf("activation memory, 8 blocks of Linear(512)-BatchNorm-ReLU-Dropout, batch 256 (CPU allocator peak above "
              "the start): plain %.2f MB, checkpointed %.2f MB (x%.2f)\n",
              static_cast<double>(peak[0]) / mb, static_cast<double>(peak[1]) / mb,
              static_cast<double>(peak[1]) / static_cast<double>(peak[0]));
  EXPECT_GT(peak[0], 0);
  EXPECT_LT(static_cast<double>(peak[1]), 0.6 * static_cast<double>(peak[0]));

  if (!torch::cuda::is_available()) return;
  // On a GPU: the CUDA caching allocator's peak of allocated bytes.
  std::int64_t cuda_peak[2] = {0, 0};
  const torch::Device gpu(torch::kCUDA, 0);
  for (bool checkpointed : {false, true}) {
    Blocks net = MakeBlocks(8, 512, 512);
    for (auto& block : net.blocks) block->to(gpu);
    net.head->to(gpu);
    const torch::Tensor xg = x.to(gpu), yg = y.to(gpu);
    for (const auto& p : net.parameters()) p.mutable_grad() = torch::zeros_like(p);
    auto* allocator = c10::getDeviceAllocator(c10::DeviceType::CUDA);
    torch::cuda::synchronize();
    allocator->resetPeakStats(0);
    const auto aggregate = static_cast<std::size_t>(c10::CachingAllocator::StatType::AGGREGATE);
    const std::int64_t before = allocator->getDeviceStats(0).allocated_bytes[aggregate].current;
    torch::nn::functional::cross_entropy(net.Forward(xg, checkpointed), yg).backward();
    torch::cuda::synchronize();
    cuda_peak[checkpointed] = allocator->getDeviceStats(0).allocated_bytes[aggregate].peak - before;
  }
  std::printf("on CUDA (caching allocator peak above the start): plain %.2f MB, checkpointed %.2f MB\n",
              static_cast<double>(cuda_peak[0]) / mb, static_cast<double>(cuda_peak[1]) / mb);
  EXPECT_LT(static_cast<double>(cuda_peak[1]), 0.6 * static_cast<double>(cuda_peak[0]));
}

}  // namespace
}  // namespace tune
