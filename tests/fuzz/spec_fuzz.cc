// libFuzzer target: any bytes as space.json. The parser and validator must either accept the
// spec or throw SpecError (one clear message); anything else escaping is a bug. Accepted specs
// must sample configs whose every parameter lies in its domain.
#include <cstddef>
#include <cstdint>
#include <random>
#include <string_view>

#include "tuner/spec.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  tune::Json raw = tune::Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (raw.is_discarded()) return 0;
  try {
    tune::ExperimentSpec spec = tune::ParseSpec(raw, ".");
    std::mt19937_64 rng(size);
    std::size_t grid = spec.space.GridSize();
    for (std::size_t draw = 0; draw < 3; ++draw) {
      tune::Json config = spec.space.Sample(rng, draw % (grid == 0 ? 1 : grid));
      for (const tune::Parameter& parameter : spec.space.parameters()) {
        if (!tune::Space::Contains(parameter.domain, config.at(parameter.pointer))) __builtin_trap();
      }
    }
  } catch (const tune::SpecError&) {
  }
  return 0;
}
