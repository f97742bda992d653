#!/usr/bin/env python3
"""tune and its peers (Ray Tune, Optuna, PyTorch/Lightning), measured side by side in one run.

Usage: .venv/bin/python bench/peers/run.py [--quick] [--parts overhead,throughput,asha,tpe,trainer,race]
                                           [--bin build/bin] [--out bench/PEERS.md] [--note TEXT]

Each part is a module here (bench/peers/<part>.py) with `run(ctx) -> str`, the part's Markdown
section; within a part the repetitions alternate between tune and the peer. A part whose module
is not there is written as "not run"; a part that fails is written with its error and the run
goes on. Writes bench/PEERS.md: the machine, the versions, the commit, then one section per part
(raw numbers, ratio vs target, the command behind each row); bench/peers/README.md. Run it with the project's venv
(`bash scripts/setup.sh --peers`), after building (build/bin).
"""
import argparse
import datetime
import importlib
import importlib.metadata
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import common  # noqa: E402

PARTS = ["overhead", "throughput", "asha", "tpe", "search", "trainer", "race"]
TITLES = {
    "overhead": "Bookkeeping overhead: tune vs Ray Tune (target: tune's overhead <= 1/10 of Ray's)",
    "throughput": "Report throughput, logging on: tune vs Ray Tune (target: >= 50x Ray)",
    "asha": "ASHA decisions: tune vs Ray Tune's AsyncHyperBandScheduler",
    "tpe": "TPE: tune vs Optuna (targets: regret <= Optuna's on every function; >= 100x faster "
           "per suggestion at 2000 trials)",
    "search": "CMA-ES and GP: tune vs Optuna's CmaEsSampler and GPSampler (targets: regret <= "
              "Optuna's on every function; >= 20x faster per suggestion at 1000 trials)",
    "trainer": "Trainer: tune-trainer vs PyTorch / Lightning",
    "race": "Race: the same tuning job end to end, tune vs the peers",
}
KEY_PACKAGES = ["torch", "ray", "optuna", "lightning", "numpy", "pandas", "pyarrow", "tensorboardX"]


class Context:
    """What a part's run(ctx) gets."""

    def __init__(self, quick, bin_dir, root, work, log_file):
        self.quick = quick          # smaller sizes, fewer repetitions
        self.bin_dir = bin_dir      # absolute path of the built binaries (tune, tune-bench-*)
        self.root = root            # repository root
        self.python = sys.executable
        self.work = work            # scratch directory for this run (deleted at the end)
        self._log_file = log_file
        self._start = time.monotonic()

    def log(self, msg):
        line = f"[{time.monotonic() - self._start:7.1f}s] {msg}"
        print(line, file=sys.stderr, flush=True)
        with open(self._log_file, "a") as f:
            f.write(line + "\n")


def sh(cmd, cwd=None):
    try:
        return subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def cpu_model():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def mem_total_gib():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 2**20
    return 0.0


def versions():
    dists = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            dists[name] = dist.version
    return dists


def header(args, root, bin_dir, load_before, started):
    dists = versions()
    lower = {k.lower(): v for k, v in dists.items()}
    commit = sh(["git", "rev-parse", "HEAD"], root)
    dirty = sh(["git", "status", "--porcelain", "--untracked-files=no"], root)
    subject = sh(["git", "log", "-1", "--format=%s"], root)
    lines = ["# tune vs its peers, measured side by side", "",
             "Written by `bench/peers/run.py` (see bench/peers/README.md); every number below was measured "
             "in the run this file describes, tune and the peer interleaved on the same machine.", ""]
    if args.quick:
        lines += ["**Mode: `--quick`** - smaller sizes and one repetition per side: a smoke check of "
                  "the runner, not final numbers.", ""]
    if args.note:
        lines += [f"**Note:** {args.note}", ""]
    lines += ["| | |", "|---|---|",
              f"| date | {started.strftime('%Y-%m-%d %H:%M:%S %Z')} |",
              f"| command | `{common.shown([os.path.relpath(sys.executable, root) if sys.executable.startswith(root) else sys.executable] + sys.argv, root)}` |",
              f"| machine | {os.cpu_count()} CPUs (nproc {sh(['nproc'])}), {cpu_model()}, "
              f"{mem_total_gib():.1f} GiB RAM, {platform.system()} {platform.release()} |",
              f"| load average (1/5/15 min) before | {load_before} |",
              "| load average after | LOAD_AFTER |",
              f"| tune commit | `{commit}`{' (plus uncommitted changes)' if dirty else ''}: {subject} |",
              f"| tune binaries | `{os.path.relpath(bin_dir, root)}` |",
              f"| python | {platform.python_version()} (`{sys.executable}`) |",
              "| peers | " + ", ".join(f"{p} {lower.get(p.lower(), 'not installed')}"
                                       for p in KEY_PACKAGES) + " |", ""]
    full = ", ".join(f"{k}=={v}" for k, v in sorted(dists.items(), key=lambda kv: kv[0].lower()))
    footer = ["<details><summary>Every package in this Python environment</summary>", "",
              full, "", "</details>", ""]
    return lines, footer


