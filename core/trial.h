// A trial as the tuner tracks it: identity, configuration, status and its latest result.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/types.h"

namespace tune {

struct Trial {
  std::string id;                  // "t_00001": also the name of its directory
  Json params = Json::object();    // the sampled parameters (what the searcher proposed)
  // The spec's trainer section, one copy shared by every trial of the experiment; null = none.
  std::shared_ptr<const Json> trainer;
  TrialStatus status = TrialStatus::kPending;
  // Its directory when that is not <experiment>/<id> (tune show sets it); empty = <experiment>/<id>,
  // which is what the tuner's trials use: a std::filesystem::path keeps a list of its components,
  // ~450 bytes per trial, 45 MB at 100,000 trials. Read it through DirOf.
  std::filesystem::path dir;

  std::int64_t pid = 0;            // of the running process (rank 0), 0 when not running
  std::string gpus;                // CUDA_VISIBLE_DEVICES it was given ("" when none)
  std::string location;            // where it runs when not here: Slurm nodes ("n1", "n[1-2]")
  int num_failures = 0;            // failed attempts so far
  std::string error;               // why it failed (last attempt), shown in the table

  std::int64_t num_results = 0;
  std::optional<Result> last_result;
  std::optional<std::string> last_checkpoint;
  std::int64_t last_checkpoint_iteration = 0;  // the training_iteration it was reported at
  int num_exploits = 0;            // PBT: how often it restarted from another trial
  double time_total_s = 0;         // running time over all attempts

  // What the trial gets: MergeConfig(*trainer, params). Built when asked, not stored: an
  // experiment may hold 100,000 trials, and the trainer section would be copied into each.
  Json config() const;
};

// The directory of `trial` in the experiment at `experiment_dir`: trial.dir, else <experiment_dir>/<id>.
std::filesystem::path DirOf(const Trial& trial, const std::filesystem::path& experiment_dir);

// A trial's config: `trainer` without "command", with `params` merged in (objects merged key by
// key, params winning).
Json MergeConfig(const Json& trainer, const Json& params);

}  // namespace tune
