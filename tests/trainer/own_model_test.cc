// The trainer as a library (trainer/api.h): a user's own Model and DataModule get what
// tune-trainer has. An MLP written as a user would trains exactly as the built-in one; an own
// model reports, pauses and resumes bit for bit, takes PBT's new config (its own keys noted),
// refuses a checkpoint its LoadState rejects, and works with bf16-mixed, the profiler, early
// stopping and the batch-size finder.
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <sstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/trainer/fake_tuner.h"
#include "tests/trainer/synthetic_data.h"
#include "trainer/api.h"
#include "trainer/builtin.h"
#include "trainer/idx.h"
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

// What a user writes: an MLP with its own hyperparameters (hidden, dropout).
class UserMlp : public Model {
 public:
  UserMlp(std::int64_t features, std::int64_t hidden, double dropout, std::int64_t classes) : hidden_(hidden) {
    namespace nn = torch::nn;
    // One layer after the other: the arguments of a call are built in no set order, and the
    // order of construction is the order of the random initialisation.
    net_ = register_module("net", nn::Sequential());
    net_->push_back(nn::Linear(features, hidden));
    net_->push_back(nn::ReLU());
    net_->push_back(nn::Dropout(dropout));
    net_->push_back(nn::Linear(hidden, classes));
  }
  torch::Tensor forward(const Batch& batch) override { return net_->forward(batch.x); }
  void LoadState(torch::serialize::InputArchive& archive, const Json& saved_config) override {
    if (saved_config.value("hidden", 0) != hidden_) {
      throw std::runtime_error("hidden is " + std::to_string(hidden_) + " but the checkpoint's is " +
                               saved_config.value("hidden", Json()).dump());
    }
    load(archive);
  }

 private:
  std::int64_t hidden_;
  torch::nn::Sequential net_{nullptr};
};

// What a user writes: IDX files read once, scaled to [0, 1], batches by index_select.
class UserIdxData : public DataModule {
 public:
  explicit UserIdxData(const fs::path& folder) {
    auto load = [&](const std::string& name) { return ReadIdx((folder / name).string()); };
    train_x_ = load("train-images-idx3-ubyte").flatten(1).to(torch::kFloat).div_(255);
    train_y_ = load("train-labels-idx1-ubyte").to(torch::kLong);
    val_x_ = load("t10k-images-idx3-ubyte").flatten(1).to(torch::kFloat).div_(255);
    val_y_ = load("t10k-labels-idx1-ubyte").to(torch::kLong);
  }
  std::int64_t train_size() const override { return train_y_.size(0); }
  std::int64_t val_size() const override { return val_y_.size(0); }
  Batch Collate(bool train, const torch::Tensor& indices) const override {
    Batch batch;
    batch.x = (train ? train_x_ : val_x_).index_select(0, indices);
    batch.y = (train ? train_y_ : val_y_).index_select(0, indices);
    return batch;
  }

 private:
  torch::Tensor train_x_, train_y_, val_x_, val_y_;
};

const std::vector<std::string> kOwnKeys = {"hidden", "dropout"};

Json OwnConfig(const fs::path& output_dir) {
  return Json{{"hidden", 16}, {"dropout", 0.2}, {"optimizer", {{"type", "sgd"}, {"lr", 0.1}}},
              {"batch_size", 32}, {"max_epochs", 4}, {"threads", 1}, {"progress", false},
              {"output_dir", output_dir.string()}};
}

// A trainer of UserMlp on UserIdxData, seeded as TrialMain does; the log goes to *log.
std::unique_ptr<Trainer> OwnTrainer(const Json& json, const fs::path& data, Session* session, std::ostream& log) {
  const TrainerConfig config = ParseTrainerConfigForOwnModel(json, kOwnKeys);
  if (!config.output_dir.empty()) fs::create_directories(config.output_dir);
  SeedEverything(config);
  auto model = std::make_shared<UserMlp>(16, json.at("hidden").get<int>(), json.at("dropout").get<double>(), 4);
  return std::make_unique<Trainer>(config, model, std::make_shared<UserIdxData>(data / "mnist"), session, log);
}

