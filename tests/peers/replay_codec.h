// What the replay drivers of tests/peers/ share: the JSON-lines encoding that the *_diff.py
// scripts write, the loop that reads it, and the calls that decode a result.
// JSON has no NaN or infinities, so the strings "NaN", "Infinity" and "-Infinity" stand for them
// (any other value, a boolean say, is passed on as it is). In a result, "training_iteration" and
// "time_total_s" fill Result's fields and every other key goes to metrics.
#pragma once

#include <cstdint>
#include <exception>
#include <functional>
#include <iostream>
#include <limits>
#include <string>

#include "core/types.h"
#include "schedulers/scheduler.h"

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

// Reads one JSON object a line from stdin (empty lines skipped) and hands each to `handle`.
// Returns 0 at the end of the input, or 2 after printing "<who>: line N: <why>" to stderr for the
// first line that does not parse or that `handle` throws on.
inline int ReplayLines(const std::string& who, const std::function<void(const Json&)>& handle) {
  std::ios::sync_with_stdio(false);
  std::string line;
  std::size_t line_number = 0;
  while (std::getline(std::cin, line)) {
    ++line_number;
    if (line.empty()) continue;
    try {
      handle(Json::parse(line));
    } catch (const std::exception& error) {
      std::cerr << who << ": line " << line_number << ": " << error.what() << '\n';
      return 2;
    }
  }
  std::cout.flush();
  return 0;
}

}  // namespace tune
