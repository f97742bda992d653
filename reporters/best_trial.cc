#include <cmath>

#include "reporters/reporters.h"

namespace tune {

const Trial* BestTrial(const std::vector<Trial>& trials, const std::string& metric, Mode mode) {
  const Trial* best = nullptr;
  double best_value = 0;
  for (const Trial& trial : trials) {
    if (!trial.last_result) continue;
    double value = trial.last_result->Get(metric);
    if (std::isnan(value)) continue;
    // Strictly better only, so a tie keeps the earlier trial.
    if (best == nullptr || IsBetter(value, best_value, mode)) {
      best = &trial;
      best_value = value;
    }
  }
  return best;
}

}  // namespace tune
