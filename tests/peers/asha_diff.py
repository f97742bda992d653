#!/usr/bin/env python3
"""Differential test: tune's ASHA (schedulers/asha.cc) against Ray Tune's AsyncHyperBandScheduler.

Each stream is a list of controller-level events (trials added, results arriving out of order
across trials, trials ending on their own, failing, retried or removed before they ran). Ray's
scheduler is driven as ray/tune/execution/tune_controller.py drives it:
  - trial added (and again after a recoverable failure, via _try_recover): on_trial_add;
  - each result: on_trial_result -> CONTINUE or STOP. After STOP, stop_trial() runs at once and,
    the trial being RUNNING, calls on_trial_complete(trial, trial.last_result), i.e. with the very
    result that was stopped; later results of the trial are never processed;
  - a trial that ends on its own (the function returns, __duplicate__ result with done=True):
    should_stop() says STOP without asking the scheduler, then on_trial_complete(last result, or
    {} if it never reported);
  - a failure: on_trial_error (a no-op for ASHA); with retries left on_trial_add follows;
  - a PENDING/PAUSED trial stopped (e.g. at the end of the experiment): on_trial_remove.
Bracket draws are forced: Ray's np.random.choice in on_trial_add is replaced by one returning the
stream's bracket for the trial, ours gets AshaScheduler::OnTrialAdd(trial, bracket). The calls go,
as JSON lines, to tests/peers/asha_replay.cc, which replays them into our scheduler the way our
tuner (tuner/tuner.cc) makes them; every decision and each bracket's final rung cutoffs must
be identical, except the differences pinned by recorded streams (tests/peers/streams/*.jsonl,
"known_differences" in their first line).

Metrics are passed to Ray the way TUNE_DISABLE_STRICT_METRIC_CHECKING=1 lets them through (a
result may lack the metric or a custom time_attr); Ray's trials are stand-ins with a trial_id,
the only attribute the scheduler reads.

  asha_diff.py --replay build/bin/tune-test-asha-replay [--streams 3000] [--seed 0]
  asha_diff.py --replay ... --summary     one Markdown line for bench/PEERS.md
Exit status: 0 identical (or only the known differences), 1 a mismatch (the stream, the step
and both decisions are printed), 77 `ray` cannot be imported and CI is not "true".
"""

import argparse
import json
import math
import random
import subprocess
import sys
import time
import types
import warnings
from pathlib import Path

from peers_common import require
STREAMS_DIR = Path(__file__).resolve().parent / "streams"


def import_ray():
    return require("asha_diff", "numpy", "ray", "ray.tune.schedulers.async_hyperband")


# --- Values: JSON lacks NaN and infinities, so the stream spells them as strings. -------------

_SPECIAL = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def encode_value(value):
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    return value


def decode_value(value):
    return _SPECIAL.get(value, value) if isinstance(value, str) else value


def encode_result(result):
    return None if result is None else {k: encode_value(v) for k, v in result.items()}


def decode_result(result):
    return None if result is None else {k: decode_value(v) for k, v in result.items()}


# --- Ray, driven like TuneController ------------------------------------------------------------


class _ForcedChoice:
    """Stands in for numpy inside async_hyperband: np.random.choice returns the forced bracket."""

    def __init__(self, np):
        self._np = np
        self.bracket = None
        self.random = types.SimpleNamespace(choice=self._choice)

    def _choice(self, count, p=None):
        assert self.bracket is not None and 0 <= self.bracket < count, (self.bracket, count)
        assert p is not None and len(p) == count
        return self.bracket

    def __getattr__(self, name):
        return getattr(self._np, name)


