// Config composition (Hydra's defaults list and config groups): a spec is built from several
// files, and the command line chooses among alternatives by name.
//
// A spec's top-level "defaults" is a list, applied in order, each merged over what came before
// (objects key by key, anything else replaced):
//   "FILE"              another spec file (".json" may be left out), e.g. a shared base
//   {"GROUP": "OPTION"} the file GROUP/OPTION.json, merged at GROUP's package: its path with '/'
//                       read as '.' ("trainer/optimizer" -> trainer.optimizer); null: none
//   "_self_"            the file's own keys (when absent, they come last and win)
// Paths are relative to the directory of the spec given to `tune run` (the config root),
// whichever file names them; an included file may have defaults of its own.
//
// On the command line `GROUP=OPTION` chooses a group's option (GROUP in a defaults list),
// `+GROUP=OPTION` adds a group the lists lack, `GROUP=null` leaves it out; with multirun,
// `GROUP=a,b` (a group under trainer/) sweeps the options: a grid over the composed objects in
// the space, so each trial's trainer section has exactly one option's keys. Other overrides are
// left for ApplyOverride (tuner/spec.h), applied after composition.
//
// Example:  space.json {"defaults": ["base", {"trainer/optimizer": "adam"}], "num_samples": 8}
//           trainer/optimizer/adam.json {"type": "adam", "betas": [0.9, 0.99]}
//   std::vector<std::string> overrides = {"trainer/optimizer=sgd", "num_samples=4"};
//   Json spec = tune::ComposeSpec(tune::LoadSpecFile("space.json"), "space.json", &overrides, false);
//   // spec: base.json's keys, then trainer.optimizer from sgd.json, then num_samples 8;
//   // overrides == {"num_samples=4"}
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "core/types.h"  // Json

namespace tune {

// `raw` (the contents of `spec_file`) with its defaults resolved and removed. Takes the group
// assignments out of `*overrides` and applies them. Throws SpecError naming the file and the
// entry ("space.json: defaults[1]: no option \"sgdx\" in group trainer/optimizer (known: adam,
// sgd)"), an include cycle, an override of a group none of the lists has (without '+'), or a
// multirun over a group outside trainer/.
Json ComposeSpec(const Json& raw, const std::filesystem::path& spec_file,
                 std::vector<std::string>* overrides, bool multirun);

// The options of GROUP under `root` (its .json files, without the extension), sorted.
std::vector<std::string> GroupOptions(const std::filesystem::path& root, const std::string& group);
// The groups the defaults lists of `raw` (and of the files they include) name, sorted; files
// that cannot be read are skipped.
std::vector<std::string> SpecGroups(const Json& raw, const std::filesystem::path& spec_file);

}  // namespace tune