TEST(OwnModelTest, OwnKeysAreTheProgramsAndOtherKeysAreStillChecked) {
  const TrainerConfig config =
      ParseTrainerConfigForOwnModel(Json{{"width", 8}, {"lr", 0.2}, {"precision", "bf16-mixed"}}, {"width"});
  EXPECT_FALSE(config.builtin_model);
  EXPECT_EQ(config.optimizer.lr, 0.2);
  EXPECT_EQ(config.precision, "bf16-mixed");
  EXPECT_EQ(config.own_keys, std::vector<std::string>{"width"});
  try {
    ParseTrainerConfigForOwnModel(Json{{"widht", 8}}, {"width"});
    FAIL() << "a typo passed";
  } catch (const ConfigError& error) {
    EXPECT_THAT(error.what(), HasSubstr("widht: unknown key"));
  }
  // The built-in models' keys are not the trainer's: unknown unless the program owns them.
  EXPECT_THROW(ParseTrainerConfigForOwnModel(Json{{"hidden", 8}}, {}), ConfigError);
  EXPECT_THROW(ParseTrainerConfigForOwnModel(Json{{"batch_size", 0}}, {}), ConfigError);
}

// The built-in MLP is itself a Model: the same layers written by a user, on the built-in data
// module, train to the same weights bit for bit (the library path has no private shortcut).
TEST(OwnModelTest, UserWrittenMlpTrainsExactlyAsTheBuiltInOne) {
  ScratchDir dir;
  WriteSeparableMnist(dir.path() / "data", 300, 60);
  const Json json = {{"dataset", "mnist"}, {"data_dir", (dir.path() / "data").string()},
                     {"model", {{"type", "mlp"}, {"hidden", 32}, {"layers", 1}}},
                     {"optimizer", {{"type", "adam"}, {"lr", 0.01}}}, {"batch_size", 32}, {"max_epochs", 2},
                     {"threads", 1}, {"progress", false}};
  const TrainerConfig config = ParseTrainerConfig(json);
  std::ostringstream log;
  Trainer builtin(config, LoadDataset(config), nullptr, log);
  const FitResult expected = builtin.Fit();

  SeedEverything(config);
  auto own = std::make_shared<UserMlp>(16, 32, 0.0, 4);
  auto data = BuiltinParts(config, LoadDataset(config)).data;
  Trainer trainer(config, own, data, nullptr, log);
  const FitResult result = trainer.Fit();
  EXPECT_EQ(MaxDifference(Copies(builtin.model()->parameters()), Copies(own->parameters())), 0.0);
  ASSERT_EQ(result.history.size(), expected.history.size());
  EXPECT_EQ(result.history.back()["val_loss"], expected.history.back()["val_loss"]);
}