def run_ray(stream, async_hyperband, forced):
    """Runs the stream's events through Ray's scheduler as TuneController would. Returns the
    scheduler calls made (for the replay driver), Ray's decisions and its final rung cutoffs."""
    opts = stream["options"]
    sched = async_hyperband.AsyncHyperBandScheduler(
        time_attr=opts["time_attr"], metric=opts["metric"], mode=opts["mode"],
        max_t=opts["max_t"], grace_period=opts["grace_period"],
        reduction_factor=opts["reduction_factor"], brackets=opts["brackets"],
        stop_last_trials=opts["stop_last_trials"])
    calls = [{"op": "options", "options": opts}]
    decisions = []
    trials, last, brackets, finished = {}, {}, {}, set()
    for event in stream["events"]:
        op, trial_id = event["op"], event["trial"]
        if op == "add":
            trial = trials[trial_id] = types.SimpleNamespace(trial_id=trial_id)
            brackets[trial_id] = event["bracket"]
            forced.bracket = event["bracket"]
            sched.on_trial_add(None, trial)
            calls.append({"op": "add", "trial": trial_id, "bracket": event["bracket"]})
            continue
        trial = trials[trial_id]
        if trial_id in finished:
            continue  # stopped or ended: the controller processes nothing more of it
        if op == "report":
            result = decode_result(event["result"])
            decision = sched.on_trial_result(None, trial, dict(result))
            calls.append({"op": "result", "trial": trial_id, "result": event["result"]})
            decisions.append(decision)
            last[trial_id] = result
            if decision == "STOP":
                # stop_trial(): RUNNING, so on_trial_complete with trial.last_result.
                sched.on_trial_complete(None, trial, dict(result))
                calls.append({"op": "complete", "trial": trial_id, "result": event["result"]})
                finished.add(trial_id)
        elif op == "end":
            # Ended on its own: should_stop() (done=True) -> STOP -> stop_trial().
            result = last.get(trial_id)
            sched.on_trial_complete(None, trial, dict(result) if result is not None else {})
            calls.append({"op": "complete", "trial": trial_id, "result": encode_result(result)})
            finished.add(trial_id)
        elif op == "error":
            sched.on_trial_error(None, trial)
            if event.get("retry"):
                # _try_recover(): on_trial_error, then on_trial_add (the draw forced again).
                forced.bracket = brackets[trial_id]
                sched.on_trial_add(None, trial)
            else:
                finished.add(trial_id)
            calls.append({"op": "error", "trial": trial_id, "retry": bool(event.get("retry"))})
        elif op == "remove":
            sched.on_trial_remove(None, trial)
            calls.append({"op": "remove", "trial": trial_id})
            finished.add(trial_id)
        else:
            raise ValueError(f"unknown event op {op!r}")
    rungs = []
    for bracket in sched._brackets:
        row = []
        for milestone, recorded in bracket._rungs:
            cutoff = bracket.cutoff(recorded)
            row.append([float(milestone),
                        None if cutoff is None else float(cutoff) * sched._metric_op + 0.0])
        rungs.append(row)
    calls.append({"op": "rungs"})
    return calls, decisions, rungs


# --- Our scheduler, through the replay driver ---------------------------------------------------


def run_ours(replay, all_calls):
    """Feeds every stream's calls to one replay process; returns (decisions, rungs) per stream."""
    text = "".join(json.dumps(call, allow_nan=False) + "\n" for calls in all_calls for call in calls)
    done = subprocess.run([replay], input=text, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"asha_diff: {replay} exited {done.returncode}: {done.stderr.strip()}")
    out, decisions = [], []
    for line in done.stdout.splitlines():
        if line.startswith("RUNGS "):
            rungs = [[[m, decode_value(c)] for m, c in row] for row in json.loads(line[6:])]
            out.append((decisions, rungs))
            decisions = []
        else:
            decisions.append(line)
    if len(out) != len(all_calls):
        sys.exit(f"asha_diff: {len(all_calls)} streams sent, {len(out)} answered")
    return out


def same_number(a, b):
    if a is None or b is None:
        return a is b
    return (math.isnan(a) and math.isnan(b)) or a == b


def same_rungs(a, b):
    return len(a) == len(b) and all(
        len(x) == len(y) and all(mx == my and same_number(cx, cy) for (mx, cx), (my, cy) in zip(x, y))
        for x, y in zip(a, b))


# --- Random streams -------------------------------------------------------------------------------