def run_part(name, ctx):
    if not os.path.exists(os.path.join(HERE, name + ".py")):
        return f"not run: bench/peers/{name}.py is not there.\n"
    return importlib.import_module(name).run(ctx)


def leftovers(work):
    """Processes whose command line names this run's scratch directory (Ray's, if any)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if work.encode() in f.read():
                        pids.append(int(entry))
            except OSError:
                pass
    return pids



def write(out_path, head, sections, tail, footer):
    with open(out_path, "w") as f:
        f.write("\n".join(head + sections + tail + footer))

def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (< 5 minutes in all)")
    parser.add_argument("--parts", default=",".join(PARTS), help="comma-separated, from " + ",".join(PARTS))
    parser.add_argument("--bin", default="build/bin")
    parser.add_argument("--out", default="bench/PEERS.md")
    parser.add_argument("--note", default="", help="a line for the header (e.g. 'machine busy')")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    args = parser.parse_args()
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        sys.exit(f"unknown parts {unknown}; known: {PARTS}")
    root = common.ROOT
    bin_dir = os.path.abspath(os.path.join(root, args.bin) if not os.path.isabs(args.bin) else args.bin)
    out_path = os.path.join(root, args.out) if not os.path.isabs(args.out) else args.out
    work = tempfile.mkdtemp(prefix="tp_")  # short: Ray's socket paths live below it
    ctx = Context(args.quick, bin_dir, root, work, os.path.join(work, "run.log"))
    started = datetime.datetime.now().astimezone()
    begin = time.monotonic()
    load_before = loadavg()
    head, footer = header(args, root, bin_dir, load_before, started)
    ctx.log(f"bench/peers: {'quick' if args.quick else 'full'} run of {parts}, scratch {work}")
    sections = []
    try:
        for name in parts:
            ctx.log(f"== {name}")
            part_begin, part_load = time.monotonic(), loadavg()
            try:
                body = run_part(name, ctx)
            except Exception:  # one part failing must not lose the others
                body = "failed:\n\n```\n" + traceback.format_exc()[-3000:] + "```\n"
                ctx.log(f"{name} failed:\n{traceback.format_exc()}")
            took = time.monotonic() - part_begin
            timing = f"*{took:.0f} s; load average {part_load} at the start, {loadavg()} at the end.*"
            body = body.strip()
            if body.startswith("## "):  # the part wrote its own heading: keep it, timing below
                heading, _, rest = body.partition("\n")
                sections += [heading, "", timing, "", rest.strip(), ""]
            else:
                sections += [f"## {TITLES[name]}", "", timing, "", body, ""]
            ctx.log(f"== {name} done in {took:.0f} s")
            # What is measured so far reaches the file after every part, so an interrupted run
            # keeps it.
            write(out_path, [line.replace("LOAD_AFTER", "(run not finished)") for line in head], sections,
                  [f"Partial: the run was interrupted or is still going; the last part written is {name}.", ""],
                  footer)
    finally:
        left = leftovers(work)
        if left:
            ctx.log(f"ending {len(left)} leftover process(es): {left}")
            for pid in left:
                try:
                    os.kill(pid, 9)
                except ProcessLookupError:
                    pass
    duration = time.monotonic() - begin
    tail = [f"Total duration: {duration / 60:.1f} min ({'--quick' if args.quick else 'full run'}, "
            f"parts: {', '.join(parts)}).", ""]
    write(out_path, [line.replace("LOAD_AFTER", loadavg()) for line in head], sections, tail, footer)
    ctx.log(f"wrote {os.path.relpath(out_path, root)} ({duration:.0f} s)")
    if args.keep:
        ctx.log(f"scratch kept: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
