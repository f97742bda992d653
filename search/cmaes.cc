// The CMA-ES searcher (search/cmaes.h). The update follows Hansen's tutorial ("The CMA Evolution
// Strategy: A Tutorial", 2016: active CMA's negative recombination weights, rank-one and rank-mu
// updates, cumulative step-size adaptation) as the `cmaes` package 0.13.1 (Optuna's backend)
// computes it, constant for constant, down to its details (the h_sigma test's generation count,
// no damping of the step-size change, 1e-8 for a negative eigenvalue and in the negative weights'
// rescaling) and its stopping tests; the margin follows Hamano et al. 2022 as that package's
// CMAwM implements it: the distribution is N(m, sigma^2 C) as without the margin, and a sample x
// is proposed as m + A (x - m) on the discrete coordinates (A a diagonal scale, 1 until the
// margin changes it), rounded. tests/peers/cmaes_diff.py replays runs of this searcher through
// the package and compares every generation's mean, step size, covariance, paths and restarts.
#include "search/cmaes.h"

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <deque>
#include <limits>
#include <numeric>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "core/state.h"
#include "search/truncnorm.h"
#include "search/unit_space.h"

namespace tune {
namespace {

using Eigen::MatrixXd;
using Eigen::VectorXd;

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kEps = 1e-8;        // the cmaes package's _EPS
constexpr double kSigmaMax = 1e32;   // and its _SIGMA_MAX

// Resume snapshots: Eigen vectors and matrices as flat StateNumbers() arrays (column-major).
template <typename Dense>
Json DenseState(const Dense& value) {
  return StateNumbers(std::vector<double>(value.data(), value.data() + value.size()));
}
template <typename Dense>
void ReadDense(const StateReader& in, const std::string& key, Dense* value) {
  const std::vector<double> numbers = in.Numbers(key, static_cast<std::size_t>(value->size()));
  std::copy(numbers.begin(), numbers.end(), value->data());
}

// One run of CMA-ES (between restarts) in unit coordinates.
class Cma {
 public:
  Cma(const std::vector<UnitDim>& dims, VectorXd mean, double sigma, std::int64_t popsize,
      bool with_margin)
      : dims_(dims), n_(mean.size()), lambda_(popsize), mean_(std::move(mean)), sigma_(sigma) {
    const double n = static_cast<double>(n_);
    const double lambda = static_cast<double>(lambda_);
    mu_ = lambda_ / 2;
    // Active CMA's weights (Hansen 2016, as the cmaes package): ln((lambda + 1) / 2) - ln(i) for
    // every i, the positive ones normalised to sum 1, the negative ones to -alpha_min.
    VectorXd prime(lambda_);
    for (std::int64_t i = 0; i < lambda_; ++i) {
      prime[i] = std::log((lambda + 1) / 2) - std::log(static_cast<double>(i) + 1);
    }
    const VectorXd positive = prime.head(mu_);
    const VectorXd negative = prime.tail(lambda_ - mu_);
    mu_eff_ = positive.sum() * positive.sum() / positive.squaredNorm();
    const double mu_eff_minus =
        negative.size() > 0 ? negative.sum() * negative.sum() / negative.squaredNorm() : 0;
    c_sigma_ = (mu_eff_ + 2) / (n + mu_eff_ + 5);
    d_sigma_ = 1 + 2 * std::max(0.0, std::sqrt((mu_eff_ - 1) / (n + 1)) - 1) + c_sigma_;
    c_c_ = (4 + mu_eff_ / n) / (n + 4 + 2 * mu_eff_ / n);
    constexpr double kAlphaCov = 2;
    c_1_ = kAlphaCov / ((n + 1.3) * (n + 1.3) + mu_eff_);
    c_mu_ = std::min(1 - c_1_ - 1e-8, kAlphaCov * (mu_eff_ - 2 + 1 / mu_eff_) /
                                          ((n + 2) * (n + 2) + kAlphaCov * mu_eff_ / 2));
    const double alpha_min =
        std::min({1 + c_1_ / c_mu_, 1 + 2 * mu_eff_minus / (mu_eff_ + 2), (1 - c_1_ - c_mu_) / (n * c_mu_)});
    weights_.resize(lambda_);
    weights_.head(mu_) = positive / positive.sum();
    if (negative.size() > 0) weights_.tail(lambda_ - mu_) = negative * (alpha_min / -negative.sum());
    chi_n_ = std::sqrt(n) * (1 - 1 / (4 * n) + 1 / (21 * n * n));
    p_sigma_ = VectorXd::Zero(n_);
    p_c_ = VectorXd::Zero(n_);
    C_ = MatrixXd::Identity(n_, n_);
    B_ = MatrixXd::Identity(n_, n_);
    D_ = VectorXd::Ones(n_);
    A_ = VectorXd::Ones(n_);
    sigma0_ = sigma;
    margin_ = with_margin ? 1.0 / (n * static_cast<double>(lambda_)) : 0;
    for (Eigen::Index j = 0; j < n_; ++j) {
      if (dims_[static_cast<std::size_t>(j)].dim.step > 0) discrete_.push_back(j);
    }
    fitness_history_.assign(2 * HistoryLength(), 0.0);
  }

