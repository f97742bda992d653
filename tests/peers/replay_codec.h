// What the scheduler replay drivers of tests/peers/ share: the JSON-lines encoding that the
// *_diff.py scripts write, the calls that decode a result, and (replay_lines.h) the loop that
// reads it.
// JSON has no NaN or infinities, so the strings "NaN", "Infinity" and "-Infinity" stand for them
// (any other value, a boolean say, is passed on as it is). In a result, "training_iteration" and
// "time_total_s" fill Result's fields and every other key goes to metrics.
#pragma once

#include <cstdint>
#include <limits>
#include <string>

#include "core/types.h"
#include "schedulers/scheduler.h"
#include "tests/peers/replay_lines.h"

namespace tune {

inline Json DecodeNumber(const Json& value) {
  if (value.is_string()) {
    const auto& text = value.get_ref<const std::string&>();
    if (text == "NaN") return std::numeric_limits<double>::quiet_NaN();
    if (text == "Infinity") return std::numeric_limits<double>::infinity();
    if (text == "-Infinity") return -std::numeric_limits<double>::infinity();
  }
  return value;
}

inline Result DecodeResult(const Json& object) {
  Result result;
  for (const auto& [key, raw] : object.items()) {
    const Json value = DecodeNumber(raw);
    if (key == "training_iteration") {
      result.training_iteration = value.get<std::int64_t>();
    } else if (key == "time_total_s") {
      result.time_total_s = value.get<double>();
    } else {
      result.metrics[key] = value;
    }
  }
  return result;
}

// OnTrialComplete with `last`, a result object or null (no result).
inline void CompleteTrial(Scheduler& scheduler, const std::string& trial_id, const Json& last) {
  if (last.is_null()) {
    scheduler.OnTrialComplete(trial_id, nullptr);
  } else {
    const Result result = DecodeResult(last);
    scheduler.OnTrialComplete(trial_id, &result);
  }
}

}  // namespace tune
