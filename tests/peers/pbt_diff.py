#!/usr/bin/env python3
"""Differential test: tune's PBT (schedulers/pbt.cc) against Ray Tune's PopulationBasedTraining.

Each stream is a small population simulated as ray/tune/execution/tune_controller.py runs one:
  - every trial is added up front (add_trial -> on_trial_add), PENDING;
  - while a slot is free, choose_trial_to_run() picks the trial to (re)start, which goes RUNNING;
  - a running trial drawn at random reports a result (training_iteration, time_total_s, epoch,
    the metric; now and then NaN or, with require_attrs=False, a missing key) ->
    on_trial_result -> CONTINUE, PAUSE (the trial goes PAUSED) or NOOP (PBT paused it itself to
    exploit); a RuntimeError (require_attrs) ends the stream as it ends Ray's experiment;
  - a trial ends on its own after its last iteration (STOP -> on_trial_complete) or fails
    (on_trial_error, no retry);
  - trials start checkpointing after a few iterations (some never do): the controller's
    _schedule_trial_save returns a future that resolves to a checkpoint only if the trial has
    one when PBT resolves it, which is when our scheduler looks at the tuner's last_checkpoint.
Ray's draws are recorded: pbt.random is replaced by an object whose random() and choice() draw
from a seeded random.Random and log each value or index, and the numpy sampler behind
tune.uniform/loguniform/randint/choice by one that computes numpy's uniform (low + (high - low)
* u) from a logged u, and randint/choice from a logged index. The events, with each result's
draws, go as JSON lines to tests/peers/pbt_replay.cc, which replays them into our scheduler with
those draws (a draw of another kind or count is an error). Compared, exactly (int vs float too;
floats to 1e-12 relative, see same()):
every decision, every exploit of the reporting trial and, in synch mode, of paused trials
(which trial, which source, the explored params), every choose_trial_to_run, and at the end the
debug string and the lineage (trial, source, old params, new params, operations).

Mutations are given to Ray in sorted key order (ours explores keys sorted), and explore_bounds
to Ray as a custom_explore_fn that clamps the same way.

  pbt_diff.py --replay build/bin/tune-test-pbt-replay [--streams 600] [--seed 0]
Exit status: 0 identical, 1 a mismatch (the stream's options and the first differing step are
printed), 77 `ray` cannot be imported and CI is not "true".
"""

import argparse
import copy
import json
import logging
import math
import random
import subprocess
import sys
import time
import types

from asha_diff import encode_result
from controller_sim import import_ray as import_ray_scheduler


def import_ray():
    ray, pbt = import_ray_scheduler("pbt_diff", "pbt")
    import numpy as np
    from ray import tune
    from ray.train._internal.session import _FutureTrainingResult, _TrainingResult
    from ray.tune.search import sample
    return types.SimpleNamespace(np=np, ray=ray, tune=tune, pbt=pbt, sample=sample,
                                 Future=_FutureTrainingResult, TrainingResult=_TrainingResult)


# --- Draws ----------------------------------------------------------------------------------------


class Tape:
    """Stands in for the `random` module inside pbt.py; logs every draw."""

    def __init__(self):
        self.rng = random.Random(0)
        self.draws = []

    def random(self):
        value = self.rng.random()
        self.draws.append(["u", value])
        return value

    def index(self, n):
        i = self.rng.randrange(n)
        self.draws.append(["i", n, i])
        return i

    def choice(self, seq):
        return seq[self.index(len(seq))]


class TapeNumpy:
    """Stands in for np.random behind Ray's Domain samplers (the legacy global RandomState)."""

    def __init__(self, tape, np):
        self.tape, self.np = tape, np

    def uniform(self, low, high, size=1):
        assert size == 1
        u = self.tape.random()
        return self.np.array([low + (high - low) * u])  # numpy's random_uniform

    def randint(self, low, high, size=1):
        assert size == 1
        return self.np.array([low + self.tape.index(int(high - low))])

    def choice(self, a, size=1):
        assert size == 1
        return self.np.array([a[self.tape.index(len(a))]])


# --- The population ---------------------------------------------------------------------------------

