#!/usr/bin/env python3
"""`tune run --launcher slurm` on a real Slurm cluster: the two-node test cluster of
scripts/slurm_cluster.sh (slurmd n1 and n2 in network namespaces of their own, so a trial's
ranks and its reports really cross a network). CTest starts the cluster before (fixture
slurm_cluster) and stops it after.

Each test takes an allocation of its own without a shell (`salloc --no-shell --no-kill`) and runs
the tuner in it, as an sbatch script's `tune run` would: the allocation outlives a tuner killed
with -9, so `tune resume` must clean up what that tuner left.

  python3 slurm_cluster_test.py --bin BUILD/bin [--trainer BUILD/bin/tune-trainer] [unittest args]

Exits 77 (CTest: skipped) when the cluster is not running because Slurm could not be installed
or started here (scripts/slurm_cluster.sh said why), except on CI (CI=true), where it fails.
"""
import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import unittest
from pathlib import Path

ARGS = None
SLURM_DIR = Path(os.environ.get("TUNE_SLURM_DIR", "/tmp/tune-slurm"))
ENV = dict(os.environ, SLURM_CONF=str(SLURM_DIR / "slurm.conf"))


def slurm(*argv, check=True):
    return subprocess.run(list(argv), env=ENV, check=check, capture_output=True, text=True,
                          timeout=60).stdout


def journal(directory):
    path = Path(directory) / "journal.jsonl"
    if not path.exists():
        return []
    events = []
    for line in path.read_text().splitlines():
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            pass  # a line being written
    return events


