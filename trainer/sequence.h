// Synthetic variable-length sequence tasks, the collate function that pads each batch to its own
// longest sequence (dynamic padding, as in seed 004), and length-bucketed batching.
//
// Tasks (config "dataset"), tokens drawn uniformly from 1..vocab (0 is the padding id), lengths
// uniform in [min_length, max_length]:
//   parity_seq    label = 1 when token 3 occurs an odd number of times, else 0
//   majority_seq  label = 1 when token 1 occurs more often than token 2, else 0
// Every sequence comes from a portable PRNG (splitmix64) seeded by sequence.seed, so the data
// are identical on every machine and independent of the training seed; the first train_size
// sequences are the training split and the next val_size the validation split.
//
// Example:
//   SequenceSplit split = ...;
//   SequenceBatch batch = CollateSequences(split, torch::tensor({4, 9, 2}));
//   // batch.tokens [3, T] (T = the longest of the three), batch.mask [3, T], batch.lengths [3]
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "trainer/config.h"

namespace tune {

// Sequences stored back to back: sequence i is tokens[offsets[i] : offsets[i+1]].
struct SequenceSplit {
  torch::Tensor tokens;   // int64 [total tokens], values 1..vocab
  torch::Tensor offsets;  // int64 [N + 1]
  torch::Tensor labels;   // int64 [N]
  std::int64_t size() const { return labels.defined() ? labels.size(0) : 0; }
  std::int64_t length(std::int64_t i) const;
};

struct SequenceBatch {
  torch::Tensor tokens;   // int64 [B, T], padded with kPadToken after each sequence's end
  torch::Tensor lengths;  // int64 [B] (CPU, as pack_padded_sequence wants)
  torch::Tensor mask;     // bool [B, T], true on real tokens
  torch::Tensor labels;   // int64 [B]
};

constexpr std::int64_t kPadToken = 0;

// Builds a split from explicit sequences (tests, hand-made batches).
SequenceSplit MakeSequenceSplit(const std::vector<std::vector<std::int64_t>>& sequences,
                                const std::vector<std::int64_t>& labels);

// The task's label rule applied to one sequence (see the header comment).
std::int64_t SequenceLabel(const std::string& task, const std::vector<std::int64_t>& sequence);

// Generates `count` sequences of task `task` from stream `seed`.
SequenceSplit GenerateSequences(const std::string& task, const SequenceConfig& config,
                                std::uint64_t seed, std::int64_t count);

// Pads rows `indices` of `split` to the longest of them.
SequenceBatch CollateSequences(const SequenceSplit& split, const torch::Tensor& indices);

// The epoch's batches as index tensors. The order is a function of (seed, epoch) only. With
// `bucket`, the shuffled indices are cut into pools of 50 batches, each pool is sorted by
// length and cut into batches (so a batch holds sequences of similar length and little
// padding), and the batches are shuffled again.
std::vector<torch::Tensor> SequenceBatches(const SequenceSplit& split, std::int64_t batch_size,
                                           std::uint64_t seed, int epoch, bool bucket);

// Validation batches: indices sorted by length (least padding), then cut.
std::vector<torch::Tensor> SortedSequenceBatches(const SequenceSplit& split, std::int64_t batch_size);

}  // namespace tune
