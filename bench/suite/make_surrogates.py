"""Generates the suite's tabular HPO surrogates (bench/suite/surrogates/*.csv) from real
tune-trainer runs on Fashion-MNIST: a grid over a few hyperparameters, run once by `tune run`
with grid_search (every grid point one trial), the final validation error of each trial written
as one CSV row. bench/suite/functions.py looks a config up at its nearest grid point.

  .venv/bin/python bench/suite/make_surrogates.py --tune build-trainer/bin/tune [--only NAME]

Needs data/fashion (scripts/get_data.sh) and a tune built with the trainer (LibTorch). Each
table's runs are timed (printed; bench/README-search.md records it). One trial at a time.
"""
import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import functions  # noqa: E402  (the surrogates' spaces; the grids below lie inside them)

COMMON = {"dataset": "fashion_mnist", "max_epochs": 3, "train_subset": 5000, "val_subset": 0,
          "threads": 1, "precision": "32", "keep_checkpoints": 1, "seed": 0}
LR4 = [1e-4, 1e-3, 1e-2, 1e-1]
GRIDS = {
    "fashion_mlp": ({"model": {"type": "mlp", "activation": "relu", "layers": 2},
                     "optimizer": {"type": "adamw"}},
                    {"lr": LR4, "dropout": [0.0, 0.3, 0.6], "hidden": [32, 512]}),
    "fashion_sgd": ({"model": {"type": "mlp", "activation": "relu", "layers": 2, "hidden": 128},
                     "optimizer": {"type": "sgd", "momentum": 0.9}},
                    {"lr": [1e-3, 1e-2, 1e-1, 1.0], "weight_decay": [1e-6, 3e-4, 1e-1],
                     "batch_size": [32, 512]}),
}


def make(name, tune, storage):
    base, grid = GRIDS[name]
    spec = {"name": name, "metric": "val_acc", "mode": "max", "num_samples": 1, "max_concurrent": 1,
            "resources_per_trial": {"cpu": 1}, "search": {"algorithm": "random", "seed": 0},
            "trainer": dict(COMMON, **base),
            "space": {k: {"grid_search": v} for k, v in grid.items()}}
    for k in grid:  # the grid lies in the space the suite searches
        (kind, args), = functions.SURROGATE_SPACES[name][k].items()
        inside = set(grid[k]) <= set(args) if kind == "choice" else all(args[0] <= v <= args[1] for v in grid[k])
        assert inside, f"{name}: the grid of {k} is not inside the suite's space"
    path = os.path.join(storage, f"{name}.json")
    with open(path, "w") as f:
        json.dump(spec, f, indent=1)
    begin = time.monotonic()
    subprocess.run(["nice", "-n", "10", tune, "run", path, "--storage", storage, "--cpus", "1"], check=True,
                   cwd=ROOT, stdout=subprocess.DEVNULL)
    took = time.monotonic() - begin
    rows = []
    exp = os.path.join(storage, name)
    for trial in sorted(os.listdir(exp)):
        params = os.path.join(exp, trial, "params.json")
        results = os.path.join(exp, trial, "result.json")
        if not os.path.exists(params) or not os.path.exists(results):
            continue
        with open(params) as f:
            p = json.load(f)
        with open(results) as f:
            last = [json.loads(line) for line in f if line.strip()][-1]
        rows.append([p[k] for k in grid] + [round(1 - last["val_acc"], 6), last["training_iteration"]])
    expected = 1
    for v in grid.values():
        expected *= len(v)
    if len(rows) != expected:
        sys.exit(f"{name}: {len(rows)} trials with results, expected {expected} (see {exp})")
    out = os.path.join(HERE, "surrogates", f"{name}.csv")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    rows.sort()
    with open(out, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(list(grid) + ["val_error", "epochs"])
        w.writerows(rows)
    print(f"{name}: {len(rows)} runs in {took:.0f} s -> {os.path.relpath(out, ROOT)}", flush=True)
    return took


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--tune", default=os.path.join(ROOT, "build-trainer", "bin", "tune"))
    parser.add_argument("--only", default=None)
    args = parser.parse_args()
    storage = tempfile.mkdtemp(prefix="tune_surrogates_")
    try:
        for name in GRIDS:
            if args.only in (None, name):
                make(name, os.path.abspath(args.tune), storage)
    finally:
        shutil.rmtree(storage, ignore_errors=True)


if __name__ == "__main__":
    main()
