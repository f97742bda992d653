// Parzen estimators: the densities l(x) and g(x) that TPE fits to the good and the bad trials
// (private to search/tpe*.cc and their tests; Optuna's samplers/_tpe/parzen_estimator.py).
//
// An estimator is a weighted mixture of kernels, one per observation plus one broad "prior"
// kernel (always last). Weights: each observation's raw weight (DefaultWeight) and the prior's
// weight, normalised to sum to 1.
//   Numeric dimensions: truncated normals on the domain (search/truncnorm.h), in kernel space
//   (search/tpe_dim.h). A kernel's sigma is the larger gap to its neighbours among the sorted
//   observations and the prior's centre (not the centre with prior_neighbour false, as Optuna
//   5.0), with the domain bounds as the outermost neighbours; an observation equal to another
//   takes the smallest sigma (docs/tpe.md, "Ties");
//   unless consider_endpoints, the outermost observations take the gap to their one inner
//   neighbour. Sigmas are clipped to [range / min(100, n + 2), range] (Optuna's "magic clip";
//   n observations). Binned dimensions score a value by each kernel's mass on its bin.
//   Categorical dimensions: an observed choice c_k gives the kernel (base + [c == c_k]) /
//   (1 + choices * base) on choice c, base = categorical_prior_weight / (n + 1); the prior kernel
//   is uniform and weighs categorical_prior_weight.
// "Width-free" scoring (ParzenOptions::width_free) leaves each continuous kernel's 1/sigma factor
// out of the density, as Optuna 3.1's _truncnorm.logpdf did; sampling is unaffected.
//
// Univariate: one estimator per dimension (FitNumeric / FitCategorical), sampled by Pick-ing a
// kernel from `cumulative` and drawing from it. Joint (JointEstimator): one product kernel per
// observation over all dimensions, each factor as wide as the univariate estimator makes it.
//
// Example (one continuous dimension, observations at 2, 3 and 7, equal weights):
//   NumericKernels l = FitNumeric(dim, {2, 3, 7}, {1, 1, 1}, ParzenOptions{});
//   double x = SampleKernel(dim, l, Pick(l.cumulative, rng), rng);
//   double score = MixtureLogDensity(dim, l, x) - MixtureLogDensity(dim, g, x);
//
// Cost: evaluating a univariate continuous mixture is done in float with Eigen's vectorised exp,
// in unit coordinates of the domain (so domains far from 0 keep their resolution). With >= 128
// kernels only those that matter are evaluated: the ~1/16 widest always, the narrow ones only
// within c * cap of x (binary search in the sorted mus), with c chosen from the prior kernel's
// guaranteed share of the density so that the skipped kernels change it by < 1e-6 relative.
// Joint scoring sums each kernel's log terms in float, vectorised over the kernels (categorical
// and binned terms computed once per distinct value); with >= 256 kernels only those within 30
// of the largest are exponentiated.
#pragma once

#include <Eigen/Core>
#include <cstddef>
#include <functional>
#include <random>
#include <utility>
#include <vector>

#include "search/tpe_dim.h"

