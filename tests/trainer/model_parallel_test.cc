// Model parallelism by hand (config model_parallel, Model::Place; seed 002's layers on two
// devices). On this CPU-only machine every stage's device is the CPU, so these tests pin what
// does not need a GPU: how the built-in models are cut into stages, that a split model trains
// exactly as the whole one (with and without micro-batches), that a split run pauses and resumes
// bit for bit (the checkpoint read onto one device, then placed again), that an own model places
// its parts on the devices it is given, and the config's refusals. The CUDA paths (activations,
// labels, sums, the scaler's flags and the clipping norm crossing devices; one RNG state per GPU)
// are compiled by scripts/cuda_build_check.sh and run by scripts/gpu_check.sh on >= 2 GPUs.
#include <algorithm>
#include <filesystem>
#include <functional>
#include <limits>
#include <memory>
#include <random>
#include <sstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/trainer/fake_tuner.h"
#include "tests/trainer/synthetic_data.h"
#include "trainer/builtin.h"
#include "trainer/device.h"
#include "trainer/optim.h"
#include "trainer/trainer.h"
#include "tuner/client/session.h"

namespace tune {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::Copies;
using testing::FakeTuner;
using testing::MaxDifference;
using testing::ScratchDir;
using testing::WriteSeparableMnist;

// The costliest run of `costs` cut at `starts`.
double Costliest(const std::vector<double>& costs, const std::vector<std::size_t>& starts) {
  double worst = 0;
  for (std::size_t k = 0; k < starts.size(); ++k) {
    const std::size_t end = k + 1 < starts.size() ? starts[k + 1] : costs.size();
    double sum = 0;
    for (std::size_t i = starts[k]; i < end; ++i) sum += costs[i];
    worst = std::max(worst, sum);
  }
  return worst;
}

// Every way to cut n blocks into `stages` non-empty runs: the least costliest run.
double BruteForceBest(const std::vector<double>& costs, std::size_t stages) {
  double best = std::numeric_limits<double>::infinity();
  std::vector<std::size_t> starts = {0};
  std::function<void(std::size_t)> extend = [&](std::size_t from) {
    if (starts.size() == stages) {
      best = std::min(best, Costliest(costs, starts));
      return;
    }
    for (std::size_t s = from; s < costs.size(); ++s) {
      starts.push_back(s);
      extend(s + 1);
      starts.pop_back();
    }
  };
  extend(1);
  return best;
}

TEST(ModelParallelTest, StagesAreContiguousRunsWithTheLeastCostliestRun) {
  EXPECT_THAT(BalancedStages({1, 1, 1, 1}, 2), ElementsAre(0, 2));
  EXPECT_THAT(BalancedStages({10, 1, 1, 1, 1}, 2), ElementsAre(0, 1));
  EXPECT_THAT(BalancedStages({1, 1, 1, 9}, 2), ElementsAre(0, 3));
  EXPECT_THAT(BalancedStages({5, 5, 5}, 3), ElementsAre(0, 1, 2));
  std::mt19937 random(7);
  std::uniform_real_distribution<double> cost(0.0, 100.0);
  for (int trial = 0; trial < 300; ++trial) {
    const std::size_t n = 1 + random() % 9, stages = 1 + random() % n;
    std::vector<double> costs(n);
    for (double& c : costs) c = trial % 3 == 0 ? std::floor(cost(random) / 20) : cost(random);
    const std::vector<std::size_t> starts = BalancedStages(costs, stages);
    ASSERT_EQ(starts.size(), stages);
    EXPECT_EQ(starts.front(), 0u);
    for (std::size_t k = 1; k < stages; ++k) ASSERT_LT(starts[k - 1], starts[k]) << "an empty stage";
    ASSERT_LT(starts.back(), n);
    EXPECT_DOUBLE_EQ(Costliest(costs, starts), BruteForceBest(costs, stages)) << "trial " << trial;
  }
}

TEST(ModelParallelTest, BuiltInModelsAreCutByTheirMultiplyAdds) {
  // mlp 784 -> 64 -> 64 -> 64 -> 10: blocks of 50176, 4096, 4096 and 640 multiply-adds; the first
  // Linear alone outweighs the rest, so two stages are it and everything after it.
  Json json = {{"dataset", "mnist"}, {"model", {{"type", "mlp"}, {"hidden", 64}, {"layers", 3}}}, {"model_parallel", 2}};
  BuiltinModel mlp(ParseTrainerConfig(json), 784, 10);
  EXPECT_THAT(mlp.stage_starts(), ElementsAre(0, 1));
  json["model_parallel"] = 4;
  EXPECT_THAT(BuiltinModel(ParseTrainerConfig(json), 784, 10).stage_starts(), ElementsAre(0, 1, 2, 3));
  // cnn on 28x28, channels 8, hidden 32: conv 1->8 at 26x26 (48,672), conv 8->16 at 11x11
  // (139,392), Linear 16*5*5 -> 32 (12,800), Linear 32 -> 10 (320): the second convolution is
  // the heaviest block, so three stages are [conv1], [conv2], [the two Linear].
  json = {{"dataset", "mnist"},
          {"model", {{"type", "cnn"}, {"channels", 8}, {"hidden", 32}, {"batch_norm", true}}},
          {"model_parallel", 3}};
  BuiltinModel cnn(ParseTrainerConfig(json), 784, 10);
  EXPECT_THAT(cnn.stage_starts(), ElementsAre(0, 1, 2));
  json["model_parallel"] = 2;
  EXPECT_THAT(BuiltinModel(ParseTrainerConfig(json), 784, 10).stage_starts(), ElementsAre(0, 1))
      << "conv1 against the rest (152,512) beats both convolutions against the Linears (188,064)";
  // Tracing the costs moved no BatchNorm statistic and left the model in training mode.
  for (const auto& module : cnn.modules(/*include_self=*/false)) EXPECT_TRUE(module->is_training()) << module->name();
  for (const auto& item : cnn.named_buffers()) {
    if (item.key().find("running_mean") != std::string::npos) {
      EXPECT_EQ(item.value().abs().sum().item().toFloat(), 0.0f) << item.key();
    }
  }
}

TEST(ModelParallelTest, ConfigRefusesWhatCannotBeSplit) {
  auto error_of = [](const Json& json) -> std::string {
    try {
      ParseTrainerConfig(json);
    } catch (const ConfigError& error) {
      return error.what();
    }
    return "accepted";
  };
  EXPECT_THAT(error_of({{"dataset", "parity_seq"}, {"model", "gru"}, {"model_parallel", 2}}),
              HasSubstr("model_parallel: is for the mlp and cnn models"));
  EXPECT_THAT(error_of({{"dataset", "mnist"}, {"model", {{"type", "mlp"}, {"layers", 1}}}, {"model_parallel", 3}}),
              HasSubstr("model_parallel: 3 stages, but the mlp has 2 layers to split"));
  EXPECT_THAT(error_of({{"dataset", "mnist"}, {"model", "cnn"}, {"model_parallel", 5}}),
              HasSubstr("the cnn has 4 layers to split"));
  EXPECT_THAT(error_of({{"dataset", "mnist"}, {"pipeline_chunks", 4}}), HasSubstr("pipeline_chunks: needs model_parallel >= 2"));
  EXPECT_THAT(error_of({{"dataset", "mnist"}, {"model_parallel", 0}}), HasSubstr("model_parallel: must be in [1, 64]"));
  EXPECT_EQ(error_of({{"dataset", "mnist"}, {"model_parallel", 2}, {"pipeline_chunks", 4}}), "accepted");
  // Without GPUs the split's devices are the CPU, once per stage; asking for CUDA says why not.
  EXPECT_EQ(ResolveDevices("cpu", 3), std::vector<torch::Device>(3, torch::kCPU));
  if (!torch::cuda::is_available()) {
    EXPECT_THROW(ResolveDevices("cuda", 2), std::runtime_error);
  }
}

struct Trained {
  std::vector<torch::Tensor> weights;
  std::vector<Json> history;
};

Trained Train(const Json& json) {
  const TrainerConfig config = ParseTrainerConfig(json);
  std::ostringstream log;
  Trainer trainer(config, LoadDataset(config), nullptr, log);
  const FitResult result = trainer.Fit();
  return {Copies(trainer.model()->parameters()), testing::WithoutTimings(result.history)};
}

TEST(ModelParallelTest, ASplitModelTrainsAsTheWholeOne) {
  ScratchDir dir;
  WriteSeparableMnist(dir.path() / "data", 256, 64);
  Json json = testing::SmallConfig(dir.path() / "data");
  // Dropout and BatchNorm in every block, activation checkpointing on top: the stages run the
  // very same modules in the same order, so the weights agree to the bit.
  json["model"] = {{"type", "mlp"}, {"hidden", 32}, {"layers", 3}, {"dropout", 0.2}, {"batch_norm", true}};
  json["activation_checkpointing"] = true;
  json["grad_clip_norm"] = 0.5;
  const Trained whole = Train(json);
  json["model_parallel"] = 3;
  const Trained split = Train(json);
  EXPECT_EQ(MaxDifference(whole.weights, split.weights), 0.0);
  EXPECT_EQ(whole.history, split.history);
  EXPECT_GT(split.history.back()["val_acc"].get<double>(), 0.9);
}

TEST(ModelParallelTest, MicroBatchesGiveTheWholeBatchsSteps) {
  // The loss is the whole batch's, only its forward is cut in four, so the same weights up to
  // float rounding (no dropout: its masks would be drawn in another order; no BatchNorm: each
  // micro-batch is normalised by its own statistics).
  torch::manual_seed(2);
  const torch::Tensor x = torch::rand({32, 144}), y = torch::randint(0, 10, {32}, torch::kLong);
  std::vector<std::vector<torch::Tensor>> weights;
  for (int chunks : {1, 4}) {
    Json json = {{"dataset", "mnist"},
                 {"model", {{"type", "cnn"}, {"channels", 4}, {"hidden", 16}}},
                 {"optimizer", {{"type", "adam"}, {"lr", 0.01}}}};
    if (chunks > 1) {
      json["model_parallel"] = 2;
      json["pipeline_chunks"] = chunks;
    }
    const TrainerConfig config = ParseTrainerConfig(json);
    torch::manual_seed(3);
    BuiltinModel model(config, 144, 10);
    model.Place(std::vector<torch::Device>(static_cast<std::size_t>(config.model_parallel), torch::kCPU));
    auto optimizer = MakeOptimizer(config.optimizer, model);
    double first = 0, last = 0;
    for (int step = 0; step < 20; ++step) {
      optimizer->zero_grad();
      torch::Tensor loss = torch::nn::functional::cross_entropy(model.forward(Batch{x, y, {}, {}}), y);
      loss.backward();
      optimizer->step();
      last = loss.item<double>();
      if (step == 0) first = last;
    }
    EXPECT_LT(last, first - 0.2) << chunks << " chunks: it learns";
    weights.push_back(Copies(model.parameters()));
  }
  const double diff = MaxDifference(weights[0], weights[1]);
  std::printf("cnn in 4 micro-batches over 2 stages vs whole: max |weight diff| %g\n", diff);
  EXPECT_LE(diff, 1e-4);
}

TEST(ModelParallelTest, ASplitRunPausesAndResumesBitForBit) {
  ScratchDir dir;
  WriteSeparableMnist(dir.path() / "data", 256, 64);
  Json json = testing::SmallConfig(dir.path() / "data");
  json["model"] = {{"type", "mlp"}, {"hidden", 32}, {"layers", 2}, {"dropout", 0.1}};
  json["model_parallel"] = 2;
  json["max_epochs"] = 4;
  json["optimizer"] = {{"type", "sgd"}, {"lr", 0.05}, {"momentum", 0.9}};  // momentum buffers: optimizer state
  json["output_dir"] = (dir.path() / "full").string();
  const Trained full = Train(json);

  FakeTuner tuner([](std::int64_t iter) { return iter == 2 ? Action::kPause : Action::kContinue; });
  json["output_dir"] = (dir.path() / "trial").string();
  const TrainerConfig config = ParseTrainerConfig(json);
  std::ostringstream log;
  {
    auto session = Session::Connect(tuner.address(), "t_1", "token");
    Trainer paused(config, LoadDataset(config), session.get(), log);
    ASSERT_TRUE(paused.Fit().paused);
  }
  tuner.WaitForEvents(5);
  json["resume_from"] = (dir.path() / "trial" / "checkpoint_2").string();
  const Trained resumed = Train(json);
  EXPECT_EQ(MaxDifference(full.weights, resumed.weights), 0.0);
  EXPECT_EQ(full.history.back(), resumed.history.back());
}

// Seed 002's model, as a user writes it: each Linear on its own device, the activation moved
// between them.
class TwoDeviceMlp : public Model {
 public:
  TwoDeviceMlp() {
    seq1_ = register_module("seq1", torch::nn::Linear(16, 32));
    seq2_ = register_module("seq2", torch::nn::Linear(32, 4));
  }
  torch::Tensor forward(const Batch& batch) override {
    return seq2_(torch::relu(seq1_(batch.x)).to(second_, /*non_blocking=*/true));
  }
  void Place(const std::vector<torch::Device>& devices) override {
    ++placed;
    seq1_->to(devices.at(0));
    seq2_->to(devices.at(1));
    second_ = devices.at(1);
  }
  int placed = 0;

