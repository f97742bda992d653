#include "tuner/types.h"

#include <cmath>
#include <limits>

namespace tune {

Mode ParseMode(const Json& value, const std::string& path) {
  if (value == "min") return Mode::kMin;
  if (value == "max") return Mode::kMax;
  throw SpecError(path, "mode must be \"min\" or \"max\", got " + value.dump());
}

const char* ToString(Mode mode) { return mode == Mode::kMin ? "min" : "max"; }

bool IsBetter(double a, double b, Mode mode) {
  if (std::isnan(a)) return false;
  if (std::isnan(b)) return true;
  return mode == Mode::kMin ? a < b : a > b;
}

const char* ToString(TrialStatus status) {
  switch (status) {
    case TrialStatus::kPending: return "PENDING";
    case TrialStatus::kRunning: return "RUNNING";
    case TrialStatus::kTerminated: return "TERMINATED";
    case TrialStatus::kStopped: return "STOPPED";
    case TrialStatus::kError: return "ERROR";
  }
  return "?";
}

bool IsFinal(TrialStatus status) {
  return status == TrialStatus::kTerminated || status == TrialStatus::kStopped ||
         status == TrialStatus::kError;
}

double Result::Get(std::string_view attr) const {
  if (attr == "training_iteration") return static_cast<double>(training_iteration);
  if (attr == "time_total_s") return time_total_s;
  auto it = metrics.find(attr);
  if (it == metrics.end() || !it->is_number()) return std::numeric_limits<double>::quiet_NaN();
  return it->get<double>();
}

}  // namespace tune