namespace tune {

struct ParzenOptions {
  double prior_weight = 1.0;              // numeric prior kernel, > 0
  double categorical_prior_weight = 4.0;  // categorical prior kernel, > 0
  bool consider_endpoints = false;
  bool width_free = false;  // score continuous kernels without their 1/sigma factor
  // The prior's centre counts as a neighbour when sizing kernels (Optuna 3.1); false: only the
  // observations and the bounds (Optuna 5.0's _ParzenEstimator).
  bool prior_neighbour = true;
};

// Optuna's default_weights(n) for the observation of rank `rank` (0 = oldest) among n: the 25
// newest weigh 1, older ones ramp down linearly to 1/n.
// (Inline: the searcher calls it for every trial of every suggestion.)
inline double DefaultWeight(std::size_t rank, std::size_t n) {
  constexpr std::size_t kFlat = 25;
  if (n < kFlat || rank >= n - kFlat) return 1.0;
  const std::size_t ramp = n - kFlat;
  if (ramp == 1) return 1.0 / static_cast<double>(n);
  const double start = 1.0 / static_cast<double>(n);
  return start + (1.0 - start) * static_cast<double>(rank) / static_cast<double>(ramp - 1);
}

// Index k with cumulative[k - 1] <= u * total < cumulative[k] for one uniform u of `rng`;
// `cumulative` is non-empty and increasing.
std::size_t Pick(const std::vector<double>& cumulative, std::mt19937_64& rng);

// Kernels of one numeric dimension, the prior last. Weights are normalised over all kernels.
struct NumericKernels {
  Eigen::ArrayXd mu, sigma, weight;
  Eigen::ArrayXd inv_sigma;
  Eigen::ArrayXd log_norm;  // -log(sigma M sqrt(2 pi)) for continuous (width-free: no sigma);
                            // -log(M) for binned; M the kernel's mass on [low, high]
  Eigen::ArrayXd coef;      // weight * exp(log_norm)
  std::vector<double> cumulative;  // of weight, for Pick
  // Binned dimensions: kernels sharing (mu, sigma) share their bin masses, so those are
  // computed once per distinct pair (ints and quantized values repeat a lot).
  std::vector<Eigen::Index> distinct_of;  // kernel -> index into the distinct_ arrays
  Eigen::ArrayXd distinct_mu, distinct_inv_sigma, distinct_log_norm;
  Eigen::ArrayXd distinct_coef;  // summed coef of the kernels sharing the pair
  // Continuous dimensions, for the float fast path: mu as (mu - low) / range, range / sigma.
  Eigen::ArrayXf unit_mu, unit_inv_sigma, coef_f;
  // Univariate continuous dimensions with many kernels: "wide" kernels (always evaluated, the
  // prior among them) and "narrow" ones (sigma <= a cap) sorted by mu, of which only those
  // within `reach` (unit coordinates) of x are evaluated.
  bool windowed = false;
  float reach = 0;
  Eigen::ArrayXf narrow_mu, narrow_inv_sigma, narrow_coef;
  Eigen::ArrayXf wide_mu, wide_inv_sigma, wide_coef;
};

// Kernels of one categorical dimension (see the header comment).
struct CategoricalKernels {
  std::vector<int> choice;   // per observation kernel
  Eigen::ArrayXd weight;     // observations, then the prior
  double base = 0;
  std::vector<double> probs;  // the mixture's probability of each choice
  std::vector<double> cumulative;  // of probs, for Pick
};

// The kernel widths of observations `sorted_mus` (ascending) of one dimension: neighbour gaps,
// clipped (see above); written to sigma[0 .. n).
void NeighbourSigmas(const Dim& dim, const std::vector<double>& sorted_mus,
                     bool consider_endpoints, double* sigma, bool prior_neighbour = true);
// The same for the observation at index i only; prior_slot = PriorSlot(dim, sorted_mus), the
// number of observations at or below the prior's centre. A kernel's width depends only on its
// neighbours and the number of observations.
double NeighbourSigma(const Dim& dim, const std::vector<double>& sorted_mus, std::size_t i,
                      std::size_t prior_slot, bool consider_endpoints, bool prior_neighbour);
std::size_t PriorSlot(const Dim& dim, const std::vector<double>& sorted_mus);

// The univariate estimator of a numeric dimension: observations `sorted_mus` (ascending) with
// their raw weights.
NumericKernels FitNumeric(const Dim& dim, const std::vector<double>& sorted_mus,
                          const std::vector<double>& raw_weights, const ParzenOptions& options);
// The estimator of a categorical dimension: observed choice indices with their raw weights.
CategoricalKernels FitCategorical(const Dim& dim, const std::vector<int>& choices,
                                  const std::vector<double>& raw_weights,
                                  const ParzenOptions& options);

// A draw from kernel k truncated to the domain, snapped onto it; returns the snapped value's
// kernel-space coordinate.
double SampleKernel(const Dim& dim, const NumericKernels& kernels, Eigen::Index k,
                    std::mt19937_64& rng);
double SampleKernel(const Dim& dim, double mu, double sigma, std::mt19937_64& rng);
// A choice index drawn from categorical kernel k.
int SampleChoice(const Dim& dim, const CategoricalKernels& kernels, Eigen::Index k,
                 std::mt19937_64& rng);
// The same from a kernel given by its base and observed choice (-1: the prior kernel).
int SampleChoice(const Dim& dim, double base, int choice, std::mt19937_64& rng);

// log of the univariate mixture's density (continuous) or bin mass (binned) at kernel-space
// point x. Continuous mixtures are summed in float: relative error ~1e-6.
double MixtureLogDensity(const Dim& dim, const NumericKernels& kernels, double x);

// One group's observations for the joint estimator: per dimension, the members' coordinates in
// ascending order and the member each belongs to (fixed dimensions may be left empty); each
// member's raw weight.
struct JointObservations {
  std::vector<std::vector<double>> sorted_x;       // [dimension][i]
  std::vector<std::vector<std::size_t>> member;    // [dimension][i]: index into weights
  std::vector<double> weights;                     // [member]
};

// One set's members for JointEstimator::Update: their keys in ascending order (trial indices:
// they order the kernels) and raw weights; RowOf gives a member's coordinates by key (fixed
// dimensions are not read).
struct JointMembers {
  std::vector<std::size_t> keys;
  std::vector<double> weights;
};
using RowOf = std::function<const double*(std::size_t key)>;

// The joint (multivariate) Parzen estimator: kernel k is the product over dimensions of member
// k's univariate kernels; the prior kernel is the product of the priors. With `scott_widths`,
// every continuous kernel of a dimension takes Optuna 3.x's multivariate width
// 0.2 n^(-1/(d+4)) range instead (benchmark comparison only; Optuna 5.0 sizes its joint kernels
// by the neighbour gaps, as here).
// `dims` must outlive the estimator.
//
// Fit() fits from scratch. Update() refits to a set of members that changes little from one
// call to the next (the good or the bad trials of successive suggestions: each adds a trial and
// moves a few): it keeps each numeric dimension's members sorted, takes out those that left and
// puts in those that joined, recomputes the widths of their neighbours only (past 100 members)
// and a continuous kernel's terms only where its width changed; binned kernels and the weights
// are refitted. The result is the estimator Fit() would build on the same members, bit for bit
// (tests/search/tpe_estimator_test.cc). It falls back to a fresh fit when the dimensions or
// options differ from the previous Update's or more than 8 + n/64 members changed.
class JointEstimator {
 public:
  JointEstimator(const std::vector<Dim>& dims, const JointObservations& observations,
                 const ParzenOptions& options, bool scott_widths = false);
  // An empty estimator for Fit() or Update(), which refit it in place (buffers are reused).
  JointEstimator() = default;
  void Fit(const std::vector<Dim>& dims, const JointObservations& observations,
           const ParzenOptions& options, bool scott_widths = false);
  void Update(const std::vector<Dim>& dims, const JointMembers& members, const RowOf& row,
              const ParzenOptions& options, bool scott_widths = false);

