#include "schedulers/fifo.h"

namespace tune {

Decision FifoScheduler::OnResult(const std::string& trial_id, const Result& result) {
  (void)trial_id;
  (void)result;
  return Decision::kContinue;
}

std::string FifoScheduler::Describe() const { return "Using FIFO scheduling algorithm."; }

}  // namespace tune
