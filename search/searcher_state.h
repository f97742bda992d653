// Writing and reading the searchers' resume snapshots (Searcher::SaveState/LoadState): numbers
// through core/state.h (NaN and infinities as strings, doubles back bit for bit), many numbers as
// one flat array, and a reader whose every error is a std::runtime_error naming where the state is
// not what SaveState() wrote ("snapshot: searcher.model.x: 299 elements, expected 300").
//
// Example (a LoadState):
//   StateReader in(state, "searcher");
//   in.Engine("rng", rng_);
//   next_ = static_cast<std::size_t>(in.Integer("next", 0, last));   // throws outside [0, last]
//   std::vector<double> x = in.Numbers("x", trials * dims);
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/state.h"
#include "core/types.h"

namespace tune {

// `values` as one JSON array of StateNumber()s.
Json StateNumbers(const std::vector<double>& values);
// A trial index (id -> position among `size` trials) as an array by position, null where no id
// leads (an id used again); StateReader::Index reads it back.
Json IndexState(const std::unordered_map<std::string, std::size_t>& index, std::size_t size);

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
  std::size_t Index(const std::string& key, std::unordered_map<std::string, std::size_t>* index) const;
  // A random engine EngineState() wrote.
  template <typename RandomEngine>
  void Engine(const std::string& key, RandomEngine& engine) const {
    const Json& value = Member(key);
    if (!value.is_string()) Fail(key, "not a random engine's state");
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
  // `value`, element `index` of array `key` (kAnySize: the member `key` itself).
  std::int64_t IntegerValue(const Json& value, const std::string& key, std::size_t index,
                            std::int64_t min, std::int64_t max) const;

  const Json& state_;
  std::string path_;
};

}  // namespace tune
