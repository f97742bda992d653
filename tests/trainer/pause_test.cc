// The tuner's "pause" decision (PBT) in tune-trainer's library: a trial paused through a real
// tune::Session checkpoints, acknowledges and returns; resumed, it loses no epoch; resumed with
// a mutated config, it trains with the new hyperparameters from the checkpoint's epoch; and a
// checkpoint of another architecture is refused naming the key.
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <sstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/trainer/fake_tuner.h"
#include "tests/trainer/synthetic_data.h"
#include "trainer/config.h"
#include "trainer/data.h"
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
using testing::SmallConfig;
using testing::WriteSeparableMnist;

// One training of `json` reporting to `session` (may be null); the trainer stays alive in *keep.
FitResult TrainWith(Json json, Session* session, std::unique_ptr<Trainer>* keep, std::string* log_text = nullptr) {
  if (json.contains("output_dir")) fs::create_directories(json["output_dir"].get<std::string>());
  TrainerConfig config = ParseTrainerConfig(json);
  static std::ostringstream log;
  log.str("");
  *keep = std::make_unique<Trainer>(config, LoadDataset(config), session, log);
  FitResult result = (*keep)->Fit();
  if (log_text) *log_text = log.str();
  return result;
}

Action PauseAtEpoch2(std::int64_t iter) { return iter == 2 ? Action::kPause : Action::kContinue; }

std::vector<torch::nn::Dropout> DropoutModules(Trainer& trainer) {
  std::vector<torch::nn::Dropout> found;
  for (const auto& module : trainer.model()->modules(/*include_self=*/false)) {
    if (auto dropout = std::dynamic_pointer_cast<torch::nn::DropoutImpl>(module)) found.emplace_back(dropout);
  }
  return found;
}

TEST(PauseTest, PauseThenResumeEqualsUninterruptedRun) {
  ScratchDir dir;
  WriteSeparableMnist(dir.path() / "data", 600, 100);
  Json json = SmallConfig(dir.path() / "data");
  json["max_epochs"] = 4;
  json["model"]["dropout"] = 0.3;  // the dropout RNG stream must survive the pause
  json["lr_schedule"] = {{"type", "cosine"}, {"warmup_epochs", 1}};
  json["precision"] = "16-mixed";  // and the loss scaler's state (on the CPU: fp32 with scaling)
  json["scaler"] = {{"growth_interval", 10}};
  json["early_stopping"] = {{"monitor", "val_loss"}, {"patience", 10}};
  json["checkpoint_every"] = 3;  // epoch 2 has no checkpoint yet: the pause must write one

  std::unique_ptr<Trainer> full_trainer, trainer;
  json["output_dir"] = (dir.path() / "full").string();
  FitResult full = TrainWith(json, nullptr, &full_trainer);
  ASSERT_EQ(full.history.size(), 4u);

  FakeTuner tuner(PauseAtEpoch2);
  json["output_dir"] = (dir.path() / "trial").string();
  const std::string checkpoint = (dir.path() / "trial" / "checkpoint_2").string();
  {
    auto session = Session::Connect(tuner.address(), "t_1", "token");
    std::string log;
    FitResult paused = TrainWith(json, session.get(), &trainer, &log);
    EXPECT_TRUE(paused.paused);
    EXPECT_FALSE(paused.stopped_by_tuner);
    EXPECT_EQ(paused.epochs_completed, 2);
    EXPECT_EQ(paused.last_checkpoint, checkpoint);
    EXPECT_THAT(log, HasSubstr("paused by the tuner after epoch 2, checkpoint " + checkpoint));
    session->Done();  // what main() skips after a pause: the connection is closed already
  }
  EXPECT_THAT(tuner.WaitForEvents(5),
              ElementsAre("hello t_1", "report 1 -", "report 2 -", "paused " + checkpoint, "closed"));
  ASSERT_TRUE(fs::exists(fs::path(checkpoint) / "state.pt"));

  // Relaunched as the tuner does: TUNE_CHECKPOINT, the same config, a new connection.
  ::setenv("TUNE_CHECKPOINT", checkpoint.c_str(), 1);
  FitResult resumed;
  {
    auto session = Session::Connect(tuner.address(), "t_1", "token");
    std::string log;
    resumed = TrainWith(json, session.get(), &trainer, &log);
    session->Done();
    EXPECT_THAT(log, HasSubstr("resumed from " + checkpoint + " at epoch 2\n"));
  }
  ::unsetenv("TUNE_CHECKPOINT");
  const auto events = tuner.WaitForEvents(10);
  ASSERT_EQ(events.size(), 10u);
  EXPECT_THAT(std::vector<std::string>(events.begin() + 5, events.end()),
              ElementsAre("hello t_1", "report 3 " + (dir.path() / "trial" / "checkpoint_3").string(),
                          "report 4 " + (dir.path() / "trial" / "checkpoint_4").string(), "done", "closed"));

  // Pausing costs the trial no epoch: the same weights and metrics as the uninterrupted run.
  const double weights = MaxDifference(Copies(full_trainer->model()->parameters()), Copies(trainer->model()->parameters()));
  ASSERT_EQ(resumed.history.size(), 4u);
  double metrics = 0;
  for (std::size_t epoch = 2; epoch < 4; ++epoch) {
    for (const char* key : {"val_loss", "val_acc", "train_loss", "lr", "loss_scale"}) {
      metrics = std::max(metrics, std::abs(resumed.history[epoch][key].get<double>() - full.history[epoch][key].get<double>()));
    }
    EXPECT_EQ(resumed.history[epoch]["step"], full.history[epoch]["step"]);
  }
  std::printf("pause at epoch 2 + resume vs 4 uninterrupted epochs: max |weight diff| %g, max |metric diff| %g\n",
              weights, metrics);
  EXPECT_LE(weights, 1e-6);
  EXPECT_LE(metrics, 1e-9);
  EXPECT_EQ(resumed.history.back()["val_acc"], full.history.back()["val_acc"]);
}

