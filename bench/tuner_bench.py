#!/usr/bin/env python3
"""Tuner benchmarks: bookkeeping overhead, report throughput, decision round trip.

Usage: python3 bench/tuner_bench.py [--bin build/bin] [--quick] [--parts abcde]
Runs `tune run` on generated specs with tune-bench-trial and prints one table of numbers.
(e) runs (b)'s flood with the "wandb" (offline) and "mlflow" (a file store) reporters on, in this
Python (which must have wandb and mlflow: the project's .venv): the rate the trials' reports are
acknowledged at, and how long the end of the experiment then waits for the tracker to write them.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time


def run_tune(bin_dir, spec, storage, extra, env=None):
    path = os.path.join(storage, spec["name"] + ".json")
    with open(path, "w") as f:
        json.dump(spec, f)
    begin = time.monotonic()
    proc = subprocess.run([os.path.join(bin_dir, "tune"), "run", path, "--storage", storage] + extra,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env=dict(os.environ, **(env or {})))
    wall = time.monotonic() - begin
    if proc.returncode != 0:
        sys.exit(f"tune failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return wall, os.path.join(storage, spec["name"])


def base_spec(name, trainer, num_samples):
    return {"name": name, "metric": "score", "mode": "max", "num_samples": num_samples,
            "resources_per_trial": {"cpu": 1}, "scheduler": {"type": "fifo"},
            "reporter": {"refresh_s": 5},
            "trainer": dict(trainer, command=["tune-bench-trial"]),
            "space": {"x": {"uniform": [0, 1]}}}


def overhead(bin_dir, storage, trials, slots, trial_s):
    spec = base_spec("overhead", {"mode": "sleep", "sleep_ms": trial_s * 1000, "reports": 5},
                     trials)
    timeline = os.path.join(storage, "timeline.txt")
    begin_ns = time.monotonic_ns()  # the same clock as the trials' steady_clock
    wall, _ = run_tune(bin_dir, spec, storage, ["--cpus", str(slots)],
                       {"TUNE_BENCH_TIMELINE": timeline})
    ideal = trials / slots * trial_s
    # Where the time above ideal went: the k-th trial to end frees the slot of the (k + slots)-th
    # to start, so the gap is one trial's end (its last report answered) to the next one's main().
    with open(timeline) as f:
        rows = [tuple(map(int, line.split())) for line in f]
    starts = sorted(r[0] for r in rows)
    ends = sorted(r[1] for r in rows)
    gaps = sorted((starts[k + slots] - ends[k]) / 1e6 for k in range(len(rows) - slots))
    breakdown = {"first_start_ms": (starts[0] - begin_ns) / 1e6,
                 "first_wave_ms": (starts[slots - 1] - starts[0]) / 1e6,
                 "gap_mean_ms": statistics.mean(gaps), "gap_p50_ms": gaps[len(gaps) // 2],
                 "gap_p90_ms": gaps[int(len(gaps) * 0.9)],
                 "trial_over_ms": statistics.median((r[1] - r[0]) / 1e6 - trial_s * 1000
                                                    for r in rows)}
    return wall, ideal, breakdown


def trial_results(exp_dir):
    """The result.json of every trial directory that has one: t_*, as the experiment directory
    also holds the journal and snapshots/."""
    paths = (os.path.join(exp_dir, t, "result.json") for t in sorted(os.listdir(exp_dir))
             if t.startswith("t_"))
    return [p for p in paths if os.path.exists(p)]


def flood(bin_dir, storage, name, trials, reports, fsync="never", callbacks=None, env=None):
    spec = base_spec(name, {"mode": "flood", "reports": reports}, trials)
    spec["journal_fsync"] = fsync
    if callbacks:
        spec["callbacks"] = callbacks
    wall, exp_dir = run_tune(bin_dir, spec, storage, ["--cpus", str(trials)], env)
    flood.wall = wall
    stats = []
    for trial in sorted(os.listdir(exp_dir)):
        bench = os.path.join(exp_dir, trial, "bench.json")
        if os.path.exists(bench):
            with open(bench) as f:
                stats.append(json.load(f))
    total = sum(s["reports"] for s in stats)
    span = max(s["end_s"] for s in stats) - min(s["start_s"] for s in stats)
    lines = sum(1 for path in trial_results(exp_dir) for _ in open(path))
    assert lines == total, f"{lines} result lines for {total} reports"
    return total / span, statistics.median(s["p50_us"] for s in stats), max(s["p99_us"] for s in stats)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", default="build/bin")
    parser.add_argument("--quick", action="store_true", help="smaller runs (a smoke check)")
    parser.add_argument("--parts", default="abcd", help="which measurements to run, e.g. bc (e: trackers)")
    parser.add_argument("--reports", type=int, default=0, help="reports per client in (b)")
    args = parser.parse_args()
    storage = tempfile.mkdtemp(prefix="tune_bench_")
    try:
        trials, slots, trial_s = (40, 8, 0.5) if args.quick else (400, 16, 1.0)
        if "a" in args.parts:
            wall, ideal, b = overhead(args.bin, storage, trials, slots, trial_s)
            print(f"(a) bookkeeping: {trials} trials x {trial_s:g} s on {slots} slots: wall {wall:.2f} s, "
                  f"ideal {ideal:.2f} s, overhead {100 * (wall / ideal - 1):.2f}%")
            print(f"    first trial started {b['first_start_ms']:.1f} ms after tune, first wave took "
                  f"{b['first_wave_ms']:.1f} ms to start; a trial's end to the next one's main(): "
                  f"mean {b['gap_mean_ms']:.2f}, p50 {b['gap_p50_ms']:.2f}, p90 {b['gap_p90_ms']:.2f} ms; "
                  f"a trial's main() lasted {b['trial_over_ms']:.2f} ms past its {trial_s:g} s (median)")
        clients, reports = (4, 5000) if args.quick else (16, 50000)
        reports = args.reports or reports
        if "b" in args.parts:
            rate, p50, p99 = flood(args.bin, storage, "throughput", clients, reports)
            print(f"(b) throughput: {clients} clients x {reports} reports, logging on: {rate:,.0f} reports/s")
        if "c" in args.parts:
            rate1, p50, p99 = flood(args.bin, storage, "latency", 1, 20000 if not args.quick else 2000)
            print(f"(c) round trip, 1 client: p50 {p50:.1f} us, p99 {p99:.1f} us ({rate1:,.0f} reports/s)")
        for fsync in ("never", "interval", "always") if "d" in args.parts else ():
            n = 500 if args.quick else 5000
            rate, p50, p99 = flood(args.bin, storage, "fsync_" + fsync, 1, n, fsync)
            print(f"(d) journal_fsync={fsync}: 1 client x {n} reports: p50 {p50:.1f} us, "
                  f"p99 {p99:.1f} us, {rate:,.0f} reports/s")
        if "e" in args.parts:
            clients, reports = (4, 2000) if args.quick else (16, 5000)
            trackers = {
                "none": (None, None),
                "wandb": ([{"type": "wandb", "mode": "offline", "python": sys.executable}], None),
                "mlflow": ([{"type": "mlflow", "tracking_uri": f"file:{storage}/mlruns",
                             "python": sys.executable}], {"MLFLOW_ALLOW_FILE_STORE": "true"}),
            }
            for tracker, (callbacks, env) in trackers.items():
                rate, _, _ = flood(args.bin, storage, "tracker_" + tracker, clients, reports,
                                   callbacks=callbacks, env=env)
                span = clients * reports / rate
                print(f"(e) {tracker}: {clients} clients x {reports} reports acknowledged at "
                      f"{rate:,.0f} reports/s ({span:.2f} s); tune run took {flood.wall:.2f} s in all")
    finally:
        shutil.rmtree(storage, ignore_errors=True)


if __name__ == "__main__":
    main()
