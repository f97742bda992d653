// Helpers shared by the schedulers that behave like Ray Tune's: reading a result the way Ray's
// schedulers read it, and numpy's float64 mean and median, computed with numpy's operations in
// numpy's order so that decisions built on them match Ray's to the bit.
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

// numpy.mean(values) for float64: numpy's pairwise summation (blocks of 8 below 128 values,
// halves above), then one division. NaN for no values, as numpy (which also warns).
double NumpyMean(const std::vector<double>& values);

// numpy.median(values): NaN when any value is NaN or there are none; else the mean (as
// NumpyMean) of the middle value, or of the two middle values of the sorted values.
double NumpyMedian(std::vector<double> values);

}  // namespace tune
