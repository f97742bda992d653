#!/usr/bin/env python3
"""Differential test: MOTPE's split of the trials into the good and the bad set, tune's
(search/hypervolume.h BestByRankAndHypervolume, used by search/tpe.cc) against Optuna 5.0's own
`_split_complete_trials_multi_objective` (non-dominated ranks, then the greedy hypervolume subset
selection of the rank that does not fit whole, against that rank's reference point).

Random loss sets, 2 to 4 objectives, 2 to 150 points: continuous values (ties of the hypervolume
contribution almost never), small integers (many ties and duplicated points), points on a front
(one rank) and mixtures, with `below` both Optuna's ceil(0.1 n) and random. The good set must be
the same set of trials every time, except where the greedy subset selection meets two points
whose hypervolume gains are equal or within rounding of each other: tune treats gains within
1e-9 (relative) as a tie and keeps the lexicographically smaller point (Optuna's order for an
exact tie), while Optuna's floating point decides (for example (1, 0, 0) and (0, 0, 5) against
the reference (1.1, 1.1, 5.5) add 0.1 x 1.1 x 5.5 and 1.1 x 1.1 x 0.5, equal up to the last
bits of 1.1 and 5.5). Such a case passes when, replayed in exact rational arithmetic, the two
sets part at a step where each holds a point within 1e-12 of the best gain. The default run (1,500
cases) has 5 of them, all among small-integer losses.

  motpe_split_diff.py --replay build/bin/tune-test-motpe-split-replay [--cases 1500] [--seed 0]
Exit status: 0 identical, 1 a difference (the case and both sets are printed), 77 optuna cannot
be imported and CI is not "true".
"""
import math
import sys
from fractions import Fraction

from peers_common import random_cases, require


def make_case(rng):
    m = rng.choice([2, 2, 3, 3, 4])
    n = rng.randint(2, 150)
    kind = rng.choice(["continuous", "integers", "front", "mixed"])
    losses = []
    for _ in range(n):
        if kind == "integers":
            losses.append([float(rng.randint(0, 6)) for _ in range(m)])
        elif kind == "front" or (kind == "mixed" and rng.random() < 0.5):
            # On the simplex sum = 1 (one front), scaled a little at random.
            w = [rng.random() for _ in range(m)]
            scale = 1 + (0 if kind == "front" else rng.random())
            losses.append([scale * x / sum(w) for x in w])
        else:
            losses.append([rng.uniform(-1, 3) for _ in range(m)])
    below = math.ceil(0.1 * n) if rng.random() < 0.5 else rng.randint(1, n - 1)
    return {"losses": losses, "below": below}


def exact_hypervolume(points, reference):
    """The hypervolume in exact rational arithmetic (slices along the last objective)."""
    points = [p for p in points if all(a < r for a, r in zip(p, reference))]
    if not points:
        return Fraction(0)
    if len(reference) == 1:
        return reference[0] - min(p[0] for p in points)
    points = sorted(points, key=lambda p: p[-1])
    total = Fraction(0)
    for i, p in enumerate(points):
        top = points[i + 1][-1] if i + 1 < len(points) else reference[-1]
        if top > p[-1]:
            total += (top - p[-1]) * exact_hypervolume([q[:-1] for q in points[:i + 1]],
                                                       reference[:-1])
    return total


def near_tie(tpe_sampler, np, losses, below, ours, theirs, tolerance=1e-12):
    """Whether tune's and Optuna's good sets part only at a near-tie: Optuna's split replayed in
    exact rational arithmetic on the (float) inputs, each greedy step taking the point both sets
    hold; True when, at the first step where they hold different points, each holds a point
    whose exact gain is within `tolerance` (relative) of the best one's."""
    from optuna.study._multi_objective import _fast_non_domination_rank
    ranks = _fast_non_domination_rank(np.array(losses))
    ours, theirs = set(ours), set(theirs)
    taken = 0
    for r in range(int(ranks.max()) + 1):
        at_rank = [i for i in range(len(losses)) if ranks[i] == r]
        if taken + len(at_rank) <= below:
            if not set(at_rank) <= ours & theirs:
                return False  # a whole rank that one side left out: not a tie
            taken += len(at_rank)
            continue
        rank_losses = np.array([losses[i] for i in at_rank])
        reference = [Fraction(x) for x in tpe_sampler._get_reference_point(rank_losses)]
        exact = {i: [Fraction(x) for x in losses[i]] for i in at_rank}
        chosen, volume = [], Fraction(0)
        for _ in range(below - taken):
            gains = {i: exact_hypervolume([exact[c] for c in chosen] + [exact[i]], reference) - volume
                     for i in at_rank if i not in chosen}
            best = max(gains.values())
            near = {i for i, g in gains.items() if g >= best - tolerance * abs(best)}
            common = near & ours & theirs
            if common:
                pick = min(common, key=lambda i: (losses[i], i))
                chosen.append(pick)
                volume += gains[pick]
                continue
            return bool(near & ours) and bool(near & theirs)
        return False
    return False


def main():
    np, optuna, tpe_sampler = require("motpe_split_diff", "numpy", "optuna",
                                      "optuna.samplers._tpe.sampler")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    cases, out = random_cases(__doc__, "tune-test-motpe-split-replay", 1500, make_case)
    failures = ties = 0
    for number, (case, answer) in enumerate(zip(cases, out)):
        m = len(case["losses"][0])
        study = optuna.create_study(directions=["minimize"] * m)
        trials = [optuna.trial.create_trial(values=v, params={}, distributions={})
                  for v in case["losses"]]
        for i, t in enumerate(trials):
            t.number = i
        below, _ = tpe_sampler._split_complete_trials_multi_objective(trials, study, case["below"])
        theirs = sorted(t.number for t in below)
        ours = answer["below"]
        if ours == theirs:
            continue
        if near_tie(tpe_sampler, np, case["losses"], case["below"], ours, theirs):
            ties += 1
        else:
            failures += 1
            if failures <= 3:
                print(f"FAIL case {number} ({len(case['losses'])} points, {m} objectives, below "
                      f"{case['below']}): tune {ours}, optuna {theirs}\n"
                      f"  losses {case['losses']}")
    print(f"{len(cases) - failures - ties} of {len(cases)} splits identical, {ties} parting at a "
          f"near-tie of the hypervolume gain (within 1e-12 in exact arithmetic), {failures} "
          "different")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
