// Batch: what a data module's collate function returns and a model's forward takes.
#pragma once

#include <cstdint>

#include <torch/types.h>

namespace tune {

// A batch ready for the model. `y` is required (the loss and accuracy read it); a user's data
// module may leave the other fields undefined or use them as it likes.
struct Batch {
  torch::Tensor x;        // images: float [B, features]; sequences: tokens int64 [B, T]
  torch::Tensor y;        // int64 [B]: the class of each sample
  torch::Tensor lengths;  // sequences: int64 [B], always on the CPU (pack_padded_sequence wants it there)
  torch::Tensor mask;     // sequences: bool [B, T]
  std::int64_t size() const { return y.size(0); }
};

}  // namespace tune
