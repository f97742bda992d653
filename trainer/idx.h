// Reading and writing IDX files (the MNIST format: big-endian magic 0x0000 08 NN, NN dimension
// sizes, then uint8 data), for any record count.
//
// LibTorch's own MNIST reader insists on exactly 60,000/10,000 records; ours reads whatever
// the header says and checks the file holds exactly that many bytes.
//
// Example:
//   torch::Tensor images = tune::ReadIdx("data/fashion/train-images-idx3-ubyte");  // [N,28,28]
//   torch::Tensor labels = tune::ReadIdx("data/fashion/train-labels-idx1-ubyte");  // [N]
#pragma once

#include <stdexcept>
#include <string>

#include <torch/torch.h>

namespace tune {

// Thrown for a missing, short, long or malformed file; the message names the file.
class IdxError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Reads an IDX file of unsigned bytes (type code 0x08) into a uint8 tensor whose shape is the
// header's dimensions.
torch::Tensor ReadIdx(const std::string& path);

// Writes a uint8 tensor as an IDX file (tests and data tools). Throws IdxError on failure.
void WriteIdx(const std::string& path, const torch::Tensor& data);

}  // namespace tune
