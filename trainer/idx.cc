#include "trainer/idx.h"

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <vector>

namespace tune {
namespace {

std::uint32_t BigEndian32(const unsigned char* bytes) {
  return (std::uint32_t{bytes[0]} << 24) | (std::uint32_t{bytes[1]} << 16) |
         (std::uint32_t{bytes[2]} << 8) | std::uint32_t{bytes[3]};
}

}  // namespace

torch::Tensor ReadIdx(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IdxError(path + ": cannot open: " + std::strerror(errno));
  in.seekg(0, std::ios::end);
  const std::int64_t file_size = in.tellg();
  in.seekg(0);
  unsigned char magic[4];
  if (file_size < 4 || !in.read(reinterpret_cast<char*>(magic), 4)) {
    throw IdxError(path + ": not an IDX file (shorter than its 4-byte magic)");
  }
  if (magic[0] != 0 || magic[1] != 0) throw IdxError(path + ": not an IDX file (bad magic)");
  if (magic[2] != 0x08) {
    throw IdxError(path + ": IDX element type 0x" + std::to_string(magic[2]) +
                   " is not supported (only unsigned bytes, 0x08)");
  }
  const int rank = magic[3];
  if (rank < 1 || rank > 4) throw IdxError(path + ": IDX rank " + std::to_string(rank) + " out of 1..4");
  std::vector<unsigned char> header(4 * rank);
  if (!in.read(reinterpret_cast<char*>(header.data()), header.size())) {
    throw IdxError(path + ": truncated header");
  }
  std::vector<std::int64_t> shape;
  std::int64_t elements = 1;
  for (int dim = 0; dim < rank; ++dim) {
    shape.push_back(BigEndian32(&header[4 * dim]));
    elements *= shape.back();
  }
  const std::int64_t header_size = 4 + 4 * rank;
  if (file_size - header_size != elements) {
    throw IdxError(path + ": header promises " + std::to_string(elements) + " bytes of data, file has " +
                   std::to_string(file_size - header_size));
  }
  torch::Tensor data = torch::empty(shape, torch::kUInt8);
  if (elements > 0 && !in.read(reinterpret_cast<char*>(data.data_ptr<std::uint8_t>()), elements)) {
    throw IdxError(path + ": read failed");
  }
  return data;
}

void WriteIdx(const std::string& path, const torch::Tensor& data) {
  if (data.scalar_type() != torch::kUInt8 || data.dim() < 1 || data.dim() > 4) {
    throw IdxError(path + ": WriteIdx needs a uint8 tensor of rank 1..4");
  }
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw IdxError(path + ": cannot create: " + std::strerror(errno));
  unsigned char magic[4] = {0, 0, 0x08, static_cast<unsigned char>(data.dim())};
  out.write(reinterpret_cast<char*>(magic), 4);
  for (std::int64_t size : data.sizes()) {
    unsigned char bytes[4] = {static_cast<unsigned char>(size >> 24), static_cast<unsigned char>(size >> 16),
                              static_cast<unsigned char>(size >> 8), static_cast<unsigned char>(size)};
    out.write(reinterpret_cast<char*>(bytes), 4);
  }
  torch::Tensor contiguous = data.contiguous();
  out.write(reinterpret_cast<const char*>(contiguous.data_ptr<std::uint8_t>()), contiguous.numel());
  if (!out) throw IdxError(path + ": write failed");
}

}  // namespace tune
