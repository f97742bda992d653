#include "schedulers/fifo.h"

namespace tune {

Decision FifoScheduler::OnResult(const std::string& trial_id, const Result& result) {
  (void)trial_id;
  (void)result;
  return Decision::kContinue;
}

std::string FifoScheduler::Describe() const { return "Using FIFO scheduling algorithm."; }

SchedulerRegistry::Entry FifoEntry() {
  return {"fifo", {},
          [](const OptionsReader&, const SchedulerContext&) { return std::any(); },
          [](const std::any&, const SchedulerContext&) -> std::unique_ptr<Scheduler> {
            return std::make_unique<FifoScheduler>();
          }};
}

}  // namespace tune
