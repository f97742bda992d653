#!/usr/bin/env python3
"""Differential test: tune's CMA-ES (search/cmaes.cc) against the `cmaes` package 0.13.1, the
backend of Optuna 5.0's CmaEsSampler (CMA for continuous spaces, CMAwM with the margin).

tests/peers/cmaes_replay.cc runs tune's searcher on a test function and prints each trial's sample
(the point of N(m, sigma^2 C) it was proposed from, before the margin's scaling and rounding) with
its value, and the model after every generation. This script tells the package the same samples
and values, generation by generation, in the order tune told them, and requires after every
generation the same mean, step size, covariance matrix, evolution paths, generation count and (with
the margin) the same scale A of the integer coordinates; with IPOP restarts, tune must restart
exactly where the package's should_stop() says so, with twice the population, and the package
must not say so anywhere else. The cases cover an ill-conditioned ellipsoid, Rosenbrock,
integers with the margin (one of them with two values, whose boundary the initial mean sits on),
random startup trials, ties and flat fitness (a plateau that restarts again and again), and a
sphere run to convergence and restarted.

tune's unit coordinates map an integer parameter with m values to the centres (k + 1/2) / m of
[0, 1] (the range widened by half a step on each side, search/unit_space.h), so the package gets
bounds [1/(2m), 1 - 1/(2m)] and step 1/m for it, and [0, 1] for a continuous coordinate.

  cmaes_diff.py --replay build/bin/tune-test-cmaes-replay
Exit status: 0 identical, 1 a difference (the case, the generation, the field and both values are
printed), 77 `cmaes` cannot be imported and CI is not "true".
"""

import argparse
import json
import math
import subprocess
import sys

from peers_common import require

CASES = [
    {"name": "ellipsoid 6-d, no restarts",
     "space": {f"x{i}": {"uniform": [-1, 1]} for i in range(6)},
     "search": {"algorithm": "cmaes", "restart_strategy": "none"},
     "trials": 900, "seed": 1, "objective": "ellipsoid"},
    {"name": "rosenbrock 3-d, IPOP",
     "space": {f"x{i}": {"uniform": [-2, 2]} for i in range(3)},
     "search": {"algorithm": "cmaes"},
     "trials": 1400, "seed": 2, "objective": "rosenbrock"},
    {"name": "sphere with integers and the margin, IPOP",
     "space": {"a": {"uniform": [-1, 1]}, "b": {"uniform": [-1, 1]}, "c": {"uniform": [0, 2]},
               "n": {"randint": [0, 10]}, "flag": {"randint": [0, 2]}, "k": {"randint": [-3, 5]}},
     "search": {"algorithm": "cmaes"},
     "trials": 1500, "seed": 3, "objective": "sphere"},
    {"name": "plateau, 5 random startup trials, IPOP",
     "space": {f"x{i}": {"uniform": [-1, 1]} for i in range(3)},
     "search": {"algorithm": "cmaes", "n_startup_trials": 5},
     "trials": 1200, "seed": 4, "objective": "plateau"},
    {"name": "sphere 2-d to convergence, IPOP, sigma0 0.3",
     "space": {f"x{i}": {"uniform": [-1, 1]} for i in range(2)},
     "search": {"algorithm": "cmaes", "sigma0": 0.3},
     "trials": 2500, "seed": 5, "objective": "sphere"},
]


def import_cmaes():
    return require("cmaes_diff", "cmaes", "numpy")


class Mismatch(Exception):
    pass


def dims_of(space):
    """Per parameter in tune's order (the space's keys sorted, as its JSON objects keep them):
    None (continuous) or its number of values (randint)."""
    out = []
    for _, domain in sorted(space.items()):
        (kind, args), = domain.items()
        out.append(args[1] - args[0] if kind == "randint" else None)
    return out


def make_optimizer(cmaes, np, case, dims, popsize, mean=None):
    n = len(dims)
    search = case["search"]
    sigma0 = search.get("sigma0", 1 / 6)
    start = np.full(n, 0.5)
    bounds = np.array([[0.0, 1.0] if m is None else [0.5 / m, 1 - 0.5 / m] for m in dims])
    margin = search.get("with_margin", True) and any(m is not None for m in dims)
    if margin:
        steps = np.array([0.0 if m is None else 1.0 / m for m in dims])
        optimizer = cmaes.CMAwM(mean=start, sigma=sigma0, bounds=bounds, steps=steps,
                                population_size=popsize)
        inner = optimizer._cma
    else:
        optimizer = cmaes.CMA(mean=start, sigma=sigma0, bounds=bounds, population_size=popsize)
        inner = optimizer
    if mean is not None:  # a restart: tune's random mean (the package checks means against bounds)
        inner._mean = np.array(mean, dtype=float)
    return optimizer, inner, margin


