"""Shared by hyperband_diff.py and median_diff.py: runs one of Ray Tune's trial schedulers under a
small, sequential stand-in for Ray's TuneController, records the same events as tuner-level calls
for tests/peers/scheduler_replay.cc (which makes them to our scheduler through a fake
TrialControl), and compares the two answer by answer.

The controller (a sketch of ray/tune/execution/tune_controller.py with instant saves, as our
tuner behaves):
  - trials are created one at a time (on_trial_add) while fewer than `max_pending` wait, or
    whenever nothing runs; they run only when choose_trial_to_run returns them, one per free slot
    (our tuner launches only the trial its scheduler chooses);
  - a running trial, picked at random, reports its next result (on_trial_result), ends on its own
    (on_trial_complete with its last result), fails (on_trial_error) or, where the scheduler
    allows, fails and is retried (Ray: on_trial_error, then on_trial_add; our tuner makes no
    scheduler call);
  - PAUSE pauses the trial at once; STOP calls stop_trial, which calls on_trial_complete; the
    scheduler's own stop_trial calls on paused trials call on_trial_remove (reentrantly, as in
    Ray). Our tuner completes such a trial afterwards: that call goes to our scheduler alone.
Every status change is mirrored to the replay driver, which answers:
  RESULT <decision>[ stop=a,b]   COMPLETE[ stop=..]   ERROR[ stop=..]   CHOOSE <id>|-
  DESCRIBE "<debug string>"      (one per stream, last)
The lines Ray's scheduler gives are built the same way and must be identical.
"""

import json
import subprocess
import sys
import time

from asha_diff import decode_result, encode_result  # noqa: F401 (median_diff uses decode_result)

from peers_common import require


def import_ray(who, module):
    """Imports ray.tune.schedulers.<module>; exits 77 (or 1 on CI) when ray is missing."""
    import logging
    ray, scheduler_module = require(who, "ray", f"ray.tune.schedulers.{module}")
    # HyperBand logs "Bracket too small - Retrying..." at INFO for every skipped bracket.
    logging.getLogger("ray.tune.schedulers").setLevel(logging.WARNING)
    return ray, scheduler_module


class FakeTrial:
    """What Ray's schedulers read of a Trial: trial_id, status, is_saving. Hashed by identity."""

    def __init__(self, trial_id):
        self.trial_id = trial_id
        self.status = "PENDING"
        self.is_saving = False
        self.last_result = None  # the last result reported, as encoded for the replay
        self.plan = None  # the harness's script for the trial

    def __repr__(self):
        return self.trial_id


