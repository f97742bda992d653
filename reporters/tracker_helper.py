# The shared half of the experiment trackers' helpers (reporters/tracker.h): tune runs
# `PYTHON -c <this file + one tracker's file> OPTIONS_JSON`, one process per experiment, in the
# user's Python. The tracker's file imports its library, checks what it needs, says
# {"ready": VERSION}, and ends with serve(ITS_TRACKER).
#
# tune -> here, stdin, one JSON object a line:
#   {"op": "experiment", "dir": D, "name": N, "key": K, "log": L}   once, first
#   {"op": "start", "trial": ID, "config": {...}}                   each attempt of a trial
#   {"op": "log", "trial": ID, "data": {...}}                       each report: numbers ("NaN",
#                                                                   "Infinity", "-Infinity" as
#                                                                   strings), "_timestamp" (s)
#   {"op": "pause", "trial": ID}                                    ASHA/HyperBand/PBT paused it
#   {"op": "end", "trial": ID, "status": S, "error": E}             TERMINATED, STOPPED or ERROR
#   end of input: the experiment is over; runs still open (an interrupted experiment's) are
#   finished as interrupted, and `tune resume` continues them.
# here -> tune, fd 3, one JSON object a line: {"ready": VERSION, ...} once the library is imported
# and has what it needs; {"error": TEXT, "trial": ID} for anything that failed (the rest goes
# on); {"done": RUNS, "hint": TEXT} at the end. The library's own messages go to L.
#
# A tracker has: experiment(message) (dir, name, key), start(trial, config), log(trial, data),
# pause(trial), end(trial, status, error) -> finished a run, close() -> (runs finished, hint).
import json
import math
import os
import sys
import traceback

OPTIONS = json.loads(sys.argv[1])
_replies = os.fdopen(3, "w", buffering=1)
_NUMBERS = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def say(**message):
    _replies.write(json.dumps(message) + "\n")


def error_text(exc):
    return "".join(traceback.format_exception_only(type(exc), exc)).strip()


def cannot_import(library, exc):
    say(error=f"{sys.executable} cannot import {library} ({error_text(exc)}): "
              f"pip install {library}, or name the Python that has it in \"python\"")
    sys.exit(1)


def numbers(data):
    return {k: _NUMBERS.get(v, v) if isinstance(v, str) else v for k, v in data.items()}


def serve(tracker):
    # Ready: from now on logging is background work, and the trials and the tuner come first when
    # the cores are busy (processes the library starts from here on, wandb-core's, inherit it).
    # Not before: tune waits for the import at the start of the experiment.
    try:
        os.nice(10)
    except OSError:
        pass
    finished = 0
    for line in sys.stdin:
        trial = None
        try:
            message = json.loads(line)
            op, trial = message["op"], message.get("trial")
            if op == "experiment":
                log = open(message["log"], "a", buffering=1)
                os.dup2(log.fileno(), 1)
                os.dup2(log.fileno(), 2)
                tracker.experiment(message)
            elif op == "start":
                tracker.start(trial, message.get("config") or {})
            elif op == "log":
                tracker.log(trial, numbers(message["data"]))
            elif op == "pause":
                tracker.pause(trial)
            elif op == "end":
                finished += bool(tracker.end(trial, message["status"], message.get("error") or ""))
        except Exception as exc:  # noqa: BLE001: one bad trial or message must not end the others
            say(error=error_text(exc), trial=trial)
    hint = None
    try:
        closed, hint = tracker.close()
        finished += closed
    except Exception as exc:  # noqa: BLE001
        say(error=error_text(exc))
    say(done=finished, hint=hint)
