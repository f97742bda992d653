#!/usr/bin/env python3
"""What the real wandb library wrote for tune's "wandb" reporter, read back record by record.

Runs real tiny experiments with `tune run` (reader_common.py's: tune-example-curve trials under
ASHA with time_attr "epoch"; every trial crashes once at epoch 3 and is retried from its
checkpoint) with
`"callbacks": [{"type": "wandb", "mode": "offline", ...}]` and the Python running this test (which
has wandb) as the helper's. Each offline run's .wandb file (wandb's LevelDB-style log of its own
`Record` protobufs, wandb.proto.wandb_internal_pb2) is read, and:
  - there is one run per trial: id "<key>-<trial>" (key from <experiment>/wandb/tune-key), name
    the trial, the experiment's name as group, the project asked for, the trial's config
    (params.json) as config, both attempts of the trial in the one run;
  - its history rows are the lines of the trial's result.json, in order, every numeric field
    exactly (nested objects as "a/b"), stamped with the line's timestamp;
  - every metric is charted against the scheduler's time_attr (a metric record "*" stepped by
    "epoch");
  - the summary's status is the trial's final status and the exit code 0;
  - after a tune killed mid-run (kill -9 at a journal event): its runs still finish (as
    INTERRUPTED, exit code 255), and `tune resume` continues the same run ids with every report it
    receives;
  - under PBT, an exploited trial keeps its one run, whose config ends as the trial's new one;
  - with no API key and no offline mode, `tune run` refuses to start (exit 2) and says why.
Exit 77 (CTest: skipped) when the wandb package is missing, except on CI (CI=true).

Usage: wandb_reader_test.py --bin-dir BUILD/bin
"""
import glob
import json
import os
import struct
import sys
import time

try:
    from wandb.proto import wandb_internal_pb2
except ImportError as error:
    if os.environ.get("CI") == "true":
        raise
    print(f"skipped: {error} (bash scripts/setup.sh installs wandb into .venv)")
    sys.exit(77)

from reader_common import (attempts, check, exploited, main, pbt,  # noqa: E402
                           reports_after_resume, result_lines, run_tune, write_spec)

CALLBACKS = [{"type": "wandb", "project": "tune-test", "mode": "offline", "python": sys.executable}]


def records(path):
    """The Record messages of a .wandb file: a 7-byte header (":W&B", 0xBEE1, version 0), then
    LevelDB log records (CRC-32C, length, type: full / first / middle / last) in 32 KiB blocks."""
    with open(path, "rb") as handle:
        data = handle.read()
    if data[:4] != b":W&B":
        raise ValueError(f"{path}: not a .wandb file")
    block, pos, pieces = 32768, 7, b""
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if length == 0 and kind == 0:  # zero padding to the end of the block
            pos += left
            continue
        chunk = data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):
            raw = pieces + chunk if kind == 4 else chunk
            pieces = b""
            record = wandb_internal_pb2.Record()
            record.ParseFromString(raw)
            yield record
        else:
            pieces = chunk if kind == 2 else pieces + chunk


def read_run(path):
    """One offline run: its run record, history rows, summary, metric records and exit code."""
    run = {"history": [], "summary": {}, "metrics": [], "exit_code": None, "run": None,
           "config": {}}
    for record in records(path):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run["run"] = record.run
            run["config"].update({item.key: json.loads(item.value_json)
                                  for item in record.run.config.update})
        elif kind == "config":
            run["config"].update({item.key: json.loads(item.value_json)
                                  for item in record.config.update})
        elif kind == "history":
            row = {"/".join(item.nested_key) or item.key: json.loads(item.value_json)
                   for item in record.history.item}
            run["history"].append({k: v for k, v in row.items()
                                   if not k.startswith("_") or k == "_timestamp"})
        elif kind == "summary":
            for item in record.summary.update:
                run["summary"]["/".join(item.nested_key) or item.key] = json.loads(item.value_json)
        elif kind == "metric":
            run["metrics"].append((record.metric.name or record.metric.glob_name,
                                   record.metric.step_metric))
        elif kind == "exit":
            run["exit_code"] = record.exit.exit_code
    return run


def offline_runs(experiment, key, trial):
    """Every offline run of a trial's run id, oldest first."""
    paths = glob.glob(os.path.join(experiment, "wandb", f"offline-run-*-{key}-{trial}",
                                   f"run-{key}-{trial}.wandb"))
    return [read_run(path) for path in sorted(paths)]


