// A nesting limit for JSON text from outside (spec files, overrides, the journal). nlohmann's
// parser is iterative, but copying, comparing, dumping and destroying a value recurse once per
// level, so a document nested 100k levels deep overflows the stack (SIGSEGV) long after it
// parsed. Text is checked with FindDeepNesting before it is parsed.
//
// Example:
//   if (std::size_t at = FindDeepNesting(text); at != std::string_view::npos)
//     throw SpecError(..., "nested deeper than 128 levels");
#pragma once

#include <cstddef>
#include <string_view>

namespace tune {

// Deep enough for any real spec or config; shallow enough for every recursive walk.
inline constexpr std::size_t kMaxJsonDepth = 128;

// The offset of the bracket that opens level `max_depth` + 1 (arrays and objects, outside
// strings), or npos when `text` never nests that deep. Needs no valid JSON: it only counts.
inline std::size_t FindDeepNesting(std::string_view text, std::size_t max_depth = kMaxJsonDepth) {
  std::size_t depth = 0;
  bool in_string = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > max_depth) return i;
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return std::string_view::npos;
}

}  // namespace tune
