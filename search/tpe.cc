// The TPE searcher (search/tpe.h): orchestration over the trial history. The densities are
// search/tpe_estimator.h, the parameters' coordinates search/tpe_dim.h.
//
// Per suggestion: Split() ranks the observations and assigns each trial to the good set, the bad
// set or neither (see "intermediate" in docs/tpe.md; with the constant liar, pending trials rank
// worst, in the bad set); Weights() gives each its Optuna default weight by age within its set;
// then either every dimension is proposed on its own (ProposeOne: fit l and g, draw candidates
// from l, keep the best l/g) or all at once (ProposeJoint, the same with joint estimators). The
// joint model is used from multivariate_after real observations on, but only when no pending
// trial is in the model: with ASHA and 8 concurrent trials it was far worse (docs/tpe.md), so
// parallel runs with the constant liar stay univariate unless multivariate is true. Width-free
// scoring likewise only without pending trials: it dilutes their narrow kernels in g(x), which
// is what keeps concurrent suggestions apart.
// Kept incrementally across suggestions: per-dimension sorted coordinates (as trials register),
// the ended trials' ranking keys in order (Rank, as trials end or report late), and each group's
// joint estimators (JointEstimator::Update); fitting the univariate ones is O(n) per dimension
// and suggestion. Cost: docs/tpe.md, "Cost".
#include "search/tpe.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <optional>
#include <random>
#include <stdexcept>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/state.h"
#include "search/hypervolume.h"
#include "search/tpe_dim.h"
#include "search/tpe_estimator.h"
#include "search/tpe_internal.h"
#include "search/unit_space.h"

namespace tune {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

class TpeSearcher : public ModelSearcher {
 public:
  TpeSearcher(const Space& space, const SearcherContext& context, const TpeOptions& tpe,
              const TpeInternalOptions& internal, std::vector<std::vector<PointValue>> points)
      : ModelSearcher(space, context, std::move(points)),
        tpe_(tpe),
        internal_(internal),
        metric_(context.metric),
        mode_(context.mode),
        objectives_(ObjectivesOf(context)),
        constraints_(context.constraints) {
    parzen_.prior_weight = tpe.prior_weight;
    parzen_.categorical_prior_weight = tpe.categorical_prior_weight;
    parzen_.consider_endpoints = tpe.consider_endpoints;
    for (const Parameter& parameter : space_.parameters()) dims_.push_back(MakeDim(parameter));
    sorted_.resize(dims_.size());
    sorted_x_.resize(dims_.size());
    // Optuna's group decomposition: parameters present on exactly the same trials (the same
    // branch conditions) form a group, modelled jointly on the trials that had them.
    const auto& parameters = space_.parameters();
    for (std::size_t d = 0; d < dims_.size(); ++d) {
      auto same = [&](const std::vector<std::size_t>& group) {
        const auto& a = parameters[group.front()].conditions;
        const auto& b = parameters[d].conditions;
        return a.size() == b.size() &&
               std::equal(a.begin(), a.end(), b.begin(), [](const Condition& x, const Condition& y) {
                 return x.grid == y.grid && x.parent == y.parent && x.branch == y.branch;
               });
      };
      auto it = std::find_if(groups_.begin(), groups_.end(), same);
      if (it == groups_.end()) {
        groups_.push_back({d});
      } else {
        it->push_back(d);
      }
    }
    joint_groups_.resize(groups_.size());
    for (std::size_t g = 0; g < groups_.size(); ++g) {
      std::vector<Dim>& dims = joint_groups_[g].dims;
      dims = dims_;
      for (Dim& dim : dims) dim.fixed = true;
      for (std::size_t d : groups_[g]) dims[d].fixed = dims_[d].fixed;
    }
  }

  void OnResult(const std::string& trial_id, const Result& result) override {
    auto it = index_.find(trial_id);
    if (it == index_.end()) return;
    Record(&trials_[it->second], result);
    if (trials_[it->second].state != State::kRunning) Rank(it->second);  // a late result
  }

  void OnComplete(const std::string& trial_id, TrialStatus status, const Result* last) override {
    auto it = index_.find(trial_id);
    if (it == index_.end()) return;
    Trial& trial = trials_[it->second];
    if (trial.state != State::kRunning) return;
    if (last != nullptr && trial.curve.empty()) Record(&trial, *last);
    switch (status) {
      case TrialStatus::kTerminated:
        trial.state = State::kDone;
        break;
      case TrialStatus::kStopped:
        trial.state = State::kPruned;
        break;
      default:
        trial.state = State::kFailed;
        break;
    }
    running_.erase(std::lower_bound(running_.begin(), running_.end(), it->second));
    Rank(it->second);
  }

