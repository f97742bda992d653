#include "search/searcher_state.h"

#include <fmt/format.h>

#include <cstdint>
#include <stdexcept>
#include <utility>

namespace tune {

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
  if (!state_.is_object()) {
    throw std::runtime_error("snapshot: " + path_ + ": not an object");
  }
}

void StateReader::Fail(const std::string& key, const std::string& why) const {
  throw std::runtime_error("snapshot: " + path_ + "." + key + ": " + why);
}

const Json& StateReader::Member(const std::string& key) const {
  auto it = state_.find(key);
  if (it == state_.end()) Fail(key, "missing");
  return *it;
}

StateReader StateReader::Object(const std::string& key) const {
  const Json& value = Member(key);
  if (!value.is_object()) Fail(key, "not an object");
  return StateReader(value, path_ + "." + key);
}

const Json& StateReader::Array(const std::string& key, std::size_t size) const {
  const Json& value = Member(key);
  if (!value.is_array()) Fail(key, "not an array");
  if (size != kAnySize && value.size() != size) {
    Fail(key, fmt::format("{} elements, expected {}", value.size(), size));
  }
  return value;
}

std::int64_t StateReader::IntegerValue(const Json& value, const std::string& key, std::size_t index,
                                       std::int64_t min, std::int64_t max) const {
  const bool too_large = value.is_number_unsigned() && value.get<std::uint64_t>() > INT64_MAX;
  if (value.is_number_integer() && !too_large && value.get<std::int64_t>() >= min &&
      value.get<std::int64_t>() <= max) {
    return value.get<std::int64_t>();
  }
  const std::string where = index == kAnySize ? key : fmt::format("{}[{}]", key, index);
  if (!value.is_number_integer()) Fail(where, "not an integer: " + value.dump());
  Fail(where, fmt::format("{} is not in [{}, {}]", value.dump(), min, max));
}

std::int64_t StateReader::IntegerAt(const Json& array, std::size_t i, const std::string& key,
                                    std::int64_t min, std::int64_t max) const {
  return IntegerValue(array[i], key, i, min, max);
}

std::int64_t StateReader::Integer(const std::string& key, std::int64_t min,
                                  std::int64_t max) const {
  return IntegerValue(Member(key), key, kAnySize, min, max);
}

std::size_t StateReader::Index(const std::string& key,
                              std::unordered_map<std::string, std::size_t>* index) const {
  const Json& ids = Array(key);
  index->clear();
  index->reserve(ids.size());
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (ids[i].is_null()) continue;
    if (!ids[i].is_string()) Fail(fmt::format("{}[{}]", key, i), "not a trial id");
    if (!index->emplace(ids[i].get<std::string>(), i).second) {
      Fail(fmt::format("{}[{}]", key, i), "a trial id twice: " + ids[i].dump());
    }
  }
  return ids.size();
}

bool StateReader::Bool(const std::string& key) const {
  const Json& value = Member(key);
  if (!value.is_boolean()) Fail(key, "not true or false");
  return value.get<bool>();
}

std::string StateReader::String(const std::string& key) const {
  const Json& value = Member(key);
  if (!value.is_string()) Fail(key, "not a string");
  return value.get<std::string>();
}

double StateReader::Number(const std::string& key) const {
  const Json& value = Member(key);
  try {
    return FromStateNumber(value);
  } catch (const std::runtime_error&) {
    Fail(key, "not a number: " + value.dump());
  }
}

std::vector<double> StateReader::Numbers(const std::string& key, std::size_t size) const {
  const Json& array = Array(key, size);
  std::vector<double> values;
  values.reserve(array.size());
  for (std::size_t i = 0; i < array.size(); ++i) {
    const Json& value = array[i];
    if (value.is_number()) {
      values.push_back(value.get<double>());
      continue;
    }
    try {
      values.push_back(FromStateNumber(value));
    } catch (const std::runtime_error&) {
      Fail(fmt::format("{}[{}]", key, i), "not a number: " + value.dump());
    }
  }
  return values;
}

}  // namespace tune
