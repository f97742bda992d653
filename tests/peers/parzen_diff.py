#!/usr/bin/env python3
"""Differential test: the univariate Parzen estimator of tune's MOTPE (search/tpe_estimator.h
FitNumeric / MixtureLogDensity with Optuna 5.0's kernel widths) against Optuna 5.0's own
_ParzenEstimator: random observations (no two equal) on linear and log continuous domains (1 to
300 of them) and on integer domains of 3 to 901 values (bin masses; 1 to 100 observations),
random positive weights (MOTPE's good set weighs 1, the bad set Optuna's default_weights; any
weights must give the same mixture), prior weights 0.5-2, with and without consider_endpoints; the log density at random points of the domain, its bounds included, must
agree to 1e-4 (tune sums the mixture in float). For log domains both are densities of log x.
(Categorical estimators are unit-tested against Optuna's numbers in
tests/search/tpe_estimator_test.cc; equal observations are a deliberate difference, docs/tpe.md
"Ties"; integer domains of 1,000 values or more use the continuous density, another.)

  parzen_diff.py --replay build/bin/tune-test-parzen-replay [--cases 1000] [--seed 0]
Exit status: 0 identical, 1 a difference (the case and both values are printed), 77 optuna cannot
be imported and CI is not "true".
"""
import math
import sys

from peers_common import random_cases, require


def make_case(rng):
    if rng.random() < 0.3:  # integers, fewer than 1,000 values (densities are bin masses)
        low = rng.randint(-50, 50)
        span = rng.choice([2, 5, 10, 50, 200, 900])
        observations = rng.sample(range(low, low + span + 1), rng.randint(1, min(span + 1, 100)))
        return {"domain": {"randint": [low, low + span + 1]},
                "observations": [float(o) for o in observations],
                "weights": [rng.uniform(0.05, 1) for _ in observations],
                "prior_weight": rng.choice([0.5, 1.0, 2.0]),
                "consider_endpoints": rng.random() < 0.5,
                "points": [float(low), float(low + span)]
                + [float(rng.randint(low, low + span)) for _ in range(8)]}
    log = rng.random() < 0.4
    if log:
        low = 10 ** rng.uniform(-6, 0)
        high = low * 10 ** rng.uniform(0.5, 6)
    else:
        low = rng.uniform(-100, 100)
        high = low + 10 ** rng.uniform(-2, 3)
    n = rng.choice([1, 2, 3, 5, 10, 30, 100, 300])
    if log:
        observations = sorted({math.exp(rng.uniform(math.log(low), math.log(high)))
                               for _ in range(n)})
    else:
        observations = sorted({rng.uniform(low, high) for _ in range(n)})
    rng.shuffle(observations)
    # The bounds themselves, on a log domain just inside them: at x exactly equal to the lower
    # bound of a log domain Optuna's density drops (one case: -4.30 there, -0.90 at 1e-12 above
    # it, tune -0.90), a quirk of a point its sampler never draws.
    bounds = [low * (1 + 1e-12), high * (1 - 1e-12)] if log else [low, high]
    points = bounds + [math.exp(rng.uniform(math.log(low), math.log(high))) if log
                       else rng.uniform(low, high) for _ in range(8)]
    return {"domain": {"loguniform" if log else "uniform": [low, high]},
            "observations": observations,
            "weights": [rng.uniform(0.05, 1) for _ in observations],
            "prior_weight": rng.choice([0.5, 1.0, 2.0]),
            "consider_endpoints": rng.random() < 0.5, "points": points}


def main():
    np, optuna, pe = require("parzen_diff", "numpy", "optuna",
                             "optuna.samplers._tpe.parzen_estimator")
    from optuna.samplers._tpe.sampler import default_weights
    cases, out = random_cases(__doc__, "tune-test-parzen-replay", 1000, make_case)
    failures, worst = 0, 0.0
    for number, (case, answer) in enumerate(zip(cases, out)):
        (kind, (low, high)), = case["domain"].items()
        distribution = (optuna.distributions.IntDistribution(low, high - 1) if kind == "randint"
                        else optuna.distributions.FloatDistribution(low, high,
                                                                   log=kind == "loguniform"))
        parameters = pe._ParzenEstimatorParameters(
            prior_weight=case["prior_weight"], consider_magic_clip=True,
            consider_endpoints=case["consider_endpoints"], weights=default_weights,
            multivariate=False)
        estimator = pe._ParzenEstimator({"x": np.array(case["observations"])}, {"x": distribution},
                                        parameters, np.array(case["weights"]))
        theirs = estimator.log_pdf({"x": np.array(case["points"])})
        ours = np.array(answer["log_pdf"])
        difference = float(np.max(np.abs(ours - theirs)))
        worst = max(worst, difference)
        if not difference <= 1e-4:
            failures += 1
            if failures <= 3:
                print(f"FAIL case {number} ({kind} [{low:.6g}, {high:.6g}], "
                      f"{len(case['observations'])} observations, prior weight "
                      f"{case['prior_weight']}, endpoints {case['consider_endpoints']}):\n"
                      f"  tune  {ours.tolist()}\n  optuna {theirs.tolist()}")
    print(f"{len(cases) - failures} of {len(cases)} estimators agree (largest difference of log "
          f"density {worst:.2g}), {failures} differ")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
