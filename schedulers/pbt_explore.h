// PBT's explore step (Ray Tune's pbt._explore): how the params a trial clones from a better
// trial are perturbed before it trains on. Used by schedulers/pbt.h; split out because it is
// its own piece of maths with its own tests.
//
// hyperparam_mutations maps a key of the trial's params to one of
//   [v0, v1, ...]              a list: with resample_probability (or when the current value is
//                              not in the list) a value drawn from it, else the value one step
//                              left or right of the current one (clamped at the ends)
//   {"uniform": [lo, hi]}      a distribution, written as in space.json: with
//   {"loguniform": [lo, hi]}     resample_probability a value drawn from it, else the current
//   {"randint": [lo, hi]}        value times one of perturbation_factors drawn at random; an
//   {"choice": [v0, ...]}        integer value stays an integer (truncated, as Python's int()).
//                                choice is a distribution like the others (Ray's tune.choice),
//                                so it is multiplied, not stepped: use a list to step.
//   {"key": ..., ...}          nested params: the same rules one level down
// Keys are explored in sorted order (our JSON objects are sorted; Ray goes by insertion order).
// explore_bounds mirrors the nesting with [lo, hi] leaves and clamps the explored params, after
// the mutations, like a Ray custom_explore_fn that clamps (an integer stays an integer within
// [ceil(lo), floor(hi)]).
//
// Example:
//   PbtMutations mutations = ParsePbtMutations(
//       Json::parse(R"({"lr": {"loguniform": [1e-4, 0.1]}, "batch": [32, 64, 128]})"),
//       "scheduler.hyperparam_mutations");
//   SeededPbtRandom random(0);
//   Explored out = ExploreParams(source_params, mutations, 0.25, {1.2, 0.8}, random);
//   // out.params: {"batch": 128, "lr": 0.0012, ...}; out.operations: {"batch": "shift right",
//   // "lr": "* 1.2"}
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "core/types.h"

namespace tune {

// Where PBT's random draws come from: Ray's random.random() and random.choice(), and the draws
// of its distributions' samplers. A seam for tests/peers/pbt_diff.py, which makes Ray's draws
// and ours the same values.
class PbtRandom {
 public:
  virtual ~PbtRandom() = default;
  // A double in [0, 1).
  virtual double Uniform() = 0;
  // An index in [0, n); n >= 1.
  virtual std::size_t Index(std::size_t n) = 0;
  // Resume snapshots (PbtScheduler::SaveState): the source's state as JSON, nullopt when it
  // keeps none (then PBT keeps none either); LoadState throws std::runtime_error on a state
  // SaveState() does not write.
  virtual std::optional<Json> SaveState() const { return std::nullopt; }
  virtual void LoadState(const Json& state);
};

// The production source: a std::mt19937_64, reproducible on every standard library.
class SeededPbtRandom final : public PbtRandom {
 public:
  explicit SeededPbtRandom(std::uint64_t seed) : rng_(seed) {}
  double Uniform() override;
  std::size_t Index(std::size_t n) override;
  std::optional<Json> SaveState() const override;  // the engine's text (core/state.h)
  void LoadState(const Json& state) override;

 private:
  std::mt19937_64 rng_;
};

// One key of hyperparam_mutations.
struct PbtMutation {
  enum class Kind { kList, kUniform, kLogUniform, kRandInt, kChoice, kNested };
  std::string key;
  Kind kind = Kind::kList;
  std::vector<Json> values;           // kList, kChoice: non-empty
  double low = 0, high = 0;           // kUniform (low <= high), kLogUniform (0 < low < high),
                                      // kRandInt (integers, low < high, high exclusive)
  std::vector<PbtMutation> children;  // kNested, sorted by key
};
using PbtMutations = std::vector<PbtMutation>;  // sorted by key

// Parses hyperparam_mutations (an object; may be empty). Throws SpecError naming the offending
// key's path, e.g. "scheduler.hyperparam_mutations.lr: loguniform needs 0 < low < high, got
// [0, 1]".
PbtMutations ParsePbtMutations(const Json& json, const std::string& path);

// Checks explore_bounds (an object of [lo, hi] leaves, lo <= hi, or nested objects) and returns
// it. Throws SpecError naming the offending key's path.
Json ParsePbtBounds(const Json& json, const std::string& path);

struct Explored {
  Json params;      // the explored copy
  Json operations;  // what was done to each mutated key, nested like the mutations: "resample",
                    // "shift left", "shift right (noop)", "* 1.2" (Ray's strings)
};

// Ray's _explore on `params` (an object). A key missing from `params`, or a non-number under a
// distribution, is drawn from its mutation (Ray raises there); a missing nested object is built.
// `perturbation_factors` must be non-empty.
Explored ExploreParams(const Json& params, const PbtMutations& mutations,
                       double resample_probability, const std::vector<double>& perturbation_factors,
                       PbtRandom& random);

// Clamps every number of `params` that `bounds` (as ParsePbtBounds returns it) names; keys not
// present, and values that are not numbers, are left alone.
void ClampToBounds(const Json& bounds, Json* params);

}  // namespace tune
