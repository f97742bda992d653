#include "trainer/loader.h"

#include <algorithm>
#include <utility>

namespace tune {

BatchLoader::BatchLoader(std::int64_t count, Gather gather, int num_workers, torch::Device device, int prefetch)
    : count_(count),
      gather_(std::move(gather)),
      device_(device),
      capacity_(std::max<std::int64_t>(1, static_cast<std::int64_t>(num_workers) * std::max(prefetch, 1))) {
  const auto threads = static_cast<int>(std::min<std::int64_t>(num_workers, count));
  for (int i = 0; i < threads; ++i) workers_.emplace_back([this] { Work(); });
}

BatchLoader::~BatchLoader() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  changed_.notify_all();
  for (auto& worker : workers_) worker.join();
}

void BatchLoader::Work() {
  const bool pin = device_.is_cuda();
  for (;;) {
    std::int64_t index;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      changed_.wait(lock, [&] { return stop_ || next_claim_ >= count_ || next_claim_ < next_out_ + capacity_; });
      if (stop_ || next_claim_ >= count_) return;
      index = next_claim_++;
    }
    try {
      Batch batch = gather_(index);
      if (pin) {
        for (torch::Tensor* t : {&batch.x, &batch.y, &batch.mask}) {
          if (t->defined() && t->device().is_cpu()) *t = t->pin_memory();
        }
      }
      std::lock_guard<std::mutex> lock(mutex_);
      ready_.emplace(index, std::move(batch));
    } catch (...) {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!error_) error_ = std::current_exception();
      stop_ = true;
    }
    changed_.notify_all();
  }
}

Batch BatchLoader::ToDevice(Batch batch, bool pinned) const {
  for (torch::Tensor* t : {&batch.x, &batch.y, &batch.mask}) {
    if (t->defined() && t->device() != device_) *t = t->to(device_, /*non_blocking=*/pinned);
  }
  return batch;
}

std::optional<Batch> BatchLoader::Next() {
  if (next_out_ >= count_) return std::nullopt;
  if (workers_.empty()) return ToDevice(gather_(next_out_++), /*pinned=*/false);
  Batch batch;
  {
    std::unique_lock<std::mutex> lock(mutex_);
    changed_.wait(lock, [&] { return error_ || ready_.count(next_out_) > 0; });
    if (error_) std::rethrow_exception(error_);
    auto found = ready_.find(next_out_);
    batch = std::move(found->second);
    ready_.erase(found);
    ++next_out_;
  }
  changed_.notify_all();
  return ToDevice(std::move(batch), /*pinned=*/device_.is_cuda());
}

}  // namespace tune
