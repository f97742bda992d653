// Throughput of a user's own model through the trainer library (trainer/api.h) against the
// built-in model with the same layers (issue 15's target: within 5 %).
//
// Both sides train on Fashion-MNIST (data/fashion, scripts/get_data.sh) with the same config:
// Adam lr 1e-3, batch 128, fp32 (or --precision), one thread, no checkpoints. The built-in side
// is tune-trainer's path (ParseTrainerConfig, LoadDataset, BuiltinParts); the own side is a
// Model written as a user would (the same layers as the built-in MLP or CNN, by hand) and
// examples/own_model's DataModule (fashion_data.h: reads the IDX files itself, normalises them
// once, gathers batches with index_select), run through Fit() as examples/own_model does.
//
// Each run trains `--epochs` (2) epochs; the number is the last epoch's samples/s (wall) and
// the training samples per CPU-second of the whole Fit (validation included; with one thread
// the work done, robust to a busy machine). Runs alternate built-in / own, median of --runs (3).
//
// Usage: tune-bench-own-model [--model mlp|cnn] [--runs 3] [--epochs 2] [--train-subset 0]
//                             [--precision 32|bf16-mixed] [--data-dir DIR]
#include <time.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "examples/own_model/fashion_data.h"
#include "trainer/api.h"
#include "trainer/builtin.h"
#include "trainer/data.h"
#include "trainer/trial_main.h"

namespace {

// The built-in MLP (hidden 256, 2 layers) or CNN (channels 32, hidden 256) of trainer/models.h,
// written out by hand as a user's model.
class UserNet : public tune::Model {
 public:
  explicit UserNet(const std::string& type) {
    namespace nn = torch::nn;
    if (type == "mlp") {
      net_ = nn::Sequential(nn::Linear(784, 256), nn::ReLU(), nn::Linear(256, 256), nn::ReLU(), nn::Linear(256, 10));
    } else {
      net_ = nn::Sequential(nn::Unflatten(nn::UnflattenOptions(1, {1, 28, 28})), nn::Conv2d(nn::Conv2dOptions(1, 32, 3)),
                            nn::ReLU(), nn::MaxPool2d(2), nn::Conv2d(nn::Conv2dOptions(32, 64, 3)), nn::ReLU(),
                            nn::MaxPool2d(2), nn::Flatten(), nn::Linear(64 * 5 * 5, 256), nn::ReLU(), nn::Linear(256, 10));
    }
    register_module("net", net_);
  }
  torch::Tensor forward(const tune::Batch& batch) override { return net_->forward(batch.x); }

 private:
  torch::nn::Sequential net_{nullptr};
};

double CpuSeconds() {
  timespec cpu{};
  ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu);
  return static_cast<double>(cpu.tv_sec) + static_cast<double>(cpu.tv_nsec) * 1e-9;
}

struct Measurement {
  double wall = 0;  // samples/s of the last epoch
  double cpu = 0;   // training samples per CPU-second of the whole Fit
};

Measurement Run(const tune::TrainerConfig& config, tune::TrialParts parts, std::int64_t train_size) {
  std::ostringstream log;
  const double cpu_start = CpuSeconds();
  const tune::FitResult result = tune::Fit(config, std::move(parts.model), std::move(parts.data), nullptr, log);
  const double cpu = CpuSeconds() - cpu_start;
  return Measurement{result.history.back().at("samples_per_s").get<double>(),
                     static_cast<double>(train_size) * config.max_epochs / cpu};
}

double Median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  tune::TuneMalloc();
  std::string model = "mlp", precision = "32", data_dir;
  int runs = 3, epochs = 2;
  std::int64_t train_subset = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--model") model = value;
    else if (flag == "--runs") runs = std::atoi(value.c_str());
    else if (flag == "--epochs") epochs = std::atoi(value.c_str());
    else if (flag == "--train-subset") train_subset = std::atoll(value.c_str());
    else if (flag == "--precision") precision = value;
    else if (flag == "--data-dir") data_dir = value;
    else {
      std::fprintf(stderr, "unknown flag %s (see the header of bench/own_model_bench.cc)\n", flag.c_str());
      return 2;
    }
  }
  if (model != "mlp" && model != "cnn") {
    std::fprintf(stderr, "--model: mlp or cnn\n");
    return 2;
  }
  tune::Json json = {{"dataset", "fashion_mnist"}, {"model", {{"type", model}}},  {"batch_size", 128},
                     {"max_epochs", epochs},        {"threads", 1},              {"progress", false},
                     {"checkpoint", false},         {"precision", precision},    {"train_subset", train_subset}};
  if (!data_dir.empty()) json["data_dir"] = data_dir;
  const tune::TrainerConfig builtin_config = tune::ParseTrainerConfig(json);
  const std::string data_root = tune::ResolveDataDir(builtin_config);
  tune::Json own_json = json;
  own_json.erase("dataset");
  own_json.erase("model");
  own_json.erase("data_dir");
  const tune::TrainerConfig own_config = tune::ParseTrainerConfigForOwnModel(own_json, {});

  std::vector<double> builtin_wall, own_wall, builtin_cpu, own_cpu;
  std::int64_t train_size = 0;
  for (int run = 0; run < runs; ++run) {
    tune::SeedEverything(builtin_config);
    tune::TrialParts builtin = tune::BuiltinParts(builtin_config, tune::LoadDataset(builtin_config));
    train_size = builtin.data->train_size();
    const Measurement b = Run(builtin_config, std::move(builtin), train_size);
    tune::SeedEverything(own_config);
    tune::TrialParts own{std::make_shared<UserNet>(model), std::make_shared<own_model::FashionData>(data_root, train_subset, 0)};
    const Measurement o = Run(own_config, std::move(own), train_size);
    std::printf("run %d: built-in %.0f samples/s (%.0f per cpu-s), own %.0f samples/s (%.0f per cpu-s)\n", run + 1,
                b.wall, b.cpu, o.wall, o.cpu);
    builtin_wall.push_back(b.wall);
    own_wall.push_back(o.wall);
    builtin_cpu.push_back(b.cpu);
    own_cpu.push_back(o.cpu);
  }
  const double bw = Median(builtin_wall), ow = Median(own_wall), bc = Median(builtin_cpu), oc = Median(own_cpu);
  std::printf("\n%s, %s, batch 128, 1 thread, %lld training images, median of %d runs\n", model.c_str(),
              precision.c_str(), static_cast<long long>(train_size), runs);
  std::printf("| path | samples/s (last epoch, wall) | samples per cpu-s (whole fit) |\n|---|---|---|\n");
  std::printf("| built-in (tune-trainer's model and data) | %.0f | %.0f |\n", bw, bc);
  std::printf("| own model + own data module (api.h) | %.0f | %.0f |\n", ow, oc);
  std::printf("| own / built-in | %.3f | %.3f |\n", ow / bw, oc / bc);
  return 0;
}
