#include "tuner/compose.h"

#include <algorithm>
#include <map>
#include <set>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/text.h"
#include "tuner/spec.h"

namespace tune {
namespace {

namespace fs = std::filesystem;

constexpr std::size_t kMaxIncludeDepth = 32;
constexpr const char* kSelf = "_self_";

// Objects merged key by key (recursively), anything else replaced.
void MergeInto(Json& base, const Json& over) {
  if (!base.is_object() || !over.is_object()) {
    base = over;
    return;
  }
  for (const auto& [key, value] : over.items()) {
    if (base.contains(key)) {
      MergeInto(base[key], value);
    } else {
      base[key] = value;
    }
  }
}

// `content` placed at GROUP's package ("a/b" -> {"a": {"b": content}}).
Json AtPackage(const std::string& group, Json content) {
  const std::vector<std::string> parts = Split(group, '/', /*keep_empty=*/true);
  for (auto it = parts.rbegin(); it != parts.rend(); ++it) content = Json{{*it, std::move(content)}};
  return content;
}

// A directory path of parts without '.' (so no "." or ".."), none empty.
bool ValidGroup(const std::string& group) {
  for (const std::string& part : Split(group, '/', /*keep_empty=*/true)) {
    if (part.empty() || part.find('.') != std::string::npos) return false;
  }
  return true;
}

// The path `file` resolves to (symbolic links, "..") for telling files apart; itself when it
// cannot be resolved.
std::string Canonical(const fs::path& file) {
  std::error_code error;
  const fs::path resolved = fs::weakly_canonical(file, error);
  return (error ? file : resolved).string();
}

// FILE of a "FILE" entry: relative to the root, ".json" added when missing.
fs::path IncludedFile(const fs::path& root, const std::string& name) {
  const bool has_extension = name.size() > 5 && name.compare(name.size() - 5, 5, ".json") == 0;
  return root / (has_extension ? name : name + ".json");
}

class Composer {
 public:
  // Composes `spec_file` (and what it includes) with paths relative to `root`.
  Composer(fs::path root, const fs::path& spec_file) : root_(std::move(root)), stack_{Canonical(spec_file)} {}

  std::map<std::string, Json> choices;  // GROUP -> option (a string) or null, from the command line
  // Multirun: GROUP -> the options swept, in order; composed without an option here.
  std::map<std::string, std::vector<std::string>> sweeps;
  std::set<std::string> seen;           // groups the defaults lists named

  // `raw` (the file `name`) with its defaults resolved.
  Json Compose(const Json& raw, const std::string& name) {
    if (!raw.is_object()) throw SpecError(name, std::string("must be a JSON object, got ") + raw.type_name());
    if (stack_.size() > kMaxIncludeDepth) {
      throw SpecError(name, fmt::format("defaults nest deeper than {} files", kMaxIncludeDepth));
    }
    Json self = raw;
    self.erase("defaults");
    const Json defaults = raw.value("defaults", Json::array());
    if (!defaults.is_array()) {
      throw SpecError(name + ": defaults", "must be a list of \"FILE\", {\"GROUP\": \"OPTION\"} and \"_self_\"");
    }
    Json out = Json::object();
    bool self_done = false;
    for (std::size_t i = 0; i < defaults.size(); ++i) {
      const Json& entry = defaults[i];
      const std::string where = fmt::format("{}: defaults[{}]", name, i);
      if (entry.is_string() && entry.get<std::string>() == kSelf) {
        MergeInto(out, self);
        self_done = true;
      } else if (entry.is_string()) {
        const fs::path file = IncludedFile(root_, entry.get<std::string>());
        MergeInto(out, Include(file, where));
      } else if (entry.is_object() && entry.size() == 1 && (entry.begin()->is_string() || entry.begin()->is_null())) {
        const std::string group = entry.begin().key();
        if (!ValidGroup(group)) {
          throw SpecError(where, fmt::format("\"{}\" is not a group: a directory path without '.', "
                                             "\"..\" or empty parts",
                                             group));
        }
        seen.insert(group);
        Json option = *entry.begin();
        if (auto chosen = choices.find(group); chosen != choices.end()) option = chosen->second;
        if (sweeps.count(group) != 0 || option.is_null()) continue;
        MergeInto(out, AtPackage(group, Option(group, option.get<std::string>(), where)));
      } else {
        throw SpecError(where, "must be \"FILE\", {\"GROUP\": \"OPTION\"} (OPTION may be null) or \"_self_\"");
      }
    }
    if (!self_done) MergeInto(out, self);
    return out;
  }

  // GROUP/OPTION.json, composed.
  Json Option(const std::string& group, const std::string& option, const std::string& where) {
    const std::vector<std::string> known = GroupOptions(root_, group);
    if (std::find(known.begin(), known.end(), option) == known.end()) {
      if (known.empty()) {
        throw SpecError(where, fmt::format("no group {}: {} has no .json files", group,
                                           (root_ / group).string()));
      }
      throw SpecError(where, fmt::format("no option \"{}\" in group {} (known: {}){}", option, group,
                                         fmt::join(known, ", "), DidYouMean(option, known)));
    }
    return Include(root_ / group / (option + ".json"), where);
  }