  std::int64_t popsize() const { return lambda_; }

  // What the updates change (the constants follow from n and the population size).
  Json SaveState() const {
    return Json{{"mean", DenseState(mean_)},         {"sigma", StateNumber(sigma_)},
                {"p_sigma", DenseState(p_sigma_)},   {"p_c", DenseState(p_c_)},
                {"C", DenseState(C_)},               {"B", DenseState(B_)},
                {"D", DenseState(D_)},               {"A", DenseState(A_)},
                {"generation", generation_},         {"fitness_history", StateNumbers(fitness_history_)}};
  }
  void LoadState(const StateReader& in) {
    ReadDense(in, "mean", &mean_);
    sigma_ = in.Number("sigma");
    ReadDense(in, "p_sigma", &p_sigma_);
    ReadDense(in, "p_c", &p_c_);
    ReadDense(in, "C", &C_);
    ReadDense(in, "B", &B_);
    ReadDense(in, "D", &D_);
    ReadDense(in, "A", &A_);
    generation_ = in.Integer("generation", 0, INT64_MAX);
    fitness_history_ = in.Numbers("fitness_history", 2 * HistoryLength());
  }

  // A sample x of N(m, sigma^2 C) whose continuous coordinates lie in [0, 1]: resampled up to
  // 100 times, then clipped (the `cmaes` package's repair). This is what Tell() takes back.
  VectorXd Ask(std::mt19937_64& rng) const {
    VectorXd x(n_);
    for (int attempt = 0; attempt < 100; ++attempt) {
      VectorXd z(n_);
      for (Eigen::Index j = 0; j < n_; ++j) z[j] = StandardNormal(rng);
      x = mean_ + sigma_ * (B_ * D_.cwiseProduct(z));
      if (Feasible(x)) return x;
    }
    for (Eigen::Index j = 0; j < n_; ++j) {
      if (dims_[static_cast<std::size_t>(j)].dim.step <= 0) x[j] = std::clamp(x[j], 0.0, 1.0);
    }
    return x;
  }

  // The point proposed for a sample x: m + A (x - m) on the discrete coordinates (CMAwM's
  // encoding; they may lie outside [0, 1] and round to the nearest value), x itself on the others.
  VectorXd Encode(VectorXd x) const {
    for (Eigen::Index j : discrete_) x[j] = mean_[j] + A_[j] * (x[j] - mean_[j]);
    return x;
  }

