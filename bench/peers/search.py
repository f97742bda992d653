"""CMA-ES and GP, tune vs Optuna 5.0: search quality and time per suggestion.

Quality: median regret after TRIALS sequential trials over seeds 0..S-1 on the five functions of
/work/shared/baselines/optuna/bench_quality.py, the TPE comparison's harness (bench/peers/tpe.py):
tune through `tune-bench-tpe tune` with the search object {"algorithm": "cmaes"|"gp"}; Optuna
with the same script's objectives and CmaEsSampler / GPSampler run in-process. Optuna's
CmaEsSampler is run twice: its defaults (no restarts, no margin, one random startup trial) and
with tune's settings (restart_strategy="ipop", with_margin=True).

Speed: ms per suggestion with N trials of history on the 6-parameter space of
/work/shared/baselines/optuna/bench_sampler_speed.py (one choice, one int, four floats). Both
sides make their first N trials random (n_startup_trials=N, untimed), make one untimed
model-based suggestion (the first kernel fit starts cold on both sides) and then time WINDOW
suggestions, each told before the next: tune `tune-bench-tpe speed-at` (Searcher::Suggest);
Optuna ask + 6 suggest_* + tell. Repetitions alternate between the sides.

Runs as a part of bench/peers/run.py (--parts search) or alone:
  .venv/bin/python bench/peers/search.py [--quick] [--bin build/bin] [--out FILE]
One side: python bench/peers/search.py --side tune|optuna --what regret|speed --algo cmaes|gp ...

Seed by seed, both sides on the same seeds with Optuna's results cached per (function, trials,
seed) so that an interrupted or repeated run reuses them, and a one-sided Mann-Whitney p per
function; `gp-constrained` is tune-bench-tpe's `constrained` problem (x^2 + y^2 on [-2, 2]^2,
x + y >= 1) against GPSampler(constraints_func=...), the best feasible value per seed:
  .venv/bin/python bench/peers/search.py --compare cmaes|gp|gp-constrained|tpe --seeds 10
    --trials 100 --bin build/bin --cache FILE [--optuna-only] [--cached-only]
"""
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import tpe  # noqa: E402  (the TPE comparison: its regret parsing and summaries)

BASELINES = tpe.BASELINES
FUNCTIONS = tpe.FUNCTIONS
TRIALS = {"cmaes": 100, "gp": 100}
WINDOW = 10
SAMPLERS = {"cmaes": "Optuna CmaEsSampler()",
            "cmaes_tuned": "Optuna CmaEsSampler(restart_strategy='ipop', with_margin=True)",
            "gp": "Optuna GPSampler()"}
OURS = {"cmaes": "tune cmaes", "gp": "tune gp"}
PEERS = {"cmaes": ["cmaes", "cmaes_tuned"], "gp": ["gp"]}


def sizes(quick, algo):
    """(seeds, speed points, speed repetitions). --quick runs Optuna's GPSampler on one seed: at
    ~33 s a seed (five functions, 100 trials) three would take the smoke check past 5 minutes."""
    if quick:
        return (1 if algo == "gp" else 3), [100, 300], 1
    return 20, [100, 300, 1000], 2


def make_sampler(name, seed, n_startup=None):
    import optuna
    extra = {} if n_startup is None else {"n_startup_trials": n_startup}
    if name == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed, **extra)
    if name == "cmaes_tuned":
        return optuna.samplers.CmaEsSampler(seed=seed, restart_strategy="ipop", with_margin=True,
                                            **extra)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed, **extra)
    if name == "tpe":  # Optuna 5.0's default (multivariate for one objective)
        return optuna.samplers.TPESampler(seed=seed, **extra)
    raise ValueError(name)


