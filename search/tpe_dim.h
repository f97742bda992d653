// How TPE sees one parameter of the space (private to search/tpe*.cc and their tests).
//
// Numeric values live in "kernel space": log(v) for log domains, v otherwise; a categorical's
// value is its choice index. Discrete values (ints, quantized) are first + k * step for
// k in [0, count]; their kernels are truncated to the domain widened by half a step on each
// side, and with fewer than 1000 values densities are bin masses (value +- step/2), as Optuna
// does; wider discrete domains use the continuous density (the bin mass of a wide kernel is a
// difference of two nearly equal CDFs). normal/qnormal are searched within mean +- 5 sd, with
// the normal itself as the prior kernel; other domains' prior is centred with the range as sd.
//
// Example:
//   Dim dim = MakeDim(space.parameters()[0]);          // {"randint": [1, 5]}
//   // dim.first == 1, dim.last == 4, dim.low == 0.5, dim.high == 4.5, dim.binned
//   Json value = ToJson(parameter, dim, Snap(dim, 2.3)); // 2
#pragma once

#include <cstdint>

#include "core/types.h"
#include "search/space.h"

namespace tune {

struct Dim {
  bool categorical = false;
  std::size_t choices = 0;
  bool log = false;
  double step = 0;         // 0: continuous
  double first = 0;        // smallest value (discrete) or lower bound (continuous), original scale
  double last = 0;         // largest value / upper bound, original scale
  std::int64_t count = 0;  // discrete: index of the largest value
  bool binned = false;     // densities by bin mass (discrete with few values)
  double low = 0, high = 0;  // kernel-space bounds (discrete: widened by half a step)
  double prior_mu = 0, prior_sigma = 1;
  bool fixed = false;  // a single possible value
};

// Not for grid_search parameters (TPE rejects them).
Dim MakeDim(const Parameter& parameter);

double ToKernelSpace(const Dim& dim, double value);
// The value (original scale) nearest to kernel-space point `x`, inside the domain.
double Snap(const Dim& dim, double x);

// The JSON value for `value` (original scale; a choice index for categoricals).
Json ToJson(const Parameter& parameter, const Dim& dim, double value);
// The kernel-space coordinate of a config's value (a choice index for categoricals).
double FromJson(const Parameter& parameter, const Dim& dim, const Json& value);

}  // namespace tune