  // One generation: the (point, loss) pairs of popsize solutions.
  void Tell(std::vector<std::pair<VectorXd, double>> solutions) {
    std::stable_sort(solutions.begin(), solutions.end(),
                     [](const auto& a, const auto& b) { return a.second < b.second; });
    ++generation_;
    // The best and the worst value of each of the last HistoryLength() generations, in a ring.
    const std::size_t slot = 2 * (static_cast<std::size_t>(generation_) % HistoryLength());
    fitness_history_[slot] = solutions.front().second;
    fitness_history_[slot + 1] = solutions.back().second;
    MatrixXd y(n_, lambda_);
    for (std::int64_t i = 0; i < lambda_; ++i) {
      y.col(i) = (solutions[static_cast<std::size_t>(i)].first - mean_) / sigma_;
    }
    const VectorXd y_w = y.leftCols(mu_) * weights_.head(mu_);
    mean_ += sigma_ * y_w;
    // C^(-1/2) v = B D^-1 B^T v.
    auto c_inv_sqrt = [&](const VectorXd& v) -> VectorXd {
      return B_ * (B_.transpose() * v).cwiseQuotient(D_);
    };
    p_sigma_ = (1 - c_sigma_) * p_sigma_ + std::sqrt(c_sigma_ * (2 - c_sigma_) * mu_eff_) * c_inv_sqrt(y_w);
    const double norm = p_sigma_.norm();
    const double n = static_cast<double>(n_);
    sigma_ = std::min(sigma_ * std::exp((c_sigma_ / d_sigma_) * (norm / chi_n_ - 1)), kSigmaMax);
    // (The package counts generations from 1 here, Hansen's tutorial from 0: 2 (g + 1) with g
    // already incremented.)
    const bool h_sigma =
        norm / std::sqrt(1 - std::pow(1 - c_sigma_, 2.0 * static_cast<double>(generation_ + 1))) <
        (1.4 + 2 / (n + 1)) * chi_n_;
    p_c_ = (1 - c_c_) * p_c_ + (h_sigma ? std::sqrt(c_c_ * (2 - c_c_) * mu_eff_) : 0.0) * y_w;
    const double delta = h_sigma ? 0.0 : c_c_ * (2 - c_c_);
    // Negative weights act on directions rescaled to length sqrt(n) in the C metric.
    VectorXd w_io = weights_;
    for (std::int64_t i = mu_; i < lambda_; ++i) {
      w_io[i] *= n / (c_inv_sqrt(y.col(i)).squaredNorm() + kEps);
    }
    const MatrixXd rank_mu = y * w_io.asDiagonal() * y.transpose();
    C_ = (1 + c_1_ * delta - c_1_ - c_mu_ * weights_.sum()) * C_ + c_1_ * p_c_ * p_c_.transpose() +
         c_mu_ * rank_mu;
    Decompose();
    if (margin_ > 0) Margin();
  }

  // The `cmaes` package's stopping tests (CMA.should_stop), as it writes them: every best and
  // worst value of the last HistoryLength() generations within 1e-12 (TolFun); sigma C_jj and
  // sigma p_c_j (signed) below 1e-12 sigma0 on every coordinate (TolX: the package's forms, where
  // Hansen's has sqrt(C_jj) and |p_c_j|; both only hold once the distribution has collapsed);
  // sigma max(D) above 1e4 (TolXUp); no effect of 0.2 standard deviations along a coordinate or
  // of 0.1 along the principal axis (generation mod n); max(D) / min(D) above 1e14.
  bool ShouldStop() const {
    if (generation_ > static_cast<std::int64_t>(HistoryLength())) {
      auto [lo, hi] = std::minmax_element(fitness_history_.begin(), fitness_history_.end());
      if (*hi - *lo < 1e-12) return true;
    }
    const double tol_x = 1e-12 * sigma0_;
    if ((sigma_ * C_.diagonal().array() < tol_x).all() && (sigma_ * p_c_.array() < tol_x).all()) {
      return true;
    }
    if (sigma_ * D_.maxCoeff() > 1e4) return true;
    for (Eigen::Index j = 0; j < n_; ++j) {
      if (mean_[j] == mean_[j] + 0.2 * sigma_ * std::sqrt(C_(j, j))) return true;
    }
    const Eigen::Index axis = generation_ % n_;
    if (mean_ == mean_ + 0.1 * sigma_ * D_[axis] * B_.col(axis)) return true;
    return D_.maxCoeff() / D_.minCoeff() > 1e14;
  }

 private:
  // The generations TolFun looks back over (the package's funhist_term).
  std::size_t HistoryLength() const {
    return 10 + static_cast<std::size_t>(std::ceil(30 * static_cast<double>(n_) / static_cast<double>(lambda_)));
  }

