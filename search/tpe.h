// Tree-structured Parzen Estimator (TPE): a Bayesian-optimisation searcher, as in Bergstra et
// al. 2011 and Optuna's TPESampler, selected by "search": {"algorithm": "tpe"} in space.json.
//
// The algorithm. After `n_startup_trials` random configs, every suggestion
//   1. ranks the observed trials and splits them: the best gamma(n) form the "good" set, the
//      rest the "bad" set (gamma(n) = min(ceil(0.1 n), 25) by default);
//   2. fits a Parzen estimator (a weighted mixture of kernels, one per trial, plus one broad
//      "prior" kernel centred on the domain) to each set: l(x) on the good, g(x) on the bad;
//   3. draws `n_ei_candidates` candidates from l(x) and returns the one maximising
//      log l(x) - log g(x), which maximises expected improvement under the TPE model.
// The first `multivariate_after` (40) observations use univariate TPE (Optuna's default: one
// estimator pair per parameter, each parameter sampled and scored on its own); from then on the
// model is joint ("multivariate"): one product kernel per trial over all parameters, candidates
// drawn as whole configs from l(x) and scored by the joint density ratio. See "Why the switch".
// Kernels: floats and ints are truncated normals on the domain, in log space for log domains;
// ints and quantized values use the kernel's mass on the value's bin (value +- step/2), as
// Optuna does, and samples are rounded onto the grid. A kernel's width is the larger gap to its
// neighbours among the observations (and the prior), clipped below by the "magic clip"
// (range / min(100, kernels + 1)) and above by the range; joint kernels take, in each
// dimension, the width univariate TPE gives that trial there. Categorical kernels put weight 1
// on the observed choice plus `categorical_prior_weight` / (kernels) spread over all choices
// (in univariate mode the categorical prior kernel also has that weight). Trial weights are
// Optuna's default_weights: the 25 newest weigh 1, older ones ramp down linearly to 1/n.
// Unlike Optuna, dimensions with more than 1000 values use the continuous density (the bin mass
// of a wide kernel is a difference of two nearly equal CDFs).
// Scoring rule for continuous kernels ("width-free"): when candidates are scored, each kernel's
// truncated-normal density is NOT divided by its sigma, exactly as Optuna 3.1 does (its
// _truncnorm.logpdf leaves out the -log(scale) term), so wide kernels (the prior, isolated
// observations) count for more in l(x) and g(x) than their normalised density says. Sampling
// from l(x) is unaffected. Measured on bench/tpe_bench.cc (sequential, 100 seeds) it beats the
// normalised density on all five functions (median regret at 100 trials: branin 0.033 vs 0.049,
// hartmann6 0.23 vs 0.33, rosenbrock4 61 vs 88, ackley5 8.3 vs 9.9, mixed 0.071 vs 0.20), and it
// is what puts us level with Optuna 3.1. It is used only when no trial is pending in the model:
// with the constant liar, the pending trials' narrow kernels in g(x) are what push concurrent
// suggestions apart, and width-free scoring dilutes them (ASHA, 8 concurrent, 60 seeds:
// hartmann6 0.48 vs 0.35, mixed 0.30 vs 0.10), so with liars the normalised density is used.
// Why the switch (issue 4; bench/README-tpe.md has the tables). Variants were selected on tuning
// seeds 100..299 of bench/tpe_bench.cc (median and mean log regret at 100 trials), then checked
// once on seeds 0..19 / 0..59 against Optuna 3.1. The big lever was the joint model with
// per-dimension neighbour-gap widths (branin 4x lower regret than univariate, hartmann6 and
// ackley5 clearly lower; Optuna's Scott widths for joint kernels are too wide and lose to
// univariate). Joint from the first model-based suggestion is too greedy while the good set has
// 1-3 trials (rosenbrock4, mixed get worse), so the first 40 observations stay univariate
// (30-60 all close). categorical_prior_weight 4 (was prior_weight, 1) cut the share of mixed
// runs stuck on the wrong category. On seeds 0..19 the result beats Optuna 3.1's TPE on all five
// medians at 100 trials (rosenbrock4 only just: 59.6 vs 61.2; its upper tail is heavier than
// univariate's). Rejected: more candidates (small gain; 48 cost 1.2-1.4 ms at 2000 trials),
// EI-weighted good set, larger prior weight, consider_endpoints, magic-clip exponent 2,
// univariate Scott widths, normalised densities in the joint model. The joint model is used only
// when no pending trial (liar) is in the model: with ASHA and 8 concurrent trials it was far
// worse (hartmann6 0.90 vs 0.34), so parallel runs with the constant liar stay univariate
// unless multivariate is true.
//
// Options (keys of the "search" object; defaults in brackets):
//   seed              reproducibility: the same seed and call sequence give the same configs
//   n_startup_trials  [10]   random configs before the model is used
//   n_ei_candidates   [24]   candidates drawn from l(x) per suggestion
//   gamma             [min(ceil(0.1 n), 25)]  a number in (0, 1]: the good set is ceil(gamma n)
//   prior_weight      [1.0]  weight of the prior kernel (> 0)
//   consider_endpoints [false] let the domain bounds act as neighbours of the outermost
//                      observations when choosing their kernel widths
//   categorical_prior_weight [4.0] the prior weight of categorical kernels (> 0): the share of
//                      each categorical kernel spread over the other choices; larger explores
//                      choices more (Watanabe 2023's "categorical bandwidth")
//   multivariate      [false] true: the joint model from the first model-based suggestion,
//                      with or without pending trials
//   multivariate_after [40] (integer >= 0) with multivariate false: univariate TPE until this
//                      many observations, the joint model after (when no liar is pending); a
//                      value >= num_samples keeps univariate TPE throughout (Optuna 3.1's)
//   constant_liar     [true unless max_concurrent == 1] trials suggested but not finished count
//                      as the worst observations (in the bad set), so concurrent suggestions
//                      spread out instead of piling onto the same optimum
//   intermediate      ["last"] how trials stopped early (pruned by ASHA) are used:
//                      "last": every ended trial ranks by its last reported value, whatever
//                        budget it reached (curves improve with budget, so pruned trials rank
//                        low, but a pruned trial that was already good still counts as good).
//                      "rank": Optuna's rule: finished trials rank first by value; pruned trials
//                        after them, by the highest budget they reached, then by their value
//                        there. Pruned trials can only ever be in the bad set.
//                      "budget": BOHB's rule: only trials that reached the largest budget with
//                        at least max(n_startup_trials, d + 1) trials, compared by their value
//                        at that budget; lower-budget trials are dropped.
//                      "last" is the default because it was best on bench/tpe_bench.cc's
//                      multi-fidelity table (ASHA, 8 concurrent; bench/README-tpe.md): "rank"
//                      close behind (ahead on mixed since categorical_prior_weight 4), "budget" worse than random search (it throws away most
//                      of what ASHA measured and re-explores).
//   budget_attr       ["training_iteration"] the result attribute that measures budget.
// Trials that fail (kError) are dropped from the model. Results whose metric is missing or NaN
// are ignored.
//
// Domains: every distribution of Space. normal/qnormal are searched within mean +- 5 sd with the
// normal itself as the prior kernel. grid_search parameters are rejected (SpecError: use
// "choice"), because a grid is an exhaustive plan, not a distribution a model can sample.
// points_to_evaluate come first (their open leaves random) and count as observations.
// TotalTrials() is num_samples.
//
// Cost per suggestion is linear in the number of trials (0.7-1.0 ms CPU at 2000 trials on the
// 6-parameter space of bench/tpe_bench.cc, loaded 2-core machine; bench/README-tpe.md): sorted
// per-parameter coordinates are maintained incrementally on Suggest; per suggestion each
// parameter's two estimators are fitted in O(n) passes. Joint scoring sums each g(x) kernel's
// continuous terms at each candidate (float, vectorised over kernels); categorical and binned
// terms are computed once per distinct candidate value, and, being log probabilities (<= 0),
// only for kernels whose continuous partial sum is within 30 of the best kernel's full term
// (the others add less than n e^-30 of the density). The univariate path evaluates continuous
// mixtures in float with Eigen's vectorised exp, in unit coordinates of the domain (so domains
// far from 0 keep their resolution). When an estimator has >= 128 kernels, only those that matter
// are evaluated: the ~1/16 widest always, the narrow ones (sigma <= cap) only within c * cap of
// the candidate (binary search in the sorted mus), with c chosen from the prior kernel's
// guaranteed share of the density so that the skipped kernels change the density by less than
// 1e-6 relative. Binned (int/quantized) parameters score each distinct candidate value once.
//
// Example:
//   tune::SearcherOptions options;
//   options.metric = "loss"; options.mode = tune::Mode::kMin; options.num_samples = 100;
//   options.algorithm = tune::Json::parse(R"({"algorithm": "tpe", "seed": 1})");
//   auto searcher = tune::MakeSearcher(space, options);   // a TpeSearcher
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "search/searcher.h"
#include "search/space.h"

