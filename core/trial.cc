#include "core/trial.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

namespace tune {

Json MergeConfig(const Json& trainer, const Json& params) {
  Json config = trainer.is_object() ? trainer : Json::object();
  config.erase("command");
  config.merge_patch(params);  // params never hold nulls, so merge_patch is a plain deep merge
  return config;
}

std::filesystem::path DirOf(const Trial& trial, const std::filesystem::path& experiment_dir) {
  return trial.dir.empty() ? experiment_dir / trial.id : trial.dir;
}

void TrialIdNumbers::Learn(std::string_view id) {
  if (learned_) return;
  // The prefix is everything before the trailing digits (at least one digit).
  std::size_t digits = id.size();
  while (digits > 0 && id[digits - 1] >= '0' && id[digits - 1] <= '9') --digits;
  if (digits < id.size()) {
    learned_ = true;
    prefix_ = std::string(id.substr(0, digits));
    width_ = id.size() - digits;
  }
}

void TrialIdNumbers::Set(const std::string* prefix, std::size_t width) {
  learned_ = prefix != nullptr;
  prefix_ = prefix ? *prefix : std::string();
  width_ = width;
}

std::size_t TrialIdNumbers::NumberOf(std::string_view id) const {
  if (!learned_ || id.size() < prefix_.size() + width_ || id.substr(0, prefix_.size()) != prefix_) {
    return kNone;
  }
  const std::string_view digits = id.substr(prefix_.size());
  if (digits.size() > 18) return kNone;
  std::size_t number = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') return kNone;
    number = number * 10 + static_cast<std::size_t>(c - '0');
  }
  // Exactly the number padded to the width: "t_00001", "t_123456", not "t_000001".
  std::size_t length = 1;
  for (std::size_t rest = number / 10; rest > 0; rest /= 10) ++length;
  return digits.size() == std::max(length, width_) ? number : kNone;
}

void TrialIndex::Set(const std::string& id, std::size_t position) {
  numbers_.Learn(id);
  std::size_t number = numbers_.NumberOf(id);
  // Numbers far past the ids held would make the vector mostly holes; an id once in the map
  // stays there.
  if (number != kNone && (number > 4 * size_ + 1024 || (!others_.empty() && others_.count(id) != 0))) {
    number = kNone;
  }
  if (number == kNone) {
    auto [it, inserted] = others_.emplace(id, position);
    it->second = position;
    size_ += inserted;
    return;
  }
  if (number >= by_number_.size()) by_number_.resize(number + 1, kNone);
  size_ += by_number_[number] == kNone;
  by_number_[number] = position;
}

std::size_t TrialIndex::Find(std::string_view id) const {
  const std::size_t number = numbers_.NumberOf(id);
  if (number < by_number_.size() && by_number_[number] != kNone) return by_number_[number];
  if (others_.empty()) return kNone;
  auto it = others_.find(std::string(id));
  return it == others_.end() ? kNone : it->second;
}

std::size_t TrialIndex::At(std::string_view id) const {
  const std::size_t position = Find(id);
  if (position == kNone) throw std::out_of_range("no trial " + std::string(id));
  return position;
}

LastResult::LastResult(const LastResult& other) = default;
LastResult& LastResult::operator=(const LastResult& other) = default;

LastResult& LastResult::operator=(const Result& result) {
  has_ = true;
  result_ = result;
  std::string().swap(packed_);
  return *this;
}

LastResult& LastResult::operator=(Result&& result) {
  has_ = true;
  result_ = std::move(result);
  std::string().swap(packed_);
  return *this;
}

LastResult& LastResult::operator=(std::nullopt_t) {
  has_ = false;
  result_ = Result();
  std::string().swap(packed_);
  return *this;
}

Result& LastResult::Expanded() const {
  if (!packed_.empty()) {
    result_.metrics = Json::parse(packed_);
    std::string().swap(packed_);
  }
  return result_;
}

double LastResult::Get(std::string_view attr) const {
  if (!has_) return std::numeric_limits<double>::quiet_NaN();
  if (packed_.empty() || attr == "training_iteration" || attr == "time_total_s") return result_.Get(attr);
  return Decoded().Get(attr);
}

Result LastResult::Decoded() const {
  Result copy = result_;
  if (!packed_.empty()) copy.metrics = Json::parse(packed_);
  return copy;
}

namespace {

// Whether `json` holds a number JSON text cannot (NaN, infinity: dump() writes null).
bool HasNonFinite(const Json& json) {
  if (json.is_number_float()) return !std::isfinite(json.get_ref<const double&>());
  if (json.is_structured()) {
    for (const Json& item : json) {
      if (HasNonFinite(item)) return true;
    }
  }
  return false;
}

}  // namespace

void LastResult::Compact() {
  if (!has_ || !packed_.empty() || !result_.metrics.is_object() || HasNonFinite(result_.metrics)) {
    return;
  }
  // What parsing gives back: numbers round-trip (nlohmann prints the shortest form that reads
  // back to the same double); text that is not UTF-8 stays expanded.
  std::string text;
  try {
    text = result_.metrics.dump();
  } catch (const Json::exception&) {
    return;
  }
  if (text.size() <= 2) return;  // "{}": nothing to gain (and empty text means expanded)
  packed_ = std::move(text);
  packed_.shrink_to_fit();
  result_.metrics = Json();
}

Json Trial::config() const { return MergeConfig(trainer ? *trainer : Json::object(), params); }

}  // namespace tune
