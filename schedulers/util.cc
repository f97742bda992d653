#include "schedulers/util.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>

namespace tune {

bool HasAttr(const Result& result, const std::string& attr) {
  return attr == "training_iteration" || attr == "time_total_s" || result.metrics.contains(attr);
}

std::optional<std::pair<double, double>> ReadTimeAndMetric(const Result& result,
                                                            const std::string& time_attr,
                                                            const std::string& metric) {
  if (!HasAttr(result, time_attr) || !HasAttr(result, metric)) return std::nullopt;
  const double time = result.Get(time_attr);
  if (std::isnan(time)) return std::nullopt;
  return std::make_pair(time, result.Get(metric));
}

}  // namespace tune