namespace tune {

struct TpeOptions {
  int n_startup_trials = 10;
  int n_ei_candidates = 24;
  double gamma = 0;  // 0: Optuna's min(ceil(0.1 n), 25); else the fraction ceil(gamma n)
  double prior_weight = 1.0;
  double categorical_prior_weight = 4.0;
  bool consider_endpoints = false;
  bool multivariate = false;
  int multivariate_after = 40;  // observations after which the joint model is used
  bool constant_liar = true;
  enum class Intermediate { kRank, kBudget, kLast };
  Intermediate intermediate = Intermediate::kLast;
  std::string budget_attr = "training_iteration";
  // Internal (no space.json key; set it through MakeTpeSearcher to compare): score continuous
  // kernels without their 1/sigma factor when no trial is pending, as Optuna 3.1 does (see the
  // header comment).
  bool width_free_density = true;
  // Internal (no space.json key): joint kernels with Optuna's Scott-like widths,
  // 0.2 n^(-1/(d+4)) range in every dimension, instead of the per-dimension neighbour gaps
  // (bench/tpe_bench.cc compares them).
  bool joint_scott_widths = false;
};

// Reads the TPE keys of options.algorithm (already checked to be known keys) into TpeOptions.
// Throws SpecError naming e.g. "search.gamma" for a value of the wrong type or range.
TpeOptions ParseTpeOptions(const SearcherOptions& options);

// Throws SpecError for a space TPE cannot search (grid_search parameters) or bad options.
std::unique_ptr<Searcher> MakeTpeSearcher(const Space& space, const SearcherOptions& options,
                                          const TpeOptions& tpe);

}  // namespace tune