def wait_for(what, predicate, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def accounting_on():
    """slurm_cluster.sh starts slurmdbd unless TUNE_SLURM_ACCOUNTING=0."""
    try:
        return "accounting_storage/slurmdbd" in slurm("scontrol", "show", "config", check=False)
    except (OSError, subprocess.SubprocessError):
        return False  # no cluster: main() says so


def memory_enforced():
    """slurm_cluster.sh runs task/cgroup (memory limits) where cgroup v1's memory hierarchy is
    writable, task/none elsewhere."""
    try:
        return re.search(r"TaskPlugin\s*=\s*task/cgroup",
                         slurm("scontrol", "show", "config", check=False)) is not None
    except (OSError, subprocess.SubprocessError):
        return False


def stop_slurmdbd():
    """Stops the cluster's slurmdbd (pid file): sacct cannot answer until start_slurmdbd()."""
    pid = int((SLURM_DIR / "run" / "slurmdbd.pid").read_text())
    os.kill(pid, signal.SIGTERM)
    wait_for("slurmdbd to exit", lambda: not Path(f"/proc/{pid}").exists(), 30)


def start_slurmdbd():
    subprocess.run(["slurmdbd"], env=ENV, check=True, timeout=60)
    wait_for("sacct to answer", lambda: subprocess.run(
        ["sacct", "-n", "-j", "1"], env=ENV, capture_output=True).returncode == 0, 30)


class Allocation:
    """`salloc --no-shell`: a job holding nodes, and the environment a script inside it has."""

    def __init__(self, nodes=2, gpus_per_node=0):
        gpus = [f"--gpus-per-node={gpus_per_node}"] if gpus_per_node else []
        result = subprocess.run(["salloc", "--no-shell", "--no-kill", "--exclusive", f"--nodes={nodes}",
                                 *gpus, "--job-name=tune-test", "--immediate=30"],
                                env=ENV, capture_output=True, text=True, timeout=60)
        match = re.search(r"Granted job allocation (\d+)", result.stderr)
        if not match:
            raise AssertionError(f"salloc failed: {result.stderr}")
        self.job = match.group(1)
        info = slurm("scontrol", "show", "job", "-o", self.job)
        nodelist = re.search(r" NodeList=(\S+)", info).group(1)
        hosts = slurm("scontrol", "show", "hostnames", nodelist).split()
        cpus = int(re.search(r"NumCPUs=(\d+)", info).group(1))
        self.nodes = hosts
        self.env = dict(ENV, SLURM_JOB_ID=self.job, SLURM_JOBID=self.job,
                        SLURM_JOB_NODELIST=nodelist, SLURM_JOB_NUM_NODES=str(len(hosts)),
                        SLURM_JOB_CPUS_PER_NODE=f"{cpus // len(hosts)}(x{len(hosts)})")
        if gpus_per_node:
            self.env["SLURM_GPUS_PER_NODE"] = str(gpus_per_node)

    def steps(self):
        """The job's running steps (squeue), as "job.step" ids."""
        out = slurm("squeue", "-h", "-s", "-j", self.job, "-o", "%i", check=False)
        return [line.strip() for line in out.splitlines()
                if line.strip() and not line.strip().endswith((".batch", ".extern"))]

    def close(self):
        slurm("scancel", self.job, check=False)


class SlurmTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="tune-slurm-test-")
        self.dir = Path(self.tmp.name)
        self.allocation = Allocation()

    def tearDown(self):
        self.allocation.close()
        # No step outlives a test, nor any trial process (they run on this machine, in the
        # nodes' namespaces).
        wait_for("the test's steps to end", lambda: not self.allocation.steps(), 30)
        self.tmp.cleanup()

    def spec(self, **overrides):
        spec = {
            "name": "slurm", "metric": "loss", "mode": "min", "num_samples": 8,
            "resources_per_trial": {"cpu": 1},
            "search": {"algorithm": "random", "seed": 0},
            "scheduler": {"type": "asha", "time_attr": "epoch", "max_t": 9, "grace_period": 1,
                          "reduction_factor": 3, "brackets": 1},
            "trainer": {"command": [str(Path(ARGS.bin) / "tune-example-curve")],
                        "max_epochs": 9, "sleep_ms": 100, "record_env": True},
            "space": {"x1": {"uniform": [-5, 10]}, "x2": {"uniform": [0, 15]},
                      "lr": {"loguniform": [0.01, 0.4]}},
            "launcher": {"type": "slurm"},
            "storage": str(self.dir),
        }
        spec.update(overrides)
        path = self.dir / "space.json"
        path.write_text(json.dumps(spec))
        return path

    def tune(self, *argv, wait=True, env=None):
        command = [str(Path(ARGS.bin) / "tune"), *argv]
        with open(self.dir / "tune.log", "ab") as log:
            process = subprocess.Popen(command, env=dict(self.allocation.env, **(env or {})),
                                       stdout=log, stderr=subprocess.STDOUT, cwd=self.dir)
        if not wait:
            return process
        code = process.wait(timeout=240)
        return code

    def log(self):
        return (self.dir / "tune.log").read_text(errors="replace")

    def results(self, trial_dir):
        path = trial_dir / "result.json"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def test_asha_tuning_run_on_two_nodes(self):
        # 4 CPUs a trial on 2 nodes x 8 CPUs: 4 at once, which only both nodes together hold.
        code = self.tune("run", str(self.spec(resources_per_trial={"cpu": 4})))
        self.assertEqual(code, 0, self.log())
        events = journal(self.dir / "slurm")
        placed = [e for e in events if e["event"] == "trial_placed"]
        ended = {e["trial_id"]: e["status"] for e in events if e["event"] == "trial_ended"}
        self.assertEqual(len(ended), 8, self.log())
        # ASHA stopped some trials early and let some reach max_t.
        self.assertIn("STOPPED", ended.values())
        self.assertIn("TERMINATED", ended.values())
        # Every trial was a step of this allocation, placed by Slurm on both nodes.
        self.assertEqual({e["trial_id"] for e in placed}, set(ended))
        for event in placed:
            self.assertRegex(event["job"], rf"^{self.allocation.job}\.\d+$")
        self.assertEqual({e["location"] for e in placed}, {"n1", "n2"})
        # They reported over TCP to the address the nodes reach (not loopback), not the tuner's
        # Unix socket, which exists only in the tuner's network namespace.
        self.assertIn("trials report to 10.77.0.1", self.log())
        for trial in (self.dir / "slurm").glob("t_*"):
            recorded = json.loads((trial / "env.json").read_text())
            self.assertEqual(recorded["TUNE_REPORT_SOCKET"], "<unset>")
            self.assertGreater(len(self.results(trial)), 0)

    def test_multi_node_trial_ranks_find_each_other(self):
        spec = self.spec(num_samples=1, scheduler={"type": "fifo"},
                         resources_per_trial={"cpu": 2, "workers": 2},
                         launcher={"type": "slurm", "nodes": 2},
                         trainer={"command": [str(Path(ARGS.bin) / "tune-test-ddp-trial")]})
        code = self.tune("run", str(spec))
        self.assertEqual(code, 0, self.log())
        trial = self.dir / "slurm" / "t_00001"
        ranks = [json.loads((trial / f"rank{k}.json").read_text()) for k in (0, 1)]
        self.assertEqual([r["RANK"] for r in ranks], ["0", "1"])
        self.assertEqual({r["WORLD_SIZE"] for r in ranks}, {"2"})
        self.assertEqual({r["LOCAL_RANK"] for r in ranks}, {"0"})  # one rank per node
        self.assertEqual({r["MASTER_ADDR"] for r in ranks}, {"n1"})  # the step's first node
        self.assertEqual(len({r["MASTER_PORT"] for r in ranks}), 1)
        self.assertEqual([r["reporting"] for r in ranks], [True, False])  # rank 0 reports
        placed = [e for e in journal(self.dir / "slurm") if e["event"] == "trial_placed"]
        self.assertEqual(placed[0]["location"], "n[1-2]")
        self.assertEqual(len(self.results(trial)), 3)

    def test_tuner_killed_then_resumed_loses_nothing_and_leaves_no_step(self):
        spec = self.spec(num_samples=6, scheduler={"type": "fifo"},
                         trainer={"command": [str(Path(ARGS.bin) / "tune-example-curve")],
                                  "max_epochs": 8, "sleep_ms": 400})
        tuner = self.tune("run", str(spec), "--cpus", "4", wait=False)
        experiment = self.dir / "slurm"
        wait_for("two trials with reports",
                 lambda: len({e["trial_id"] for e in journal(experiment)
                              if e["event"] == "report"}) >= 2)
        before = self.allocation.steps()
        self.assertGreater(len(before), 0)
        tuner.send_signal(signal.SIGKILL)
        tuner.wait()
        code = self.tune("resume", str(experiment))
        self.assertEqual(code, 0, self.log())
        # What the dead tuner left was cancelled: none of its steps survived the resume, and no
        # step of the allocation is left at all.
        self.assertFalse(set(before) & set(self.allocation.steps()))
        self.assertEqual(self.allocation.steps(), [])
        self.assertNotIn("still runs 30 s after scancel", self.log())
        events = journal(experiment)
        ended = {e["trial_id"]: e["status"] for e in events if e["event"] == "trial_ended"}
        self.assertEqual(ended, {f"t_{i:05d}": "TERMINATED" for i in range(1, 7)}, self.log())
        for trial in experiment.glob("t_*"):
            epochs = [r["epoch"] for r in self.results(trial)]
            self.assertEqual(epochs, list(range(1, 9)), trial.name)  # each once, none lost
        # This experiment's trial processes (TUNE_EXPERIMENT_DIR in their environment): other
        # tests that CTest runs at the same time start the same program for their own trials.
        program = str(Path(ARGS.bin) / "tune-example-curve")
        pids = subprocess.run(["pgrep", "-f", f"^{program}"], capture_output=True,
                              text=True).stdout.split()
        marker = f"TUNE_EXPERIMENT_DIR={experiment}".encode()
        left = []
        for pid in pids:
            try:
                environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            except OSError:
                continue  # gone meanwhile
            if marker in environ:
                left.append(pid)
        self.assertEqual(left, [], "trial processes left running")

    def test_node_taken_down_mid_trial_retries_on_the_other_node(self):
        spec = self.spec(num_samples=1, scheduler={"type": "fifo"},
                         trainer={"command": [str(Path(ARGS.bin) / "tune-example-curve")],
                                  "max_epochs": 10, "sleep_ms": 300})
        tuner = self.tune("run", str(spec), wait=False)
        experiment = self.dir / "slurm"
        placed = wait_for("the trial's placement",
                          lambda: [e for e in journal(experiment) if e["event"] == "trial_placed"])
        node = placed[0]["location"]
        wait_for("three reports",
                 lambda: len([e for e in journal(experiment) if e["event"] == "report"]) >= 3)
        slurm("scontrol", "update", f"nodename={node}", "state=down", "reason=tune-test")
        try:
            code = tuner.wait(timeout=120)
        finally:
            slurm("scontrol", "update", f"nodename={node}", "state=resume", check=False)
        self.assertEqual(code, 0, self.log())
        events = journal(experiment)
        failed = [e for e in events if e["event"] == "trial_failed"]
        self.assertEqual(len(failed), 1, self.log())
        self.assertIn(f"node failure on {node}", failed[0]["reason"])
        if accounting_on():
            # sacct's record of the step: its --no-kill allocation lost the node under it.
            self.assertRegex(failed[0]["reason"], rf"sacct: \d+\.\d+ RESIZING, exit 0:0 on {node}")
        self.assertTrue(failed[0]["retry"])  # whatever max_failures (0) says
        places = [e["location"] for e in events if e["event"] == "trial_placed"]
        self.assertEqual(len(places), 2)
        self.assertNotEqual(places[1], node)
        # The retry went on from the last checkpoint, not from epoch 1.
        started = [e for e in events if e["event"] == "trial_started"]
        self.assertIsNotNone(started[1]["checkpoint"])
        epochs = [r["epoch"] for r in self.results(experiment / "t_00001")]
        self.assertEqual(epochs[-1], 10)
        self.assertEqual(epochs.count(1), 1, epochs)
        self.assertEqual([e["status"] for e in events if e["event"] == "trial_ended"],
                         ["TERMINATED"])

    def killed_trial(self):
        """A trial whose only process kills itself with SIGKILL; max_failures 0: its failure."""
        spec = self.spec(num_samples=1, scheduler={"type": "fifo"}, max_failures=0,
                         trainer={"command": ["sh", "-c", "kill -9 $$"]})
        self.tune("run", str(spec))
        failed = [e for e in journal(self.dir / "slurm") if e["event"] == "trial_failed"]
        self.assertEqual(len(failed), 1, self.log())
        self.assertFalse(failed[0]["retry"])  # the trial's own fault: not retried
        self.assertIn("killed by signal 9 (SIGKILL)", failed[0]["reason"])
        return failed[0]["reason"]

    @unittest.skipUnless(accounting_on() and memory_enforced(),
                         "the cluster runs without accounting or without task/cgroup (no "
                         "writable cgroup v1 memory hierarchy: scripts/slurm_cluster.sh)")
    def test_a_trial_over_its_memory_limit_is_out_of_memory_and_retried_per_max_failures(self):
        # --mem=64M for each step (launcher.args): task/cgroup caps the step's memory cgroup at
        # 64 MiB and the kernel's OOM killer ends the trial as it fills 256 MiB. An ordinary
        # failure of the trial (docs/spec.md, Failures): retried max_failures (1) times, then ERROR.
        hog = "b = bytearray(256 << 20); print('not killed', len(b))"
        spec = self.spec(num_samples=1, scheduler={"type": "fifo"}, max_failures=1,
                         launcher={"type": "slurm", "args": ["--mem=64M"]},
                         trainer={"command": [sys.executable, "-c", hog]})
        self.tune("run", str(spec))
        events = journal(self.dir / "slurm")
        failed = [e for e in events if e["event"] == "trial_failed"]
        self.assertEqual([e["retry"] for e in failed], [True, False], self.log())
        for event in failed:
            # sacct's ExitCode 0:125 is Slurm's OOM marker (SIG_OOM, 253, in a wait status), not
            # a signal: the task was SIGKILLed by the OOM killer.
            self.assertRegex(event["reason"], rf"^out of memory \(killed by signal 9 \(SIGKILL\)\) "
                                              rf"\(sacct: {self.allocation.job}\.\d+ OUT_OF_MEMORY, "
                                              r"exit 0:125 on n[12]\)$")
        # The last failure, not retried, made it ERROR (error.txt holds the reason).
        trial = self.dir / "slurm" / "t_00001"
        self.assertIn("OUT_OF_MEMORY", (trial / "error.txt").read_text())
        self.assertNotIn("not killed", (trial / "stdout.log").read_text())

    @unittest.skipUnless(accounting_on(), "the cluster runs without accounting")
    def test_a_trial_past_its_time_limit_is_timeout_and_not_retried(self):
        # launcher.time "1": srun --time=1, Slurm's smallest limit (one minute). slurmctld checks
        # limits every 30 s (OverTimeLimit 0, KillWait 5): the step is ended 60-95 s in, with
        # SIGTERM. Retried per max_failures (0 here: not retried), like any failure of its own.
        spec = self.spec(num_samples=1, scheduler={"type": "fifo"}, max_failures=0,
                         launcher={"type": "slurm", "time": "1"},
                         trainer={"command": [str(Path(ARGS.bin) / "tune-example-curve")],
                                  "max_epochs": 100000, "sleep_ms": 500})
        self.tune("run", str(spec))
        events = journal(self.dir / "slurm")
        failed = [e for e in events if e["event"] == "trial_failed"]
        self.assertEqual(len(failed), 1, self.log())
        self.assertFalse(failed[0]["retry"])
        self.assertRegex(failed[0]["reason"], rf"^time limit reached \(killed by signal 15 "
                                              rf"\(SIGTERM\)\) \(sacct: {self.allocation.job}\.\d+ "
                                              r"TIMEOUT, exit 0:15 on n[12]\)$")
        self.assertIn("TIMEOUT", (self.dir / "slurm" / "t_00001" / "error.txt").read_text())
        # It trained until Slurm ended it (about 2 epochs a second for at least the minute).
        self.assertGreater(len(self.results(self.dir / "slurm" / "t_00001")), 60)

    @unittest.skipUnless(accounting_on(), "the cluster runs without accounting")
    def test_exit_status_and_node_come_from_sacct(self):
        reason = self.killed_trial()
        # The step's record in slurmdbd: state, ExitCode code:signal, and the node it ran on.
        self.assertRegex(reason, rf"sacct: {self.allocation.job}\.\d+ (CANCELLED|FAILED), exit 0:9 "
                                 r"on n[12]\)")

    def test_without_sacct_the_exit_is_the_steps(self):
        # slurmdbd down (or no accounting): srun's exit (128+9) and what it printed.
        dbd = accounting_on()
        if dbd:
            stop_slurmdbd()
        try:
            reason = self.killed_trial()
        finally:
            if dbd:
                start_slurmdbd()
        self.assertNotIn("sacct", reason)

    def test_gpu_trials_get_slurms_gpus_one_after_the_other_on_a_one_gpu_node(self):
        # Each node has one (fake) GPU in gres.conf. Two 1-GPU trials, both pinned to n1: the
        # tuner's pool holds the allocation's 2 GPUs and starts both; Slurm runs the second step
        # only once the first has given n1's GPU back.
        self.allocation.close()
        wait_for("the test's allocation to end", lambda: not slurm(
            "squeue", "-h", "-j", self.allocation.job, check=False).strip(), 30)
        self.allocation = Allocation(nodes=2, gpus_per_node=1)
        record = ("env | grep -E '^(CUDA_VISIBLE_DEVICES|SLURM_STEP_GPUS|SLURM_JOB_GPUS|"
                  "SLURMD_NODENAME)=' > \"$TUNE_TRIAL_DIR/gpu_env.txt\"; exec \"$0\"")
        spec = self.spec(num_samples=2, scheduler={"type": "fifo"},
                         resources_per_trial={"cpu": 1, "gpu": 1},
                         launcher={"type": "slurm", "args": ["--nodelist=n1"]},
                         trainer={"command": ["sh", "-c", record,
                                              str(Path(ARGS.bin) / "tune-example-curve")],
                                  "max_epochs": 3, "sleep_ms": 300})
        code = self.tune("run", str(spec))
        self.assertEqual(code, 0, self.log())
        self.assertIn("2 GPUs", self.log())  # both trials fit the tuner's pool at once
        events = journal(self.dir / "slurm")
        self.assertEqual([e["status"] for e in events if e["event"] == "trial_ended"],
                         ["TERMINATED"] * 2, self.log())
        self.assertEqual(len([e for e in events if e["event"] == "trial_started"]), 2)
        # One after the other: a trial's reports all come before the other's first one.
        spans = {}
        for k, event in enumerate(events):
            if event["event"] in ("report", "trial_ended"):
                first, _ = spans.get(event["trial_id"], (k, k))
                spans[event["trial_id"]] = (first, k)
        (a_first, a_last), (b_first, b_last) = sorted(spans.values())
        self.assertLess(a_last, b_first, events)
        for trial in ("t_00001", "t_00002"):
            seen = dict(line.split("=", 1) for line in
                        (self.dir / "slurm" / trial / "gpu_env.txt").read_text().splitlines())
            # What Slurm's GRES set in the step: n1's only GPU, index 0.
            self.assertEqual(seen.get("SLURMD_NODENAME"), "n1", seen)
            self.assertEqual(seen.get("CUDA_VISIBLE_DEVICES"), "0", seen)
            self.assertEqual(seen.get("SLURM_STEP_GPUS"), "0", seen)

    @unittest.skipUnless(os.environ.get("TUNE_TRAINER"), "TUNE_TRAINER (tune-trainer) not built")
    def test_two_node_gloo_ddp_equals_one_process(self):
        self.run_ddp_equivalence()

    def run_ddp_equivalence(self):
        trainer = os.environ["TUNE_TRAINER"]
        data = Path(os.environ.get("TUNE_DATA", Path(__file__).resolve().parents[2] / "data"))
        # As tests/trainer/distributed_test.cc: SGD with momentum, one thread, the same global
        # batch (64 = 2 ranks x 32).
        base = {"dataset": "mnist", "data_dir": str(data), "model": {"type": "mlp", "hidden": 32},
                "optimizer": {"type": "sgd", "lr": 0.05, "momentum": 0.9}, "max_epochs": 2,
                "threads": 1, "train_subset": 512, "val_subset": 128, "keep_checkpoints": 5,
                "progress": False}
        runs = {}
        for name, workers, nodes, batch in (("one", 1, 0, 64), ("two", 2, 2, 32)):
            spec = self.spec(name=name, num_samples=1, scheduler={"type": "fifo"},
                             metric="val_loss", resources_per_trial={"cpu": workers,
                                                                     "workers": workers},
                             launcher={"type": "slurm", "nodes": nodes},
                             trainer=dict(base, command=[trainer], batch_size=batch),
                             space={"seed": {"choice": [3]}})
            # No GLOO_SOCKET_IFNAME: each rank's Gloo binds its node's address towards MASTER_ADDR
            # (trainer/distributed.cc), which the other node reaches.
            code = self.tune("run", str(spec))
            self.assertEqual(code, 0, self.log())
            runs[name] = self.dir / name / "t_00001"
        placed = [e for e in journal(self.dir / "two") if e["event"] == "trial_placed"]
        self.assertEqual(placed[0]["location"], "n[1-2]")
        compare = subprocess.run(
            [sys.executable, "-c", COMPARE, str(runs["one"] / "checkpoint_2" / "state.pt"),
             str(runs["two"] / "checkpoint_2" / "state.pt")],
            capture_output=True, text=True, timeout=120)
        self.assertEqual(compare.returncode, 0, compare.stdout + compare.stderr)
        print(compare.stdout.strip(), file=sys.stderr)


