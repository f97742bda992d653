// numpy.std(values) (population, ddof=0) computed with numpy's own floating-point steps:
// pairwise summation (8-way unrolled blocks of up to 128 values, as numpy's add.reduce), mean
// = sum / n, then sqrt(sum((x - mean)^2) / n). The same bits as numpy, so a std right at a
// stopper's threshold gives Ray's verdict.
#pragma once

#include <cstddef>
#include <vector>

namespace tune {

// NaN for no values or when any value is NaN; like numpy, an infinity gives NaN too.
double NumpyStd(const std::vector<double>& values);

// numpy's pairwise sum of a contiguous float64 array (what np.sum does).
double NumpyPairwiseSum(const double* values, std::size_t n);

}  // namespace tune
