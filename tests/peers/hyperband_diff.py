#!/usr/bin/env python3
"""Differential test: tune's HyperBand (schedulers/hyperband.cc) against Ray Tune's
HyperBandScheduler, both driven by the same experiment (tests/peers/controller_sim.py): every
decision, every trial the scheduler stops, every choice of a trial to run and the final debug
string must be identical.

The streams vary max_t (1 to 81, fractional too), reduction_factor (1.5 to 4), stop_last_trials,
time_attr (training_iteration, a custom "epoch" that jumps past milestones, time_total_s in
fractional seconds), mode, the number of trials and of slots, ties and infinities in the metric,
and trials that end early or fail. Not generated, because Ray raises or its answer is an accident
of its sort (schedulers/hyperband.h pins what we do instead): results lacking time_attr or the
metric, NaN or negative times, NaN metrics; and retried failures, where Ray moves the trial to the
newest bracket and our tuner makes no scheduler call.

  hyperband_diff.py --replay build/bin/tune-test-scheduler-replay [--streams 1500] [--seed 0]
Exit status: 0 identical, 1 a mismatch (the stream, the answer and the calls before it are
printed), 77 `ray` cannot be imported and CI is not "true".
"""

import math
import sys

import controller_sim


def make_stream(hyperband, rng):
    options = {
        "type": "hyperband",
        "time_attr": rng.choice(["training_iteration", "training_iteration", "epoch", "time_total_s"]),
        "max_t": rng.choice([1, 2, 3, 4, 5, 8, 9, 10, 16, 27, 2.5, 7.5, 20, 81]),
        "reduction_factor": rng.choice([2, 3, 3, 4, 2.5, 1.5]),
        "stop_last_trials": rng.random() < 0.75,
    }
    metric, mode = rng.choice(["acc", "loss"]), rng.choice(["min", "max"])
    scheduler = hyperband.HyperBandScheduler(
        time_attr=options["time_attr"], metric=metric, mode=mode, max_t=options["max_t"],
        reduction_factor=options["reduction_factor"],
        stop_last_trials=options["stop_last_trials"])
    controller = controller_sim.Controller(scheduler, options, metric, mode)

    pool = [round(rng.random(), 1) for _ in range(rng.randint(2, 5))]  # ties
    discrete = rng.random() < 0.4
    p_inf = rng.choice([0.0, 0.0, 0.05])
    jumps = [1, 1, 1, 2, 3] if rng.random() < 0.5 else [1]

    def value():
        if rng.random() < p_inf:
            return rng.choice([math.inf, -math.inf])
        return rng.choice(pool) if discrete else round(rng.gauss(0.5, 0.2), 3)

    def advance(trial):
        if trial.plan is None:
            fate = rng.choices(["run", "early", "error"], [7, 2, 1])[0]
            trial.plan = {"fate": fate, "count": 0, "length": rng.randint(0, 12),
                          "horizon": options["max_t"] * rng.choice([1, 1.5, 2]),
                          "it": 0, "ts": 0.0, "epoch": rng.choice([0, 1])}
        plan = trial.plan
        now = {"training_iteration": plan["it"], "time_total_s": plan["ts"],
               "epoch": plan["epoch"]}[options["time_attr"]]
        if plan["fate"] == "error" and plan["count"] >= plan["length"]:
            controller.fail(trial)
            return
        if (plan["fate"] == "early" and plan["count"] >= plan["length"]) or now >= plan["horizon"]:
            controller.end(trial)
            return
        plan["count"] += 1
        plan["it"] += 1
        plan["ts"] = round(plan["ts"] + rng.choice([0.5, 1.0, 2.3, rng.uniform(0.1, 4)]), 3)
        plan["epoch"] += rng.choice(jumps)
        result = {"training_iteration": plan["it"], "time_total_s": plan["ts"], metric: value()}
        if options["time_attr"] == "epoch":
            result["epoch"] = plan["epoch"]
        controller.report(trial, result)

    return controller_sim.simulate(rng, controller, advance, max_trials=25)


if __name__ == "__main__":
    sys.exit(controller_sim.main(__doc__, "hyperband_diff", "hyperband", "HyperBandScheduler",
                                 make_stream))