 private:
  enum class State { kRunning, kDone, kPruned, kFailed };
  // Ranking key of an observation: lower is better, lexicographically.
  struct Key {
    int tier;           // 0: ranked by loss; 1: pruned (by budget, then loss); 2: infeasible (by
                        // violation, in `loss`); 3: pending (liar)
    double neg_budget;  // -budget reached (tier 1)
    double loss;
    std::size_t trial;
    bool operator<(const Key& other) const {
      if (tier != other.tier) return tier < other.tier;
      if (neg_budget != other.neg_budget) return neg_budget < other.neg_budget;
      if (loss != other.loss) return loss < other.loss;
      return trial < other.trial;
    }
  };
  struct Trial {
    std::vector<double> x;  // kernel-space coordinates (choice index for categoricals); NaN
                            // where the parameter was absent (another branch)
    State state = State::kRunning;
    std::vector<std::pair<double, double>> curve;  // (budget, loss), in report order
    std::vector<double> losses;  // every objective's loss at the last report with all of them
    double violation = 0;        // total constraint violation at that report (0: feasible)
    bool ranked = false;         // its key is in ranked_
    Key key{};                   // (when ranked)
  };
  static constexpr signed char kNone = -1, kBelow = 0, kAbove = 1;

  void Record(Trial* trial, const Result& result) {
    double value = result.Get(metric_);
    if (std::isnan(value)) return;
    std::vector<double> losses = Losses(result, objectives_);
    if (AllFinite(losses)) {
      trial->losses = std::move(losses);
      trial->violation = Violation(ConstraintValues(result, constraints_));
    }
    double budget = result.Get(tpe_.budget_attr);
    if (std::isnan(budget)) budget = static_cast<double>(result.training_iteration);
    // Only "budget" reads more than the last point of a curve.
    if (tpe_.intermediate != TpeOptions::Intermediate::kBudget) trial->curve.clear();
    trial->curve.emplace_back(budget, mode_ == Mode::kMax ? -value : value);
  }

  // The ranking key of an ended trial with a result (Split's order; tiers 0-2), if it has one.
  std::optional<Key> KeyOf(std::size_t t) const {
    const Trial& trial = trials_[t];
    if (trial.state == State::kRunning || trial.state == State::kFailed || trial.curve.empty()) {
      return std::nullopt;
    }
    const auto& [budget, loss] = trial.curve.back();
    if (trial.violation > 0) return Key{2, 0, trial.violation, t};  // after the feasible ones
    if (trial.state == State::kPruned && tpe_.intermediate == TpeOptions::Intermediate::kRank) {
      return Key{1, -budget, loss, t};
    }
    return Key{0, 0, loss, t};
  }

  // Keeps trial t's key in ranked_ up to date (after it ended or got a result once ended).
  void Rank(std::size_t t) {
    Trial& trial = trials_[t];
    if (trial.ranked) {
      ranked_.erase(std::lower_bound(ranked_.begin(), ranked_.end(), trial.key));
      trial.ranked = false;
    }
    const std::optional<Key> key = KeyOf(t);
    if (!key) return;
    ranked_.insert(std::upper_bound(ranked_.begin(), ranked_.end(), *key), *key);
    trial.ranked = true;
    trial.key = *key;
  }

  // The trials as columns (compact at 100,000 trials): "ids", "state" (State), "x" (trials x
  // dimensions), "curve_length" and "curve" (every (budget, loss) pair in a row), "losses"
  // (trials x objectives; NaN: none yet), "violation". The sorted coordinates follow from "x",
  // the rest (dimensions, groups, buffers) from the space and options.
  std::optional<Json> SaveModel() const override {
    const std::size_t objectives = objectives_.size();
    Json states = Json::array(), lengths = Json::array();
    std::vector<double> x, curve, losses, violation;
    x.reserve(trials_.size() * dims_.size());
    losses.reserve(trials_.size() * objectives);
    for (std::size_t t = 0; t < trials_.size(); ++t) {
      const Trial& trial = trials_[t];
      states.push_back(static_cast<int>(trial.state));
      x.insert(x.end(), trial.x.begin(), trial.x.end());
      lengths.push_back(trial.curve.size());
      for (const auto& [budget, loss] : trial.curve) {
        curve.push_back(budget);
        curve.push_back(loss);
      }
      if (trial.losses.empty()) {
        losses.insert(losses.end(), objectives, kNaN);
      } else {
        losses.insert(losses.end(), trial.losses.begin(), trial.losses.end());
      }
      violation.push_back(trial.violation);
    }
    return Json{{"ids", IndexState(index_, trials_.size())},
                {"state", std::move(states)},
                {"x", StateNumbers(x)},
                {"curve_length", std::move(lengths)},
                {"curve", StateNumbers(curve)},
                {"losses", StateNumbers(losses)},
                {"violation", StateNumbers(violation)}};
  }

