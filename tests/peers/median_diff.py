#!/usr/bin/env python3
"""Differential test: tune's median stopping rule (schedulers/median.cc) against Ray Tune's
MedianStoppingRule, both driven by the same experiment (tests/peers/controller_sim.py): every
decision (CONTINUE, PAUSE to yield or, without hard_stop, to stop; STOP), every choice of a trial
to run and the final debug string must be identical.

The streams vary time_attr (time_total_s in fractional seconds, training_iteration, a custom
"epoch" that jumps), grace_period, min_samples_required, min_time_slice, hard_stop, mode, the
number of trials and of slots, ties, NaN and infinities in the metric, results lacking the metric
or the custom time_attr, and trials that end early, fail, or fail and are retried (restarting a
little earlier). Not generated, because Ray raises on them (schedulers/median.h pins what we do
instead): a trial whose last result lacks time_attr or the metric when it completes, a trial that
completes without any result, NaN times.

  median_diff.py --replay build/bin/tune-test-scheduler-replay [--streams 1500] [--seed 0]
Exit status: 0 identical, 1 a mismatch (the stream, the answer and the calls before it are
printed), 77 `ray` cannot be imported and CI is not "true".
"""

import math
import sys

import controller_sim


def make_stream(median_stopping_rule, rng):
    time_attr = rng.choice(["time_total_s", "time_total_s", "training_iteration", "epoch"])
    grace = rng.choice([0, 1, 2.5, 5, 10, 60] if time_attr == "time_total_s" else [0, 1, 2, 3, 5])
    options = {
        "type": rng.choice(["median", "median_stopping_rule"]),
        "time_attr": time_attr, "grace_period": grace,
        "min_samples_required": rng.choice([1, 2, 3, 3, 4]),
        "min_time_slice": rng.choice([0, 0, 1, 2.5, 5]),
        "hard_stop": rng.random() < 0.6,
    }
    metric, mode = rng.choice(["acc", "loss"]), rng.choice(["min", "max"])
    scheduler = median_stopping_rule.MedianStoppingRule(
        time_attr=time_attr, metric=metric, mode=mode, grace_period=grace,
        min_samples_required=options["min_samples_required"],
        min_time_slice=options["min_time_slice"], hard_stop=options["hard_stop"])
    controller = controller_sim.Controller(scheduler, options, metric, mode)

    pool = [round(rng.random(), 1) for _ in range(rng.randint(2, 5))]  # ties
    discrete = rng.random() < 0.4
    p_special = rng.choice([0.0, 0.0, 0.03, 0.1])
    p_missing = rng.choice([0.0, 0.0, 0.05])
    jumps = [1, 1, 1, 2, 3] if rng.random() < 0.5 else [1]
    # time_total_s needs more results to pass a grace period of 60 s.
    longest = 90 if grace == 60 else 30

    def value():
        if rng.random() < p_special:
            return rng.choice([math.nan, math.nan, math.inf, -math.inf])
        return rng.choice(pool) if discrete else round(rng.gauss(0.5, 0.2), 3)

    def report(trial, complete):
        plan = trial.plan
        plan["count"] += 1
        plan["it"] += 1
        plan["ts"] = round(plan["ts"] + rng.choice([0.5, 1.0, 2.3, rng.uniform(0.1, 4)]), 3)
        plan["epoch"] += rng.choice(jumps)
        result = {"training_iteration": plan["it"], "time_total_s": plan["ts"]}
        if time_attr == "epoch" and (complete or rng.random() > p_missing):
            result["epoch"] = plan["epoch"]
        if complete or rng.random() > p_missing:
            result[metric] = value()
        controller.report(trial, result)

    def advance(trial):
        if trial.plan is None:
            fate = rng.choices(["run", "early", "error", "retry"], [6, 2, 1, 1])[0]
            trial.plan = {"fate": fate, "count": 0, "length": rng.randint(0, longest),
                          "retry_at": rng.randint(1, 10), "it": 0, "ts": 0.0,
                          "epoch": rng.choice([0, 1])}
        plan = trial.plan
        if plan["count"] >= plan["length"]:
            if plan["fate"] == "error":
                controller.fail(trial)
                return
            last = controller_sim.decode_result(trial.last_result)
            if last is not None and time_attr in last and metric in last:
                controller.end(trial)
                return
            report(trial, complete=True)  # Ray raises on a last result without the keys
            return
        if plan["fate"] == "retry" and plan["count"] == plan["retry_at"]:
            plan["fate"] = "run"
            back = rng.randint(0, 2)  # restored from a checkpoint a little earlier
            plan["it"] = max(0, plan["it"] - back)
            plan["epoch"] = max(0, plan["epoch"] - back)
            plan["ts"] = max(0.0, round(plan["ts"] - back, 3))
            controller.retry(trial)
            return
        report(trial, complete=False)

    return controller_sim.simulate(rng, controller, advance, max_trials=16)


if __name__ == "__main__":
    sys.exit(controller_sim.main(__doc__, "median_diff", "median_stopping_rule", "MedianStoppingRule",
                                 make_stream))
