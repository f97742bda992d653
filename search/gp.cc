// The GP searcher (search/gp.h): the trial history as unit-coordinate rows, the model
// (search/gp_model.h) and the maximisation of its acquisition.
#include "search/gp.h"

#include <LBFGSB.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <optional>
#include <random>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "search/gp_model.h"
#include "search/truncnorm.h"
#include "search/unit_space.h"

namespace tune {
namespace {

using Eigen::MatrixXd;
using Eigen::VectorXd;

class GpSearcher : public ModelSearcher {
 public:
  GpSearcher(const Space& space, const SearcherContext& context, const GpOptions& options,
             std::vector<std::vector<PointValue>> points)
      : ModelSearcher(space, context, std::move(points)),
        options_(options),
        log_(context.metric, context.mode, context.constraints),
        numeric_(UnitDims(space_)),
        model_({}) {
    const auto& parameters = space_.parameters();
    for (std::size_t i = 0; i < parameters.size(); ++i) {
      const Domain& domain = parameters[i].domain;
      if (parameters[i].conditions.empty() && domain.kind == DomainKind::kChoice &&
          domain.values.size() > 1) {
        categorical_.push_back(i);
      }
    }
    for (std::size_t k = 0; k < numeric_.size(); ++k) {
      // Integers beyond 2^52 values cannot be indexed exactly in a double: searched as
      // continuous and rounded.
      const Dim& d = numeric_[k].dim;
      (d.step > 0 && d.count < (std::int64_t{1} << 52) ? discrete_ : continuous_).push_back(k);
    }
    std::vector<bool> is_categorical(numeric_.size(), false);
    is_categorical.resize(numeric_.size() + categorical_.size(), true);
    model_ = GpModel(is_categorical);
    model_.set_fixed_noise(options_.deterministic_objective);
    constraint_models_.assign(context.constraints.size(), GpModel(is_categorical));
    for (GpModel& model : constraint_models_) model.set_fixed_noise(options_.deterministic_objective);
    constraint_thresholds_.assign(context.constraints.size(), 0.0);
  }

  void OnResult(const std::string& trial_id, const Result& result) override {
    log_.OnResult(trial_id, result);
  }

  void OnComplete(const std::string& trial_id, TrialStatus status, const Result* last) override {
    log_.OnComplete(trial_id, status, last);
  }

 private:
  void Register(const std::string& trial_id, const Json& config, bool proposed) override {
    (void)proposed;
    rows_.push_back(Row(config));
    log_.Add(trial_id, config);
  }

  // The log, the kernel parameters each model's next fit starts from and the history size of the
  // last fit; the rows follow from the configs, the rest is recomputed by every suggestion.
  std::optional<Json> SaveModel() const override {
    Json constraints = Json::array();
    for (const GpModel& model : constraint_models_) constraints.push_back(ParamsState(model.params()));
    return Json{{"log", log_.SaveState()},
                {"fit_size", fit_size_},
                {"params", ParamsState(model_.params())},
                {"constraint_params", std::move(constraints)}};
  }

  void LoadModel(const StateReader& in) override {
    log_.LoadState(in.Object("log"));
    rows_.clear();
    for (const TrialLog::Entry& entry : log_.entries()) rows_.push_back(Row(entry.config));
    fit_size_ = static_cast<std::size_t>(
        in.Integer("fit_size", 0, static_cast<std::int64_t>(log_.size())));
    model_.set_params(ReadParams(in.Object("params")));
    const Json& constraints = in.Array("constraint_params", constraint_models_.size());
    for (std::size_t c = 0; c < constraint_models_.size(); ++c) {
      const std::string key = "constraint_params[" + std::to_string(c) + "]";
      if (!constraints[c].is_object()) in.Fail(key, "not an object");
      constraint_models_[c].set_params(ReadParams(StateReader(constraints[c], in.path() + "." + key)));
    }
  }

  static Json ParamsState(const GpParams& params) {
    return Json{{"theta", StateNumbers(std::vector<double>(params.theta.data(),
                                                          params.theta.data() + params.theta.size()))},
                {"scale", StateNumber(params.scale)},
                {"noise", StateNumber(params.noise)}};
  }

  GpParams ReadParams(const StateReader& in) const {
    GpParams params;
    const std::vector<double> theta = in.Numbers("theta", static_cast<std::size_t>(Dims()));
    params.theta = Eigen::Map<const VectorXd>(theta.data(), Dims());
    params.scale = in.Number("scale");
    params.noise = in.Number("noise");
    return params;
  }

