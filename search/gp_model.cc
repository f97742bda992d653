#include "search/gp_model.h"

#include <LBFGSB.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace tune {
namespace {

using Eigen::ArrayXXd;
using Eigen::MatrixXd;
using Eigen::VectorXd;

constexpr double kMinNoise = 1e-6;  // Optuna's DEFAULT_MINIMUM_NOISE_VAR
constexpr double kLogSqrt2Pi = 0.91893853320467274178;
constexpr double kLogBound = 12;  // log-parameters stay within +-this (e^12 ~ 1.6e5)
constexpr double kLogNoiseExcessBound = 40;  // but the noise's excess down to e^-40 ~ 4e-18

// Matern 5/2 of squared distance r2, and its derivative in r2.
double Matern(double r2) {
  const double s = std::sqrt(5 * r2);
  return (1 + s + 5.0 / 3 * r2) * std::exp(-s);
}
double MaternDerivative(double r2) {
  const double s = std::sqrt(5 * r2);
  return -5.0 / 6 * (1 + s) * std::exp(-s);
}

}  // namespace

double LogH(double z) {
  if (z > -25) {
    const double h = 0.5 * z * std::erfc(-z * M_SQRT1_2) + std::exp(-0.5 * z * z - kLogSqrt2Pi);
    return std::log(std::max(h, 1e-300));
  }
  const double z2 = z * z;
  return -0.5 * z2 - kLogSqrt2Pi + std::log(1 / z2 - 3 / (z2 * z2) + 15 / (z2 * z2 * z2));
}

double LogHDerivative(double z) {
  if (z > -25) {
    const double log_cdf = std::log(std::max(0.5 * std::erfc(-z * M_SQRT1_2), 1e-300));
    return std::exp(log_cdf - LogH(z));
  }
  const double z2 = z * z;
  return -z * (1 - 1 / z2 + 3 / (z2 * z2)) / (1 - 3 / z2 + 15 / (z2 * z2));
}

GpModel::GpModel(std::vector<bool> is_categorical) : is_categorical_(std::move(is_categorical)) {
  params_.theta = VectorXd::Ones(static_cast<Eigen::Index>(is_categorical_.size()));
}

MatrixXd GpModel::SquaredDistance(const GpParams& params, const MatrixXd& A,
                                  const MatrixXd& B) const {
  const Eigen::Index dims = A.cols();
  VectorXd weight(dims);
  for (Eigen::Index d = 0; d < dims; ++d) {
    weight[d] = is_categorical_[static_cast<std::size_t>(d)] ? 0.0 : std::sqrt(params.theta[d]);
  }
  const MatrixXd a = A * weight.asDiagonal(), b = B * weight.asDiagonal();
  MatrixXd r2 = (-2 * a * b.transpose()).colwise() + a.rowwise().squaredNorm();
  r2.rowwise() += b.rowwise().squaredNorm().transpose();
  for (Eigen::Index d = 0; d < dims; ++d) {
    if (!is_categorical_[static_cast<std::size_t>(d)]) continue;
    for (Eigen::Index j = 0; j < B.rows(); ++j) {
      for (Eigen::Index i = 0; i < A.rows(); ++i) {
        if (A(i, d) != B(j, d)) r2(i, j) += params.theta[d];
      }
    }
  }
  return r2.cwiseMax(0.0);
}

MatrixXd GpModel::Kernel(const GpParams& params, const MatrixXd& A, const MatrixXd& B) const {
  return params.scale * SquaredDistance(params, A, B).unaryExpr(&Matern);
}

