// The program around one Fit(): what api.h's TrialMain and tune-trainer's main() share.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "trainer/api.h"
#include "trainer/config.h"

namespace tune {

// glibc's mmap/trim thresholds raised so freed activations stay mapped (../shared
// PERFORMANCE-NOTES: 4x for bf16); call once at the start of main().
void TuneMalloc();

// The config a trial runs with: `session_config` (under the tuner) or the JSON file args[1],
// then the key=value overrides and --find-batch-size that follow.
Json TrialJson(const std::vector<std::string>& args, const Json* session_config);

// Connects to the tuner when run by it, reads the config (TrialJson), parses it with `parse`,
// seeds, builds the parts with `factory`, fits and says done. Returns the exit status (api.h's
// TrialMain).
int RunTrialProgram(const std::vector<std::string>& args, const std::function<TrainerConfig(const Json&)>& parse,
                    const TrialFactory& factory);

}  // namespace tune
