#include "schedulers/scheduler.h"

#include <stdexcept>

#include "schedulers/asha.h"
#include "schedulers/fifo.h"
#include "schedulers/hyperband.h"
#include "schedulers/median.h"
#include "schedulers/pbt.h"

namespace tune {

const SchedulerRegistry& Schedulers() {
  // One line per scheduler; each file exports its Entry (name, keys, parse, make).
  static const SchedulerRegistry registry("scheduler", "fifo",
                                          {
                                              FifoEntry(),
                                              AshaEntry(),
                                              HyperBandEntry(),
                                              MedianEntry(),
                                              PbtEntry(),
                                          });
  return registry;
}

std::optional<std::string> Scheduler::ChooseTrialToRun(const std::vector<const Trial*>& waiting) {
  for (TrialStatus status : {TrialStatus::kPending, TrialStatus::kPaused}) {
    for (const Trial* trial : waiting) {
      if (trial->status == status) return trial->id;
    }
  }
  return std::nullopt;
}

void Scheduler::LoadState(const Json& state) {
  (void)state;
  throw std::runtime_error("snapshot: this scheduler keeps no state to load");
}

SchedulerConfig ParseSchedulerOptions(const Json& json, const std::string& path,
                                      const SchedulerContext& context) {
  return Schedulers().Parse(json, path, context);
}

std::unique_ptr<Scheduler> MakeScheduler(const SchedulerConfig& config) {
  return Schedulers().Make(config);
}

std::unique_ptr<Scheduler> MakeScheduler(const Json& spec, const std::string& metric, Mode mode,
                                         const std::string& path) {
  return MakeScheduler(ParseSchedulerOptions(spec, path, SchedulerContext{metric, mode}));
}

}  // namespace tune
