#!/usr/bin/env python3
"""Peers benchmark, the end-to-end race (issue 11, part 4): tune vs Optuna vs Ray Tune tuning an
MLP on Fashion-MNIST (the shared baselines' split: data/fashion from scripts/get_data.sh, 60,000
training images, the 10,000 "t10k" images as validation).

Contestants, the same budget (N trials, <= E epochs each), the same space (the baseline's:
hidden int [32, 512] log, layers int [1, 3], dropout [0, 0.5], lr [1e-4, 3e-2] log, batch_size
{64, 128, 256}, weight_decay [1e-6, 1e-2] log), the same data, K trials at once, 1 thread each:
  tune    build/bin/tune run SPEC: TPE (search/tpe.h, seed 0) + ASHA (grace 1, reduction 3,
          max_t E, one bracket) + tune-trainer (a process per trial, Adam with L2 weight decay on
          weights, no lr schedule, keep_checkpoints 1, as examples/fashion_mnist.json); the spec
          is written into the section.
  optuna  K = 1: /work/shared/baselines/fashion/fashion_optuna.py itself (Optuna 5.0
          TPESampler(seed 0) + SuccessiveHalvingPruner(min_resource=1, reduction_factor=3), its own
          PyTorch loop, data loaded once), run by a process of this file that only points the
          baseline's `common.DATA` at data/ (the same bytes as its prepare_data.py) and sets its
          MAX_EPOCHS to E, with `--seed 0 --trials N --env tuned --no-rule40-30`.
          K > 1: the baseline is sequential (n_jobs threads break its bookkeeping: its summary
          reads the t_end of trials still running), so Optuna runs as its documented multi-process
          setup: K processes share a JournalStorage study (same sampler and pruner; TPE seeds
          seed*1000 + process index, or all K would draw the same start-up configs), N/K trials
          each, and every trial runs the baseline's own objective: fashion_optuna.main() for one
          trial whose study.optimize hands the shared study's trial to its objective (suggestions,
          report, should_prune unchanged). So each trial loads the data itself there, as in Ray
          and tune.
          The baseline's --env tuned environment (malloc thresholds) is the environment of all three.
  ray     Ray Tune 2.58: OptunaSearch(the baseline's suggestions as a define-by-run function,
          TPESampler(seed 0)) + ASHAScheduler(grace_period=1, reduction_factor=3, max_t=E),
          max_concurrent_trials K, 1 CPU per trial. The function trainable runs the baseline's
          own training loop (run_baseline_trial, as Optuna's K > 1 processes): the objective gets
          a trial whose suggest_* return Ray's config and whose report(acc, epoch) calls
          ray.tune.report({"val_acc": acc}) (should_prune stays False: Ray's ASHA decides). So each Ray trial also loads the data itself (as each tune-trainer trial
          does). common.ray_init(work, num_cpus=K): a local instance, no dashboard, workers'
          output not forwarded, Ray's files and storage in the work folder; ray.shutdown() after.
          Every contestant runs in its own session, and whatever is left in it when it exits
          (Ray's raylet, GCS, workers) is killed by pid (common.kill_session), never `ray stop`,
          which would end other users' Ray instances on a shared machine.

Times are from each contestant's launch (this script starting its process): tune from its
trials' result.json timestamps (the tuner's receipt of each report), Optuna from the baseline's
own per-epoch t_end (anchored to the wall clock at its optimize() call), Ray from a time.time()
taken when each epoch's accuracy was reported. Per contestant: time to the first val_acc >= the
threshold (any epoch of any trial), best val_acc when the fastest contestant finished and when
the slowest finished, total wall time, trials and epochs trained.

Per contestant and seed, also its final best val_acc and, for a peer, the time tune took to reach
that accuracy, with the peer's total wall time / that time (issue 18's target: >= 2x). With
--seeds 0,1,2 every contestant runs once per seed and the table ends with median rows per
contestant (the median of each column; of the per-seed ratios for the ratios). --tune-override
JSON merges a variant into tune's spec (e.g. '{"search": {"intermediate": "budget"}}', BOHB's
rule, or '{"scheduler": {"promotion": "optuna"}}', Optuna's promotion rule in ASHA);
bench/peers/race_epochs.py reads the runs' results and says how each spent its epochs. Every
contestant's run saves its result (race/<who>_c<K>_s<seed>/result.json in the work folder); --combine
DIR... makes the table from saved results instead of running (a later folder wins: a rerun of one
contestant, e.g. `--contestants tune` after a trainer change, replaces its rows). In the medians a
time tune never reached counts as a ratio of 0 and a threshold the peer never reached as infinity.

Usage (alone): .venv/bin/python bench/peers/race.py [--quick] [--bin build/bin]
                   [--concurrency 1,2] [--trials 40] [--epochs 10] [--threshold 0.88]
                   [--contestants tune,optuna,ray] [--seed 0 | --seeds 0,1,2]
                   [--tune-override JSON] [--out FILE.md]
Quick: 8 trials, 3 epochs, threshold 0.85, concurrency 2 (about 2 min on an idle 2-core machine;
6.5 min measured with load average 8-15). Full: 40 trials, 10 epochs, 0.88, concurrency 1 and 2:
about 90-100 epochs of 60,000 images per contestant and concurrency (the baseline's seed-0 run
took 234 s sequentially with torch 1.13), so roughly 3-4 min per contestant at K=1 and 2-3 min at
K=2, plus ~15 s of Ray start-up each: about 20-25 min on an idle 2-core machine, 2-3x that on a
busy one.
"""
import argparse
import glob
import json
import math
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import time
import types

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def _peers_common():
    """bench/peers/common.py (shown, session cleanup, ray_init), imported as `peers_common`: the
    baseline's own helper module is also called `common` and must stay `common` for it."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("peers_common", os.path.join(HERE, "common.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


common = _peers_common()

BASELINE = os.environ.get("TUNE_FASHION_BASELINE", "/work/shared/baselines/fashion")
CONTESTANTS = ("tune", "optuna", "ray")
TARGET = 2.0  # tune reaches the threshold in <= half the time of each peer


def load_baseline(data, epochs):
    """Imports fashion_optuna.py (main() is not run) with its data folder and epoch cap set."""
    sys.path.insert(0, BASELINE)
    import common
    common.DATA = data
    import fashion_optuna
    fashion_optuna.MAX_EPOCHS = epochs
    return fashion_optuna


def run_baseline_trial(fo, trial, seed, out):
    """The baseline's own objective on one trial: fashion_optuna.main() (its data load, model,
    training loop, validation, seeding 10000 * seed + trial.number) with its study replaced by one
    whose optimize() hands `trial` to the objective. `trial` is anything with Optuna's trial API
    (suggest_int/float/categorical, report, should_prune, number, params). Returns the objective's
    value; optuna.TrialPruned propagates."""
    import optuna
    value = []

    class OneTrialStudy:
        def optimize(self, func, **kw):
            value.append(func(trial))

        @property
        def trials(self):  # what main() cross-checks after optimize()
            return [types.SimpleNamespace(state=types.SimpleNamespace(name="COMPLETE"), value=value[0])]
        best_value = property(lambda self: value[0])
        best_trial = property(lambda self: types.SimpleNamespace(number=trial.number))
        best_params = property(lambda self: dict(trial.params))

    real_create = optuna.create_study
    optuna.create_study = lambda **kw: OneTrialStudy()
    sys.argv = [fo.__file__, "--seed", str(seed), "--trials", "1", "--env", "tuned", "--out", out, "--no-rule40-30"]
    try:
        fo.main()
    finally:
        optuna.create_study = real_create
    return value[0]


def race_env(data):
    """The baseline's --env tuned environment (malloc thresholds; thread variables unset), which it
    re-executes itself into otherwise; every contestant runs in it."""
    import importlib.util  # the baseline's module, without putting its folder on this process's path
    spec = importlib.util.spec_from_file_location("fashion_optuna", os.path.join(BASELINE, "fashion_optuna.py"))
    fashion_optuna = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fashion_optuna)
    env = fashion_optuna.wanted_env("tuned")
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    return env


# ---------------------------------------------------------------- Optuna (a process of this file)

def optuna_worker(a):
    """K = 1: the baseline script itself (main()), data folder and epoch cap set."""
    load_baseline(a.data, a.epochs).ensure_env("tuned")  # re-executes this worker if the env differs
    if a.concurrency > 1:
        return optuna_parallel(a)
    fo = load_baseline(a.data, a.epochs)
    sys.argv = [fo.__file__, "--seed", str(a.seed), "--trials", str(a.trials), "--env", "tuned",
                "--out", a.out, "--no-rule40-30"]
    # Wall clock of the baseline's T_PROC0 (its t=0 is T_PROC0 + setup_s).
    anchor = time.time() - time.perf_counter() + fo.T_PROC0
    fo.main()
    with open(a.out) as f:
        d = json.load(f)
    t0 = anchor + d["meta"]["setup_s"]
    trials = [{"state": t["state"], "epochs": [[t0 + e["t_end"], e["acc"]] for e in t["epochs"]]}
              for t in d["trials"]]
    with open(a.out + ".race", "w") as f:
        json.dump({"t_search_unix": t0, "trials": trials}, f)


def optuna_study(a, seed):
    import optuna
    from optuna.storages.journal import JournalFileBackend
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.storages.JournalStorage(JournalFileBackend(os.path.join(a.work, "optuna_journal.log")))
    return optuna.create_study(
        study_name="race", storage=storage, direction="maximize", load_if_exists=True,
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3))


def optuna_parallel(a):
    """K > 1: Optuna's multi-process parallelism, K processes sharing a JournalStorage (the baseline
    keeps its records in one process and is sequential: with n_jobs threads its summary fails)."""
    optuna_study(a, a.seed)
    t0 = time.time()
    procs = []
    for i in range(a.concurrency):
        n = a.trials // a.concurrency + (i < a.trials % a.concurrency)
        procs.append(subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--optuna-process", str(i), "--trials", str(n),
             "--epochs", str(a.epochs), "--seed", str(a.seed), "--data", a.data, "--work", a.work,
             "--out", f"{a.out}.{i}", "--concurrency", str(a.concurrency)]))
    rcs = [p.wait() for p in procs]
    if any(rcs):
        sys.exit(f"optuna processes exited {rcs}")
    trials = []
    for i in range(a.concurrency):
        with open(f"{a.out}.{i}") as f:
            trials += json.load(f)
    with open(a.out + ".race", "w") as f:
        json.dump({"t_search_unix": t0, "trials": trials}, f)


def optuna_process(a):
    """One of K processes: study.optimize(objective, n_trials) where each trial runs the baseline's
    own objective (fashion_optuna.main() for one trial, on the shared study's trial: its suggestions,
    reports and SuccessiveHalving pruning). TPESampler seeds differ per process (seed * 1000 + i);
    with one seed every process would draw the same random start-up configurations."""
    import optuna
    with open(a.out, "w") as f:
        json.dump([], f)
    fo = load_baseline(a.data, a.epochs)
    study = optuna_study(a, a.seed * 1000 + a.optuna_process)
    done = []

    class Recorder:  # the shared study's trial, each report time-stamped
        def __init__(self, trial):
            self._trial, self.epochs = trial, []

        def __getattr__(self, name):
            return getattr(self._trial, name)

        def report(self, value, step):
            self.epochs.append([time.time(), value])
            self._trial.report(value, step)

    def objective(trial):
        rec = Recorder(trial)
        state = "PRUNED"
        try:
            value = run_baseline_trial(fo, rec, a.seed, os.path.join(a.work, "optuna_trials", f"trial_{trial.number}.json"))
            state = "COMPLETE"
            return value
        finally:
            done.append({"state": state, "epochs": rec.epochs})
            with open(a.out, "w") as f:
                json.dump(done, f)

    os.makedirs(os.path.join(a.work, "optuna_trials"), exist_ok=True)
    study.optimize(objective, n_trials=a.trials)


def read_optuna(out, launch):
    with open(out + ".race") as f:
        d = json.load(f)
    events = [(t - launch, acc) for tr in d["trials"] for t, acc in tr["epochs"]]
    return {"events": sorted(events), "trials": len(d["trials"]),
            "epochs": sum(len(t["epochs"]) for t in d["trials"]), "search_start": d["t_search_unix"] - launch,
            "states": {s: sum(t["state"] == s for t in d["trials"]) for s in ("COMPLETE", "PRUNED")}}


# ---------------------------------------------------------------- Ray Tune (a process of this file)

def ray_space(trial):
    """The baseline's suggestions, in its order (fashion_optuna.py's objective)."""
    trial.suggest_int("hidden", 32, 512, log=True)
    trial.suggest_int("layers", 1, 3)
    trial.suggest_float("dropout", 0.0, 0.5)
    trial.suggest_float("lr", 1e-4, 3e-2, log=True)
    trial.suggest_categorical("batch_size", [64, 128, 256])
    trial.suggest_float("weight_decay", 1e-6, 1e-2, log=True)
    return {"number": trial.number}  # seeds the trial like the baseline (10000 * seed + number)


def ray_trainable(config, race):
    """One trial = the baseline's objective on Ray's config (run_baseline_trial), each epoch's
    accuracy reported to Ray; Ray's ASHA stops it (should_prune stays False)."""
    from ray import tune
    fo = load_baseline(race["data"], race["epochs"])
    fo.ensure_env = lambda name: None  # Ray sets OMP_NUM_THREADS=1 in its workers; the rest is inherited
    params = {k: config[k] for k in ("hidden", "layers", "dropout", "lr", "batch_size", "weight_decay")}

    class RayTrial:  # Optuna's trial API over Ray's config
        number = config["number"]

        def __init__(self):
            self.params = dict(params)

        def _suggest(self, name, *args, **kw):
            return params[name]
        suggest_int = suggest_float = suggest_categorical = _suggest

        def report(self, value, step):
            tune.report({"val_acc": value, "epoch": step, "t_unix": time.time()})

        def should_prune(self):
            return False

    run_baseline_trial(fo, RayTrial(), race["seed"],
                       os.path.join(race["work"], "ray_trials", f"trial_{config['number']}.json"))