double GpModel::Loss(const GpParams& params, const MatrixXd& X, const VectorXd& y,
                     VectorXd* gradient) const {
  const Eigen::Index n = X.rows(), dims = X.cols();
  const MatrixXd r2 = SquaredDistance(params, X, X);
  const MatrixXd K = params.scale * r2.unaryExpr(&Matern);
  MatrixXd C = K;
  C.diagonal().array() += params.noise;
  Eigen::LLT<MatrixXd> llt(C);
  if (llt.info() != Eigen::Success) return std::numeric_limits<double>::infinity();
  const VectorXd alpha = llt.solve(y);
  const MatrixXd& L = llt.matrixLLT();
  double log_det_half = 0;
  for (Eigen::Index i = 0; i < n; ++i) log_det_half += std::log(L(i, i));
  const double mll = -log_det_half - 0.5 * y.dot(alpha);
  double prior = 0;
  for (Eigen::Index d = 0; d < dims; ++d) prior -= 0.1 / params.theta[d] + 0.1 * params.theta[d];
  prior += std::log(params.scale) - params.scale;          // Gamma(2, 1)
  prior += 0.1 * std::log(params.noise) - 30 * params.noise;  // Gamma(1.1, 30)
  const double loss = -(mll + prior);
  if (gradient == nullptr) return loss;
  // d mll / d p = 0.5 tr(W dC/dp), W = alpha alpha^T - C^-1, C^-1 = L^-T L^-1 (the cheapest
  // way to the inverse from the factor: a triangular inverse and a triangular product).
  const MatrixXd l_inv = llt.matrixL().solve(MatrixXd::Identity(n, n));
  MatrixXd W = alpha * alpha.transpose();
  W.selfadjointView<Eigen::Lower>().rankUpdate(l_inv.transpose(), -1.0);
  W = W.selfadjointView<Eigen::Lower>();
  gradient->resize(dims + 2);
  // dC/dlog(theta_d) = scale m'(r2) theta_d sqd_d; G = W o scale m'(r2).
  const MatrixXd G = W.cwiseProduct(params.scale * r2.unaryExpr(&MaternDerivative));
  const VectorXd row_sums = G.rowwise().sum();
  for (Eigen::Index d = 0; d < dims; ++d) {
    double sum = 0;  // sum_ij G_ij sqd_ijd
    if (is_categorical_[static_cast<std::size_t>(d)]) {
      for (Eigen::Index j = 0; j < n; ++j) {
        for (Eigen::Index i = 0; i < n; ++i) {
          if (X(i, d) != X(j, d)) sum += G(i, j);
        }
      }
    } else {
      const VectorXd x = X.col(d);
      sum = 2 * x.cwiseAbs2().dot(row_sums) - 2 * x.dot(G * x);
    }
    const double d_mll = 0.5 * params.theta[d] * sum;
    const double d_prior = 0.1 / params.theta[d] - 0.1 * params.theta[d];
    (*gradient)[d] = -(d_mll + d_prior);
  }
  const double d_mll_scale = 0.5 * W.cwiseProduct(K).sum();
  (*gradient)[dims] = -(d_mll_scale + 1 - params.scale);
  const double excess = params.noise - kMinNoise;
  const double d_mll_noise = 0.5 * W.trace() * excess;
  (*gradient)[dims + 1] = -(d_mll_noise + (0.1 / params.noise - 30) * excess);
  return loss;
}

