#include "tuner/completion.h"

#include <algorithm>
#include <cstdlib>
#include <cstdint>
#include <filesystem>
#include <set>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/text.h"
#include "tuner/compose.h"
#include "tuner/show.h"
#include "tuner/spec.h"

namespace tune {
namespace {

bool StartsWith(const std::string& text, const std::string& prefix) {
  return text.compare(0, prefix.size(), prefix) == 0;
}

std::vector<std::string> Matching(const std::vector<std::string>& candidates, const std::string& typed) {
  std::set<std::string> out;  // sorted, once each
  for (const std::string& candidate : candidates) {
    if (StartsWith(candidate, typed)) out.insert(candidate);
  }
  return {out.begin(), out.end()};
}

// `path` with a leading "~/" read as $HOME/, as the shell will when the command runs (the line
// reaches completion unexpanded).
std::string ExpandHome(const std::string& path) {
  const char* home = std::getenv("HOME");
  if (home == nullptr || *home == '\0' || (path != "~" && !StartsWith(path, "~/"))) return path;
  return std::string(home) + path.substr(1);
}

// An option that takes a value (not a flag).
bool TakesValue(const CLI::Option* option) { return option->get_expected_max() > 0; }

// The allowed values a CLI11 IsMember check puts in the option's type name ("TEXT:{a,b}").
std::vector<std::string> MemberSet(const CLI::Option* option) {
  const std::string type = option->get_type_name();
  const std::size_t open = type.find(":{");
  const std::size_t close = type.find('}', open == std::string::npos ? 0 : open);
  if (open == std::string::npos || close == std::string::npos) return {};
  return Split(std::string_view(type).substr(open + 2, close - open - 2), ',');
}

// The positional option the `index`-th positional word goes to (nullptr past the last one).
const CLI::Option* PositionalAt(const CLI::App& command, std::size_t index) {
  for (const CLI::Option* option :
       command.get_options([](const CLI::Option* o) { return o->get_positional() && !o->nonpositional(); })) {
    const auto takes = static_cast<std::size_t>(std::max(option->get_items_expected_max(), 1));
    if (index < takes) return option;
    index -= takes;
  }
  return nullptr;
}

// The spec a line names, as `tune run` would read it; null when it cannot be read or parsed, is
// not a regular file or is over 16 MiB (a completion must not make the shell wait).
Json ReadSpec(const std::string& file) {
  std::error_code error;
  if (!std::filesystem::is_regular_file(file, error) ||
      std::filesystem::file_size(file, error) > (std::uintmax_t{16} << 20) || error) {
    return Json();
  }
  try {
    return LoadSpecFile(file);
  } catch (const SpecError&) {
    return Json();
  }
}

bool IsExperiment(const std::filesystem::path& dir) {
  std::error_code error;
  return std::filesystem::is_regular_file(dir / "journal.jsonl", error);
}

// Directories, an experiment without its trailing '/' (it is a whole argument), and with nothing
// typed yet the experiments of the default storage too.
std::vector<std::string> CompleteExperiment(const std::string& typed) {
  std::vector<std::string> out;
  for (std::string path : CompletePath(typed, /*files=*/false)) {
    if (IsExperiment(ExpandHome(path))) path.pop_back();
    out.push_back(path);
  }
  if (typed.empty()) {
    const std::string storage = ExperimentSpec{}.storage.string() + "/";
    for (std::string path : CompletePath(storage, /*files=*/false)) {
      if (IsExperiment(path)) out.push_back(path.substr(0, path.size() - 1));
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

struct Walk {
  const CLI::App* command = nullptr;  // the subcommand, nullptr before one
  bool unknown = false;               // a word where the subcommand goes is none: nothing to offer
  std::map<const CLI::Option*, std::vector<std::string>> given;  // values seen so far
  const CLI::Option* awaiting = nullptr;  // the last word was this option, its value is next
  std::size_t positionals = 0;
  bool only_positionals = false;  // after "--"
};

Walk WalkLine(const CLI::App& app, const std::vector<std::string>& before) {
  Walk walk;
  for (const std::string& word : before) {
    if (walk.command == nullptr) {
      if (StartsWith(word, "-")) continue;
      for (const CLI::App* sub : app.get_subcommands([&](const CLI::App* s) { return s->get_name() == word; })) {
        walk.command = sub;
      }
      walk.unknown = walk.command == nullptr;
      if (walk.unknown) return walk;
      continue;
    }
    if (walk.awaiting != nullptr) {
      walk.given[walk.awaiting].push_back(word);
      walk.awaiting = nullptr;
    } else if (!walk.only_positionals && word == "--") {
      walk.only_positionals = true;
    } else if (!walk.only_positionals && word.size() > 1 && word[0] == '-') {
      const std::size_t equals = word.find('=');
      const CLI::Option* option = walk.command->get_option_no_throw(word.substr(0, equals));
      if (option == nullptr || !TakesValue(option)) continue;
      if (equals == std::string::npos) {
        walk.awaiting = option;
      } else {
        walk.given[option].push_back(word.substr(equals + 1));
      }
    } else if (const CLI::Option* positional = PositionalAt(*walk.command, walk.positionals++)) {
      walk.given[positional].push_back(word);
    }
  }
  return walk;
}

// Candidates for a value of `option`, `typed` so far.
Completions CompleteValue(const CLI::Option* option, const CompletionHints& hints, const Walk& walk,
                          std::string typed) {
  Completions out;
  const CompletionHint* hint = hints.Find(option);
  std::string head;  // of a comma list: the items before the one being typed
  if (hint != nullptr && hint->comma_list) {
    const std::size_t comma = typed.rfind(',');
    if (comma != std::string::npos) {
      head = typed.substr(0, comma + 1);
      typed = typed.substr(comma + 1);
    }
  }
  auto source = [&]() -> std::string {
    auto it = hint->source == nullptr ? walk.given.end() : walk.given.find(hint->source);
    return it == walk.given.end() || it->second.empty() ? "" : it->second.front();
  };
  std::vector<std::string> words;
  switch (hint == nullptr ? CompletionHint::kNone : hint->kind) {
    case CompletionHint::kNone:
      words = Matching(MemberSet(option), typed);
      break;
    case CompletionHint::kJsonFile:
      words = CompletePath(typed, /*files=*/true, ".json");
      out.paths = true;
      break;
    case CompletionHint::kDirectory:
      words = CompletePath(typed, /*files=*/false);
      out.paths = true;
      break;
    case CompletionHint::kExperiment:
      words = CompleteExperiment(typed);
      out.paths = true;
      break;
    case CompletionHint::kOverrides: {
      if (source().empty()) break;
      const std::string file = ExpandHome(source());
      const Json raw = ReadSpec(file);
      Json spec = raw;  // the keys of the composed spec (tuner/compose.h), when it composes
      try {
        std::vector<std::string> none;
        spec = ComposeSpec(raw, file, &none, /*multirun=*/false);
      } catch (const std::exception&) {
        // a broken defaults list: the file's own keys
      }
      words = CompleteOverride(spec, typed);
      const std::filesystem::path root = std::filesystem::path(file).parent_path();
      const std::size_t equals = typed.find('=');
      const std::string key = typed.substr(0, equals);
      const std::string sign = StartsWith(key, "+") ? "+" : "";
      for (const std::string& group : SpecGroups(raw, file)) {
        if (equals == std::string::npos && StartsWith(sign + group, typed)) {
          words.push_back(sign + group + "=");  // a group: its options after the '='
        } else if (equals != std::string::npos && key == sign + group) {
          for (const std::string& option : GroupOptions(root.empty() ? "." : root, group)) {
            if (StartsWith(key + "=" + option, typed)) words.push_back(key + "=" + option);
          }
        }
      }
      std::sort(words.begin(), words.end());
      break;
    }
    case CompletionHint::kShowColumn: {
      const std::string dir = source();
      if (dir.empty()) break;
      try {
        words = Matching(ShowColumns(LoadExperiment(ExpandHome(dir))), typed);
      } catch (const std::exception&) {
        // not an experiment (yet): nothing to offer
      }
      break;
    }
    case CompletionHint::kWords:
      words = Matching(hint->words, typed);
      break;
  }
  for (std::string& word : words) out.words.push_back(head + word);
  return out;
}

}  // namespace

std::vector<std::string> CompletePath(const std::string& word, bool files, const std::string& extension) {
  const std::size_t slash = word.rfind('/');
  const std::string dir = slash == std::string::npos ? "" : word.substr(0, slash + 1);
  const std::string stem = slash == std::string::npos ? word : word.substr(slash + 1);
  std::vector<std::string> out;
  std::error_code error;
  std::filesystem::directory_iterator entries(dir.empty() ? "." : ExpandHome(dir), error);
  if (error) return out;
  for (const auto& entry : entries) {
    const std::string name = entry.path().filename().string();
    if (!StartsWith(name, stem) || (stem.empty() && name[0] == '.')) continue;  // hidden unless asked
    std::error_code type_error;
    if (entry.is_directory(type_error)) {
      out.push_back(dir + name + "/");
    } else if (files && (extension.empty() ||
                         (name.size() >= extension.size() &&
                          name.compare(name.size() - extension.size(), extension.size(), extension) == 0))) {
      out.push_back(dir + name);
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> CompleteOverride(const Json& spec, const std::string& word) {
  if (!spec.is_object()) return {};
  const std::size_t equals = word.find('=');
  const std::string key = word.substr(0, equals);
  // The object the key's last segment is in.
  const std::vector<std::string> segments = Split(key, '.', /*keep_empty=*/true);
  const std::string& last = segments.back();
  const std::string path = key.substr(0, key.size() - last.size());  // up to and with its last '.'
  const Json* parent = &spec;
  for (std::size_t i = 0; i + 1 < segments.size(); ++i) {
    if (!parent->contains(segments[i]) || !(*parent)[segments[i]].is_object()) return {};
    parent = &(*parent)[segments[i]];
  }
  if (equals != std::string::npos) {  // key=...: the spec's value, to edit
    if (!parent->contains(last) || (*parent)[last].is_object()) return {};
    const Json& value = (*parent)[last];
    std::string text = value.dump();
    if (value.is_string()) {
      const std::string raw = value.get<std::string>();
      const bool json_like = Json::accept(raw) || raw.empty();
      if (!json_like) text = raw;
    }
    return Matching({key + "=" + text}, word);
  }
  std::vector<std::string> out;
  for (const auto& [name, value] : parent->items()) {
    if (!StartsWith(name, last)) continue;
    out.push_back(path + name + (value.is_object() && !value.empty() ? "." : "="));
  }
  std::sort(out.begin(), out.end());
  return out;
}

Completions Complete(const CLI::App& app, const CompletionHints& hints,
                     const std::vector<std::string>& words) {
  Completions out;
  if (words.empty()) return out;
  const std::string& typed = words.back();
  const Walk walk = WalkLine(app, {words.begin(), words.end() - 1});
  if (walk.unknown) return out;
  const CLI::App& command = walk.command != nullptr ? *walk.command : app;
  if (walk.awaiting != nullptr) return CompleteValue(walk.awaiting, hints, walk, typed);
  if (!walk.only_positionals && StartsWith(typed, "-")) {
    const std::size_t equals = typed.find('=');
    if (equals != std::string::npos) {  // --option=value
      const CLI::Option* option = command.get_option_no_throw(typed.substr(0, equals));
      if (option == nullptr || !TakesValue(option)) return out;
      Completions value = CompleteValue(option, hints, walk, typed.substr(equals + 1));
      for (std::string& word : value.words) word = typed.substr(0, equals + 1) + word;
      return value;
    }
    std::vector<std::string> names;
    for (const CLI::Option* option : command.get_options()) {
      for (const std::string& name : option->get_lnames()) names.push_back("--" + name);
      for (const std::string& name : option->get_snames()) names.push_back("-" + name);
    }
    out.words = Matching(names, typed);
    return out;
  }
  if (walk.command == nullptr) {
    std::vector<std::string> names;
    for (const CLI::App* sub : app.get_subcommands([](const CLI::App* s) { return !s->get_group().empty(); })) {
      names.push_back(sub->get_name());
    }
    out.words = Matching(names, typed);
    return out;
  }
  const CLI::Option* positional = PositionalAt(command, walk.positionals);
  if (positional == nullptr) return out;
  return CompleteValue(positional, hints, walk, typed);
}

const std::vector<std::string>& CompletionShells() {
  static const std::vector<std::string> kShells = {"bash", "fish", "zsh"};
  return kShells;
}

std::string CompletionScript(const std::string& shell) {
  // Each asks `tune __complete` (the command as typed, so build/bin/tune works too) with the
  // words up to the cursor; its first line says whether the answers are file names.
  if (shell == "bash") {
    // COMP_WORDS splits at '=' and ':', so the words are taken from the line itself, and an
    // answer gives bash only what follows the typed word's last '=' or ':' (what bash replaces).
    return R"SH(# tune completion for bash: eval "$(tune completion bash)" (docs/spec.md, "Shell completion")
_tune_complete() {
  local line=${COMP_LINE:0:COMP_POINT} IFS=$' \t\n'
  local -a words answer
  read -r -a words <<< "$line"
  [[ $line =~ [[:space:]]$ ]] && words+=("")
  local cur=${words[${#words[@]}-1]} head=""
  [[ $cur == *[=:]* ]] && head=${cur%"${cur##*[=:]}"}
  IFS=$'\n' answer=($("${words[0]}" __complete "${words[@]:1}" 2>/dev/null)) || return 0
  local kind=${answer[0]} word
  COMPREPLY=()
  for word in "${answer[@]:1}"; do
    word=${word#"$head"}
    if [[ $kind == :paths ]]; then
      word=$(printf '%q' "$word")
      [[ $word == '\~'* ]] && word=${word:1}  # the shell expands a leading ~ itself
    fi
    COMPREPLY+=("$word")
  done
  if ((${#COMPREPLY[@]} == 1)) && [[ ${COMPREPLY[0]} == *[=./] ]]; then
    compopt -o nospace 2>/dev/null
  fi
  return 0
}
complete -F _tune_complete tune
)SH";
  }
  if (shell == "zsh") {
    return R"SH(#compdef tune
# tune completion for zsh, after compinit: eval "$(tune completion zsh)" (docs/spec.md, "Shell completion")
_tune() {
  local -a answer spaced unspaced
  answer=("${(@f)$(${words[1]} __complete "${(@)words[2,CURRENT]}" 2>/dev/null)}")
  local kind=${answer[1]} word
  for word in "${(@)answer[2,-1]}"; do
    [[ -z $word ]] && continue
    if [[ $kind == :paths ]]; then  # quoted here, a leading ~ left for the shell to expand
      if [[ $word == '~'* ]]; then word="~${(q)word[2,-1]}"; else word=${(q)word}; fi
    fi
    if [[ $word == *[=./] ]]; then unspaced+=("$word"); else spaced+=("$word"); fi
  done
  (( ${#unspaced} )) && compadd -Q -S '' -- "${unspaced[@]}"
  (( ${#spaced} )) && compadd -Q -- "${spaced[@]}"
  return 0
}
compdef _tune tune
)SH";
  }
  if (shell == "fish") {
    return R"SH(# tune completion for fish: tune completion fish | source (docs/spec.md, "Shell completion")
function __tune_complete
    set -l args (commandline -opc)
    set -l command $args[1]
    set -e args[1]
    set -l current (commandline -ct)
    set -l answer ($command __complete $args "$current" 2>/dev/null)
    or return
    set -e answer[1]
    printf '%s\n' $answer
end
complete -c tune -f -a '(__tune_complete)'
)SH";
  }
  throw SpecError("completion", fmt::format("no completion for the shell \"{}\" (known: {})", shell,
                                            fmt::join(CompletionShells(), ", ")));
}

}  // namespace tune
