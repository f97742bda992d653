// tune-trainer's library on tiny synthetic IDX datasets (written by the tests themselves), one
// real-MNIST check when scripts/get_data.sh has run, and `tune run` and `tune train` with the
// trainer binary.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/trainer/synthetic_data.h"
#include "trainer/builtin.h"
#include "trainer/config.h"
#include "trainer/data.h"
#include "trainer/idx.h"
#include "trainer/optim.h"
#include "trainer/trainer.h"

namespace tune {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using testing::Copies;
using testing::MaxDifference;
using testing::ScratchDir;
using testing::SmallConfig;
using testing::WriteSeparableMnist;

Json BaseConfig(const fs::path& data_dir) {
  return Json{{"dataset", "mnist"}, {"data_dir", data_dir.string()}, {"model", {{"type", "mlp"}, {"hidden", 32}}},
              {"optimizer", {{"type", "adam"}, {"lr", 0.01}}}, {"batch_size", 32}, {"max_epochs", 3},
              {"threads", 1}, {"progress", false}};
}

FitResult Train(const Json& json, std::string* log_text = nullptr, Trainer** keep = nullptr) {
  TrainerConfig config = ParseTrainerConfig(json);
  std::ostringstream log;
  static std::unique_ptr<Trainer> last;
  last = std::make_unique<Trainer>(config, LoadDataset(config), nullptr, log);
  FitResult result = last->Fit();
  if (log_text) *log_text = log.str();
  if (keep) *keep = last.get();
  return result;
}

TEST(IdxTest, RoundTripsAnyShapeAndCount) {
  ScratchDir dir;
  torch::Tensor data = torch::randint(0, 256, {7, 3, 5}, torch::kLong).to(torch::kUInt8);
  WriteIdx((dir.path() / "x").string(), data);
  EXPECT_EQ(fs::file_size(dir.path() / "x"), 4u + 3 * 4 + 7 * 3 * 5);
  torch::Tensor back = ReadIdx((dir.path() / "x").string());
  EXPECT_EQ(back.sizes(), data.sizes());
  EXPECT_TRUE(back.equal(data));
  torch::Tensor labels = torch::arange(0, 13, torch::kLong).to(torch::kUInt8);
  WriteIdx((dir.path() / "y").string(), labels);
  EXPECT_TRUE(ReadIdx((dir.path() / "y").string()).equal(labels));
}

TEST(IdxTest, BadFilesGiveErrorsNamingTheFile) {
  ScratchDir dir;
  auto expect_error = [&](const std::string& name, const std::string& bytes, const std::string& why) {
    std::ofstream(dir.path() / name, std::ios::binary) << bytes;
    try {
      ReadIdx((dir.path() / name).string());
      ADD_FAILURE() << name << " was accepted";
    } catch (const IdxError& error) {
      EXPECT_THAT(error.what(), HasSubstr((dir.path() / name).string()));
      EXPECT_THAT(error.what(), HasSubstr(why));
    }
  };
  expect_error("short", std::string("\0\0", 2), "magic");
  expect_error("magic", std::string("\1\0\x08\x01\0\0\0\1x", 9), "bad magic");
  expect_error("float", std::string("\0\0\x0d\x01\0\0\0\1xxxx", 12), "not supported");
  expect_error("truncated", std::string("\0\0\x08\x01\0\0\0\5xx", 10), "promises 5 bytes");
  expect_error("long", std::string("\0\0\x08\x01\0\0\0\1xx", 10), "promises 1 bytes");
  EXPECT_THROW(ReadIdx((dir.path() / "missing").string()), IdxError);
}

TEST(ConfigTest, RejectsUnknownKeysAndBadValuesNamingTheKey) {
  auto error_of = [](const Json& json) -> std::string {
    try {
      ParseTrainerConfig(json);
    } catch (const ConfigError& error) {
      return error.what();
    }
    return "accepted";
  };
  EXPECT_THAT(error_of({{"learning_rate", 0.1}}), HasSubstr("learning_rate: unknown key"));
  EXPECT_THAT(error_of({{"optimizer", {{"lr", -1}}}}), HasSubstr("optimizer.lr"));
  EXPECT_THAT(error_of({{"model", {{"hidden", "big"}}}}), HasSubstr("model.hidden: expected an integer"));
  EXPECT_THAT(error_of({{"precision", "fp8"}}), HasSubstr("precision"));
  EXPECT_THAT(error_of({{"model", {{"type", "cnn"}, {"memory_format", "nhwc"}}}}), HasSubstr("model.memory_format"));
  EXPECT_THAT(error_of({{"scaler", {{"backoff_factor", 2}}}}), HasSubstr("scaler.backoff_factor"));
  EXPECT_THAT(error_of({{"dataset", "parity_seq"}}), HasSubstr("model.type"));  // mlp on sequences
  EXPECT_THAT(error_of({{"model", "gru"}}), HasSubstr("model.type"));           // gru on images
  EXPECT_THAT(error_of({{"dataset", "parity_seq"}, {"model", {{"type", "gru"}, {"pooling", "max"}}}}),
              HasSubstr("model.pooling"));
  EXPECT_THAT(error_of({{"zero_stage", 3}}), HasSubstr("zero_stage: must be 0, 1 or 2"));
  EXPECT_THAT(error_of({{"zero_stage", 3}}), HasSubstr("parameters (3, FSDP) are not sharded"));
  EXPECT_THAT(error_of({{"zero_stage", -1}}), HasSubstr("zero_stage: must be 0, 1 or 2"));
  EXPECT_EQ(ParseTrainerConfig({{"zero_stage", 1}}).zero_stage, 1);
  EXPECT_EQ(ParseTrainerConfig({{"zero_stage", 2}}).zero_stage, 2);
  // Flat search-space keys win over nested ones; whole floats count as integers.
  TrainerConfig config = ParseTrainerConfig(
      {{"optimizer", {{"type", "sgd"}, {"lr", 0.5}}}, {"lr", 0.01}, {"hidden", 64.0}, {"precision", "bf16-mixed"}});
  EXPECT_EQ(config.optimizer.type, "sgd");
  EXPECT_DOUBLE_EQ(config.optimizer.lr, 0.01);
  EXPECT_EQ(config.model.hidden, 64);
  Json json = Json::object();
  ApplyOverride(json, "optimizer.lr=0.3");
  ApplyOverride(json, "dataset=mnist");
  EXPECT_DOUBLE_EQ(json["optimizer"]["lr"].get<double>(), 0.3);
  EXPECT_EQ(json["dataset"], "mnist");
}

TEST(ScheduleTest, WarmupCosineAndOneCycleHitTheirLandmarks) {
  TrainerConfig config = ParseTrainerConfig(
      {{"lr", 0.1}, {"max_epochs", 10}, {"lr_schedule", {{"type", "cosine"}, {"warmup_epochs", 1}}}});
  EXPECT_NEAR(Trainer::LearningRate(config, 100, 0), 0.001, 1e-12);   // warm-up starts low
  EXPECT_NEAR(Trainer::LearningRate(config, 100, 99), 0.1, 1e-12);    // and reaches lr
  EXPECT_NEAR(Trainer::LearningRate(config, 100, 550), 0.05, 1e-12);  // cosine half way
  EXPECT_NEAR(Trainer::LearningRate(config, 100, 1000), 0.0, 1e-12);
  config.lr_schedule.type = "onecycle";
  EXPECT_NEAR(Trainer::LearningRate(config, 100, 0), 0.1 / 25, 1e-12);
  double peak = 0;
  for (int step = 0; step < 1000; ++step) peak = std::max(peak, Trainer::LearningRate(config, 100, step));
  EXPECT_NEAR(peak, 0.1, 1e-6);
  EXPECT_NEAR(Trainer::LearningRate(config, 100, 999), 0.1 / 25 / 1e4, 1e-9);
  config.lr_schedule = LrScheduleConfig{};
  config.lr_schedule.type = "step";
  config.lr_schedule.step_size = 3;
  EXPECT_NEAR(Trainer::LearningRate(config, 100, 299), 0.1, 1e-12);
  EXPECT_NEAR(Trainer::LearningRate(config, 100, 300), 0.01, 1e-12);
}

TEST(TrainerTest, SubnormalsAreFlushedToZeroUnlessDisabled) {
  // 1e-30 * 1e-10 = 1e-40 is subnormal in float32 (the smallest normal is 1.2e-38).
  auto product = [] { return (torch::full({4}, 1e-30f) * 1e-10f).sum().item<float>(); };
  TrainerConfig config = ParseTrainerConfig(BaseConfig("unused"));
  EXPECT_TRUE(config.flush_denormal);
  config = ParseTrainerConfig([] {
    Json json = BaseConfig("unused");
    json["flush_denormal"] = false;
    return json;
  }());
  ASSERT_FALSE(config.flush_denormal);
  SeedEverything(config);
  EXPECT_GT(product(), 0.0f);
  config.flush_denormal = true;
  SeedEverything(config);
  EXPECT_EQ(product(), 0.0f);
}

TEST(TrainerTest, MlpLearnsSeparableDataQuickly) {
  ScratchDir dir;
  WriteSeparableMnist(dir.path(), 2000, 500);
  const auto start = std::chrono::steady_clock::now();
  std::string log;
  Json json = BaseConfig(dir.path());
  json["profiler"] = "simple";
  json["progress"] = true;
  FitResult result = Train(json, &log);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_EQ(result.history.size(), 3u);
  EXPECT_GT(result.history.back()["val_acc"].get<double>(), 0.9) << log;
  EXPECT_LT(result.history.back()["train_loss"].get<double>(), result.history.front()["train_loss"].get<double>());
  EXPECT_LT(seconds, 5.0);
  EXPECT_THAT(log, HasSubstr("epoch 3/3"));
  for (const char* phase : {"data", "forward", "backward", "optimizer", "validation"}) {
    EXPECT_THAT(log, HasSubstr(phase)) << "profiler summary lacks " << phase;
  }
}

TEST(TrainerTest, Bf16AutocastRunsAndLearns) {
  ScratchDir dir;
  WriteSeparableMnist(dir.path(), 2000, 500);
  Json json = BaseConfig(dir.path());
  json["precision"] = "bf16-mixed";
  FitResult result = Train(json);
  EXPECT_GT(result.history.back()["val_acc"].get<double>(), 0.9);
  // Parameters stay fp32 under autocast.
  EXPECT_EQ(torch::nn::Linear(2, 2)->weight.scalar_type(), torch::kFloat);
}

// The built-in CNN keeps its conv weights in channels_last unless told otherwise: every one of
// them, the first conv's [c, 1, 3, 3] too (with one input channel its NCHW strides already count
// as channels_last, so it must be restrided, not just asked for .contiguous(ChannelsLast); left
// NCHW, the first convolution and pooling run NCHW with layout changes around them), and
// Module::to(device) keeps the layout. Training steps give the same model either way, up to the
// convolution algorithms' rounding.
TEST(TrainerTest, CnnTrainsInChannelsLastLikeInContiguous) {
  torch::manual_seed(2);
  const torch::Tensor x = torch::rand({32, 144}), y = torch::randint(0, 10, {32}, torch::kLong);
  std::vector<std::vector<torch::Tensor>> weights;
  std::vector<double> losses;
  for (const char* format : {"channels_last", "contiguous"}) {
    SCOPED_TRACE(format);
    const bool last = std::string(format) == "channels_last";
    Json json = {{"dataset", "mnist"},
                 {"model", {{"type", "cnn"}, {"channels", 4}, {"hidden", 16}}},
                 {"optimizer", {{"type", "adam"}, {"lr", 0.01}}}};
    if (!last) json["model"]["memory_format"] = format;  // else the default
    const TrainerConfig config = ParseTrainerConfig(json);
    torch::manual_seed(3);
    BuiltinModel model(config, 144, 10);
    model.to(torch::kCPU);
    int convs = 0;
    for (const torch::Tensor& p : model.parameters()) {
      if (p.dim() != 4) continue;
      ++convs;
      EXPECT_EQ(p.stride(1) == 1, last) << p.sizes() << " strides " << p.strides();
      EXPECT_TRUE(p.is_contiguous(last ? torch::MemoryFormat::ChannelsLast : torch::MemoryFormat::Contiguous));
    }
    EXPECT_EQ(convs, 2);
    auto optimizer = MakeOptimizer(config.optimizer, model);
    double loss_value = 0, first_loss = 0;
    for (int step = 0; step < 20; ++step) {
      optimizer->zero_grad();
      torch::Tensor loss = torch::nn::functional::cross_entropy(model.forward(Batch{x, y, {}, {}}), y);
      loss.backward();
      optimizer->step();
      loss_value = loss.item<double>();
      if (step == 0) first_loss = loss_value;
    }
    EXPECT_LT(loss_value, first_loss - 0.2);  // it did learn (the 32 examples)
    losses.push_back(loss_value);
    weights.push_back(Copies(model.parameters()));
  }
  const double diff = MaxDifference(weights[0], weights[1]);
  std::printf("channels_last vs contiguous CNN after 20 steps: max |weight diff| %g, loss %g vs %g\n", diff, losses[0], losses[1]);
  EXPECT_LT(diff, 1e-4);
  EXPECT_NEAR(losses[0], losses[1], 1e-4);
}

TEST(TrainerTest, GradAccumulationEqualsOneLargeBatch) {
  ScratchDir dir;
  WriteSeparableMnist(dir.path(), 512, 64);
  Json json = BaseConfig(dir.path());
  json["optimizer"] = {{"type", "sgd"}, {"lr", 0.05}, {"momentum", 0.9}};
  json["max_epochs"] = 2;
  Trainer* trainer = nullptr;
  json["batch_size"] = 128;
  Train(json, nullptr, &trainer);
  auto large = Copies(trainer->model()->parameters());
  json["batch_size"] = 32;
  json["grad_accum"] = 4;
  Train(json, nullptr, &trainer);
  auto accumulated = Copies(trainer->model()->parameters());
  EXPECT_LT(MaxDifference(large, accumulated), 1e-5);
  json["grad_accum"] = 1;  // and the test can tell the difference
  Train(json, nullptr, &trainer);
  EXPECT_GT(MaxDifference(large, Copies(trainer->model()->parameters())), 1e-3);
}

TEST(TrainerTest, ResumeFromCheckpointEqualsUninterruptedRun) {
  ScratchDir dir;
  WriteSeparableMnist(dir.path() / "data", 600, 100);
  Json json = BaseConfig(dir.path() / "data");
  json["max_epochs"] = 4;
  json["model"]["dropout"] = 0.3;  // the dropout RNG must be restored too
  json["lr_schedule"] = {{"type", "cosine"}, {"warmup_epochs", 1}};
  json["output_dir"] = (dir.path() / "full").string();
  json["keep_checkpoints"] = 10;
  fs::create_directories(dir.path() / "full");
  Trainer* trainer = nullptr;
  FitResult full = Train(json, nullptr, &trainer);
  auto full_params = Copies(trainer->model()->parameters());
  ASSERT_TRUE(fs::exists(dir.path() / "full" / "checkpoint_2" / "state.pt"));
  ASSERT_TRUE(fs::exists(dir.path() / "full" / "checkpoint_2" / "trainer.json"));

  json["output_dir"] = (dir.path() / "resumed").string();
  json["resume_from"] = (dir.path() / "full" / "checkpoint_2").string();
  json["keep_checkpoints"] = 2;
  fs::create_directories(dir.path() / "resumed");
  FitResult resumed = Train(json, nullptr, &trainer);
  EXPECT_EQ(MaxDifference(full_params, Copies(trainer->model()->parameters())), 0.0);
  ASSERT_EQ(resumed.history.size(), 4u);  // history before the checkpoint comes back too
  for (int epoch = 2; epoch < 4; ++epoch) {
    EXPECT_EQ(resumed.history[epoch]["val_loss"], full.history[epoch]["val_loss"]) << epoch;
    EXPECT_EQ(resumed.history[epoch]["train_loss"], full.history[epoch]["train_loss"]) << epoch;
  }
  // keep_checkpoints = 2: only the last two remain, and no temporary folder is left behind.
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir.path() / "resumed")) {
    names.push_back(entry.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"checkpoint_3", "checkpoint_4"}));
}

