#include "schedulers/pbt_explore.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <utility>

#include "core/state.h"
#include "schedulers/random.h"

namespace tune {
namespace {

// Integers travel as doubles in PbtMutation; beyond 2^53 they would silently round.
constexpr double kMaxExactInteger = 9007199254740992.0;

const std::vector<std::string>& DistributionNames() {
  static const std::vector<std::string> names = {"choice", "loguniform", "randint", "uniform"};
  return names;
}

// space.json's other distributions: named in the error instead of being taken for nesting.
bool IsUnsupportedDistribution(const std::string& name) {
  for (const char* other : {"quniform", "qloguniform", "qrandint", "lograndint", "normal",
                            "qnormal", "grid_search"}) {
    if (name == other) return true;
  }
  return false;
}

// [lo, hi] of finite numbers (integers when `integers`), or throws naming `path`.
std::pair<double, double> ReadPair(const std::string& name, const Json& args, bool integers,
                                   const std::string& path) {
  const std::string what = integers ? "integers" : "finite numbers";
  const bool ok = args.is_array() && args.size() == 2 && args[0].is_number() &&
                  args[1].is_number() && std::isfinite(args[0].get<double>()) &&
                  std::isfinite(args[1].get<double>());
  if (!ok) throw SpecError(path, name + " needs 2 " + what + " [low, high], got " + args.dump());
  const double low = args[0].get<double>(), high = args[1].get<double>();
  if (integers && (low != std::floor(low) || high != std::floor(high) ||
                   std::fabs(low) > kMaxExactInteger || std::fabs(high) > kMaxExactInteger)) {
    throw SpecError(path, name + " needs 2 integers [low, high] (within +-2^53), got " +
                              args.dump());
  }
  return {low, high};
}

PbtMutation ParseDistribution(const std::string& key, const std::string& name, const Json& args,
                              const std::string& path) {
  PbtMutation mutation;
  mutation.key = key;
  if (name == "choice") {
    if (!args.is_array() || args.empty()) {
      throw SpecError(path, "choice needs a non-empty array, got " + args.dump());
    }
    mutation.kind = PbtMutation::Kind::kChoice;
    mutation.values.assign(args.begin(), args.end());
    return mutation;
  }
  const bool integers = name == "randint";
  const auto [low, high] = ReadPair(name, args, integers, path);
  mutation.low = low;
  mutation.high = high;
  if (name == "uniform") {
    mutation.kind = PbtMutation::Kind::kUniform;
    if (!(low <= high)) throw SpecError(path, "uniform needs low <= high, got " + args.dump());
  } else if (name == "loguniform") {
    mutation.kind = PbtMutation::Kind::kLogUniform;
    if (!(0 < low && low < high)) {
      throw SpecError(path, "loguniform needs 0 < low < high, got " + args.dump());
    }
  } else {
    mutation.kind = PbtMutation::Kind::kRandInt;
    if (!(low < high)) {
      throw SpecError(path, "randint needs low < high (high is exclusive), got " + args.dump());
    }
  }
  return mutation;
}

PbtMutation ParseMutation(const std::string& key, const Json& value, const std::string& path) {
  if (value.is_array()) {
    if (value.empty()) throw SpecError(path, "expected a non-empty list of values, got []");
    PbtMutation mutation;
    mutation.key = key;
    mutation.kind = PbtMutation::Kind::kList;
    mutation.values.assign(value.begin(), value.end());
    return mutation;
  }
  if (!value.is_object()) {
    throw SpecError(path, "expected a list of values, a distribution ({\"uniform\": [lo, hi]}, "
                          "loguniform, randint, choice) or an object of those, got " +
                              value.dump());
  }
  if (value.size() == 1) {
    const std::string& name = value.begin().key();
    for (const std::string& known : DistributionNames()) {
      if (name == known) return ParseDistribution(key, name, value.begin().value(), path);
    }
    if (IsUnsupportedDistribution(name)) {
      throw SpecError(path, name + " is not supported in hyperparam_mutations (uniform, "
                                   "loguniform, randint, choice or a list of values)");
    }
  }
  PbtMutation mutation;
  mutation.key = key;
  mutation.kind = PbtMutation::Kind::kNested;
  mutation.children = ParsePbtMutations(value, path);
  return mutation;
}

// Python's ==, which the list rules use: like JSON equality, except that a boolean equals the
// number 0 or 1.
bool PythonEquals(const Json& a, const Json& b) {
  if (a.is_boolean() && b.is_number()) return (a.get<bool>() ? 1.0 : 0.0) == b.get<double>();
  if (b.is_boolean() && a.is_number()) return PythonEquals(b, a);
  return a == b;
}

// Python's int(x) for a finite double that fits; other values stay as they are.
Json TruncateToInteger(double value) {
  if (!std::isfinite(value) || std::fabs(value) >= 0x1.0p63) return value;
  return static_cast<std::int64_t>(std::trunc(value));
}

// A draw from a distribution the way Ray's samplers compute it (numpy's uniform is
// low + (high - low) * u; loguniform exponentiates a uniform draw between the logs).
Json Sample(const PbtMutation& mutation, PbtRandom& random) {
  switch (mutation.kind) {
    case PbtMutation::Kind::kUniform:
      return mutation.low + (mutation.high - mutation.low) * random.Uniform();
    case PbtMutation::Kind::kLogUniform: {
      const double low = std::log(mutation.low), high = std::log(mutation.high);
      return std::exp(low + (high - low) * random.Uniform());
    }
    case PbtMutation::Kind::kRandInt: {
      const auto low = static_cast<std::int64_t>(mutation.low);
      const auto count = static_cast<std::size_t>(static_cast<std::int64_t>(mutation.high) - low);
      return low + static_cast<std::int64_t>(random.Index(count));
    }
    case PbtMutation::Kind::kList:
    case PbtMutation::Kind::kChoice:
    case PbtMutation::Kind::kNested:
      break;
  }
  return mutation.values[random.Index(mutation.values.size())];
}

// Python's f"{factor}" for the operation string (repr of a float).
std::string FormatFactor(double factor) { return Json(factor).dump(); }

void ExploreList(const PbtMutation& mutation, const Json* current, double resample_probability,
                 PbtRandom& random, Json* value, Json* operation) {
  const auto& values = mutation.values;
  const auto found =
      current == nullptr ? values.end()
                         : std::find_if(values.begin(), values.end(),
                                        [&](const Json& v) { return PythonEquals(*current, v); });
  // Ray draws first, so the draw is made even when the value is not in the list.
  if (random.Uniform() < resample_probability || found == values.end()) {
    *value = values[random.Index(values.size())];
    *operation = "resample";
    return;
  }
  const bool left = random.Index(2) == 0;  // random.choice([-1, 1])
  const auto old_index = static_cast<std::ptrdiff_t>(found - values.begin());
  const auto last = static_cast<std::ptrdiff_t>(values.size()) - 1;
  const std::ptrdiff_t new_index = std::clamp<std::ptrdiff_t>(old_index + (left ? -1 : 1), 0, last);
  *value = values[static_cast<std::size_t>(new_index)];
  *operation = std::string(left ? "shift left" : "shift right") +
               (new_index == old_index ? " (noop)" : "");
}

void ExploreDistribution(const PbtMutation& mutation, const Json* current,
                         double resample_probability,
                         const std::vector<double>& perturbation_factors, PbtRandom& random,
                         Json* value, Json* operation) {
  const bool numeric = current != nullptr && current->is_number();
  if (random.Uniform() < resample_probability || !numeric) {
    *value = Sample(mutation, random);
    *operation = "resample";
  } else {
    const double factor = perturbation_factors[random.Index(perturbation_factors.size())];
    *value = current->get<double>() * factor;
    *operation = "* " + FormatFactor(factor);
  }
  // A value that started as an integer (a batch size) stays one.
  if (numeric && current->is_number_integer() && value->is_number()) {
    *value = TruncateToInteger(value->get<double>());
  }
}

}  // namespace

double SeededPbtRandom::Uniform() { return UniformUnit(rng_); }

std::size_t SeededPbtRandom::Index(std::size_t n) {
  // floor(u * n): the bias is below n / 2^53, nothing for the short lists PBT picks from.
  const auto index = static_cast<std::size_t>(UniformUnit(rng_) * static_cast<double>(n));
  return std::min(index, n - 1);
}

void PbtRandom::LoadState(const Json& state) {
  (void)state;
  throw std::runtime_error("snapshot: this source of draws keeps no state to load");
}

std::optional<Json> SeededPbtRandom::SaveState() const { return Json(EngineState(rng_)); }

void SeededPbtRandom::LoadState(const Json& state) { LoadEngineState(state, rng_); }

PbtMutations ParsePbtMutations(const Json& json, const std::string& path) {
  if (!json.is_object()) throw SpecError(path, "expected an object, got " + json.dump());
  PbtMutations mutations;
  for (const auto& [key, value] : json.items()) {
    mutations.push_back(ParseMutation(key, value, path + "." + key));
  }
  return mutations;
}

Json ParsePbtBounds(const Json& json, const std::string& path) {
  if (!json.is_object()) throw SpecError(path, "expected an object, got " + json.dump());
  for (const auto& [key, value] : json.items()) {
    const std::string key_path = path + "." + key;
    if (value.is_object()) {
      ParsePbtBounds(value, key_path);
      continue;
    }
    const auto [low, high] = ReadPair("a bound", value, false, key_path);
    if (!(low <= high)) throw SpecError(key_path, "a bound needs low <= high, got " + value.dump());
  }
  return json;
}

Explored ExploreParams(const Json& params, const PbtMutations& mutations,
                       double resample_probability, const std::vector<double>& perturbation_factors,
                       PbtRandom& random) {
  Explored out{params.is_object() ? params : Json::object(), Json::object()};
  for (const PbtMutation& mutation : mutations) {
    const auto it = out.params.find(mutation.key);
    const Json* current = it == out.params.end() ? nullptr : &*it;
    Json value;
    Json operation;
    if (mutation.kind == PbtMutation::Kind::kNested) {
      Explored nested =
          ExploreParams(current != nullptr ? *current : Json::object(), mutation.children,
                        resample_probability, perturbation_factors, random);
      value = std::move(nested.params);
      operation = std::move(nested.operations);
    } else if (mutation.kind == PbtMutation::Kind::kList) {
      ExploreList(mutation, current, resample_probability, random, &value, &operation);
    } else {
      ExploreDistribution(mutation, current, resample_probability, perturbation_factors, random,
                          &value, &operation);
    }
    out.params[mutation.key] = std::move(value);
    out.operations[mutation.key] = std::move(operation);
  }
  return out;
}

void ClampToBounds(const Json& bounds, Json* params) {
  if (!params->is_object()) return;
  for (const auto& [key, bound] : bounds.items()) {
    const auto it = params->find(key);
    if (it == params->end()) continue;
    if (bound.is_object()) {
      ClampToBounds(bound, &*it);
      continue;
    }
    if (!it->is_number()) continue;
    const double low = bound[0].get<double>(), high = bound[1].get<double>();
    if (it->is_number_integer()) {
      // An integer interval can be empty ([0.2, 0.8]): then the value goes to its lower end.
      const double integer_low = std::ceil(low);
      const double integer_high = std::max(std::floor(high), integer_low);
      *it = TruncateToInteger(std::clamp(it->get<double>(), integer_low, integer_high));
    } else {
      *it = std::clamp(it->get<double>(), low, high);
    }
  }
}

}  // namespace tune