TEST(PauseTest, ResumeWithMutatedConfigAppliesTheNewHyperparameters) {
  ScratchDir dir;
  WriteSeparableMnist(dir.path() / "data", 600, 100);
  Json json = SmallConfig(dir.path() / "data");
  json["optimizer"] = {{"type", "sgd"}, {"lr", 0.05}, {"momentum", 0.9}, {"weight_decay", 1e-4}};
  json["lr_schedule"] = "cosine";
  json["max_epochs"] = 4;
  json["output_dir"] = (dir.path() / "source").string();
  std::unique_ptr<Trainer> trainer;
  FakeTuner tuner(PauseAtEpoch2);
  {
    auto session = Session::Connect(tuner.address(), "t_1", "token");
    ASSERT_TRUE(TrainWith(json, session.get(), &trainer).paused);
  }
  // hello, report 1, report 2, paused, closed (the acknowledgement closes the connection).
  const auto events = tuner.WaitForEvents(5);
  ASSERT_EQ(events.size(), 5u);
  EXPECT_EQ(events[3], "paused " + (dir.path() / "source" / "checkpoint_2").string());
  EXPECT_EQ(events[4], "closed");
  const std::string checkpoint = (dir.path() / "source" / "checkpoint_2").string();
  const auto checkpoint_weights = Copies(trainer->model()->parameters());

  // PBT's explore step: flat keys, as a search space sets them. Dropout 0 -> 0.25 also inserts
  // Dropout modules into the MLP's Sequential (the checkpoint's layout has none).
  Json mutated = json;
  mutated["output_dir"] = (dir.path() / "exploited").string();
  mutated["lr"] = 0.02;
  mutated["weight_decay"] = 1e-3;
  mutated["momentum"] = 0.8;
  mutated["batch_size"] = 64;
  mutated["dropout"] = 0.25;
  const TrainerConfig config = ParseTrainerConfig(mutated);
  {
    std::ostringstream log;
    Trainer loaded(config, LoadDataset(config), nullptr, log);
    const std::vector<std::string> changes = loaded.LoadCheckpoint(checkpoint);
    EXPECT_THAT(changes, ElementsAre("lr 0.05 -> 0.02", "weight_decay 0.0001 -> 0.001", "momentum 0.9 -> 0.8",
                                     "dropout 0 -> 0.25", "batch_size 32 -> 64"));
    EXPECT_EQ(MaxDifference(checkpoint_weights, Copies(loaded.model()->parameters())), 0.0);
    EXPECT_EQ(loaded.batch_size(), 64);
    const auto dropouts = DropoutModules(loaded);
    ASSERT_EQ(dropouts.size(), 2u);  // one per hidden layer
    for (const auto& dropout : dropouts) EXPECT_DOUBLE_EQ(dropout->options.p(), 0.25);
    // Both groups: the schedule's lr for the next step (epoch 3 of the new config: 600 records
    // in batches of 64 are 10 steps an epoch), momentum; weight decay on the weights only.
    const double next_lr = Trainer::LearningRate(config, 10, 20);
    auto& groups = loaded.optimizer().param_groups();
    ASSERT_EQ(groups.size(), 2u);
    for (std::size_t i = 0; i < groups.size(); ++i) {
      const auto& options = static_cast<const torch::optim::SGDOptions&>(groups[i].options());
      EXPECT_DOUBLE_EQ(options.lr(), next_lr) << i;
      EXPECT_DOUBLE_EQ(options.momentum(), 0.8) << i;
      EXPECT_DOUBLE_EQ(options.weight_decay(), i == 0 ? 1e-3 : 0.0) << i;
    }
    // The momentum buffers came from the checkpoint.
    EXPECT_EQ(loaded.optimizer().state().size(), groups[0].params().size() + groups[1].params().size());
  }

  mutated["resume_from"] = checkpoint;
  std::string log;
  FitResult result = TrainWith(mutated, nullptr, &trainer, &log);
  EXPECT_THAT(log, HasSubstr("resumed from " + checkpoint +
                             " at epoch 2; lr 0.05 -> 0.02, weight_decay 0.0001 -> 0.001, momentum 0.9 -> 0.8, "
                             "dropout 0 -> 0.25, batch_size 32 -> 64\n"));
  ASSERT_EQ(result.history.size(), 4u);
  EXPECT_EQ(result.history[2]["epoch"], 3) << "continues at the checkpoint's epoch";
  // 19 steps an epoch in batches of 32, then 10 in batches of 64.
  EXPECT_EQ(result.history[1]["step"], 38);
  EXPECT_EQ(result.history[2]["step"], 48);
  EXPECT_EQ(result.history[3]["step"], 58);
  // The cosine schedule continues from epoch 3 of 4 with the new base lr.
  EXPECT_DOUBLE_EQ(result.history[2]["lr"].get<double>(), Trainer::LearningRate(config, 10, 29));
  EXPECT_DOUBLE_EQ(result.history[3]["lr"].get<double>(), Trainer::LearningRate(config, 10, 39));
  EXPECT_GT(result.history[3]["val_acc"].get<double>(), 0.9) << "still learns";
}

