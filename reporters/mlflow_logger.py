# MLflow for tune's "mlflow" reporter (reporters/tracker.h), after tracker_helper.py: every run,
# parameter, metric and tag is written by MLflow's own client (MlflowClient: many runs open at
# once, no global active run) to the tracking server or store the options or MLFLOW_TRACKING_URI
# name, as Ray Tune's MLflowLoggerCallback, Optuna's MLflowCallback and Lightning's MLFlowLogger do.
#
# Each trial is one MLflow run in the MLflow experiment named after tune's experiment (unless
# options say otherwise): run name the trial id, tags tune.trial_id, tune.experiment,
# tune.run_key ("<key>-<trial id>": `tune resume` finds the run by it and continues it) and
# tune.status, the trial's config as parameters (dotted keys; a value PBT changes later goes to
# the tag "tune.config.<key>", since MLflow parameters cannot change), each report's numbers as
# metrics at step = the scheduler's time attribute (training_iteration when that is not an
# integer), stamped with the time the trial reported them; FINISHED, FAILED or KILLED at the end.
import json
import math
import re
import sys
import time

if "serve" not in globals():  # tune runs it after tracker_helper.py; alone, for linters and tests
    from tracker_helper import OPTIONS, cannot_import, error_text, say, serve

try:
    import mlflow
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.tracking import MlflowClient
except Exception as exc:  # noqa: BLE001: whatever stops the import is the user's to see
    cannot_import("mlflow", exc)

try:
    CLIENT = MlflowClient(tracking_uri=OPTIONS.get("tracking_uri"))
    CLIENT.search_experiments(max_results=1)  # reaches the store now, not at the first trial
except Exception as exc:  # noqa: BLE001
    say(error=f"MLflow's tracking store {OPTIONS.get('tracking_uri') or mlflow.get_tracking_uri()} "
              f"is not usable: {error_text(exc)}")
    sys.exit(1)
say(ready=mlflow.__version__, uri=CLIENT.tracking_uri)

MAX_PARAM = 6000  # MLflow's limit on a parameter's value
MAX_BATCH = 1000  # and on the metrics of one log_batch


def mlflow_name(name):
    """A name MLflow takes for a parameter or metric (letters, digits, _ - . / space and :)."""
    return re.sub(r"[^\w\-./ :]", "_", name)[:250]


def flatten(node, prefix=""):
    out = {}
    for key, value in node.items():
        path = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict) and value:
            out.update(flatten(value, path))
        else:
            out[path] = value if isinstance(value, str) else json.dumps(value)
    return {mlflow_name(k): v[:MAX_PARAM] for k, v in out.items()}


class MlflowTracker:
    def __init__(self):
        self.runs = {}     # trial id -> open run id
        self.params = {}   # run id -> the parameters it was created with
        self.experiment_id = self.name = self.key = None

    def experiment(self, message):
        self.name, self.key = message["name"], message["key"]
        name = OPTIONS.get("experiment_name") or self.name
        found = CLIENT.get_experiment_by_name(name)
        self.experiment_id = found.experiment_id if found else CLIENT.create_experiment(name)

    def start(self, trial, config):
        params = flatten(config) if OPTIONS.get("log_config", True) else {}
        run_id = self.runs.get(trial)
        if run_id is None:
            key = f"{self.key}-{trial}"
            found = CLIENT.search_runs([self.experiment_id],
                                       filter_string=f"tags.`tune.run_key` = '{key}'",
                                       max_results=1)
            if found:  # tune resume: the same run again
                run_id = found[0].info.run_id
                self.params[run_id] = found[0].data.params
                CLIENT.update_run(run_id, status="RUNNING")
            else:
                tags = {"tune.trial_id": trial, "tune.experiment": self.name, "tune.run_key": key,
                        **{str(k): str(v) for k, v in (OPTIONS.get("tags") or {}).items()}}
                run_id = CLIENT.create_run(self.experiment_id, run_name=trial,
                                           tags=tags).info.run_id
                CLIENT.log_batch(run_id, params=[Param(k, v) for k, v in params.items()])
                self.params[run_id] = params
            self.runs[trial] = run_id
        logged = self.params[run_id]
        new = [Param(k, v) for k, v in params.items() if k not in logged]
        changed = [RunTag(f"tune.config.{k}", v) for k, v in params.items()
                   if k in logged and logged[k] != v]
        if new or changed:
            CLIENT.log_batch(run_id, params=new, tags=changed)
            logged.update({param.key: param.value for param in new})
        CLIENT.set_tag(run_id, "tune.status", "RUNNING")

    def log(self, trial, data):
        run_id = self.runs.get(trial)
        if run_id is None:
            return
        stamp = round(1000 * data.pop("_timestamp", time.time()))
        time_attr = OPTIONS.get("time_attr", "training_iteration")
        step = data.get(time_attr)
        if not (isinstance(step, (int, float)) and math.isfinite(step) and step == int(step)):
            step = data.get("training_iteration", 0)
        metrics = [Metric(mlflow_name(k), float(v), stamp, int(step)) for k, v in data.items()]
        for first in range(0, len(metrics), MAX_BATCH):
            CLIENT.log_batch(run_id, metrics=metrics[first:first + MAX_BATCH])

    def pause(self, trial):
        if trial in self.runs:
            CLIENT.set_tag(self.runs[trial], "tune.status", "PAUSED")

    def end(self, trial, status, error):
        run_id = self.runs.pop(trial, None)
        if run_id is None:
            return False
        tags = [RunTag("tune.status", status)]
        if error:
            tags.append(RunTag("tune.error", error[:5000]))
        CLIENT.log_batch(run_id, tags=tags)
        CLIENT.set_terminated(run_id, "FAILED" if status == "ERROR" else "FINISHED")
        return True

    def close(self):
        finished = 0
        for trial, run_id in list(self.runs.items()):
            try:
                CLIENT.set_tag(run_id, "tune.status", "INTERRUPTED")
                CLIENT.set_terminated(run_id, "KILLED")
                finished += 1
            except Exception as exc:  # noqa: BLE001
                say(error=error_text(exc), trial=trial)
        hint = f"runs in MLflow experiment {self.experiment_id} at {CLIENT.tracking_uri}" \
            if self.experiment_id is not None else None
        return finished, hint


serve(MlflowTracker())
