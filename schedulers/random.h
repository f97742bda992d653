// Random draws for the schedulers that make them (ASHA's bracket draw, PBT's exploit and
// explore), computed the same way on every standard library, unlike
// std::uniform_real_distribution, so a seeded run and its resume draw the same values anywhere.
#pragma once

#include <random>

namespace tune {

// A uniform double in [0, 1) from the top 53 bits of one draw.
inline double UniformUnit(std::mt19937_64& rng) {
  return static_cast<double>(rng() >> 11) * 0x1.0p-53;
}

}  // namespace tune