  void LoadModel(const StateReader& in) override {
    const std::size_t n = in.Index("ids", &index_);
    const std::size_t objectives = objectives_.size();
    const Json& states = in.Array("state", n);
    const Json& lengths = in.Array("curve_length", n);
    const std::vector<double> x = in.Numbers("x", n * dims_.size());
    const std::vector<double> curve = in.Numbers("curve");
    const std::vector<double> losses = in.Numbers("losses", n * objectives);
    const std::vector<double> violation = in.Numbers("violation", n);
    trials_.assign(n, Trial());
    // The joint estimators' members are trial indices of the old history: fit afresh.
    for (JointGroup& joint : joint_groups_) {
      for (JointEstimator& estimator : joint.estimator) estimator = JointEstimator();
    }
    std::size_t at = 0;  // into curve
    for (std::size_t t = 0; t < n; ++t) {
      Trial& trial = trials_[t];
      trial.state = static_cast<State>(in.IntegerAt(states, t, "state", 0, 3));
      trial.x.assign(x.begin() + static_cast<std::ptrdiff_t>(t * dims_.size()),
                     x.begin() + static_cast<std::ptrdiff_t>((t + 1) * dims_.size()));
      const auto length = static_cast<std::size_t>(in.IntegerAt(
          lengths, t, "curve_length", 0, static_cast<std::int64_t>((curve.size() - at) / 2)));
      for (std::size_t i = 0; i < length; ++i, at += 2) trial.curve.emplace_back(curve[at], curve[at + 1]);
      const auto first = losses.begin() + static_cast<std::ptrdiff_t>(t * objectives);
      if (objectives > 0 && !std::isnan(*first)) trial.losses.assign(first, first + static_cast<std::ptrdiff_t>(objectives));
      trial.violation = violation[t];
    }
    if (at != curve.size()) in.Fail("curve", "longer than the curve lengths say");
    ranked_.clear();
    running_.clear();
    for (std::size_t t = 0; t < n; ++t) {
      if (trials_[t].state == State::kRunning) running_.push_back(t);
      if (const std::optional<Key> key = KeyOf(t)) {
        ranked_.push_back(*key);
        trials_[t].ranked = true;
        trials_[t].key = *key;
      }
    }
    std::sort(ranked_.begin(), ranked_.end());
    // Each dimension's trials by coordinate, ties by trial (the order Register() inserts in).
    std::vector<std::pair<double, std::size_t>> by_x;
    for (std::size_t d = 0; d < dims_.size(); ++d) {
      by_x.clear();
      for (std::size_t t = 0; t < n; ++t) {
        const double value = x[t * dims_.size() + d];
        if (!std::isnan(value)) by_x.emplace_back(value, t);
      }
      std::sort(by_x.begin(), by_x.end());  // -0.0 and 0.0 tie, as in Register()'s upper_bound
      sorted_[d].resize(by_x.size());
      sorted_x_[d].resize(by_x.size());
      for (std::size_t i = 0; i < by_x.size(); ++i) std::tie(sorted_x_[d][i], sorted_[d][i]) = by_x[i];
    }
  }

  void Register(const std::string& trial_id, const Json& config, bool proposed) override {
    (void)proposed;
    Trial trial;
    const auto& parameters = space_.parameters();
    const std::vector<Json> values = space_.Values(config);
    for (std::size_t d = 0; d < dims_.size(); ++d) {
      trial.x.push_back(values[d].is_discarded() ? kNaN : FromJson(parameters[d], dims_[d], values[d]));
    }
    const std::size_t index = trials_.size();
    trials_.push_back(std::move(trial));
    running_.push_back(trials_.size() - 1);
    index_.emplace(trial_id, index);
    for (std::size_t d = 0; d < dims_.size(); ++d) {
      auto& order = sorted_[d];
      auto& coordinates = sorted_x_[d];
      const double x = trials_[index].x[d];
      if (std::isnan(x)) continue;  // absent: not part of this parameter's model
      auto at = std::upper_bound(coordinates.begin(), coordinates.end(), x) - coordinates.begin();
      order.insert(order.begin() + at, index);
      coordinates.insert(coordinates.begin() + at, x);
    }
  }