def ray_worker(a):
    import optuna
    import ray
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch
    load_baseline(a.data, a.epochs).ensure_env("tuned")  # Ray's processes inherit this environment
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    os.makedirs(os.path.join(a.work, "ray_trials"), exist_ok=True)
    common.ray_init(a.work, num_cpus=a.concurrency)
    try:
        t_fit = time.time()
        tuner = tune.Tuner(
            tune.with_resources(tune.with_parameters(ray_trainable, race={
                "data": a.data, "epochs": a.epochs, "seed": a.seed, "work": a.work}), {"cpu": 1}),
            tune_config=tune.TuneConfig(
                num_samples=a.trials, max_concurrent_trials=a.concurrency,
                # A define-by-run space takes metric and mode on the searcher (not TuneConfig).
                search_alg=OptunaSearch(space=ray_space, metric="val_acc", mode="max",
                                        sampler=optuna.samplers.TPESampler(seed=a.seed)),
                scheduler=ASHAScheduler(time_attr="training_iteration", metric="val_acc", mode="max",
                                        max_t=a.epochs, grace_period=1, reduction_factor=3)),
            run_config=tune.RunConfig(name="race", storage_path=os.path.join(a.work, "ray_results"),
                                      verbose=0))
        grid = tuner.fit()
        trials = []
        for r in grid:
            df = r.metrics_dataframe
            rows = [] if df is None or "val_acc" not in df else list(zip(df["t_unix"], df["val_acc"]))
            trials.append({"error": str(r.error) if r.error else None, "epochs": rows})
        with open(a.out, "w") as f:
            json.dump({"t_fit_unix": t_fit, "t_end_unix": time.time(), "trials": trials}, f)
    finally:
        ray.shutdown()


