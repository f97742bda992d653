// libFuzzer target: any bytes as space.json, read by LoadSpecFile as `tune run` reads it (the
// nesting limit included), then validated by ParseSpec (spec_check.h). LoadSpecFile must accept
// the text or throw SpecError naming the file, line and column.
#include <cstddef>
#include <cstdint>
#include <cstdio>

#include "tests/fuzz/scratch.h"
#include "tests/fuzz/spec_check.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const std::filesystem::path file = tune::fuzz::MakeScratchDir("spec") / "space.json";
  {
    std::FILE* out = std::fopen(file.c_str(), "wb");
    if (!out || std::fwrite(data, 1, size, out) != size) __builtin_trap();
    std::fclose(out);
  }
  tune::Json raw;
  try {
    raw = tune::LoadSpecFile(file);
  } catch (const tune::SpecError&) {
    return 0;
  }
  tune::fuzz::CheckSpec(raw, size);
  return 0;
}