def run(ctx):
    here = os.path.join(common.HERE, "search.py")
    bin_args = ["--bin", ctx.bin_dir]
    out = []
    for algo in ("cmaes", "gp"):
        seeds, points, reps = sizes(ctx.quick, algo)
        trials = TRIALS[algo]
        sides = [("tune", algo)] + [("optuna", s) for s in PEERS[algo]]
        quality = []
        for side, sampler in sides:
            cmd = [ctx.python, here, "--side", side, "--what", "regret", "--algo", algo,
                   "--seeds", str(seeds), "--trials", str(trials)] + (
                bin_args if side == "tune" else ["--sampler", sampler])
            r = common.measure(ctx, cmd, timeout_s=6 * 3600)
            ctx.log(f"  {algo} regret {side} {sampler}: {r['median']}")
            quality.append((side, sampler, r, common.shown(cmd, ctx.root)))
        speed = []
        for rep, (side, sampler) in common.interleave(reps, [("tune", algo), ("optuna", algo)]):
            cmd = [ctx.python, here, "--side", side, "--what", "speed", "--algo", algo,
                   "--points", ",".join(map(str, points))] + (
                bin_args if side == "tune" else ["--sampler", sampler])
            r = common.measure(ctx, cmd, timeout_s=3 * 3600)
            ctx.log(f"  {algo} speed {side} rep {rep}: {r['wall_ms']}")
            speed.append((rep, side, sampler, r, common.shown(cmd, ctx.root)))
        out += section(algo, trials, seeds, points, quality, speed, ctx.quick)
    return "\n".join(out)


def name_of(side, sampler):
    return OURS[sampler] if side == "tune" else SAMPLERS[sampler]


def section(algo, trials, seeds, points, quality, speed, quick):
    out = [f"### {algo}", "",
           f"**Quality**: median regret after {trials} sequential trials over seeds 0..{seeds - 1} "
           "[interquartile range] (mean log10 regret).", ""]
    out += tpe.regret_table(quality, {(side, sampler): name_of(side, sampler)
                                      for side, sampler, _, _ in quality})
    ours = quality[0][2]["median"]
    verdicts = []
    for side, sampler, r, _ in quality[1:]:
        lost = [f for f in FUNCTIONS if ours[f] > r["median"][f]]
        verdicts.append(f"vs {name_of(side, sampler)}: tune's median <= on "
                        f"{len(FUNCTIONS) - len(lost)}/{len(FUNCTIONS)}"
                        + (f" (higher on {', '.join(lost)})" if lost else ""))
    met = all(ours[f] <= r["median"][f] for _, _, r, _ in quality[1:] for f in FUNCTIONS)
    out += ["", "; ".join(verdicts) + f". Target (<= Optuna's on every function): "
            f"{'met' if met else 'NOT met'}" + (f" (only {seeds} seeds: --quick)" if quick else "") + ".",
            "",
            f"**Speed**: ms per suggestion with N trials of history (mean of {WINDOW}): wall / "
            "thread CPU. tune: Suggest(); Optuna: ask + 6 suggest_* + tell.", "",
            "| rep | sampler | " + " | ".join(f"N={p}" for p in points) + " | command |",
            "|---|---|" + "---|" * len(points) + "---|"]
    for rep, side, sampler, r, cmd in speed:
        cells = [f"{r['wall_ms'][str(p)]:.2f} / {r['cpu_ms'][str(p)]:.2f}" for p in points]
        out.append(f"| {rep} | {name_of(side, sampler)} | " + " | ".join(cells) + f" | `{cmd}` |")
    ratios = []
    for p in points:
        def med(side):
            return common.median([r["wall_ms"][str(p)] for _, s, _, r, _ in speed if s == side])
        ratios.append(f"N={p}: {common.fmt(med('optuna') / med('tune'))}x")
    last = points[-1]
    ratio_last = common.median([r["wall_ms"][str(last)] for _, s, _, r, _ in speed if s == "optuna"]) / \
        common.median([r["wall_ms"][str(last)] for _, s, _, r, _ in speed if s == "tune"])
    out += ["", f"Optuna / tune wall time per suggestion: {', '.join(ratios)}. Target (>= 20x at "
            f"1000 trials): " + (f"{'met' if ratio_last >= 20 else 'NOT met'}." if last == 1000
                                 else f"not measured (--quick stops at {last})."), ""]
    return out


