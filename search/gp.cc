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
    for (Eigen::Index i = 0; i < m; ++i) candidates.row(i) = RandomRow();
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

  // Alternates L-BFGS-B over the numeric coordinates and exhaustive passes over each choice,
  // until a round gains less than 1e-4; integer coordinates are snapped at the end.
  VectorXd LocalSearch(VectorXd x) {
    const auto numeric = static_cast<Eigen::Index>(numeric_.size());
    double value = Acquisition(x, nullptr);
    // Without choices one L-BFGS-B run is the whole search.
    const int rounds = categorical_.empty() ? 1 : 4;
    for (int round = 0; round < rounds; ++round) {
      const double before = value;
      if (numeric > 0) {
        VectorXd u = x.head(numeric);
        auto objective = [&](const VectorXd& point, VectorXd& gradient) {
          VectorXd full = x;
          full.head(numeric) = point;
          VectorXd g;
          const double v = Acquisition(full, &g);
          gradient = -g.head(numeric);
          return -v;
        };
        LBFGSpp::LBFGSBParam<double> param;
        param.epsilon = 1e-5;
        param.epsilon_rel = 0;
        param.max_iterations = 30;
        param.max_linesearch = 20;
        LBFGSpp::LBFGSBSolver<double> solver(param);
        double negative = 0;
        try {
          solver.minimize(objective, u, negative, VectorXd::Zero(numeric), VectorXd::Ones(numeric));
        } catch (const std::exception&) {
          // No decrease along the search direction: keep the point reached.
        }
        VectorXd candidate = x;
        candidate.head(numeric) = u.cwiseMax(0.0).cwiseMin(1.0);
        const double v = Acquisition(candidate, nullptr);
        if (v > value) {
          value = v;
          x = candidate;
        }
      }
      for (std::size_t c = 0; c < categorical_.size(); ++c) {
        const auto d = static_cast<Eigen::Index>(numeric_.size() + c);
        const std::size_t size = space_.parameters()[categorical_[c]].domain.values.size();
        for (std::size_t option = 0; option < size; ++option) {
          VectorXd candidate = x;
          candidate[d] = static_cast<double>(option);
          const double v = Acquisition(candidate, nullptr);
          if (v > value) {
            value = v;
            x = candidate;
          }
        }
      }
      if (value - before < 1e-4) break;
    }
    return Snapped(x);
  }

  GpOptions options_;
  TrialLog log_;
  std::vector<UnitDim> numeric_;
  std::vector<std::size_t> categorical_;  // unconditional choices (parameter indices)
  std::vector<VectorXd> rows_;            // per trial, its coordinates
  GpModel model_;                         // kept between suggestions: the fit starts warm
  std::vector<GpModel> constraint_models_;     // one per constraint, the same way
  std::vector<VectorXd> constraint_y_;         // their standardised values, complete trials
  std::vector<double> constraint_thresholds_;  // each one's value 0, standardised
  double threshold_ = 0;                       // EI's: the best feasible standardised value
  bool has_threshold_ = false;                 // false: no feasible trial yet (no EI term)
  std::size_t fit_size_ = 0;  // ended trials at the last fit of the kernel parameters
  static constexpr int kColdIterations = 100, kWarmIterations = 20;
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
