// Datasets staged in memory as whole tensors: images load as uint8; the trainer normalises them
// to float once (StageNormalised, on the CPU or on the GPU when they fit there), so an epoch is
// one randperm plus one index_select per batch and no per-sample copies or per-batch arithmetic.
// Unstaged splits are normalised per batch instead.
//
// Validation uses the IDX "t10k" split (Fashion-MNIST: 10,000; MNIST: 2,000), whose contents and
// order are fixed by scripts/get_data.py, so train/validation are the same on every machine.
#pragma once

#include <cstdint>
#include <string>

#include <torch/torch.h>

#include "trainer/config.h"
#include "trainer/sequence.h"

namespace tune {

struct Split {
  torch::Tensor images;      // uint8 [N, features]
  torch::Tensor labels;      // int64 [N]; on the staging device once staged
  torch::Tensor normalised;  // float [N, features] on the staging device; undefined until staged
  std::int64_t size() const { return labels.size(0); }
};

struct Dataset {
  Split train;
  Split val;
  std::int64_t features = 0;
  std::int64_t classes = 10;
  // Per-pixel normalisation of bytes: x = byte * scale + shift ((byte/255 - mean) / std with
  // the mean and std of the training split).
  float scale = 1.0f / 255.0f;
  float shift = 0.0f;
  // Sequence tasks (parity_seq, majority_seq): the splits live here instead of train/val, and
  // `features` is the vocabulary size.
  bool is_sequence = false;
  SequenceSplit seq_train;
  SequenceSplit seq_val;
  std::int64_t train_size() const { return is_sequence ? seq_train.size() : train.size(); }
  std::int64_t val_size() const { return is_sequence ? seq_val.size() : val.size(); }
};

// The folder holding `dataset`'s IDX files: config.data_dir, else $TUNE_DATA_DIR, else ./data,
// else the source tree's data/. Throws std::runtime_error naming every place it looked.
std::string ResolveDataDir(const TrainerConfig& config);

// Sequence datasets: MakeSequenceDataset. Images: loads train and t10k IDX files from ResolveDataDir(config)/{mnist,fashion}/, keeps the first
// train_subset / val_subset records, and computes the normalisation.
// Images come through the data cache (data_cache.h) unless TUNE_DATA_CACHE=0: the first load
// ever builds it; later ones map it read-only, and the splits' tensors (normalised already, so
// StageNormalised on the CPU keeps them as they are) point into the mapping, shared by every
// process that maps it. Those tensors must not be written to.
Dataset LoadDataset(const TrainerConfig& config);

// The data cache file LoadDataset(config) uses; "" for sequence datasets or with the cache off.
std::string DataCachePath(const TrainerConfig& config);

// Maps config's data cache into this process when it exists and is valid (no LibTorch code runs:
// the warm trainer calls it before forking trials, which then inherit the mapping). No-op for
// sequence datasets and with the cache off; builds nothing.
void MapDataCache(const TrainerConfig& config);

// The sequence task config.dataset: sequence.train_size + sequence.val_size sequences from
// sequence.seed, the first train_size for training and the rest for validation.
Dataset MakeSequenceDataset(const TrainerConfig& config);

// Builds a Dataset from tensors already in memory (tests, synthetic tasks).
Dataset MakeDataset(Split train, Split val);

// Normalises both image splits to float once, on `device` (labels move there too); a no-op for
// sequence datasets. Afterwards GatherBatch takes indices on that device.
void StageNormalised(Dataset& data, const torch::Device& device);

// Bytes StageNormalised(data, ...) would allocate (the float copies of both splits).
std::int64_t StagedBytes(const Dataset& data);

// Gathers rows `indices` of `split` as a normalised float batch [B, features] and labels [B],
// on the split's device. Thread-safe (reads only), so loader workers may call it concurrently.
std::pair<torch::Tensor, torch::Tensor> GatherBatch(const Dataset& data, const Split& split,
                                                    const torch::Tensor& indices);

}  // namespace tune
