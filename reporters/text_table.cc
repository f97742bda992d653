// Plain-text tables (reporters/text_table.h).

#include "reporters/text_table.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "core/text.h"

namespace tune {
namespace {

// Columns are measured in code points, so a UTF-8 parameter value does not skew the box.
std::size_t DisplayWidth(std::string_view text) {
  return static_cast<std::size_t>(std::count_if(text.begin(), text.end(), [](char c) {
    return (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  }));
}

}  // namespace

// Compact numbers: integral values as integers, the rest with 4 significant digits.
std::string FormatNumber(double value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  if (value == std::floor(value) && std::fabs(value) < 1e15) return fmt::format("{:.0f}", value);
  return fmt::format("{:.4g}", value);
}

// Table cells must stay on one line or the box falls apart, and what trials report (metric
// values, errors) must not reach the terminal as escape sequences.
std::string OneLine(std::string_view text) {
  std::string line(text);
  std::replace_if(
      line.begin(), line.end(), [](char c) { return c == '\n' || c == '\r' || c == '\t'; }, ' ');
  return EscapeControl(line, /*keep_newlines=*/false);
}

Cell FormatValue(const Json& value) {
  if (value.is_number_integer()) return {value.dump(), true};
  if (value.is_number_float()) return {FormatNumber(value.get<double>()), true};
  if (value.is_string()) return {OneLine(value.get_ref<const std::string&>()), false};
  if (value.is_boolean()) return {value.get<bool>() ? "True" : "False", false};
  if (value.is_null()) return {"", false};
  return {OneLine(value.dump(-1, ' ', false, Json::error_handler_t::replace)), false};
}

// `path` is a key of `root`, or a dotted path through nested objects. Null when absent.
const Json* Lookup(const Json& root, const std::string& path) {
  if (!root.is_object()) return nullptr;
  if (auto it = root.find(path); it != root.end()) return &*it;
  const Json* node = &root;
  std::size_t start = 0;
  while (true) {
    std::size_t dot = path.find('.', start);
    std::string key =
        path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (!node->is_object()) return nullptr;
    auto it = node->find(key);
    if (it == node->end()) return nullptr;
    node = &*it;
    if (dot == std::string::npos) return node;
    start = dot + 1;
  }
}

void CollectLeafPaths(const Json& node, const std::string& prefix, std::set<std::string>& paths) {
  if (node.is_object() && !node.empty()) {
    for (auto it = node.begin(); it != node.end(); ++it) {
      CollectLeafPaths(it.value(), prefix.empty() ? it.key() : prefix + "." + it.key(), paths);
    }
  } else if (!prefix.empty()) {
    paths.insert(prefix);
  }
}

// Renders rows as a psql-style box:
//   +------+-----+
//   | name |   x |
//   |------+-----|
//   | a    | 1.5 |
//   +------+-----+
void AppendTable(const std::vector<std::string>& header, const std::vector<std::vector<Cell>>& rows,
                 std::string& out) {
  std::vector<std::size_t> widths(header.size());
  std::vector<bool> numeric(header.size(), true);
  for (std::size_t column = 0; column < header.size(); ++column) {
    widths[column] = DisplayWidth(header[column]);
    bool any_value = false;
    for (const auto& row : rows) {
      const Cell& cell = row[column];
      widths[column] = std::max(widths[column], DisplayWidth(cell.text));
      if (cell.text.empty()) continue;
      any_value = true;
      numeric[column] = numeric[column] && cell.numeric;
    }
    numeric[column] = numeric[column] && any_value;
  }
  auto rule = [&](char edge) {
    out += edge;
    for (std::size_t column = 0; column < widths.size(); ++column) {
      out.append(widths[column] + 2, '-');
      out += column + 1 == widths.size() ? edge : '+';
    }
    out += '\n';
  };
  auto line = [&](auto&& text_of) {
    out += '|';
    for (std::size_t column = 0; column < widths.size(); ++column) {
      const std::string& text = text_of(column);
      std::size_t padding = widths[column] - DisplayWidth(text);
      out += ' ';
      if (numeric[column]) out.append(padding, ' ');
      out += text;
      if (!numeric[column]) out.append(padding, ' ');
      out += " |";
    }
    out += '\n';
  };
  rule('+');
  line([&](std::size_t column) -> const std::string& { return header[column]; });
  rule('|');
  for (const auto& row : rows) {
    line([&](std::size_t column) -> const std::string& { return row[column].text; });
  }
  rule('+');
}

}  // namespace tune
