#!/usr/bin/env python3
"""What MLflow holds after tune's "mlflow" reporter, read back through MLflow's own client.

Runs real tiny experiments with `tune run` (reader_common.py's: tune-example-curve trials under
ASHA with time_attr "epoch"; every trial crashes once at epoch 3 and is retried from its
checkpoint) with `"callbacks": [{"type": "mlflow", "tracking_uri": "file:..."}]` and the Python
running this test (which has mlflow) as the helper's, then asks MlflowClient for:
  - the MLflow experiment named after tune's, one run per trial (both attempts in it): run name the
    trial, tags tune.trial_id, tune.experiment, tune.run_key "<key>-<trial>" (key from
    <experiment>/mlflow/tune-key), tune.status the trial's final status, and the spec's own tags;
  - its parameters: the trial's config (params.json) flattened to dotted keys, as MLflow's strings
    (a key with a character MLflow refuses has it as "_");
  - every numeric field of every line of result.json as a metric at step = the line's epoch, with
    exactly that value, stamped with the line's timestamp (ms), in order;
  - the run FINISHED;
  - after a tune killed mid-run (kill -9 at a journal event): its open runs KILLED (tune.status
    INTERRUPTED), and after `tune resume` the same runs (no second run for a trial) hold every
    report the resumed tune received, and are FINISHED;
  - under PBT, an exploited trial keeps its one run, and its new values are the tags
    tune.config.<key> (MLflow parameters cannot change);
  - a tracking store MLflow cannot use makes `tune run` exit 2 before any trial, saying why.
Exit 77 (CTest: skipped) when mlflow is missing, except on CI (CI=true).

Usage: mlflow_reader_test.py --bin-dir BUILD/bin
"""
import glob
import json
import os
import sys
import time

# The file store: MLflow 3 keeps it for tests like this one behind this switch.
os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
try:
    from mlflow.tracking import MlflowClient
except ImportError as error:
    if os.environ.get("CI") == "true":
        raise
    print(f"skipped: {error} (bash scripts/setup.sh installs mlflow-skinny into .venv)")
    sys.exit(77)

from reader_common import (attempts, check, exploited, flatten, main, pbt,  # noqa: E402
                           reports_after_resume, result_lines, run_tune, write_spec)


def callbacks(storage):
    return [{"type": "mlflow", "tracking_uri": f"file:{storage}/mlruns", "tags": {"team": "tune"},
             "python": sys.executable}]


def expected_metrics(lines):
    """metric -> [(step, value, timestamp ms)] from result.json lines (numbers only)."""
    series = {}
    for line in lines:
        for key, value in line.items():
            if key in ("timestamp", "trial_id", "done") or isinstance(value, bool):
                continue
            if isinstance(value, (int, float)):
                series.setdefault(key, []).append((line["epoch"], float(value),
                                                   round(1000 * line["timestamp"])))
    return series


def runs_by_trial(client, name):
    experiment = client.get_experiment_by_name(name)
    if experiment is None:  # the callers' checks say what is missing
        return {}
    by_trial = {}
    for run in client.search_runs([experiment.experiment_id], max_results=1000):
        by_trial.setdefault(run.data.tags.get("tune.trial_id"), []).append(run)
    return by_trial


def history(client, run, key):
    return [(m.step, m.value, m.timestamp) for m in client.get_metric_history(run.info.run_id, key)]


def key_of(experiment):
    with open(os.path.join(experiment, "mlflow", "tune-key")) as handle:
        return handle.read().strip()


def check_clean_run(bin_dir, storage):
    spec_path = write_spec(storage, "clean", 0, callbacks=callbacks(storage))
    with open(spec_path) as handle:
        clean = json.load(handle)
    clean["trainer"]["top@1 rate"] = 0.5  # a key MLflow refuses as it is: "top_1 rate"
    with open(spec_path, "w") as handle:
        json.dump(clean, handle)
    done = run_tune(bin_dir, ["tune", "run", spec_path, "--storage", storage])
    check(done.returncode == 0, f"tune run failed: {done.stderr[-2000:]}")
    check("[tune] mlflow: runs in MLflow experiment" in done.stderr, f"no hint: {done.stderr[-500:]}")
    experiment = os.path.join(storage, "clean")
    key = key_of(experiment)
    client = MlflowClient(f"file:{storage}/mlruns")
    by_trial = runs_by_trial(client, "clean")
    trials = sorted(d for d in os.listdir(experiment) if d.startswith("t_"))
    check(sorted(by_trial) == trials, f"runs for {sorted(by_trial)}, trials {trials}")
    started = attempts(experiment)
    check(max(started.values()) == 2, f"no trial was retried: {started}")
    points = 0
    for trial in trials:
        runs = by_trial.get(trial, [])
        check(len(runs) == 1, f"{trial}: {len(runs)} runs for its {started[trial]} attempts")
        if not runs:
            continue
        run = runs[0]
        tags = run.data.tags
        check(run.info.run_name == trial, f"{trial}: run name {run.info.run_name}")
        check(tags.get("tune.run_key") == f"{key}-{trial}", f"{trial}: run key {tags.get('tune.run_key')}")
        check(tags.get("tune.experiment") == "clean" and tags.get("team") == "tune", f"{trial}: tags {tags}")
        check(tags.get("tune.status") in ("TERMINATED", "STOPPED"), f"{trial}: status {tags.get('tune.status')}")
        check(run.info.status == "FINISHED", f"{trial}: run {run.info.status}")
        with open(os.path.join(experiment, trial, "params.json")) as handle:
            wanted = {key.replace("@", "_"): value if isinstance(value, str) else json.dumps(value)
                      for key, value in flatten(json.load(handle)).items()}
        check("top_1 rate" in wanted, f"{trial}: the test's odd key is not in params.json")
        check(run.data.params == wanted, f"{trial}: parameters {run.data.params} != {wanted}")
        expected = expected_metrics(result_lines(experiment, trial))
        check(set(run.data.metrics) == set(expected),
              f"{trial}: metrics {sorted(run.data.metrics)} != result.json's {sorted(expected)}")
        for metric, series in expected.items():
            got = history(client, run, metric)
            check(got == series, f"{trial}/{metric}: MLflow has {got}, result.json {series}")
            points += len(series)
    print(f"clean run: {len(trials)} runs, {points} metric points checked against result.json")