class Controller:
    """The tune_controller argument of Ray's scheduler calls, and the recorder of both sides'
    calls and answers."""

    def __init__(self, scheduler, options, metric, mode):
        self.scheduler = scheduler
        self.trials = []  # Ray's _trials order (a retried trial moves to the end)
        self.calls = [{"op": "options", "options": options, "metric": metric, "mode": mode}]
        self.expected = []  # Ray's answers, in the replay driver's format
        self.stopped_now = []
        self.decisions = 0

    # --- what Ray's schedulers call -------------------------------------------------------------
    def get_trials(self):
        return list(self.trials)

    def get_live_trials(self):
        return [t for t in self.trials if t.status not in ("TERMINATED", "ERROR")]

    def stop_trial(self, trial):
        """TuneController.stop_trial, as a scheduler calls it on another trial."""
        self.stopped_now.append(trial)
        self._stop(trial)

    def _stop(self, trial):
        if trial.status in ("ERROR", "TERMINATED"):
            return
        if trial.status in ("PENDING", "PAUSED"):
            self.scheduler.on_trial_remove(self, trial)
        else:
            self.scheduler.on_trial_complete(self, trial, dict(decode_result(trial.last_result) or {}))
        trial.status = "TERMINATED"

    # --- the harness ----------------------------------------------------------------------------
    def status(self, trial, status):
        trial.status = status
        self.calls.append({"op": "status", "trial": trial.trial_id, "status": status})

    def _answer(self, word, call, run):
        """Makes one Ray scheduler call (run()), records the replay call and the expected line."""
        self.stopped_now = []
        value = run()
        stopped = list(self.stopped_now)
        self.calls.append(call)
        line = word if value is None else f"{word} {value}"
        if stopped:
            line += " stop=" + ",".join(t.trial_id for t in stopped)
        self.expected.append(line)
        # Our tuner ends each trial its scheduler stopped, and tells the scheduler so.
        for other in stopped:
            self.calls.append({"op": "status", "trial": other.trial_id, "status": "TERMINATED"})
            self.calls.append({"op": "complete", "trial": other.trial_id, "result": other.last_result})
            self.expected.append("COMPLETE")
        return value

    def add(self, trial_id):
        trial = FakeTrial(trial_id)
        self.trials.append(trial)
        self.calls.append({"op": "add", "trial": trial_id})
        self.scheduler.on_trial_add(self, trial)
        return trial

    def choose(self):
        waiting = [t for t in self.trials if t.status in ("PENDING", "PAUSED")]
        chosen = []

        def run():
            trial = self.scheduler.choose_trial_to_run(self)
            chosen.append(trial)
            return "-" if trial is None else trial.trial_id

        self._answer("CHOOSE", {"op": "choose", "waiting": [t.trial_id for t in waiting]}, run)
        return chosen[0]

    def report(self, trial, result):
        """A result: the scheduler's decision, carried out as TuneController does."""
        encoded = encode_result(result)
        trial.last_result = encoded
        decision = self._answer(
            "RESULT", {"op": "result", "trial": trial.trial_id, "result": encoded},
            lambda: self.scheduler.on_trial_result(self, trial, dict(result)))
        self.decisions += 1
        if decision == "PAUSE":
            self.status(trial, "PAUSED")
        elif decision == "STOP":
            self.end(trial)
        return decision

    def end(self, trial):
        """The trial ends on its own, or after STOP: stop_trial on a RUNNING trial."""
        self.calls.append({"op": "status", "trial": trial.trial_id, "status": "TERMINATED"})
        self._answer("COMPLETE", {"op": "complete", "trial": trial.trial_id, "result": trial.last_result},
                     lambda: self.scheduler.on_trial_complete(
                         self, trial, dict(decode_result(trial.last_result) or {})))
        trial.status = "TERMINATED"

    def fail(self, trial):
        self.calls.append({"op": "status", "trial": trial.trial_id, "status": "ERROR"})
        self._answer("ERROR", {"op": "error", "trial": trial.trial_id},
                     lambda: self.scheduler.on_trial_error(self, trial))
        trial.status = "ERROR"

    def retry(self, trial):
        """A failure with retries left: Ray's _requeue_trial; our tuner only marks it PENDING."""
        self.scheduler.on_trial_error(self, trial)
        self.trials.remove(trial)
        self.trials.append(trial)
        self.status(trial, "PENDING")
        self.scheduler.on_trial_add(self, trial)

    def describe(self):
        self._answer("DESCRIBE", {"op": "describe"}, lambda: json.dumps(self.scheduler.debug_string()))


def simulate(rng, controller, advance, max_trials, max_steps=20000):
    """Runs an experiment of 1 to max_trials trials on 1 to 4 slots: creates trials, launches the
    chosen ones, and lets `advance(trial)` move a random running trial on by one event, until no
    trial can run. Returns the controller."""
    num_trials, slots, max_pending = rng.randint(1, max_trials), rng.randint(1, 4), rng.randint(1, 3)
    created = 0
    for _ in range(max_steps):
        running = [t for t in controller.trials if t.status == "RUNNING"]
        pending = sum(1 for t in controller.trials if t.status == "PENDING")
        if created < num_trials and pending < max_pending and (not running or rng.random() < 0.3):
            controller.add(f"t{created}")
            created += 1
        while sum(1 for t in controller.trials if t.status == "RUNNING") < slots:
            if not any(t.status in ("PENDING", "PAUSED") for t in controller.trials):
                break
            trial = controller.choose()
            if trial is None:
                break
            controller.status(trial, "RUNNING")
        running = [t for t in controller.trials if t.status == "RUNNING"]
        if not running:
            if created < num_trials:
                continue
            break
        advance(rng.choice(running))
    controller.describe()
    return controller