  Eigen::Index Dims() const { return static_cast<Eigen::Index>(numeric_.size() + categorical_.size()); }

  // A config's coordinates: numeric dims in unit space, then choice indices.
  VectorXd Row(const Json& config) const {
    const std::vector<Json> values = space_.Values(config);
    VectorXd row(Dims());
    for (std::size_t k = 0; k < numeric_.size(); ++k) {
      row[static_cast<Eigen::Index>(k)] = ToUnit(numeric_[k], values[numeric_[k].parameter]);
    }
    for (std::size_t c = 0; c < categorical_.size(); ++c) {
      const std::size_t i = categorical_[c];
      row[static_cast<Eigen::Index>(numeric_.size() + c)] = static_cast<double>(
          std::max<std::ptrdiff_t>(0, Space::OptionIndex(space_.parameters()[i].domain, values[i])));
    }
    return row;
  }

  // A uniformly random point of the modelled coordinates.
  VectorXd RandomRow() {
    VectorXd row(Dims());
    for (std::size_t k = 0; k < numeric_.size(); ++k) row[static_cast<Eigen::Index>(k)] = Uniform01(rng_);
    for (std::size_t c = 0; c < categorical_.size(); ++c) {
      const auto size = static_cast<double>(space_.parameters()[categorical_[c]].domain.values.size());
      row[static_cast<Eigen::Index>(numeric_.size() + c)] =
          std::min(std::floor(Uniform01(rng_) * size), size - 1);
    }
    return row;
  }

  // Integer and quantized coordinates onto their values' unit positions.
  VectorXd Snapped(VectorXd row) const {
    for (std::size_t k = 0; k < numeric_.size(); ++k) {
      auto d = static_cast<Eigen::Index>(k);
      row[d] = SnapUnit(numeric_[k], row[d]);
    }
    return row;
  }

  Json Propose() override {
    std::vector<std::size_t> complete, pending;
    for (std::size_t t = 0; t < log_.size(); ++t) {
      const TrialLog::State state = log_.entries()[t].state;
      if (state == TrialLog::State::kComplete) complete.push_back(t);
      if (state == TrialLog::State::kRunning) pending.push_back(t);
    }
    if (static_cast<std::int64_t>(complete.size()) < std::max<std::int64_t>(1, options_.n_startup_trials) ||
        Dims() == 0) {
      return space_.Sample(rng_, 0);
    }
    // Standardised values, higher is better.
    const auto n = static_cast<Eigen::Index>(complete.size());
    MatrixXd X(n, Dims());
    VectorXd y(n);
    for (Eigen::Index i = 0; i < n; ++i) {
      X.row(i) = rows_[complete[static_cast<std::size_t>(i)]];
      y[i] = -log_.entries()[complete[static_cast<std::size_t>(i)]].loss;
    }
    const double mean = y.mean();
    const double sd = std::sqrt((y.array() - mean).square().mean());
    y = (y.array() - mean) / std::max(sd, 1e-10);
    // The kernel parameters: the first fit runs to convergence; later ones start from the
    // previous parameters, which one more trial moves little, stop after kWarmIterations (20:
    // 5 left the fit short and the regret 1.1-5.7x higher on the five shared functions at 50
    // trials, bench/README-search.md; 20 costs ~25% more time per suggestion), and
    // past 50 trials run only when the history has grown by 2% since the last fit (the fit is
    // most of the cost of a suggestion at a few hundred trials). In between, the GP is
    // conditioned on the new history with the last parameters.
    const auto size = static_cast<std::size_t>(n);
    const bool refit = fit_size_ == 0 || size >= fit_size_ + std::max<std::size_t>(1, fit_size_ / 50);
    const int iterations = fit_size_ == 0 ? kColdIterations : kWarmIterations;
    if (refit) {
      model_.Fit(X, y, iterations);
    } else {
      model_.Condition(X, y);
    }
    Eigen::Index best_index = 0;
    threshold_ = y.maxCoeff(&best_index);
    // Constraints (Optuna's GPSampler): EI over the best feasible value only, none without a
    // feasible trial; each constraint's GP gives the probability of feasibility.
    if (!constraint_models_.empty()) {
      best_index = -1;
      for (Eigen::Index i = 0; i < n; ++i) {
        if (Violation(log_.entries()[complete[static_cast<std::size_t>(i)]].constraint_values) == 0 &&
            (best_index < 0 || y[i] > y[best_index])) {
          best_index = i;
        }
      }
      FitConstraints(X, complete, refit, iterations);
    }
    if (refit) fit_size_ = size;
    if (!pending.empty()) {
      // The constant liar: each pending trial as if it had returned the best (feasible) value;
      // for the constraints the kriging believer (the posterior mean), as Optuna's LogPI.
      const auto m = static_cast<Eigen::Index>(pending.size());
      MatrixXd all(n + m, Dims());
      all.topRows(n) = X;
      for (Eigen::Index p = 0; p < m; ++p) all.row(n + p) = rows_[pending[static_cast<std::size_t>(p)]];
      VectorXd all_y(all.rows());
      all_y.head(n) = y;
      all_y.tail(m).setConstant(best_index >= 0 ? y[best_index] : threshold_);
      model_.Condition(all, all_y);
      for (std::size_t c = 0; c < constraint_models_.size(); ++c) {
        VectorXd mean, sigma;
        constraint_models_[c].MeanSigmaMany(all.bottomRows(m), &mean, &sigma);
        VectorXd c_y(all.rows());
        c_y.head(n) = constraint_y_[c];
        c_y.tail(m) = mean;
        constraint_models_[c].Condition(all, c_y);
      }
    }
    has_threshold_ = best_index >= 0;
    if (has_threshold_) threshold_ = y[best_index];
    VectorXd incumbent;
    if (has_threshold_) incumbent = X.row(best_index).transpose();
    VectorXd best = Maximise(has_threshold_ ? &incumbent : nullptr);
    // The config: the GP's coordinates, random draws for what it does not model.
    std::vector<Json> values(space_.parameters().size(), Json(Json::value_t::discarded));
    for (std::size_t k = 0; k < numeric_.size(); ++k) {
      values[numeric_[k].parameter] = FromUnit(space_, numeric_[k], best[static_cast<Eigen::Index>(k)]);
    }
    for (std::size_t c = 0; c < categorical_.size(); ++c) {
      const Domain& domain = space_.parameters()[categorical_[c]].domain;
      values[categorical_[c]] =
          domain.values[static_cast<std::size_t>(best[static_cast<Eigen::Index>(numeric_.size() + c)])];
    }
    return space_.Assemble(values, &rng_);
  }