def check_killed_and_resumed(bin_dir, storage):
    spec_path = write_spec(storage, "killed", 3, callbacks=callbacks(storage))
    env = dict(os.environ, TUNE_FAULT_EXIT_AFTER_EVENTS="12")
    killed = run_tune(bin_dir, ["tune-test-hooks", "run", spec_path, "--storage", storage], env)
    check(killed.returncode == 137, f"the fault-injecting tune exited {killed.returncode}")
    experiment = os.path.join(storage, "killed")
    client = MlflowClient(f"file:{storage}/mlruns")
    deadline = time.monotonic() + 60
    runs = []
    while time.monotonic() < deadline:  # the killed tune's helper finishes its runs after it
        try:
            runs = [r for rs in runs_by_trial(client, "killed").values() for r in rs]
        except Exception:  # noqa: BLE001: a file store read while the helper writes it
            runs = []
        if runs and all(r.info.status != "RUNNING" for r in runs):
            break
        time.sleep(0.2)
    killed_runs = [r for r in runs if r.info.status == "KILLED"]
    check(killed_runs and all(r.data.tags.get("tune.status") == "INTERRUPTED" for r in killed_runs),
          f"runs open at the kill: {[(r.info.status, r.data.tags.get('tune.status')) for r in runs]}")
    resumed = run_tune(bin_dir, ["tune", "resume", experiment])
    check(resumed.returncode == 0, f"tune resume failed: {resumed.stderr[-2000:]}")
    after_resume = reports_after_resume(experiment)
    check(after_resume, "no report after the resume: the test covers nothing")
    by_trial = runs_by_trial(client, "killed")
    continued = {r.info.run_id for r in killed_runs}
    for trial, reports in after_resume.items():
        runs = by_trial.get(trial, [])
        check(len(runs) == 1, f"{trial}: {len(runs)} runs after the resume (one expected)")
        if not runs:
            continue
        run = runs[0]
        got = history(client, run, "loss")
        for report in reports:
            point = (report["metrics"]["epoch"], float(report["metrics"]["loss"]))
            check(point in [(step, value) for step, value, _ in got],
                  f"{trial}: the report of epoch {point[0]} after the resume is not in its run")
        check(run.info.status == "FINISHED", f"{trial}: the resumed run is {run.info.status}")
    check(any(r.info.run_id in continued for rs in by_trial.values() for r in rs
              if r.data.tags.get("tune.trial_id") in after_resume),
          "no run killed with the tune was continued by the resume")
    print(f"killed and resumed: {len(killed_runs)} runs killed, {len(after_resume)} trials "
          f"reported after the resume")


def check_pbt(bin_dir, storage):
    spec_path = write_spec(storage, "pbt", 0, **pbt(callbacks=callbacks(storage)))
    done = run_tune(bin_dir, ["tune", "run", spec_path, "--storage", storage])
    check(done.returncode == 0, f"tune run (PBT) failed: {done.stderr[-2000:]}")
    experiment = os.path.join(storage, "pbt")
    changed = exploited(experiment)
    check(changed, "PBT exploited no trial: the test covers nothing")
    by_trial = runs_by_trial(MlflowClient(f"file:{storage}/mlruns"), "pbt")
    for trial in changed:
        runs = by_trial.get(trial, [])
        check(len(runs) == 1, f"{trial}: {len(runs)} runs (one expected across its exploits)")
        if not runs:
            continue
        with open(os.path.join(experiment, trial, "params.json")) as handle:
            final = json.load(handle)
        tags, params = runs[0].data.tags, runs[0].data.params
        for key in ("lr", "x1"):
            latest = tags.get(f"tune.config.{key}", params.get(key))
            check(latest == json.dumps(final[key]),
                  f"{trial}: {key} is {latest} in MLflow, {final[key]} in params.json")
        check(any(key.startswith("tune.config.") for key in tags),
              f"{trial}: exploited, but no tune.config.* tag: {tags}")
    print(f"PBT: {len(changed)} exploited trials' new values checked")


def check_unusable_store(bin_dir, storage):
    bad = callbacks(storage)
    bad[0]["tracking_uri"] = "nosuchscheme://nowhere"
    spec_path = write_spec(storage, "unusable", 1, callbacks=bad)
    refused = run_tune(bin_dir, ["tune", "run", spec_path, "--storage", storage])
    check(refused.returncode == 2, f"an unusable store: exit {refused.returncode}")
    check("callbacks[0]: mlflow: MLflow's tracking store nosuchscheme://nowhere is not usable"
          in refused.stderr, f"an unusable store: {refused.stderr[-1000:]}")
    check(not glob.glob(os.path.join(storage, "unusable", "t_*")), "trials ran without a store")
    print("an unusable tracking store: refused before any trial")


if __name__ == "__main__":
    main("tune_mlflow_", [check_clean_run, check_killed_and_resumed, check_pbt, check_unusable_store])