def run_replay(replay, controllers, who):
    """Feeds every stream's calls to one replay process; returns its answer lines per stream."""
    text = "".join(json.dumps(call, allow_nan=False) + "\n"
                   for controller in controllers for call in controller.calls)
    done = subprocess.run([replay], input=text, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{who}: {replay} exited {done.returncode}: {done.stderr.strip()}")
    streams, lines = [], []
    for line in done.stdout.splitlines():
        lines.append(line)
        if line.startswith("DESCRIBE "):
            streams.append(lines)
            lines = []
    if len(streams) != len(controllers):
        sys.exit(f"{who}: {len(controllers)} streams sent, {len(streams)} answered")
    return streams


def compare(who, names, controllers, answers, out=sys.stdout):
    """Prints the first difference of each differing stream (at most 5); returns the counts."""
    counts = {"streams": len(controllers), "decisions": 0, "chosen": 0, "stops": 0, "lines": 0,
              "failures": 0, "kinds": {}}
    for name, controller, ours in zip(names, controllers, answers):
        ray_lines = controller.expected
        counts["lines"] += len(ray_lines)
        for line in ray_lines:
            if line.startswith("RESULT"):
                counts["decisions"] += 1
                kind = line.split()[1]
                counts["kinds"][kind] = counts["kinds"].get(kind, 0) + 1
        counts["chosen"] += sum(1 for line in ray_lines if line.startswith("CHOOSE"))
        counts["stops"] += sum(line.count(",") + 1 for line in ray_lines if " stop=" in line)
        if ours == ray_lines:
            continue
        counts["failures"] += 1
        step = next((i for i, (a, b) in enumerate(zip(ray_lines, ours)) if a != b),
                    min(len(ray_lines), len(ours)))
        print(f"MISMATCH in stream {name}, answer #{step}:", file=out)
        print(f"  Ray:  {ray_lines[step] if step < len(ray_lines) else '(none)'}", file=out)
        print(f"  ours: {ours[step] if step < len(ours) else '(none)'}", file=out)
        print("  calls up to there (replay input):", file=out)
        answered = 0
        for call in controller.calls:
            print("   ", json.dumps(call), file=out)
            if call["op"] in ("result", "complete", "error", "choose", "describe"):
                answered += 1
                if answered > step:
                    break
        if counts["failures"] >= 5:
            print(f"{who}: stopping after 5 mismatching streams", file=out)
            break
    return counts


def main(doc, who, module, peer_class, make_stream, default_streams=1500):
    """The body of hyperband_diff.py and median_diff.py: parses the command line, generates the
    streams with make_stream(scheduler_module, rng) -> Controller, runs the replay, compares and
    prints a summary; returns the exit status."""
    import argparse
    import random
    import warnings

    parser = argparse.ArgumentParser(description=doc.split("\n")[0])
    parser.add_argument("--replay", required=True, help="the tune-test-scheduler-replay binary")
    parser.add_argument("--streams", type=int, default=default_streams,
                        help=f"random streams (default {default_streams})")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", type=int, default=None, help="run only this stream index")
    args = parser.parse_args()
    ray, scheduler_module = import_ray(who, module)
    # numpy warns on the means of empty slices and NaN medians that Ray's rules compute.
    warnings.simplefilter("ignore", RuntimeWarning)

    started = time.monotonic()
    names, controllers = [], []
    for index in range(args.streams):
        if args.only is not None and index != args.only:
            continue
        names.append(f"#{index} (--seed {args.seed} --only {index})")
        controllers.append(make_stream(scheduler_module, random.Random(f"{args.seed}:{index}")))
    answers = run_replay(args.replay, controllers, who)
    counts = compare(who, names, controllers, answers)
    elapsed = time.monotonic() - started
    failures = counts["failures"]
    kinds = ", ".join(f"{n} {k}" for k, n in sorted(counts["kinds"].items()))
    print(f"{who}: vs Ray Tune {ray.__version__} {peer_class}: {counts['streams']} streams, "
          f"{counts['decisions']} decisions ({kinds}), {counts['chosen']} choices of a trial to "
          f"run, {counts['stops']} trials stopped by the scheduler, {counts['lines']} answers "
          f"compared, {failures} mismatching streams, {elapsed:.1f} s")
    return 1 if failures else 0