class SbatchTest(unittest.TestCase):
    """Outside an allocation every trial is a job of its own (sbatch --wait)."""

    def test_trials_are_jobs_at_most_max_concurrent_at_once(self):
        with tempfile.TemporaryDirectory(prefix="tune-slurm-test-") as tmp:
            spec = {
                "name": "jobs", "metric": "loss", "mode": "min", "num_samples": 3,
                "max_concurrent": 2, "resources_per_trial": {"cpu": 1},
                "trainer": {"command": [str(Path(ARGS.bin) / "tune-example-curve")],
                            "max_epochs": 3, "sleep_ms": 100},
                "space": {"x1": {"uniform": [-5, 10]}},
                "launcher": {"type": "slurm", "partition": "debug", "time": "5:00"},
                "storage": tmp,
            }
            (Path(tmp) / "space.json").write_text(json.dumps(spec))
            result = subprocess.run([str(Path(ARGS.bin) / "tune"), "run", "space.json"], env=ENV,
                                    cwd=tmp, capture_output=True, text=True, timeout=240)
            self.assertEqual(result.returncode, 0, result.stderr)
            events = journal(Path(tmp) / "jobs")
            self.assertEqual([e["status"] for e in events if e["event"] == "trial_ended"],
                             ["TERMINATED"] * 3)
            placed = [e for e in events if e["event"] == "trial_placed"]
            self.assertEqual(len(placed), 3)
            for event in placed:
                self.assertRegex(event["job"], r"^\d+$")  # a job, not a step of one
                self.assertIn(event["location"], ("n1", "n2"))
            running = most = 0
            for event in events:
                running += {"trial_started": 1, "trial_ended": -1}.get(event["event"], 0)
                most = max(most, running)
            self.assertEqual(most, 2)
            # Each job ran the trial with the spec's partition and time limit.
            info = slurm("scontrol", "show", "job", "-o", placed[0]["job"], check=False)
            if info:  # still known to the controller (MinJobAge)
                self.assertIn("Partition=debug", info)
                self.assertIn("TimeLimit=00:05:00", info)


    @unittest.skipUnless(accounting_on() and memory_enforced(),
                         "the cluster runs without accounting or without task/cgroup")
    def test_a_job_over_its_memory_limit_is_out_of_memory(self):
        # Outside an allocation: the trial's job asks --mem=64M. sacct records the job FAILED
        # (srun's exit 1) and its step 0, the trial, OUT_OF_MEMORY: the failure says the latter.
        # max_failures 0: not retried.
        with tempfile.TemporaryDirectory(prefix="tune-slurm-test-") as tmp:
            spec = {
                "name": "jobs", "metric": "loss", "mode": "min", "num_samples": 1,
                "max_concurrent": 1, "max_failures": 0, "resources_per_trial": {"cpu": 1},
                "trainer": {"command": [sys.executable, "-c", "b = bytearray(256 << 20)"]},
                "space": {"x1": {"uniform": [-5, 10]}},
                "launcher": {"type": "slurm", "partition": "debug", "args": ["--mem=64M"]},
                "storage": tmp,
            }
            (Path(tmp) / "space.json").write_text(json.dumps(spec))
            result = subprocess.run([str(Path(ARGS.bin) / "tune"), "run", "space.json"], env=ENV,
                                    cwd=tmp, capture_output=True, text=True, timeout=240)
            events = journal(Path(tmp) / "jobs")
            failed = [e for e in events if e["event"] == "trial_failed"]
            self.assertEqual(len(failed), 1, result.stdout + result.stderr)
            self.assertFalse(failed[0]["retry"])
            self.assertRegex(failed[0]["reason"], r"^out of memory \(killed by signal 9 "
                                                  r"\(SIGKILL\)\) \(sacct: \d+\.0 OUT_OF_MEMORY, "
                                                  r"exit 0:125 on n[12]\)$")

    @unittest.skipUnless(accounting_on(), "the cluster runs without accounting")
    def test_preempted_job_is_retried_from_its_checkpoint(self):
        # The cluster's "preempt" partition (PriorityTier=2) preempts "debug" jobs (CANCEL): a
        # whole-node job there ends the trial's job, which sacct records PREEMPTED.
        with tempfile.TemporaryDirectory(prefix="tune-slurm-test-") as tmp:
            spec = {
                "name": "jobs", "metric": "loss", "mode": "min", "num_samples": 1,
                "max_concurrent": 1, "max_failures": 0, "resources_per_trial": {"cpu": 1},
                "trainer": {"command": [str(Path(ARGS.bin) / "tune-example-curve")],
                            "max_epochs": 8, "sleep_ms": 300},
                "space": {"x1": {"uniform": [-5, 10]}},
                "launcher": {"type": "slurm", "partition": "debug"},
                "storage": tmp,
            }
            (Path(tmp) / "space.json").write_text(json.dumps(spec))
            with open(Path(tmp) / "tune.log", "wb") as log:
                tuner = subprocess.Popen([str(Path(ARGS.bin) / "tune"), "run", "space.json"],
                                         env=ENV, cwd=tmp, stdout=log, stderr=subprocess.STDOUT)
            experiment = Path(tmp) / "jobs"
            try:
                placed = wait_for("the trial's job", lambda: [
                    e for e in journal(experiment) if e["event"] == "trial_placed"])
                wait_for("two reports", lambda: len(
                    [e for e in journal(experiment) if e["event"] == "report"]) >= 2)
                node = placed[0]["location"]
                slurm("sbatch", "--partition=preempt", "--exclusive", f"--nodelist={node}",
                      "--output=/dev/null", "--wrap=sleep 1")
                code = tuner.wait(timeout=120)
            finally:
                if tuner.poll() is None:
                    tuner.kill()
            output = (Path(tmp) / "tune.log").read_text(errors="replace")
            self.assertEqual(code, 0, output)
            events = journal(experiment)
            failed = [e for e in events if e["event"] == "trial_failed"]
            self.assertEqual(len(failed), 1, output)
            self.assertRegex(failed[0]["reason"],
                             rf"^preempted \(sacct: {placed[0]['job']} PREEMPTED, "
                             rf"exit 0:\d+ on {node}\)")
            self.assertTrue(failed[0]["retry"])  # whatever max_failures (0) says
            started = [e for e in events if e["event"] == "trial_started"]
            self.assertEqual(len(started), 2)
            self.assertIsNotNone(started[1]["checkpoint"])  # from its checkpoint, not epoch 1
            epochs = [json.loads(line)["epoch"] for line in
                      (experiment / "t_00001" / "result.json").read_text().splitlines()]
            self.assertEqual(epochs.count(1), 1, epochs)
            self.assertEqual(epochs[-1], 8)
            self.assertEqual([e["status"] for e in events if e["event"] == "trial_ended"],
                             ["TERMINATED"])


