// Pieces of resume snapshots (tuner/snapshot.h): a scheduler's or searcher's state written as JSON
// and read back bit for bit. JSON has no NaN or infinity and a double written as a JSON number
// comes back equal only when printed in full, so numbers go through StateNumber(), and random
// engines through their standard text form.
//
// Example (in a SaveState()/LoadState() pair):
//   state["values"].push_back(StateNumber(value));   // NaN, inf and -inf as strings
//   double value = FromStateNumber(state["values"][0]);
//   state["rng"] = EngineState(rng_);  LoadEngineState(state["rng"], rng_);
#pragma once

#include <cmath>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <string>

#include "core/types.h"

namespace tune {

// `value` as JSON: a number (nlohmann writes doubles so they read back equal), or "nan", "inf",
// "-inf".
inline Json StateNumber(double value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  return value;
}

// The inverse of StateNumber; throws std::runtime_error for anything else.
inline double FromStateNumber(const Json& value) {
  if (value.is_number()) return value.get<double>();
  if (value == "nan") return std::numeric_limits<double>::quiet_NaN();
  if (value == "inf") return std::numeric_limits<double>::infinity();
  if (value == "-inf") return -std::numeric_limits<double>::infinity();
  throw std::runtime_error("snapshot: not a number: " + value.dump());
}

// A standard random engine's whole state (operator<<'s text).
template <typename Engine>
std::string EngineState(const Engine& engine) {
  std::ostringstream out;
  out << engine;
  return out.str();
}

// Sets `engine` to a state EngineState() wrote; throws std::runtime_error when it is not one.
template <typename Engine>
void LoadEngineState(const Json& state, Engine& engine) {
  if (!state.is_string()) throw std::runtime_error("snapshot: a random engine's state is not text");
  std::istringstream in(state.get<std::string>());
  in >> engine;
  if (in.fail()) throw std::runtime_error("snapshot: a random engine's state does not read back");
}

}  // namespace tune
