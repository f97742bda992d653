#include "core/state.h"

#include <utility>

namespace tune {
namespace {

[[noreturn]] void Throw(const std::string& path, const std::string& why) {
  throw std::runtime_error("snapshot: " + path + ": " + why);
}

std::string Indexed(const std::string& path, std::size_t i) {
  return path + "[" + std::to_string(i) + "]";
}

// An unsigned JSON integer above int64's range.
bool TooLarge(const Json& value) {
  constexpr auto kMax = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
  return value.is_number_unsigned() && value.get<std::uint64_t>() > kMax;
}

}  // namespace

const Json& StateMember(const Json& object, const std::string& key, const std::string& path) {
  if (!object.is_object()) Throw(path, "not an object");
  auto it = object.find(key);
  if (it == object.end()) Throw(path + "." + key, "missing");
  return *it;
}

const Json& StateArray(const Json& value, const std::string& path) {
  if (!value.is_array()) Throw(path, "not an array");
  return value;
}

double StateDouble(const Json& value, const std::string& path) {
  if (value.is_number() || value == "nan" || value == "inf" || value == "-inf") {
    return FromStateNumber(value);
  }
  Throw(path, "not a number");
}

double StateDoubleAt(const Json& array, std::size_t i, const std::string& path) {
  const Json& value = array[i];
  if (value.is_number()) return value.get<double>();
  return StateDouble(value, Indexed(path, i));
}

std::int64_t StateInteger(const Json& value, const std::string& path) {
  if (!value.is_number_integer()) Throw(path, "not an integer");
  if (TooLarge(value)) Throw(path, "out of range");
  return value.get<std::int64_t>();
}

std::int64_t StateInteger(const Json& value, const std::string& path, std::int64_t min,
                          std::int64_t max) {
  if (!value.is_number_integer()) Throw(path, "not an integer");
  if (!TooLarge(value) && value.get<std::int64_t>() >= min && value.get<std::int64_t>() <= max) {
    return value.get<std::int64_t>();
  }
  Throw(path, value.dump() + " is not in [" + std::to_string(min) + ", " + std::to_string(max) +
                  "]");
}

const std::string& StateString(const Json& value, const std::string& path) {
  if (!value.is_string()) Throw(path, "not a string");
  return value.get_ref<const std::string&>();
}

bool StateBool(const Json& value, const std::string& path) {
  if (!value.is_boolean()) Throw(path, "not true or false");
  return value.get<bool>();
}

Json StateNumbers(const std::vector<double>& values) {
  Json array = Json::array();
  array.get_ref<Json::array_t&>().reserve(values.size());
  for (double value : values) array.push_back(StateNumber(value));
  return array;
}

Json IndexState(const std::unordered_map<std::string, std::size_t>& index, std::size_t size) {
  Json ids = Json::array();
  ids.get_ref<Json::array_t&>().resize(size);
  for (const auto& [id, position] : index) ids[position] = id;
  return ids;
}

StateReader::StateReader(const Json& state, std::string path)
    : state_(state), path_(std::move(path)) {
  if (!state_.is_object()) Throw(path_, "not an object");
}

void StateReader::Fail(const std::string& key, const std::string& why) const {
  Throw(At(key), why);
}

const Json& StateReader::Member(const std::string& key) const {
  return StateMember(state_, key, path_);
}

StateReader StateReader::Object(const std::string& key) const {
  return StateReader(Member(key), At(key));
}

const Json& StateReader::Array(const std::string& key, std::size_t size) const {
  const Json& value = StateArray(Member(key), At(key));
  if (size != kAnySize && value.size() != size) {
    Fail(key, std::to_string(value.size()) + " elements, expected " + std::to_string(size));
  }
  return value;
}

std::int64_t StateReader::Integer(const std::string& key, std::int64_t min,
                                  std::int64_t max) const {
  return StateInteger(Member(key), At(key), min, max);
}

std::int64_t StateReader::IntegerAt(const Json& array, std::size_t i, const std::string& key,
                                    std::int64_t min, std::int64_t max) const {
  return StateInteger(array[i], Indexed(At(key), i), min, max);
}

std::size_t StateReader::Index(const std::string& key,
                              std::unordered_map<std::string, std::size_t>* index) const {
  const Json& ids = Array(key);
  index->clear();
  index->reserve(ids.size());
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (ids[i].is_null()) continue;
    if (!ids[i].is_string()) Throw(Indexed(At(key), i), "not a trial id");
    if (!index->emplace(ids[i].get<std::string>(), i).second) {
      Throw(Indexed(At(key), i), "a trial id twice: " + ids[i].dump());
    }
  }
  return ids.size();
}

bool StateReader::Bool(const std::string& key) const { return StateBool(Member(key), At(key)); }

std::string StateReader::String(const std::string& key) const {
  return StateString(Member(key), At(key));
}

double StateReader::Number(const std::string& key) const {
  return StateDouble(Member(key), At(key));
}

std::vector<double> StateReader::Numbers(const std::string& key, std::size_t size) const {
  const Json& array = Array(key, size);
  const std::string at = At(key);
  std::vector<double> values;
  values.reserve(array.size());
  for (std::size_t i = 0; i < array.size(); ++i) values.push_back(StateDoubleAt(array, i, at));
  return values;
}

}  // namespace tune