  // Assigns every trial to kBelow, kAbove or kNone; returns the number of real (not liar)
  // observations.
  std::size_t Split(std::vector<signed char>* group) {
    if (objectives_.size() > 1) return SplitMultiObjective(group);
    group->assign(trials_.size(), kNone);
    if (tpe_.intermediate == TpeOptions::Intermediate::kBudget) return SplitByBudget(group);
    // The ended trials in ranking order are kept as they end (ranked_); pending trials rank
    // after them, by trial (the liar's tier 3). The first `below` of that order are good.
    const std::size_t real = ranked_.size();
    const std::size_t pending = tpe_.constant_liar ? running_.size() : 0;
    const std::size_t n = real + pending;
    const std::size_t below = GoodCount(n);
    for (std::size_t i = 0; i < real; ++i) (*group)[ranked_[i].trial] = i < below ? kBelow : kAbove;
    for (std::size_t j = 0; j < pending; ++j) {
      (*group)[running_[j]] = real + j < below ? kBelow : kAbove;
    }
    return real;
  }

  // How many of n ranked observations (pending ones included) form the good set, one objective:
  // ceil(gamma n), or Optuna's default min(ceil(n / 10), 25).
  std::size_t GoodCount(std::size_t n) const {
    const std::size_t below =
        tpe_.gamma > 0 ? static_cast<std::size_t>(std::ceil(tpe_.gamma * static_cast<double>(n)))
                       : std::min<std::size_t>((n + 9) / 10, 25);
    return std::min(below, n);
  }

  // Split() with "intermediate": "budget" (BOHB): every trial that reached the budget ranked by
  // its loss there (BudgetKeys), pending ones after them with the liar.
  std::size_t SplitByBudget(std::vector<signed char>* group) {
    std::vector<Key>& keys = keys_;
    keys.clear();
    const std::size_t real = BudgetKeys(&keys);
    if (tpe_.constant_liar) {
      for (std::size_t t : running_) keys.push_back({3, 0, 0, t});
    }
    const std::size_t n = keys.size();
    const std::size_t below = GoodCount(n);
    std::nth_element(keys.begin(), keys.begin() + static_cast<std::ptrdiff_t>(below), keys.end());
    for (std::size_t i = 0; i < n; ++i) (*group)[keys[i].trial] = i < below ? kBelow : kAbove;
    return real;
  }

  // MOTPE (Optuna's _split_trials with several objectives): of the n ended trials, ceil(gamma n)
  // (gamma 0.1 by default, no cap) go below: the feasible ones by non-dominated rank, the rank
  // that does not fit whole cut by greedy hypervolume subset selection; then infeasible ones by
  // total violation. The rest, and pending trials with the constant liar, go above.
  std::size_t SplitMultiObjective(std::vector<signed char>* group) {
    group->assign(trials_.size(), kNone);
    std::vector<std::size_t> feasible, infeasible;
    for (std::size_t t = 0; t < trials_.size(); ++t) {
      const Trial& trial = trials_[t];
      if (trial.state == State::kRunning) {
        if (tpe_.constant_liar) (*group)[t] = kAbove;
        continue;
      }
      if (trial.state == State::kFailed || trial.losses.empty()) continue;
      (trial.violation > 0 ? infeasible : feasible).push_back(t);
      (*group)[t] = kAbove;
    }
    const std::size_t n = feasible.size() + infeasible.size();
    std::size_t below = static_cast<std::size_t>(
        std::ceil((tpe_.gamma > 0 ? tpe_.gamma : 0.1) * static_cast<double>(n)));
    below = std::min(below, n);
    Points losses;
    for (std::size_t t : feasible) losses.push_back(trials_[t].losses);
    const std::vector<std::size_t> good = BestByRankAndHypervolume(losses, below);
    for (std::size_t i : good) (*group)[feasible[i]] = kBelow;
    std::size_t taken = good.size();
    std::stable_sort(infeasible.begin(), infeasible.end(), [&](std::size_t a, std::size_t b) {
      return trials_[a].violation < trials_[b].violation;
    });
    for (std::size_t k = 0; taken < below && k < infeasible.size(); ++k, ++taken) {
      (*group)[infeasible[k]] = kBelow;
    }
    return n;
  }

