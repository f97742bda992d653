// Helpers shared by the schedulers that behave like Ray Tune's: reading a result the way Ray's
// schedulers read it and a compact set of trial ids. (numpy's statistics, to the bit:
// core/numpy.h; reading resume snapshots: core/state.h.)
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <unordered_set>
#include <utility>
#include <vector>

#include "core/state.h"
#include "core/trial.h"
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

// A set of trial ids held compactly, for what schedulers remember of every trial that ever ran
// (ASHA's trials recorded at a rung, its stopped trials): ids of the form <prefix><number
// zero-padded to a fixed width> ("t_00001": the tuner's) are one bit each in a bitmap by number,
// as core/trial.h's TrialIndex holds them; any other id, and one whose number lies far past the
// ids held (the bitmap would be mostly holes), goes to a hash set. The prefix and width are those
// of the first id with trailing digits.
//
// Example:
//   TrialIdSet stopped;
//   stopped.Insert("t_00042");     // true: it was not there
//   stopped.Contains("t_00042");   // true
//   Json state = stopped.SaveState();  ...  other.LoadState(state, "stopped");
class TrialIdSet {
 public:
  // Adds `id`; false when it was there already.
  bool Insert(const std::string& id);
  bool Contains(const std::string& id) const;
  std::size_t size() const { return size_; }

  // The set as JSON: {"prefix": "t_", "width": 5, "bits": "<hex, 64 bits a word>", "others":
  // [sorted ids]}; LoadState(SaveState()) gives back the same set, held the same way.
  Json SaveState() const;
  // Throws std::runtime_error naming `path` when `state` is not what SaveState() writes.
  void LoadState(const Json& state, const std::string& path);

 private:
  static constexpr std::size_t kNone = TrialIdNumbers::kNone;
  TrialIdNumbers numbers_;  // core/trial.h: which ids the bitmap holds, by which number
  std::vector<std::uint64_t> bits_;
  std::unordered_set<std::string> others_;
  std::size_t size_ = 0;
};

}  // namespace tune
