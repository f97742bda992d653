# The Weights & Biases side of tune's "wandb" reporter (reporters/wandb.h): embedded in the `tune`
# binary and run as `PYTHON -c <this file> OPTIONS_JSON`, one process per experiment, in the
# user's Python, which has `wandb` (>= 0.19.10: several runs open at once). tune keeps no W&B
# code of its own: every run, history row, config and summary is written by wandb's library,
# online or offline (`wandb sync` uploads an offline run later), as Ray Tune's
# WandbLoggerCallback does from its logging actors.
#
# tune -> here, stdin, one JSON object a line:
#   {"op": "experiment", "dir": D, "name": N, "key": K}   once, first
#   {"op": "start", "trial": ID, "config": {...}}          each attempt of a trial
#   {"op": "log", "trial": ID, "data": {...}}              each report (numbers; "NaN",
#                                                          "Infinity", "-Infinity" as strings)
#   {"op": "pause", "trial": ID}                           ASHA/HyperBand/PBT paused it
#   {"op": "end", "trial": ID, "status": S, "error": E}    TERMINATED, STOPPED or ERROR
#   end of input: the experiment is over; runs still open (an interrupted experiment's) finish
#   as interrupted (exit code 255) and are continued by `tune resume`.
# here -> tune, fd 3, one JSON object a line: {"ready": VERSION, "mode": MODE} once wandb is
# imported and the mode has what it needs; {"error": TEXT, "trial": ID} for anything that failed (the rest goes
# on); {"done": RUNS} at the end. wandb's own messages go to <dir>/wandb/tune-wandb.log.
#
# Each trial is one W&B run: id "<key>-<trial id>" (key: a random tag tune keeps in
# <dir>/wandb/tune-key, so a resumed experiment continues the same runs), name the trial id, group
# the experiment's name unless options say otherwise, config the trial's config (updated when PBT
# gives it new values), history one row per report with the scheduler's time attribute as the
# x axis of every chart.
import json
import math
import os
import sys
import traceback

OPTIONS = json.loads(sys.argv[1])
out = os.fdopen(3, "w", buffering=1)


def say(**message):
    out.write(json.dumps(message) + "\n")


def error_text(exc):
    return "".join(traceback.format_exception_only(type(exc), exc)).strip()


try:
    import wandb
except Exception as exc:  # noqa: BLE001: whatever stops the import is the user's to see
    say(error=f"{sys.executable} cannot import wandb ({error_text(exc)}): "
              f"pip install wandb, or name the Python that has it in \"python\"")
    sys.exit(1)

version = tuple(int(part) if part.isdigit() else 0 for part in wandb.__version__.split(".")[:3])
if version < (0, 19, 10):
    say(error=f"wandb {wandb.__version__} is too old: tune needs >= 0.19.10 "
              f"(several runs open at once)")
    sys.exit(1)
MODE = OPTIONS.get("mode") or wandb.setup().settings.mode
if MODE == "online" and not wandb.login(prompt=False, verify=False):
    say(error="no W&B API key: run `wandb login`, set WANDB_API_KEY, or log offline "
              "(\"mode\": \"offline\" or WANDB_MODE=offline; `wandb sync` uploads later)")
    sys.exit(1)
say(ready=wandb.__version__, mode=MODE)

NUMBERS = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
runs = {}  # trial id -> open wandb Run
experiment = {}
finished = 0


def open_run(trial, config):
    run = runs.get(trial)
    if run is not None:
        run.config.update(config, allow_val_change=True)
        return
    settings = wandb.Settings(silent=True, console="off", x_disable_stats=True, disable_git=True,
                              disable_code=True, x_save_requirements=False, program="tune")
    run = wandb.init(
        id=f"{experiment['key']}-{trial}", name=trial, resume="allow", reinit="create_new",
        project=OPTIONS.get("project"), entity=OPTIONS.get("entity"),
        group=OPTIONS.get("group") or experiment["name"], job_type=OPTIONS.get("job_type"),
        tags=OPTIONS.get("tags") or None, notes=OPTIONS.get("notes"),
        dir=experiment["dir"], mode=MODE, config=config if OPTIONS.get("log_config", True) else None,
        settings=settings)
    time_attr = OPTIONS.get("time_attr", "training_iteration")
    run.define_metric(time_attr)
    run.define_metric("*", step_metric=time_attr)
    runs[trial] = run


def handle(message):
    global finished
    op = message["op"]
    if op == "experiment":
        experiment.update(message)
        log = open(os.path.join(message["dir"], "wandb", "tune-wandb.log"), "a", buffering=1)
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        return
    trial = message["trial"]
    if op == "start":
        open_run(trial, message.get("config") or {})
    elif op == "log":
        run = runs.get(trial)
        if run is not None:
            data = message["data"]
            run.log({k: NUMBERS.get(v, v) if isinstance(v, str) else v for k, v in data.items()})
    elif op == "pause":
        if trial in runs:
            runs[trial].summary["status"] = "PAUSED"
    elif op == "end":
        run = runs.pop(trial, None)
        if run is not None:
            run.summary["status"] = message["status"]
            if message.get("error"):
                run.summary["error"] = message["error"]
            run.finish(exit_code=1 if message["status"] == "ERROR" else 0)
            finished += 1


for line in sys.stdin:
    try:
        handle(json.loads(line))
    except Exception as exc:  # noqa: BLE001: one bad trial or message must not end the others
        trial = None
        try:
            trial = json.loads(line).get("trial")
        except ValueError:
            pass
        say(error=error_text(exc), trial=trial)

for trial, run in list(runs.items()):
    try:
        run.summary["status"] = "INTERRUPTED"
        run.finish(exit_code=255)
        finished += 1
    except Exception as exc:  # noqa: BLE001
        say(error=error_text(exc), trial=trial)
say(done=finished)