  // BOHB: the largest budget at least max(n_startup_trials, d + 1) ended trials reached (all of
  // them when fewer), and each such trial's loss at that budget.
  std::size_t BudgetKeys(std::vector<Key>* keys) {
    std::vector<double> reached;
    for (const Trial& trial : trials_) {
      if (trial.state == State::kDone || trial.state == State::kPruned) {
        if (!trial.curve.empty()) reached.push_back(MaxBudget(trial));
      }
    }
    if (reached.empty()) return 0;
    std::size_t need = std::max<std::size_t>(static_cast<std::size_t>(tpe_.n_startup_trials),
                                             dims_.size() + 1);
    need = std::clamp<std::size_t>(need, 1, reached.size());
    std::nth_element(reached.begin(), reached.begin() + static_cast<std::ptrdiff_t>(need - 1),
                     reached.end(), std::greater<double>());
    const double budget = reached[need - 1];
    for (std::size_t t = 0; t < trials_.size(); ++t) {
      const Trial& trial = trials_[t];
      if ((trial.state != State::kDone && trial.state != State::kPruned) || trial.curve.empty()) {
        continue;
      }
      if (MaxBudget(trial) < budget) continue;
      double loss = trial.curve.front().second;
      for (const auto& [b, l] : trial.curve) {
        if (b <= budget) loss = l;
      }
      keys->push_back({0, 0, loss, t});
    }
    return keys->size();
  }

  static double MaxBudget(const Trial& trial) {
    double top = -kInf;
    for (const auto& point : trial.curve) top = std::max(top, point.first);
    return top;
  }

  // Weights by age inside each group (trial order = age).
  // With several objectives the good set's weights are all 1 (Optuna 5.0).
  void Weights(const std::vector<signed char>& group, std::size_t n_below, std::size_t n_above,
               std::vector<double>* out) const {
    std::vector<double>& weights = *out;
    weights.assign(trials_.size(), 0.0);
    std::size_t rank[2] = {0, 0};
    const std::size_t size[2] = {n_below, n_above};
    for (std::size_t t = 0; t < trials_.size(); ++t) {
      if (group[t] == kNone) continue;
      auto g = static_cast<std::size_t>(group[t]);
      const std::size_t age = rank[g]++;
      weights[t] = g == kBelow && objectives_.size() > 1 ? 1.0 : DefaultWeight(age, size[g]);
    }
  }

  // The window (TpeOptions::window, docs/tpe.md "Long histories"): past `window` members, group
  // `g` keeps its pending trials (the liar's; few) and its newest ended ones up to the window,
  // and the kept ones' weights are scaled so that they sum to what all the ended ones weighed
  // (the prior keeps its share). The rest leave the model (kNone). Kernel work per suggestion is
  // then bounded; what stays linear in the history are single passes (the split, the weights,
  // the per-dimension sorted lists). Newest rather than a random subsample: on bench/suite/ at
  // 1,000 trials with a window of 200 the uniform subsample and the best-half-plus-uniform one
  // lost far more regret (bench/README-search.md); internal_.subsample_mode selects them.
  void Subsample(signed char g, std::vector<signed char>* group, std::vector<double>* weights) {
    const auto cap = static_cast<std::size_t>(tpe_.window);
    if (cap == 0) return;
    // Most of the time the set fits: counted from `group` alone (no pass over the trials).
    std::size_t members = 0;
    for (signed char member : *group) members += member == g;
    if (members <= cap) return;
    std::vector<std::size_t>& ended = subsample_;
    ended.clear();
    std::size_t pending = 0;
    for (std::size_t t = 0; t < trials_.size(); ++t) {
      if ((*group)[t] != g) continue;
      if (trials_[t].state == State::kRunning) {
        ++pending;
      } else {
        ended.push_back(t);
      }
    }
    const std::size_t keep = std::max(cap - std::min(pending, cap / 2), std::size_t{1});
    if (ended.size() <= keep) return;
    std::vector<char>& chosen = chosen_;
    chosen.assign(ended.size(), 0);
    // Newest `recent` of the ended trials (trial order is age), the others uniformly (Floyd).
    const int mode = internal_.subsample_mode;
    const std::size_t recent = mode == 0 ? keep : mode == 2 ? keep / 2 : 0;
    for (std::size_t i = ended.size() - recent; i < ended.size(); ++i) chosen[i] = 1;
    const std::size_t pool = ended.size() - recent;
    for (std::size_t j = pool - (keep - recent); j < pool; ++j) {
      const std::size_t i = std::uniform_int_distribution<std::size_t>(0, j)(rng_);
      chosen[chosen[i] ? j : i] = 1;
    }
    double total = 0, kept = 0;
    for (std::size_t i = 0; i < ended.size(); ++i) {
      const std::size_t t = ended[i];
      total += (*weights)[t];
      if (chosen[i]) {
        kept += (*weights)[t];
      } else {
        (*group)[t] = kNone;
        (*weights)[t] = 0;
      }
    }
    for (std::size_t i = 0; i < ended.size(); ++i) {
      if (chosen[i]) (*weights)[ended[i]] *= total / kept;
    }
  }

