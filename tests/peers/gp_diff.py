#!/usr/bin/env python3
"""tune's GP searcher (search/gp.cc) against Optuna 5.0's GPSampler, history by history.

Histories: Optuna's GPSampler(seed=s) run on the shared functions of
shared/baselines/optuna/bench_quality.py, cut after k trials. Each history goes to both sides: to
a fresh GPSampler (its trials added to a new study, then one ask()) and to tune through
tests/peers/gp_replay.cc (the same configs as points_to_evaluate, then one suggestion). Both
fit their kernel from the defaults, so the fitted parameters are compared directly, and each
side's suggestion is scored by Optuna's own log EI under Optuna's fitted GP (a lower log EI
means a worse maximiser of the same function, a higher one a better).

The test passes when (1) tune's fitted kernel is, by Optuna's own loss (-log marginal likelihood
- log prior), no worse than Optuna's by more than 0.01 on every history, and agrees with it (scale
and noise within 2 % or both at the minimum 1e-6 (+1 %), every inverse squared length scale within
5 %) on >= 80 % of them; (2) tune's suggestion has Optuna's log EI within 0.01 of Optuna's
suggestion's on >= 70 % of the histories (the same optimum of the acquisition found) and is lower
by more than 0.5 on <= 10 % (a different local optimum: both sides start their local searches
from random points). Measured with Optuna 5.0.0 (4 seeds x 5 functions x 3 cuts, ~40 s): the fit
agrees on 55 of 60 (the other 5: the noise 2-3 % apart after 15 trials, both fits stop at a
projected gradient of 0.01; the losses within 0.002), the optimum on 49 of 60, tune higher on 5,
lower on 6, by > 0.5 on 1. With the noise floor of 7.1e-6 that ee7a25f removed, the fit agrees
on 48 and is worse by the loss on 7: the test fails.

  gp_diff.py --replay build/bin/tune-test-gp-replay [--seeds 4] [--cuts 15,25,35]
             [--functions branin,hartmann6,rosenbrock4,ackley5,mixed] [--search JSON]
Prints one line per history and a summary. Exit status: 0 pass, 1 fail, 77 optuna (or torch,
scipy) cannot be imported and CI is not "true".
"""

import argparse
import json
import subprocess
import sys

from peers_common import require


def functions():
    """The five shared functions of bench/peers/tpe.py (shared/baselines/optuna/bench_quality.py),
    written out here so that the test needs nothing outside the repository."""
    import math
    import numpy as np

    def branin(trial):
        x1 = trial.suggest_float("x1", -5.0, 10.0)
        x2 = trial.suggest_float("x2", 0.0, 15.0)
        b, c, t = 5.1 / (4 * math.pi ** 2), 5.0 / math.pi, 1.0 / (8 * math.pi)
        return (x2 - b * x1 ** 2 + c * x1 - 6.0) ** 2 + 10.0 * (1 - t) * math.cos(x1) + 10.0

    alpha = np.array([1.0, 1.2, 3.0, 3.2])
    A = np.array([[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14],
                  [3, 3.5, 1.7, 10, 17, 8], [17, 8, 0.05, 10, 0.1, 14]], dtype=float)
    P = 1e-4 * np.array([[1312, 1696, 5569, 124, 8283, 5886], [2329, 4135, 8307, 3736, 1004, 9991],
                         [2348, 1451, 3522, 2883, 3047, 6650], [4047, 8828, 8732, 5743, 1091, 381]])

    def hartmann6(trial):
        x = np.array([trial.suggest_float(f"x{i}", 0.0, 1.0) for i in range(6)])
        return float(-np.sum(alpha * np.exp(-np.sum(A * (x - P) ** 2, axis=1))))

    def rosenbrock4(trial):
        x = [trial.suggest_float(f"x{i}", -5.0, 10.0) for i in range(4)]
        return float(sum(100.0 * (x[i + 1] - x[i] ** 2) ** 2 + (1 - x[i]) ** 2 for i in range(3)))

    def ackley5(trial):
        x = np.array([trial.suggest_float(f"x{i}", -32.768, 32.768) for i in range(5)])
        return float(-20.0 * math.exp(-0.2 * math.sqrt(np.sum(x ** 2) / 5))
                     - math.exp(np.sum(np.cos(2 * math.pi * x)) / 5) + 20.0 + math.e)

    offset = {"relu": 0.0, "tanh": 0.5, "sigmoid": 1.0, "linear": 2.0}
    centre = {"relu": 2.0, "tanh": -1.0, "sigmoid": 0.0, "linear": 3.0}

    def mixed(trial):
        x = trial.suggest_float("x", -5.0, 5.0)
        lr = trial.suggest_float("lr", 1e-4, 1.0, log=True)
        n = trial.suggest_int("n", 1, 16)
        act = trial.suggest_categorical("act", ["relu", "tanh", "sigmoid", "linear"])
        return (offset[act] + (x - centre[act]) ** 2
                + (math.log10(lr) + 2 + 0.1 * (n - 6)) ** 2 + 0.05 * (n - 11) ** 2)

    return {"branin": branin, "hartmann6": hartmann6, "rosenbrock4": rosenbrock4,
            "ackley5": ackley5, "mixed": mixed}


