// FIFO: the scheduler that never stops a trial early. Trials run until they end on their own
// (or hit the experiment's stopping criteria); the default when space.json names no scheduler.
//
// Example:
//   FifoScheduler fifo;
//   fifo.OnResult("t_00000", result);  // always Decision::kContinue
#pragma once

#include <string>

#include "schedulers/scheduler.h"

namespace tune {

class FifoScheduler : public Scheduler {
 public:
  Decision OnResult(const std::string& trial_id, const Result& result) override;
  // Ray's wording: "Using FIFO scheduling algorithm."
  std::string Describe() const override;
  // FIFO keeps no state: an empty object, and loading one is a no-op.
  std::optional<Json> SaveState() const override { return Json::object(); }
  void LoadState(const Json& state) override { (void)state; }
};

// "fifo": takes no options (schedulers/scheduler.cc's table).
SchedulerRegistry::Entry FifoEntry();

}  // namespace tune