def tune_regret(args):
    return tpe.tune_regret(args, search='{"algorithm": "%s"}' % args.algo)


def optuna_regret(args):
    return tpe.optuna_regret(args, lambda module, seed: make_sampler(args.sampler or args.algo, seed))


def tune_speed(args):
    cmd = [os.path.join(args.bin, "tune-bench-tpe"), "speed-at", '{"algorithm": "%s"}' % args.algo,
           args.points, str(WINDOW)]
    text = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout
    out = {"wall_ms": {}, "cpu_ms": {}}
    for line in text.splitlines():
        if line.startswith("SPEED "):
            _, n, wall, cpu = line.split()
            out["wall_ms"][n], out["cpu_ms"][n] = float(wall), float(cpu)
    return out


def optuna_speed(args):
    sys.path.insert(0, BASELINES)
    import bench_sampler_speed as bs
    import optuna
    import warnings
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore")
    out = {"wall_ms": {}, "cpu_ms": {}, "optuna": optuna.__version__}
    for n in map(int, args.points.split(",")):
        sampler = make_sampler(args.sampler or args.algo, 0, n_startup=n)
        study = optuna.create_study(sampler=sampler, direction="minimize")
        wall = cpu = 0.0
        for t in range(n + 1 + WINDOW):
            w0, c0 = time.perf_counter(), time.thread_time()
            trial = study.ask()
            value = bs.suggest_and_eval(trial)
            study.tell(trial, value)
            if t > n:
                cpu += (time.thread_time() - c0) * 1e3
                wall += (time.perf_counter() - w0) * 1e3
        out["wall_ms"][str(n)], out["cpu_ms"][str(n)] = wall / WINDOW, cpu / WINDOW
    return out


