"""Ray Tune's own stoppers on the result sequences of tests/stoppers/stopper_test.cc.

Prints the rows of the test's kTrialCases, kExperimentCases and kTimeoutCases tables ("Ray
parity"), each with Ray's verdict after every result ('1' once the trial, or the experiment, is
stopped), and kNumpyStd (numpy.std, which both plateau stoppers use). Regenerate with

    .venv/bin/python tests/stoppers/ray_stoppers.py

and paste the rows over the tables. Results are built as the C++ test builds them: one metric
"m" (absent where the row says kMissing), training_iteration counting the trial's results and
time_total_s = 2.5 * training_iteration; the experiment's metric is "m" and its mode "min", the
defaults of every "metric"/"mode" the stop object leaves out. Ray's controller is mimicked: a
trial's stopper is called before its dict criteria (`stopper(id, result) or
trial.should_stop(result)`), and a stopped trial (experiment) is fed nothing more.
"""

import json
import math
import types
from collections import defaultdict
from unittest import mock

import numpy as np
from ray.tune.experiment.trial import Trial
from ray.tune.stopper import ExperimentPlateauStopper, TimeoutStopper, TrialPlateauStopper
from ray.tune.stopper import timeout as timeout_module

MISSING = object()
NAN = float("nan")
STOPPERS = {"plateau", "time_budget_s", "max_total_trials", "goal", "no_improvement",
            "experiment_plateau"}


def seq(trial, *values):
    return [(trial, v) for v in values]


def interleave(*sequences):
    out = []
    for group in zip(*sequences):
        out.extend(group)
    return out


TRIAL_CASES = [
    ("defaults_flat", {"plateau": {}}, seq("a", 1.0, 0.5, 0.3, 0.301, 0.302, 0.3, 0.2999, 0.3)),
    ("knife_edge_0_02", {"plateau": {}}, seq("a", 0.0, 0.02, 0.0, 0.02, 0.0, 0.02)),
    ("knife_edge_0_12", {"plateau": {}}, seq("a", 0.1, 0.12, 0.1, 0.12, 0.1, 0.12)),
    ("grace_longer_than_window", {"plateau": {"num_results": 2, "grace_period": 5, "std": 0.05}},
     seq("a", 0.5, 0.5, 0.5, 0.5, 0.5, 0.5)),
    ("window_longer_than_grace", {"plateau": {"num_results": 6, "grace_period": 2}},
     seq("a", 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5)),
    ("threshold_min", {"plateau": {"metric_threshold": 0.5, "mode": "min", "std": 0.02}},
     seq("a", 0.8, 0.8, 0.8, 0.8, 0.6, 0.6, 0.6, 0.6, 0.45, 0.45, 0.45, 0.45, 0.45)),
    ("threshold_max", {"plateau": {"metric_threshold": 0.9, "mode": "max"}},
     seq("a", 0.85, 0.85, 0.85, 0.85, 0.85, 0.91, 0.91, 0.91, 0.91)),
    ("missing_in_window", {"plateau": {}},
     seq("a", 0.3, 0.3, MISSING, 0.3, 0.3, 0.3, 0.3, 0.3)),
    ("nan_in_window", {"plateau": {}}, seq("a", 0.3, 0.3, NAN, 0.3, 0.3, 0.3, 0.3, 0.3)),
    ("interleaved_trials", {"plateau": {"std": 0.005}},
     interleave(seq("a", 0.9, 0.7, 0.5, 0.4, 0.35, 0.33, 0.33, 0.331, 0.33, 0.33),
                seq("b", 0.5, 0.5, 0.501, 0.5, 0.49, 0.5, 0.5, 0.5, 0.5, 0.5))),
    ("num_results_1", {"plateau": {"num_results": 1, "grace_period": 0}}, seq("a", 0.7, 0.6)),
    ("dict_thresholds", {"training_iteration": 5, "m": 0.9},
     interleave(seq("a", 0.5, 0.7, 0.95, 0.96, 0.97, 0.98),
                seq("b", 0.1, 0.2, 0.3, 0.4, 0.5, 0.6),
                seq("c", MISSING, MISSING, MISSING, MISSING, MISSING, MISSING))),
    ("dict_time_total_s", {"time_total_s": 6}, seq("a", 0.1, 0.2, 0.3, 0.4)),
    ("dict_equal_and_nan", {"m": 0.5}, interleave(seq("a", 0.4, 0.5), seq("b", NAN, NAN))),
    ("dict_and_plateau", {"training_iteration": 7, "plateau": {"std": 0.001}},
     interleave(seq("a", 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5),
                seq("b", 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8))),
]

