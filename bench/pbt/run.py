#!/usr/bin/env python3
"""PBT vs. fixed hyperparameters on the same budget, over several seeds.

For seeds 0..N-1, interleaved on the same machine (PBT seed s, then the baseline seed s, ...):

    tune run examples/pbt_fashion.json          search.seed=s scheduler.seed=s --name ... --storage ...
    tune run examples/pbt_fashion_baseline.json search.seed=s                  --name ... --storage ...

(the baseline's scheduler is FIFO, which has no seed). Both specs sample the same space with
the same search seed, so each seed's PBT population starts from exactly the baseline's 8
configs; the budget is the same (8 trials x 16 epochs: checked from the result files).

Reads each experiment's best_trial.json (the best trial's final val_acc: the metric of its last
report), the trials' result.json files and journal.jsonl (trial_exploited events, relaunches),
and prints and writes a markdown table (bench/pbt/RESULTS.md by default), rewritten after every
seed so that a partial run leaves its rows. Each seed's names, exit statuses, wall times and load
are appended to <storage>/runs.jsonl; `--from-storage DIR` rebuilds the table from those
without running anything.

Standard library only:

    .venv/bin/python bench/pbt/run.py [--seeds 5] [--bin build-trainer/bin/tune]
                                      [--storage DIR] [--out bench/pbt/RESULTS.md]
                                      [--set key=value ...]   # extra overrides for both specs
    .venv/bin/python bench/pbt/run.py --from-storage DIR [--out FILE]
"""

import argparse
import datetime
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def read_jsonl(path):
    rows = []
    if not os.path.exists(path):
        return rows
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                try:
                    rows.append(json.loads(line))
                except ValueError:
                    pass  # a torn last line
    return rows


def summarize(exp_dir, metric):
    """What one experiment left: best trial, its final metric and lr, exploits, budget."""
    with open(os.path.join(exp_dir, "best_trial.json")) as f:
        best = json.load(f)
    journal = read_jsonl(os.path.join(exp_dir, "journal.jsonl"))
    events = [e.get("event") for e in journal]
    starts = [e for e in journal if e.get("event") == "trial_started"]
    trials = sorted(d for d in os.listdir(exp_dir)
                    if d.startswith("t_") and os.path.isdir(os.path.join(exp_dir, d)))
    finals = {}
    epochs = 0
    for t in trials:
        rows = read_jsonl(os.path.join(exp_dir, t, "result.json"))
        epochs += len(rows)
        if rows and metric in rows[-1]:
            finals[t] = rows[-1][metric]
    # Relaunch overhead: for each trial process started from a checkpoint, the time from the
    # trial's previous report to its next one, less that next epoch's own time (process start,
    # LibTorch, data and checkpoint loading, and any wait for a slot).
    overheads = []
    prev_ts = {}
    pending = set()
    for e in journal:
        kind, tid = e.get("event"), e.get("trial_id")
        if kind == "trial_started" and e.get("checkpoint") and tid in prev_ts:
            pending.add(tid)
        elif kind == "report":
            r = e.get("result", {})
            ts = r.get("timestamp")
            if tid in pending and ts is not None:
                it = r.get("metrics", {}).get("time_this_iter_s", 0)
                overheads.append(ts - prev_ts[tid] - it)
                pending.discard(tid)
            if ts is not None:
                prev_ts[tid] = ts
    last = best.get("last_result", {})
    return {
        "relaunch_overhead_s": sum(overheads) / len(overheads) if overheads else None,
        "best_trial": best.get("trial_id"),
        "best": best.get("value"),
        "best_lr": last.get("lr"),
        "best_max": max(finals.values()) if finals else None,  # cross-check of "best"
        "exploits": events.count("trial_exploited"),
        "pauses": events.count("trial_paused"),
        "launches": len(starts),
        "relaunches": sum(1 for e in starts if e.get("checkpoint")),
        "trials": len(trials),
        "trial_epochs": epochs,
        "errors": events.count("trial_failed"),
    }


