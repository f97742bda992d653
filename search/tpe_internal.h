// Benchmark-only switches of the TPE searcher: bench/tpe_bench.cc compares variants with them.
// No space.json key reaches them, and search/tpe.h does not include this header.
#pragma once

#include <cstddef>
#include <memory>

#include "search/searcher.h"
#include "search/space.h"

namespace tune {

struct TpeInternalOptions {
  // Score continuous kernels without their 1/sigma factor when no trial is pending, as Optuna
  // 3.1 did (docs/tpe.md, "Width-free scoring"). Off since the suite of bench/suite/ (Optuna
  // 5.0 normalises too).
  bool width_free_density = false;
  // Joint kernels with Optuna 3.x's Scott-like widths, 0.2 n^(-1/(d+4)) range in every
  // dimension, instead of the per-dimension neighbour gaps (which Optuna 5.0 uses too).
  bool joint_scott_widths = false;
  // With several objectives, Optuna 5.0's MOTPE estimator: every parameter on its own (unless
  // "multivariate": true), kernels scored with their 1/sigma factor and sized without the
  // prior's centre as a neighbour. false: the single-objective estimator, as before.
  bool motpe_as_optuna = true;
  // Size kernels without the prior's centre as a neighbour (Optuna 5.0) with one objective too:
  // 0 no (tune's default), 1 in both estimators, 2 in the bad set's g(x) only, 3 in the good
  // set's l(x) only.
  int no_prior_neighbour = 0;
  // Which trials a group past the window keeps (search/tpe.cc, Subsample): 0 the newest, 1 a
  // uniform random subsample, 2 half of each.
  int subsample_mode = 0;
};

// Removes the benchmark keys "x_width_free", "x_joint_scott_widths", "x_motpe_as_optuna",
// "x_no_prior_neighbour" (0, 1, 2, 3) and "x_subsample_mode" (0, 1, 2) from a search object and
// returns the switches they set (the others at their defaults); *any tells whether there was
// one. Throws std::invalid_argument for another "x_" key.
TpeInternalOptions TakeTpeInternalKeys(Json* search, bool* any);

// MakeSearcher(space, config) for a "tpe" config, with the switches set.
std::unique_ptr<Searcher> MakeTpeSearcher(const Space& space, const SearcherConfig& config,
                                          const TpeInternalOptions& internal);

}  // namespace tune