def read_ray(out, launch):
    with open(out) as f:
        d = json.load(f)
    events = [(t - launch, acc) for tr in d["trials"] for t, acc in tr["epochs"]]
    errors = [tr["error"] for tr in d["trials"] if tr["error"]]
    return {"events": sorted(events), "trials": len(d["trials"]), "errors": errors,
            "epochs": sum(len(tr["epochs"]) for tr in d["trials"]), "search_start": d["t_fit_unix"] - launch}


# ---------------------------------------------------------------- tune

def merge(base, extra):
    """`extra` merged into `base` object by object (a spec variant: --tune-override)."""
    out = dict(base)
    for key, value in extra.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def tune_spec(s, k, data, seed):
    return merge(_tune_spec(s, k, data, seed), s.get("tune_override") or {})


def _tune_spec(s, k, data, seed):
    return {
        "name": f"race_c{k}", "metric": "val_acc", "mode": "max",
        "num_samples": s["trials"], "max_concurrent": k,
        "resources_per_trial": {"cpu": 1},
        "search": {"algorithm": "tpe", "seed": seed},
        "scheduler": {"type": "asha", "time_attr": "epoch", "max_t": s["epochs"],
                      "grace_period": 1, "reduction_factor": 3, "brackets": 1},
        "reporter": {"parameter_columns": ["lr", "hidden", "layers", "dropout", "batch_size"],
                     "metric_columns": ["val_acc", "val_loss", "samples_per_s"]},
        "trainer": {"dataset": "fashion_mnist", "data_dir": data, "model": {"type": "mlp", "activation": "relu"},
                    "optimizer": {"type": "adam"}, "lr_schedule": {"type": "none"},
                    "max_epochs": s["epochs"], "threads": 1, "precision": "32", "keep_checkpoints": 1},
        "space": {
            "hidden": {"lograndint": [32, 513]},
            "layers": {"randint": [1, 4]},
            "dropout": {"uniform": [0.0, 0.5]},
            "lr": {"loguniform": [1e-4, 3e-2]},
            "batch_size": {"choice": [64, 128, 256]},
            "weight_decay": {"loguniform": [1e-6, 1e-2]},
        },
    }


