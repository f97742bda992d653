#!/usr/bin/env python3
"""Does the live dashboard slow reports? Report throughput of `tune run` (tune-bench-trial in flood
mode, as bench/tuner_bench.py's (b)) with --dashboard and 5 Server-Sent-Event clients reading the
stream the whole run, against no dashboard. Runs alternate in pairs (none, 5 clients; none, 5
clients; ...; the order within a pair alternates too, so a drift in the machine's load favours
neither side); each pair's ratio (with / without) is printed, and the median of the pairs'
ratios as well as the ratio of the medians. The issue's target is within 5 %.

Usage: python3 bench/dashboard_bench.py [--bin build/bin] [--clients 5] [--trials 8]
       [--reports 20000] [--repeats 5]
"""
import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tuner_bench import base_spec  # noqa: E402  (the same flood spec as tuner_bench.py's (b))


def read_events(port, stats, stop):
    """One SSE client: GET /events, then read (and count) until the server closes."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
            s.sendall(b"GET /events HTTP/1.1\r\nHost: bench\r\n\r\n")
            while not stop.is_set():
                data = s.recv(1 << 20)
                if not data:
                    break
                stats["bytes"] += len(data)
                stats["events"] += data.count(b"\n\ndata: ") + data.startswith(b"data: ")
    except OSError as e:
        stats["error"] = str(e)


def run(bin_dir, storage, name, trials, reports, clients):
    spec = base_spec(name, {"mode": "flood", "reports": reports}, trials)
    path = os.path.join(storage, name + ".json")
    with open(path, "w") as f:
        json.dump(spec, f)
    cmd = [os.path.join(bin_dir, "tune"), "run", path, "--storage", storage, "--cpus", str(trials)]
    if clients >= 0:
        cmd += ["--dashboard", "127.0.0.1:0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    threads, stats, stop = [], [], threading.Event()
    if clients >= 0:
        for line in proc.stdout:
            m = re.match(r"Dashboard: http://127\.0\.0\.1:(\d+)/", line)
            if m:
                port = int(m.group(1))
                break
        for _ in range(clients):
            stats.append({"bytes": 0, "events": 0})
            threads.append(threading.Thread(target=read_events, args=(port, stats[-1], stop), daemon=True))
            threads[-1].start()
    proc.communicate()
    stop.set()
    for t in threads:
        t.join(timeout=10)
    if proc.returncode != 0:
        sys.exit(f"tune failed ({proc.returncode})")
    exp_dir = os.path.join(storage, name)
    runs = []
    for trial in os.listdir(exp_dir):
        bench = os.path.join(exp_dir, trial, "bench.json")
        if os.path.exists(bench):
            with open(bench) as f:
                runs.append(json.load(f))
    total = sum(r["reports"] for r in runs)
    span = max(r["end_s"] for r in runs) - min(r["start_s"] for r in runs)
    shutil.rmtree(exp_dir, ignore_errors=True)
    return total / span, stats


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", default="build/bin")
    parser.add_argument("--clients", type=int, default=5)
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--reports", type=int, default=20000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    storage = tempfile.mkdtemp(prefix="tune_dash_bench_")
    none, with_clients, received = [], [], []
    try:
        for i in range(args.repeats):
            order = ["none", "sse"] if i % 2 == 0 else ["sse", "none"]
            for side in order:
                if side == "none":
                    rate, _ = run(args.bin, storage, f"none_{i}", args.trials, args.reports, -1)
                    none.append(rate)
                else:
                    rate, stats = run(args.bin, storage, f"sse_{i}", args.trials, args.reports, args.clients)
                    with_clients.append(rate)
                    received.extend(stats)
            print(f"pair {i + 1}: none {none[-1]:,.0f}, with {with_clients[-1]:,.0f} reports/s: "
                  f"ratio {with_clients[-1] / none[-1]:.3f}", flush=True)
    finally:
        shutil.rmtree(storage, ignore_errors=True)
    a, b = statistics.median(none), statistics.median(with_clients)
    ratios = [w / n for n, w in zip(none, with_clients)]
    events = statistics.median(s["events"] for s in received) if received else 0
    mb = statistics.median(s["bytes"] for s in received) / 1e6 if received else 0
    errors = [s["error"] for s in received if "error" in s]
    print(f"{args.trials} trials x {args.reports} reports: no dashboard {a:,.0f} reports/s "
          f"({', '.join(f'{x:,.0f}' for x in none)}); --dashboard with {args.clients} SSE clients "
          f"{b:,.0f} reports/s ({', '.join(f'{x:,.0f}' for x in with_clients)}): {100 * (b / a - 1):+.1f} %; "
          f"median of the pairs' ratios {statistics.median(ratios):.3f} (min {min(ratios):.3f}, max {max(ratios):.3f}); "
          f"each client got {events:.0f} updates, {mb:.1f} MB" + (f"; errors: {errors}" if errors else ""))


if __name__ == "__main__":
    main()
