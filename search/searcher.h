// Searchers propose trial configurations and learn from their results.
//
// A searcher is pure logic over trial history: no sockets, clocks or processes. The tuner calls
// Suggest() when it has room for a new trial; OnResult() for every report; OnComplete() once when
// the trial ends (finished, pruned or failed). Replaying the same calls in the same order gives
// the same suggestions, which is how `tune resume` rebuilds a searcher.
//
// Example:
//   tune::Space space = tune::ParseSpace(spec["space"]);
//   auto searcher = tune::MakeSearcher(space, options);   // "grid"/"random" "tpe" (search/tpe.h)
//   tune::Suggestion s = searcher->Suggest("t_00001");
//   if (s.kind == tune::Suggestion::Kind::kConfig) Launch(s.config);
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "search/space.h"
#include "core/types.h"

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

struct SearcherOptions {
  std::string metric;  // the metric to optimise ("val_acc")
  Mode mode = Mode::kMax;
  std::int64_t num_samples = 1;     // Ray Tune's num_samples (grid repeated that often)
  std::int64_t max_concurrent = 0;  // trials running at once; 0 = unlimited
  std::uint64_t seed = 0;
  Json points_to_evaluate = Json::array();  // configs to try first; they replace samples
  Json algorithm = Json::object();          // the whole "search" object of space.json
  std::string path = "search";              // JSON path of `algorithm`, for error messages
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
};

// Builds the searcher named by options.algorithm["algorithm"] ("random" when absent; "grid" and
// "random" behave like Ray Tune's BasicVariantGenerator). Throws SpecError for unknown names or
// options, naming options.path: an unknown key (with a did-you-mean), or an option of another
// algorithm (e.g. "n_startup_trials" without "tpe"). "tpe" is search/tpe.h.
// The seed is options.seed; a "seed" key in options.algorithm is only validated (the caller
// copies it into options.seed).
// points_to_evaluate (partial configs, checked against the space; SpecError names e.g.
// "points_to_evaluate[2].lr") come first, missing leaves sampled. As in Ray Tune each point
// replaces one of the num_samples repetitions of the grid and is crossed with the grid
// parameters it leaves open; with no grid, a point replaces one sample and TotalTrials() stays
// num_samples (or the number of points, if larger). Without points, TotalTrials() is
// num_samples * GridSize().
std::unique_ptr<Searcher> MakeSearcher(const Space& space, const SearcherOptions& options);

// What every searcher checks of its options: num_samples >= 1, and points_to_evaluate an array
// of configs, each parsed against `space`. Throws SpecError naming the path
// ("points_to_evaluate[2].lr").
std::vector<std::vector<PointValue>> ParsePointsToEvaluate(const Space& space,
                                                           const SearcherOptions& options);

}  // namespace tune