  Json Propose() override {
    std::vector<signed char>& group = group_;
    const std::size_t real = Split(&group);
    if (real < static_cast<std::size_t>(tpe_.n_startup_trials) || real == 0) {
      return space_.Sample(rng_, 0);
    }
    std::size_t n_below = 0, n_above = 0;
    for (signed char g : group) {
      if (g == kBelow) ++n_below;
      if (g == kAbove) ++n_above;
    }
    // Width-free scoring and the joint model only without liars (see the top of this file),
    // and with several objectives neither, as Optuna 5.0's MOTPE (docs/search.md).
    const bool motpe = objectives_.size() > 1 && internal_.motpe_as_optuna;
    parzen_.width_free = internal_.width_free_density && n_below + n_above == real && !motpe;
    parzen_.prior_neighbour =
        !motpe && internal_.no_prior_neighbour != 1 && internal_.no_prior_neighbour != 3;
    parzen_above_ = parzen_;
    parzen_above_.prior_neighbour =
        !motpe && internal_.no_prior_neighbour != 1 && internal_.no_prior_neighbour != 2;
    std::vector<double>& weights = weights_;
    Weights(group, n_below, n_above, &weights);
    Subsample(kBelow, &group, &weights);
    Subsample(kAbove, &group, &weights);
    std::vector<double> chosen(dims_.size(), 0.0);
    const bool joint = tpe_.multivariate ||
                       (!motpe && real >= static_cast<std::size_t>(tpe_.multivariate_after) &&
                        n_below + n_above == real);
    if (joint) {
      for (std::size_t g = 0; g < groups_.size(); ++g) ProposeJoint(g, group, weights, &chosen);
    } else {
      for (std::size_t d = 0; d < dims_.size(); ++d) chosen[d] = ProposeOne(d, group, weights);
    }
    std::vector<Json> values(dims_.size());
    const auto& parameters = space_.parameters();
    for (std::size_t d = 0; d < dims_.size(); ++d) {
      const Dim& dim = dims_[d];
      double value = dim.categorical ? chosen[d] : Snap(dim, chosen[d]);
      values[d] = ToJson(parameters[d], dim, value);
    }
    return space_.Assemble(values);
  }

  // Univariate TPE on dimension d; returns the kernel-space coordinate (or choice index).
  double ProposeOne(std::size_t d, const std::vector<signed char>& group,
                    const std::vector<double>& weights) {
    const Dim& dim = dims_[d];
    if (dim.fixed) return dim.categorical ? 0.0 : dim.low;
    std::vector<double>* mus = mus_;
    std::vector<double>* raw = raw_;
    for (int g = 0; g < 2; ++g) {
      mus[g].clear();
      raw[g].clear();
    }
    const std::vector<std::size_t>& order = sorted_[d];
    const std::vector<double>& coordinates = sorted_x_[d];
    for (std::size_t i = 0; i < order.size(); ++i) {
      const std::size_t t = order[i];
      if (group[t] == kNone) continue;
      auto g = static_cast<std::size_t>(group[t]);
      mus[g].push_back(coordinates[i]);
      raw[g].push_back(weights[t]);
    }
    const std::int64_t candidates = tpe_.n_ei_candidates;
    double best = 0, best_score = -kInf;
    if (dim.categorical) {
      std::vector<int> choices[2];
      for (int g = 0; g < 2; ++g) {
        for (double m : mus[g]) choices[g].push_back(static_cast<int>(m));
      }
      CategoricalKernels below = FitCategorical(dim, choices[0], raw[0], parzen_);
      CategoricalKernels above = FitCategorical(dim, choices[1], raw[1], parzen_above_);
      for (std::int64_t i = 0; i < candidates; ++i) {
        std::size_t c = Pick(below.cumulative, rng_);
        double score = std::log(below.probs[c]) - std::log(above.probs[c]);
        if (score > best_score) {
          best_score = score;
          best = static_cast<double>(c);
        }
      }
      return best;
    }
    NumericKernels below = FitNumeric(dim, mus[0], raw[0], parzen_);
    NumericKernels above = FitNumeric(dim, mus[1], raw[1], parzen_above_);
    // Binned dimensions repeat candidates (few values): each distinct one is scored once.
    std::vector<std::pair<double, double>> scored;
    for (std::int64_t i = 0; i < candidates; ++i) {
      auto k = static_cast<Eigen::Index>(Pick(below.cumulative, rng_));
      double x = SampleKernel(dim, below, k, rng_);
      double score = 0;
      auto seen = std::find_if(scored.begin(), scored.end(),
                               [&](const std::pair<double, double>& p) { return p.first == x; });
      if (dim.binned && seen != scored.end()) {
        score = seen->second;
      } else {
        score = MixtureLogDensity(dim, below, x) - MixtureLogDensity(dim, above, x);
        if (dim.binned) scored.emplace_back(x, score);
      }
      if (score > best_score) {
        best_score = score;
        best = x;
      }
    }
    return best;
  }