EXPERIMENT_CASES = [
    ("top3_min", {"experiment_plateau": {"top": 3, "std": 0.001}},
     [("a", 0.5), ("b", 0.3), ("c", 0.31), ("a", 0.305), ("b", 0.9), ("c", 0.3005),
      ("a", 0.3001), ("b", 0.3002)]),
    ("top3_patience2", {"experiment_plateau": {"top": 3, "std": 0.001, "patience": 2}},
     [("a", 0.5), ("b", 0.3), ("c", 0.3001), ("a", 0.3002), ("b", 0.9), ("c", 0.8),
      ("a", 0.7)]),
    ("patience1_same_as_0", {"experiment_plateau": {"top": 2, "std": 0.01, "patience": 1}},
     [("a", 0.5), ("b", 0.3), ("a", 0.305)]),
    ("plateau_broken_resets", {"experiment_plateau": {"top": 3, "std": 0.01, "patience": 3}},
     [("a", 0.5), ("a", 0.5), ("a", 0.5), ("b", 0.9), ("b", 0.2), ("b", 0.2), ("c", 0.2),
      ("c", 0.9), ("c", 0.8), ("a", 0.7)]),
    ("mode_max", {"experiment_plateau": {"top": 4, "std": 0.01, "mode": "max"}},
     [("a", 0.1), ("b", 0.8), ("c", 0.81), ("d", 0.2), ("a", 0.79), ("b", 0.3), ("c", 0.8)]),
    ("knife_edge_top2", {"experiment_plateau": {"top": 2, "std": 0.001}},
     [("a", 0.3), ("b", 0.302), ("c", 0.5), ("d", 0.1), ("e", 0.102)]),
    ("top10_defaults", {"experiment_plateau": {}},
     [(f"t{i}", 0.25 + 0.0003 * ((i * 7) % 11)) for i in range(14)]),
]

# numpy.std (what both plateau stoppers use) of f(0..n-1), f(i) = 1 / (i + 3) + 0.001 * (7i % 11),
# for lengths around numpy's pairwise-summation block edges (8 and 128).
NUMPY_STD_LENGTHS = [1, 3, 7, 8, 9, 16, 17, 128, 129, 300]


def numpy_input(n):
    return [1.0 / (i + 3) + 0.001 * ((i * 7) % 11) for i in range(n)]


TIMEOUT_CASES = [
    ("budget_10", 10, [0, 5, 9.999, 10, 11]),
    ("budget_0_5", 0.5, [0, 0.25, 0.5, 0.75]),
]


def cpp_value(value):
    if value is MISSING:
        return "kMissing"
    if isinstance(value, float) and math.isnan(value):
        return "kNaN"
    return repr(float(value))


def cpp_row(name, stop, steps, verdicts):
    results = ", ".join(f'{{"{trial}", {cpp_value(v)}}}' for trial, v in steps)
    return f'    {{"{name}", R"({json.dumps(stop)})", {{{results}}}, "{verdicts}"}},'


def make_result(iterations, trial, value):
    iterations[trial] += 1
    result = {"training_iteration": iterations[trial],
              "time_total_s": 2.5 * iterations[trial]}
    if value is not MISSING:
        result["m"] = value
    return result


def trial_verdicts(stop, steps):
    criteria = types.SimpleNamespace(
        stopping_criterion={k: v for k, v in stop.items() if k not in STOPPERS})
    plateau = None
    if "plateau" in stop:
        kwargs = {"metric": "m", "mode": "min", **stop["plateau"]}
        if "std" in kwargs:
            kwargs["std"] = float(kwargs["std"])
        plateau = TrialPlateauStopper(**kwargs)
    iterations, stopped, verdicts = defaultdict(int), set(), ""
    for trial, value in steps:
        if trial not in stopped:
            result = make_result(iterations, trial, value)
            if (plateau is not None and plateau(trial, result)) or Trial.should_stop(criteria,
                                                                                    result):
                stopped.add(trial)
        verdicts += "1" if trial in stopped else "0"
    return verdicts


def experiment_verdicts(stop, steps):
    kwargs = {"metric": "m", "mode": "min", **stop["experiment_plateau"]}
    if "std" in kwargs:
        kwargs["std"] = float(kwargs["std"])
    stopper = ExperimentPlateauStopper(**kwargs)
    iterations, stopped, verdicts = defaultdict(int), False, ""
    for trial, value in steps:
        if not stopped:
            stopper(trial, make_result(iterations, trial, value))
            stopped = stopper.stop_all()
        verdicts += "1" if stopped else "0"
    return verdicts


def timeout_verdicts(budget, times):
    start = 1_000_000.0
    verdicts = ""
    with mock.patch.object(timeout_module.time, "time") as fake_time:
        stopper = TimeoutStopper(budget)
        for elapsed in times:
            fake_time.return_value = start + elapsed
            verdicts += "1" if stopper.stop_all() else "0"
    return verdicts


def main():
    print("  // kTrialCases")
    for name, stop, steps in TRIAL_CASES:
        print(cpp_row(name, stop, steps, trial_verdicts(stop, steps)))
    print("  // kExperimentCases")
    for name, stop, steps in EXPERIMENT_CASES:
        print(cpp_row(name, stop, steps, experiment_verdicts(stop, steps)))
    print("  // kTimeoutCases")
    for name, budget, times in TIMEOUT_CASES:
        elapsed = ", ".join(repr(float(t)) for t in times)
        print(f'    {{"{name}", {budget!r}, {{{elapsed}}}, "{timeout_verdicts(budget, times)}"}},')
    print("  // kNumpyStd")
    for n in NUMPY_STD_LENGTHS:
        print(f"    {{{n}, {float(np.std(numpy_input(n)))!r}}},")


if __name__ == "__main__":
    main()
