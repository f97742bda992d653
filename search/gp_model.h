// The Gaussian-process model of the "gp" searcher (private to search/gp*.cc and their tests):
// a zero-mean GP on standardised values with a Matern 5/2 ARD kernel,
//   k(a, b) = scale * m(r2),  r2 = sum_d theta_d dist_d(a, b)^2,
//   m(r2) = (1 + sqrt(5 r2) + 5/3 r2) exp(-sqrt(5 r2)),
// where dist_d is |a_d - b_d| for continuous coordinates (unit space) and [a_d != b_d] (Hamming)
// for categorical ones (a choice index), and Gaussian noise of variance `noise` on each value.
// theta (inverse squared length scales), scale and noise maximise the log marginal likelihood
// plus Optuna's log priors (GPSampler: -(0.1 / theta + 0.1 theta) per dimension, Gamma(2, 1) on
// scale, Gamma(1.1, 30) on noise, noise >= 1e-6), by L-BFGS-B on their logs (LBFGS++), warm
// started from the previous fit. The acquisition is log expected improvement over a threshold,
// computed stably in the lower tail (Ament et al. 2023, "Unexpected improvements to expected
// improvement"), with its gradient in the continuous coordinates.
//
// Example:
//   GpModel gp(is_categorical);
//   gp.Fit(X, y);                                   // n x D, standardised y
//   auto [mean, var] = gp.Posterior(x);
//   double a = gp.LogEi(x, y.maxCoeff(), &gradient);
#pragma once

#include <Eigen/Dense>
#include <utility>
#include <vector>

namespace tune {

struct GpParams {
  Eigen::VectorXd theta;  // inverse squared length scales, one per dimension
  double scale = 1;
  double noise = 1;
};

class GpModel {
 public:
  explicit GpModel(std::vector<bool> is_categorical);

  // Fits the kernel parameters to (X, y) (starting from the current ones) and conditions on
  // them. `max_iterations` bounds the L-BFGS-B iterations; 0 keeps the parameters as they are.
  // Cost: per iteration one Cholesky and one inverse of the n x n kernel matrix.
  void Fit(const Eigen::MatrixXd& X, const Eigen::VectorXd& y, int max_iterations = 50);
  // Conditions on (X, y) with the current parameters (no fit): for fantasies of pending trials.
  void Condition(const Eigen::MatrixXd& X, const Eigen::VectorXd& y);

  // Posterior mean and variance (of the latent function, without noise) at x.
  std::pair<double, double> Posterior(const Eigen::VectorXd& x) const;
  // For many points at once (rows of `xs`): log EI over `threshold` of each.
  Eigen::VectorXd LogEiMany(const Eigen::MatrixXd& xs, double threshold) const;
  // log E[max(0, f(x) - threshold)]; with `gradient`, its gradient in x (zero on categorical
  // coordinates).
  double LogEi(const Eigen::VectorXd& x, double threshold, Eigen::VectorXd* gradient) const;
  // log P(f(x) >= threshold) (a constraint's probability of feasibility, Optuna's LogPI), one
  // point with its gradient or many points.
  double LogPi(const Eigen::VectorXd& x, double threshold, Eigen::VectorXd* gradient) const;
  Eigen::VectorXd LogPiMany(const Eigen::MatrixXd& xs, double threshold) const;

  // The posterior mean at x (returned) and standard deviation (with 1e-12 more variance), with
  // their gradients in x when dmean is set (then dsigma too); and the same for the rows of xs.
  double MeanSigma(const Eigen::VectorXd& x, double* sigma, Eigen::VectorXd* dmean,
                   Eigen::VectorXd* dsigma) const;
  void MeanSigmaMany(const Eigen::MatrixXd& xs, Eigen::VectorXd* mean, Eigen::VectorXd* sigma) const;
  // z = (mean - threshold) / sigma at x, with sigma and, when dz is set, the gradients of z and
  // sigma.
  double Standardised(const Eigen::VectorXd& x, double threshold, double* sigma,
                      Eigen::VectorXd* dz, Eigen::VectorXd* dsigma) const;

  // -(log marginal likelihood + log prior) at `params` for (X, y), and its gradient in
  // (log theta, log scale, log(noise - min noise)). For tests and Fit.
  double Loss(const GpParams& params, const Eigen::MatrixXd& X, const Eigen::VectorXd& y,
              Eigen::VectorXd* gradient) const;

  // Deterministic objectives: the noise stays at its minimum (1e-6) instead of being fitted.
  void set_fixed_noise(bool fixed) { fixed_noise_ = fixed; }
  const GpParams& params() const { return params_; }
  void set_params(const GpParams& params) { params_ = params; }

 private:
  // r2 between the rows of A and of B, and the kernel matrix.
  Eigen::MatrixXd SquaredDistance(const GpParams& params, const Eigen::MatrixXd& A,
                                  const Eigen::MatrixXd& B) const;
  Eigen::MatrixXd Kernel(const GpParams& params, const Eigen::MatrixXd& A,
                         const Eigen::MatrixXd& B) const;

  std::vector<bool> is_categorical_;
  bool fixed_noise_ = false;
  GpParams params_;
  Eigen::MatrixXd X_;
  Eigen::LLT<Eigen::MatrixXd> llt_;  // C = L L^T, C the kernel matrix plus noise
  Eigen::VectorXd alpha_;            // C^-1 y
};

// log of E[max(0, Z + z)], Z standard normal, stable for very negative z; and its derivative.
double LogH(double z);
double LogHDerivative(double z);
// log Phi(z), Phi the standard normal CDF, stable for very negative z.
double LogNormalCdf(double z);

}  // namespace tune
