#!/usr/bin/env python3
"""Scale benchmark (issue 19): many zero-length trials in one experiment, then its resume.

Usage: python3 bench/scale_bench.py [--bin build/bin] [--trials 1000,10000,100000]
                                    [--scheduler asha|median|fifo] [--keep DIR]

Each trial is tune-bench-trial in flood mode (9 reports back to back, no sleep), ASHA on
training_iteration with max_t 9 (or the median rule, or FIFO), 16 at once. For every size it runs
`tune run`, then `tune resume` of the finished experiment, and prints per run: wall time,
reports/s over the run, the tuner's max RSS (wait4's ru_maxrss: the tuner, or its largest
descendant, a trial being ~4 MB), the journal's size, and the resume's wall and max RSS.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time


def spec(name, trials, scheduler, reports):
    sched = {"type": "fifo"}
    if scheduler == "asha":
        sched = {"type": "asha", "time_attr": "training_iteration", "max_t": reports,
                 "grace_period": 1, "reduction_factor": 3}
    elif scheduler == "median":
        sched = {"type": "median_stopping_rule", "time_attr": "training_iteration",
                 "grace_period": 1, "min_samples_required": 3}
    return {"name": name, "metric": "score", "mode": "max", "num_samples": trials,
            "resources_per_trial": {"cpu": 1}, "scheduler": sched,
            "reporter": {"refresh_s": 5},
            "trainer": {"command": ["tune-bench-trial"], "mode": "flood", "reports": reports},
            "space": {"x": {"uniform": [0, 1]}}}


def timed(argv):
    """Runs argv; returns (exit status, wall seconds, max RSS in MiB, stderr tail)."""
    begin = time.monotonic()
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.monotonic() - begin
        err.seek(0)
        tail = err.read()[-65536:].decode(errors="replace")
    return os.waitstatus_to_exitcode(status), wall, usage.ru_maxrss / 1024, tail


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", default="build/bin")
    parser.add_argument("--trials", default="1000,10000,100000")
    parser.add_argument("--scheduler", default="asha", choices=["asha", "median", "fifo"])
    parser.add_argument("--reports", type=int, default=9)
    parser.add_argument("--cpus", type=int, default=16)
    parser.add_argument("--keep", help="keep the experiments under this directory")
    parser.add_argument("--no-resume", action="store_true")
    args = parser.parse_args()
    tune = os.path.abspath(os.path.join(args.bin, "tune"))
    storage = args.keep or tempfile.mkdtemp(prefix="tune_scale_")
    os.makedirs(storage, exist_ok=True)
    print(f"| trials | reports | `tune run` wall | reports/s | tuner max RSS | journal | "
          f"`tune resume` wall | resume max RSS | from | full replay wall | full replay RSS |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    try:
        for trials in [int(t) for t in args.trials.split(",")]:
            name = f"scale_{args.scheduler}_{trials}"
            shutil.rmtree(os.path.join(storage, name), ignore_errors=True)
            path = os.path.join(storage, name + ".json")
            with open(path, "w") as f:
                json.dump(spec(name, trials, args.scheduler, args.reports), f)
            code, wall, rss, tail = timed([tune, "run", path, "--storage", storage,
                                           "--cpus", str(args.cpus)])
            if code != 0:
                sys.exit(f"tune run failed ({code}):\n{tail}")
            exp = os.path.join(storage, name)
            reports = 0
            with open(os.path.join(exp, "journal.jsonl"), "rb") as f:
                for line in f:
                    reports += b'"event":"report"' in line
            journal_mb = os.path.getsize(os.path.join(exp, "journal.jsonl")) / 2**20
            resume = "-"
            if not args.no_resume:
                # As a user would: the finished experiment, from its last state snapshot when it
                # has one ("from" says which); then again with snapshots/ moved away, the whole
                # journal replayed (what resume cost before state snapshots).
                rcode, rwall, rrss, rtail = timed([tune, "resume", exp])
                if rcode != 0:
                    sys.exit(f"tune resume failed ({rcode}):\n{rtail}")
                source = "snapshot" if "resume: from snapshots/" in rtail else "journal"
                snapshots = os.path.join(exp, "snapshots")
                full = "- | -"
                if os.path.isdir(snapshots):
                    shutil.move(snapshots, snapshots + ".off")
                    fcode, fwall, frss, ftail = timed([tune, "resume", exp])
                    shutil.rmtree(snapshots, ignore_errors=True)
                    shutil.move(snapshots + ".off", snapshots)
                    if fcode != 0:
                        sys.exit(f"tune resume (full replay) failed ({fcode}):\n{ftail}")
                    full = f"{fwall:.2f} s | {frss:.0f} MiB"
                resume = f"{rwall:.2f} s | {rrss:.0f} MiB | {source} | {full}"
            else:
                resume = "- | - | - | - | -"
            print(f"| {trials:,} | {reports:,} | {wall:.1f} s | {reports / wall:,.0f} | {rss:.0f} MiB | "
                  f"{journal_mb:.0f} MiB | {resume} |", flush=True)
            if not args.keep:
                shutil.rmtree(exp, ignore_errors=True)
    finally:
        if not args.keep:
            shutil.rmtree(storage, ignore_errors=True)


if __name__ == "__main__":
    main()
