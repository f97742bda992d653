// numpy.nanpercentile(values, q) (the "linear" method) of a growing multiset of numbers, kept
// current as values arrive: O(log n) per Add, O(1) per Value, instead of a copy and a sort of
// all n values per question. ASHA's rung cutoffs (schedulers/asha.h) are read from it.
//
// The values sit in two heaps split at the percentile's lower neighbour: a max-heap of the
// smallest ones (its top is the lower neighbour) and a min-heap of the rest (its top is the upper
// one). After each Add the split moves by at most one value, as the neighbours' index, floor((n -
// 1) * q / 100), never falls and rises by at most one. Value() hands the two neighbours to the
// same interpolation as NanPercentile (core/numpy.h), so both give the same bits for the same
// values (up to the sign of a zero result, which NanPercentile's sort leaves unspecified too).
// NaN values are counted and otherwise ignored, as numpy.nanpercentile ignores them.
//
// Example:
//   StreamingNanPercentile cutoff(75);  // rf = 4: keep the top quarter
//   cutoff.Add(0.3);
//   cutoff.Add(0.9);
//   double q75 = cutoff.Value();        // == NanPercentile({0.3, 0.9}, 75)
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "core/types.h"

namespace tune {

// Not thread-safe. Values can be added, never removed.
class StreamingNanPercentile {
 public:
  // `q` is in [0, 100].
  explicit StreamingNanPercentile(double q);

  void Add(double value);
  // NanPercentile(every value added, q): NaN when none is a number (or none was added), and NaN
  // when the interpolation touches an infinity, as numpy's.
  double Value() const;
  // Values added, NaN included.
  std::size_t size() const { return lower_.size() + upper_.size() + nan_count_; }
  bool empty() const { return size() == 0; }

  // Resume snapshots: {"lower": [...], "upper": [...], "nans": N}, the two heaps as they are
  // (numbers through core/state.h's StateNumber), so that LoadState(SaveState()) holds the same
  // values the same way. LoadState throws std::runtime_error naming `path` when `state` is not
  // such a split of numbers at this q; it keeps q.
  Json SaveState() const;
  void LoadState(const Json& state, const std::string& path);

 private:
  double q_;
  std::vector<double> lower_;  // max-heap: the smallest numbers, up to the lower neighbour
  std::vector<double> upper_;  // min-heap: the numbers above it
  std::size_t nan_count_ = 0;
};

}  // namespace tune
