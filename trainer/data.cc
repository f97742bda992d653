#include "trainer/data.h"

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <stdexcept>

#include "trainer/data_cache.h"
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

// The IDX files of `folder` decoded, and the normalisation computed (no cache).
Dataset LoadImages(const fs::path& folder, const TrainerConfig& config) {
  return MakeDataset(LoadSplit(folder, "train", config.train_subset), LoadSplit(folder, "t10k", config.val_subset));
}

// Tensors over the cache's mapping (no copy). `cache` stays mapped while any of them lives.
Dataset FromCache(const std::shared_ptr<const MappedDataCache>& cache) {
  const CachedDataset& c = cache->data();
  auto view = [&cache](const void* at, torch::IntArrayRef sizes, torch::ScalarType type) {
    return torch::from_blob(const_cast<void*>(at), sizes, [cache](void*) {}, torch::TensorOptions().dtype(type));
  };
  auto split = [&](const CachedSplit& s) {
    return Split{view(s.images, {s.size, c.features}, torch::kByte), view(s.labels, {s.size}, torch::kLong),
                 view(s.normalised, {s.size, c.features}, torch::kFloat)};
  };
  Dataset data;
  data.features = c.features;
  data.classes = c.classes;
  data.scale = c.scale;
  data.shift = c.shift;
  data.train = split(c.train);
  data.val = split(c.val);
  return data;
}

CachedSplit ToCached(const Split& split) {
  return {split.size(), split.labels.data_ptr<std::int64_t>(), split.normalised.data_ptr<float>(),
          split.images.data_ptr<std::uint8_t>()};
}

// LoadImages through the cache: mapped when valid, else built (once, under the cache's lock)
// and then mapped. A cache that cannot be written (a read-only data folder) is not fatal.
Dataset LoadImagesCached(const fs::path& folder, const TrainerConfig& config) {
  DataCacheLocation location = LocateDataCache(folder.string(), config.train_subset, config.val_subset);
  std::string why;
  if (auto cache = AcquireDataCache(location, &why)) return FromCache(cache);
  try {
    DataCacheBuildLock lock(location.path);
    std::string again;
    if (auto cache = AcquireDataCache(location, &again)) return FromCache(cache);  // built meanwhile
    if (why != "missing") std::cerr << "tune-trainer: data cache " << location.path << " is " << why << "; rebuilding\n";
    Dataset data = LoadImages(folder, config);
    StageNormalised(data, torch::Device(torch::kCPU));
    CachedDataset cached{data.features, data.classes, data.scale, data.shift, ToCached(data.train), ToCached(data.val)};
    WriteDataCache(location, cached);
    if (auto cache = AcquireDataCache(location, &why)) return FromCache(cache);
    throw std::runtime_error("data cache: " + location.path + " was written but cannot be used: " + why);
  } catch (const IdxError&) {
    throw;
  } catch (const std::runtime_error& error) {
    std::cerr << "tune-trainer: " << error.what() << "; loading without the cache\n";
    return LoadImages(folder, config);
  }
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
  const fs::path folder = fs::path(ResolveDataDir(config)) / Subfolder(config.dataset);
  return DataCacheEnabled() ? LoadImagesCached(folder, config) : LoadImages(folder, config);
}

std::string DataCachePath(const TrainerConfig& config) {
  if (IsSequenceDataset(config.dataset) || !DataCacheEnabled()) return "";
  const fs::path folder = fs::path(ResolveDataDir(config)) / Subfolder(config.dataset);
  return LocateDataCache(folder.string(), config.train_subset, config.val_subset).path;
}

void MapDataCache(const TrainerConfig& config) {
  if (IsSequenceDataset(config.dataset) || !DataCacheEnabled()) return;
  const fs::path folder = fs::path(ResolveDataDir(config)) / Subfolder(config.dataset);
  std::string why;
  AcquireDataCache(LocateDataCache(folder.string(), config.train_subset, config.val_subset), &why);
}

void StageNormalised(Dataset& data, const torch::Device& device) {
  if (data.is_sequence) return;
  for (Split* split : {&data.train, &data.val}) {
    if (split->normalised.defined()) {  // from the data cache: normalised on the CPU already
      if (!split->normalised.device().is_cpu() || device.is_cpu()) continue;
      split->normalised = split->normalised.to(device);
      split->labels = split->labels.to(device);
      continue;
    }
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