def compare(argv):
    """Both sides on the same seeds, per seed, with Optuna's runs cached (see the top of the
    file, "Seed by seed"): a table of medians and one-sided Mann-Whitney p."""
    import argparse
    import json
    parser = argparse.ArgumentParser()
    parser.add_argument("--compare", required=True, choices=["cmaes", "gp", "gp-constrained", "tpe"])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--bin", default=os.path.join(common.ROOT, "build", "bin"))
    parser.add_argument("--cache", required=True, help="JSON file of Optuna's per-seed results")
    parser.add_argument("--optuna-only", action="store_true", help="only fill the cache")
    parser.add_argument("--cached-only", action="store_true", help="Optuna: only what is cached")
    args = parser.parse_args(argv)
    cache = json.load(open(args.cache)) if os.path.exists(args.cache) else {}
    constrained = args.compare == "gp-constrained"
    algo = "gp" if constrained else args.compare
    functions = ["constrained"] if constrained else FUNCTIONS

    def save():
        with open(args.cache + ".tmp", "w") as f:
            json.dump(cache, f, indent=0)
        os.replace(args.cache + ".tmp", args.cache)

    def optuna_one(f, seed):
        import optuna
        import warnings
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        warnings.filterwarnings("ignore")
        if constrained:
            def objective(trial):
                x = trial.suggest_float("x", -2, 2)
                y = trial.suggest_float("y", -2, 2)
                trial.set_user_attr("c", 1 - (x + y))  # feasible when <= 0: x + y >= 1
                return x * x + y * y
            sampler = optuna.samplers.GPSampler(
                seed=seed, constraints_func=lambda t: (t.user_attrs["c"],))
            study = optuna.create_study(sampler=sampler)
            study.optimize(objective, n_trials=args.trials)
            feasible = [t.value for t in study.trials if t.user_attrs["c"] <= 0]
            return min(feasible) if feasible else float("inf")
        sys.path.insert(0, BASELINES)
        import bench_quality as bq
        fn, fmin = bq.FUNCS[f]
        study = optuna.create_study(sampler=make_sampler(algo, seed))
        study.optimize(fn, n_trials=args.trials)
        return study.best_value - fmin

    theirs = {f: [] for f in functions}
    for seed in range(args.seeds):  # seed by seed over the functions: an interrupted run is even
        for f in functions:
            key = f"{algo} {f} {args.trials} {seed}"
            if key not in cache and not args.cached_only:
                begin = time.monotonic()
                cache[key] = optuna_one(f, seed)
                save()
                print(f"optuna {key}: {cache[key]:.6g} ({time.monotonic() - begin:.0f} s)",
                      file=sys.stderr, flush=True)
            if key in cache:
                theirs[f].append(cache[key])
    if args.optuna_only:
        return
    ours = {f: [] for f in functions}
    search = '{"algorithm": "gp"}' if constrained else '{"algorithm": "%s"}' % algo
    if constrained:
        cmd = [os.path.join(args.bin, "tune-bench-tpe"), "constrained", search, "0",
               str(args.seeds), str(args.trials)]
        text = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout
        ours["constrained"] = [float(line.split()[2]) for line in text.splitlines()
                               if line.startswith("CONSTRAINED ")]
    else:  # tune-bench-tpe tune's per-seed regrets, as bench/peers/tpe.py reads them
        ours = tpe.tune_regret(args, search)["regrets"]
    if constrained:  # the excess of the best feasible value over the optimum 0.5
        ours, theirs = ({f: [v - 0.5 for v in side[f]] for f in functions} for side in (ours, theirs))
    from scipy.stats import mannwhitneyu
    what = "best feasible value - 0.5 (the optimum)" if constrained else "regret"
    out = [f"{algo}: median {what} after {args.trials} trials [IQR], tune seeds 0..{args.seeds - 1}, "
           f"Optuna's seeds as counted; p: one-sided Mann-Whitney, tune higher (worse).", "",
           "| function | tune median [IQR] | Optuna median [IQR] | Optuna seeds | p (tune worse) | "
           "tune <= Optuna |", "|---|---|---|---|---|---|"]
    met = 0
    for f in functions:
        q = {side: [tpe.quantile(v, x) for x in (0.25, 0.5, 0.75)]
             for side, v in (("tune", ours[f]), ("optuna", theirs[f])) if v}
        if "optuna" not in q:
            out.append(f"| {f} | {q['tune'][1]:.4g} | not run | 0 | | |")
            continue
        p = mannwhitneyu(ours[f], theirs[f], alternative="greater").pvalue
        ok = q["tune"][1] <= q["optuna"][1]
        met += ok
        out.append(f"| {f} | {q['tune'][1]:.4g} [{q['tune'][0]:.3g}-{q['tune'][2]:.3g}] | "
                   f"{q['optuna'][1]:.4g} [{q['optuna'][0]:.3g}-{q['optuna'][2]:.3g}] | "
                   f"{len(theirs[f])} | {p:.3f} | {'yes' if ok else '**no**'} |")
    out += ["", f"tune's median <= Optuna's on {met}/{len(functions)}."]
    print("\n".join(out))


def main():
    if "--compare" in sys.argv:
        compare(sys.argv[1:])
        return
    if "--side" not in sys.argv:
        import argparse
        parser = argparse.ArgumentParser()
        parser.add_argument("--quick", action="store_true")
        parser.add_argument("--bin", default=os.path.join(common.ROOT, "build", "bin"))
        parser.add_argument("--out", default=None)
        common.run_alone(run, parser.parse_args(), "tune_search_bench_")
        return

    def configure(parser):
        parser.add_argument("--algo", choices=["cmaes", "gp"], required=True)
        parser.add_argument("--sampler", choices=list(SAMPLERS), default=None,
                            help="Optuna's sampler (default: --algo's)")
        parser.add_argument("--points", default="100,300,1000")
    common.regret_speed_main({("tune", "regret"): tune_regret, ("optuna", "regret"): optuna_regret,
                              ("tune", "speed"): tune_speed, ("optuna", "speed"): optuna_speed},
                             configure)


if __name__ == "__main__":
    main()
