#include "core/options.h"

#include <cmath>
#include <cstdint>
#include <sstream>

namespace tune {
namespace {

std::string Num(double v) {
  std::ostringstream out;
  out << v;
  return out.str();
}

void CheckRange(double number, const Json& value, const std::string& path, const Range& range) {
  if (!range.Contains(number)) {
    throw SpecError(path, "must be " + range.Describe() + ", got " + value.dump());
  }
}

}  // namespace

bool Range::Contains(double v) const {
  if (min && (min_open ? !(v > *min) : !(v >= *min))) return false;
  if (max && (max_open ? !(v < *max) : !(v <= *max))) return false;
  return true;
}

std::string Range::Describe() const {
  if (min && max) {
    if (!min_open && !max_open) return "between " + Num(*min) + " and " + Num(*max);
    return std::string("in ") + (min_open ? "(" : "[") + Num(*min) + ", " + Num(*max) +
           (max_open ? ")" : "]");
  }
  if (min) return (min_open ? "> " : ">= ") + Num(*min);
  if (max) return (max_open ? "< " : "<= ") + Num(*max);
  return "a number";
}

double ReadNumber(const Json& value, const std::string& path, const Range& range) {
  if (!value.is_number()) throw SpecError(path, "expected a number, got " + value.dump());
  const double number = value.get<double>();
  if (!std::isfinite(number)) throw SpecError(path, "expected a finite number, got " + value.dump());
  CheckRange(number, value, path, range);
  return number;
}

std::int64_t ReadInteger(const Json& value, const std::string& path, const Range& range) {
  std::optional<std::int64_t> integer;
  if (value.is_number_unsigned() &&
      value.get<std::uint64_t>() > static_cast<std::uint64_t>(INT64_MAX)) {
    // Would wrap to a negative number ("got -1" for 18446744073709551615).
    throw SpecError(path, "must be at most 9223372036854775807, got " + value.dump());
  }
  if (value.is_number_integer()) {
    integer = value.get<std::int64_t>();
  } else if (value.is_number_float()) {
    const double number = value.get<double>();
    if (std::isfinite(number) && number == std::trunc(number) && std::fabs(number) < 0x1.0p62) {
      integer = static_cast<std::int64_t>(number);
    }
  }
  if (!integer) throw SpecError(path, "expected an integer, got " + value.dump());
  CheckRange(static_cast<double>(*integer), value, path, range);
  return *integer;
}

OptionsReader::OptionsReader(const Json& json, std::string path,
                             const std::vector<std::string>& known)
    : json_(json.is_null() ? Json::object() : json), path_(std::move(path)) {
  if (!json_.is_object()) throw SpecError(path_, "expected an object, got " + json.dump());
  for (const auto& item : json_.items()) {
    bool ok = false;
    for (const std::string& key : known) ok = ok || key == item.key();
    if (!ok) throw SpecError(PathOf(item.key()), "unknown option" + DidYouMean(item.key(), known));
  }
}

const Json* OptionsReader::Find(const std::string& key) const {
  auto it = json_.find(key);
  return it == json_.end() ? nullptr : &*it;
}

double OptionsReader::Number(const std::string& key, double fallback, const Range& range) const {
  const Json* value = Find(key);
  return value ? ReadNumber(*value, PathOf(key), range) : fallback;
}

std::optional<double> OptionsReader::OptionalNumber(const std::string& key,
                                                    const Range& range) const {
  const Json* value = Find(key);
  if (value == nullptr || value->is_null()) return std::nullopt;
  return ReadNumber(*value, PathOf(key), range);
}

std::int64_t OptionsReader::Integer(const std::string& key, std::int64_t fallback,
                                    const Range& range) const {
  const Json* value = Find(key);
  return value ? ReadInteger(*value, PathOf(key), range) : fallback;
}

bool OptionsReader::Bool(const std::string& key, bool fallback) const {
  const Json* value = Find(key);
  if (value == nullptr) return fallback;
  if (!value->is_boolean()) {
    throw SpecError(PathOf(key), "expected true or false, got " + value->dump());
  }
  return value->get<bool>();
}

std::string OptionsReader::String(const std::string& key, const std::string& fallback) const {
  const Json* value = Find(key);
  if (value == nullptr) return fallback;
  if (!value->is_string() || value->get<std::string>().empty()) {
    throw SpecError(PathOf(key), "expected a non-empty string, got " + value->dump());
  }
  return value->get<std::string>();
}

std::string OptionsReader::Choice(const std::string& key, const std::string& fallback,
                                  const std::vector<std::string>& choices) const {
  std::string value = String(key, fallback);
  for (const std::string& choice : choices) {
    if (choice == value) return value;
  }
  std::string list;
  for (const std::string& choice : choices) list += (list.empty() ? "" : ", ") + choice;
  throw SpecError(PathOf(key), "must be one of " + list + ", got \"" + value + "\"" +
                                   DidYouMean(value, choices));
}

std::vector<std::string> OptionsReader::Strings(const std::string& key) const {
  const Json* value = Find(key);
  std::vector<std::string> strings;
  if (value == nullptr) return strings;
  bool ok = value->is_array();
  for (const Json& item : ok ? *value : Json::array()) {
    ok = ok && item.is_string();
    if (ok) strings.push_back(item.get<std::string>());
  }
  if (!ok) throw SpecError(PathOf(key), "must be an array of strings, got " + value->dump());
  return strings;
}

Mode OptionsReader::ModeOf(const std::string& key, Mode fallback) const {
  const Json* value = Find(key);
  return value ? ParseMode(*value, PathOf(key)) : fallback;
}

void OptionsReader::Require(bool ok, const std::string& key, const std::string& message) const {
  if (ok) return;
  const Json* value = Find(key);
  throw SpecError(PathOf(key), message + (value ? ", got " + value->dump() : ""));
}

}  // namespace tune