  // One GP per constraint on the complete trials' values, negated (higher is better, as the
  // objective's) and standardised; clipped to the finite range (a missing constrained metric is
  // +inf); its threshold is where the value is 0. Refitted when the objective's model is.
  void FitConstraints(const MatrixXd& X, const std::vector<std::size_t>& complete, bool refit,
                      int iterations) {
    const auto n = static_cast<Eigen::Index>(complete.size());
    constraint_y_.resize(constraint_models_.size());
    for (std::size_t c = 0; c < constraint_models_.size(); ++c) {
      VectorXd v(n);
      for (Eigen::Index i = 0; i < n; ++i) {
        v[i] = -log_.entries()[complete[static_cast<std::size_t>(i)]].constraint_values[c];
      }
      double low = std::numeric_limits<double>::infinity(), high = -low;
      for (Eigen::Index i = 0; i < n; ++i) {
        if (std::isfinite(v[i])) {
          low = std::min(low, v[i]);
          high = std::max(high, v[i]);
        }
      }
      if (!std::isfinite(low)) low = high = 0;
      v = v.cwiseMax(low).cwiseMin(high);
      const double mean = v.mean();
      const double sd = std::max(std::sqrt((v.array() - mean).square().mean()), 1e-10);
      constraint_y_[c] = (v.array() - mean) / sd;
      constraint_thresholds_[c] = -mean / sd;
      if (refit) {
        constraint_models_[c].Fit(X, constraint_y_[c], iterations);
      } else {
        constraint_models_[c].Condition(X, constraint_y_[c]);
      }
    }
  }

  // The acquisition: log EI over the best feasible value (0 when there is none) plus each
  // constraint's log probability of feasibility (Optuna's LogCEI); with `gradient`, its gradient.
  double Acquisition(const VectorXd& x, VectorXd* gradient) const {
    double value = 0;
    if (has_threshold_) {
      value = model_.LogEi(x, threshold_, gradient);
    } else if (gradient != nullptr) {
      gradient->setZero(x.size());
    }
    for (std::size_t c = 0; c < constraint_models_.size(); ++c) {
      VectorXd g;
      value += constraint_models_[c].LogPi(x, constraint_thresholds_[c], gradient ? &g : nullptr);
      if (gradient != nullptr) *gradient += g;
    }
    return value;
  }
  VectorXd AcquisitionMany(const MatrixXd& xs) const {
    VectorXd value = has_threshold_ ? model_.LogEiMany(xs, threshold_) : VectorXd::Zero(xs.rows());
    for (std::size_t c = 0; c < constraint_models_.size(); ++c) {
      value += constraint_models_[c].LogPiMany(xs, constraint_thresholds_[c]);
    }
    return value;
  }

