// Test helpers shared by tests/trainer/*_test.cc: a scratch folder per test
// (tests/scratch_dir.h), a tiny separable image task written in MNIST's IDX layout, and parameter
// snapshots to compare.
#pragma once

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "tests/scratch_dir.h"
#include "trainer/idx.h"
#include "tuner/client/protocol.h"

namespace tune::testing {

// `classes` random 4x4 byte prototypes plus uniform noise of +-40, seeded.
inline void WriteSeparableMnist(const std::filesystem::path& root, std::int64_t train, std::int64_t val,
                                int classes = 4) {
  torch::manual_seed(1234);
  torch::Tensor prototypes = torch::randint(40, 216, {classes, 4, 4}, torch::kLong);
  auto make = [&](std::int64_t n, const std::string& prefix) {
    torch::Tensor labels = torch::randint(0, classes, {n}, torch::kLong);
    torch::Tensor images = prototypes.index_select(0, labels) + torch::randint(-40, 41, {n, 4, 4}, torch::kLong);
    std::filesystem::create_directories(root / "mnist");
    WriteIdx((root / "mnist" / (prefix + "-images-idx3-ubyte")).string(), images.clamp(0, 255).to(torch::kUInt8));
    WriteIdx((root / "mnist" / (prefix + "-labels-idx1-ubyte")).string(), labels.to(torch::kUInt8));
  };
  make(train, "train");
  make(val, "t10k");
}

// Detached copies of `parameters` (a snapshot to compare against later).
inline std::vector<torch::Tensor> Copies(const std::vector<torch::Tensor>& parameters) {
  std::vector<torch::Tensor> copies;
  for (const auto& p : parameters) copies.push_back(p.detach().clone());
  return copies;
}

// The largest absolute elementwise difference between two lists of same-shaped tensors.
inline double MaxDifference(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
  EXPECT_EQ(a.size(), b.size());
  double worst = 0;
  for (std::size_t i = 0; i < a.size() && i < b.size(); ++i) {
    worst = std::max(worst, (a[i] - b[i]).abs().max().item<double>());
  }
  return worst;
}

// A run's history without its timing fields, which differ from run to run.
inline std::vector<Json> WithoutTimings(const std::vector<Json>& history) {
  std::vector<Json> out;
  for (Json metrics : history) {
    metrics.erase("samples_per_s");
    metrics.erase("time_this_iter_s");
    out.push_back(metrics);
  }
  return out;
}

inline Json SmallConfig(const std::filesystem::path& data_dir) {
  return Json{{"dataset", "mnist"}, {"data_dir", data_dir.string()}, {"model", {{"type", "mlp"}, {"hidden", 32}}},
              {"optimizer", {{"type", "adam"}, {"lr", 0.01}}}, {"batch_size", 32}, {"max_epochs", 2},
              {"threads", 1}, {"progress", false}};
}

}  // namespace tune::testing