def read_tune(storage, name, launch):
    events = []
    trials = len(glob.glob(os.path.join(storage, name, "*", "params.json")))  # every trial launched
    for path in glob.glob(os.path.join(storage, name, "*", "result.json")):
        with open(path) as f:
            for line in f:
                r = json.loads(line)
                if "val_acc" in r:
                    events.append((r["timestamp"] - launch, r["val_acc"]))
    errors = glob.glob(os.path.join(storage, name, "*", "error.txt"))
    return {"events": sorted(events), "trials": trials, "epochs": len(events), "search_start": None,
            "errors": errors}


# ---------------------------------------------------------------- the race

def settings(ctx):
    get = lambda name, default: default if getattr(ctx, name, None) is None else getattr(ctx, name)  # noqa: E731
    q = ctx.quick
    return dict(trials=int(get("trials", 8 if q else 40)), epochs=int(get("epochs", 3 if q else 10)),
                threshold=float(get("threshold", 0.85 if q else 0.88)),
                concurrency=[int(c) for c in str(get("concurrency", "2" if q else "1,2")).split(",")],
                contestants=str(get("contestants", ",".join(CONTESTANTS))).split(","),
                seed=int(get("seed", 0)),
                seeds=[int(x) for x in str(get("seeds", get("seed", 0))).split(",")],
                tune_override=json.loads(get("tune_override", "{}")))


