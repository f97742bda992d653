# Weights & Biases for tune's "wandb" reporter (reporters/tracker.h), after tracker_helper.py:
# every run, history row, config and summary is written by wandb's own library (>= 0.19.10:
# several runs open at once), online or offline (`wandb sync` uploads an offline run later), as
# Ray Tune's WandbLoggerCallback does from its logging actors.
#
# Each trial is one W&B run: id "<key>-<trial id>", name the trial id, group the experiment's name
# unless options say otherwise, config the trial's config (updated when PBT gives it new values),
# history one row per report with the scheduler's time attribute as the x axis of every chart.
import os
import sys

if "serve" not in globals():  # tune runs it after tracker_helper.py; alone, for linters and tests
    from tracker_helper import OPTIONS, cannot_import, error_text, say, serve

try:
    import wandb
except Exception as exc:  # noqa: BLE001: whatever stops the import is the user's to see
    cannot_import("wandb", exc)

_version = tuple(int(part) if part.isdigit() else 0 for part in wandb.__version__.split(".")[:3])
if _version < (0, 19, 10):
    say(error=f"wandb {wandb.__version__} is too old: tune needs >= 0.19.10 "
              f"(several runs open at once)")
    sys.exit(1)
MODE = OPTIONS.get("mode") or wandb.setup().settings.mode
if MODE == "online" and not wandb.login(prompt=False, verify=False):
    say(error="no W&B API key: run `wandb login`, set WANDB_API_KEY, or log offline "
              "(\"mode\": \"offline\" or WANDB_MODE=offline; `wandb sync` uploads later)")
    sys.exit(1)
say(ready=wandb.__version__, mode=MODE)


class WandbTracker:
    def __init__(self):
        self.runs = {}  # trial id -> open wandb Run
        self.dir = self.name = self.key = None

    def experiment(self, message):
        self.dir, self.name, self.key = message["dir"], message["name"], message["key"]

    def start(self, trial, config):
        run = self.runs.get(trial)
        if run is not None:
            run.config.update(config, allow_val_change=True)
            return
        settings = wandb.Settings(silent=True, console="off", x_disable_stats=True,
                                  disable_git=True, disable_code=True, x_save_requirements=False,
                                  program="tune")
        options = OPTIONS
        run = wandb.init(
            id=f"{self.key}-{trial}", name=trial, resume="allow", reinit="create_new",
            project=options.get("project"), entity=options.get("entity"),
            group=options.get("group") or self.name, job_type=options.get("job_type"),
            tags=options.get("tags") or None, notes=options.get("notes"), dir=self.dir,
            mode=MODE, config=config if options.get("log_config", True) else None,
            settings=settings)
        time_attr = options.get("time_attr", "training_iteration")
        run.define_metric(time_attr)
        run.define_metric("*", step_metric=time_attr)
        self.runs[trial] = run

    def log(self, trial, data):
        run = self.runs.get(trial)
        if run is not None:
            run.log(data)

    def pause(self, trial):
        if trial in self.runs:
            self.runs[trial].summary["status"] = "PAUSED"

    def end(self, trial, status, error):
        run = self.runs.pop(trial, None)
        if run is None:
            return False
        run.summary["status"] = status
        if error:
            run.summary["error"] = error
        run.finish(exit_code=1 if status == "ERROR" else 0)
        return True

    def close(self):
        finished = 0
        for trial, run in list(self.runs.items()):
            try:
                run.summary["status"] = "INTERRUPTED"
                run.finish(exit_code=255)
                finished += 1
            except Exception as exc:  # noqa: BLE001
                say(error=error_text(exc), trial=trial)
        hint = None
        if MODE == "offline" and self.dir:
            where = os.path.join(self.dir, "wandb")
            hint = f"offline runs in {where}; upload them with `wandb sync {where}/offline-run-*`"
        return finished, hint


serve(WandbTracker())