TEST(TrainerTest, EarlyStoppingEndsTraining) {
  ScratchDir dir;
  WriteSeparableMnist(dir.path(), 256, 64);
  Json json = BaseConfig(dir.path());
  json["max_epochs"] = 30;
  json["lr"] = 1e-9;  // nothing improves
  json["early_stopping"] = {{"monitor", "val_acc"}, {"mode", "max"}, {"patience", 2}};
  FitResult result = Train(json);
  EXPECT_TRUE(result.early_stopped);
  EXPECT_EQ(result.epochs_completed, 3);
}

// val_fraction: validation is a fixed draw from the training split (the same rows whatever the
// trial's seed; another split_seed draws others), the two parts are exactly the training split,
// and t10k becomes the test split, scored once when training ends on its own.
TEST(TrainerTest, ValFractionHoldsOutPartOfTheTrainingSplitAndTestsOnT10kAtTheEnd) {
  ScratchDir dir;
  WriteSeparableMnist(dir.path(), 200, 64);
  auto data_for = [&](const Json& changes) {
    Json json = BaseConfig(dir.path());
    json.merge_patch(changes);
    const TrainerConfig config = ParseTrainerConfig(json);
    auto data = std::make_shared<BuiltinData>(config, LoadDataset(config));
    data->Setup(torch::kCPU);
    return data;
  };
  auto rows = [](const std::shared_ptr<BuiltinData>& data, int split) {  // 0 train, 1 val, 2 test
    const std::int64_t n = split == 0 ? data->train_size() : split == 1 ? data->val_size() : data->test_size();
    const torch::Tensor all = torch::arange(n, torch::kLong);
    return (split == 2 ? data->CollateTest(all) : data->Collate(split == 0, all)).x;
  };
  const auto whole = data_for(Json::object());
  const auto held = data_for({{"val_fraction", 0.25}, {"seed", 1}});
  EXPECT_EQ(whole->test_size(), 0);
  EXPECT_EQ(held->train_size(), 150);
  EXPECT_EQ(held->val_size(), 50);
  EXPECT_EQ(held->test_size(), 64);
  EXPECT_TRUE(rows(held, 2).equal(rows(whole, 1))) << "the test split is t10k";
  EXPECT_TRUE(rows(held, 1).equal(rows(data_for({{"val_fraction", 0.25}, {"seed", 2}}), 1)))
      << "the trial's seed does not move the validation rows";
  EXPECT_FALSE(rows(held, 1).equal(rows(data_for({{"val_fraction", 0.25}, {"split_seed", 5}}), 1)));
  // Training and validation rows together are the training split, each row once.
  const torch::Tensor projection = torch::randn({rows(whole, 0).size(1)}, torch::kDouble);
  auto keys = [&](const torch::Tensor& x) { return std::get<0>(x.to(torch::kDouble).matmul(projection).sort()); };
  EXPECT_TRUE(keys(torch::cat({rows(held, 0), rows(held, 1)})).allclose(keys(rows(whole, 0))));

  Json json = BaseConfig(dir.path());
  json["max_epochs"] = 2;
  json["val_fraction"] = 0.25;
  FitResult result = Train(json);
  ASSERT_EQ(result.history.size(), 2u);
  EXPECT_FALSE(result.history[0].contains("test_acc"));
  EXPECT_GE(result.history[1].value("test_acc", -1.0), 0.0);
  EXPECT_GT(result.history[1].value("test_loss", -1.0), 0.0);
  json["test"] = false;
  EXPECT_FALSE(Train(json).history.back().contains("test_acc"));
  // Early stopping ends training too: the test split is scored at that epoch.
  json = BaseConfig(dir.path());
  json["max_epochs"] = 30;
  json["lr"] = 1e-9;
  json["val_fraction"] = 0.25;
  json["early_stopping"] = {{"monitor", "val_acc"}, {"mode", "max"}, {"patience", 2}};
  result = Train(json);
  ASSERT_TRUE(result.early_stopped);
  EXPECT_TRUE(result.history.back().contains("test_acc"));
  EXPECT_FALSE(result.history[result.history.size() - 2].contains("test_acc"));
}

