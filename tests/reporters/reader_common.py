"""What the reader tests of tune's views share (tensorboard_reader_test.py, wandb_reader_test.py):
the tiny experiment they run, running `tune`, the journal's facts, failures collected, and main().

The experiment: tune-example-curve trials under ASHA with time_attr "epoch"; every trial crashes
once at epoch 3 and is retried from its checkpoint.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

FAILURES = []


def check(condition, message):
    if not condition:
        FAILURES.append(message)


def spec(name, seed, **extra):
    out = {
        "name": name,
        "metric": "loss",
        "mode": "min",
        "num_samples": 4,
        "max_concurrent": 2,
        "max_failures": 1,
        "search": {"algorithm": "random", "seed": seed},
        "scheduler": {"type": "asha", "time_attr": "epoch", "max_t": 6, "grace_period": 1,
                      "reduction_factor": 2},
        "trainer": {"command": ["tune-example-curve"], "max_epochs": 6, "sleep_ms": 20,
                    "crash_at_epoch": 3, "label": "tb \"test\"", "nested": {"flag": True}},
        "space": {"x1": {"uniform": [-5, 10]}, "x2": {"uniform": [0, 15]},
                  "lr": {"loguniform": [0.01, 1.0]}, "width": {"choice": [16, 32]}},
    }
    out.update(extra)
    return out


def pbt(**extra):
    """spec()'s keys for a PBT run (no crashes): 4 trials at once, lr and x1 mutated every 2."""
    out = {
        "max_concurrent": 4,
        "scheduler": {"type": "pbt", "time_attr": "training_iteration", "perturbation_interval": 2,
                      "quantile_fraction": 0.5, "seed": 1,
                      "hyperparam_mutations": {"lr": {"loguniform": [0.01, 0.5]},
                                               "x1": {"uniform": [-5, 10]}}},
        "trainer": {"command": ["tune-example-curve"], "max_epochs": 8, "sleep_ms": 30},
    }
    out.update(extra)
    return out


def exploited(experiment):
    """The trials PBT restarted from another's checkpoint with new values."""
    return sorted({event["trial_id"] for event in journal(experiment)
                   if event["event"] == "trial_exploited"})


def write_spec(storage, name, seed, **extra):
    path = os.path.join(storage, f"{name}.json")
    with open(path, "w") as out:
        json.dump(spec(name, seed, **extra), out)
    return path


def flatten(node, prefix=""):
    """A config's leaves by dotted path (an empty object is a leaf), as the views name them."""
    out = {}
    for key, value in node.items():
        path = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict) and value:
            out.update(flatten(value, path))
        else:
            out[path] = value
    return out


def run_tune(bin_dir, args, env=None):
    return subprocess.run([os.path.join(bin_dir, args[0])] + args[1:], capture_output=True,
                          text=True, env=env)


def journal(experiment):
    with open(os.path.join(experiment, "journal.jsonl")) as lines:
        return [json.loads(line) for line in lines]


def attempts(experiment):
    """Trial id -> how many times it was started."""
    counts = {}
    for event in journal(experiment):
        if event["event"] == "trial_started":
            counts[event["trial_id"]] = counts.get(event["trial_id"], 0) + 1
    return counts


def reports_after_resume(experiment):
    """Trial id -> the results the resumed tune received (the journal's after its resume event)."""
    after, resumed = {}, False
    for event in journal(experiment):
        if event["event"] == "resume":
            resumed = True
        elif resumed and event["event"] == "report":
            after.setdefault(event["trial_id"], []).append(event["result"])
    return after


def result_lines(experiment, trial):
    with open(os.path.join(experiment, trial, "result.json")) as lines:
        return [json.loads(line) for line in lines]


def main(prefix, checks):
    """Runs each check(bin_dir, storage) in one temporary storage, kept when something failed."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin-dir", required=True)
    args = parser.parse_args()
    storage = tempfile.mkdtemp(prefix=prefix)
    try:
        for each in checks:
            each(args.bin_dir, storage)
    finally:
        if FAILURES:
            print(f"kept {storage} for a look")
        else:
            shutil.rmtree(storage, ignore_errors=True)
    for failure in FAILURES:
        print("FAIL:", failure)
    print(f"{'FAILED' if FAILURES else 'PASSED'}: {len(FAILURES)} failures")
    sys.exit(1 if FAILURES else 0)