  bool Feasible(const VectorXd& x) const {
    for (Eigen::Index j = 0; j < n_; ++j) {
      if (dims_[static_cast<std::size_t>(j)].dim.step <= 0 && (x[j] < 0 || x[j] > 1)) return false;
    }
    return true;
  }

  void Decompose() {
    C_ = (C_ + C_.transpose()) / 2;
    Eigen::SelfAdjointEigenSolver<MatrixXd> eigen(C_);
    // A negative eigenvalue (rounding) becomes kEps, as in the package; D = sqrt(values).
    VectorXd values = eigen.eigenvalues().unaryExpr([](double v) { return v < 0 ? kEps : v; });
    B_ = eigen.eigenvectors();
    D_ = values.cwiseSqrt();
    C_ = B_ * values.asDiagonal() * B_.transpose();
  }

  // The unit-coordinate thresholds around discrete coordinate j's mean: the boundaries of the
  // value it rounds to (both the one boundary when that value is the first or last).
  std::pair<double, double> Thresholds(Eigen::Index j) const {
    const UnitDim& dim = dims_[static_cast<std::size_t>(j)];
    const Dim& d = dim.dim;
    const double x = d.low + std::clamp(mean_[j], 0.0, 1.0) * (d.high - d.low);
    const double value = Snap(d, x);
    const double k = std::round((value - d.first) / d.step);
    auto unit = [&](double v) { return (ToKernelSpace(d, v) - d.low) / (d.high - d.low); };
    const double below = k > 0 ? unit(value - d.step / 2) : kInf;
    const double above = k < static_cast<double>(d.count) ? unit(value + d.step / 2) : kInf;
    if (k <= 0) return {above, above};
    if (k >= static_cast<double>(d.count)) return {below, below};
    return {below, above};
  }

  // Hamano et al.'s margin: keeps each discrete coordinate's probability of leaving the value
  // its mean rounds to at least margin_ (edge values: by moving the mean; inner values: margin/2
  // on each side, by moving the mean and scaling A).
  void Margin() {
    for (Eigen::Index j : discrete_) {
      auto [low, up] = Thresholds(j);
      const double scale = sigma_ * A_[j] * std::sqrt(C_(j, j));
      double low_cdf = NormalCdf((low - mean_[j]) / scale);
      double up_cdf = 1 - NormalCdf((up - mean_[j]) / scale);
      const double mid_cdf = 1 - low_cdf - up_cdf;
      if (std::max(low_cdf, up_cdf) > 0.5) {
        if (std::min(low_cdf, up_cdf) < margin_) {
          const double sign = mean_[j] > up ? 1.0 : mean_[j] < up ? -1.0 : 0.0;  // np.sign
          mean_[j] = up + sign * scale * NormalQuantile(1 - margin_);
        }
        continue;
      }
      low_cdf = std::max(low_cdf, margin_ / 2);
      up_cdf = std::max(up_cdf, margin_ / 2);
      const double excess = 1 - low_cdf - up_cdf - mid_cdf;
      const double spread = low_cdf + mid_cdf + up_cdf - 3 * margin_ / 2;
      double new_low = low_cdf + excess * (low_cdf - margin_ / 2) / spread;
      double new_up = up_cdf + excess * (up_cdf - margin_ / 2) / spread;
      new_low = std::clamp(new_low, 1e-10, 0.5 - 1e-10);
      new_up = std::clamp(new_up, 1e-10, 0.5 - 1e-10);
      const double chi_low = NormalQuantile(1 - new_low), chi_up = NormalQuantile(1 - new_up);
      A_[j] = (up - low) / ((chi_low + chi_up) * sigma_ * std::sqrt(C_(j, j)));
      mean_[j] = (low * chi_up + up * chi_low) / (chi_low + chi_up);
    }
  }

