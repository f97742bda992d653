#include "search/nsga2.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <optional>
#include <random>
#include <string>
#include <unordered_map>

#include "search/hypervolume.h"
#include "search/unit_space.h"

namespace tune {
namespace {

class Nsga2Searcher : public ModelSearcher {
 public:
  Nsga2Searcher(const Space& space, const SearcherContext& context, const Nsga2Options& options,
                std::vector<std::vector<PointValue>> points)
      : ModelSearcher(space, context, std::move(points)),
        options_(options),
        objectives_(ObjectivesOf(context)),
        constraints_(context.constraints) {}

  void OnComplete(const std::string& trial_id, TrialStatus status, const Result* last) override {
    auto it = index_.find(trial_id);
    if (it == index_.end() || last == nullptr || status != TrialStatus::kTerminated) return;
    Trial& trial = trials_[it->second];
    trial.loss = Losses(*last, objectives_);
    if (!AllFinite(trial.loss)) {
      trial.loss.clear();
      return;
    }
    trial.violation = Violation(ConstraintValues(*last, constraints_));
    trial.done = true;
  }

 private:
  // Random configs until the first parents, then a child of them.
  Json Propose() override {
    UpdateParents();
    return parents_.empty() ? space_.Sample(rng_, 0) : Child();
  }

  void Register(const std::string& trial_id, const Json& config, bool proposed) override {
    (void)proposed;
    UpdateParents();  // (done by Propose() already unless the config is a point's)
    Trial trial;
    trial.generation = parent_generation_ + 1;
    trial.values = space_.Values(config);
    index_.emplace(trial_id, trials_.size());
    trials_.push_back(std::move(trial));
  }

  // The trials as columns: "ids", "generation", "values" (trials x parameters; null at the
  // positions "absent" lists), "loss" (trials x objectives; NaN: none), "violation", "done"; and
  // the parents with their ranks and crowding distances.
  std::optional<Json> SaveModel() const override {
    const std::size_t objectives = objectives_.size();
    Json generations = Json::array(), values = Json::array(), absent = Json::array(),
         done = Json::array();
    std::vector<double> losses, violations;
    for (const Trial& trial : trials_) {
      generations.push_back(trial.generation);
      for (const Json& value : trial.values) {
        if (value.is_discarded()) absent.push_back(values.size());
        values.push_back(value.is_discarded() ? Json() : value);
      }
      if (trial.loss.empty()) {
        losses.insert(losses.end(), objectives, std::numeric_limits<double>::quiet_NaN());
      } else {
        losses.insert(losses.end(), trial.loss.begin(), trial.loss.end());
      }
      violations.push_back(trial.violation);
      done.push_back(trial.done);
    }
    return Json{{"ids", IndexState(index_, trials_.size())},
                {"generation", std::move(generations)},
                {"values", std::move(values)},
                {"absent", std::move(absent)},
                {"loss", StateNumbers(losses)},
                {"violation", StateNumbers(violations)},
                {"done", std::move(done)},
                {"parents", parents_},
                {"rank", rank_},
                {"crowding", StateNumbers(crowding_)},
                {"parent_generation", parent_generation_}};
  }

  void LoadModel(const StateReader& in) override {
    const std::size_t n = in.Index("ids", &index_);
    const std::size_t parameters = space_.parameters().size(), objectives = objectives_.size();
    const Json& generations = in.Array("generation", n);
    const Json& values = in.Array("values", n * parameters);
    const Json& absent = in.Array("absent");
    const Json& done = in.Array("done", n);
    const std::vector<double> losses = in.Numbers("loss", n * objectives);
    const std::vector<double> violations = in.Numbers("violation", n);
    parent_generation_ = in.Integer("parent_generation", -1, INT64_MAX - 1);
    trials_.assign(n, Trial());
    for (std::size_t t = 0; t < n; ++t) {
      Trial& trial = trials_[t];
      trial.generation = in.IntegerAt(generations, t, "generation", 0, parent_generation_ + 1);
      trial.values.assign(values.begin() + static_cast<std::ptrdiff_t>(t * parameters),
                          values.begin() + static_cast<std::ptrdiff_t>((t + 1) * parameters));
      const auto first = losses.begin() + static_cast<std::ptrdiff_t>(t * objectives);
      if (!std::isnan(*first)) trial.loss.assign(first, first + static_cast<std::ptrdiff_t>(objectives));
      trial.violation = violations[t];
      if (!done[t].is_boolean()) in.Fail("done[" + std::to_string(t) + "]", "not true or false");
      trial.done = done[t].get<bool>();
    }
    const auto last = static_cast<std::int64_t>(n * parameters) - 1;
    for (std::size_t i = 0; i < absent.size(); ++i) {
      const auto at = static_cast<std::size_t>(in.IntegerAt(absent, i, "absent", 0, last));
      trials_[at / parameters].values[at % parameters] = Json(Json::value_t::discarded);
    }
    const Json& parents = in.Array("parents");
    const Json& ranks = in.Array("rank", parents.size());
    parents_.clear();
    rank_.clear();
    for (std::size_t i = 0; i < parents.size(); ++i) {
      parents_.push_back(static_cast<std::size_t>(
          in.IntegerAt(parents, i, "parents", 0, static_cast<std::int64_t>(n) - 1)));
      rank_.push_back(static_cast<int>(in.IntegerAt(ranks, i, "rank", 0, INT32_MAX)));
    }
    crowding_ = in.Numbers("crowding", parents.size());
  }

