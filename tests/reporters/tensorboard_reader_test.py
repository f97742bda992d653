#!/usr/bin/env python3
"""TensorBoard's own loader reads back what tune's TensorBoard reporter wrote.

Runs real tiny experiments with `tune run` (reader_common.py's: tune-example-curve trials under
ASHA with time_attr "epoch"; every trial crashes once at epoch 3 and is retried from its
checkpoint, so each has two attempt files), then loads the experiment directory the way `tensorboard --logdir` does
(plugin_event_multiplexer: one run per directory) and checks:
  - every numeric field of every line of each trial's result.json is a scalar tagged with its
    name, at step = the line's epoch, with exactly the value result.json holds, in order;
  - each trial's session start info holds its config (params.json) as hparams, exactly, and its
    session end info the status (SUCCESS: TERMINATED or STOPPED);
  - the experiment summary names every config key and every scalar tag;
  - after a tune killed mid-run (kill -9 at a journal event) and `tune resume`: the files of the
    killed tune still load, and every report made after the resume is in TensorBoard exactly.
Exit 77 (CTest: skipped) when the tensorboard package is missing, except on CI (CI=true).

Usage: tensorboard_reader_test.py --bin-dir BUILD/bin
"""
import json
import os
import sys

try:
    from tensorboard.backend.event_processing import plugin_event_multiplexer
    from tensorboard.plugins.hparams import metadata as hparams_metadata
    from tensorboard.plugins.hparams import api_pb2
    from tensorboard.util import tensor_util
except ImportError as error:
    if os.environ.get("CI") == "true":
        raise
    print(f"skipped: {error} (bash scripts/setup.sh installs tensorboard into .venv)")
    sys.exit(77)

from reader_common import (attempts, check, flatten, main,  # noqa: E402
                           reports_after_resume, result_lines, run_tune, write_spec)


def expected_scalars(lines):
    """tag -> [(step, value)] from result.json lines (numbers only; booleans are not)."""
    series = {}
    for line in lines:
        step = line["epoch"]
        for key, value in line.items():
            if key in ("timestamp", "trial_id", "done") or isinstance(value, bool):
                continue
            if isinstance(value, (int, float)):
                series.setdefault(key, []).append((step, float(value)))
    return series


def load(experiment):
    # Keep every point (TensorBoard samples down to 1,000 per scalar tag by default).
    multiplexer = plugin_event_multiplexer.EventMultiplexer(
        size_guidance={"tensors": 0}, tensor_size_guidance={"scalars": 0, "hparams": 0})
    multiplexer.AddRunsFromDirectory(experiment)
    multiplexer.Reload()
    return multiplexer


def scalars(multiplexer, run):
    series = {}
    tags = multiplexer.Runs()[run].get("tensors", [])
    for tag in tags:
        if multiplexer.SummaryMetadata(run, tag).plugin_data.plugin_name != "scalars":
            continue
        series[tag] = [(event.step, tensor_util.make_ndarray(event.tensor_proto).item())
                       for event in multiplexer.Tensors(run, tag)]
    return series


def hparam_value(value):
    kind = value.WhichOneof("kind")
    return {"number_value": value.number_value, "string_value": value.string_value,
            "bool_value": value.bool_value}[kind]


def config_as_hparams(config):
    out = {}
    for key, value in flatten(config).items():
        if isinstance(value, bool) or isinstance(value, str):
            out[key] = value
        elif isinstance(value, (int, float)):
            out[key] = float(value)
        else:
            out[key] = json.dumps(value, separators=(",", ":"))
    return out