TEST(OwnModelTest, ReportsPausesAndResumesBitForBit) {
  ScratchDir dir;
  WriteSeparableMnist(dir.path() / "data", 300, 60);
  std::ostringstream log;
  auto full = OwnTrainer(OwnConfig(dir.path() / "full"), dir.path() / "data", nullptr, log);
  const FitResult uninterrupted = full->Fit();
  ASSERT_EQ(uninterrupted.history.size(), 4u);
  EXPECT_GT(uninterrupted.history.back()["val_acc"].get<double>(), 0.9);  // it learns the task

  FakeTuner tuner([](std::int64_t iter) { return iter == 2 ? Action::kPause : Action::kContinue; });
  const fs::path out = dir.path() / "trial";
  const std::string checkpoint = (out / "checkpoint_2").string();
  {
    auto session = Session::Connect(tuner.address(), "t_1", "token");
    const FitResult paused = OwnTrainer(OwnConfig(out), dir.path() / "data", session.get(), log)->Fit();
    EXPECT_TRUE(paused.paused);
    EXPECT_EQ(paused.last_checkpoint, checkpoint);
  }
  EXPECT_THAT(tuner.WaitForEvents(5), ElementsAre("hello t_1", "report 1 " + (out / "checkpoint_1").string(),
                                                  "report 2 " + checkpoint, "paused " + checkpoint, "closed"));
  ::setenv("TUNE_CHECKPOINT", checkpoint.c_str(), 1);
  std::unique_ptr<Trainer> resumed;
  FitResult result;
  {
    auto session = Session::Connect(tuner.address(), "t_1", "token");
    resumed = OwnTrainer(OwnConfig(out), dir.path() / "data", session.get(), log);
    result = resumed->Fit();
    session->Done();
  }
  ::unsetenv("TUNE_CHECKPOINT");
  EXPECT_EQ(tuner.WaitForEvents(10).size(), 10u);
  EXPECT_EQ(result.epochs_completed, 4);
  EXPECT_EQ(MaxDifference(Copies(full->model()->parameters()), Copies(resumed->model()->parameters())), 0.0);
  EXPECT_EQ(result.history.back()["val_loss"], uninterrupted.history.back()["val_loss"]);
}

TEST(OwnModelTest, ResumeTakesTheNewConfigAndTheModelRefusesAnotherArchitecture) {
  ScratchDir dir;
  WriteSeparableMnist(dir.path() / "data", 200, 40);
  Json json = OwnConfig(dir.path() / "trial");
  json["max_epochs"] = 2;
  std::ostringstream log;
  OwnTrainer(json, dir.path() / "data", nullptr, log)->Fit();
  const std::string checkpoint = (dir.path() / "trial" / "checkpoint_2").string();

  // PBT's exploit: another lr and dropout (an own key) from the checkpoint's epoch on.
  Json mutated = json;
  mutated["max_epochs"] = 3;
  mutated["optimizer"]["lr"] = 0.05;
  mutated["dropout"] = 0.3;
  mutated["resume_from"] = checkpoint;
  std::ostringstream resumed_log;
  const FitResult result = OwnTrainer(mutated, dir.path() / "data", nullptr, resumed_log)->Fit();
  EXPECT_EQ(result.epochs_completed, 3);
  EXPECT_THAT(resumed_log.str(), HasSubstr("resumed from " + checkpoint + " at epoch 2; lr 0.1 -> 0.05, dropout 0.2 -> 0.3"));
  EXPECT_EQ(result.history.back()["lr"], 0.05);

  Json wider = mutated;
  wider["hidden"] = 24;
  try {
    OwnTrainer(wider, dir.path() / "data", nullptr, log)->Fit();
    FAIL() << "a checkpoint of another width loaded";
  } catch (const std::runtime_error& error) {
    EXPECT_THAT(error.what(), HasSubstr("checkpoint " + checkpoint + ": hidden is 24 but the checkpoint's is 16"));
  }
}

TEST(OwnModelTest, PrecisionProfilerEarlyStoppingAndBatchSizeFinderWork) {
  ScratchDir dir;
  WriteSeparableMnist(dir.path() / "data", 200, 40);
  Json json = OwnConfig("");
  json.erase("output_dir");
  json["precision"] = "bf16-mixed";
  json["profiler"] = "simple";
  json["early_stopping"] = {{"monitor", "train_loss"}, {"mode", "max"}, {"patience", 1}};  // falls: stops at 2
  std::ostringstream log;
  auto trainer = OwnTrainer(json, dir.path() / "data", nullptr, log);
  EXPECT_EQ(trainer->FindBatchSize([](int size) { return size <= 100; }), 100);
  const FitResult result = trainer->Fit();
  EXPECT_TRUE(result.early_stopped);
  EXPECT_EQ(result.epochs_completed, 2);
  EXPECT_TRUE(std::isfinite(result.history.back()["val_loss"].get<double>()));
  EXPECT_THAT(log.str(), HasSubstr("forward"));
}

}  // namespace
}  // namespace tune