  // The acquisition's maximiser: random points, then local searches from the best observed
  // (feasible) point when there is one, the best random point and others picked with
  // probability ~ exp(acquisition).
  VectorXd Maximise(const VectorXd* incumbent) {
    const auto m = static_cast<Eigen::Index>(options_.n_preliminary_samples);
    MatrixXd candidates(m, Dims());
    // On the integers' values, as Optuna's samples (the local searches keep them there).
    for (Eigen::Index i = 0; i < m; ++i) candidates.row(i) = Snapped(RandomRow());
    const VectorXd scores = AcquisitionMany(candidates);
    std::vector<VectorXd> starts;
    if (incumbent != nullptr) starts.push_back(*incumbent);
    Eigen::Index top = 0;
    scores.maxCoeff(&top);
    starts.push_back(candidates.row(top).transpose());
    // Roulette by EI (not log EI) among the others, without replacement.
    std::vector<double> weight(static_cast<std::size_t>(m));
    for (Eigen::Index i = 0; i < m; ++i) {
      weight[static_cast<std::size_t>(i)] = i == top ? 0 : std::exp(scores[i] - scores[top]);
    }
    while (static_cast<std::int64_t>(starts.size()) < options_.n_local_search) {
      const double total = std::accumulate(weight.begin(), weight.end(), 0.0);
      if (!(total > 1e-300)) break;
      double u = Uniform01(rng_) * total;
      std::size_t pick = 0;
      while (pick + 1 < weight.size() && u >= weight[pick]) u -= weight[pick++];
      starts.push_back(candidates.row(static_cast<Eigen::Index>(pick)).transpose());
      weight[pick] = 0;
    }
    VectorXd best = Snapped(candidates.row(top).transpose());
    double best_value = Acquisition(best, nullptr);
    for (const VectorXd& start : starts) {
      VectorXd x = LocalSearch(start);
      const double value = Acquisition(x, nullptr);
      if (value > best_value) {
        best_value = value;
        best = x;
      }
    }
    return best;
  }

  // Optuna's local_search_mixed: alternates L-BFGS-B over the continuous coordinates and a
  // search over each discrete one (integers and quantized values, then choices) until a discrete
  // coordinate is visited again without any change since it last moved. A discrete coordinate
  // with <= 16 values (and every choice) is searched exhaustively, a larger one by a line search
  // over the acquisition interpolated between neighbouring values (Optuna's
  // _discrete_line_search). Integers are never moved off their values, so the continuous
  // coordinates are optimised for the integer values actually proposed.
  VectorXd LocalSearch(VectorXd x) {
    x = Snapped(std::move(x));
    double value = Acquisition(x, nullptr);
    constexpr std::ptrdiff_t kContinuous = -1;
    std::ptrdiff_t last_changed = kContinuous;
    const std::size_t discrete = discrete_.size() + categorical_.size();
    for (int round = 0; round < 100; ++round) {
      if (ContinuousAscent(&x, &value)) last_changed = kContinuous;
      for (std::size_t i = 0; i < discrete; ++i) {
        if (last_changed == static_cast<std::ptrdiff_t>(i)) return x;
        const bool moved = i < discrete_.size()
                               ? DiscreteSearch(discrete_[i], &x, &value)
                               : ChoiceSearch(i - discrete_.size(), &x, &value);
        if (moved) last_changed = static_cast<std::ptrdiff_t>(i);
      }
      if (last_changed == kContinuous) return x;
    }
    return x;
  }