TEST(PauseTest, ArchitectureMismatchFailsNamingTheKey) {
  ScratchDir dir;
  WriteSeparableMnist(dir.path() / "data", 256, 64);
  Json json = SmallConfig(dir.path() / "data");
  json["max_epochs"] = 1;
  json["output_dir"] = (dir.path() / "source").string();
  std::unique_ptr<Trainer> trainer;
  TrainWith(json, nullptr, &trainer);
  const std::string checkpoint = (dir.path() / "source" / "checkpoint_1").string();
  auto error_of = [&](const char* key, Json value) -> std::string {
    Json other = json;
    other[key] = std::move(value);
    const TrainerConfig config = ParseTrainerConfig(other);
    std::ostringstream log;
    Trainer loaded(config, LoadDataset(config), nullptr, log);
    try {
      loaded.LoadCheckpoint(checkpoint);
    } catch (const std::runtime_error& error) {
      return error.what();
    }
    return "loaded";
  };
  const std::string hidden = error_of("hidden", 64);
  EXPECT_THAT(hidden, HasSubstr("checkpoint " + checkpoint + ": model.hidden is 64 but the checkpoint's is 32"));
  EXPECT_THAT(hidden, HasSubstr("architecture keys must match"));
  EXPECT_THAT(error_of("layers", 3), HasSubstr("model.layers is 3 but the checkpoint's is 2"));
  EXPECT_THAT(error_of("batch_norm", true), HasSubstr("model.batch_norm is true but the checkpoint's is false"));
  EXPECT_THAT(error_of("optimizer", "sgd"), HasSubstr("optimizer.type is \"sgd\" but the checkpoint's is \"adam\""));
  EXPECT_EQ(error_of("lr", 0.5), "loaded");  // a hyperparameter is not architecture
}

TEST(PauseTest, CheckpointEveryControlsWhichReportsCarryACheckpoint) {
  EXPECT_THROW(ParseTrainerConfig({{"checkpoint_every", 0}}), ConfigError);
  ScratchDir dir;
  WriteSeparableMnist(dir.path() / "data", 256, 64);
  Json json = SmallConfig(dir.path() / "data");
  json["max_epochs"] = 5;
  json["checkpoint_every"] = 2;
  json["keep_checkpoints"] = 10;
  json["output_dir"] = (dir.path() / "trial").string();
  FakeTuner tuner([](std::int64_t) { return Action::kContinue; });
  std::unique_ptr<Trainer> trainer;
  {
    auto session = Session::Connect(tuner.address(), "t_1", "token");
    TrainWith(json, session.get(), &trainer);
    session->Done();
  }
  const fs::path trial = dir.path() / "trial";
  // Every second epoch, and the last.
  EXPECT_THAT(tuner.WaitForEvents(8), ElementsAre("hello t_1", "report 1 -", "report 2 " + (trial / "checkpoint_2").string(),
                                          "report 3 -", "report 4 " + (trial / "checkpoint_4").string(),
                                          "report 5 " + (trial / "checkpoint_5").string(), "done", "closed"));
}

}  // namespace
}  // namespace tune