  const std::vector<UnitDim>& dims_;
  Eigen::Index n_;
  std::int64_t lambda_, mu_ = 0;
  VectorXd weights_;
  double mu_eff_ = 0, c_sigma_ = 0, d_sigma_ = 0, c_c_ = 0, c_1_ = 0, c_mu_ = 0, chi_n_ = 0;
  VectorXd mean_;
  double sigma_, sigma0_ = 0;
  VectorXd p_sigma_, p_c_, D_, A_;
  MatrixXd C_, B_;
  double margin_ = 0;
  std::vector<Eigen::Index> discrete_;
  std::int64_t generation_ = 0;
  std::vector<double> fitness_history_;  // best, worst of generation g at 2 (g mod HistoryLength())
};

class CmaEsSearcher : public ModelSearcher {
 public:
  CmaEsSearcher(const Space& space, const SearcherContext& context, const CmaEsOptions& options,
                std::vector<std::vector<PointValue>> points)
      : ModelSearcher(space, context, std::move(points)),
        options_(options),
        log_(context.metric, context.mode),
        dims_(UnitDims(space_)) {
    const auto n = static_cast<double>(dims_.size());
    popsize_ = options_.popsize > 0 ? options_.popsize
                                    : 4 + static_cast<std::int64_t>(std::floor(3 * std::log(std::max(n, 1.0))));
    if (!dims_.empty()) {
      cma_ = std::make_unique<Cma>(dims_, VectorXd::Constant(static_cast<Eigen::Index>(dims_.size()), 0.5),
                                   options_.sigma0, popsize_, options_.with_margin);
    }
  }

  void OnResult(const std::string& trial_id, const Result& result) override {
    log_.OnResult(trial_id, result);
  }

  void OnComplete(const std::string& trial_id, TrialStatus status, const Result* last) override {
    const std::ptrdiff_t index = log_.OnComplete(trial_id, status, last);
    if (index < 0 || cma_ == nullptr) return;
    const TrialLog::Entry& entry = log_.entries()[static_cast<std::size_t>(index)];
    if (entry.state != TrialLog::State::kComplete) return;
    if (entry.tag != run_ * kGenerationsPerRun + generation_) return;  // an older generation
    generation_solutions_.emplace_back(raw_.at(static_cast<std::size_t>(index)), entry.loss);
    if (static_cast<std::int64_t>(generation_solutions_.size()) < cma_->popsize()) return;
    cma_->Tell(std::move(generation_solutions_));
    generation_solutions_.clear();
    ++generation_;
    if (options_.restart && cma_->ShouldStop()) {
      // IPOP: a random mean, the first step size, twice the population.
      ++run_;
      generation_ = 0;
      popsize_ *= options_.inc_popsize;
      VectorXd mean(static_cast<Eigen::Index>(dims_.size()));
      for (Eigen::Index j = 0; j < mean.size(); ++j) mean[j] = Uniform01(rng_);
      cma_ = std::make_unique<Cma>(dims_, mean, options_.sigma0, popsize_, options_.with_margin);
    }
  }

 private:
  static constexpr std::int64_t kGenerationsPerRun = std::int64_t{1} << 40;

  // The log, the current run of CMA-ES and its generation's solutions so far, and the points
  // before rounding of the trials sampled from a generation ("raw_trials", "raw": by trial).
  std::optional<Json> SaveModel() const override {
    std::vector<std::size_t> trials;
    for (const auto& [trial, x] : raw_) trials.push_back(trial);
    std::sort(trials.begin(), trials.end());
    std::vector<double> raw, solutions, losses;
    for (std::size_t trial : trials) raw.insert(raw.end(), raw_.at(trial).data(), raw_.at(trial).data() + raw_.at(trial).size());
    for (const auto& [x, loss] : generation_solutions_) {
      solutions.insert(solutions.end(), x.data(), x.data() + x.size());
      losses.push_back(loss);
    }
    return Json{{"log", log_.SaveState()},
                {"popsize", popsize_},
                {"run", run_},
                {"generation", generation_},
                {"cma", cma_ ? cma_->SaveState() : Json()},
                {"raw_trials", trials},
                {"raw", StateNumbers(raw)},
                {"solutions", StateNumbers(solutions)},
                {"solution_losses", StateNumbers(losses)}};
  }