  // Multivariate TPE: joint estimators over the dimensions of groups_[index] (parameters present
  // on the same trials), one kernel per trial that had them; writes their entries of `chosen`.
  // The group's estimators persist across suggestions and are updated, not refitted.
  void ProposeJoint(std::size_t index, const std::vector<signed char>& group,
                    const std::vector<double>& weights, std::vector<double>* chosen) {
    JointGroup& joint = joint_groups_[index];
    const std::vector<std::size_t>& in_group = groups_[index];
    const std::size_t first = in_group.front();
    const bool conditional = !space_.parameters()[first].conditions.empty();
    for (JointMembers& members : joint.members) {
      members.keys.clear();
      members.weights.clear();
    }
    for (std::size_t t = 0; t < trials_.size(); ++t) {
      if (group[t] == kNone || (conditional && std::isnan(trials_[t].x[first]))) continue;
      JointMembers& members = joint.members[static_cast<std::size_t>(group[t])];
      members.keys.push_back(t);
      members.weights.push_back(weights[t]);
    }
    const RowOf row = [this](std::size_t t) { return trials_[t].x.data(); };
    JointEstimator& below = joint.estimator[0];
    JointEstimator& above = joint.estimator[1];
    below.Update(joint.dims, joint.members[0], row, parzen_, internal_.joint_scott_widths);
    above.Update(joint.dims, joint.members[1], row, parzen_above_, internal_.joint_scott_widths);
    // All candidates are drawn first, then scored (scoring draws no random numbers).
    std::vector<std::vector<double>> drawn(static_cast<std::size_t>(tpe_.n_ei_candidates));
    for (std::vector<double>& x : drawn) x = below.Sample(rng_);
    double best_score = -kInf;
    const std::vector<double>* best = &drawn.front();
    for (const std::vector<double>& x : drawn) {
      const double score = below.LogPdf(x) - above.LogPdf(x);
      if (score > best_score) {
        best_score = score;
        best = &x;
      }
    }
    for (std::size_t d : in_group) (*chosen)[d] = (*best)[d];
  }

  // A group's joint model: its dimensions (the others fixed) and the good and bad estimators
  // with their members, kept from one suggestion to the next.
  struct JointGroup {
    std::vector<Dim> dims;
    JointEstimator estimator[2];
    JointMembers members[2];
  };

