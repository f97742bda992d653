#!/usr/bin/env python3
"""How a race run spent its epochs (issue 18, part 3): reads the per-epoch validation accuracy of
every trial of one or more runs and prints, per run and as medians per label:

  epochs        epochs trained in all (one result = one epoch)
  to thr        epochs trained (all trials, in time order) until the first val_acc >= --threshold
  top cut       the eventual top 10 % (--top) of trials by best val_acc: the best val_acc of the
                ceil(0.1 n)-th best trial
  losers        epochs trained by trials whose best never reached that cut (every trial trains
                its first rung; the part beyond it is what successive halving could have saved)
  beyond rung 1 of which after the first rung (a promotion, or the first trial's free pass)
  promotions    promotions at each rung (a trial trained past rung r) and how many later lost
                (the trial never reached the top cut), with the epochs those lost promotions
                bought (from rung r to the next rung or the trial's end)
  best@E        best val_acc after E epochs in all (several E: --at); a run that trained fewer
                epochs in all: its final best

--replay RULE re-runs successive halving offline on each run's own trials, in the order they
started (one at a time, as at K=1), with their recorded curves: `ray` (Ray's ASHA, tune's default:
a trial goes on from a rung when its value is >= the (1 - 1/rf) percentile, interpolated, of the
values recorded there before it; on a K=1 tune run it must reproduce the run's own promotions, a
check of the replay) or `optuna` (Optuna's SuccessiveHalvingPruner: it goes on when its value is
among the best floor(n/rf) of the n values recorded there, its own included, and at least the
best). The configurations stay those the run's searcher chose after seeing the real (Ray) rungs,
so this shows what the rule alone changes, not a new run. A trial the replayed rule would
promote past the epochs it really trained is cut there (`unknown` counts them).

A run is a tune experiment folder (holding <trial>/result.json), a folder holding one (a race
work folder: bench/peers/race.py's tempdir, searched for results/race_c*), or a JSON file with
{"trials": [{"epochs": [[t, acc], ...]}, ...]} (race.py's optuna.json.race, Ray's ray.json).
Prefix a run with LABEL= to group runs (e.g. one per seed) under a label: medians per label.
--paired BASE compares every other label with label BASE seed by seed (a run's seed is the number
after the last "_s" in its folder name, e.g. base_s3): epochs, epochs to the threshold, best at
equal epochs and final best, the candidate's minus BASE's, and on how many seeds it was better.

Usage: .venv/bin/python bench/peers/race_epochs.py [--threshold 0.88] [--top 0.1]
           [--rungs 1,3,9] [--rf 3] [--at 25,50,100,150] [--replay ray|optuna]
           [--paired BASE_LABEL] [LABEL=]RUN ...
"""
import argparse
import glob
import json
import math
import os
import re
import statistics
import sys


def read_tune_experiment(path):
    trials = []
    for result in sorted(glob.glob(os.path.join(path, "*", "result.json"))):
        epochs = []
        with open(result) as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                r = json.loads(line)
                if "val_acc" in r:
                    epochs.append((float(r.get("timestamp", 0.0)), float(r["val_acc"])))
        trials.append({"name": os.path.basename(os.path.dirname(result)), "epochs": epochs})
    return trials


def read_run(path):
    """The run's trials: [{"name", "epochs": [(t, acc), ...]}] in each trial's epoch order."""
    if os.path.isfile(path):
        with open(path) as f:
            d = json.load(f)
        return [{"name": str(i), "epochs": [(float(t), float(a)) for t, a in tr["epochs"]]}
                for i, tr in enumerate(d["trials"])]
    if glob.glob(os.path.join(path, "*", "result.json")):
        return read_tune_experiment(path)
    found = sorted(glob.glob(os.path.join(path, "**", "results", "race_c*"), recursive=True))
    if len(found) != 1:
        sys.exit(f"{path}: expected one tune experiment (results/race_c*) inside, found {len(found)}")
    return read_tune_experiment(found[0])