  // L-BFGS-B over the continuous coordinates of *x, to a projected gradient of 0.01, a relative
  // decrease below 2.2e-9 (scipy's pgtol and factr as Optuna calls it) or 200 iterations; keeps
  // the result when it is better. Returns whether it moved. (Optuna also preconditions by the
  // length scales, z = x / l: measured on the five shared functions over 80 seeds it changed no
  // regret significantly and left `mixed` worse on 49 of 80, bench/README-search.md.)
  bool ContinuousAscent(VectorXd* x, double* value) {
    const auto dims = static_cast<Eigen::Index>(continuous_.size());
    if (dims == 0) return false;
    auto at = [&](Eigen::Index j) { return static_cast<Eigen::Index>(continuous_[static_cast<std::size_t>(j)]); };
    VectorXd u(dims);
    for (Eigen::Index j = 0; j < dims; ++j) u[j] = (*x)[at(j)];
    VectorXd full = *x;
    auto objective = [&](const VectorXd& point, VectorXd& gradient) {
      for (Eigen::Index j = 0; j < dims; ++j) full[at(j)] = point[j];
      VectorXd g;
      const double v = Acquisition(full, &g);
      gradient.resize(dims);
      for (Eigen::Index j = 0; j < dims; ++j) gradient[j] = -g[at(j)];
      return -v;
    };
    LBFGSpp::LBFGSBParam<double> param;
    param.epsilon = 1e-2;
    param.epsilon_rel = 0;
    param.past = 1;
    param.delta = 1e7 * std::numeric_limits<double>::epsilon();
    param.max_iterations = 200;
    param.max_linesearch = 20;
    LBFGSpp::LBFGSBSolver<double> solver(param);
    double negative = 0;
    try {
      solver.minimize(objective, u, negative, VectorXd::Zero(dims), VectorXd::Ones(dims));
    } catch (const std::exception&) {
      // No decrease along the search direction: keep the point reached.
    }
    VectorXd candidate = *x;
    for (Eigen::Index j = 0; j < dims; ++j) candidate[at(j)] = std::clamp(u[j], 0.0, 1.0);
    const double v = Acquisition(candidate, nullptr);
    if (!(v > *value)) return false;
    *value = v;
    *x = std::move(candidate);
    return true;
  }

  // The unit coordinate of a discrete dimension's i-th value, and the index of the value at or
  // below unit coordinate u (at most count - 1, so that i + 1 is a value).
  static double UnitAt(const Dim& d, std::int64_t i) {
    return (ToKernelSpace(d, d.first + static_cast<double>(i) * d.step) - d.low) / (d.high - d.low);
  }
  static std::int64_t IndexBelow(const Dim& d, double u) {
    const double kernel = d.low + u * (d.high - d.low);
    const double index = std::floor(((d.log ? std::exp(kernel) : kernel) - d.first) / d.step);
    return static_cast<std::int64_t>(std::clamp(index, 0.0, static_cast<double>(d.count - 1)));
  }
  static std::int64_t Nearest(const Dim& d, double u) {
    const std::int64_t below = IndexBelow(d, u);
    return std::abs(u - UnitAt(d, below)) <= std::abs(u - UnitAt(d, below + 1)) ? below : below + 1;
  }

  // One integer or quantized coordinate of *x (numeric_ index k); keeps a better value.
  bool DiscreteSearch(std::size_t k, VectorXd* x, double* value) {
    const Dim& d = numeric_[k].dim;
    const auto coordinate = static_cast<Eigen::Index>(k);
    const std::int64_t current = Nearest(d, (*x)[coordinate]);
    std::int64_t best = current;
    double best_value = *value;
    if (d.count < kExhaustiveValues) {  // count + 1 values
      VectorXd options(d.count + 1);
      for (std::int64_t i = 0; i <= d.count; ++i) options[i] = UnitAt(d, i);
      if (const Eigen::Index i = BestOption(*x, coordinate, options, &best_value); i >= 0) best = i;
    } else {
      // The acquisition (negated) interpolated linearly between neighbouring values, +inf
      // outside; a bracketing golden-section search from the current value down to a quarter of
      // the smallest gap between values, then the value nearest to where it ended.
      std::unordered_map<std::int64_t, double> cache{{current, -*value}};
      VectorXd probe = *x;
      auto at = [&](std::int64_t i) {
        auto [it, fresh] = cache.try_emplace(i, 0.0);
        if (fresh) {
          probe[coordinate] = UnitAt(d, i);
          it->second = -Acquisition(probe, nullptr);
        }
        return it->second;
      };
      const double first = UnitAt(d, 0), last = UnitAt(d, d.count);
      auto interpolated = [&](double u) {
        if (u < first || u > last) return std::numeric_limits<double>::infinity();
        const std::int64_t left = IndexBelow(d, u);
        const double a = UnitAt(d, left), b = UnitAt(d, left + 1);
        const double w = std::clamp((b - u) / (b - a), 0.0, 1.0);
        return w * at(left) + (1 - w) * at(left + 1);
      };
      double gap = std::numeric_limits<double>::infinity();
      for (std::int64_t i : {std::int64_t{0}, d.count - 1}) gap = std::min(gap, UnitAt(d, i + 1) - UnitAt(d, i));
      const double tolerance = std::max(gap / 4, 1e-12);  // a huge range: gaps below a double's precision
      constexpr double kGolden = 0.3819660112501051;
      double a = first - 1e-12, b = last + 1e-12, c = UnitAt(d, current), fc = at(current);
      for (int step = 0; step < 200 && b - a > tolerance; ++step) {
        const bool left = c - a > b - c;
        const double t = left ? c - kGolden * (c - a) : c + kGolden * (b - c);
        const double ft = interpolated(t);
        if (ft < fc) {
          (left ? b : a) = c;
          c = t;
          fc = ft;
        } else {
          (left ? a : b) = t;
        }
      }
      const std::int64_t end = Nearest(d, c);
      if (end != current && -at(end) > best_value) {
        best_value = -at(end);
        best = end;
      }
    }
    if (best == current) return false;
    (*x)[coordinate] = UnitAt(d, best);
    *value = best_value;
    return true;
  }