def run_process(ctx, cmd, env, log_path, timeout):
    """Runs one contestant in its own session with exactly `env` (common.run_in_session adds
    os.environ, which may hold thread variables the baseline's environment unsets); whatever it
    leaves in the session is killed by pid (common.kill_session). Returns (launch, end) unix times."""
    ctx.log("$ " + common.shown(cmd, ctx.root))
    launch = time.time()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, env=env, cwd=ctx.root, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            rc = proc.wait(timeout=timeout)
        finally:
            end = time.time()
            left = common.session_pids(proc.pid)  # e.g. Ray's raylet and workers: killed by pid
            if left:
                ctx.log(f"race: ending {len(left)} process(es) left in session {proc.pid}")
                common.kill_session(proc.pid)
            proc.wait()
    if rc != 0:
        with open(log_path) as f:
            tail = f.read()[-3000:]
        raise RuntimeError(f"{cmd[0]} ... exited {rc}; end of {log_path}:\n{tail}")
    return launch, end


def contestant(ctx, who, k, s, env, data):
    work = os.path.join(ctx.work, "race", f"{who}_c{k}_s{s['seed']}")  # ctx.work is shared with the other parts
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    log = os.path.join(work, "log.txt")
    timeout = 3600 * 3
    if who == "tune":
        spec_path = os.path.join(work, "spec.json")
        with open(spec_path, "w") as f:
            json.dump(tune_spec(s, k, data, s["seed"]), f, indent=1)
        cmd = [os.path.join(ctx.bin_dir, "tune"), "run", spec_path, "--storage", os.path.join(work, "results")]
        launch, end = run_process(ctx, cmd, env, log, timeout)
        res = read_tune(os.path.join(work, "results"), f"race_c{k}", launch)
    else:
        out = os.path.join(work, f"{who}.json")
        cmd = [ctx.python, os.path.abspath(__file__), f"--{who}-worker", "--concurrency", str(k),
               "--trials", str(s["trials"]), "--epochs", str(s["epochs"]), "--seed", str(s["seed"]),
               "--data", data, "--work", work, "--out", out]
        launch, end = run_process(ctx, cmd, env, log, timeout)
        res = (read_optuna if who == "optuna" else read_ray)(out, launch)
    res["wall"] = end - launch
    res["log"] = log
    res.update(who=who, k=k, seed=s["seed"], launch=launch)
    with open(os.path.join(work, "result.json"), "w") as f:  # for --combine
        json.dump(res, f)
    return res


