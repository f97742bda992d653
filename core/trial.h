// A trial as the tuner tracks it: identity, configuration, status and its latest result.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/types.h"

namespace tune {

// A trial's latest result: read as a std::optional<Result> (`if (last)`, `last->metrics`,
// `*last`, `last = result`, `last.reset()`). Compact() (the tuner calls it when the trial
// reaches a final status) keeps its metrics as their JSON text, ~60 bytes instead of a std::map
// node per metric (~100 bytes each): an experiment holds 100,000 finished trials. Reading the
// Result (*, ->) parses the text back once, for good; Get() and Decoded() read a compact one
// without that, for passes over every trial.
class LastResult {
 public:
  LastResult() = default;
  LastResult(const Result& result) : has_(true), result_(result) {}  // NOLINT: as optional's
  LastResult(const LastResult& other);
  LastResult(LastResult&&) noexcept = default;
  LastResult& operator=(const LastResult& other);
  LastResult& operator=(LastResult&&) noexcept = default;
  LastResult& operator=(const Result& result);
  LastResult& operator=(Result&& result);
  LastResult& operator=(std::nullopt_t);

  bool has_value() const { return has_; }
  explicit operator bool() const { return has_; }
  void reset() { *this = std::nullopt; }
  const Result& operator*() const { return Expanded(); }
  Result& operator*() { return Expanded(); }
  const Result* operator->() const { return &Expanded(); }
  Result* operator->() { return &Expanded(); }

  // Result::Get of the result (NaN when there is none), never expanding a compact one.
  double Get(std::string_view attr) const;
  // A copy of the result (has_value() must hold), never expanding a compact one.
  Result Decoded() const;
  // Keeps the metrics as text until they are read again.
  void Compact();
  bool compact() const { return !packed_.empty(); }

 private:
  Result& Expanded() const;
  bool has_ = false;
  mutable Result result_;       // metrics null while compact
  mutable std::string packed_;  // the metrics' JSON text while compact, else empty
};

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
  LastResult last_result;          // see LastResult: compact once the trial is final
  std::optional<std::string> last_checkpoint;
  std::int64_t last_checkpoint_iteration = 0;  // the training_iteration it was reported at
  int num_exploits = 0;            // PBT: how often it restarted from another trial
  double time_total_s = 0;         // running time over all attempts

  // What the trial gets: MergeConfig(*trainer, params). Built when asked, not stored: an
  // experiment may hold 100,000 trials, and the trainer section would be copied into each.
  Json config() const;
};

// Trial ids as numbers, for structures that hold many of them compactly (TrialIndex below, the
// schedulers' TrialIdSet): the prefix and width are learned from the first id that ends in
// digits ("t_00001": "t_", 5); an id has a number only when it is exactly the prefix and its
// number zero-padded to that width ("t_00001", "t_123456", not "t_000001"), so no two ids share
// one.
class TrialIdNumbers {
 public:
  static constexpr std::size_t kNone = static_cast<std::size_t>(-1);
  // Learns the prefix and width from `id` unless learned already (an id without trailing digits
  // teaches nothing).
  void Learn(std::string_view id);
  // Sets them (a snapshot's); prefix null: nothing learned (width must then be 0).
  void Set(const std::string* prefix, std::size_t width);
  // `id`'s number, or kNone.
  std::size_t NumberOf(std::string_view id) const;
  bool learned() const { return learned_; }
  const std::string& prefix() const { return prefix_; }
  std::size_t width() const { return width_; }

 private:
  bool learned_ = false;
  std::string prefix_;
  std::size_t width_ = 0;
};

// Trial ids to positions (0, 1, ...), for the tuner's and the views' lookups by id. Ids of the
// form <prefix><number zero-padded to a fixed width> ("t_00001": the tuner's) are held in one
// vector by number (8 bytes an id: a map node would be ~80, 8 MB at 100,000 trials); any other id
// goes to a hash map. The prefix and width are the first id's; an id is held by number only when
// it is exactly the prefix and its number padded to that width, so no two ids share a number.
class TrialIndex {
 public:
  static constexpr std::size_t kNone = static_cast<std::size_t>(-1);
  // Sets `id`'s position (replacing an earlier one).
  void Set(const std::string& id, std::size_t position);
  // `id`'s position, or kNone.
  std::size_t Find(std::string_view id) const;
  // `id`'s position; throws std::out_of_range naming it when there is none.
  std::size_t At(std::string_view id) const;
  std::size_t size() const { return size_; }

 private:
  TrialIdNumbers numbers_;
  std::vector<std::size_t> by_number_;  // kNone: no such id
  std::unordered_map<std::string, std::size_t> others_;
  std::size_t size_ = 0;
};

// The directory of `trial` in the experiment at `experiment_dir`: trial.dir, else <experiment_dir>/<id>.
std::filesystem::path DirOf(const Trial& trial, const std::filesystem::path& experiment_dir);

// A trial's config: `trainer` without "command", with `params` merged in (objects merged key by
// key, params winning).
Json MergeConfig(const Json& trainer, const Json& params);

}  // namespace tune
