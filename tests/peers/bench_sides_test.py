"""The tune sides of bench/peers' overhead and throughput parts, at a tiny size: each must run
its `tune run` to the end and count what the experiment directory holds (every trial, every
result line). bench/PEERS.md is written by these scripts; a change to the experiment directory's
layout (snapshots/ beside the t_* trial directories broke both once) fails here, not an hour into
a full peers run. No peer package is needed.

python tests/peers/bench_sides_test.py --bin build/bin
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PEERS = os.path.join(ROOT, "bench", "peers")
sys.path.insert(0, PEERS)
import common  # noqa: E402


def side(script, bin_dir, *args):
    with tempfile.TemporaryDirectory(prefix="tune_bench_sides_") as work:
        cmd = [sys.executable, os.path.join(PEERS, script), "--side", "tune", "--bin", bin_dir,
               "--work", work, *args]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
        lines = [l for l in proc.stdout.splitlines() if l.startswith(common.RESULT_PREFIX)]
        if proc.returncode != 0 or not lines:
            sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
        return json.loads(lines[-1][len(common.RESULT_PREFIX):])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", required=True)
    bin_dir = os.path.abspath(parser.parse_args().bin)
    failures = []

    # Sizes past the 1,000 journal events after which the tuner ends a run with a state snapshot
    # (snapshots/ in the experiment directory, tuner/snapshot.h), as the full runs do.
    trials, reports = 150, 5  # tuner_bench.py (a) reports 5 times a trial
    r = side("overhead.py", bin_dir, "--trials", str(trials), "--sleep", "0.05", "--reports",
             str(reports), "--slots", "8")
    print("overhead, tune side:", r)
    if r["trials_ok"] != trials or r["result_lines"] != trials * reports:
        failures.append(f"overhead: {r['trials_ok']} trials with results (want {trials}), "
                        f"{r['result_lines']} result lines (want {trials * reports})")
    if not 0 < r["ideal_s"] <= r["wall_s"]:
        failures.append(f"overhead: wall {r['wall_s']} s below the ideal {r['ideal_s']} s")

    trials, reports = 4, 300
    r = side("throughput.py", bin_dir, "--trials", str(trials), "--reports", str(reports))
    print("throughput, tune side:", r)
    if r["reports"] != trials * reports or not r["rate"] > 0:
        failures.append(f"throughput: {r['reports']} reports (want {trials * reports}), rate {r['rate']}")

    for f in failures:
        print("FAIL", f)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