  TpeOptions tpe_;
  TpeInternalOptions internal_;
  ParzenOptions parzen_;  // from tpe_; width_free set per suggestion
  ParzenOptions parzen_above_;  // the bad set's: parzen_ unless x_no_prior_neighbour says otherwise
  std::string metric_;
  Mode mode_;
  std::vector<Objective> objectives_;    // metric_/mode_ first; several: MOTPE
  std::vector<Constraint> constraints_;  // Optuna's constrained TPE
  std::vector<Dim> dims_;
  std::vector<std::vector<std::size_t>> groups_;  // dimensions present on the same trials
  std::vector<Trial> trials_;
  std::unordered_map<std::string, std::size_t> index_;
  std::vector<std::vector<std::size_t>> sorted_;  // per dimension: trials by coordinate
  std::vector<std::vector<double>> sorted_x_;     // per dimension: the sorted coordinates
  std::vector<double> mus_[2], raw_[2];           // ProposeOne's buffers (good, bad)
  std::vector<JointGroup> joint_groups_;          // per group
  std::vector<Key> ranked_;                       // ended trials' keys, ascending (Rank)
  std::vector<std::size_t> running_;              // running trials, ascending
  std::vector<Key> keys_;                         // SplitByBudget's buffer
  std::vector<signed char> group_;                // Propose's buffers
  std::vector<double> weights_;
  std::vector<std::size_t> subsample_;            // Subsample's buffers
  std::vector<char> chosen_;
};

TpeOptions ParseTpe(const OptionsReader& in, const SearcherContext& context) {
  TpeOptions tpe;
  tpe.n_startup_trials = in.Integer("n_startup_trials", tpe.n_startup_trials, Range::AtLeast(0));
  tpe.n_ei_candidates = in.Integer("n_ei_candidates", tpe.n_ei_candidates, Range::AtLeast(1));
  if (in.Has("gamma")) {
    tpe.gamma = in.Number("gamma", tpe.gamma);
    in.Require(tpe.gamma > 0 && tpe.gamma <= 1, "gamma",
               "must be a number in (0, 1] (the fraction of trials in the good set)");
  }
  tpe.prior_weight = in.Number("prior_weight", tpe.prior_weight, Range::Above(0));
  tpe.categorical_prior_weight =
      in.Number("categorical_prior_weight", tpe.categorical_prior_weight, Range::Above(0));
  // With several objectives (MOTPE) on by default: higher hypervolume on ZDT1-3 at 100 and 300
  // trials, DTLZ2 within 0.25 % (docs/search.md); one objective keeps Optuna's off (the suite's).
  tpe.consider_endpoints =
      in.Bool("consider_endpoints", tpe.consider_endpoints || ObjectivesOf(context).size() > 1);
  tpe.multivariate = in.Bool("multivariate", tpe.multivariate);
  tpe.multivariate_after =
      in.Integer("multivariate_after", tpe.multivariate_after, Range::AtLeast(0));
  tpe.window = in.Integer("window", tpe.window, Range::AtLeast(0));
  tpe.constant_liar = in.Bool("constant_liar", context.max_concurrent != 1);
  const std::string intermediate = in.Choice("intermediate", "last", {"last", "rank", "budget"});
  tpe.intermediate = intermediate == "rank"     ? TpeOptions::Intermediate::kRank
                     : intermediate == "budget" ? TpeOptions::Intermediate::kBudget
                                                : TpeOptions::Intermediate::kLast;
  tpe.budget_attr = in.String("budget_attr", tpe.budget_attr);
  if (context.metric.empty()) {
    throw SpecError(in.PathOf("algorithm"), "tpe needs a metric to optimise");
  }
  return tpe;
}

std::unique_ptr<Searcher> MakeTpe(const Space& space, const SearcherContext& context,
                                  const TpeOptions& tpe, const TpeInternalOptions& internal) {
  CheckNoGrid("tpe", space);
  return std::make_unique<TpeSearcher>(space, context, tpe, internal,
                                       ParsePointsToEvaluate(space, context));
}

}  // namespace

SearcherRegistry::Entry TpeEntry() {
  return {"tpe",
          {"n_startup_trials", "n_ei_candidates", "gamma", "prior_weight",
           "categorical_prior_weight", "consider_endpoints", "multivariate", "multivariate_after",
           "window", "constant_liar", "intermediate", "budget_attr"},
          [](const OptionsReader& in, const SearcherContext& context) {
            return std::any(ParseTpe(in, context));
          },
          [](const std::any& options, const SearcherContext& context) {
            return MakeTpe(*context.space, context, std::any_cast<const TpeOptions&>(options),
                           TpeInternalOptions{});
          }};
}

TpeInternalOptions TakeTpeInternalKeys(Json* search, bool* any) {
  TpeInternalOptions internal;
  *any = false;
  for (auto it = search->begin(); it != search->end();) {
    const std::string key = it.key();
    if (key.rfind("x_", 0) != 0) {
      ++it;
      continue;
    }
    const double value = it.value().get<double>();
    if (key == "x_joint_scott_widths") {
      internal.joint_scott_widths = value != 0;
    } else if (key == "x_width_free") {
      internal.width_free_density = value != 0;
    } else if (key == "x_motpe_as_optuna") {
      internal.motpe_as_optuna = value != 0;
    } else if (key == "x_no_prior_neighbour") {
      internal.no_prior_neighbour = static_cast<int>(value);
    } else if (key == "x_subsample_mode") {
      internal.subsample_mode = static_cast<int>(value);
    } else {
      throw std::invalid_argument("unknown benchmark key " + key);
    }
    *any = true;
    it = search->erase(it);
  }
  return internal;
}

std::unique_ptr<Searcher> MakeTpeSearcher(const Space& space, const SearcherConfig& config,
                                          const TpeInternalOptions& internal) {
  return MakeTpe(space, config.context, std::any_cast<const TpeOptions&>(config.options),
                 internal);
}

}  // namespace tune
