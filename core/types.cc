#include "core/types.h"

#include <cmath>
#include <algorithm>
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
    case TrialStatus::kPaused: return "PAUSED";
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

std::string DidYouMean(std::string_view key, const std::vector<std::string>& known) {
  // Levenshtein distance with one rolling row; keys are short.
  auto distance = [](std::string_view a, std::string_view b) {
    std::vector<std::size_t> row(b.size() + 1);
    for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
    for (std::size_t i = 1; i <= a.size(); ++i) {
      std::size_t diagonal = row[0];
      row[0] = i;
      for (std::size_t j = 1; j <= b.size(); ++j) {
        std::size_t above = row[j];
        row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
        diagonal = above;
      }
    }
    return row[b.size()];
  };
  std::size_t best_distance = 3;
  const std::string* best = nullptr;
  for (const std::string& candidate : known) {
    std::size_t d = distance(key, candidate);
    if (d < best_distance) {
      best_distance = d;
      best = &candidate;
    }
  }
  return best ? " (did you mean \"" + *best + "\"?)" : "";
}

double Result::Get(std::string_view attr) const {
  if (attr == "training_iteration") return static_cast<double>(training_iteration);
  if (attr == "time_total_s") return time_total_s;
  auto it = metrics.find(attr);
  if (it == metrics.end() || !it->is_number()) return std::numeric_limits<double>::quiet_NaN();
  return it->get<double>();
}

}  // namespace tune