TEST(TrainerTest, TestSplitMistakesNameTheKey) {
  ScratchDir dir;
  auto error = [&](const Json& changes) -> std::string {
    Json json = BaseConfig(dir.path());
    json.merge_patch(changes);
    try {
      ParseTrainerConfig(json);
    } catch (const ConfigError& e) {
      return e.what();
    }
    return "(accepted)";
  };
  EXPECT_THAT(error({{"test", true}}), HasSubstr("test: needs val_fraction > 0"));
  EXPECT_THAT(error({{"val_fraction", 1.0}}), HasSubstr("val_fraction: must be in [0, 1)"));
  EXPECT_THAT(error({{"dataset", "parity_seq"}, {"model", {{"type", "gru"}}}, {"val_fraction", 0.1}}),
              HasSubstr("val_fraction: is for the image datasets"));
  WriteSeparableMnist(dir.path(), 4, 4);
  Json json = BaseConfig(dir.path());
  json["val_fraction"] = 0.01;  // 0 of 4 records
  const TrainerConfig config = ParseTrainerConfig(json);
  EXPECT_THROW(BuiltinData(config, LoadDataset(config)), ConfigError);
}

// Real data: runs when scripts/get_data.sh has fetched MNIST (CI runs it before the tests).
TEST(TrainerTest, MlpReachesSensibleAccuracyOnRealMnist) {
  const fs::path data = fs::path(TUNE_SOURCE_DIR) / "data";
  if (!fs::exists(data / "mnist" / "train-images-idx3-ubyte")) {
    GTEST_SKIP() << "no " << data << "/mnist: run scripts/get_data.sh";
  }
  Json json = {{"dataset", "mnist"}, {"data_dir", data.string()}, {"model", {{"hidden", 128}}},
               {"lr", 0.002}, {"batch_size", 64}, {"max_epochs", 3}, {"threads", 1}, {"progress", false}};
  const auto start = std::chrono::steady_clock::now();
  FitResult result = Train(json);
  EXPECT_GT(result.history.back()["val_acc"].get<double>(), 0.9);
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 10.0);
}

