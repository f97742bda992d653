// What the model-based searchers share, private to search/: the Suggest() flow of all four (TPE,
// NSGA-II, CMA-ES, GP: ModelSearcher) and, for CMA-ES and GP, the numeric parameters every trial
// has, in unit coordinates, and a log of trials and their values.
//
// Unit coordinates: a parameter's kernel-space value (search/tpe_dim.h: log for log domains;
// discrete domains widened by half a step) mapped linearly onto [0, 1]. A unit point maps back to
// the nearest value of the domain (Snap), so integers and quantized values round.
//
// Example:
//   std::vector<UnitDim> dims = UnitDims(space);   // {"lr": loguniform [1e-4, 1]} -> one dim
//   Json lr = FromUnit(space, dims[0], 0.5);       // 0.01
#pragma once

#include <any>
#include <cstdint>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/state.h"
#include "core/types.h"
#include "search/searcher.h"
#include "search/space.h"
#include "search/tpe_dim.h"

namespace tune {

struct UnitDim {
  std::size_t parameter = 0;  // index into Space::parameters()
  Dim dim;
};

// The parameters a numeric model covers: present on every trial (no conditions), not a choice,
// with more than one value. Their order is parameters() order.
std::vector<UnitDim> UnitDims(const Space& space);

double ToUnit(const UnitDim& dim, const Json& value);
Json FromUnit(const Space& space, const UnitDim& dim, double u);
// Unit coordinates of the discrete value nearest to u (u itself for continuous dims).
double SnapUnit(const UnitDim& dim, double u);

// A config: the dims set from unit point `u`, random draws for the rest (choices, conditional
// parameters: Optuna's independent sampling).
Json ConfigWith(const Space& space, const std::vector<UnitDim>& dims, const std::vector<double>& u,
                std::mt19937_64& rng);

// Trials in suggestion order with their state and value (the metric turned into a loss: lower
// is better) and, given constraints, their constraint values at the same report. Ended trials
// are complete (a value from their last result), failed or pruned.
class TrialLog {
 public:
  enum class State { kRunning, kComplete, kPruned, kFailed };
  struct Entry {
    Json config;
    State state = State::kRunning;
    double loss = 0;  // the last reported value, NaN when none
    std::vector<double> constraint_values;  // at that report (core/pareto.h), one per constraint
    std::int64_t tag = 0;  // the searcher's (CMA-ES: the generation)
  };

  TrialLog(std::string metric, Mode mode, std::vector<Constraint> constraints = {})
      : metric_(std::move(metric)), mode_(mode), constraints_(std::move(constraints)) {}

  std::size_t Add(const std::string& trial_id, Json config, std::int64_t tag = 0);
  void OnResult(const std::string& trial_id, const Result& result);
  // Returns the entry's index when the call completed a running trial, else -1.
  std::ptrdiff_t OnComplete(const std::string& trial_id, TrialStatus status, const Result* last);

  const std::vector<Entry>& entries() const { return entries_; }
  std::size_t size() const { return entries_.size(); }

  // Resume snapshots: the entries as columns, "ids" (null: an id used again later), "configs",
  // "state", "loss", "constraint_values" (entries x constraints; NaN: none reported yet), "tag".
  Json SaveState() const;
  void LoadState(const StateReader& in);

 private:
  std::string metric_;
  Mode mode_;
  std::vector<Constraint> constraints_;
  std::vector<Entry> entries_;
  std::unordered_map<std::string, std::size_t> index_;
};

// The Suggest() of the model-based searchers (TPE, NSGA-II, CMA-ES, GP): kFinished once
// num_samples trials were suggested, then the points_to_evaluate in order (PointConfig), then the
// searcher's Propose() (its startup rule, pending trials and model are its own); each config is
// Register()ed under its trial id before Suggest returns it.
class ModelSearcher : public Searcher {
 public:
  Suggestion Suggest(const std::string& trial_id) final;
  std::int64_t TotalTrials() const final { return num_samples_; }

  // {"rng", "next_point", "suggested", "model": SaveModel()}; nullopt when SaveModel() is.
  std::optional<Json> SaveState() const final;
  void LoadState(const Json& state) final;

 protected:
  ModelSearcher(const Space& space, const SearcherContext& context,
                std::vector<std::vector<PointValue>> points);

  // The next config when no point of points_to_evaluate is left.
  virtual Json Propose() = 0;
  // Records the new trial; `proposed`: its config came from Propose(), not from a point.
  virtual void Register(const std::string& trial_id, const Json& config, bool proposed) = 0;
  // The subclass's part of a resume snapshot (everything but rng_ and the counters above), and
  // its inverse on a fresh searcher (errors through `in`). nullopt: no snapshot.
  virtual std::optional<Json> SaveModel() const { return std::nullopt; }
  virtual void LoadModel(const StateReader& in) { in.Fail("model", "not kept by this searcher"); }

  Space space_;
  std::int64_t num_samples_;
  std::mt19937_64 rng_;  // seeded with the context's seed

 private:
  std::vector<std::vector<PointValue>> points_;
  std::size_t next_point_ = 0;
  std::int64_t suggested_ = 0;
};

// The searchers that need a metric name it in their error: "search.algorithm: gp needs a metric
// to optimise". Also rejects grid_search parameters, like TPE.
void CheckModelSearcher(const std::string& name, const OptionsReader& in,
                        const SearcherContext& context);
void CheckNoGrid(const std::string& name, const Space& space);

// A config for an entry of points_to_evaluate: its values, random draws for the rest.
Json PointConfig(const Space& space, const std::vector<PointValue>& point, std::mt19937_64& rng);

// The table entry of a model-based searcher class S(space, context, options, points) with
// options parsed by `parse` (which checks the metric): it refuses grid_search and parses
// points_to_evaluate.
template <typename S, typename Options>
SearcherRegistry::Entry ModelEntry(const std::string& name, std::vector<std::string> keys,
                                   Options (*parse)(const OptionsReader&, const SearcherContext&)) {
  return {name, std::move(keys),
          [parse](const OptionsReader& in, const SearcherContext& context) {
            return std::any(parse(in, context));
          },
          [name](const std::any& options, const SearcherContext& context) -> std::unique_ptr<Searcher> {
            CheckNoGrid(name, *context.space);
            return std::make_unique<S>(*context.space, context,
                                       std::any_cast<const Options&>(options),
                                       ParsePointsToEvaluate(*context.space, context));
          }};
}

// Inverse of the standard normal CDF, 0 < p < 1 (Acklam's approximation refined by one Halley
// step: relative error ~1e-15).
double NormalQuantile(double p);
double NormalCdf(double z);

}  // namespace tune
