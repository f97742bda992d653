// CSV cells (reporters/csv.h).

#include "reporters/csv.h"

#include <cmath>
#include <cstdint>

#include "core/text.h"

namespace tune {

// Quotes a CSV field when it needs it (RFC 4180: commas, quotes, line breaks). A text a
// spreadsheet would run as a formula (=HYPERLINK(...), +, -, @, a tab or CR first: a trial's
// string metric) gets a leading ' inside quotes, as OWASP advises, so it shows as text.
void AppendCsvField(std::string_view text, fmt::memory_buffer& out) {
  const bool formula = LooksLikeFormula(text);
  if (!formula && text.find_first_of(",\"\n\r") == std::string_view::npos) {
    out.append(text.data(), text.data() + text.size());
    return;
  }
  out.push_back('"');
  if (formula) out.push_back('\'');
  for (char c : text) {
    if (c == '"') out.push_back('"');
    out.push_back(c);
  }
  out.push_back('"');
}

// Full precision (shortest text that reads back the same), non-finite as Python prints it.
void AppendCsvDouble(double value, fmt::memory_buffer& out) {
  if (std::isnan(value)) {
    fmt::format_to(fmt::appender(out), "nan");
  } else if (std::isinf(value)) {
    fmt::format_to(fmt::appender(out), "{}", value > 0 ? "inf" : "-inf");
  } else {
    fmt::format_to(fmt::appender(out), "{}", value);
  }
}

// Booleans as Python writes them, like Ray's progress.csv.
void AppendCsvValue(const Json& value, fmt::memory_buffer& out) {
  switch (value.type()) {
    case Json::value_t::number_integer:
      fmt::format_to(fmt::appender(out), "{}", value.get<std::int64_t>());
      break;
    case Json::value_t::number_unsigned:
      fmt::format_to(fmt::appender(out), "{}", value.get<std::uint64_t>());
      break;
    case Json::value_t::number_float:
      AppendCsvDouble(value.get<double>(), out);
      break;
    case Json::value_t::boolean:
      fmt::format_to(fmt::appender(out), "{}", value.get<bool>() ? "True" : "False");
      break;
    case Json::value_t::string:
      AppendCsvField(value.get_ref<const std::string&>(), out);
      break;
    case Json::value_t::null:
    case Json::value_t::discarded:
      break;
    default:
      AppendCsvField(value.dump(-1, ' ', false, Json::error_handler_t::replace), out);
      break;
  }
}

std::vector<std::string> ParseCsvLine(std::string_view line) {
  std::vector<std::string> fields(1);
  bool quoted = false;
  for (std::size_t i = 0; i < line.size(); ++i) {
    char c = line[i];
    if (quoted) {
      if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') {
        fields.back() += '"';
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        fields.back() += c;
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      fields.emplace_back();
    } else if (c != '\r') {
      fields.back() += c;
    }
  }
  return fields;
}

}  // namespace tune