def import_peers():
    # scipy: GPSampler's fit; torch: its model.
    np, optuna, _, _ = require("gp_diff", "numpy", "optuna", "scipy", "torch")
    return np, optuna


def tune_space(distributions):
    import optuna
    space = {}
    for name, d in distributions.items():
        if isinstance(d, optuna.distributions.FloatDistribution):
            space[name] = {"loguniform" if d.log else "uniform": [d.low, d.high]}
        elif isinstance(d, optuna.distributions.IntDistribution):
            space[name] = {"randint": [d.low, d.high + 1]}
        else:
            space[name] = {"choice": list(d.choices)}
    return space


def suggest(trial, name, d):
    """trial.suggest_* for distribution d (what Optuna's relative sampling then answers)."""
    import optuna
    if isinstance(d, optuna.distributions.FloatDistribution):
        return trial.suggest_float(name, d.low, d.high, log=d.log)
    if isinstance(d, optuna.distributions.IntDistribution):
        return trial.suggest_int(name, d.low, d.high, log=d.log)
    return trial.suggest_categorical(name, d.choices)


def is_choice(distribution):
    import optuna
    return isinstance(distribution, optuna.distributions.CategoricalDistribution)


def optuna_loss(gpr_class, gpr, X, y, theta, scale, noise):
    """Optuna's fit objective, -(log marginal likelihood + log prior), at the given kernel."""
    import torch
    from optuna._gp import prior
    model = gpr_class(is_categorical=gpr._is_categorical, X_train=torch.from_numpy(X),
                      y_train=torch.from_numpy(y),
                      inverse_squared_lengthscales=torch.tensor(theta, dtype=torch.float64),
                      kernel_scale=torch.tensor(scale, dtype=torch.float64),
                      noise_var=torch.tensor(noise, dtype=torch.float64))
    with torch.no_grad():
        return float(-model.marginal_log_likelihood() - prior.default_log_prior(model))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--replay", required=True, help="the tune-test-gp-replay binary")
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--cuts", default="15,25,35")
    parser.add_argument("--functions", default="branin,hartmann6,rosenbrock4,ackley5,mixed")
    parser.add_argument("--search", default='{"algorithm": "gp"}')
    args = parser.parse_args()
    np, optuna = import_peers()
    import warnings
    from optuna._gp import acqf as acqf_module
    from optuna._gp import gp as gp_module
    from optuna._gp import search_space as gp_search_space
    from optuna.samplers._gp.sampler import _standardize_values
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore")
    if optuna.__version__ != "5.0.0":
        print(f"gp_diff: note: optuna {optuna.__version__}; the thresholds were measured on 5.0.0")
    table = functions()

    cuts = [int(c) for c in args.cuts.split(",")]
    rows = []  # (fit agrees, fit no worse, acquisition difference)
    for f in args.functions.split(","):
        for seed in range(args.seeds):
            study = optuna.create_study(sampler=optuna.samplers.GPSampler(seed=seed))
            study.optimize(table[f], n_trials=max(cuts))
            for k in cuts:
                history = study.trials[:k]
                # In the order of Optuna's relative search space (sorted by name), which its GP's
                # coordinates follow.
                distributions = dict(sorted(history[0].distributions.items()))
                names = list(distributions)
                # Optuna's side: a fresh sampler on the history, one ask().
                sampler = optuna.samplers.GPSampler(seed=1000 + seed)
                fresh = optuna.create_study(sampler=sampler)
                for t in history:
                    fresh.add_trial(t)
                trial = fresh.ask()
                theirs = {name: suggest(trial, name, d) for name, d in distributions.items()}
                gpr = sampler._gprs_cache_list[0]
                space = gp_search_space.SearchSpace(distributions)
                X = space.get_normalized_params(history)
                y, _, _ = _standardize_values(np.array([[-t.value] for t in history]))
                acqf = acqf_module.LogEI(gpr=gpr, search_space=space, threshold=y[:, 0].max())
                # tune's side.
                case = {"space": tune_space(distributions), "search": json.loads(args.search),
                        "seed": seed, "mode": "min",
                        "history": [[dict(t.params), t.value] for t in history]}
                out = subprocess.run([args.replay], input=json.dumps(case) + "\n",
                                     stdout=subprocess.PIPE, text=True, check=True).stdout
                ours = json.loads(out)

                def score(params):
                    frozen = optuna.trial.create_trial(params=params, distributions=distributions,
                                                       value=0.0)
                    return float(acqf.eval_acqf_no_grad(space.get_normalized_params([frozen]))[0])

                a_theirs, a_ours = score(theirs), score(ours["config"])
                # tune's coordinate order: numeric parameters, then choices, each by name.
                order = sorted(n for n in names if not is_choice(distributions[n]))
                order += sorted(n for n in names if is_choice(distributions[n]))
                theta_theirs = gpr.inverse_squared_lengthscales.numpy()
                theta_ours = np.array([ours["theta"][order.index(n)] for n in names])
                scale_theirs, noise_theirs = gpr.kernel_scale.item(), gpr.noise_var.item()
                agrees = (abs(ours["scale"] / scale_theirs - 1) <= 0.02
                          and (abs(ours["noise"] / noise_theirs - 1) <= 0.02
                               or max(ours["noise"], noise_theirs) <= 1.01e-6)
                          and np.all(np.abs(theta_ours / theta_theirs - 1) <= 0.05))
                loss_ours = optuna_loss(gp_module.GPRegressor, gpr, X, y[:, 0], theta_ours,
                                        ours["scale"], ours["noise"])
                loss_theirs = optuna_loss(gp_module.GPRegressor, gpr, X, y[:, 0], theta_theirs,
                                          scale_theirs, noise_theirs)
                no_worse = loss_ours <= loss_theirs + 0.01
                rows.append((agrees, no_worse, a_ours - a_theirs))
                print(f"{f:12} seed {seed} k {k:3}: fit {'agrees' if agrees else 'DIFFERS'}"
                      f" (loss tune {loss_ours:.4f}, optuna {loss_theirs:.4f}; scale "
                      f"{ours['scale']:.4g} / {scale_theirs:.4g}, noise {ours['noise']:.3g} / "
                      f"{noise_theirs:.3g}, theta tune/optuna "
                      f"{np.array2string(theta_ours / theta_theirs, precision=3)}); log EI of the "
                      f"suggestion: tune {a_ours:.4f}, optuna {a_theirs:.4f} "
                      f"({a_ours - a_theirs:+.4f})", flush=True)
    n = len(rows)
    fits = sum(r[0] for r in rows)
    worse_fits = sum(1 for r in rows if not r[1])
    diffs = np.array([r[2] for r in rows])
    same = int(np.sum(np.abs(diffs) <= 0.01))
    much_lower = int(np.sum(diffs < -0.5))
    print(f"\n{n} histories: the fit agrees on {fits} (worse by Optuna's loss, by > 0.01, on "
          f"{worse_fits}); the suggestion's log EI within 0.01 of Optuna's on {same}, higher on "
          f"{int(np.sum(diffs > 0.01))}, lower on {int(np.sum(diffs < -0.01))} (by > 0.5 on "
          f"{much_lower})")
    failures = []
    if fits < 0.8 * n:
        failures.append(f"the fit agrees on {fits} of {n} (< 80 %)")
    if worse_fits:
        failures.append(f"tune's fit is worse than Optuna's by its own loss (> 0.01) on {worse_fits}")
    if same < 0.7 * n:
        failures.append(f"the same acquisition optimum on {same} of {n} (< 70 %)")
    if much_lower > 0.1 * n:
        failures.append(f"tune's suggestion lower by > 0.5 in log EI on {much_lower} of {n} (> 10 %)")
    for failure in failures:
        print("FAIL " + failure)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