def percentile(values, q):
    """numpy.percentile's default (linear interpolation), as Ray's nanpercentile."""
    v = sorted(values)
    pos = (len(v) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (pos - lo)


def replay(trials, rule, rungs, rf):
    """The trials cut where successive halving under `rule` stops them (see the docstring);
    returns (trials, unknown)."""
    order = sorted(range(len(trials)), key=lambda i: (trials[i]["epochs"][0][0] if trials[i]["epochs"] else 0, i))
    recorded = {r: [] for r in rungs}
    out, unknown = [None] * len(trials), 0
    for i in order:
        epochs = trials[i]["epochs"]
        keep = len(epochs)
        for r in rungs:
            if len(epochs) < r:
                break
            value = epochs[r - 1][1]
            before = recorded[r]
            if rule == "ray":
                go_on = not before or value >= percentile(before, (1 - 1 / rf) * 100)
            else:  # optuna
                competing = sorted(before + [value])
                go_on = value >= competing[-(max(len(competing) // rf - 1, 0) + 1)]
            before.append(value)  # recorded whether it goes on or not (both Ray and Optuna)
            if not go_on:
                keep = r
                break
            if len(epochs) == r:  # it would go on, but the real run stopped it here
                unknown += 1
                break
        out[i] = {"name": trials[i]["name"], "epochs": epochs[:keep]}
    return out, unknown


def analyse(trials, threshold, top, rungs, at):
    n = len(trials)
    best = [max((a for _, a in tr["epochs"]), default=float("-inf")) for tr in trials]
    count = [len(tr["epochs"]) for tr in trials]
    k = max(1, math.ceil(top * n))
    cut = sorted(best, reverse=True)[k - 1] if n else float("nan")
    losers = [i for i in range(n) if best[i] < cut]
    # Every epoch of every trial in time order (ties: trial order, then epoch order).
    events = sorted((t, i, e, a) for i, tr in enumerate(trials) for e, (t, a) in enumerate(tr["epochs"]))
    to_thr = next((j + 1 for j, (_, _, _, a) in enumerate(events) if a >= threshold), None)
    running, best_at = float("-inf"), {}
    for j, (_, _, _, a) in enumerate(events):
        running = max(running, a)
        for e in at:
            if j + 1 == e:
                best_at[e] = running
    for e in at:  # a run that ended before E epochs: its final best is its best within E
        if e > len(events) and events:
            best_at[e] = running
    promotions = []
    for r_index, r in enumerate(rungs):
        following = rungs[r_index + 1] if r_index + 1 < len(rungs) else None
        promoted = [i for i in range(n) if count[i] > r]
        lost = [i for i in promoted if best[i] < cut]
        bought = sum((min(count[i], following) if following else count[i]) - r for i in lost)
        promotions.append({"rung": r, "promoted": len(promoted), "lost": len(lost), "lost_epochs": bought})
    return {
        "trials": n, "epochs": sum(count), "to_thr": to_thr, "cut": cut,
        "loser_epochs": sum(count[i] for i in losers),
        "loser_epochs_beyond_first": sum(max(0, count[i] - rungs[0]) for i in losers),
        "promotions": promotions, "best_at": best_at, "best": max(best, default=float("nan")),
    }


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def show(v, f="{:.0f}"):
    return "-" if v is None else f.format(v)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("runs", nargs="+", metavar="[LABEL=]RUN")
    p.add_argument("--threshold", type=float, default=0.88)
    p.add_argument("--top", type=float, default=0.1, help="the eventual top fraction of trials (0.1)")
    p.add_argument("--rungs", default="1,3,9", help="the successive-halving rungs, in epochs (1,3,9)")
    p.add_argument("--at", default="25,50,75,100,125,150", help="best val_acc after this many epochs in all")
    p.add_argument("--rf", type=int, default=3, help="the reduction factor, for --replay (3)")
    p.add_argument("--replay", choices=("ray", "optuna"), help="successive halving re-run offline (docstring)")
    p.add_argument("--paired", metavar="BASE_LABEL", help="each other label against this one, seed by seed")
    a = p.parse_args()
    rungs = [int(r) for r in a.rungs.split(",")]
    at = [int(e) for e in a.at.split(",")]
    rows = []
    for run in a.runs:
        label, _, path = run.rpartition("=") if "=" in run else ("", "", run)
        trials = read_run(path)
        unknown = None
        if a.replay:
            trials, unknown = replay(trials, a.replay, rungs, a.rf)
        res = analyse(trials, a.threshold, a.top, rungs, at)
        res["unknown"] = unknown
        rows.append((label or path, path, res))

    header = (["run", "trials", "epochs", f"epochs to {a.threshold:g}", f"top {a.top:.0%} cut",
               "loser epochs", "of which past rung 1"]
              + [f"promoted@{r} (lost, lost epochs)" for r in rungs]
              + [f"best@{e}" for e in at] + ["best"] + (["unknown"] if a.replay else []))
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))

    def line(name, r):
        cells = [name, show(r["trials"]), show(r["epochs"]), show(r["to_thr"]), show(r["cut"], "{:.4f}"),
                 show(r["loser_epochs"]), show(r["loser_epochs_beyond_first"])]
        cells += [f"{show(pr['promoted'])} ({show(pr['lost'])}, {show(pr['lost_epochs'])})" for pr in r["promotions"]]
        cells += [show(r["best_at"].get(e), "{:.4f}") for e in at] + [show(r["best"], "{:.4f}")]
        if a.replay:
            cells.append(show(r.get("unknown")))
        print("| " + " | ".join(cells) + " |")

    for label, path, r in rows:
        line(f"{label}: {os.path.basename(os.path.normpath(path))}" if label != path else path, r)
    labels = []
    for label, _, _ in rows:
        if label not in labels:
            labels.append(label)
    for label in labels:
        group = [r for lab, _, r in rows if lab == label]
        if len(group) < 2:
            continue
        med = {key: median([r[key] for r in group]) for key in
               ("trials", "epochs", "to_thr", "cut", "loser_epochs", "loser_epochs_beyond_first", "best", "unknown")}
        med["promotions"] = [{key: median([r["promotions"][j][key] for r in group])
                              for key in ("promoted", "lost", "lost_epochs")} for j in range(len(rungs))]
        med["best_at"] = {e: median([r["best_at"].get(e) for r in group]) for e in at}
        not_reached = sum(r["to_thr"] is None for r in group)
        line(f"**{label}: median of {len(group)}**" + (f" ({not_reached} never reached)" if not_reached else ""), med)
    if a.paired:
        paired(rows, labels, a.paired, at, a.threshold)


def seed_of(path):
    found = re.findall(r"_s(\d+)", os.path.basename(os.path.normpath(path)))
    return int(found[-1]) if found else None


def paired(rows, labels, base_label, at, threshold):
    """Per candidate label and seed: the candidate's value minus the base's (same seed)."""
    base = {seed_of(path): r for label, path, r in rows if label == base_label}
    keys = [("epochs", "epochs", -1), ("to_thr", f"epochs to {threshold:g}", -1)]
    keys += [(e, f"best@{e}", 1) for e in at] + [("best", "final best", 1)]

    def value(r, key):
        return r["best_at"].get(key) if isinstance(key, int) else r[key]

    print()
    print("| candidate vs " + base_label + " | seed | " + " | ".join(name for _, name, _ in keys) + " |")
    print("|" + "---|" * (len(keys) + 2))
    for label in labels:
        if label == base_label:
            continue
        wins = {key: [0, 0] for key, _, _ in keys}  # better, worse
        for _, path, r in [row for row in rows if row[0] == label]:
            b = base.get(seed_of(path))
            if b is None:
                continue
            cells = []
            for key, _, better in keys:
                x, y = value(r, key), value(b, key)
                if x is None or y is None:
                    cells.append("-")
                    continue
                digits = "{:.0f}" if key in ("epochs", "to_thr") else "{:.4f}"
                cells.append(f"{digits.format(y)} -> {digits.format(x)}")
                if (x - y) * better > 1e-12:
                    wins[key][0] += 1
                elif (y - x) * better > 1e-12:
                    wins[key][1] += 1
            print(f"| {label} | {seed_of(path)} | " + " | ".join(cells) + " |")
        print(f"| **{label}: seeds better / worse** | | "
              + " | ".join(f"{wins[key][0]} / {wins[key][1]}" for key, _, _ in keys) + " |")


if __name__ == "__main__":
    main()
