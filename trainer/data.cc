#include "trainer/data.h"

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>

#include "trainer/idx.h"

namespace tune {
namespace {

namespace fs = std::filesystem;

std::string Subfolder(const std::string& dataset) { return dataset == "fashion_mnist" ? "fashion" : "mnist"; }

Split LoadSplit(const fs::path& folder, const std::string& prefix, std::int64_t limit) {
  torch::Tensor images = ReadIdx((folder / (prefix + "-images-idx3-ubyte")).string());
  torch::Tensor labels = ReadIdx((folder / (prefix + "-labels-idx1-ubyte")).string());
  if (images.size(0) != labels.size(0)) {
    throw std::runtime_error(folder.string() + ": " + prefix + " has " + std::to_string(images.size(0)) +
                             " images but " + std::to_string(labels.size(0)) + " labels");
  }
  if (limit > 0 && limit < images.size(0)) {
    images = images.slice(0, 0, limit);
    labels = labels.slice(0, 0, limit);
  }
  return Split{images.reshape({images.size(0), -1}).contiguous(), labels.to(torch::kLong)};
}

}  // namespace

std::string ResolveDataDir(const TrainerConfig& config) {
  std::vector<fs::path> candidates;
  if (!config.data_dir.empty()) {
    candidates.push_back(config.data_dir);
  } else {
    if (const char* env = std::getenv("TUNE_DATA_DIR")) candidates.push_back(env);
    candidates.push_back("data");
#ifdef TUNE_DEFAULT_DATA_DIR
    candidates.push_back(TUNE_DEFAULT_DATA_DIR);
#endif
  }
  std::string looked;
  for (const fs::path& dir : candidates) {
    if (fs::exists(dir / Subfolder(config.dataset) / "train-images-idx3-ubyte")) return dir.string();
    looked += (looked.empty() ? "" : ", ") + fs::absolute(dir).string();
  }
  throw std::runtime_error("dataset " + config.dataset + " not found in " + looked +
                           " (run scripts/get_data.sh, or set data_dir)");
}

Dataset MakeDataset(Split train, Split val) {
  Dataset data;
  data.features = train.images.size(1);
  data.classes = std::max<std::int64_t>(train.labels.max().item<std::int64_t>() + 1, 2);
  // Chunked so the float copy of a 60,000-image split never exists at once.
  double sum = 0, sum_sq = 0;
  const std::int64_t chunk = 8192;
  for (std::int64_t lo = 0; lo < train.size(); lo += chunk) {
    torch::Tensor x = train.images.slice(0, lo, lo + chunk).to(torch::kDouble).div_(255.0);
    sum += x.sum().item<double>();
    sum_sq += x.pow(2).sum().item<double>();
  }
  const double count = static_cast<double>(train.images.numel());
  const double mean = count > 0 ? sum / count : 0.0;
  const double std = std::sqrt(std::max(sum_sq / std::max(count, 1.0) - mean * mean, 1e-12));
  data.scale = static_cast<float>(1.0 / (255.0 * std));
  data.shift = static_cast<float>(-mean / std);
  data.train = std::move(train);
  data.val = std::move(val);
  return data;
}

Dataset MakeSequenceDataset(const TrainerConfig& config) {
  const SequenceConfig& s = config.sequence;
  SequenceSplit all = GenerateSequences(config.dataset, s, s.seed, s.train_size + s.val_size);
  const std::int64_t cut = all.offsets[s.train_size].item<std::int64_t>();
  Dataset data;
  data.is_sequence = true;
  data.features = s.vocab;
  data.classes = 2;
  data.seq_train = SequenceSplit{all.tokens.slice(0, 0, cut), all.offsets.slice(0, 0, s.train_size + 1).clone(),
                                 all.labels.slice(0, 0, s.train_size)};
  data.seq_val = SequenceSplit{all.tokens.slice(0, cut).clone(), all.offsets.slice(0, s.train_size) - cut,
                               all.labels.slice(0, s.train_size).clone()};
  return data;
}

Dataset LoadDataset(const TrainerConfig& config) {
  if (IsSequenceDataset(config.dataset)) return MakeSequenceDataset(config);
  fs::path folder = fs::path(ResolveDataDir(config)) / Subfolder(config.dataset);
  return MakeDataset(LoadSplit(folder, "train", config.train_subset),
                     LoadSplit(folder, "t10k", config.val_subset));
}

void StageNormalised(Dataset& data, const torch::Device& device) {
  if (data.is_sequence) return;
  for (Split* split : {&data.train, &data.val}) {
    // Chunked, so no temporary larger than a chunk exists beside the result; the same float
    // arithmetic as the per-batch path, so staging changes no result.
    torch::Tensor out = torch::empty({split->images.size(0), split->images.size(1)},
                                     torch::TensorOptions().dtype(torch::kFloat).device(device));
    const std::int64_t chunk = 8192;
    for (std::int64_t lo = 0; lo < split->images.size(0); lo += chunk) {
      torch::Tensor bytes = split->images.slice(0, lo, lo + chunk).to(device);
      out.slice(0, lo, lo + chunk).copy_(bytes.to(torch::kFloat).mul_(data.scale).add_(data.shift));
    }
    split->normalised = out;
    split->labels = split->labels.to(device);
  }
}

std::int64_t StagedBytes(const Dataset& data) {
  if (data.is_sequence) return 0;
  return (data.train.images.numel() + data.val.images.numel()) * static_cast<std::int64_t>(sizeof(float));
}

std::pair<torch::Tensor, torch::Tensor> GatherBatch(const Dataset& data, const Split& split,
                                                    const torch::Tensor& indices) {
  if (split.normalised.defined()) {
    return {split.normalised.index_select(0, indices), split.labels.index_select(0, indices)};
  }
  torch::Tensor x = split.images.index_select(0, indices).to(torch::kFloat);
  x.mul_(data.scale).add_(data.shift);
  return {x, split.labels.index_select(0, indices)};
}

}  // namespace tune