  // A kernel-space point (choice indices for categoricals; fixed dimensions at their value).
  std::vector<double> Sample(std::mt19937_64& rng) const;
  // log density of the mixture at a point Sample() could return. Not const: per-value terms of
  // discrete dimensions are cached.
  double LogPdf(const std::vector<double>& x);

 private:
  struct Dimension {
    // Numeric dimensions: the members by coordinate (ties by key) and each one's kernel width
    // (NaN: not computed yet).
    std::vector<double> sorted_x, sorted_sigma;
    std::vector<std::size_t> sorted_key;
    std::vector<std::size_t> dirty;  // keys whose width may have changed since the last refit
    // Per kernel (members in key order, then the prior): the coordinate (choice index for
    // categoricals, the prior's -1), and for continuous dimensions the width, log_norm (as in
    // NumericKernels) and the unit coordinates scoring reads.
    std::vector<double> mu, sigma, log_norm;
    std::vector<float> unit_mu, unit_inv_sigma;
    NumericKernels binned;  // binned dimensions, refitted on every refit
    // Discrete dimensions: (value, per-kernel log term) for each value scored since the refit.
    std::vector<std::pair<double, Eigen::ArrayXf>> terms;
  };

  void Start(const std::vector<Dim>& dims, const ParzenOptions& options, bool scott_widths,
             std::size_t m);
  static std::size_t SortedPosition(const Dimension& dimension, double x, std::size_t key);
  void EraseKernel(std::size_t d, std::size_t slot);
  void InsertKernel(std::size_t d, std::size_t slot);
  void SetCoordinate(std::size_t d, std::size_t slot, double x);
  void SetWidth(std::size_t d, std::size_t slot, double sigma);
  // `local`: only the widths of the dirty members are recomputed (else every one).
  void Refresh(const std::vector<double>& weights, bool local);
  const Eigen::ArrayXf& DiscreteTerm(std::size_t d, double value);

  const std::vector<Dim>* dims_ = nullptr;
  ParzenOptions options_;
  bool scott_widths_ = false;
  bool incremental_ = false;  // fitted by Update (keys are the caller's)
  std::vector<std::size_t> keys_;         // per kernel but the prior, ascending
  std::vector<std::size_t> slot_of_key_;  // key -> kernel
  std::vector<Dimension> dimensions_;     // [dimension]
  double categorical_base_ = 0;           // categorical kernels' base (as CategoricalKernels')
  // Per kernel: log weight plus each continuous dimension's log_norm (float).
  Eigen::ArrayXf base_;
  std::vector<double> cumulative_;  // of the kernel weights, for Pick
  std::vector<std::size_t> discrete_, continuous_;  // non-fixed dimensions by kind
  Eigen::ArrayXf column_, term_;  // LogPdf's scratch
};

}  // namespace tune