 private:
  torch::nn::Linear seq1_{nullptr}, seq2_{nullptr};
  torch::Device second_{torch::kCPU};
};

class PlainMlp : public Model {
 public:
  PlainMlp() { fc_ = register_module("fc", torch::nn::Linear(16, 4)); }
  torch::Tensor forward(const Batch& batch) override { return fc_(batch.x); }

 private:
  torch::nn::Linear fc_{nullptr};
};

// The built-in data module over the synthetic IDX files (16 features, 4 classes).
std::shared_ptr<DataModule> Data(const fs::path& root) {
  const TrainerConfig config = ParseTrainerConfig({{"dataset", "mnist"}, {"data_dir", root.string()}});
  return BuiltinParts(config, LoadDataset(config)).data;
}

TEST(ModelParallelTest, AnOwnModelPlacesItsPartsOrIsRefused) {
  ScratchDir dir;
  WriteSeparableMnist(dir.path() / "data", 256, 64);
  Json json = {{"optimizer", {{"type", "adam"}, {"lr", 0.01}}}, {"batch_size", 32}, {"max_epochs", 3},
               {"progress", false}, {"model_parallel", 2}, {"output_dir", (dir.path() / "own").string()}};
  fs::create_directories(dir.path() / "own");
  TrainerConfig config = ParseTrainerConfigForOwnModel(json, {});
  std::ostringstream log;
  auto model = std::make_shared<TwoDeviceMlp>();
  Trainer trainer(config, model, Data(dir.path() / "data"), nullptr, log);
  EXPECT_EQ(trainer.devices(), std::vector<torch::Device>(2, torch::kCPU));
  const FitResult result = trainer.Fit();
  EXPECT_EQ(model->placed, 1);
  EXPECT_GT(result.history.back()["val_acc"].get<double>(), 0.9);
  // Resuming places it again after reading the checkpoint onto the first device.
  json["resume_from"] = result.last_checkpoint;
  json["max_epochs"] = 4;
  auto again = std::make_shared<TwoDeviceMlp>();
  Trainer resumed(ParseTrainerConfigForOwnModel(json, {}), again, Data(dir.path() / "data"), nullptr, log);
  EXPECT_EQ(resumed.Fit().epochs_completed, 4);
  EXPECT_EQ(again->placed, 2);

  try {
    Trainer refused(config, std::make_shared<PlainMlp>(), Data(dir.path() / "data"), nullptr, log);
    FAIL() << "a model that does not place itself was split";
  } catch (const ConfigError& error) {
    EXPECT_THAT(error.what(), HasSubstr("model_parallel 2: this model does not split itself"));
  }
}

}  // namespace
}  // namespace tune
