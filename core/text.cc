#include "core/text.h"

#include <algorithm>
#include <fstream>

namespace tune {
namespace {

bool IsContinuation(unsigned char byte) { return (byte & 0xC0) == 0x80; }

// How many bytes at the start of `text` belong to a character a cut went through: the up to 3
// continuation bytes before the next lead byte.
std::size_t CutCharLength(std::string_view text) {
  std::size_t skip = 0;
  while (skip < 3 && skip < text.size() && IsContinuation(static_cast<unsigned char>(text[skip]))) {
    ++skip;
  }
  return skip;
}

// The length of the valid UTF-8 character at the start of `text`, or 0 when it is not one
// (overlong forms, surrogates and code points past U+10FFFF are not).
std::size_t CharLength(std::string_view text, char32_t& code_point) {
  const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(text[i]); };
  unsigned char lead = byte(0);
  std::size_t length = 0;
  char32_t min = 0;
  if (lead < 0x80) {
    code_point = lead;
    return 1;
  } else if ((lead & 0xE0) == 0xC0) {
    length = 2, code_point = lead & 0x1F, min = 0x80;
  } else if ((lead & 0xF0) == 0xE0) {
    length = 3, code_point = lead & 0x0F, min = 0x800;
  } else if ((lead & 0xF8) == 0xF0) {
    length = 4, code_point = lead & 0x07, min = 0x10000;
  } else {
    return 0;
  }
  if (text.size() < length) return 0;
  for (std::size_t i = 1; i < length; ++i) {
    if (!IsContinuation(byte(i))) return 0;
    code_point = (code_point << 6) | (byte(i) & 0x3F);
  }
  if (code_point < min || code_point > 0x10FFFF || (code_point >= 0xD800 && code_point <= 0xDFFF)) {
    return 0;
  }
  return length;
}

constexpr char kHex[] = "0123456789abcdef";

}  // namespace

std::string_view TailBytes(std::string_view text, std::size_t max_bytes) {
  if (text.size() <= max_bytes) return text;
  text.remove_prefix(text.size() - max_bytes);
  text.remove_prefix(CutCharLength(text));
  return text;
}

std::string ReadTail(const std::filesystem::path& file, std::size_t max_bytes) {
  std::ifstream in(file, std::ios::binary | std::ios::ate);
  if (!in) return "";
  std::streamoff size = in.tellg();
  if (size <= 0) return "";
  std::streamoff start =
      size > static_cast<std::streamoff>(max_bytes) ? size - static_cast<std::streamoff>(max_bytes) : 0;
  in.seekg(start);
  std::string text(static_cast<std::size_t>(size - start), '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<std::size_t>(in.gcount()));
  if (start > 0) text.erase(0, CutCharLength(text));
  return text;
}

std::string LastLines(std::string_view text, std::size_t count) {
  if (count == 0 || text.empty()) return "";
  std::size_t begin = text.back() == '\n' ? text.size() - 1 : text.size();
  std::size_t lines = 1;
  while (begin > 0 && !(text[begin - 1] == '\n' && lines++ == count)) --begin;
  return std::string(text.substr(begin));
}

std::string EscapeControl(std::string_view text, bool keep_newlines) {
  std::string out;
  out.reserve(text.size());
  while (!text.empty()) {
    char32_t code_point = 0;
    std::size_t length = CharLength(text, code_point);
    if (length == 0) {
      auto byte = static_cast<unsigned char>(text[0]);
      out += "\\x";
      out += kHex[byte >> 4];
      out += kHex[byte & 0xF];
      text.remove_prefix(1);
      continue;
    }
    if (code_point < 0x20 || code_point == 0x7F) {
      if (keep_newlines && (code_point == '\n' || code_point == '\t')) {
        out += static_cast<char>(code_point);
      } else if (code_point == '\n') {
        out += "\\n";
      } else if (code_point == '\r') {
        out += "\\r";
      } else if (code_point == '\t') {
        out += "\\t";
      } else {
        out += "\\x";
        out += kHex[code_point >> 4];
        out += kHex[code_point & 0xF];
      }
    } else if ((code_point >= 0x80 && code_point <= 0x9F) ||
               (code_point >= 0x202A && code_point <= 0x202E) ||
               (code_point >= 0x2066 && code_point <= 0x2069)) {
      out += "\\u";
      for (int shift = 12; shift >= 0; shift -= 4) out += kHex[(code_point >> shift) & 0xF];
    } else {
      out.append(text.data(), length);
    }
    text.remove_prefix(length);
  }
  return out;
}

bool LooksLikeFormula(std::string_view cell) {
  return !cell.empty() && (cell[0] == '=' || cell[0] == '+' || cell[0] == '-' || cell[0] == '@' ||
                           cell[0] == '\t' || cell[0] == '\r');
}

std::vector<std::string> Split(std::string_view text, char separator, bool keep_empty) {
  std::vector<std::string> parts;
  for (std::size_t start = 0; start <= text.size();) {
    const std::size_t end = std::min(text.find(separator, start), text.size());
    if (keep_empty || end > start) parts.emplace_back(text.substr(start, end - start));
    start = end + 1;
  }
  return parts;
}

std::string ReplaceAll(std::string text, std::string_view from, std::string_view to) {
  for (std::size_t at = text.find(from); at != std::string::npos;
       at = text.find(from, at + to.size())) {
    text.replace(at, from.size(), to);
  }
  return text;
}

}  // namespace tune
