// Searchers propose trial configurations and learn from their results.
//
// A searcher is pure logic over trial history: no sockets, clocks or processes. The tuner calls
// Suggest() when it has room for a new trial; OnResult() for every report; OnComplete() once when
// the trial ends (finished, pruned or failed). Replaying the same calls in the same order gives
// the same suggestions, which is how `tune resume` rebuilds a searcher.
//
// Adding a searcher: its class, an Entry (name, keys, parse, make) and one line in the table in
// search/searcher.cc. "random" and "grid" are search/basic_searcher.h, "tpe" search/tpe.h,
// "cmaes" search/cmaes.h, "gp" search/gp.h.
//
// Example:
//   SearcherConfig config = ParseSearcherOptions(spec["search"], "search",
//                                                {"val_acc", Mode::kMax, /*num_samples=*/50});
//   std::unique_ptr<Searcher> searcher = MakeSearcher(space, config);  // throws SpecError
//   Suggestion s = searcher->Suggest("t_00001");
//   if (s.kind == Suggestion::Kind::kConfig) Launch(s.config);
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/options.h"
#include "core/pareto.h"
#include "core/types.h"
#include "search/space.h"

namespace tune {

struct Suggestion {
  enum class Kind {
    kConfig,    // `config` holds the sampled parameters (nested object, shaped like the space)
    kWait,      // nothing now; ask again after some trial reports or completes
    kFinished,  // the searcher has no more configurations to give
  };
  Kind kind = Kind::kFinished;
  Json config;
};

class Searcher {
 public:
  virtual ~Searcher() = default;

  // The parameters for new trial `trial_id`. Never returns a config outside the space.
  virtual Suggestion Suggest(const std::string& trial_id) = 0;
  // Every result a trial reports, in order.
  virtual void OnResult(const std::string& trial_id, const Result& result) {
    (void)trial_id;
    (void)result;
  }
  // Once per trial, when it reaches a final status; `last` is its last result or null.
  virtual void OnComplete(const std::string& trial_id, TrialStatus status, const Result* last) {
    (void)trial_id;
    (void)status;
    (void)last;
  }
  // How many trials the searcher will propose in all, or -1 when unbounded by itself.
  virtual std::int64_t TotalTrials() const { return -1; }

  // Resume snapshots (tuner/snapshot.h): the searcher's whole state, such that LoadState() of it
  // on a fresh searcher made from the same spec (before any other call) goes on exactly as this
  // one would: the same suggestions for the same calls. nullopt (the default): it keeps no
  // snapshot, and `tune resume` replays the whole journal through Suggest() instead.
  virtual std::optional<Json> SaveState() const { return std::nullopt; }
  // Throws std::runtime_error when `state` is not what SaveState() writes.
  virtual void LoadState(const Json& state);
};

// What the experiment gives every searcher besides its own options.
struct SearcherContext {
  std::string metric;  // the metric to optimise ("val_acc"); the first objective's
  Mode mode = Mode::kMax;
  std::int64_t num_samples = 1;     // Ray Tune's num_samples (grid repeated that often), >= 1
  std::int64_t max_concurrent = 0;  // trials running at once; 0 = unlimited
  std::uint64_t seed = 0;           // a "seed" key in the search object replaces it
  // Partial configs to try first, each checked against the space by MakeSearcher (SpecError
  // names e.g. "points_to_evaluate[2].lr"). As in Ray Tune each point replaces one of the
  // num_samples repetitions of the grid and is crossed with the grid parameters it leaves open.
  Json points_to_evaluate = Json::array();
  // The space, for the table's make functions: MakeSearcher sets it from its argument for the
  // call; leave it null.
  const Space* space = nullptr;
  // Every objective when there are several (metric/mode are the first's); empty or one entry:
  // one objective, metric/mode. "tpe" (MOTPE), "nsga2", "random" and "grid" take several.
  std::vector<Objective> objectives;
  // Bounds on reported metrics (core/pareto.h): "tpe", "nsga2" and "gp" (probability of
  // feasibility, as Optuna's GPSampler) prefer configs that keep them; the others ignore them.
  std::vector<Constraint> constraints;
};

using SearcherRegistry = Registry<Searcher, SearcherContext>;
// Typed, validated options: config.name() ("tpe"), config.options (that searcher's options
// struct, e.g. TpeOptions), config.context (with the seed the search object chose).
using SearcherConfig = SearcherRegistry::Config;

// The context's objectives: `objectives`, or {metric, mode} when it is empty (none when the
// metric is empty too).
std::vector<Objective> ObjectivesOf(const SearcherContext& context);

// The table of searchers: random, grid, tpe, nsga2, cmaes, gp (search/searcher.cc). Parse with
// ParseSearcherOptions: the search object names its searcher with "algorithm", not "type".
const SearcherRegistry& Searchers();

// Parses the "search" object of space.json (null means random search with its defaults):
// "algorithm" names the searcher ("random" when absent; "grid" and "random" are the same, Ray
// Tune's BasicVariantGenerator), "seed" (>= 0) is every searcher's, the other keys are the named
// searcher's. Throws SpecError naming `path` or path.key: unknown keys (with a did-you-mean), an
// option of another searcher ("search.gamma: applies only to algorithm \"tpe\", not \"random\""),
// bad values; and "num_samples" or "points_to_evaluate" when the context's are invalid.
SearcherConfig ParseSearcherOptions(const Json& search, const std::string& path,
                                    const SearcherContext& context);
// Builds the searcher. Throws SpecError for what needs the space to check: points_to_evaluate
// ("points_to_evaluate[2].lr: ..."), grid_search with "tpe", "cmaes" or "gp" ("space.opt: ..."),
// a grid repeated too often. TotalTrials(): num_samples * GridSize() for grid/random without
// points (each point replaces one repetition of the grid); num_samples for the others.
std::unique_ptr<Searcher> MakeSearcher(const Space& space, const SearcherConfig& config);

// Both at once, from the older flat options (tests, benchmarks): the context plus the "search"
// object and its path.
struct SearcherOptions : SearcherContext {
  Json algorithm = Json::object();  // the whole "search" object of space.json
  std::string path = "search";      // JSON path of `algorithm`, for error messages
};
std::unique_ptr<Searcher> MakeSearcher(const Space& space, const SearcherOptions& options);

// context.points_to_evaluate parsed against `space`, for the searchers' make functions. Throws
// SpecError naming the point's path ("points_to_evaluate[2].lr").
std::vector<std::vector<PointValue>> ParsePointsToEvaluate(const Space& space,
                                                           const SearcherContext& context);

}  // namespace tune
