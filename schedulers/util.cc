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

}  // namespace tune
