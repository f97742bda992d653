// The synthetic sequence tasks, dynamic-padding collate, bucketing, the GRU/LSTM classifier's
// padding invariance, and the GradScaler of precision "16-mixed".
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <set>
#include <sstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/trainer/synthetic_data.h"
#include "trainer/config.h"
#include "trainer/data.h"
#include "trainer/grad_scaler.h"
#include "trainer/models.h"
#include "trainer/sequence.h"
#include "trainer/trainer.h"

namespace tune {
namespace {

namespace fs = std::filesystem;
using testing::ScratchDir;

torch::Tensor Longs(std::vector<std::int64_t> values) {
  return torch::tensor(torch::ArrayRef<std::int64_t>(values), torch::kLong).clone();
}

TEST(CollateTest, PadsEachBatchToItsLongestAndMasks) {
  SequenceSplit split = MakeSequenceSplit({{5, 1, 2}, {3}, {4, 4, 4, 4, 7}, {2, 2}}, {1, 0, 1, 0});
  SequenceBatch batch = CollateSequences(split, Longs({0, 1, 2}));
  EXPECT_TRUE(batch.tokens.equal(Longs({5, 1, 2, 0, 0, 3, 0, 0, 0, 0, 4, 4, 4, 4, 7}).view({3, 5})))
      << batch.tokens;
  EXPECT_TRUE(batch.lengths.equal(Longs({3, 1, 5})));
  torch::Tensor mask = torch::tensor({1, 1, 1, 0, 0, 1, 0, 0, 0, 0, 1, 1, 1, 1, 1}).view({3, 5}).to(torch::kBool);
  EXPECT_EQ(batch.mask.scalar_type(), torch::kBool);
  EXPECT_TRUE(batch.mask.equal(mask)) << batch.mask;
  EXPECT_TRUE(batch.labels.equal(Longs({1, 0, 1})));
  // Another batch is padded to its own longest member only, in the order asked for.
  SequenceBatch small = CollateSequences(split, Longs({3, 1}));
  EXPECT_TRUE(small.tokens.equal(Longs({2, 2, 3, 0}).view({2, 2}))) << small.tokens;
  EXPECT_TRUE(small.mask.equal(torch::tensor({1, 1, 1, 0}).view({2, 2}).to(torch::kBool)));
  EXPECT_TRUE(small.lengths.equal(Longs({2, 1})));
}

TEST(SequenceDataTest, DeterministicLabelledAndSplit) {
  EXPECT_EQ(SequenceLabel("parity_seq", {3, 1, 3, 3}), 1);
  EXPECT_EQ(SequenceLabel("parity_seq", {3, 3, 2}), 0);
  EXPECT_EQ(SequenceLabel("majority_seq", {1, 2, 1}), 1);
  EXPECT_EQ(SequenceLabel("majority_seq", {1, 2}), 0);
  TrainerConfig config = ParseTrainerConfig({{"dataset", "parity_seq"}, {"model", "gru"},
                                             {"sequence", {{"train_size", 300}, {"val_size", 100}}}});
  Dataset a = MakeSequenceDataset(config), b = MakeSequenceDataset(config);
  ASSERT_EQ(a.seq_train.size(), 300);
  ASSERT_EQ(a.seq_val.size(), 100);
  EXPECT_TRUE(a.seq_train.tokens.equal(b.seq_train.tokens));
  EXPECT_TRUE(a.seq_val.tokens.equal(b.seq_val.tokens));
  EXPECT_TRUE(a.seq_val.labels.equal(b.seq_val.labels));
  // The validation split is the continuation of the same stream: a larger train split starts
  // with the same sequences.
  config.sequence.train_size = 400;
  Dataset bigger = MakeSequenceDataset(config);
  EXPECT_TRUE(bigger.seq_train.tokens.slice(0, 0, a.seq_train.tokens.size(0)).equal(a.seq_train.tokens));
  std::int64_t ones = 0, shortest = 1000, longest = 0;
  for (std::int64_t i = 0; i < a.seq_train.size(); ++i) {
    const std::int64_t lo = a.seq_train.offsets[i].item<std::int64_t>(), n = a.seq_train.length(i);
    shortest = std::min(shortest, n);
    longest = std::max(longest, n);
    torch::Tensor seq = a.seq_train.tokens.slice(0, lo, lo + n);
    EXPECT_GE(seq.min().item<std::int64_t>(), 1);
    EXPECT_LE(seq.max().item<std::int64_t>(), 8);
    EXPECT_EQ(a.seq_train.labels[i].item<std::int64_t>(), seq.eq(3).sum().item<std::int64_t>() % 2);
    ones += a.seq_train.labels[i].item<std::int64_t>();
  }
  EXPECT_EQ(shortest, 5);
  EXPECT_EQ(longest, 50);
  EXPECT_GT(ones, 100);  // roughly balanced
  EXPECT_LT(ones, 200);
  config.sequence.seed = 1;
  EXPECT_FALSE(MakeSequenceDataset(config).seq_train.labels.slice(0, 0, 300).equal(a.seq_train.labels));
}

TEST(SequenceDataTest, BucketedBatchesCoverEverythingOnceWithLessPadding) {
  TrainerConfig config = ParseTrainerConfig({{"dataset", "majority_seq"}, {"model", "gru"},
                                             {"sequence", {{"train_size", 2000}, {"val_size", 10}}}});
  Dataset data = MakeSequenceDataset(config);
  auto padding = [&](const std::vector<torch::Tensor>& batches) {
    std::int64_t padded = 0;
    std::multiset<std::int64_t> seen;
    for (const auto& batch : batches) {
      SequenceBatch b = CollateSequences(data.seq_train, batch);
      padded += b.mask.numel() - b.mask.sum().item<std::int64_t>();
      for (std::int64_t i = 0; i < batch.numel(); ++i) seen.insert(batch[i].item<std::int64_t>());
    }
    EXPECT_EQ(seen.size(), 2000u);
    EXPECT_EQ(std::set<std::int64_t>(seen.begin(), seen.end()).size(), 2000u);
    return padded;
  };
  auto bucketed = SequenceBatches(data.seq_train, 32, 7, 1, true);
  auto plain = SequenceBatches(data.seq_train, 32, 7, 1, false);
  EXPECT_EQ(bucketed.size(), plain.size());
  EXPECT_LT(padding(bucketed) * 5, padding(plain));  // far less padding
  auto again = SequenceBatches(data.seq_train, 32, 7, 1, true);
  auto next_epoch = SequenceBatches(data.seq_train, 32, 7, 2, true);
  for (std::size_t i = 0; i < bucketed.size(); ++i) EXPECT_TRUE(bucketed[i].equal(again[i]));
  EXPECT_FALSE(bucketed[0].equal(next_epoch[0]));
}

struct ModelCase {
  std::string type;
  bool bidirectional;
  std::string pooling;
  int layers;
};

class SequenceModelTest : public ::testing::TestWithParam<ModelCase> {};

// Padding never reaches the output: a sequence's logits are the same alone (no padding), in a
// batch with longer ones, with extra padding columns, and with garbage in the padded places.
TEST_P(SequenceModelTest, PaddingNeverReachesTheOutput) {
  const ModelCase& c = GetParam();
  torch::manual_seed(3);
  ModelConfig config;
  config.type = c.type;
  config.hidden = 16;
  config.layers = c.layers;
  config.embedding_dim = 8;
  config.bidirectional = c.bidirectional;
  config.pooling = c.pooling;
  torch::nn::Sequential model = BuildModel(config, 8, 2);
  model->eval();
  torch::NoGradGuard no_grad;
  SequenceSplit split = MakeSequenceSplit({{5, 1, 2}, {3}, {4, 4, 4, 4, 7, 8, 1}, {2, 2}}, {1, 0, 1, 0});
  SequenceBatch batch = CollateSequences(split, Longs({0, 1, 2, 3}));
  torch::Tensor logits = model->forward(batch.tokens, batch.lengths, batch.mask);
  ASSERT_EQ(logits.sizes(), (std::vector<std::int64_t>{4, 2}));
  for (std::int64_t i = 0; i < 4; ++i) {
    SequenceBatch alone = CollateSequences(split, Longs({i}));
    torch::Tensor single = model->forward(alone.tokens, alone.lengths, alone.mask);
    EXPECT_TRUE(torch::allclose(single[0], logits[i], 1e-5, 1e-6)) << i << ": " << single << " vs " << logits[i];
  }
  // Extra padding columns, filled with garbage tokens instead of the pad id.
  const std::int64_t extra = 6, width = batch.tokens.size(1) + extra;
  torch::Tensor tokens = torch::randint(1, 9, {4, width}, torch::kLong);
  tokens.slice(1, 0, batch.tokens.size(1)).copy_(batch.tokens);
  torch::Tensor mask = torch::arange(width).unsqueeze(0) < batch.lengths.unsqueeze(1);
  tokens.masked_fill_(mask.logical_not().logical_and(torch::rand({4, width}) < 0.5), kPadToken);
  torch::Tensor padded = model->forward(tokens, batch.lengths, mask);
  EXPECT_TRUE(torch::allclose(padded, logits, 1e-5, 1e-6)) << padded << " vs " << logits;
  // And the test can tell: a real token changed does change the output.
  torch::Tensor changed = batch.tokens.clone();
  changed[2][0] = 1;
  EXPECT_FALSE(torch::allclose(model->forward(changed, batch.lengths, batch.mask)[2], logits[2], 1e-5, 1e-6));
}

INSTANTIATE_TEST_SUITE_P(Models, SequenceModelTest,
                         ::testing::Values(ModelCase{"gru", false, "last", 1}, ModelCase{"gru", true, "last", 2},
                                           ModelCase{"gru", true, "mean", 1}, ModelCase{"lstm", false, "last", 2},
                                           ModelCase{"lstm", true, "mean", 2}),
                         [](const auto& info) {
                           return info.param.type + (info.param.bidirectional ? "_bi_" : "_") + info.param.pooling +
                                  "_" + std::to_string(info.param.layers);
                         });

Json SeqJson(const std::string& task) {
  return Json{{"dataset", task},
              {"model", {{"type", "gru"}, {"hidden", 64}, {"layers", 1}, {"embedding_dim", 16}}},
              {"optimizer", {{"type", "adam"}, {"lr", 0.01}}},
              {"sequence", {{"train_size", 3000}, {"val_size", 1000}}},
              {"batch_size", 32}, {"val_batch_size", 500}, {"max_epochs", 3}, {"threads", 1}, {"progress", false}};
}

FitResult TrainSequences(const Json& json, std::unique_ptr<Trainer>* keep = nullptr, std::string* log_text = nullptr) {
  TrainerConfig config = ParseTrainerConfig(json);
  static std::ostringstream log;
  log.str("");
  auto trainer = std::make_unique<Trainer>(config, LoadDataset(config), nullptr, log);
  FitResult result = trainer->Fit();
  if (keep) *keep = std::move(trainer);
  if (log_text) *log_text = log.str();
  return result;
}

// "Quickly" in epochs (3), not seconds: speed is measured by bench/, not asserted here.
TEST(SequenceTrainingTest, GruLearnsTheTaskQuickly) {
  FitResult result = TrainSequences(SeqJson("majority_seq"));
  ASSERT_EQ(result.history.size(), 3u);
  EXPECT_GT(result.history.back()["val_acc"].get<double>(), 0.85) << result.history.back().dump();
  EXPECT_LT(result.history.back()["train_loss"].get<double>(), result.history.front()["train_loss"].get<double>());
}

// ---- GradScaler ----

struct TinyProblem {
  torch::nn::Linear model{4, 2};
  std::unique_ptr<torch::optim::SGD> optimizer;
  std::vector<torch::Tensor> params;
  TinyProblem() {
    torch::manual_seed(0);
    model = torch::nn::Linear(4, 2);
    optimizer = std::make_unique<torch::optim::SGD>(model->parameters(), torch::optim::SGDOptions(0.1));
    params = model->parameters();
  }
  torch::Tensor Loss() { return model(torch::ones({3, 4})).pow(2).mean(); }
  std::vector<torch::Tensor> Snapshot() {
    std::vector<torch::Tensor> copies;
    for (const auto& p : params) copies.push_back(p.detach().clone());
    return copies;
  }
  void ZeroGrad() {
    for (auto& p : params) p.mutable_grad() = torch::Tensor();
  }
};

TEST(GradScalerTest, InfGradientSkipsTheStepAndHalvesTheScale) {
  TinyProblem problem;
  GradScaler scaler(ScalerConfig{}, true);
  EXPECT_EQ(scaler.scale(), 65536.0);
  scaler.Scale(problem.Loss()).backward();
  // The gradients are scaled: compare with an unscaled backward.
  torch::Tensor scaled_grad = problem.params[0].grad().clone();
  problem.ZeroGrad();
  problem.Loss().backward();
  EXPECT_TRUE(torch::allclose(scaled_grad, problem.params[0].grad() * 65536.0, 1e-4));
  problem.ZeroGrad();

  // One clean step first, so the growth tracker is non-zero when the inf arrives.
  scaler.Scale(problem.Loss()).backward();
  auto before = problem.Snapshot();
  EXPECT_TRUE(scaler.Step(*problem.optimizer, problem.params));
  scaler.Update();
  EXPECT_GT((problem.params[0] - before[0]).abs().max().item<double>(), 0.0);
  EXPECT_EQ(scaler.growth_tracker(), 1);
  problem.ZeroGrad();

  scaler.Scale(problem.Loss()).backward();
  problem.params[1].mutable_grad()[0] = std::numeric_limits<float>::infinity();
  before = problem.Snapshot();
  scaler.Unscale(problem.params);
  EXPECT_FALSE(scaler.Step(*problem.optimizer, problem.params));
  scaler.Update();
  for (std::size_t i = 0; i < before.size(); ++i) EXPECT_TRUE(problem.params[i].equal(before[i])) << i;
  EXPECT_EQ(scaler.scale(), 32768.0);
  EXPECT_EQ(scaler.growth_tracker(), 0);
  problem.ZeroGrad();

  // NaN counts too.
  scaler.Scale(problem.Loss()).backward();
  problem.params[0].mutable_grad()[1][2] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_FALSE(scaler.Step(*problem.optimizer, problem.params));
  scaler.Update();
  EXPECT_EQ(scaler.scale(), 16384.0);
  for (std::size_t i = 0; i < before.size(); ++i) EXPECT_TRUE(problem.params[i].equal(before[i])) << i;
}

TEST(GradScalerTest, UnscaledStepEqualsPlainStepAndScaleGrowsAfterInterval) {
  ScalerConfig config;
  config.init_scale = 1024;
  config.growth_interval = 3;
  TinyProblem scaled, plain;
  GradScaler scaler(config, true);
  for (int step = 1; step <= 7; ++step) {
    scaler.Scale(scaled.Loss()).backward();
    EXPECT_TRUE(scaler.Step(*scaled.optimizer, scaled.params));
    scaler.Update();
    scaled.ZeroGrad();
    plain.Loss().backward();
    plain.optimizer->step();
    plain.ZeroGrad();
    EXPECT_EQ(scaler.scale(), 1024.0 * (1 << (step / 3))) << step;  // x2 at steps 3 and 6
    EXPECT_EQ(scaler.growth_tracker(), step % 3) << step;
  }
  // Powers of two: unscaling is exact, so the trajectories agree to rounding.
  for (std::size_t i = 0; i < scaled.params.size(); ++i) {
    EXPECT_TRUE(torch::allclose(scaled.params[i], plain.params[i], 1e-6, 1e-7)) << i;
  }
  // Disabled: a pass-through.
  GradScaler off(config, false);
  torch::Tensor loss = scaled.Loss();
  EXPECT_TRUE(off.Scale(loss).equal(loss));
}

TEST(GradScalerTest, StateRoundTripsThroughAnArchive) {
  ScalerConfig config;
  config.growth_interval = 4;
  GradScaler scaler(config, true);
  TinyProblem problem;
  for (int step = 0; step < 6; ++step) {
    scaler.Scale(problem.Loss()).backward();
    scaler.Step(*problem.optimizer, problem.params);
    scaler.Update();
    problem.ZeroGrad();
  }
  ASSERT_EQ(scaler.scale(), 131072.0);
  ASSERT_EQ(scaler.growth_tracker(), 2);
  torch::serialize::OutputArchive out;
  scaler.Save(out);
  std::ostringstream bytes;
  out.save_to(bytes);
  std::istringstream in_bytes(bytes.str());
  torch::serialize::InputArchive in;
  in.load_from(in_bytes);
  GradScaler restored(config, true);
  restored.Load(in);
  EXPECT_EQ(restored.scale(), 131072.0);
  EXPECT_EQ(restored.growth_tracker(), 2);
}

// 16-mixed in the trainer (fp32 math on CPU): an overflowing initial scale is backed off by
// skipped steps, the model still learns, and the scale state is checkpointed and resumed so the
// resumed run ends bit-identical to the uninterrupted one.
TEST(SequenceTrainingTest, SixteenMixedScalesSkipsAndResumesExactly) {
  ScratchDir dir;
  Json json = SeqJson("majority_seq");
  json["sequence"] = {{"train_size", 1000}, {"val_size", 300}};
  json["precision"] = "16-mixed";
  json["scaler"] = {{"init_scale", 1e38}, {"growth_interval", 7}};
  json["grad_clip_norm"] = 1.0;
  json["max_epochs"] = 4;
  json["keep_checkpoints"] = 10;
  json["output_dir"] = (dir.path() / "full").string();
  std::unique_ptr<Trainer> full;
  FitResult full_result = TrainSequences(json, &full);
  // 1e38 overflows fp32 gradients: steps are skipped until the scale is small enough.
  // Every skipped step halves the scale and 7 clean steps double it, so it hovers around the
  // largest scale fp32 gradients tolerate (1e38 or 2e38 at the end), never inf.
  EXPECT_GT(full->skipped_steps(), 0);
  EXPECT_LE(full->scaler().scale(), 2e38);
  EXPECT_EQ(full_result.history.back()["skipped_steps"].get<std::int64_t>(), full->skipped_steps());
  EXPECT_GT(full_result.history.back()["val_acc"].get<double>(), 0.7);

  json["output_dir"] = (dir.path() / "resumed").string();
  json["resume_from"] = (dir.path() / "full" / "checkpoint_2").string();
  std::unique_ptr<Trainer> resumed;
  FitResult resumed_result = TrainSequences(json, &resumed);
  EXPECT_EQ(resumed->scaler().scale(), full->scaler().scale());
  EXPECT_EQ(resumed->scaler().growth_tracker(), full->scaler().growth_tracker());
  EXPECT_EQ(resumed_result.history.back()["loss_scale"], full_result.history.back()["loss_scale"]);
  EXPECT_EQ(resumed_result.history.back()["val_loss"], full_result.history.back()["val_loss"]);
  auto a = full->model()->parameters(), b = resumed->model()->parameters();
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(a[i].equal(b[i])) << i;

  // The checkpoint holds the scale of its own epoch, not the initial one.
  TrainerConfig config = ParseTrainerConfig(json);
  std::ostringstream log;
  Trainer fresh(config, LoadDataset(config), nullptr, log);
  EXPECT_EQ(fresh.scaler().scale(), 1e38);
  fresh.LoadCheckpoint((dir.path() / "full" / "checkpoint_2").string());
  EXPECT_EQ(fresh.scaler().scale(), full_result.history[1]["loss_scale"].get<double>());
}

}  // namespace
}  // namespace tune