def check_clean_run(bin_dir, storage):
    spec_path = write_spec(storage, "clean", 0)
    done = run_tune(bin_dir, ["tune", "run", spec_path, "--storage", storage])
    check(done.returncode == 0, f"tune run failed: {done.stderr[-2000:]}")
    experiment = os.path.join(storage, "clean")
    multiplexer = load(experiment)
    runs = multiplexer.Runs()
    trials = sorted(d for d in os.listdir(experiment) if d.startswith("t_"))
    check(len(trials) == 4, f"expected 4 trials, found {trials}")
    hparams = multiplexer.PluginRunToTagToContent(hparams_metadata.PLUGIN_NAME)
    started = attempts(experiment)
    check(max(started.values()) == 2, f"no trial was retried: {started}")
    all_tags, all_keys = set(), set()
    for trial in trials:
        trial_dir = os.path.join(experiment, trial)
        files = [f for f in os.listdir(trial_dir) if "tfevents" in f]
        check(len(files) == started[trial],
              f"{trial}: expected one events file per attempt ({started[trial]}), found {files}")
        check(trial in runs, f"{trial}: not a run TensorBoard found ({sorted(runs)})")
        expected = expected_scalars(result_lines(experiment, trial))
        got = scalars(multiplexer, trial)
        check(set(got) == set(expected),
              f"{trial}: tags {sorted(got)} != result.json's {sorted(expected)}")
        for tag, points in expected.items():
            check(got.get(tag) == points,
                  f"{trial}/{tag}: TensorBoard has {got.get(tag)}, result.json {points}")
        all_tags.update(expected)
        with open(os.path.join(trial_dir, "params.json")) as params:
            config = json.load(params)
        wanted = config_as_hparams(config)
        all_keys.update(wanted)
        content = hparams.get(trial, {})
        check(hparams_metadata.SESSION_START_INFO_TAG in content, f"{trial}: no session start info")
        if hparams_metadata.SESSION_START_INFO_TAG in content:
            start = hparams_metadata.parse_session_start_info_plugin_data(
                content[hparams_metadata.SESSION_START_INFO_TAG])
            got_hparams = {key: hparam_value(value) for key, value in start.hparams.items()}
            check(got_hparams == wanted, f"{trial}: hparams {got_hparams} != config {wanted}")
        check(hparams_metadata.SESSION_END_INFO_TAG in content, f"{trial}: no session end info")
        if hparams_metadata.SESSION_END_INFO_TAG in content:
            end = hparams_metadata.parse_session_end_info_plugin_data(
                content[hparams_metadata.SESSION_END_INFO_TAG])
            check(end.status == api_pb2.STATUS_SUCCESS, f"{trial}: end status {end.status}")
    experiment_runs = [run for run, tags in hparams.items()
                       if hparams_metadata.EXPERIMENT_TAG in tags]
    check(experiment_runs == ["."], f"the experiment summary is in runs {experiment_runs}")
    if experiment_runs:
        summary = hparams_metadata.parse_experiment_plugin_data(
            hparams["."][hparams_metadata.EXPERIMENT_TAG])
        names = {info.name for info in summary.hparam_infos}
        check(names == all_keys, f"experiment hparams {sorted(names)} != {sorted(all_keys)}")
        metrics = {info.name.tag for info in summary.metric_infos}
        check(metrics == all_tags, f"experiment metrics {sorted(metrics)} != {sorted(all_tags)}")
        lr = [info for info in summary.hparam_infos if info.name == "lr"]
        check(lr and lr[0].type == api_pb2.DATA_TYPE_FLOAT64 and lr[0].HasField("domain_interval"),
              f"lr's hparam info: {lr}")
    print(f"clean run: {len(trials)} trials, {len(all_tags)} tags each, hparams and summary checked")


def check_killed_and_resumed(bin_dir, storage):
    spec_path = write_spec(storage, "killed", 3)
    env = dict(os.environ, TUNE_FAULT_EXIT_AFTER_EVENTS="25")
    killed = run_tune(bin_dir, ["tune-test-hooks", "run", spec_path, "--storage", storage], env)
    check(killed.returncode == 137, f"the fault-injecting tune exited {killed.returncode}")
    experiment = os.path.join(storage, "killed")
    before = {trial: sorted(f for f in os.listdir(os.path.join(experiment, trial)) if "tfevents" in f)
              for trial in os.listdir(experiment) if trial.startswith("t_")}
    resumed = run_tune(bin_dir, ["tune", "resume", experiment])
    check(resumed.returncode == 0, f"tune resume failed: {resumed.stderr[-2000:]}")
    after_resume = reports_after_resume(experiment)
    check(after_resume, "no report after the resume: the test covers nothing")
    multiplexer = load(experiment)
    for trial, reports in after_resume.items():
        got = scalars(multiplexer, trial)
        everything = expected_scalars(result_lines(experiment, trial))
        for tag, points in got.items():
            check(set(points) <= set(everything.get(tag, [])),
                  f"{trial}/{tag}: TensorBoard has points result.json lacks: {points}")
        for report in reports:
            step = report["metrics"]["epoch"]
            check((step, float(report["metrics"]["loss"])) in got.get("loss", []),
                  f"{trial}: the report of epoch {step} after the resume is not in TensorBoard")
        files = sorted(f for f in os.listdir(os.path.join(experiment, trial)) if "tfevents" in f)
        check(set(before.get(trial, [])) < set(files),
              f"{trial}: resume should add a file and keep the old ones: {before.get(trial)} -> {files}")
    print(f"killed and resumed: {len(after_resume)} trials reported after the resume, checked")


if __name__ == "__main__":
    main("tune_tb_", [check_clean_run, check_killed_and_resumed])