  // One choice (categorical_ index c) of *x, every option; keeps a better value.
  bool ChoiceSearch(std::size_t c, VectorXd* x, double* value) {
    const auto coordinate = static_cast<Eigen::Index>(numeric_.size() + c);
    const auto size = static_cast<Eigen::Index>(space_.parameters()[categorical_[c]].domain.values.size());
    const VectorXd options = VectorXd::LinSpaced(size, 0.0, static_cast<double>(size - 1));
    const Eigen::Index best = BestOption(*x, coordinate, options, value);
    if (best < 0) return false;
    (*x)[coordinate] = options[best];
    return true;
  }

  // Coordinate `coordinate` of x set to each of `options` other than its current one, scored in
  // one batch: the index of the best when it beats *value (which then becomes its score), else -1.
  Eigen::Index BestOption(const VectorXd& x, Eigen::Index coordinate, const VectorXd& options,
                          double* value) const {
    MatrixXd candidates = x.transpose().replicate(options.size(), 1);
    candidates.col(coordinate) = options;
    const VectorXd scores = AcquisitionMany(candidates);
    Eigen::Index best = -1;
    for (Eigen::Index i = 0; i < options.size(); ++i) {
      if (options[i] != x[coordinate] && scores[i] > *value) {
        *value = scores[i];
        best = i;
      }
    }
    return best;
  }

  GpOptions options_;
  TrialLog log_;
  std::vector<UnitDim> numeric_;
  std::vector<std::size_t> categorical_;  // unconditional choices (parameter indices)
  std::vector<std::size_t> continuous_;   // numeric_ indices of continuous dims
  std::vector<std::size_t> discrete_;     // numeric_ indices of integer and quantized dims
  std::vector<VectorXd> rows_;            // per trial, its coordinates
  GpModel model_;                         // kept between suggestions: the fit starts warm
  std::vector<GpModel> constraint_models_;     // one per constraint, the same way
  std::vector<VectorXd> constraint_y_;         // their standardised values, complete trials
  std::vector<double> constraint_thresholds_;  // each one's value 0, standardised
  double threshold_ = 0;                       // EI's: the best feasible standardised value
  bool has_threshold_ = false;                 // false: no feasible trial yet (no EI term)
  std::size_t fit_size_ = 0;  // ended trials at the last fit of the kernel parameters
  static constexpr int kColdIterations = 100, kWarmIterations = 20;
  static constexpr std::int64_t kExhaustiveValues = 16;  // Optuna's MAX_INT_EXHAUSTIVE_SEARCH_PARAMS
};

GpOptions ParseGp(const OptionsReader& in, const SearcherContext& context) {
  CheckModelSearcher("gp", in, context);
  GpOptions options;
  options.n_startup_trials =
      in.Integer("n_startup_trials", options.n_startup_trials, Range::AtLeast(0));
  options.deterministic_objective =
      in.Bool("deterministic_objective", options.deterministic_objective);
  options.n_preliminary_samples =
      in.Integer("n_preliminary_samples", options.n_preliminary_samples, Range::AtLeast(1));
  options.n_local_search = in.Integer("n_local_search", options.n_local_search, Range::AtLeast(2));
  return options;
}

}  // namespace

SearcherRegistry::Entry GpEntry() {
  return ModelEntry<GpSearcher>(
      "gp", {"n_startup_trials", "deterministic_objective", "n_preliminary_samples", "n_local_search"},
      &ParseGp);
}

}  // namespace tune