def random_stream(rng):
    """Options and interleaved trial events covering ASHA's corners: several brackets, ties,
    NaN and +-inf, jumps over milestones, trials that end early, fail, retry or never run."""
    rf = rng.choice([2, 3, 4, 4, 2.5, 1.5, 3.7])
    grace = rng.choice([1, 1, 1, 2, 3, 0.5])
    max_t = rng.choice([grace, grace * rf, grace * rf * rf, rng.randint(1, 30),
                        round(rng.uniform(1, 30), 2), 9, 27, 16])
    max_t = max(max_t, grace)
    time_attr = rng.choice(["training_iteration", "training_iteration", "epoch", "time_total_s"])
    metric = rng.choice(["acc", "loss"])
    options = {
        "time_attr": time_attr, "metric": metric, "mode": rng.choice(["min", "max"]),
        "max_t": max_t, "grace_period": grace, "reduction_factor": rf,
        "brackets": rng.choice([1, 1, 2, 3]), "stop_last_trials": rng.random() < 0.7,
    }
    pool = [round(rng.random(), 1) for _ in range(rng.randint(2, 5))]  # ties
    discrete = rng.random() < 0.4
    p_special = rng.choice([0.0, 0.03, 0.1])

    def value():
        x = rng.random()
        if x < p_special:
            return rng.choice([math.nan, math.nan, math.inf, -math.inf])
        return rng.choice(pool) if discrete else round(rng.gauss(0.5, 0.2), 3)

    per_trial = []
    for index in range(rng.randint(2, 12)):
        trial_id = f"t{index}"
        events = [{"op": "add", "trial": trial_id, "bracket": rng.randrange(options["brackets"])}]
        fate = rng.choices(["run", "early", "error", "retry", "remove"], [6, 3, 1, 1, 1])[0]
        if fate == "remove":
            events.append({"op": "remove", "trial": trial_id})
            per_trial.append(events)
            continue
        iteration, total_s, epoch = 0, 0.0, rng.choice([0, 1])
        # Past max_t only without stop_last_trials; with it, Ray stops every trial there.
        horizon = max_t * rng.choice([1, 1, 1.5, 2]) if not options["stop_last_trials"] else max_t
        length = rng.randint(0, 12) if fate != "run" else 10_000  # 0: ends without a result
        retried = False
        for _ in range(length):
            iteration += 1
            total_s = round(total_s + rng.choice([0.5, 1.0, 2.3, rng.uniform(0.1, 4)]), 3)
            epoch += rng.choice([1, 1, 1, 2, 3, 5])  # jumps past milestones
            result = {"training_iteration": iteration, "time_total_s": total_s}
            if time_attr == "epoch" and rng.random() > 0.03:
                result["epoch"] = epoch
            if rng.random() > 0.02:
                result[metric] = value()
            events.append({"op": "report", "trial": trial_id, "result": encode_result(result)})
            now = {"training_iteration": iteration, "time_total_s": total_s, "epoch": epoch}[time_attr]
            if fate == "retry" and not retried and rng.random() < 0.3:
                retried = True
                events.append({"op": "error", "trial": trial_id, "retry": True})
                # Restarted from an earlier checkpoint: progress goes back a little.
                back = rng.randint(0, 2)
                iteration, epoch = max(0, iteration - back), max(0, epoch - back)
                total_s = max(0.0, total_s - back)
            if now > horizon or (fate == "run" and now >= max_t and rng.random() < 0.5
                                 and not options["stop_last_trials"]):
                break
        if fate in ("early", "retry", "run"):
            events.append({"op": "end", "trial": trial_id})
        elif fate == "error":
            events.append({"op": "error", "trial": trial_id, "retry": False})
        per_trial.append(events)
    # Interleave: any trial may be next, so arrivals are out of order across trials.
    events = []
    queues = [list(reversed(q)) for q in per_trial]
    while queues:
        queue = rng.choice(queues)
        events.append(queue.pop())
        if not queue:
            queues.remove(queue)
    return {"name": None, "options": options, "events": events}


def load_recorded():
    streams = []
    for path in sorted(STREAMS_DIR.glob("*.jsonl")):
        lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        head = lines[0]
        assert head["op"] == "stream", f"{path}: first line must be the stream header"
        streams.append({"name": path.name, "options": head["options"], "events": lines[1:],
                        "known_differences": head.get("known_differences"),
                        "known_why": head.get("why", "")})
    return streams


# --- Comparison -----------------------------------------------------------------------------------


def print_mismatch(stream, calls, step, ray_decision, our_decision, what, out):
    def say(*parts):
        print(*parts, file=out)
    say(f"MISMATCH in stream {stream['name']}: {what}")
    say(f"  step {step} (result call #{step}): Ray {ray_decision}, ours {our_decision}")
    say("  stream (events; save as tests/peers/streams/NAME.jsonl to replay it):")
    say("   ", json.dumps({"op": "stream", "options": stream["options"]}))
    for event in stream["events"]:
        say("   ", json.dumps(event))
    say("  calls made (replay input):")
    result_index = 0
    for call in calls:
        mark = ""
        if call["op"] == "result":
            mark = "   <-- here" if result_index == step else ""
            result_index += 1
        say("   ", json.dumps(call) + mark)