def expected_rows(result_lines):
    rows = []
    for line in result_lines:
        row = {}
        for key, value in line.items():
            if key in ("timestamp", "trial_id", "done") or isinstance(value, bool):
                continue
            if isinstance(value, (int, float)):
                row[key] = value
            elif isinstance(value, dict):
                for inner, number in value.items():
                    if isinstance(number, (int, float)) and not isinstance(number, bool):
                        row[f"{key}/{inner}"] = number
        row["_timestamp"] = line["timestamp"]  # when the trial reported it (to the ms)
        rows.append(row)
    return rows


def key_of(experiment):
    with open(os.path.join(experiment, "wandb", "tune-key")) as handle:
        return handle.read().strip()


def check_clean_run(bin_dir, storage):
    spec_path = write_spec(storage, "clean", 0, callbacks=CALLBACKS)
    done = run_tune(bin_dir, ["tune", "run", spec_path, "--storage", storage])
    check(done.returncode == 0, f"tune run failed: {done.stderr[-2000:]}")
    check("upload them with `wandb sync" in done.stderr, f"no upload hint: {done.stderr[-500:]}")
    experiment = os.path.join(storage, "clean")
    key = key_of(experiment)
    trials = sorted(d for d in os.listdir(experiment) if d.startswith("t_"))
    check(len(trials) == 4, f"expected 4 trials, found {trials}")
    with open(os.path.join(experiment, "best_trial.json")) as handle:
        best = json.load(handle)
    started = attempts(experiment)
    rows_checked, retried = 0, 0
    for trial in trials:
        runs = offline_runs(experiment, key, trial)
        check(len(runs) == 1, f"{trial}: expected one run for both attempts, found {len(runs)}")
        if not runs:
            continue
        run = runs[0]
        check(run["run"] is not None and run["run"].run_id == f"{key}-{trial}",
              f"{trial}: run id {run['run'] and run['run'].run_id}")
        check(run["run"].display_name == trial, f"{trial}: name {run['run'].display_name}")
        check(run["run"].run_group == "clean", f"{trial}: group {run['run'].run_group}")
        check(run["run"].project == "tune-test", f"{trial}: project {run['run'].project}")
        config = {item.key: json.loads(item.value_json) for item in run["run"].config.update
                  if item.key != "_wandb"}
        with open(os.path.join(experiment, trial, "params.json")) as handle:
            wanted = json.load(handle)
        check(config == wanted, f"{trial}: W&B config {config} != params.json {wanted}")
        expected = expected_rows(result_lines(experiment, trial))
        check(len(run["history"]) == len(expected),
              f"{trial}: {len(run['history'])} history rows, result.json has {len(expected)} lines")
        for got, want in zip(run["history"], expected):
            # result.json writes the timestamp to the millisecond.
            stamp, wanted_stamp = got.pop("_timestamp", None), want.pop("_timestamp")
            check(stamp is not None and abs(stamp - wanted_stamp) <= 0.0006,
                  f"{trial}: history row stamped {stamp}, result.json {wanted_stamp}")
            check(got == want, f"{trial}: history row {got} != result.json's {want}")
            rows_checked += 1
        retried += started.get(trial, 0) == 2
        check(("epoch", "") in run["metrics"] and ("*", "epoch") in run["metrics"],
              f"{trial}: metric records {run['metrics']}")
        check(run["exit_code"] == 0, f"{trial}: exit code {run['exit_code']}")
        final = run["summary"].get("status")
        check(final in ("TERMINATED", "STOPPED"), f"{trial}: summary status {final}")
    check(best["trial_id"] in trials, f"best trial {best.get('trial_id')}")
    check(retried > 0, f"no trial was retried (the one-run-for-both-attempts check covers nothing): "
                       f"{started}")
    print(f"clean run: {len(trials)} runs, {rows_checked} history rows checked against result.json")


