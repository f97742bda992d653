// Parameter importance for the report's "which parameters matter" view: PED-ANOVA (Watanabe et
// al., IJCAI 2023, arXiv:2304.10255), as Optuna's PedAnovaImportanceEvaluator computes it with
// its defaults (target_quantile 0.1, region_quantile 1.0, evaluate_on_local, 50 grid steps,
// prior weight 1) and get_param_importances normalises it (summing to 1).
//
// For each parameter, its values are binned on a grid (50 steps, fewer for small integer and
// stepped ranges; log-scaled for log distributions; one bin per choice), a Parzen estimator with
// Scott's bandwidth is fitted to the bins of the top 10 % of trials (ties at the cutoff
// included) and another to all trials, and the importance is the Pearson divergence between
// the two densities: how much the good trials' values differ from all values.
// tests/reporters/ped_anova_vs_optuna.py checks it against Optuna's own evaluator.
//
// Example:
//   std::vector<ImportanceParam> params = {{"lr", ImportanceParam::Kind::kFloat, 1e-4, 0.1, 0, true},
//                                          {"opt", ImportanceParam::Kind::kCategorical, 0, 1}};
//   // values[t][p]: parameter p of trial t (a choice's index); losses[t]: lower is better.
//   std::vector<double> importance = PedAnovaImportance(params, values, losses);
#pragma once

#include <string>
#include <vector>

namespace tune {

struct ImportanceParam {
  enum class Kind { kFloat, kInt, kCategorical };
  std::string name;
  Kind kind = Kind::kFloat;
  double low = 0, high = 0;  // kFloat/kInt: inclusive bounds; kCategorical: unused
  double step = 0;           // kFloat: 0 = continuous; kInt: 1 (or its q)
  bool log = false;
  int num_choices = 0;       // kCategorical
};

// One importance per parameter, in `params` order, summing to 1 (all equal, as Optuna's, when
// there are fewer than two trials or no parameter differs). `values[t][p]` is trial t's value of parameter p (for a
// categorical one, the index of its choice); `losses[t]` its objective, lower is better (negate
// a maximised metric). Trials with a non-finite loss are left out. A parameter whose range is a
// single value scores 0.
std::vector<double> PedAnovaImportance(const std::vector<ImportanceParam>& params,
                                       const std::vector<std::vector<double>>& values,
                                       const std::vector<double>& losses,
                                       double target_quantile = 0.1);

}  // namespace tune
