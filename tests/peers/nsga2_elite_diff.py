#!/usr/bin/env python3
"""Differential test: NSGA-II's survivor selection, tune's (search/nsga2.h SelectElite, used by
search/nsga2.cc for every new parent population) against Optuna 5.0's own
NSGAIIElitePopulationSelectionStrategy (non-dominated ranks, or Deb's constrained ranks when the
trials carry constraints; the rank that does not fit whole cut by crowding distance).

Random populations of 2 to 120 trials, 1 to 4 objectives (minimised): continuous values, small
integers (ties of rank and of crowding distance, duplicated points, several boundary points with
infinite distance competing for the last places), and with two constraints on some trials
(infeasible ones ranked by total violation); the population size to select is random. The
selected set must be the same every time, equal distances included: tune sorts the cut rank as
Optuna's in-place sorts leave it.

  nsga2_elite_diff.py --replay build/bin/tune-test-nsga2-elite-replay [--cases 2000] [--seed 0]
Exit status: 0 identical, 1 a difference (the case and both sets are printed), 77 optuna cannot
be imported and CI is not "true".
"""
import json
import sys

from peers_common import random_cases, require


def make_case(rng):
    m = rng.choice([1, 2, 2, 3, 3, 4])
    n = rng.randint(2, 120)
    integers = rng.random() < 0.5
    constrained = rng.random() < 0.3
    losses, constraints = [], []
    for _ in range(n):
        if integers:
            losses.append([float(rng.randint(0, 5)) for _ in range(m)])
        else:
            losses.append([rng.uniform(-1, 3) for _ in range(m)])
        if constrained:
            constraints.append([rng.choice([-1.0, 0.0, 0.5, 1.0, 2.0]) if integers
                                else rng.uniform(-2, 1) for _ in range(2)])
    return {"losses": losses, "constraints": constraints if constrained else None,
            "size": rng.randint(1, n)}


def driver_line(case):
    """The case as the driver reads it: each trial's total violation (Optuna's penalty)."""
    violations = ([sum(v for v in c if v > 0) for c in case["constraints"]]
                  if case["constraints"] else [0.0] * len(case["losses"]))
    return json.dumps({"losses": case["losses"], "violations": violations, "size": case["size"]})


def main():
    optuna, elite = require("nsga2_elite_diff", "optuna",
                            "optuna.samplers.nsgaii._elite_population_selection_strategy")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    cases, out = random_cases(__doc__, "tune-test-nsga2-elite-replay", 2000, make_case,
                              driver_line)
    failures = 0
    for number, (case, answer) in enumerate(zip(cases, out)):
        m = len(case["losses"][0])
        study = optuna.create_study(directions=["minimize"] * m)
        population = []
        for i, values in enumerate(case["losses"]):
            constraints = ({f"c{j}": v for j, v in enumerate(case["constraints"][i])}
                           if case["constraints"] else None)
            trial = optuna.trial.create_trial(values=values, params={}, distributions={},
                                              constraints=constraints)
            trial.number = i
            population.append(trial)
        strategy = elite.NSGAIIElitePopulationSelectionStrategy(
            population_size=max(case["size"], 2))
        theirs = sorted(t.number for t in strategy(study, population)[:case["size"]])
        ours = answer["chosen"]
        if ours != theirs:
            failures += 1
            if failures <= 3:
                print(f"FAIL case {number} ({len(case['losses'])} trials, {m} objectives, size "
                      f"{case['size']}, constrained {case['constraints'] is not None}): tune "
                      f"{ours}, optuna {theirs}\n  losses {case['losses']}")
    print(f"{len(cases) - failures} of {len(cases)} selections identical, {failures} different")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
