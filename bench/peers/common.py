"""Helpers shared by the bench/peers/ parts: one measurement = one fresh process.

Each part module runs its repetitions as subprocesses of its own command line
(`python bench/peers/<part>.py --side tune|ray|optuna ...`), which print one line
`RESULT {json}`; the part's table shows that command so any row can be rerun by hand.
A Ray repetition runs in its own session (setsid): when it exits, anything left in that
session (raylet, gcs_server, workers) is killed by process id, so a run leaves no Ray processes
behind and never touches another user's Ray.
"""
import json
import os
import shlex
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
RESULT_PREFIX = "RESULT "


def emit(result):
    """What a measurement subprocess prints as its last word."""
    print(RESULT_PREFIX + json.dumps(result), flush=True)


def shown(cmd, root=ROOT):
    """A command as a reader reruns it from the repository root (paths made relative)."""
    out = []
    for arg in cmd:
        if os.path.isabs(arg) and arg.startswith(root + os.sep):
            arg = os.path.relpath(arg, root)
        out.append(shlex.quote(arg))
    return " ".join(out)


def session_pids(sid):
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        if int(fields[3]) == sid:  # state ppid pgrp session ...
            pids.append(int(entry))
    return pids


def kill_session(sid, grace_s=5.0):
    """Ends every process left in session `sid` (one we started with setsid), by id."""
    pids = session_pids(sid)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace_s
        while pids and time.monotonic() < deadline:
            time.sleep(0.1)
            pids = session_pids(sid)
        if not pids:
            return 0
    return len(pids)


def run_in_session(ctx, cmd, log_path, timeout_s=3600, env=None, err_path=None):
    """Runs cmd in its own session, output to log_path (stderr too unless err_path); kills what
    it leaves behind. Returns its exit status ("timeout" if it ran past timeout_s)."""
    ctx.log("$ " + shown(cmd, ctx.root))
    with open(log_path, "w") as log, open(err_path or os.devnull, "w") as err:
        proc = subprocess.Popen(cmd, stdout=log, stderr=err if err_path else subprocess.STDOUT,
                                cwd=ctx.root,
                                env=dict(os.environ, **(env or {})), start_new_session=True)
        try:
            rc = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            rc = "timeout"
        finally:
            left = session_pids(proc.pid)
            if left:
                ctx.log(f"  cleaning up {len(left)} process(es) left in session {proc.pid}")
                kill_session(proc.pid)
            proc.wait()
    return rc


def measure(ctx, cmd, timeout_s=3600, env=None):
    """Runs one measurement subprocess in its own session; returns its RESULT dict."""
    log_path = os.path.join(ctx.work, f"log_{time.monotonic_ns()}.txt")
    rc = run_in_session(ctx, cmd, log_path, timeout_s, env)
    with open(log_path, errors="replace") as f:
        text = f.read()
    for line in reversed(text.splitlines()):
        if line.startswith(RESULT_PREFIX):
            if rc != 0:
                break
            return json.loads(line[len(RESULT_PREFIX):])
    raise RuntimeError(f"{shown(cmd, ctx.root)} failed ({rc}); log {log_path}:\n{text[-1500:]}")


def interleave(reps, sides):
    """tune, peer, tune, peer, ...: the order of (rep, side) pairs."""
    return [(rep, side) for rep in range(reps) for side in sides]


def ray_init(work, num_cpus=16):
    """ray.init for the peers' measurements: a new local Ray instance of its own (never another
    user's cluster), num_cpus slots whatever the machine has, no dashboard, workers' output not
    forwarded, everything Ray writes under `work`."""
    import ray
    # Ray's sockets live in <temp>/session_<date>_<pid>/sockets/plasma_store: AF_UNIX paths end
    # at 107 bytes, so a deep scratch directory gets a short one in /tmp, removed at exit.
    temp = os.path.join(work, "r")
    if len(temp) + len("/session_2026-11-28_18-13-48_920578_2042300/sockets/plasma_store") > 107:
        import atexit
        import shutil
        import tempfile
        temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")
        atexit.register(shutil.rmtree, temp, True)
    os.makedirs(temp, exist_ok=True)
    ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, log_to_driver=False,
             _temp_dir=temp, configure_logging=True, logging_level="warning")
    return ray


def median(values):
    values = sorted(values)
    n = len(values)
    return values[n // 2] if n % 2 else (values[n // 2 - 1] + values[n // 2]) / 2


def fmt(value, digits=3):
    if value is None:
        return "-"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}g}"


def side_args(argv=None):
    """The arguments every measurement subprocess takes (`--work`, `--bin`)."""
    import argparse
    parser = argparse.ArgumentParser()
    parser.add_argument("--side", required=True)
    parser.add_argument("--work", default=None, help="scratch directory (default: a new one in /tmp)")
    parser.add_argument("--bin", default=os.path.join(ROOT, "build", "bin"))
    return parser


def regret_speed_main(sides, configure):
    """The command line of a search comparison's measurement subprocess (bench/peers/tpe.py,
    search.py): side_args plus `--what regret|speed`, `--seeds`, `--trials` and what
    `configure(parser)` adds; runs `sides[(args.side, args.what)](args)` and emits its result."""
    parser = side_args()
    parser.add_argument("--what", choices=["regret", "speed"], required=True)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--trials", type=int, default=100)
    configure(parser)
    args = parser.parse_args()
    fn = sides.get((args.side, args.what))
    if fn is None:
        sys.exit(f"unknown side {args.side}")
    emit(fn(args))


def need_fashion_and_bins(ctx, who, bins):
    """Before a part that trains: data/fashion (fetched by scripts/get_data.sh when missing) and
    the tune binaries `bins` in ctx.bin_dir."""
    if not os.path.exists(os.path.join(ctx.root, "data", "fashion", "train-images-idx3-ubyte")):
        ctx.log(f"{who}: data/fashion missing, running scripts/get_data.sh")
        subprocess.run(["bash", os.path.join(ctx.root, "scripts", "get_data.sh")], check=True)
    for b in bins:
        if not os.access(os.path.join(ctx.bin_dir, b), os.X_OK):
            raise RuntimeError(f"no {b} in {ctx.bin_dir} (build first)")


def run_side(args, sides):
    """A measurement subprocess's body: runs `sides[args.side](args)` (in a new scratch
    directory unless --work names one) and emits its result."""
    import tempfile
    args.work = args.work or tempfile.mkdtemp(prefix="tune_peers_")
    if args.side not in sides:
        sys.exit(f"unknown side {args.side} (known: {', '.join(sides)})")
    emit(sides[args.side](args))


def add_bench_path():
    """bench/ on sys.path, to import tuner_bench.py (the tune side's spec and run helpers)."""
    bench = os.path.dirname(HERE)
    if bench not in sys.path:
        sys.path.insert(0, bench)


def run_alone(run, args, prefix, **settings):
    """A part run by itself (`python bench/peers/<part>.py [--quick] [--bin DIR] [--out FILE]`):
    builds the ctx run.py would, with the part's own `settings`, prints its section and writes it
    to args.out when given."""
    import tempfile
    import types
    ctx = types.SimpleNamespace(
        quick=args.quick, bin_dir=os.path.abspath(args.bin), root=ROOT, python=sys.executable,
        work=tempfile.mkdtemp(prefix=prefix), log=lambda m: print(m, file=sys.stderr, flush=True), **settings)
    section = run(ctx)
    print(section)
    if args.out:
        with open(args.out, "w") as f:
            f.write(section + "\n")