// `tune train` execs tune-trainer, which must get a Ctrl-C as any program does (`tune run` and
// `tune resume` hold the stop signals back until their loop handles them; a first version did so
// for every subcommand, and the trainer inherited them blocked: a Ctrl-C did nothing).
TEST(TrainerIntegrationTest, TuneTrainEndsOnCtrlC) {
  ScratchDir dir;
  WriteSeparableMnist(dir.path() / "data", 512, 128);
  Json config = SmallConfig(dir.path() / "data");
  config["max_epochs"] = 1000000;
  const std::string config_file = (dir.path() / "config.json").string();
  std::ofstream(config_file) << config.dump();
  const std::string tune = std::string(TUNE_BIN_DIR) + "/tune";
  const std::string out = (dir.path() / "out.txt").string();
  const pid_t pid = ::fork();
  if (pid == 0) {
    const int fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(fd, STDOUT_FILENO);
    ::dup2(fd, STDERR_FILENO);
    ::execl(tune.c_str(), "tune", "train", config_file.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  // Until tune has become the trainer (the same process, after its exec).
  for (int i = 0; i < 400; ++i) {
    std::ifstream cmdline("/proc/" + std::to_string(pid) + "/cmdline");
    const std::string text((std::istreambuf_iterator<char>(cmdline)),
                           std::istreambuf_iterator<char>());
    if (text.find("tune-trainer") != std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  ::kill(pid, SIGINT);
  int status = 0;
  pid_t ended = 0;
  for (int i = 0; i < 400 && (ended = ::waitpid(pid, &status, WNOHANG)) == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  if (ended == 0) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, &status, 0);
  }
  std::ifstream log(out);
  const std::string text((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
  EXPECT_EQ(ended, pid) << "tune train went on for 20 s after a Ctrl-C:\n" << text;
  EXPECT_FALSE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << text;
}

TEST(TrainerIntegrationTest, TuneRunReportsAndAshaPrunes) {
  ScratchDir dir;
  WriteSeparableMnist(dir.path() / "data", 512, 128);
  Json spec = {
      {"name", "trainer_asha"}, {"metric", "val_acc"}, {"mode", "max"}, {"num_samples", 6},
      {"max_concurrent", 2}, {"resources_per_trial", {{"cpu", 1}}},
      {"search", {{"algorithm", "random"}, {"seed", 0}}},
      {"scheduler", {{"type", "asha"}, {"time_attr", "epoch"}, {"max_t", 9}, {"grace_period", 1},
                     {"reduction_factor", 3}, {"brackets", 1}}},
      {"trainer", {{"dataset", "mnist"}, {"data_dir", (dir.path() / "data").string()}, {"max_epochs", 9},
                   {"batch_size", 64}, {"threads", 1}, {"model", {{"hidden", 16}}}}},
      {"space", {{"lr", {{"loguniform", {1e-6, 3e-2}}}}}}};
  std::ofstream(dir.path() / "spec.json") << spec.dump();
  std::string command = std::string(TUNE_BIN_DIR) + "/tune run " + (dir.path() / "spec.json").string() +
                        " --storage " + dir.path().string() + " --name exp >" + (dir.path() / "out.txt").string() +
                        " 2>&1";
  int status = std::system(command.c_str());
  std::ifstream out_file(dir.path() / "out.txt");
  std::string out((std::istreambuf_iterator<char>(out_file)), std::istreambuf_iterator<char>());
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << out;
  int trials = 0, pruned = 0, full = 0;
  for (const auto& entry : fs::directory_iterator(dir.path() / "exp")) {
    if (!entry.is_directory()) continue;
    std::ifstream results(entry.path() / "result.json");
    int reports = 0;
    for (std::string line; std::getline(results, line); ++reports) {
      Json result = Json::parse(line);
      EXPECT_TRUE(result.contains("val_acc") && result.contains("val_loss") && result.contains("train_loss"))
          << line;
    }
    ASSERT_GT(reports, 0) << entry.path() << "\n" << out;
    EXPECT_TRUE(fs::exists(entry.path() / ("checkpoint_" + std::to_string(reports))));
    ++trials;
    (reports < 9 ? pruned : full) += 1;
  }
  EXPECT_EQ(trials, 6);
  EXPECT_GE(pruned, 3) << out;
  EXPECT_GE(full, 1) << out;
}

}  // namespace
}  // namespace tune