CATALOG = {
    # key: (our JSON mutation, a maker of initial values)
    "act": (["relu", "tanh", "gelu"], lambda r: r.choice(["relu", "tanh", "gelu", "gelu", "elu"])),
    "batch": ([16, 32, 64, 128], lambda r: r.choice([16, 32, 64, 128, 48, 32.0, 128])),
    "drop": ({"uniform": [0, 0.5]}, lambda r: r.choice([0, round(r.uniform(0, 0.5), 3)])),
    "layers": ({"randint": [1, 8]}, lambda r: r.randrange(1, 8)),
    "lr": ({"loguniform": [1e-4, 0.1]}, lambda r: 10 ** r.uniform(-4, -1)),
    "momentum": ({"uniform": [0.1, 0.99]}, lambda r: r.choice([r.uniform(0.1, 0.99), 1, 0.9])),
    "opt": ({"beta": {"uniform": [0.8, 0.999]}, "kind": ["adam", "sgd", "adamw"]},
            lambda r: {"beta": r.uniform(0.8, 0.999), "kind": r.choice(["adam", "sgd", "adamw"])}),
    "wd": ([0.0, 1e-4, 1e-3, 1e-2], lambda r: r.choice([0.0, 1e-4, 1e-3, 1e-2, 5e-4])),
    "width": ({"choice": [32, 64, 128]}, lambda r: r.choice([32, 64, 128])),
}
BOUNDS = {"batch": [20, 100], "drop": [0.05, 0.45], "layers": [2, 6], "lr": [1e-3, 0.05],
          "opt": {"beta": [0.85, 0.95]}, "width": [40.5, 100]}


def to_ray(mutation, ns):
    """Our JSON mutation as Ray's: lists stay lists, distributions become tune domains, objects
    are nested (keys sorted, as ours explores them)."""
    if isinstance(mutation, list):
        return list(mutation)
    if len(mutation) == 1:
        (name, args), = mutation.items()
        if name in ("uniform", "loguniform", "randint", "choice"):
            return getattr(ns.tune, name)(*args) if name != "choice" else ns.tune.choice(args)
    return {key: to_ray(mutation[key], ns) for key in sorted(mutation)}


