// numpy's float64 statistics computed with numpy's operations in numpy's order, so that
// decisions built on them (ASHA's cutoffs, the median rule, plateau stoppers) match Ray Tune's to
// the bit: pairwise summation (8-way unrolled blocks of up to 128 values, as np.add.reduce), then
// mean, median, std and nanpercentile on top of it.
#pragma once

#include <cstddef>
#include <vector>

namespace tune {

// numpy's pairwise sum of a contiguous float64 array (what np.sum does).
double NumpyPairwiseSum(const double* values, std::size_t n);

// numpy.mean(values): the pairwise sum, then one division. NaN for no values (numpy warns).
double NumpyMean(const std::vector<double>& values);

// numpy.median(values): NaN when any value is NaN or there are none; else the mean (as
// NumpyMean) of the middle value, or of the two middle values of the sorted values.
double NumpyMedian(std::vector<double> values);

// numpy.std(values) (population, ddof=0): mean = sum / n, then sqrt(sum((x - mean)^2) / n).
// NaN for no values or when any value is NaN; like numpy, an infinity gives NaN too.
double NumpyStd(const std::vector<double>& values);

// numpy.percentile(values, q) with the default "linear" method, ignoring NaN like
// numpy.nanpercentile: NaN if no value is a number. `q` is in [0, 100].
double NanPercentile(std::vector<double> values, double q);

// NanPercentile after its sort, for callers that keep the numbers ordered themselves
// (schedulers/streaming_percentile.h): where the q-th percentile of n >= 1 sorted numbers falls.
// The lower neighbour is the number at `below`; the upper one at below + 1, except when `at_end`
// (a single number, or q so close to 100 that the index reaches n - 1): then both neighbours are
// the last number.
struct PercentilePosition {
  std::size_t below;
  bool at_end;
  double gamma;  // the interpolation weight of the upper neighbour, as numpy computes it
};
PercentilePosition NumpyPercentilePosition(std::size_t n, double q);

// numpy's _lerp between the two neighbours: the percentile, with numpy's rounding.
double NumpyPercentileLerp(double lower, double upper, double gamma);

}  // namespace tune