def run_one(tune, spec, seed, name, storage, extra, log_dir, seeded_scheduler):
    cmd = [tune, "run", spec, "search.seed=%d" % seed]
    if seeded_scheduler:
        cmd.append("scheduler.seed=%d" % seed)
    cmd += list(extra) + ["--name", name, "--storage", storage]
    log = os.path.join(log_dir, name + ".log")
    load = open("/proc/loadavg").read().split()[0] if os.path.exists("/proc/loadavg") else "?"
    print("$ " + " ".join(shlex.quote(c) for c in cmd), flush=True)
    t0 = time.monotonic()
    with open(log, "w") as out:
        rc = subprocess.call(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    wall = time.monotonic() - t0
    if rc != 0:
        print("  exit status %d, see %s" % (rc, log), flush=True)
    return rc, wall, load


def fmt(x, spec="%.4f"):
    return "-" if x is None else spec % x


def table(rows, metric):
    head = ("| seed | PBT best %s | baseline best %s | diff (PBT - base) | PBT wall s | base wall s "
            "| PBT exploits | PBT relaunches (mean overhead s) | trial-epochs PBT/base "
            "| PBT best's final lr | base best's lr | load 1m (PBT/base) |" % (metric, metric))
    lines = [head, "|" + "---|" * 12]
    for r in rows:
        p, b = r["pbt"], r["base"]
        diff = None if p["best"] is None or b["best"] is None else p["best"] - b["best"]
        lines.append("| %d | %s | %s | %s | %.0f | %.0f | %d | %d (%s) | %d / %d | %s | %s | %s / %s |" % (
            r["seed"], fmt(p["best"]), fmt(b["best"]),
            "-" if diff is None else "%+.4f" % diff, r["pbt_wall"], r["base_wall"],
            p["exploits"], p["relaunches"], fmt(p["relaunch_overhead_s"], "%.1f"),
            p["trial_epochs"], b["trial_epochs"],
            fmt(p["best_lr"], "%.3g"), fmt(b["best_lr"], "%.3g"),
            r["pbt_load"], r["base_load"]))
    diffs = [r["pbt"]["best"] - r["base"]["best"] for r in rows
             if r["pbt"]["best"] is not None and r["base"]["best"] is not None]
    summary = []
    if diffs:
        wins = sum(1 for d in diffs if d > 0)
        ties = sum(1 for d in diffs if d == 0)
        pw = [r["pbt_wall"] for r in rows]
        bw = [r["base_wall"] for r in rows]
        summary = [
            "",
            "Over %d seeds: diff (PBT - baseline) mean %+.4f, min %+.4f, max %+.4f; PBT won %d of %d"
            " (ties %d, lost %d). Wall time mean: PBT %.0f s, baseline %.0f s." % (
                len(diffs), sum(diffs) / len(diffs), min(diffs), max(diffs), wins, len(diffs),
                ties, len(diffs) - wins - ties, sum(pw) / len(pw), sum(bw) / len(bw)),
            "Mean best %s: PBT %.4f, baseline %.4f." % (
                metric, sum(r["pbt"]["best"] for r in rows) / len(rows),
                sum(r["base"]["best"] for r in rows) / len(rows)),
        ]
    return lines + summary


def write_results(out, rows, notes, args, spec, metric, command, header):
    lines = ["# PBT vs. fixed hyperparameters (bench/pbt/run.py)", ""] + header + [
        "", "Command:", "", "    " + command, "",
        "Each seed s runs `tune run %s search.seed=s scheduler.seed=s` then `tune run %s "
        "search.seed=s`%s, one after the other. Both start from the same %s sampled configs, and "
        "every trial ends at the same epoch; the trial-epochs column counts the epochs actually "
        "trained (a PBT trial that clones a checkpoint older than its own retrains those epochs)."
        % (args.pbt, args.baseline, (" with " + " ".join(args.set)) if args.set else "",
           spec.get("num_samples", "?")),
        "PBT's number is its best trial's final %s (best_trial.json), the baseline's the best "
        "final %s among its fixed-hyperparameter trials. Exploits: trial_exploited events in "
        "journal.jsonl; relaunches: trial processes started from a checkpoint, with their mean "
        "overhead (time from the trial's previous report to its next, less that epoch's own "
        "time). Wall: the whole `tune run`. Load: /proc/loadavg (1 min) when each run began (the "
        "machine is shared)." % (metric, metric), ""]
    lines += table(rows, metric)
    if notes:
        lines += ["", "Notes:"] + ["- " + n for n in notes]
    if len(rows) < args.seeds:
        lines += ["", "(%d of %d seeds so far)" % (len(rows), args.seeds)]
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        f.write("\n".join(lines) + "\n")


def collect(storage, run, metric, notes):
    """One seed's row from the runs.jsonl entry `run`, or None (with a note) if unreadable."""
    row = dict(run)
    for key in ("pbt", "base"):
        rc = run[key + "_rc"]
        try:
            row[key] = summarize(os.path.join(storage, run[key + "_name"]), metric)
        except (OSError, ValueError) as e:
            notes.append("seed %d %s: exit status %d, no results (%s)" % (run["seed"], key, rc, e))
            return None
        if rc != 0:
            notes.append("seed %d %s: exit status %d" % (run["seed"], key, rc))
        s = row[key]
        if s["errors"]:
            notes.append("seed %d %s: %d trial_failed events" % (run["seed"], key, s["errors"]))
        if s["best"] != s["best_max"]:
            notes.append("seed %d %s: best_trial.json says %s, the best final %s in the result "
                         "files is %s" % (run["seed"], key, s["best"], metric, s["best_max"]))
    return row


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--bin", default="build-trainer/bin/tune", help="the tune binary")
    ap.add_argument("--pbt", default="examples/pbt_fashion.json")
    ap.add_argument("--baseline", default="examples/pbt_fashion_baseline.json")
    ap.add_argument("--storage", default=None, help="default: a new folder under /tmp")
    ap.add_argument("--out", default="bench/pbt/RESULTS.md")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="an extra override for both specs (e.g. trainer.max_epochs=2 for a smoke test)")
    ap.add_argument("--from-storage", metavar="DIR", default=None,
                    help="run nothing: rebuild the table from DIR/runs.jsonl and the experiments in DIR")
    args = ap.parse_args()

    tune = os.path.join(ROOT, args.bin) if not os.path.isabs(args.bin) else args.bin
    out = os.path.join(ROOT, args.out) if not os.path.isabs(args.out) else args.out
    with open(os.path.join(ROOT, args.pbt)) as f:
        spec = json.load(f)
    metric = spec["metric"]
    command = "cd %s && %s %s" % (ROOT, os.path.relpath(sys.executable, ROOT) if sys.executable.startswith(ROOT)
                                  else sys.executable, " ".join(shlex.quote(a) for a in sys.argv))

    if args.from_storage:
        storage = args.from_storage
        runs = read_jsonl(os.path.join(storage, "runs.jsonl"))
        notes = []
        rows = [r for r in (collect(storage, run, metric, notes) for run in runs) if r]
        info = runs[0].get("info", "") if runs else ""
        args.seeds = len(runs)
        write_results(out, rows, notes, args, spec, metric,
                      runs[0].get("command", command) if runs else command,
                      [info, "", "Table rebuilt from %s by `%s`." % (storage, command)])
        print("\n".join(table(rows, metric)))
        print("written: %s" % out)
        return 0 if rows else 1

    storage = args.storage or tempfile.mkdtemp(prefix="pbt_bench_")
    os.makedirs(storage, exist_ok=True)
    stamp = datetime.datetime.utcnow().strftime("%Y%m%dT%H%M%S")
    try:
        commit = subprocess.check_output(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                                         text=True, stderr=subprocess.DEVNULL).strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "?"
    info = "Started %s, commit %s (plus the working tree's changes), on %d CPUs; storage %s." % (
        datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M UTC"), commit, os.cpu_count() or 0,
        storage)
    print("storage: %s" % storage, flush=True)

    rows, notes = [], []
    for seed in range(args.seeds):
        names = {k: "%s_%s_s%d" % (k, stamp, seed) for k in ("pbt", "base")}
        rc_p, wall_p, load_p = run_one(tune, args.pbt, seed, names["pbt"], storage, args.set,
                                       storage, True)
        rc_b, wall_b, load_b = run_one(tune, args.baseline, seed, names["base"], storage, args.set,
                                       storage, False)
        run = {"seed": seed, "pbt_name": names["pbt"], "base_name": names["base"],
               "pbt_rc": rc_p, "base_rc": rc_b, "pbt_wall": wall_p, "base_wall": wall_b,
               "pbt_load": load_p, "base_load": load_b, "command": command, "info": info}
        with open(os.path.join(storage, "runs.jsonl"), "a") as f:
            f.write(json.dumps(run) + "\n")
        row = collect(storage, run, metric, notes)
        if row is None:
            continue
        rows.append(row)
        p, b = row["pbt"], row["base"]
        print("seed %d: PBT %s (%s, %.0f s, %d exploits, %d relaunches), baseline %s (%s, %.0f s)" % (
            seed, fmt(p["best"]), p["best_trial"], wall_p, p["exploits"], p["relaunches"],
            fmt(b["best"]), b["best_trial"], wall_b), flush=True)
        write_results(out, rows, notes, args, spec, metric, command, [info])

    print()
    print("\n".join(table(rows, metric)))
    for n in notes:
        print("note: " + n)
    print("written: %s" % out)
    return 1 if not rows or len(rows) < args.seeds else 0


if __name__ == "__main__":
    sys.exit(main())