  struct Trial {
    std::int64_t generation = 0;
    std::vector<Json> values;  // per parameter of the space; discarded where absent
    std::vector<double> loss;
    double violation = 0;
    bool done = false;  // ended with every objective: usable as a parent
  };

  // Optuna's _collect_parent_population: every generation with population_size usable trials
  // makes the next parents from them and the previous parents.
  void UpdateParents() {
    const auto size = static_cast<std::size_t>(options_.population_size);
    while (true) {
      const std::int64_t generation = parent_generation_ + 1;
      std::vector<std::size_t> population;
      for (std::size_t t = 0; t < trials_.size(); ++t) {
        if (trials_[t].generation == generation && trials_[t].done) population.push_back(t);
      }
      if (population.size() < size) return;
      population.insert(population.end(), parents_.begin(), parents_.end());
      parents_ = SelectElite(population, size);
      parent_generation_ = generation;
    }
  }

  // The next parents from `population` (indices into trials_), kept in trial order as Optuna
  // reads its cached parent population back.
  std::vector<std::size_t> SelectElite(const std::vector<std::size_t>& population,
                                       std::size_t size) {
    std::vector<std::vector<double>> losses;
    std::vector<double> violations;
    for (std::size_t t : population) {
      losses.push_back(trials_[t].loss);
      violations.push_back(trials_[t].violation);
    }
    const EliteSelection selection = tune::SelectElite(losses, violations, size);
    std::vector<std::size_t> order(selection.chosen.size());
    std::iota(order.begin(), order.end(), std::size_t{0});
    std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
      return population[selection.chosen[a]] < population[selection.chosen[b]];
    });
    std::vector<std::size_t> elite;
    rank_.clear();
    crowding_.clear();
    for (std::size_t k : order) {
      elite.push_back(population[selection.chosen[k]]);
      rank_.push_back(selection.rank[k]);
      crowding_.push_back(selection.crowding[k]);
    }
    return elite;
  }

  // pool: positions in parents_; returns a position.
  std::size_t Tournament(const std::vector<std::size_t>& pool) {
    std::uniform_int_distribution<std::size_t> pick(0, pool.size() - 1);
    const std::size_t a = pool[pick(rng_)];
    const std::size_t b = pool[pick(rng_)];
    if (options_.crowded_tournament) {  // Deb's crowded comparison (rank, then spread)
      if (rank_[a] != rank_[b]) return rank_[a] < rank_[b] ? a : b;
      return crowding_[a] > crowding_[b] ? a : b;
    }
    const Trial& ta = trials_[parents_[a]];
    const Trial& tb = trials_[parents_[b]];
    if (ConstrainedDominates(ta.loss, ta.violation, tb.loss, tb.violation)) return a;
    return b;
  }