void GpModel::Fit(const MatrixXd& X, const VectorXd& y, int max_iterations) {
  const Eigen::Index dims = X.cols();
  if (max_iterations > 0 && X.rows() > 0) {
    auto unpack = [&](const VectorXd& raw) {
      GpParams p;
      p.theta = raw.head(dims).array().exp();
      p.scale = std::exp(raw[dims]);
      p.noise = fixed_noise_ ? kMinNoise : kMinNoise + std::exp(raw[dims + 1]);
      return p;
    };
    auto objective = [&](const VectorXd& raw, VectorXd& gradient) {
      const double loss = Loss(unpack(raw), X, y, &gradient);
      if (!std::isfinite(loss)) gradient.setZero();
      if (fixed_noise_) gradient[dims + 1] = 0;
      return std::isfinite(loss) ? loss : 1e300;
    };
    LBFGSpp::LBFGSBParam<double> param;
    param.epsilon = 1e-2;  // Optuna's gtol: projected gradient (inf-norm)
    param.epsilon_rel = 0;
    param.max_iterations = max_iterations;
    param.max_linesearch = 30;
    LBFGSpp::LBFGSBSolver<double> solver(param);
    VectorXd lower = VectorXd::Constant(dims + 2, -kLogBound);
    // The noise's excess over its minimum may vanish (as in Optuna, which has no bounds): a floor
    // of e^-12 made the noise at least 7.1e-6, 7x Optuna's, on deterministic objectives.
    lower[dims + 1] = -kLogNoiseExcessBound;
    const VectorXd upper = VectorXd::Constant(dims + 2, kLogBound);
    // Returns a VectorXd, not the clamp's expression: that would refer to `raw` after it is gone.
    auto pack = [&](const GpParams& p) -> VectorXd {
      VectorXd raw(dims + 2);
      raw.head(dims) = p.theta.array().log().matrix();
      raw[dims] = std::log(p.scale);
      raw[dims + 1] = std::log(std::max(p.noise - 0.99 * kMinNoise, 1e-300));
      return raw.cwiseMax(lower).cwiseMin(upper);
    };
    // The previous parameters first; on failure the defaults (all ones), as Optuna does.
    GpParams defaults;
    defaults.theta = VectorXd::Ones(dims);
    bool fitted = false;
    for (const GpParams& start : {params_, defaults}) {
      if (start.theta.size() != dims) continue;
      VectorXd raw = pack(start);
      double loss = 0;
      try {
        solver.minimize(objective, raw, loss, lower, upper);
      } catch (const std::exception&) {
        // A line search that found no decrease: keep where it got if that is finite.
      }
      if (std::isfinite(Loss(unpack(raw), X, y, nullptr))) {
        params_ = unpack(raw);
        fitted = true;
        break;
      }
    }
    if (!fitted) params_ = defaults;
  }
  Condition(X, y);
}

void GpModel::Condition(const MatrixXd& X, const VectorXd& y) {
  X_ = X;
  MatrixXd C = Kernel(params_, X, X);
  C.diagonal().array() += params_.noise;
  llt_.compute(C);
  alpha_ = llt_.solve(y);
}

std::pair<double, double> GpModel::Posterior(const VectorXd& x) const {
  const VectorXd k = Kernel(params_, x.transpose(), X_).transpose();
  const double mean = k.dot(alpha_);
  const VectorXd v = llt_.matrixL().solve(k);
  const double var = std::max(params_.scale - v.squaredNorm(), 0.0);
  return {mean, var};
}

void GpModel::MeanSigmaMany(const MatrixXd& xs, VectorXd* mean, VectorXd* sigma) const {
  const MatrixXd K = Kernel(params_, xs, X_);  // m x n
  *mean = K * alpha_;
  // k^T C^-1 k = |L^-1 k|^2, for all points with one triangular solve.
  const VectorXd quad = llt_.matrixL().solve(K.transpose()).colwise().squaredNorm().transpose();
  *sigma = ((params_.scale - quad.array()).cwiseMax(0.0) + 1e-12).sqrt().matrix();
}

VectorXd GpModel::LogEiMany(const MatrixXd& xs, double threshold) const {
  VectorXd mean, sigma;
  MeanSigmaMany(xs, &mean, &sigma);
  VectorXd out(xs.rows());
  for (Eigen::Index i = 0; i < xs.rows(); ++i) {
    out[i] = LogH((mean[i] - threshold) / sigma[i]) + std::log(sigma[i]);
  }
  return out;
}

VectorXd GpModel::LogPiMany(const MatrixXd& xs, double threshold) const {
  VectorXd mean, sigma;
  MeanSigmaMany(xs, &mean, &sigma);
  VectorXd out(xs.rows());
  for (Eigen::Index i = 0; i < xs.rows(); ++i) out[i] = LogNormalCdf((mean[i] - threshold) / sigma[i]);
  return out;
}

