// One reader for every options object of a spec ("scheduler", "search", "stop", "reporter", ...)
// and one table type for every factory, so each module exports
//   XConfig ParseXOptions(const Json& json, const std::string& path, ...)   (typed, validated)
//   std::unique_ptr<X> MakeX(const XConfig& config)
// and the spec is parsed completely, with errors naming the JSON path, before anything runs.
//
// Example (a scheduler's parse function):
//   OptionsReader in(json, "scheduler", {"type", "grace_period", "min_samples_required"});
//   options.grace_period = in.Number("grace_period", 60, Range::AtLeast(0));
//   options.min_samples = in.Integer("min_samples_required", 3, Range::AtLeast(1));
//   // unknown keys threw at construction: "scheduler.grace_perod: unknown option (did you
//   // mean \"grace_period\"?)"; bad values throw "scheduler.grace_period: must be >= 0, got -1"
#pragma once

#include <any>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/types.h"

namespace tune {

// Bounds for a number: [min, max], either end open or absent.
struct Range {
  std::optional<double> min, max;
  bool min_open = false, max_open = false;
  static Range Above(double v) { return {v, std::nullopt, true, false}; }
  static Range AtLeast(double v) { return {v, std::nullopt, false, false}; }
  static Range Between(double lo, double hi) { return {lo, hi, false, false}; }  // closed
  static Range Open(double lo, double hi) { return {lo, hi, true, true}; }
  bool Contains(double v) const;
  std::string Describe() const;  // "> 0", ">= 1", "between 0 and 1", "in (0, 1)"
};

class OptionsReader {
 public:
  // `json` must be an object (null reads as an empty one); every key must be in `known`.
  // Throws SpecError naming `path` (not an object) or `path.key` (unknown key, did-you-mean).
  OptionsReader(const Json& json, std::string path, const std::vector<std::string>& known);

  const std::string& path() const { return path_; }
  std::string PathOf(const std::string& key) const { return path_ + "." + key; }
  bool Has(const std::string& key) const { return json_.contains(key); }
  // The raw value, or nullptr when absent.
  const Json* Find(const std::string& key) const;

  // Each returns `fallback` when the key is absent and throws SpecError naming path.key when the
  // value has the wrong type or is outside `range`.
  double Number(const std::string& key, double fallback, const Range& range = {}) const;
  // Accepts 2 and 2.0 (a CLI override may produce either), not 2.5.
  std::int64_t Integer(const std::string& key, std::int64_t fallback,
                       const Range& range = {}) const;
  bool Bool(const std::string& key, bool fallback) const;
  // A non-empty string.
  std::string String(const std::string& key, const std::string& fallback) const;
  // One of `choices`.
  std::string Choice(const std::string& key, const std::string& fallback,
                     const std::vector<std::string>& choices) const;
  Mode ModeOf(const std::string& key, Mode fallback) const;
  // An array of strings (empty when absent).
  std::vector<std::string> Strings(const std::string& key) const;
  // An optional number (null counts as absent).
  std::optional<double> OptionalNumber(const std::string& key, const Range& range = {}) const;

  // Throws SpecError(path.key, message + ", got <value>") unless `ok`.
  void Require(bool ok, const std::string& key, const std::string& message) const;

 private:
  Json json_;
  std::string path_;
};

// The same checks for one value at `path` (for values not in an options object).
double ReadNumber(const Json& value, const std::string& path, const Range& range = {});
std::int64_t ReadInteger(const Json& value, const std::string& path, const Range& range = {});

// A factory table: one Entry per implementation ({name, keys, parse, make}). The kind's options
// object names the implementation with "type" (or is that name as a bare string); parse turns
// the object into typed options (held in std::any), make builds from them.
//
//   const Registry<Scheduler, SchedulerContext> kSchedulers("scheduler", {
//       {"fifo", {}, ParseFifo, MakeFifo},
//       {"asha", kAshaKeys, ParseAsha, MakeAsha},
//       ...});
template <class Product, class Context>
class Registry {
 public:
  struct Entry {
    std::string name;
    std::vector<std::string> keys;  // every key it accepts besides "type"
    std::function<std::any(const OptionsReader&, const Context&)> parse;
    std::function<std::unique_ptr<Product>(const std::any&, const Context&)> make;
    std::vector<std::string> aliases = {};
  };
  // Typed, validated options of one implementation.
  struct Config {
    const Entry* entry = nullptr;
    std::any options;
    Context context;
    const std::string& name() const { return entry->name; }
  };

  Registry(std::string kind, std::string fallback, std::vector<Entry> entries)
      : kind_(std::move(kind)), fallback_(std::move(fallback)), entries_(std::move(entries)) {}

  // `json`: null (the fallback), a name, or an object with "type". Throws SpecError naming
  // `path` (or path.type, path.<key>).
  Config Parse(const Json& json, const std::string& path, const Context& context) const {
    if (json.is_string()) return Parse(Json{{"type", json}}, path, context);
    std::string type = fallback_;
    if (json.is_object() && json.contains("type")) {
      if (!json["type"].is_string()) {
        throw SpecError(path + ".type", "expected a string, got " + json["type"].dump());
      }
      type = json["type"].template get<std::string>();
    } else if (!json.is_null() && !json.is_object()) {
      throw SpecError(path, "expected an object, a " + kind_ + " name or null, got " + json.dump());
    }
    const Entry* entry = Find(type);
    if (entry == nullptr) {
      throw SpecError(path + ".type", "unknown " + kind_ + " \"" + type + "\" (known: " +
                                          Names() + ")" + DidYouMean(type, NameList()));
    }
    std::vector<std::string> keys = entry->keys;
    keys.push_back("type");
    OptionsReader reader(json, path, keys);
    return Config{entry, entry->parse(reader, context), context};
  }

  std::unique_ptr<Product> Make(const Config& config) const {
    return config.entry->make(config.options, config.context);
  }

  const Entry* Find(const std::string& name) const {
    for (const Entry& entry : entries_) {
      if (entry.name == name) return &entry;
      for (const std::string& alias : entry.aliases) {
        if (alias == name) return &entry;
      }
    }
    return nullptr;
  }
  std::vector<std::string> NameList() const {
    std::vector<std::string> names;
    for (const Entry& entry : entries_) names.push_back(entry.name);
    return names;
  }
  std::string Names() const {
    std::string names;
    for (const Entry& entry : entries_) names += (names.empty() ? "" : ", ") + entry.name;
    return names;
  }

 private:
  std::string kind_;
  std::string fallback_;
  std::vector<Entry> entries_;
};

}  // namespace tune