def wait_finished(experiment, key, trials, seconds=60):
    """The killed tune's helper finishes its open runs after tune is gone: wait for every run
    started so far to have its exit record."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            runs = [run for trial in trials for run in offline_runs(experiment, key, trial)]
        except Exception:  # noqa: BLE001: a record read while wandb writes it
            runs = []
        if runs and all(run["exit_code"] is not None for run in runs):
            return runs
        time.sleep(0.2)
    return None


def check_killed_and_resumed(bin_dir, storage):
    spec_path = write_spec(storage, "killed", 3, callbacks=CALLBACKS)
    env = dict(os.environ, TUNE_FAULT_EXIT_AFTER_EVENTS="12")
    killed = run_tune(bin_dir, ["tune-test-hooks", "run", spec_path, "--storage", storage], env)
    check(killed.returncode == 137, f"the fault-injecting tune exited {killed.returncode}")
    experiment = os.path.join(storage, "killed")
    key = key_of(experiment)
    started = sorted(d for d in os.listdir(experiment) if d.startswith("t_"))
    before = wait_finished(experiment, key, started)
    check(before is not None, "the killed tune's runs never finished")
    interrupted = [run for run in before or [] if run["exit_code"] == 255]
    check(interrupted and all(run["summary"].get("status") == "INTERRUPTED" for run in interrupted),
          f"runs open at the kill: exit codes {[run['exit_code'] for run in before or []]}")
    # Ensure the resumed runs' directories (named to the second) cannot take the killed ones'.
    time.sleep(1.1)
    resumed = run_tune(bin_dir, ["tune", "resume", experiment])
    check(resumed.returncode == 0, f"tune resume failed: {resumed.stderr[-2000:]}")
    after_resume = reports_after_resume(experiment)
    check(after_resume, "no report after the resume: the test covers nothing")
    continued = 0
    for trial, reports in after_resume.items():
        runs = offline_runs(experiment, key, trial)
        check(runs, f"{trial}: no run")
        if not runs:
            continue
        last = runs[-1]
        check(all(run["run"].run_id == f"{key}-{trial}" for run in runs),
              f"{trial}: run ids {[run['run'].run_id for run in runs]}")
        continued += len(runs) > 1
        epochs = [row.get("epoch") for row in last["history"]]
        for report in reports:
            step = report["metrics"]["epoch"]
            rows = [row for row in last["history"] if row.get("epoch") == step]
            check(any(row.get("loss") == report["metrics"]["loss"] for row in rows),
                  f"{trial}: the report of epoch {step} after the resume is not in its run "
                  f"(epochs {epochs})")
        check(last["exit_code"] == 0 and last["summary"].get("status") in ("TERMINATED", "STOPPED"),
              f"{trial}: the resumed run ended {last['exit_code']} {last['summary'].get('status')}")
    check(continued > 0, "no run was continued by the resume (same id, a second offline run)")
    print(f"killed and resumed: {len(after_resume)} trials reported after the resume, "
          f"{continued} runs continued")


def check_pbt(bin_dir, storage):
    spec_path = write_spec(storage, "pbt", 0, **pbt(callbacks=CALLBACKS))
    done = run_tune(bin_dir, ["tune", "run", spec_path, "--storage", storage])
    check(done.returncode == 0, f"tune run (PBT) failed: {done.stderr[-2000:]}")
    experiment = os.path.join(storage, "pbt")
    key = key_of(experiment)
    changed = exploited(experiment)
    check(changed, "PBT exploited no trial: the test covers nothing")
    for trial in changed:
        runs = offline_runs(experiment, key, trial)
        check(len(runs) == 1, f"{trial}: {len(runs)} runs (one expected across its exploits)")
        if not runs:
            continue
        with open(os.path.join(experiment, trial, "params.json")) as handle:
            final = json.load(handle)
        config = {k: v for k, v in runs[0]["config"].items() if k != "_wandb"}
        check(config == final, f"{trial}: W&B config at the end {config} != params.json {final}")
    print(f"PBT: {len(changed)} exploited trials' configs checked")


def check_refused_without_key(bin_dir, storage):
    online = [{key: value for key, value in CALLBACKS[0].items() if key != "mode"}]
    spec_path = write_spec(storage, "online", 1, callbacks=online)
    home = os.path.join(storage, "home")  # no ~/.netrc, no wandb settings
    os.makedirs(home, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env.update(HOME=home, NETRC=os.path.join(home, ".netrc"))
    refused = run_tune(bin_dir, ["tune", "run", spec_path, "--storage", storage], env)
    check(refused.returncode == 2, f"online without a key: exit {refused.returncode}")
    check("callbacks[0]: wandb: no W&B API key" in refused.stderr,
          f"online without a key: {refused.stderr[-1000:]}")
    check(not glob.glob(os.path.join(storage, "online", "t_*")), "trials ran without a key")
    print("online without an API key: refused before any trial")


if __name__ == "__main__":
    main("tune_wandb_", [check_clean_run, check_killed_and_resumed, check_pbt,
                         check_refused_without_key])