  // A file named by a defaults entry at `where`, composed.
  Json Include(const fs::path& file, const std::string& where) {
    const std::string name = file.lexically_relative(root_).string();
    const std::string canonical = Canonical(file);
    if (std::find(stack_.begin(), stack_.end(), canonical) != stack_.end()) {
      throw SpecError(where, fmt::format("{} includes itself", name));
    }
    std::error_code error;
    if (!fs::is_regular_file(file, error)) throw SpecError(where, fmt::format("{}: no such file", name));
    stack_.push_back(canonical);
    Json composed = Compose(LoadSpecFile(file), name);
    stack_.pop_back();
    return composed;
  }

 private:
  fs::path root_;
  std::vector<std::string> stack_;  // files being composed, for cycles
};

void CollectGroups(const Json& raw, const fs::path& root, std::set<std::string>& groups,
                   std::set<std::string>& visited) {
  if (!raw.is_object() || !raw.contains("defaults") || !raw["defaults"].is_array()) return;
  for (const Json& entry : raw["defaults"]) {
    fs::path file;
    if (entry.is_string() && entry.get<std::string>() != kSelf) {
      file = IncludedFile(root, entry.get<std::string>());
    } else if (entry.is_object() && entry.size() == 1) {
      const std::string group = entry.begin().key();
      if (!ValidGroup(group)) continue;
      groups.insert(group);
      if (entry.begin()->is_string()) file = root / group / (entry.begin()->get<std::string>() + ".json");
    }
    std::error_code error;
    if (file.empty() || !fs::is_regular_file(file, error) || visited.size() > kMaxIncludeDepth * 8 ||
        !visited.insert(Canonical(file)).second) {
      continue;
    }
    try {
      CollectGroups(LoadSpecFile(file), root, groups, visited);
    } catch (const SpecError&) {
      // unreadable: its groups are unknown here; ComposeSpec will say why
    }
  }
}

}  // namespace

std::vector<std::string> GroupOptions(const fs::path& root, const std::string& group) {
  std::vector<std::string> options;
  std::error_code error;
  if (!ValidGroup(group)) return options;
  for (const auto& entry : fs::directory_iterator(root / group, error)) {
    std::error_code type_error;
    if (entry.path().extension() == ".json" && entry.is_regular_file(type_error)) {
      options.push_back(entry.path().stem().string());
    }
  }
  std::sort(options.begin(), options.end());
  return options;
}

std::vector<std::string> SpecGroups(const Json& raw, const fs::path& spec_file) {
  std::set<std::string> groups, visited{Canonical(spec_file)};
  CollectGroups(raw, spec_file.parent_path(), groups, visited);
  return {groups.begin(), groups.end()};
}

Json ComposeSpec(const Json& raw, const fs::path& spec_file, std::vector<std::string>* overrides,
                 bool multirun) {
  const fs::path root = spec_file.parent_path().empty() ? fs::path(".") : spec_file.parent_path();
  Composer composer(root, spec_file);
  const std::vector<std::string> groups = SpecGroups(raw, spec_file);
  std::vector<std::string> added, rest;
  for (const std::string& assignment : *overrides) {
    const std::size_t equals = assignment.find('=');
    std::string key = assignment.substr(0, equals);
    const bool add = !key.empty() && key.front() == '+';
    if (add) key.erase(0, 1);
    const bool is_group = add || key.find('/') != std::string::npos ||
                          std::binary_search(groups.begin(), groups.end(), key);
    if (!is_group || equals == std::string::npos) {
      rest.push_back(assignment);
      continue;
    }
    if (!ValidGroup(key)) throw SpecError("", fmt::format("override \"{}\": \"{}\" is not a group", assignment, key));
    const std::string value = assignment.substr(equals + 1);
    if (add) added.push_back(key);
    if (multirun && value.find(',') != std::string::npos) {
      if (key.rfind("trainer/", 0) != 0) {
        throw SpecError("", fmt::format("override \"{}\": multirun (-m) sweeps groups under trainer/ "
                                        "(their options become a grid in the space)",
                                        assignment));
      }
      composer.sweeps[key] = Split(value, ',', /*keep_empty=*/true);  // "a,,b": "" is no option
    } else {
      composer.choices[key] = value == "null" ? Json() : Json(value);
    }
  }
  Json spec = composer.Compose(raw, spec_file.string());
  for (const std::string& group : added) {
    if (!composer.seen.insert(group).second) continue;  // +GROUP of a listed group: a choice
    const auto chosen = composer.choices.find(group);
    if (chosen != composer.choices.end() && !chosen->second.is_null() && composer.sweeps.count(group) == 0) {
      MergeInto(spec, AtPackage(group, composer.Option(group, chosen->second.get<std::string>(), "+" + group)));
    }
  }
  // A group the command line sets must be one a defaults list names (or one it adds with '+').
  auto require_listed = [&](const std::string& group, const std::string& value) {
    if (composer.seen.count(group) != 0) return;
    throw SpecError("", fmt::format("override \"{}={}\": no defaults list names the group {} (add it with +{}=...)",
                                    group, value, group, group));
  };
  for (const auto& [group, option] : composer.choices) {
    require_listed(group, option.is_null() ? "null" : option.get<std::string>());
  }
  for (const auto& [group, options] : composer.sweeps) {
    require_listed(group, "...");
    Json values = Json::array();
    for (const std::string& option : options) {
      values.push_back(composer.Option(group, option, group + "=" + option));
    }
    Json grid = AtPackage(group.substr(std::string("trainer/").size()), Json{{"grid_search", values}});
    MergeInto(spec["space"], grid);
  }
  *overrides = rest;
  return spec;
}

}  // namespace tune