def saved_result(dirs, who, k, seed):
    """The result.json a contestant() of (who, K, seed) saved under one of `dirs` (searched
    recursively; a later directory wins, so a rerun listed last replaces a run), or None."""
    found = None
    for d in dirs:
        paths = sorted(glob.glob(os.path.join(d, "**", f"{who}_c{k}_s{seed}", "result.json"), recursive=True))
        if paths:
            found = paths[-1]
    if found is None:
        return None
    with open(found) as f:
        res = json.load(f)
    res["events"] = [tuple(e) for e in res["events"]]
    res["log"] = found
    return res


def first_reach(events, thr):
    best = -1.0
    for t, v in events:
        best = max(best, v)
        if best >= thr:
            return t
    return None


def best_at(events, t):
    vals = [v for tt, v in events if tt <= t + 1e-6]
    return max(vals) if vals else None


def reproduce(ctx, s, who, k):
    rel_bin = os.path.relpath(ctx.bin_dir, ctx.root)
    return (f".venv/bin/python bench/peers/race.py --bin {shlex.quote(rel_bin)} --contestants {who} "
            f"--concurrency {k} --trials {s['trials']} --epochs {s['epochs']} --threshold {s['threshold']} "
            f"--seed {s['seed']}"
            + (f" --tune-override {shlex.quote(json.dumps(s['tune_override']))}" if who == "tune" and s.get("tune_override") else ""))


def ratio_cell(x):
    if x is None:
        return "n/a"
    if x == 0:
        return "0 (tune never reached it) NOT met"
    if math.isinf(x):
        return "inf (the peer never reached it) met"
    return f"{x:.2f}x {'met' if x >= TARGET else 'NOT met'}"


def compare_with_tune(res, threshold):
    """Per contestant of one seed: its time to the threshold and final best, and for a peer, tune's
    time to that final best, with the target's ratios (peer's time / tune's: >= 2 meets it)."""
    tune = res.get("tune")
    for who, r in res.items():
        r["reach"] = first_reach(r["events"], threshold)
        r["final"] = max((v for _, v in r["events"]), default=None)
    for who, r in res.items():
        r["reach_ratio"] = r["tune_to_final"] = r["final_ratio"] = None
        if who == "tune" or tune is None:
            continue
        # A seed counts in the medians either way: a time tune never reached is a ratio of 0 (the
        # target missed), a threshold the peer never reached one of infinity.
        if tune["reach"] is None:
            r["reach_ratio"] = 0.0
        elif r["reach"] is None:
            r["reach_ratio"] = math.inf
        else:
            r["reach_ratio"] = r["reach"] / tune["reach"]
        if r["final"] is not None:
            r["tune_to_final"] = first_reach(tune["events"], r["final"])
            r["final_ratio"] = r["wall"] / r["tune_to_final"] if r["tune_to_final"] else 0.0


