#!/usr/bin/env python3
"""What running trials as Slurm job steps costs, on the test cluster of scripts/slurm_cluster.sh
(start it first; needs root).

1. Launch overhead per trial: trials of one 0-second epoch, one at a time (max_concurrent 1):
   the gap between a trial's report and the next trial's first report is everything a launch
   costs (tuner bookkeeping, srun creating the step, slurmstepd starting the task, the trial
   connecting). p50 and p90 over the trials, Slurm (job steps of an allocation on one node)
   against the local launcher.
2. 100 short trials (10 epochs of `--sleep-ms` each) on 8 slots, Slurm against local: wall time
   of `tune run`, and Slurm's overhead in percent (target <= 5 %).

  python3 bench/slurm_bench.py --bin build-slurm/bin [--trials 100] [--sleep-ms 300]
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SLURM_DIR = Path(os.environ.get("TUNE_SLURM_DIR", "/tmp/tune-slurm"))
ENV = dict(os.environ, SLURM_CONF=str(SLURM_DIR / "slurm.conf"))


def allocation_env(nodes=1):
    result = subprocess.run(["salloc", "--no-shell", "--exclusive", f"--nodes={nodes}",
                             "--job-name=tune-bench"],
                            env=ENV, capture_output=True, text=True, timeout=60)
    job = re.search(r"Granted job allocation (\d+)", result.stderr).group(1)
    info = subprocess.run(["scontrol", "show", "job", "-o", job], env=ENV, capture_output=True,
                          text=True).stdout
    nodelist = re.search(r" NodeList=(\S+)", info).group(1)
    cpus = int(re.search(r"NumCPUs=(\d+)", info).group(1))
    return job, dict(ENV, SLURM_JOB_ID=job, SLURM_JOB_NODELIST=nodelist,
                     SLURM_JOB_CPUS_PER_NODE=f"{cpus}(x{nodes})")


def run(bin_dir, directory, name, launcher, env, samples, epochs, sleep_ms, concurrent):
    spec = {
        "name": name, "metric": "loss", "mode": "min", "num_samples": samples,
        "max_concurrent": concurrent, "resources_per_trial": {"cpu": 1},
        "search": {"algorithm": "random", "seed": 0},
        "trainer": {"command": [str(Path(bin_dir) / "tune-example-curve")],
                    "max_epochs": epochs, "sleep_ms": sleep_ms, "checkpoint": False},
        "space": {"x1": {"uniform": [-5, 10]}, "x2": {"uniform": [0, 15]},
                  "lr": {"loguniform": [0.01, 0.4]}},
        "launcher": {"type": launcher}, "storage": str(directory),
    }
    path = Path(directory) / f"{name}.json"
    path.write_text(json.dumps(spec))
    command = [str(Path(bin_dir) / "tune"), "run", str(path), "--cpus", str(concurrent)]
    start = time.monotonic()
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1800)
    wall = time.monotonic() - start
    if result.returncode != 0:
        sys.exit(f"{name}: tune run failed:\n{result.stderr[-3000:]}")
    reports = []
    for line in (Path(directory) / name / "journal.jsonl").read_text().splitlines():
        event = json.loads(line)
        if event["event"] == "report":
            reports.append((event["result"]["timestamp"], event["trial_id"],
                            event["result"]["training_iteration"]))
    return wall, sorted(reports)


def launch_gaps(reports):
    """First report of each trial minus the previous trial's last report (trials run one by one)."""
    gaps, last = [], None
    for timestamp, _, iteration in reports:
        if iteration == 1 and last is not None:
            gaps.append(timestamp - last)
        last = timestamp
    return gaps


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", required=True)
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--sleep-ms", type=int, default=300)
    parser.add_argument("--launch-trials", type=int, default=30)
    args = parser.parse_args()
    args.bin = str(Path(args.bin).resolve())
    if subprocess.run(["sinfo", "-h"], env=ENV, capture_output=True).returncode != 0:
        sys.exit("the test cluster is not running: bash scripts/slurm_cluster.sh start")
    job, slurm_env = allocation_env()
    rows = []
    try:
        with tempfile.TemporaryDirectory(prefix="tune-slurm-bench-") as directory:
            for launcher, env in (("local", ENV), ("slurm", slurm_env)):
                _, reports = run(args.bin, directory, f"launch_{launcher}", launcher, env,
                                 args.launch_trials, 1, 0, 1)
                gaps = sorted(launch_gaps(reports))
                rows.append((f"launch overhead per trial, {launcher} (p50 / p90, ms)",
                             f"{1000 * statistics.median(gaps):.0f} / "
                             f"{1000 * gaps[int(0.9 * (len(gaps) - 1))]:.0f}"))
            walls = {}
            for launcher, env in (("local", ENV), ("slurm", slurm_env)):
                walls[launcher], _ = run(args.bin, directory, f"many_{launcher}", launcher, env,
                                         args.trials, 10, args.sleep_ms, 8)
                rows.append((f"{args.trials} trials x 10 epochs x {args.sleep_ms} ms, 8 slots, "
                             f"{launcher} (s)", f"{walls[launcher]:.1f}"))
            overhead = 100 * (walls["slurm"] - walls["local"]) / walls["local"]
            rows.append(("Slurm overhead over local (%)", f"{overhead:+.1f}"))
    finally:
        subprocess.run(["scancel", job], env=ENV)
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()
