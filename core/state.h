// Pieces of resume snapshots (tuner/snapshot.h): a scheduler's, searcher's or stopper's state
// written as JSON and read back bit for bit. JSON has no NaN or infinity and a double written as a
// JSON number comes back equal only when printed in full, so numbers go through StateNumber(), and
// random engines through their standard text form. Reading checks every piece, and each error is
// a std::runtime_error naming where the state is not what was written ("snapshot:
// asha.brackets[0][1].milestone: not a number"): the State*() functions for values, StateReader
// for the members of an object.
//
// Example (in a SaveState()/LoadState() pair):
//   state["values"].push_back(StateNumber(value));   // NaN, inf and -inf as strings
//   double value = StateDoubleAt(StateArray(state["values"], "asha.values"), 0, "asha.values");
//   state["rng"] = EngineState(rng_);  LoadEngineState(state["rng"], rng_);
//   StateReader in(state, "searcher");
//   next_ = static_cast<std::size_t>(in.Integer("next", 0, last));   // throws outside [0, last]
//   std::vector<double> x = in.Numbers("x", trials * dims);
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

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

// Reading: the member `key` of `object`, or the value itself, checked; `path` names the object
// or the value in errors ("snapshot: PATH.KEY: missing", "snapshot: PATH: not an array").
const Json& StateMember(const Json& object, const std::string& key, const std::string& path);
const Json& StateArray(const Json& value, const std::string& path);
// A StateNumber().
double StateDouble(const Json& value, const std::string& path);
// StateDouble(array[i], PATH[i]), the path made only for the error (states hold many numbers).
double StateDoubleAt(const Json& array, std::size_t i, const std::string& path);
std::int64_t StateInteger(const Json& value, const std::string& path);
// An integer in [min, max] ("snapshot: PATH: 5 is not in [0, 1]").
std::int64_t StateInteger(const Json& value, const std::string& path, std::int64_t min,
                          std::int64_t max);
const std::string& StateString(const Json& value, const std::string& path);
bool StateBool(const Json& value, const std::string& path);

// Writing many numbers: `values` as one JSON array of StateNumber()s.
Json StateNumbers(const std::vector<double>& values);
// A trial index (id -> position among `size` trials) as an array by position, null where no id
// leads (an id used again); StateReader::Index reads it back.
Json IndexState(const std::unordered_map<std::string, std::size_t>& index, std::size_t size);

// The members of one state object, read with the checks above.
class StateReader {
 public:
  static constexpr std::size_t kAnySize = static_cast<std::size_t>(-1);

  // `state` must be an object; `path` names it in errors.
  StateReader(const Json& state, std::string path);

  // The member `key` (present, any type).
  const Json& Member(const std::string& key) const;
  // The object `key`, as a reader.
  StateReader Object(const std::string& key) const;
  // The array `key`, of `size` elements unless kAnySize.
  const Json& Array(const std::string& key, std::size_t size = kAnySize) const;
  // An integer in [min, max].
  std::int64_t Integer(const std::string& key, std::int64_t min, std::int64_t max) const;
  bool Bool(const std::string& key) const;
  std::string String(const std::string& key) const;
  // A StateNumber().
  double Number(const std::string& key) const;
  // The StateNumbers() array `key`, of `size` numbers unless kAnySize.
  std::vector<double> Numbers(const std::string& key, std::size_t size = kAnySize) const;
  // Element i of an array of integers in [min, max] (`key` names the array in errors).
  std::int64_t IntegerAt(const Json& array, std::size_t i, const std::string& key,
                         std::int64_t min, std::int64_t max) const;
  // The IndexState() array `key` into `index` (cleared first); returns its length.
  std::size_t Index(const std::string& key,
                    std::unordered_map<std::string, std::size_t>* index) const;
  // A random engine EngineState() wrote.
  template <typename RandomEngine>
  void Engine(const std::string& key, RandomEngine& engine) const {
    const Json& value = Member(key);
    try {
      LoadEngineState(value, engine);
    } catch (const std::runtime_error&) {
      Fail(key, "not a random engine's state");
    }
  }

  // Throws std::runtime_error("snapshot: PATH.KEY: why").
  [[noreturn]] void Fail(const std::string& key, const std::string& why) const;
  const std::string& path() const { return path_; }

 private:
  std::string At(const std::string& key) const { return path_ + "." + key; }

  const Json& state_;
  std::string path_;
};

}  // namespace tune
