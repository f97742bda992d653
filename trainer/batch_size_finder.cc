#include "trainer/batch_size_finder.h"

#include <algorithm>
#include <new>
#include <string>

#include <c10/util/Exception.h>

namespace tune {

int BinsearchBatchSize(const BatchSizeSearch& search, const std::function<bool(int)>& fits) {
  int upper = search.max_size > 0 ? search.max_size : 0;
  if (search.limit > 0) upper = upper > 0 ? std::min(upper, search.limit) : search.limit;
  int low = 0;   // the largest size known to fit
  int high = 0;  // the smallest size known not to fit; 0 = none yet
  int size = std::max(search.initial, 1);
  if (upper > 0 && size > upper) {
    // Over the cap from the start: everything above the cap counts as not fitting.
    high = upper + 1;
    size = upper;
  }
  for (int trial = 0; trial < search.max_trials && size > low && (high == 0 || size < high); ++trial) {
    if (fits(size)) {
      low = size;
      if (high == 0) {
        if (upper > 0 && size >= upper) break;
        size = upper > 0 ? std::min(size * 2, upper) : size * 2;
      } else {
        size = low + (high - low) / 2;
      }
    } else {
      high = size;
      size = low + (high - low) / 2;
    }
    if (high != 0 && high - low <= 1) break;
  }
  return low;
}

bool IsOutOfMemory(const std::exception& error) {
  if (dynamic_cast<const c10::OutOfMemoryError*>(&error) != nullptr) return true;
  if (dynamic_cast<const std::bad_alloc*>(&error) != nullptr) return true;
  if (dynamic_cast<const c10::Error*>(&error) == nullptr) return false;
  const std::string message = error.what();
  return message.find("out of memory") != std::string::npos ||
         message.find("DefaultCPUAllocator: can't allocate") != std::string::npos ||
         message.find("DefaultCPUAllocator: not enough memory") != std::string::npos;
}

}  // namespace tune
