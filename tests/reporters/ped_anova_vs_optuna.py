#!/usr/bin/env python3
"""Differential test: tune's PED-ANOVA importance (reporters/report_importance.cc) against Optuna's
PedAnovaImportanceEvaluator on the same trials.

Random studies (float, log-float, stepped float, int, log-int and categorical parameters; 2 to 300
trials; objectives that depend on some parameters, with ties) are built as Optuna studies of
COMPLETE trials; optuna.importance.get_param_importances(study, evaluator=PedAnovaImportanceEvaluator())
gives Optuna's importances, tests/reporters/importance_replay.cc tune's for the same values. They
must agree to 1e-9 (absolute) per parameter.

  ped_anova_vs_optuna.py --replay build/bin/tune-test-importance-replay [--studies 300] [--seed 0]
Exit status: 0 equal, 1 a mismatch (the study and both answers are printed), 77 `optuna` cannot be
imported and CI is not "true".
"""

import argparse
import json
import math
import os
import random
import subprocess
import sys
import warnings


def make_study(rng):
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    params = []
    for i in range(rng.randint(1, 5)):
        kind = rng.choice(["float", "logfloat", "stepfloat", "int", "logint", "categorical"])
        name = f"p{i}_{kind}"
        if kind == "float":
            low = rng.uniform(-5, 5)
            params.append((name, FloatDistribution(low, low + rng.uniform(0.1, 10)),
                           {"kind": "float", "low": low}))
        elif kind == "logfloat":
            low = 10 ** rng.uniform(-5, 0)
            params.append((name, FloatDistribution(low, low * 10 ** rng.uniform(0.5, 4), log=True),
                           {"kind": "float", "log": True}))
        elif kind == "stepfloat":
            step = rng.choice([0.25, 0.5, 2.0])  # exact in binary: values stay inside the range
            n = rng.randint(1, 80)
            params.append((name, FloatDistribution(0.0, step * n, step=step),
                           {"kind": "float", "step": step}))
        elif kind == "int":
            low = rng.randint(-10, 10)
            params.append((name, IntDistribution(low, low + rng.randint(1, 200)),
                           {"kind": "int", "step": 1}))
        elif kind == "logint":
            low = rng.randint(1, 10)
            params.append((name, IntDistribution(low, low + rng.randint(1, 5000), log=True),
                           {"kind": "int", "log": True, "step": 1}))
        else:
            choices = [f"c{j}" for j in range(rng.randint(2, 6))]
            params.append((name, CategoricalDistribution(choices),
                           {"kind": "categorical", "num_choices": len(choices)}))
    n_trials = rng.choice([2, 3, 5, 10, 25, 60, 150, 300])
    weights = [rng.choice([0, 0, 1, 3]) for _ in params]
    direction = rng.choice(["minimize", "maximize"])
    study = optuna.create_study(direction=direction)
    values, losses = [], []
    for _ in range(n_trials):
        row, internal, trial_params = [], [], {}
        score = 0.0
        for (name, dist, _), w in zip(params, weights):
            if isinstance(dist, CategoricalDistribution):
                index = rng.randrange(len(dist.choices))
                trial_params[name] = dist.choices[index]
                row.append(index)
                score += w * index
            elif isinstance(dist, IntDistribution):
                if dist.log:
                    v = int(round(math.exp(rng.uniform(math.log(dist.low), math.log(dist.high)))))
                    v = min(max(v, dist.low), dist.high)
                else:
                    v = rng.randint(dist.low, dist.high)
                trial_params[name] = v
                row.append(v)
                score += w * (v - dist.low) / (dist.high - dist.low)
            else:
                if dist.log:
                    v = math.exp(rng.uniform(math.log(dist.low), math.log(dist.high)))
                elif dist.step is not None:
                    v = dist.low + dist.step * rng.randint(0, round((dist.high - dist.low) / dist.step))
                else:
                    v = rng.uniform(dist.low, dist.high)
                trial_params[name] = v
                row.append(v)
                score += w * (v - dist.low) / (dist.high - dist.low)
        value = round(score + rng.uniform(0, 0.3), rng.choice([1, 3, 12]))  # rounding makes ties
        study.add_trial(optuna.trial.create_trial(
            params=trial_params, distributions={n: d for n, d, _ in params}, value=value))
        values.append(row)
        losses.append(value if direction == "minimize" else -value)
    spec = []
    for name, dist, extra in params:
        p = {"name": name, "kind": extra["kind"]}
        if not isinstance(dist, CategoricalDistribution):
            p.update(low=dist.low, high=dist.high, log=dist.log,
                     step=float(dist.step) if dist.step is not None else 0.0)
        else:
            p["num_choices"] = len(dist.choices)
        spec.append(p)
    return study, {"params": spec, "values": values, "losses": losses}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--replay", required=True)
    parser.add_argument("--studies", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    try:
        import optuna
        from optuna.importance import PedAnovaImportanceEvaluator, get_param_importances
    except ImportError:
        if os.environ.get("CI") == "true":
            raise
        print("optuna is not installed: skipped")
        return 77
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.simplefilter("ignore")
    rng = random.Random(args.seed)
    studies, expected = [], []
    for _ in range(args.studies):
        study, data = make_study(rng)
        importances = get_param_importances(study, evaluator=PedAnovaImportanceEvaluator())
        expected.append([importances[p["name"]] for p in data["params"]])
        studies.append(data)
    out = subprocess.run([args.replay], input="".join(json.dumps(s) + "\n" for s in studies),
                         capture_output=True, text=True, check=True).stdout.splitlines()
    worst = 0.0
    for i, (data, want, line) in enumerate(zip(studies, expected, out)):
        got = json.loads(line)
        diff = max(abs(a - b) for a, b in zip(got, want))
        worst = max(worst, diff)
        if diff > 1e-9:
            print(f"study {i}: tune {got} != optuna {want}\n{json.dumps(data)[:2000]}")
            return 1
    if len(out) != len(studies):
        print(f"replay answered {len(out)} of {len(studies)} studies")
        return 1
    print(f"{len(studies)} studies: tune's PED-ANOVA equals Optuna's (largest difference {worst:.2e})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
