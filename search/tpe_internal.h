// Benchmark-only switches of the TPE searcher: bench/tpe_bench.cc compares variants with them.
// No space.json key reaches them, and search/tpe.h does not include this header.
#pragma once

#include <memory>

#include "search/searcher.h"
#include "search/space.h"

namespace tune {

struct TpeInternalOptions {
  // Score continuous kernels without their 1/sigma factor when no trial is pending, as Optuna
  // 3.1 did (docs/tpe.md, "Width-free scoring"). Off since the suite of bench/suite/ (Optuna
  // 5.0 normalises too).
  bool width_free_density = false;
  // Joint kernels with Optuna's Scott-like widths, 0.2 n^(-1/(d+4)) range in every dimension,
  // instead of the per-dimension neighbour gaps.
  bool joint_scott_widths = false;
  // With several objectives, Optuna 5.0's MOTPE estimator: every parameter on its own (unless
  // "multivariate": true), kernels scored with their 1/sigma factor and sized without the
  // prior's centre as a neighbour. false: the single-objective estimator, as before.
  bool motpe_as_optuna = true;
};

// MakeSearcher(space, config) for a "tpe" config, with the switches set.
std::unique_ptr<Searcher> MakeTpeSearcher(const Space& space, const SearcherConfig& config,
                                          const TpeInternalOptions& internal);

}  // namespace tune