double GpModel::MeanSigma(const VectorXd& x, double* sigma, VectorXd* dmean,
                          VectorXd* dsigma) const {
  const Eigen::Index n = X_.rows(), dims = x.size();
  VectorXd r2 = VectorXd::Zero(n);
  for (Eigen::Index d = 0; d < dims; ++d) {
    if (is_categorical_[static_cast<std::size_t>(d)]) {
      r2.array() += params_.theta[d] * (X_.col(d).array() != x[d]).cast<double>();
    } else {
      r2.array() += params_.theta[d] * (X_.col(d).array() - x[d]).square();
    }
  }
  const VectorXd k = params_.scale * r2.unaryExpr(&Matern);
  const double mean = k.dot(alpha_);
  const VectorXd v = llt_.matrixL().solve(k);
  const double var = std::max(params_.scale - v.squaredNorm(), 0.0) + 1e-12;
  *sigma = std::sqrt(var);
  if (dmean == nullptr) return mean;
  // dsigma = dvar / (2 sigma); dvar = -2 c_inv_k . dk; dk_i/dx_d = scale m'(r2_i) 2 theta_d (x_d - X_id).
  const VectorXd c_inv_k = llt_.matrixU().solve(v);
  const VectorXd mp = params_.scale * r2.unaryExpr(&MaternDerivative);
  dmean->setZero(dims);
  dsigma->setZero(dims);
  for (Eigen::Index d = 0; d < dims; ++d) {
    if (is_categorical_[static_cast<std::size_t>(d)]) continue;
    const VectorXd dk = (mp.array() * 2 * params_.theta[d] * (x[d] - X_.col(d).array())).matrix();
    (*dmean)[d] = dk.dot(alpha_);
    (*dsigma)[d] = -c_inv_k.dot(dk) / *sigma;
  }
  return mean;
}

double GpModel::Standardised(const VectorXd& x, double threshold, double* sigma,
                             VectorXd* dz, VectorXd* dsigma) const {
  VectorXd dmean;
  const double mean = MeanSigma(x, sigma, dz ? &dmean : nullptr, dsigma);
  const double z = (mean - threshold) / *sigma;
  if (dz == nullptr) return z;
  dz->resize(x.size());
  for (Eigen::Index d = 0; d < x.size(); ++d) {
    (*dz)[d] = dmean[d] / *sigma - z * (*dsigma)[d] / *sigma;
  }
  return z;
}

double GpModel::LogEi(const VectorXd& x, double threshold, VectorXd* gradient) const {
  double sigma = 0;
  VectorXd dz, dsigma;
  const double z = Standardised(x, threshold, &sigma, gradient ? &dz : nullptr, &dsigma);
  const double value = LogH(z) + std::log(sigma);
  if (gradient == nullptr) return value;
  // d value = (dlogh/dz) dz + dsigma / sigma.
  *gradient = LogHDerivative(z) * dz + dsigma / sigma;
  return value;
}

double GpModel::LogPi(const VectorXd& x, double threshold, VectorXd* gradient) const {
  double sigma = 0;
  VectorXd dz, dsigma;
  const double z = Standardised(x, threshold, &sigma, gradient ? &dz : nullptr, &dsigma);
  const double value = LogNormalCdf(z);
  // d log Phi(z) = phi(z) / Phi(z) dz.
  if (gradient != nullptr) *gradient = std::exp(-0.5 * z * z - kLogSqrt2Pi - value) * dz;
  return value;
}

double LogNormalCdf(double z) {
  if (z > -20) return std::log(std::max(0.5 * std::erfc(-z * M_SQRT1_2), 1e-300));
  // The asymptotic series of Phi(z) for z -> -inf: phi(z) / -z (1 - 1/z^2 + 3/z^4).
  const double z2 = z * z;
  return -0.5 * z2 - kLogSqrt2Pi - std::log(-z) + std::log(1 - 1 / z2 + 3 / (z2 * z2));
}

}  // namespace tune