# Largest parameter difference between two tune-trainer checkpoints (TorchScript archives, which
# PyTorch's Python side loads).
COMPARE = r"""
import sys, torch
def parameters(path):
    archive = torch.jit.load(path, map_location="cpu")
    return {n: p.detach() for n, p in archive.named_parameters() if n.startswith("model.")}
a, b = parameters(sys.argv[1]), parameters(sys.argv[2])
assert a and a.keys() == b.keys(), (sorted(a), sorted(b))
worst = max((x - b[k]).abs().max().item() for k, x in a.items())
print(f"2-node DDP vs 1 process: {len(a)} tensors, max |difference| {worst:.3g}")
sys.exit(0 if worst <= 1e-5 else 1)
"""


def main():
    global ARGS
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", required=True)
    ARGS, rest = parser.parse_known_args()
    ARGS.bin = str(Path(ARGS.bin).resolve())
    if not (SLURM_DIR / "slurm.conf").exists() or subprocess.run(
            ["sinfo", "-h"], env=ENV, capture_output=True).returncode != 0:
        why = f"the test cluster is not running (see the slurm_cluster_start test's output)"
        if os.environ.get("CI") == "true":
            print(f"FAIL: {why}", file=sys.stderr)
            return 1
        print(f"SKIP: {why}", file=sys.stderr)
        return 77
    program = unittest.main(argv=[sys.argv[0], *rest], exit=False, verbosity=2)
    return 0 if program.result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
