// Seeded permutations: the one way the trainer draws an order, so that every order is a
// function of its seed alone (the same on every machine and every run, exact resume included).
#pragma once

#include <cstdint>

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

namespace tune {

// A permutation of 0..n-1 (int64, on the CPU) drawn from `seed`: the epoch shuffle, the held-out
// validation rows (val_fraction), the sequence tasks' data and batch order.
inline torch::Tensor SeededPermutation(std::int64_t n, std::uint64_t seed) {
  auto generator = at::make_generator<at::CPUGeneratorImpl>(seed);
  return torch::randperm(n, generator, torch::kLong);
}

}  // namespace tune
