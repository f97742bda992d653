#include "search/tpe_dim.h"

#include <algorithm>
#include <cfloat>
#include <cmath>

namespace tune {
namespace {

// Dimensions with more values than this use the continuous density.
constexpr double kMaxBinnedValues = 1000;
// Normal domains are searched within mean +- this many sd.
constexpr double kNormalReach = 5;

// k * q printed cleanly (0.3, not 0.30000000000000004), as space.cc does.
double QuantizedValue(double k, double q) {
  double inverse = 1.0 / q;
  double whole = std::round(inverse);
  if (whole >= 1 && std::fabs(inverse - whole) <= 1e-9 * whole) return k / whole;
  return k * q;
}

}  // namespace

double ToKernelSpace(const Dim& dim, double value) { return dim.log ? std::log(value) : value; }

double Snap(const Dim& dim, double x) {
  double value = dim.log ? std::exp(x) : x;
  if (dim.step > 0) {
    double k = std::clamp(std::round((value - dim.first) / dim.step), 0.0,
                          static_cast<double>(dim.count));
    return dim.first + k * dim.step;
  }
  return std::clamp(value, dim.first, dim.last);
}

Dim MakeDim(const Parameter& parameter) {
  const Domain& domain = parameter.domain;
  Dim dim;
  if (domain.kind == DomainKind::kChoice) {
    dim.categorical = true;
    dim.choices = domain.values.size();
    dim.fixed = dim.choices == 1;
    return dim;
  }
  double low = domain.low, high = domain.high, q = domain.q;
  dim.log = domain.kind == DomainKind::kLogUniform || domain.kind == DomainKind::kLogRandInt;
  switch (domain.kind) {
    case DomainKind::kUniform:
    case DomainKind::kLogUniform:
      break;
    case DomainKind::kRandInt:
    case DomainKind::kLogRandInt:
      high -= 1;  // stored exclusive
      if (q <= 0) q = 1;
      break;
    case DomainKind::kNormal:
      low = domain.mean - kNormalReach * domain.sd;
      high = domain.mean + kNormalReach * domain.sd;
      break;
    case DomainKind::kChoice:
    case DomainKind::kGrid:
      break;
  }
  if (q > 0) {
    // The multiples of q inside [low, high] (positive ones for log domains).
    double slack_low = 1e-9 + 8 * DBL_EPSILON * std::fabs(low / q);
    double slack_high = 1e-9 + 8 * DBL_EPSILON * std::fabs(high / q);
    double first = std::ceil(low / q - slack_low), last = std::floor(high / q + slack_high);
    if (dim.log) first = std::max(first, 1.0);
    dim.step = q;
    dim.first = first * q;
    dim.last = last * q;
    dim.count = static_cast<std::int64_t>(last - first);
    dim.binned = dim.count < kMaxBinnedValues;
    dim.low = ToKernelSpace(dim, dim.first - 0.5 * q);
    dim.high = ToKernelSpace(dim, dim.last + 0.5 * q);
    dim.fixed = dim.count == 0;
  } else {
    dim.first = low;
    dim.last = high;
    dim.low = ToKernelSpace(dim, low);
    dim.high = ToKernelSpace(dim, high);
    dim.fixed = !(high > low);
  }
  dim.prior_mu = 0.5 * (dim.low + dim.high);
  dim.prior_sigma = dim.high - dim.low;
  if (domain.kind == DomainKind::kNormal) {
    dim.prior_mu = domain.mean;
    dim.prior_sigma = domain.sd;
  }
  return dim;
}

Json ToJson(const Parameter& parameter, const Dim& dim, double value) {
  const Domain& domain = parameter.domain;
  if (dim.categorical) return domain.values[static_cast<std::size_t>(value)];
  if (domain.integer) return static_cast<std::int64_t>(std::llround(value));
  if (dim.step > 0) {
    double x = QuantizedValue(std::round(value / dim.step), dim.step);
    if (domain.kind != DomainKind::kNormal) x = std::clamp(x, domain.low, domain.high);
    return x;
  }
  return value;
}

double FromJson(const Parameter& parameter, const Dim& dim, const Json& value) {
  if (dim.categorical) {
    const auto& values = parameter.domain.values;
    auto it = std::find(values.begin(), values.end(), value);
    return static_cast<double>(it == values.end() ? 0 : it - values.begin());
  }
  return ToKernelSpace(dim, value.get<double>());
}

}  // namespace tune