  Json Child() {
    std::uniform_real_distribution<double> unit(0.0, 1.0);
    std::vector<Json> values;
    if (unit(rng_) < options_.crossover_prob && parents_.size() >= 2) {
      std::vector<std::size_t> all(parents_.size());
      std::iota(all.begin(), all.end(), 0);
      const std::size_t first = Tournament(all);
      all.erase(all.begin() + static_cast<std::ptrdiff_t>(first));
      const std::size_t second = Tournament(all);
      const std::vector<Json>& a = trials_[parents_[first]].values;
      const std::vector<Json>& b = trials_[parents_[second]].values;
      for (std::size_t d = 0; d < a.size(); ++d) {
        values.push_back(unit(rng_) >= options_.swapping_prob ? b[d] : a[d]);
      }
    } else {
      std::uniform_int_distribution<std::size_t> pick(0, parents_.size() - 1);
      values = trials_[parents_[pick(rng_)]].values;
    }
    const double mutation =
        options_.mutation_prob >= 0
            ? options_.mutation_prob
            : 1.0 / std::max<double>(1.0, static_cast<double>(values.size()));
    for (Json& value : values) {
      // A discarded value is drawn at random by Assemble (as Optuna leaves a mutated parameter
      // to its independent sampler).
      if (unit(rng_) < mutation) value = Json(Json::value_t::discarded);
    }
    return space_.Assemble(values, &rng_);
  }

  Nsga2Options options_;
  std::vector<Objective> objectives_;
  std::vector<Constraint> constraints_;
  std::vector<Trial> trials_;
  std::unordered_map<std::string, std::size_t> index_;
  std::vector<std::size_t> parents_;  // indices into trials_
  std::vector<int> rank_;             // per parent: its non-dominated rank among the candidates
  std::vector<double> crowding_;      // per parent: its crowding distance within its rank
  std::int64_t parent_generation_ = -1;
};

Nsga2Options ParseNsga2(const OptionsReader& in, const SearcherContext& context) {
  Nsga2Options options;
  options.population_size =
      in.Integer("population_size", options.population_size, Range::AtLeast(2));
  options.crossover_prob = in.Number("crossover_prob", options.crossover_prob);
  in.Require(options.crossover_prob >= 0 && options.crossover_prob <= 1, "crossover_prob",
             "must be a probability in [0, 1]");
  options.swapping_prob = in.Number("swapping_prob", options.swapping_prob);
  in.Require(options.swapping_prob >= 0 && options.swapping_prob <= 1, "swapping_prob",
             "must be a probability in [0, 1]");
  if (in.Has("mutation_prob")) {
    options.mutation_prob = in.Number("mutation_prob", 0);
    in.Require(options.mutation_prob >= 0 && options.mutation_prob <= 1, "mutation_prob",
               "must be a probability in [0, 1]");
  }
  options.crowded_tournament =
      in.Choice("tournament", "crowded", {"crowded", "dominance"}) == "crowded";
  if (ObjectivesOf(context).empty()) {
    throw SpecError(in.PathOf("algorithm"), "nsga2 needs a metric to optimise");
  }
  return options;
}

}  // namespace

EliteSelection SelectElite(const std::vector<std::vector<double>>& losses,
                           const std::vector<double>& violations, std::size_t size) {
  EliteSelection out;
  if (losses.empty()) return out;
  const std::vector<int> ranks = ConstrainedRanks(losses, violations);
  const int worst = *std::max_element(ranks.begin(), ranks.end());
  for (int r = 0; r <= worst && out.chosen.size() < size; ++r) {
    std::vector<std::size_t> front;  // positions, in the population's order
    for (std::size_t i = 0; i < losses.size(); ++i) {
      if (ranks[i] == r) front.push_back(i);
    }
    Points points;
    for (std::size_t i : front) points.push_back(losses[i]);
    std::vector<std::size_t> order;  // indices into front
    const std::vector<double> distance = CrowdingDistance(points, &order);
    if (out.chosen.size() + front.size() >= size) {
      // Optuna's _crowding_distance_sort: the list as _calc_crowding_distance left it (`order`),
      // sorted by distance, then reversed.
      std::stable_sort(order.begin(), order.end(),
                       [&](std::size_t a, std::size_t b) { return distance[a] < distance[b]; });
      std::reverse(order.begin(), order.end());
      order.resize(size - out.chosen.size());
    }
    for (std::size_t k : order) {
      out.chosen.push_back(front[k]);
      out.rank.push_back(r);
      out.crowding.push_back(distance[k]);
    }
  }
  return out;
}

SearcherRegistry::Entry Nsga2Entry() {
  return ModelEntry<Nsga2Searcher>(
      "nsga2",
      {"population_size", "crossover_prob", "swapping_prob", "mutation_prob", "tournament"},
      &ParseNsga2);
}

}  // namespace tune