def clamp_fn(bounds):
    """Ray's custom_explore_fn doing what our explore_bounds does."""
    def clamp(config, bounds=bounds):
        for key, bound in bounds.items():
            if key not in config:
                continue
            if isinstance(bound, dict):
                if isinstance(config[key], dict):
                    clamp(config[key], bound)
                continue
            value = config[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            low, high = bound
            if isinstance(value, int):
                low = math.ceil(low)
                high = max(math.floor(high), low)
                config[key] = int(min(max(value, low), high))
            else:
                config[key] = min(max(value, low), high)
        return config
    return clamp


def random_options(rng):
    time_attr = rng.choice(["training_iteration", "training_iteration", "time_total_s", "epoch"])
    interval = {"training_iteration": rng.choice([1, 2, 3, 4]),
                "time_total_s": rng.choice([1.5, 3.0, 4]),
                "epoch": rng.choice([2, 3, 5])}[time_attr]
    keys = sorted(rng.sample(sorted(CATALOG), rng.randint(1, 5)))
    options = {
        "type": "pbt", "time_attr": time_attr, "metric": rng.choice(["acc", "loss"]),
        "mode": rng.choice(["min", "max"]), "perturbation_interval": interval,
        "burn_in_period": rng.choice([0, 0, 0, interval, 2.5, 5]),
        "quantile_fraction": rng.choice([0, 0.1, 0.2, 0.25, 0.25, 0.3, 0.4, 0.5]),
        "resample_probability": rng.choice([0, 0.25, 0.25, 0.5, 1.0]),
        "perturbation_factors": rng.choice([[1.2, 0.8], [1.2, 0.8], [2.0, 0.5, 1.0], [1.1],
                                            [0.9, 1.3]]),
        "hyperparam_mutations": {key: CATALOG[key][0] for key in keys},
        "synch": rng.random() < 0.4,
        "require_attrs": rng.random() < 0.75,
        "log_config": rng.random() < 0.8,
    }
    if rng.random() < 0.3:
        options["explore_bounds"] = {k: v for k, v in BOUNDS.items() if rng.random() < 0.6}
    return options, keys


class FakeTrial:
    def __init__(self, trial_id, config, ns):
        self.trial_id = trial_id
        self.config = config
        self.status = "PENDING"
        self.experiment_tag = trial_id
        self.evaluated_params = {}
        self.last_result = {}
        self.has_checkpoint = False
        self.run_metadata = types.SimpleNamespace(checkpoint_manager=types.SimpleNamespace(
            checkpoint_config=types.SimpleNamespace(num_to_keep=None),
            _latest_checkpoint_result=None))
        self.temporary_state = types.SimpleNamespace(saving_to=None)
        self.progress = {"training_iteration": 0, "time_total_s": 0.0, "epoch": 0}

    @property
    def checkpoint(self):
        return f"checkpoints/{self.trial_id}" if self.has_checkpoint else None

    def is_finished(self):
        return self.status in ("ERROR", "TERMINATED")

    def set_experiment_tag(self, tag):
        self.experiment_tag = tag

    def set_config(self, config):
        self.config = config

    def __repr__(self):
        return self.trial_id


class FakeController:
    """What PopulationBasedTraining reads and calls of TuneController."""

    search_alg = None

    def __init__(self, ns, emit):
        self.ns, self.emit = ns, emit
        self.trials = []
        self.in_call = False
        self.deferred = []

    def get_trials(self):
        return self.trials

    def get_live_trials(self):
        return {t for t in self.trials if not t.is_finished()}

    def set_status(self, trial, status):
        trial.status = status
        op = {"op": "status", "trial": trial.trial_id, "status": status}
        # Changes made inside a scheduler call reach our side after that call, as the tuner
        # applies a decision after OnResult returns.
        if self.in_call:
            self.deferred.append(op)
        else:
            self.emit(op)

    def flush(self):
        for op in self.deferred:
            self.emit(op)
        self.deferred = []

    def pause_trial(self, trial, should_checkpoint=True):
        self.set_status(trial, "PAUSED")

    def _schedule_trial_save(self, trial, result=None):
        ns = self.ns

        class Future(ns.Future):
            def resolve(self, block=True):
                if not trial.has_checkpoint:
                    return None
                return ns.TrainingResult(checkpoint=trial.checkpoint, metrics=dict(trial.last_result))

        return Future(None)


def simulate(rng, ns, tape):
    """One stream through Ray. Returns (events for the replay, Ray's outputs, options)."""
    options, keys = random_options(rng)
    events = [{"op": "options", "scheduler": options}]
    outputs = []
    ctrl = FakeController(ns, events.append)
    ray_mutations = {key: to_ray(CATALOG[key][0], ns) for key in keys}
    sched = ns.pbt.PopulationBasedTraining(
        time_attr=options["time_attr"], metric=options["metric"], mode=options["mode"],
        perturbation_interval=options["perturbation_interval"],
        burn_in_period=options["burn_in_period"], hyperparam_mutations=ray_mutations,
        quantile_fraction=options["quantile_fraction"],
        resample_probability=options["resample_probability"],
        perturbation_factors=tuple(options["perturbation_factors"]),
        custom_explore_fn=clamp_fn(options["explore_bounds"]) if "explore_bounds" in options else None,
        log_config=options["log_config"], require_attrs=options["require_attrs"],
        synch=options["synch"])
    exploits, lineage = [], []
    original_get_new_config = sched._get_new_config

    def get_new_config(trial, trial_to_clone):
        new_config, operations = original_get_new_config(trial, trial_to_clone)
        exploits.append([trial.trial_id, trial_to_clone.trial_id, copy.deepcopy(new_config)])
        lineage.append([trial.trial_id, trial_to_clone.trial_id, copy.deepcopy(trial_to_clone.config),
                        copy.deepcopy(new_config), copy.deepcopy(operations)])
        return new_config, operations

    sched._get_new_config = get_new_config
    sched._log_config_on_step = lambda *args: None  # no files; the lineage is recorded above

    count = rng.randint(2, 9)
    slots = rng.randint(1, count)
    sim = {}
    for index in range(count):
        params = {key: CATALOG[key][1](rng) for key in keys}
        params["seed"] = index
        trial = FakeTrial(f"t{index}", params, ns)
        ctrl.trials.append(trial)
        sched.on_trial_add(ctrl, trial)
        events.append({"op": "add", "trial": trial.trial_id, "params": copy.deepcopy(params)})
        sim[trial.trial_id] = {
            "length": rng.randint(3, 30),
            "checkpoint_from": rng.choice([1, 1, 1, 2, 4, 10 ** 9]),
            "error_at": rng.randint(2, 20) if rng.random() < 0.08 else None,
        }
    p_missing = 0.0 if options["require_attrs"] and rng.random() < 0.9 else 0.04
    p_nan = rng.choice([0.0, 0.0, 0.03])
    pool = [round(rng.random(), 1) for _ in range(rng.randint(2, 5))]
    discrete = rng.random() < 0.3

    for _ in range(500):
        while sum(t.status == "RUNNING" for t in ctrl.trials) < slots:
            events.append({"op": "choose"})
            chosen = sched.choose_trial_to_run(ctrl)
            outputs.append({"chosen": chosen.trial_id if chosen else None})
            if chosen is None:
                break
            ctrl.set_status(chosen, "RUNNING")
        running = [t for t in ctrl.trials if t.status == "RUNNING"]
        if not running:
            break
        trial = rng.choice(running)
        plan = sim[trial.trial_id]
        progress = trial.progress
        if progress["training_iteration"] >= plan["length"]:
            sched.on_trial_complete(ctrl, trial, dict(trial.last_result))
            ctrl.set_status(trial, "TERMINATED")
            events.append({"op": "complete", "trial": trial.trial_id})
            continue
        if plan["error_at"] is not None and progress["training_iteration"] >= plan["error_at"]:
            ctrl.set_status(trial, "ERROR")
            sched.on_trial_error(ctrl, trial)
            events.append({"op": "error", "trial": trial.trial_id})
            continue
        progress["training_iteration"] += 1
        progress["time_total_s"] = round(progress["time_total_s"] + rng.choice([0.5, 1.0, 1.7]), 3)
        progress["epoch"] += rng.choice([1, 1, 2])
        result = {"training_iteration": progress["training_iteration"],
                  "time_total_s": progress["time_total_s"]}
        if rng.random() >= p_missing:
            result["epoch"] = progress["epoch"]
        if rng.random() >= p_missing:
            if rng.random() < p_nan:
                result[options["metric"]] = math.nan
            else:
                result[options["metric"]] = (rng.choice(pool) if discrete
                                             else round(rng.gauss(0.5, 0.2), 3))
        if not trial.has_checkpoint and progress["training_iteration"] >= plan["checkpoint_from"]:
            trial.has_checkpoint = True
            events.append({"op": "checkpoint", "trial": trial.trial_id})
        tape.draws = []
        exploits.clear()
        ctrl.in_call = True
        try:
            decision = sched.on_trial_result(ctrl, trial, dict(result))
        except RuntimeError:
            decision = "RAISE"
        ctrl.in_call = False
        events.append({"op": "result", "trial": trial.trial_id,
                       "result": encode_result(result),
                       "draws": list(tape.draws)})
        ctrl.flush()
        trial.last_result = result
        out = {"decision": decision, "exploited": []}
        for target, source, params in exploits:
            if target == trial.trial_id:
                assert decision == "NOOP", decision
                out.update(decision="EXPLOIT", source=source, params=params)
            else:
                out["exploited"].append([target, source, params])
            # Restored from the source's checkpoint: its progress and its checkpoint.
            clone = next(t for t in ctrl.trials if t.trial_id == target)
            original = next(t for t in ctrl.trials if t.trial_id == source)
            clone.progress = dict(original.progress)
            clone.has_checkpoint = True
        outputs.append(out)
        if decision == "RAISE":
            break
        if decision == "PAUSE":
            ctrl.set_status(trial, "PAUSED")
    events.append({"op": "end"})
    outputs.append({"describe": sched.debug_string(), "lineage": lineage if options["log_config"] else []})
    return events, outputs, options


# --- Comparison ---------------------------------------------------------------------------------------


def same(a, b):
    """Equal values of equal types (an int is not a float here: explore keeps ints ints). Floats
    may differ in their last bits: Ray draws loguniform values with numpy's float64 power, which
    on AVX-512 machines is numpy's own SIMD code and can differ from glibc's (ours) by an ulp, and
    later perturbations multiply that on; 1e-12 relative is thousands of ulps yet far below any
    real difference (a wrong factor, bound or resample is >= 1e-3)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, float):
        return a == b or math.isclose(a, b, rel_tol=1e-12, abs_tol=0.0)
    return a == b


def normalise(value):
    """Through JSON, as our side's output comes (tuples become lists, numpy scalars go)."""
    return json.loads(json.dumps(value, default=float))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--replay", required=True, help="the tune-test-pbt-replay binary")
    parser.add_argument("--streams", type=int, default=600, help="random streams (default 600)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    started = time.monotonic()
    ns = import_ray()
    logging.getLogger("ray.tune.schedulers.pbt").setLevel(logging.ERROR)
    tape = Tape()
    ns.pbt.random = tape
    tape_numpy = TapeNumpy(tape, ns.np)
    ns.sample._BackwardsCompatibleNumpyRng.rng = property(lambda self: tape_numpy)

    rng = random.Random(args.seed)
    runs = []
    for index in range(args.streams):
        tape.rng = random.Random(rng.getrandbits(64))
        events, outputs, options = simulate(rng, ns, tape)
        runs.append((f"random #{index} (--seed {args.seed})", events, outputs, options))

    text = "".join(json.dumps(e, allow_nan=False) + "\n" for _, events, _, _ in runs for e in events)
    done = subprocess.run([args.replay], input=text, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"pbt_diff: {args.replay} exited {done.returncode}: {done.stderr.strip()}")
    lines = [json.loads(line) for line in done.stdout.splitlines()]

    position = failures = 0
    counts = dict(results=0, exploits=0, exploited_paused=0, chosen=0, lineage=0, raised=0)
    for name, events, outputs, options in runs:
        ours = lines[position:position + len(outputs)]
        position += len(outputs)
        mismatch = None
        for step, (ray_out, our_out) in enumerate(zip(outputs, ours)):
            ray_out = normalise(ray_out)
            if "error" in our_out:
                mismatch = (step, ray_out, our_out)
                break
            if "decision" in ray_out:
                counts["results"] += 1
                counts["exploits"] += ray_out["decision"] == "EXPLOIT"
                counts["raised"] += ray_out["decision"] == "RAISE"
                counts["exploited_paused"] += len(ray_out["exploited"])
            elif "chosen" in ray_out:
                counts["chosen"] += 1
            else:
                counts["lineage"] += len(ray_out["lineage"])
            if not same(ray_out, our_out):
                mismatch = (step, ray_out, our_out)
                break
        if mismatch is None and len(ours) != len(outputs):
            mismatch = (len(ours), "(more output)", "(stream ended)")
        if mismatch:
            failures += 1
            step, ray_out, our_out = mismatch
            print(f"MISMATCH in stream {name} at output {step}:\n  options {json.dumps(options)}\n"
                  f"  Ray  {json.dumps(ray_out)}\n  ours {json.dumps(our_out)}")
            if failures >= 5:
                print("pbt_diff: stopping after 5 mismatching streams")
                break
    elapsed = time.monotonic() - started
    print(f"pbt_diff: Ray Tune {ns.ray.__version__}: {len(runs)} streams, {counts['results']} results "
          f"({counts['exploits']} exploits of the reporting trial, {counts['exploited_paused']} of "
          f"paused trials in synch mode, {counts['raised']} require_attrs errors), "
          f"{counts['chosen']} choose_trial_to_run, {counts['lineage']} lineage records compared; "
          f"{failures} mismatching streams; {elapsed:.1f} s")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
