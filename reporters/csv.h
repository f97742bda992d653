// CSV cells as progress.csv and `tune show --csv` write them: RFC 4180 quoting, full-precision
// numbers, booleans as Python prints them, and text a spreadsheet would run as a formula
// defused (what a trial reports is untrusted).
//
// Example:
//   fmt::memory_buffer line;
//   tune::AppendCsvField("=HYPERLINK(\"x\")", line);   // "'=HYPERLINK(""x"")"
//   line.push_back(',');
//   tune::AppendCsvValue(tune::Json(0.1), line);        // 0.1
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "core/types.h"

namespace tune {

// Quotes a field when it needs it (commas, quotes, line breaks). A text a spreadsheet would run
// as a formula (=HYPERLINK(...), +, -, @, a tab or CR first) gets a leading ' inside quotes, as
// OWASP advises, so it shows as text.
void AppendCsvField(std::string_view text, fmt::memory_buffer& out);
// Full precision (the shortest text that reads back the same); nan, inf, -inf as Python prints
// them.
void AppendCsvDouble(double value, fmt::memory_buffer& out);
// Any JSON value: numbers as above, True/False, strings quoted as by AppendCsvField, null
// empty, arrays and objects as one line of JSON (quoted).
void AppendCsvValue(const Json& value, fmt::memory_buffer& out);
// Splits one CSV line, as the functions above write it, into its fields (quotes undone; a
// defused formula keeps its leading ').
std::vector<std::string> ParseCsvLine(std::string_view line);

}  // namespace tune
