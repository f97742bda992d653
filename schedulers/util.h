// Helpers shared by the schedulers that behave like Ray Tune's: reading a result the way Ray's
// schedulers read it. (numpy's statistics, to the bit: core/numpy.h.)
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/types.h"

namespace tune {

// Whether `attr` is in the result as Ray sees it: training_iteration and time_total_s always
// are, a metric when the trial reported it (whatever its value).
bool HasAttr(const Result& result, const std::string& attr);

// (time_attr, metric) of `result`, or nullopt when either key is missing or the time is NaN (a
// time that cannot be placed on any milestone is treated like a missing one). A present but
// non-numeric metric reads as NaN.
std::optional<std::pair<double, double>> ReadTimeAndMetric(const Result& result,
                                                            const std::string& time_attr,
                                                            const std::string& metric);

}  // namespace tune
