// What the spec and overrides fuzzers check on a spec that parsed: ParseSpec either accepts it
// or throws SpecError (one clear message, the JSON path in it); anything else escaping is a bug.
// An accepted spec must sample configs whose every parameter lies in its domain.
#pragma once

#include <cstddef>
#include <cstdio>
#include <random>

#include "tuner/spec.h"

namespace tune::fuzz {

// Whether every option `parameter` sits under was drawn in `config`.
inline bool Active(const Space& space, const Parameter& parameter, const Json& config) {
  for (const Condition& condition : parameter.conditions) {
    const Parameter& parent = (condition.grid ? space.grid_parameters()
                                              : space.parameters())[condition.parent];
    if (!config.contains(parent.pointer)) return false;
    const std::ptrdiff_t option = Space::OptionIndex(parent.domain, config.at(parent.pointer));
    if (option != static_cast<std::ptrdiff_t>(condition.branch)) return false;
  }
  return true;
}

inline void CheckSpec(const Json& raw, std::size_t seed) {
  try {
    ExperimentSpec spec = ParseSpec(raw, ".");
    std::mt19937_64 rng(seed);
    std::size_t grid = spec.space.GridSize();
    for (std::size_t draw = 0; draw < 3; ++draw) {
      Json config = spec.space.Sample(rng, draw % (grid == 0 ? 1 : grid));
      for (const Parameter& parameter : spec.space.parameters()) {
        // A parameter under a choice's option is there only when that option was drawn; two
        // options may put different parameters at the same key, so only the drawn one's
        // domain applies.
        if (!Active(spec.space, parameter, config)) continue;
        if (!config.contains(parameter.pointer)) {
          std::fprintf(stderr, "%s missing from the sampled config %s\n", parameter.path.c_str(),
                       config.dump().c_str());
          __builtin_trap();
        }
        // A bound taken from another parameter's value is checked by the space's own tests.
        const Domain& domain = parameter.domain;
        if (domain.low_ref >= 0 || domain.high_ref >= 0) continue;
        if (!Space::Contains(domain, config.at(parameter.pointer))) __builtin_trap();
      }
    }
  } catch (const SpecError&) {
  }
}

}  // namespace tune::fuzz
