// Plain-text tables for the terminal: psql-style boxes (what Ray gets from tabulate), with cells
// made from JSON values that trials reported, so every cell is one line of escaped text. Used by
// the live status table and by `tune show`.
//
// Example:
//   std::string out;
//   tune::AppendTable({"trial_id", "loss"}, {{{"t_00001", false}, tune::FormatValue(0.25)}}, out);
//   // +----------+------+
//   // | trial_id | loss |
//   // |----------+------|
//   // | t_00001  | 0.25 |
//   // +----------+------+
#pragma once

#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "core/types.h"

namespace tune {

// One table cell; numeric cells are right-aligned, like tabulate does.
struct Cell {
  std::string text;
  bool numeric = false;
};

// Compact numbers: integral values as integers, the rest with 4 significant digits.
std::string FormatNumber(double value);

// `text` on one line (line breaks and tabs become spaces) with control characters escaped: what
// trials report must not reach the terminal as escape sequences.
std::string OneLine(std::string_view text);

// A cell for a JSON value: numbers compact and right-aligned, booleans as Python prints them,
// strings on one line, null empty, anything else as one line of JSON.
Cell FormatValue(const Json& value);

// `path` is a key of `root`, or a dotted path through nested objects. Null when absent.
const Json* Lookup(const Json& root, const std::string& path);

// Adds the dotted path of every leaf of `node` (non-object values and empty objects) to `paths`.
void CollectLeafPaths(const Json& node, const std::string& prefix, std::set<std::string>& paths);

// Appends `rows` under `header` as a psql-style box; columns are as wide as their widest cell
// (counted in code points), and right-aligned when every non-empty cell is numeric.
void AppendTable(const std::vector<std::string>& header, const std::vector<std::vector<Cell>>& rows,
                 std::string& out);

}  // namespace tune
