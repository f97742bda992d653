// Shell completion of the `tune` command line in bash, zsh and fish (Hydra's "dynamic command
// line tab completion"). `eval "$(tune completion bash)"` (or zsh; `tune completion fish |
// source`) installs it in a shell; the script hands the words typed so far to the hidden
// `tune __complete WORD... CURRENT`, which answers from the command line's own definition
// (CLI11: subcommands, options, an option's allowed values) and from what the line names:
//   tune <TAB>                                      run resume show train completion
//   tune run <TAB>                                  .json files (and directories to reach one)
//   tune run space.json tr<TAB>                     trainer.        (the spec's keys)
//   tune run space.json trainer.max<TAB>            trainer.max_epochs=
//   tune run space.json trainer.max_epochs=<TAB>    trainer.max_epochs=10   (its value there)
//   tune resume <TAB>, tune show <TAB>              experiments under tune_results/, directories
//   tune show tune_results/exp --sort <TAB>         that experiment's columns (params, metrics)
//   tune run x.json --launcher <TAB>                local slurm     (CLI11's IsMember set)
// Nothing is run and nothing is written: a file that cannot be read completes to nothing.
//
// Example:
//   tune::CompletionHints hints;
//   hints.Set(space, {tune::CompletionHint::kJsonFile});
//   hints.Set(overrides, {tune::CompletionHint::kOverrides, space});
//   tune::Completions answer = tune::Complete(app, hints, {"run", "space.json", "tr"});
//   // answer.words == {"trainer."}
#pragma once

#include <map>
#include <string>
#include <vector>

#include "core/types.h"  // Json

namespace CLI {
class App;
class Option;
}  // namespace CLI

namespace tune {

// What the value of an option or positional is, where its CLI11 definition does not say.
struct CompletionHint {
  enum Kind {
    kNone,
    kJsonFile,    // a .json file (directories are offered to reach one)
    kDirectory,   // a directory
    kExperiment,  // an experiment directory: those under ./tune_results first, then any directory
    kOverrides,   // key=value by dotted path into the JSON file given to `source`
    kShowColumn,  // a column of the experiment given (first) to `source` (tune show's names)
    kWords,       // one of `words`
  };
  Kind kind = kNone;
  const CLI::Option* source = nullptr;  // kOverrides, kShowColumn: the option naming the file
  std::vector<std::string> words;       // kWords
  bool comma_list = false;              // the value is a comma-separated list of such items
};

class CompletionHints {
 public:
  void Set(const CLI::Option* option, CompletionHint hint) { hints_[option] = std::move(hint); }
  const CompletionHint* Find(const CLI::Option* option) const {
    auto it = hints_.find(option);
    return it == hints_.end() ? nullptr : &it->second;
  }

 private:
  std::map<const CLI::Option*, CompletionHint> hints_;
};

struct Completions {
  std::vector<std::string> words;  // each replaces the whole current word, sorted
  bool paths = false;              // they are file names (the shell quotes what needs it)
};

// The candidates for the last of `words` (the word being typed, "" for a new one), the words
// before it being the command line after the program's name. Relative paths are from the
// current directory.
Completions Complete(const CLI::App& app, const CompletionHints& hints,
                     const std::vector<std::string>& words);

// The pieces Complete uses. `word` is the text typed so far.
// Dotted keys of `spec` ("trainer." for an object, "trainer.max_epochs=" for a value, arrays as
// values), or, once `word` has its "=", the key's value in the spec ("key=10"; a string as it is,
// quoted only when it would parse as JSON).
std::vector<std::string> CompleteOverride(const Json& spec, const std::string& word);
// Entries of the directory `word` names up to its last '/' that start with the rest: directories
// with a trailing '/', files when `files` (only names ending in `extension`, when given).
std::vector<std::string> CompletePath(const std::string& word, bool files,
                                      const std::string& extension = "");

// The script `tune completion SHELL` prints. Throws SpecError for another shell.
std::string CompletionScript(const std::string& shell);
// The shells it knows: bash, fish, zsh.
const std::vector<std::string>& CompletionShells();

}  // namespace tune