def compare(np, case, where, ours, inner, optimizer, margin, dims):
    n = len(dims)
    mean = np.array(ours["mean"])
    sigma = ours["sigma"]
    C = np.array(ours["C"]).reshape(n, n, order="F")
    fields = [
        ("generation", ours["generation"], inner.generation, 0),
        ("sigma", sigma, inner._sigma, 1e-9 * inner._sigma),
        ("mean", mean, inner._mean, 1e-9 * inner._sigma * math.sqrt(np.max(np.diag(inner._C))) + 4e-16),
        ("C", C, inner._C, 1e-8 * np.max(np.abs(inner._C))),
        ("p_sigma", np.array(ours["p_sigma"]), inner._p_sigma, 1e-8 * max(1.0, np.max(np.abs(inner._p_sigma)))),
        ("p_c", np.array(ours["p_c"]), inner._pc, 1e-8 * max(1.0, np.max(np.abs(inner._pc)))),
    ]
    if margin:
        fields.append(("A", np.array(ours["A"]), optimizer._A, 1e-8 * max(1.0, np.max(np.abs(optimizer._A)))))
    for name, a, b, tolerance in fields:
        if np.max(np.abs(np.asarray(a, dtype=float) - np.asarray(b, dtype=float))) > tolerance:
            raise Mismatch(f"{case['name']}: {where}: {name} differs (tolerance {tolerance:.3g}):\n"
                           f"  tune:  {a}\n  cmaes: {b}")


def replay(cmaes, np, case, lines):
    dims = dims_of(case["space"])
    n = len(dims)
    restarts = case["search"].get("restart_strategy", "ipop") == "ipop"
    popsize = case["search"].get("popsize", 0) or 4 + math.floor(3 * math.log(n))
    optimizer, inner, margin = make_optimizer(cmaes, np, case, dims, popsize)
    run, pending, updates, restarted = 0, [], 0, 0
    for line in lines:
        event = json.loads(line)
        if "trial" in event:
            if event["raw"] is not None:
                pending.append((np.array(event["raw"]), event["loss"]))
            continue
        if "end" in event:
            break
        update = event["update"]
        where = f"run {update['run']}, generation {update['generation']}"
        if len(pending) != popsize:
            raise Mismatch(f"{case['name']}: {where}: tune updated after {len(pending)} samples, "
                           f"the population is {popsize}")
        optimizer.tell(pending)
        pending = []
        updates += 1
        stop = optimizer.should_stop()
        if update["run"] == run:
            if restarts and stop:
                raise Mismatch(f"{case['name']}: {where}: the package's should_stop() is true, "
                               "tune did not restart")
            compare(np, case, where, update["cma"], inner, optimizer, margin, dims)
            continue
        if update["run"] != run + 1 or not restarts:
            raise Mismatch(f"{case['name']}: {where}: unexpected run {update['run']} after {run}")
        if not stop:
            raise Mismatch(f"{case['name']}: {where}: tune restarted, the package's should_stop() "
                           "is false")
        if update["popsize"] != 2 * popsize:
            raise Mismatch(f"{case['name']}: {where}: restart with population {update['popsize']}, "
                           f"not {2 * popsize}")
        run, popsize, restarted = run + 1, update["popsize"], restarted + 1
        optimizer, inner, margin = make_optimizer(cmaes, np, case, dims, popsize,
                                                  mean=update["cma"]["mean"])
        compare(np, case, where + " (fresh)", update["cma"], inner, optimizer, margin, dims)
    return updates, restarted


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--replay", required=True, help="the tune-test-cmaes-replay binary")
    args = parser.parse_args()
    cmaes, np = import_cmaes()
    if cmaes.__version__ != "0.13.1":
        print(f"cmaes_diff: note: cmaes {cmaes.__version__}, the test was written against 0.13.1")
    stdin = "".join(json.dumps({k: v for k, v in case.items() if k != "name"}) + "\n"
                    for case in CASES)
    out = subprocess.run([args.replay], input=stdin, stdout=subprocess.PIPE, text=True, check=True)
    lines = out.stdout.splitlines()
    failed = 0
    for case in CASES:
        end = next(i for i, line in enumerate(lines) if line.startswith('{"end"'))
        mine, lines = lines[:end + 1], lines[end + 1:]
        try:
            updates, restarts = replay(cmaes, np, case, mine)
            print(f"ok   {case['name']}: {updates} generations, {restarts} restarts identical")
        except Mismatch as error:
            failed += 1
            print(f"FAIL {error}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
