#include "trainer/sequence.h"

#include <algorithm>
#include <numeric>
#include <stdexcept>

#include "trainer/shuffle.h"

namespace tune {
namespace {

// splitmix64: a portable stream (std::uniform_int_distribution differs between libraries).
class SplitMix64 {
 public:
  explicit SplitMix64(std::uint64_t seed) : state_(seed) {}
  std::uint64_t Next() {
    std::uint64_t z = (state_ += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }
  // Uniform in [lo, hi]; the modulo bias is < 2^-50 for the ranges used here.
  std::int64_t Uniform(std::int64_t lo, std::int64_t hi) {
    return lo + static_cast<std::int64_t>(Next() % static_cast<std::uint64_t>(hi - lo + 1));
  }

 private:
  std::uint64_t state_;
};

}  // namespace

std::int64_t SequenceSplit::length(std::int64_t i) const {
  const std::int64_t* o = offsets.data_ptr<std::int64_t>();
  return o[i + 1] - o[i];
}

SequenceSplit MakeSequenceSplit(const std::vector<std::vector<std::int64_t>>& sequences,
                                const std::vector<std::int64_t>& labels) {
  if (sequences.size() != labels.size()) throw std::invalid_argument("sequences and labels differ in count");
  std::vector<std::int64_t> flat, offsets{0};
  for (const auto& sequence : sequences) {
    if (sequence.empty()) throw std::invalid_argument("empty sequence");
    flat.insert(flat.end(), sequence.begin(), sequence.end());
    offsets.push_back(static_cast<std::int64_t>(flat.size()));
  }
  auto to_tensor = [](const std::vector<std::int64_t>& v) {
    return torch::tensor(torch::ArrayRef<std::int64_t>(v), torch::kLong).clone();
  };
  return SequenceSplit{flat.empty() ? torch::zeros({0}, torch::kLong) : to_tensor(flat), to_tensor(offsets),
                       labels.empty() ? torch::zeros({0}, torch::kLong) : to_tensor(labels)};
}

std::int64_t SequenceLabel(const std::string& task, const std::vector<std::int64_t>& sequence) {
  if (task == "parity_seq") {
    return std::count(sequence.begin(), sequence.end(), 3) % 2;
  }
  if (task == "majority_seq") {
    return std::count(sequence.begin(), sequence.end(), 1) > std::count(sequence.begin(), sequence.end(), 2) ? 1 : 0;
  }
  throw std::invalid_argument("unknown sequence task " + task);
}

SequenceSplit GenerateSequences(const std::string& task, const SequenceConfig& config, std::uint64_t seed,
                                std::int64_t count) {
  SplitMix64 rng(seed);
  std::vector<std::vector<std::int64_t>> sequences(static_cast<std::size_t>(count));
  std::vector<std::int64_t> labels(static_cast<std::size_t>(count));
  for (std::int64_t i = 0; i < count; ++i) {
    auto& sequence = sequences[static_cast<std::size_t>(i)];
    sequence.resize(static_cast<std::size_t>(rng.Uniform(config.min_length, config.max_length)));
    for (auto& token : sequence) token = rng.Uniform(1, config.vocab);
    labels[static_cast<std::size_t>(i)] = SequenceLabel(task, sequence);
  }
  return MakeSequenceSplit(sequences, labels);
}

SequenceBatch CollateSequences(const SequenceSplit& split, const torch::Tensor& indices) {
  torch::Tensor index = indices.to(torch::kLong).contiguous();
  const std::int64_t batch = index.numel();
  const std::int64_t* rows = index.data_ptr<std::int64_t>();
  const std::int64_t* offsets = split.offsets.data_ptr<std::int64_t>();
  const std::int64_t* tokens = split.tokens.data_ptr<std::int64_t>();
  torch::Tensor lengths = torch::empty({batch}, torch::kLong);
  std::int64_t* length = lengths.data_ptr<std::int64_t>();
  std::int64_t longest = 0;
  for (std::int64_t b = 0; b < batch; ++b) {
    length[b] = offsets[rows[b] + 1] - offsets[rows[b]];
    longest = std::max(longest, length[b]);
  }
  torch::Tensor padded = torch::full({batch, longest}, kPadToken, torch::kLong);
  std::int64_t* out = padded.data_ptr<std::int64_t>();
  for (std::int64_t b = 0; b < batch; ++b) {
    std::copy(tokens + offsets[rows[b]], tokens + offsets[rows[b] + 1], out + b * longest);
  }
  torch::Tensor mask = torch::arange(longest, torch::kLong).unsqueeze(0) < lengths.unsqueeze(1);
  return SequenceBatch{padded, lengths, mask, split.labels.index_select(0, index)};
}

std::vector<torch::Tensor> SequenceBatches(const SequenceSplit& split, std::int64_t batch_size,
                                           std::uint64_t seed, int epoch, bool bucket) {
  const std::int64_t n = split.size();
  const std::uint64_t stream = seed * 1000003ULL + static_cast<std::uint64_t>(epoch);
  torch::Tensor order = SeededPermutation(n, stream);
  std::vector<torch::Tensor> batches;
  if (!bucket) {
    for (std::int64_t lo = 0; lo < n; lo += batch_size) batches.push_back(order.slice(0, lo, lo + batch_size));
    return batches;
  }
  const std::int64_t* shuffled = order.data_ptr<std::int64_t>();
  const std::int64_t pool = batch_size * 50;
  std::vector<std::int64_t> ids;
  for (std::int64_t lo = 0; lo < n; lo += pool) {
    ids.assign(shuffled + lo, shuffled + std::min(n, lo + pool));
    // Stable, so equal lengths keep their shuffled order and the result is deterministic.
    std::stable_sort(ids.begin(), ids.end(),
                     [&](std::int64_t a, std::int64_t b) { return split.length(a) < split.length(b); });
    for (std::size_t b = 0; b < ids.size(); b += static_cast<std::size_t>(batch_size)) {
      std::vector<std::int64_t> chunk(ids.begin() + static_cast<std::ptrdiff_t>(b),
                                      ids.begin() + static_cast<std::ptrdiff_t>(
                                                        std::min(ids.size(), b + static_cast<std::size_t>(batch_size))));
      batches.push_back(torch::tensor(torch::ArrayRef<std::int64_t>(chunk), torch::kLong).clone());
    }
  }
  torch::Tensor batch_order = SeededPermutation(static_cast<std::int64_t>(batches.size()), stream ^ 0x5851F42D4C957F2DULL);
  std::vector<torch::Tensor> reordered;
  reordered.reserve(batches.size());
  for (std::int64_t i = 0; i < batch_order.numel(); ++i) {
    reordered.push_back(batches[static_cast<std::size_t>(batch_order[i].item<std::int64_t>())]);
  }
  return reordered;
}

std::vector<torch::Tensor> SortedSequenceBatches(const SequenceSplit& split, std::int64_t batch_size) {
  std::vector<std::int64_t> ids(static_cast<std::size_t>(split.size()));
  std::iota(ids.begin(), ids.end(), 0);
  std::stable_sort(ids.begin(), ids.end(),
                   [&](std::int64_t a, std::int64_t b) { return split.length(a) < split.length(b); });
  std::vector<torch::Tensor> batches;
  for (std::size_t b = 0; b < ids.size(); b += static_cast<std::size_t>(batch_size)) {
    std::vector<std::int64_t> chunk(
        ids.begin() + static_cast<std::ptrdiff_t>(b),
        ids.begin() + static_cast<std::ptrdiff_t>(std::min(ids.size(), b + static_cast<std::size_t>(batch_size))));
    batches.push_back(torch::tensor(torch::ArrayRef<std::int64_t>(chunk), torch::kLong).clone());
  }
  return batches;
}

}  // namespace tune
