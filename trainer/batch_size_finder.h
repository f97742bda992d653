// Lightning's Tuner.scale_batch_size(mode="binsearch") as a pure search over a "fits" predicate:
// starting at `initial`, double while the size fits; after the first failure, binary-search
// between the last size that fitted and the first that did not. The Trainer supplies the
// predicate (a few real training steps, failing on out-of-memory, above max_batch_size or
// outside a memory budget) and restores the model afterwards (Trainer::FindBatchSize).
//
// Example: a budget admitting up to 300 samples, from 128:
//   128 ok, 256 ok, 512 no, 384 no, 320 no, 288 ok, 304 no, 296 ok, 300 ok, 302 no, 301 no -> 300
//   int best = tune::BinsearchBatchSize({128, 0, 1 << 20}, [](int b) { return b <= 300; });
#pragma once

#include <exception>
#include <functional>

namespace tune {

struct BatchSizeSearch {
  int initial = 1;      // the first size tried (>= 1)
  int max_size = 0;     // sizes above it count as failures and are never tried; 0 = no cap
  int limit = 0;        // a natural upper end (e.g. the training set's size); 0 = none
  int max_trials = 40;  // predicate calls at most
};

// The largest size that fitted (0 when even `initial` failed or was over max_size).
int BinsearchBatchSize(const BatchSizeSearch& search, const std::function<bool(int)>& fits);

// Whether `error` means the allocator ran out of memory: c10::OutOfMemoryError (CUDA), or a
// c10::Error whose message says "out of memory" or "DefaultCPUAllocator: can't allocate" / "not
// enough memory" (CPU), or std::bad_alloc.
bool IsOutOfMemory(const std::exception& error);

}  // namespace tune
