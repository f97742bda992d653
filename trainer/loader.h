// BatchLoader: hands the training loop its batches in order, optionally gathered ahead of time by
// worker threads (PyTorch's DataLoader num_workers, with threads instead of processes since the
// data is already in memory) and copied to the GPU from pinned host memory without blocking.
//
//   num_workers = 0: Next() gathers batch i on the calling thread, then copies it to `device`.
//   num_workers = k: k threads gather batches i, i+1, ... (batch i by worker i % k) at most
//     `prefetch` batches per worker ahead of the consumer, into pinned memory when `device` is
//     CUDA; Next() waits for batch i, then starts its copy with non_blocking=true (the caching
//     host allocator keeps the pinned buffer alive until the copy has run).
// Either way Next() returns the same batches in the same order (tested).
//
// Threads: the workers own nothing but the batch they are gathering; the queue of finished
// batches is guarded by one mutex. `gather` must be safe to call from several threads at once
// (GatherBatch and CollateSequences only read the staged tensors). An exception thrown by
// `gather` is rethrown by Next(). The destructor stops and joins the workers, so a loader may be
// dropped mid-epoch.
//
// Example:
//   BatchLoader loader(batches.size(), [&](std::int64_t i) { return MakeBatch(batches[i]); },
//                      config.num_workers, device);
//   while (auto batch = loader.Next()) Train(*batch);
#pragma once

#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include <torch/torch.h>

#include "trainer/batch.h"

namespace tune {

class BatchLoader {
 public:
  using Gather = std::function<Batch(std::int64_t index)>;

  BatchLoader(std::int64_t count, Gather gather, int num_workers, torch::Device device, int prefetch = 2);
  ~BatchLoader();
  BatchLoader(const BatchLoader&) = delete;
  BatchLoader& operator=(const BatchLoader&) = delete;

  // Batch 0, 1, ..., count-1 on `device`, then nullopt.
  std::optional<Batch> Next();

 private:
  void Work();
  Batch ToDevice(Batch batch, bool pinned) const;

  const std::int64_t count_;
  const Gather gather_;
  const torch::Device device_;
  const std::int64_t capacity_;  // batches gathered but not yet taken, at most
  std::int64_t next_out_ = 0;    // the batch Next() returns next
  std::mutex mutex_;             // guards everything below
  std::condition_variable changed_;
  std::int64_t next_claim_ = 0;  // the batch the next free worker gathers
  std::map<std::int64_t, Batch> ready_;
  std::exception_ptr error_;
  bool stop_ = false;
  std::vector<std::thread> workers_;
};

}  // namespace tune
