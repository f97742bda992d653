#include "schedulers/util.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <stdexcept>

#include "core/state.h"

namespace tune {

bool HasAttr(const Result& result, const std::string& attr) {
  return attr == "training_iteration" || attr == "time_total_s" || result.metrics.contains(attr);
}

std::optional<std::pair<double, double>> ReadTimeAndMetric(const Result& result,
                                                            const std::string& time_attr,
                                                            const std::string& metric) {
  if (!HasAttr(result, time_attr) || !HasAttr(result, metric)) return std::nullopt;
  const double time = result.Get(time_attr);
  if (std::isnan(time)) return std::nullopt;
  return std::make_pair(time, result.Get(metric));
}

bool TrialIdSet::Contains(const std::string& id) const {
  const std::size_t number = numbers_.NumberOf(id);
  if (number != kNone && number / 64 < bits_.size() && ((bits_[number / 64] >> (number % 64)) & 1)) {
    return true;
  }
  return !others_.empty() && others_.count(id) != 0;
}

bool TrialIdSet::Insert(const std::string& id) {
  if (Contains(id)) return false;
  numbers_.Learn(id);
  const std::size_t number = numbers_.NumberOf(id);
  // At most 64 bits a member plus 8 KB: a number far past the others goes to the hash set.
  if (number != kNone && number <= 64 * size_ + 65536) {
    if (number / 64 >= bits_.size()) bits_.resize(number / 64 + 1, 0);
    bits_[number / 64] |= std::uint64_t{1} << (number % 64);
  } else {
    others_.insert(id);
  }
  ++size_;
  return true;
}

Json TrialIdSet::SaveState() const {
  static const char kHex[] = "0123456789abcdef";
  std::string bits;
  bits.reserve(bits_.size() * 16);
  for (std::uint64_t word : bits_) {
    for (int shift = 60; shift >= 0; shift -= 4) bits.push_back(kHex[(word >> shift) & 15]);
  }
  std::vector<std::string> others(others_.begin(), others_.end());
  std::sort(others.begin(), others.end());
  return Json{{"prefix", numbers_.learned() ? Json(numbers_.prefix()) : Json()},
              {"width", numbers_.width()},
              {"bits", std::move(bits)},
              {"others", std::move(others)}};
}

void TrialIdSet::LoadState(const Json& state, const std::string& path) {
  TrialIdSet set;
  const Json& prefix = StateMember(state, "prefix", path);
  const bool learned = !prefix.is_null();
  const std::string* prefix_text = learned ? &StateString(prefix, path + ".prefix") : nullptr;
  const std::int64_t width = StateInteger(StateMember(state, "width", path), path + ".width");
  if (width < 0 || width > 18 || (learned && width == 0) || (!learned && width != 0)) {
    throw std::runtime_error("snapshot: " + path + ".width: not a trial id's digit count");
  }
  set.numbers_.Set(prefix_text, static_cast<std::size_t>(width));
  const std::string& bits = StateString(StateMember(state, "bits", path), path + ".bits");
  if (bits.size() % 16 != 0 || (!learned && !bits.empty())) {
    throw std::runtime_error("snapshot: " + path + ".bits: not a bitmap of trial numbers");
  }
  for (std::size_t i = 0; i < bits.size(); i += 16) {
    std::uint64_t word = 0;
    for (std::size_t j = i; j < i + 16; ++j) {
      const char c = bits[j];
      const int digit = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
      if (digit < 0) throw std::runtime_error("snapshot: " + path + ".bits: not hexadecimal");
      word = word << 4 | static_cast<std::uint64_t>(digit);
    }
    set.bits_.push_back(word);
    set.size_ += static_cast<std::size_t>(__builtin_popcountll(word));
  }
  const Json& others = StateArray(StateMember(state, "others", path), path + ".others");
  for (std::size_t i = 0; i < others.size(); ++i) {
    const std::string& id = StateString(others[i], path + ".others[" + std::to_string(i) + "]");
    if (set.Contains(id)) {
      throw std::runtime_error("snapshot: " + path + ".others[" + std::to_string(i) + "]: " + id +
                               " is there twice");
    }
    set.others_.insert(id);
    ++set.size_;
  }
  *this = std::move(set);
}

const Json& StateMember(const Json& object, const std::string& key, const std::string& path) {
  if (!object.is_object()) throw std::runtime_error("snapshot: " + path + ": not an object");
  auto it = object.find(key);
  if (it == object.end()) throw std::runtime_error("snapshot: " + path + "." + key + ": missing");
  return *it;
}

const Json& StateArray(const Json& value, const std::string& path) {
  if (!value.is_array()) throw std::runtime_error("snapshot: " + path + ": not an array");
  return value;
}

double StateDouble(const Json& value, const std::string& path) {
  if (value.is_number() || value == "nan" || value == "inf" || value == "-inf") {
    return FromStateNumber(value);
  }
  throw std::runtime_error("snapshot: " + path + ": not a number");
}

double StateDoubleAt(const Json& array, std::size_t i, const std::string& path) {
  const Json& value = array[i];
  if (value.is_number()) return value.get<double>();
  return StateDouble(value, path + "[" + std::to_string(i) + "]");
}

std::int64_t StateInteger(const Json& value, const std::string& path) {
  if (!value.is_number_integer()) throw std::runtime_error("snapshot: " + path + ": not an integer");
  if (value.is_number_unsigned() &&
      value.get<std::uint64_t>() > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
    throw std::runtime_error("snapshot: " + path + ": out of range");
  }
  return value.get<std::int64_t>();
}

bool StateBool(const Json& value, const std::string& path) {
  if (!value.is_boolean()) throw std::runtime_error("snapshot: " + path + ": not true or false");
  return value.get<bool>();
}

const std::string& StateString(const Json& value, const std::string& path) {
  if (!value.is_string()) throw std::runtime_error("snapshot: " + path + ": not text");
  return value.get_ref<const std::string&>();
}

}  // namespace tune