  void LoadModel(const StateReader& in) override {
    log_.LoadState(in.Object("log"));
    popsize_ = in.Integer("popsize", 2, INT64_MAX);
    run_ = in.Integer("run", 0, INT64_MAX / kGenerationsPerRun - 1);
    generation_ = in.Integer("generation", 0, kGenerationsPerRun - 1);
    const auto n = static_cast<Eigen::Index>(dims_.size());
    if (!dims_.empty()) {
      cma_ = std::make_unique<Cma>(dims_, VectorXd::Constant(n, 0.5), options_.sigma0, popsize_,
                                   options_.with_margin);
      cma_->LoadState(in.Object("cma"));
    }
    const Json& trials = in.Array("raw_trials");
    const std::vector<double> raw = in.Numbers("raw", trials.size() * dims_.size());
    raw_.clear();
    for (std::size_t i = 0; i < trials.size(); ++i) {
      const auto trial = static_cast<std::size_t>(
          in.IntegerAt(trials, i, "raw_trials", 0, static_cast<std::int64_t>(log_.size()) - 1));
      raw_[trial] = Eigen::Map<const VectorXd>(raw.data() + i * dims_.size(), n);
    }
    const std::vector<double> losses = in.Numbers("solution_losses");
    const std::vector<double> solutions = in.Numbers("solutions", losses.size() * dims_.size());
    generation_solutions_.clear();
    for (std::size_t i = 0; i < losses.size(); ++i) {
      generation_solutions_.emplace_back(Eigen::Map<const VectorXd>(solutions.data() + i * dims_.size(), n),
                                         losses[i]);
    }
  }

  // Random configs for the first n_startup_trials trials, then a sample of the current
  // generation (its point before rounding kept in raw_).
  Json Propose() override {
    if (cma_ == nullptr || static_cast<std::int64_t>(log_.size()) < options_.n_startup_trials) {
      next_tag_ = -1;
      return space_.Sample(rng_, 0);
    }
    const VectorXd x = cma_->Ask(rng_);
    const VectorXd proposed = cma_->Encode(x);
    std::vector<double> u(proposed.data(), proposed.data() + proposed.size());
    next_tag_ = run_ * kGenerationsPerRun + generation_;
    raw_.emplace(log_.size(), x);
    return ConfigWith(space_, dims_, u, rng_);
  }

  void Register(const std::string& trial_id, const Json& config, bool proposed) override {
    log_.Add(trial_id, config, proposed ? next_tag_ : -1);  // -1: not a sample of a generation
  }

  CmaEsOptions options_;
  TrialLog log_;
  std::int64_t next_tag_ = -1;  // the generation Propose() sampled from
  std::vector<UnitDim> dims_;
  std::int64_t popsize_ = 0;
  std::unique_ptr<Cma> cma_;
  std::int64_t run_ = 0, generation_ = 0;
  std::unordered_map<std::size_t, VectorXd> raw_;  // trial -> its point before rounding
  std::vector<std::pair<VectorXd, double>> generation_solutions_;
};

CmaEsOptions ParseCmaEs(const OptionsReader& in, const SearcherContext& context) {
  CheckModelSearcher("cmaes", in, context);
  CmaEsOptions options;
  options.n_startup_trials =
      in.Integer("n_startup_trials", options.n_startup_trials, Range::AtLeast(0));
  options.sigma0 = in.Number("sigma0", options.sigma0, Range::Above(0));
  options.popsize = in.Integer("popsize", options.popsize, Range::AtLeast(0));
  if (options.popsize == 1) {
    throw SpecError(in.PathOf("popsize"), "must be 0 (automatic) or >= 2, got 1");
  }
  options.restart = in.Choice("restart_strategy", "ipop", {"ipop", "none"}) == "ipop";
  options.inc_popsize = in.Integer("inc_popsize", options.inc_popsize, Range::AtLeast(1));
  options.with_margin = in.Bool("with_margin", options.with_margin);
  return options;
}

}  // namespace

SearcherRegistry::Entry CmaEsEntry() {
  return ModelEntry<CmaEsSearcher>(
      "cmaes", {"n_startup_trials", "sigma0", "popsize", "restart_strategy", "inc_popsize", "with_margin"},
      &ParseCmaEs);
}

}  // namespace tune
