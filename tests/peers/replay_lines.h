// The input loop of every replay driver of tests/peers/: one JSON object a line on stdin.
#pragma once

#include <cstddef>
#include <exception>
#include <functional>
#include <iostream>
#include <string>

#include "core/types.h"

namespace tune {

// Reads one JSON object a line from stdin (empty lines skipped) and hands each to `handle`.
// Returns 0 at the end of the input, or 2 after printing "<who>: line N: <why>" to stderr for the
// first line that does not parse or that `handle` throws on.
inline int ReplayLines(const std::string& who, const std::function<void(const Json&)>& handle) {
  std::ios::sync_with_stdio(false);
  std::string line;
  std::size_t line_number = 0;
  while (std::getline(std::cin, line)) {
    ++line_number;
    if (line.empty()) continue;
    try {
      handle(Json::parse(line));
    } catch (const std::exception& error) {
      std::cerr << who << ": line " << line_number << ": " << error.what() << '\n';
      return 2;
    }
  }
  std::cout.flush();
  return 0;
}

}  // namespace tune