def median_or_none(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def run(ctx):
    s = settings(ctx)
    data = os.path.join(ctx.root, "data")
    common.need_fashion_and_bins(ctx, "race", ("tune", "tune-trainer") if "tune" in s["contestants"] else ())
    env = race_env(data)
    t_start = time.time()
    seeds = s["seeds"]
    out = ["## End-to-end race: tune vs Optuna vs Ray Tune (Fashion-MNIST MLP)", ""]
    out.append(f"{s['trials']} trials, <= {s['epochs']} epochs each, the baseline's space, TPE (seed "
               f"{', '.join(map(str, seeds))}) + "
               f"successive halving (grace 1, reduction 3, max {s['epochs']}), 1 thread per trial, threshold "
               f"val_acc >= {s['threshold']}. Times in seconds from each contestant's launch; `best@fastest`/"
               f"`best@slowest`: best val_acc when the first/last contestant of that concurrency finished. "
               f"Targets (issue 18): tune reaches the threshold in <= 1/{TARGET:g} of each peer's time, and each "
               f"peer's final best val_acc in <= 1/{TARGET:g} of that peer's total wall time (`tune to this final "
               f"best`, and the peer's wall / it); with several seeds, the median rows take the median of each "
               f"column (of the per-seed ratios for the ratios). Contestants run one after another (tune, Optuna, "
               f"Ray) in the baseline's `--env tuned` environment; bench/peers/race.py's docstring describes each "
               f"setup." + (" **Quick mode: a smoke test, not a measurement.**" if ctx.quick else ""))
    out.append("")
    header = ["K", "seed", "contestant", "time to threshold", "peer/tune (target >= 2x)", "final best",
              "tune to this final best", "peer wall / that (target >= 2x)", "best@fastest", "best@slowest",
              "total wall", "setup before search", "trials", "epochs", "reproduce"]
    out.append("| " + " | ".join(header) + " |")
    out.append("|" + "---|" * len(header))
    notes = []
    fmt = lambda v, f="{:.1f}": "-" if v is None else f.format(v)  # noqa: E731
    for k in s["concurrency"]:
        by_seed = []
        for seed in seeds:
            ss = dict(s, seed=seed)
            res = {}
            for who in [c for c in CONTESTANTS if c in s["contestants"]]:
                ctx.log(f"race: {who}, {k} at once, seed {seed}, {s['trials']} trials x <= {s['epochs']} epochs")
                try:
                    if getattr(ctx, "combine", None):
                        saved = saved_result(ctx.combine, who, k, seed)
                        if saved is None:
                            notes.append(f"- K={k} seed {seed} {who}: no saved result under --combine")
                            continue
                        res[who] = saved
                    else:
                        res[who] = contestant(ctx, who, k, ss, env, data)
                except Exception as e:  # noqa: BLE001  (one contestant failing is reported, not fatal)
                    ctx.log(f"race: {who} failed: {e}")
                    notes.append(f"- K={k} seed {seed} {who} failed: {str(e).splitlines()[0]}")
                    continue
                r = res[who]
                ctx.log(f"race: {who} K={k} seed {seed}: wall {r['wall']:.1f} s, "
                        f"threshold at {first_reach(r['events'], s['threshold'])}, {r['trials']} trials, {r['epochs']} epochs")
                for e in r.get("errors") or []:
                    notes.append(f"- K={k} seed {seed} {who}: trial error {e}")
            if not res:
                continue
            compare_with_tune(res, s["threshold"])
            fastest = min(r["wall"] for r in res.values())
            slowest = max(r["wall"] for r in res.values())
            for who, r in res.items():
                r["best_fastest"] = best_at(r["events"], fastest)
                r["best_slowest"] = best_at(r["events"], slowest)
                peer = who != "tune" and "tune" in res
                row = [str(k), str(seed), who, fmt(r["reach"]), ratio_cell(r["reach_ratio"]) if peer else "-",
                       fmt(r["final"], "{:.4f}"), fmt(r["tune_to_final"]) if peer else "-",
                       ratio_cell(r["final_ratio"]) if peer else "-",
                       fmt(r["best_fastest"], "{:.4f}"), fmt(r["best_slowest"], "{:.4f}"),
                       fmt(r["wall"]), fmt(r.get("search_start")), str(r["trials"]), str(r["epochs"]),
                       "`" + reproduce(ctx, ss, who, k) + "`"]
                out.append("| " + " | ".join(row) + " |")
                if "states" in r:
                    notes.append(f"- K={k} seed {seed} optuna: {r['states']['COMPLETE']} complete, "
                                 f"{r['states']['PRUNED']} pruned")
            by_seed.append(res)
        if len(seeds) < 2:
            continue
        for who in [c for c in CONTESTANTS if c in s["contestants"]]:
            runs = [res[who] for res in by_seed if who in res]
            if not runs:
                continue
            med = lambda key: median_or_none([r[key] for r in runs])  # noqa: E731
            peer = who != "tune" and all("tune" in res for res in by_seed)
            missing = sum(r["final_ratio"] == 0 or r["reach_ratio"] == 0 for r in runs) if peer else 0
            row = [str(k), f"**median of {len(runs)}**", f"**{who}**", fmt(med("reach")),
                   ratio_cell(med("reach_ratio")) if peer else "-", fmt(med("final"), "{:.4f}"),
                   fmt(med("tune_to_final")) if peer else "-", ratio_cell(med("final_ratio")) if peer else "-",
                   fmt(med("best_fastest"), "{:.4f}"), fmt(med("best_slowest"), "{:.4f}"), fmt(med("wall")),
                   fmt(med("search_start")), fmt(med("trials"), "{:.0f}"), fmt(med("epochs"), "{:.0f}"),
                   f"{missing} seed(s) where tune never reached the peer's time's mark (ratio 0)" if missing else ""]
            out.append("| " + " | ".join(row) + " |")
    out.append("")
    load = os.getloadavg()
    if getattr(ctx, "combine", None):
        out.append("Combined (`--combine`) from the results saved by earlier runs under: "
                   + ", ".join(f"`{d}`" for d in ctx.combine) + "; each row's log: the result.json it came from.")
    else:
        out.append(f"Load average at the end: {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} on {os.cpu_count()} CPUs; "
                   f"the race took {time.time() - t_start:.0f} s. Logs and raw results: `{os.path.join(ctx.work, 'race')}`.")
    out.extend(notes)
    spec = tune_spec(s, s["concurrency"][0], "DATA", seeds[0])
    out += ["", f"tune's spec (K={s['concurrency'][0]}; `max_concurrent` is K, `DATA` is data/ as an absolute path), "
            "run as `build/bin/tune run spec.json --storage DIR`:", "", "```json",
            json.dumps(spec), "```",
            "Optuna: `.venv/bin/python bench/peers/race.py --optuna-worker --concurrency K --trials N --epochs E "
            "--seed 0 --data data --work DIR --out DIR/optuna.json` (runs fashion_optuna.main() with "
            f"`--seed 0 --trials N --env tuned --out ... --no-rule40-30`); Ray: the same with `--ray-worker`. "
            "Both need the baseline's tuned environment (`MALLOC_MMAP_THRESHOLD_=1073741824 "
            "MALLOC_TRIM_THRESHOLD_=4294967296`, no OMP/MKL/OPENBLAS_NUM_THREADS).", ""]
    return "\n".join(out)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--optuna-worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--ray-worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--optuna-process", type=int, help=argparse.SUPPRESS)
    p.add_argument("--data", default=os.path.join(ROOT, "data"), help=argparse.SUPPRESS)
    p.add_argument("--work", help=argparse.SUPPRESS)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--bin", default=os.path.join(ROOT, "build", "bin"))
    p.add_argument("--concurrency")
    p.add_argument("--trials", type=int)
    p.add_argument("--epochs", type=int)
    p.add_argument("--threshold", type=float)
    p.add_argument("--contestants")
    p.add_argument("--seed", type=int)
    p.add_argument("--seeds", help="several seeds (0,1,2): each contestant runs once per seed, and the table "
                   "adds median rows")
    p.add_argument("--tune-override", help="JSON merged into tune's spec, object by object (a variant: "
                   "'{\"search\": {\"intermediate\": \"budget\"}}')")
    p.add_argument("--combine", nargs="+", help="make the table from the results earlier runs saved "
                   "(race/<who>_c<K>_s<seed>/result.json under these folders; a later folder wins) "
                   "instead of running the contestants")
    p.add_argument("--out")
    a = p.parse_args()
    if a.optuna_worker or a.ray_worker or a.optuna_process is not None:
        a.concurrency = int(a.concurrency)
        a.seed = a.seed or 0
        if a.optuna_process is not None:
            return optuna_process(a)
        return optuna_worker(a) if a.optuna_worker else ray_worker(a)
    common.run_alone(run, a, "peers-race-", concurrency=a.concurrency, trials=a.trials, epochs=a.epochs,
                     threshold=a.threshold, contestants=a.contestants, seed=a.seed,
                     seeds=a.seeds, tune_override=a.tune_override, combine=a.combine)

if __name__ == "__main__":
    main()