def compare(stream, calls, ray_decisions, ray_rungs, our_decisions, our_rungs):
    """Returns (identical decisions, differing steps [(step, ray, ours)], rungs equal)."""
    if len(our_decisions) != len(ray_decisions):
        return 0, [(-1, len(ray_decisions), len(our_decisions))], False
    diffs = [(i, r, o) for i, (r, o) in enumerate(zip(ray_decisions, our_decisions)) if r != o]
    return len(ray_decisions) - len(diffs), diffs, same_rungs(ray_rungs, our_rungs)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--replay", required=True, help="the tune-test-asha-replay binary")
    parser.add_argument("--streams", type=int, default=3000, help="random streams (default 3000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--summary", action="store_true", help="print one Markdown line")
    args = parser.parse_args()

    started = time.monotonic()
    np, ray, async_hyperband = import_ray()
    forced = _ForcedChoice(np)
    async_hyperband.np = forced

    rng = random.Random(args.seed)
    streams = load_recorded()
    for index in range(args.streams):
        stream = random_stream(rng)
        stream["name"] = f"random #{index} (--seed {args.seed})"
        streams.append(stream)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # nanpercentile of all-NaN rungs
        ray_runs = [run_ray(stream, async_hyperband, forced) for stream in streams]
    ours = run_ours(args.replay, [calls for calls, _, _ in ray_runs])

    results = sum(1 for s in streams for e in s["events"] if e["op"] == "report")
    compared = identical = known = failures = 0
    out = sys.stderr if args.summary else sys.stdout
    for stream, (calls, ray_decisions, ray_rungs), (our_decisions, our_rungs) in zip(
            streams, ray_runs, ours):
        same, diffs, rungs_equal = compare(stream, calls, ray_decisions, ray_rungs,
                                           our_decisions, our_rungs)
        compared += len(ray_decisions)
        identical += same
        expected = stream.get("known_differences")
        if expected is not None:
            want = [(d["step"], d["ray"], d["ours"]) for d in expected["steps"]]
            want_rungs_equal = not expected.get("rungs_differ", False)
            if diffs == want and rungs_equal == want_rungs_equal and diffs:
                known += len(diffs)
                continue
            failures += 1
            print(f"KNOWN DIFFERENCE CHANGED in {stream['name']}: expected steps {want} and "
                  f"rungs {'equal' if want_rungs_equal else 'different'}, got {diffs} and rungs "
                  f"{'equal' if rungs_equal else 'different'} ({stream['known_why']})", file=out)
            continue
        if diffs:
            failures += 1
            step, ray_decision, our_decision = diffs[0]
            print_mismatch(stream, calls, step, ray_decision, our_decision,
                           f"{len(diffs)} decision(s) differ", out)
        elif not rungs_equal:
            failures += 1
            print_mismatch(stream, calls, len(ray_decisions), "-", "-",
                           f"final rungs differ: Ray {ray_rungs}, ours {our_rungs}", out)
        if failures >= 5:
            print("asha_diff: stopping after 5 mismatching streams", file=out)
            break
    elapsed = time.monotonic() - started
    recorded = sum(1 for s in streams if s["name"] and s["name"].endswith(".jsonl"))
    if args.summary:
        pinned = ", ".join(s["name"][len("known_"):-len(".jsonl")].replace("_", " ")
                           for s in streams if s.get("known_differences"))
        print(f"**ASHA vs Ray Tune {ray.__version__} AsyncHyperBandScheduler** (tests/peers/"
              f"asha_diff.py): {len(streams)} streams ({recorded} recorded), {results} results "
              f"({compared} reached the scheduler, the rest came after a STOP), {compared} "
              f"decisions compared, {identical} identical, {known} known deliberate differences "
              f"({pinned})"
              f"{'' if not failures else f', **{failures} mismatching streams**'}; {elapsed:.1f} s")
    else:
        print(f"asha_diff: {len(streams)} streams ({recorded} recorded), {results} results, "
              f"{compared} decisions compared, {identical} identical, {known} known deliberate "
              f"differences, {failures} mismatching streams, {elapsed:.1f} s")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
