#include "schedulers/scheduler.h"

#include <fmt/format.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "schedulers/asha.h"
#include "schedulers/fifo.h"

namespace tune {
namespace {

// Ray's ASHAScheduler arguments, plus "type" and our "seed".
const std::vector<std::string> kAshaKeys = {
    "type",     "time_attr",        "metric", "mode", "max_t", "grace_period", "reduction_factor",
    "brackets", "stop_last_trials", "seed"};

// Guards against a typo like brackets=1e9 allocating a billion empty brackets; every bracket
// past log(max_t / grace_period) / log(rf) + 1 has no rung anyway.
constexpr std::int64_t kMaxBrackets = 1000;

double ReadNumber(const Json& value, const std::string& path) {
  if (!value.is_number()) throw SpecError(path, "expected a number, got " + value.dump());
  const double number = value.get<double>();
  if (!std::isfinite(number))
    throw SpecError(path, "expected a finite number, got " + value.dump());
  return number;
}

// Accepts 2 and 2.0 (a CLI override may produce either), not 2.5.
std::int64_t ReadInteger(const Json& value, const std::string& path) {
  if (value.is_number_integer()) return value.get<std::int64_t>();
  if (value.is_number_float()) {
    const double number = value.get<double>();
    if (std::isfinite(number) && number == std::trunc(number) && std::fabs(number) < 0x1.0p62) {
      return static_cast<std::int64_t>(number);
    }
  }
  throw SpecError(path, "expected an integer, got " + value.dump());
}

std::string ReadName(const Json& value, const std::string& path) {
  if (!value.is_string() || value.get<std::string>().empty()) {
    throw SpecError(path, "expected a non-empty string, got " + value.dump());
  }
  return value.get<std::string>();
}

AshaOptions ParseAsha(const Json& spec, const std::string& metric, Mode mode,
                      const std::string& path) {
  AshaOptions options;
  options.metric = metric;
  options.mode = mode;
  for (const auto& [key, value] : spec.items()) {
    const std::string key_path = path + "." + key;
    if (key == "type") {
      continue;
    } else if (key == "time_attr") {
      options.time_attr = ReadName(value, key_path);
    } else if (key == "metric") {
      options.metric = ReadName(value, key_path);
    } else if (key == "mode") {
      options.mode = ParseMode(value, key_path);
    } else if (key == "max_t") {
      options.max_t = ReadNumber(value, key_path);
      if (options.max_t <= 0) throw SpecError(key_path, "must be > 0, got " + value.dump());
    } else if (key == "grace_period") {
      options.grace_period = ReadNumber(value, key_path);
      if (options.grace_period <= 0) throw SpecError(key_path, "must be > 0, got " + value.dump());
    } else if (key == "reduction_factor") {
      options.reduction_factor = ReadNumber(value, key_path);
      if (options.reduction_factor <= 1) {
        throw SpecError(key_path, "must be > 1, got " + value.dump());
      }
    } else if (key == "brackets") {
      const std::int64_t brackets = ReadInteger(value, key_path);
      if (brackets < 1 || brackets > kMaxBrackets) {
        throw SpecError(
            key_path, fmt::format("must be between 1 and {}, got {}", kMaxBrackets, value.dump()));
      }
      options.brackets = static_cast<int>(brackets);
    } else if (key == "stop_last_trials") {
      if (!value.is_boolean()) {
        throw SpecError(key_path, "expected true or false, got " + value.dump());
      }
      options.stop_last_trials = value.get<bool>();
    } else if (key == "seed") {
      const std::int64_t seed = ReadInteger(value, key_path);
      if (seed < 0) throw SpecError(key_path, "must be >= 0, got " + value.dump());
      options.seed = static_cast<std::uint64_t>(seed);
    } else {
      throw SpecError(key_path, "unknown option" + DidYouMean(key, kAshaKeys));
    }
  }
  // Checked after the loop: the two keys may come in either order, and max_t may be defaulted.
  if (options.grace_period > options.max_t) {
    throw SpecError(path + ".grace_period", fmt::format("must be <= max_t ({}), got {}",
                                                        options.max_t, options.grace_period));
  }
  if (options.metric.empty()) {
    throw SpecError(path + ".metric",
                    "asha needs a metric: set \"metric\" in the experiment or in the scheduler");
  }
  return options;
}

}  // namespace

std::unique_ptr<Scheduler> MakeScheduler(const Json& spec, const std::string& metric, Mode mode,
                                         const std::string& path) {
  if (spec.is_null()) return std::make_unique<FifoScheduler>();
  // A bare name ("scheduler": "asha", or the CLI override scheduler=asha) means its defaults.
  if (spec.is_string()) return MakeScheduler(Json{{"type", spec}}, metric, mode, path);
  if (!spec.is_object()) {
    throw SpecError(path, "expected an object, a scheduler name or null, got " + spec.dump());
  }
  std::string type = "fifo";
  if (auto it = spec.find("type"); it != spec.end()) {
    if (!it->is_string()) throw SpecError(path + ".type", "expected a string, got " + it->dump());
    type = it->get<std::string>();
  }
  if (type == "fifo") {
    for (const auto& item : spec.items()) {
      if (item.key() != "type") {
        throw SpecError(path + "." + item.key(),
                        "unknown option (fifo takes none; use \"type\": \"asha\" to stop trials "
                        "early)");
      }
    }
    return std::make_unique<FifoScheduler>();
  }
  if (type == "asha" || type == "async_hyperband") {
    return std::make_unique<AshaScheduler>(ParseAsha(spec, metric, mode, path));
  }
  throw SpecError(path + ".type", "unknown scheduler \"" + type + "\" (known: fifo, asha)");
}

}  // namespace tune
