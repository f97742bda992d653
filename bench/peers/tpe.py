"""TPE, tune vs Optuna: search quality and time per suggestion.

Quality: median regret (best value - known minimum) after 100 sequential trials, over seeds
0..S-1 (100 in the full run: at 20 the medians of two samplers that are equal in distribution
differ by up to 2x on hartmann6 and mixed, whose regrets are spread wide or bimodal), and a
one-sided Mann-Whitney test of "tune's regrets are higher" per function, on the five functions of /work/shared/baselines/optuna/bench_quality.py (branin,
hartmann6, rosenbrock4, ackley5, mixed). tune: build/bin/tune-bench-tpe (`tune` mode, the
default TPE search object); Optuna: the same script's objectives (imported, not copied) and its
samplers, TPESampler(seed) and TPESampler(seed, multivariate=True), run here in-process with
the installed Optuna.

Speed: time per suggestion, mean over the 50 trials ending at N, on the 6-parameter space of
/work/shared/baselines/optuna/bench_sampler_speed.py. tune: `tune-bench-tpe speed`
(Searcher::Suggest, wall and thread CPU); Optuna: that script's ask + 6 suggest_* + tell (its
unit of work), wall and thread CPU.

One run of one side: python bench/peers/tpe.py --side tune|optuna --what regret|speed ...;
prints RESULT {...}.
"""
import math
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

BASELINES = os.environ.get("TUNE_OPTUNA_BASELINES", "/work/shared/baselines/optuna")
FUNCTIONS = ["branin", "hartmann6", "rosenbrock4", "ackley5", "mixed"]
# Optuna 5.0's TPESampler() is multivariate for single-objective studies (multivariate=None ->
# True), so "tpe" and "tpe_mv" are the same sampler there; "tpe_indep" is the independent
# (univariate) TPE, the default before 5.0.
SAMPLERS = {"tpe": "Optuna TPESampler()", "tpe_mv": "Optuna TPESampler(multivariate=True)",
            "tpe_indep": "Optuna TPESampler(multivariate=False)"}
TRIALS = 100
WINDOW = 50
NUM = r"-?(?:[0-9.]+(?:e[-+]?[0-9]+)?|inf|nan)"  # a number as tune-bench-tpe prints it (%g)


def sizes(quick):
    """(seeds, speed checkpoints, speed repetitions per side, Optuna samplers for regret, for
    speed). --quick leaves out multivariate=True (the same sampler as the default in Optuna 5.0)
    and times only the default (the independent TPE takes minutes to reach 1000 trials here)."""
    if quick:
        return 3, [100, 1000], 1, ["tpe", "tpe_indep"], ["tpe"]
    return 100, [100, 1000, 2000], 3, ["tpe", "tpe_mv", "tpe_indep"], ["tpe", "tpe_mv", "tpe_indep"]


def make_sampler(module, name, seed):
    """The shared baseline's samplers (tpe, tpe_mv), plus the independent TPE."""
    if name == "tpe_indep":
        import optuna
        return optuna.samplers.TPESampler(seed=seed, multivariate=False)
    return module.make_sampler(name, seed)


def run(ctx):
    seeds, checkpoints, reps, samplers, speed_samplers = sizes(ctx.quick)
    sides = [("tune", "tpe")] + [("optuna", s) for s in samplers]
    last = checkpoints[-1]
    here = os.path.join(common.HERE, "tpe.py")
    bin_args = ["--bin", ctx.bin_dir]
    # Quality: deterministic per seed on both sides, so one run each.
    quality = []
    for side, sampler in sides:
        cmd = [ctx.python, here, "--side", side, "--what", "regret", "--seeds", str(seeds),
               "--trials", str(TRIALS)] + (bin_args if side == "tune" else ["--sampler", sampler])
        r = common.measure(ctx, cmd)
        ctx.log(f"  tpe regret {side} {sampler}: {r['median']}")
        quality.append((side, sampler, r, common.shown(cmd, ctx.root)))
    speed = []
    for rep, (side, sampler) in common.interleave(
            reps, [("tune", "tpe")] + [("optuna", s) for s in speed_samplers]):
        cmd = [ctx.python, here, "--side", side, "--what", "speed", "--last", str(last)] + (
            bin_args if side == "tune" else ["--sampler", sampler])
        r = common.measure(ctx, cmd)
        ctx.log(f"  tpe speed {side} {sampler} rep {rep}: {r['wall_ms']}")
        speed.append((rep, side, sampler, r, common.shown(cmd, ctx.root)))

    name = {("tune", "tpe"): "tune TPE (default)"}
    name.update({("optuna", s): SAMPLERS[s] for s in samplers})
    out = ["Optuna 5.0's `TPESampler()` is multivariate for single-objective studies "
           "(`multivariate=None` -> True), so the default and `multivariate=True` are one sampler; "
           "`multivariate=False` (independent TPE, the default before 5.0) is run as well"
           + (" (--quick: `multivariate=True` not run separately, and only the default timed)."
              if ctx.quick else "."), "",
           f"**Quality**: median regret after {TRIALS} sequential trials over seeds 0..{seeds - 1} "
           "[interquartile range] (mean log10 regret), on shared/baselines/optuna/bench_quality.py's "
           "functions.", ""] + regret_table(quality, name)
    ours = quality[0][2]["median"]
    verdicts = []
    for side, sampler, r, _ in quality[1:]:
        wins = [f for f in FUNCTIONS if ours[f] <= r["median"][f]]
        lost = [f for f in FUNCTIONS if f not in wins]
        verdicts.append(f"vs {name[side, sampler]}: tune's median <= on {len(wins)}/{len(FUNCTIONS)}"
                        + (f" (higher on {', '.join(lost)})" if lost else ""))
    all_met = all(ours[f] <= r["median"][f] for _, _, r, _ in quality[1:] for f in FUNCTIONS)
    out += ["", "; ".join(verdicts) + f". Target (<= Optuna's on every function): "
            f"{'met' if all_met else 'NOT met'}" + (f" (only {seeds} seeds: --quick)" if ctx.quick else "")
            + ".", ""] + significance(quality, name)

    out += [f"**Speed**: ms per suggestion, mean over the {WINDOW} trials ending at N: wall mean "
            "(wall median) / thread CPU mean. tune: Suggest() only; Optuna: ask + 6 suggest_* + "
            "tell. Repetitions interleaved (tune, then each Optuna sampler, again ...).", "",
            "| rep | sampler | " + " | ".join(str(c) for c in checkpoints) + " | command |",
            "|---|---|" + "---|" * len(checkpoints) + "---|"]
    for rep, side, sampler, r, cmd in speed:
        cells = [f"{r['wall_ms'][str(c)]:.3f} ({r['wall_median_ms'][str(c)]:.3f}) / "
                 f"{r['cpu_ms'][str(c)]:.3f}" for c in checkpoints]
        out.append(f"| {rep} | {name[side, sampler]} | " + " | ".join(cells) + f" | `{cmd}` |")

    def med(side, sampler, key):
        return common.median([r[key][str(last)] for _, s, sm, r, _ in speed
                              if (s, sm) == (side, sampler)])
    lines = []
    for sampler in speed_samplers:
        wall = med("optuna", sampler, "wall_ms") / med("tune", "tpe", "wall_ms")
        cpu = med("optuna", sampler, "cpu_ms") / med("tune", "tpe", "cpu_ms")
        lines.append(f"{SAMPLERS[sampler]} / tune at {last} trials: **{common.fmt(wall)}x** wall, "
                     f"{common.fmt(cpu)}x CPU")
        if sampler == "tpe":
            target = wall >= 100
    if last == 2000:
        verdict = f"Target (>= 100x at 2000 trials, wall, vs the default sampler): " \
                  f"{'met' if target else 'NOT met'}."
    else:
        verdict = f"Target (>= 100x at 2000 trials): not measured (--quick stops at {last})."
    out += ["", "; ".join(lines) + ". " + verdict, ""]
    return "\n".join(out)


def regret_table(quality, name):
    """The Markdown table of (side, sampler, result, command) rows, `name[side, sampler]` naming
    each row (bench/peers/search.py uses it too)."""
    out = ["| sampler | " + " | ".join(FUNCTIONS) + " | wall s | command |",
           "|---|" + "---|" * len(FUNCTIONS) + "---|---|"]
    for side, sampler, r, cmd in quality:
        cells = [f"{common.fmt(r['median'][f], 4)} [{common.fmt(r['q1'][f])}-{common.fmt(r['q3'][f])}] "
                 f"({r['mean_log10'][f]:.2f})" for f in FUNCTIONS]
        out.append(f"| {name[side, sampler]} | " + " | ".join(cells) +
                   f" | {r['wall_s']:.1f} | `{cmd}` |")
    return out


def significance(quality, name):
    """One line per Optuna sampler: the one-sided Mann-Whitney p of "tune's regrets are higher"
    per function over the per-seed regrets, and which functions are worse at p < 0.05."""
    from scipy.stats import mannwhitneyu
    ours = quality[0][2]["regrets"]
    lines = []
    for side, sampler, r, _ in quality[1:]:
        p = {f: mannwhitneyu(ours[f], r["regrets"][f], alternative="greater").pvalue
             for f in FUNCTIONS}
        worse = [f for f in FUNCTIONS if p[f] < 0.05]
        lines.append(f"vs {name[side, sampler]}: p (tune worse) " +
                     ", ".join(f"{f} {p[f]:.2f}" for f in FUNCTIONS) +
                     f"; significantly worse (p < 0.05) on {', '.join(worse) if worse else 'none'}")
    return ["Per-seed test (one-sided Mann-Whitney U over the seeds): " + "; ".join(lines) + ".", ""]


def quantile(values, q):
    values = sorted(values)
    pos = q * (len(values) - 1)
    lo = int(math.floor(pos))
    hi = min(lo + 1, len(values) - 1)
    return values[lo] + (pos - lo) * (values[hi] - values[lo])


def summarise(regrets, wall):
    return {"median": {f: quantile(v, 0.5) for f, v in regrets.items()},
            "q1": {f: quantile(v, 0.25) for f, v in regrets.items()},
            "q3": {f: quantile(v, 0.75) for f, v in regrets.items()},
            "mean_log10": {f: sum(math.log10(max(x, 1e-12)) for x in v) / len(v)
                           for f, v in regrets.items()},
            "seeds": len(next(iter(regrets.values()))), "wall_s": wall, "regrets": regrets}


def tune_regret(args, search='{"algorithm": "tpe"}'):
    # tune-bench-tpe tune FIRST_SEED SEEDS TRIALS SEARCH: one table row, a cell per function
    # "median (mean log10) [q1-q3]". bench/peers/search.py passes other search objects.
    cmd = [os.path.join(args.bin, "tune-bench-tpe"), "tune", "0", str(args.seeds), str(args.trials),
           search]
    begin = time.monotonic()
    done = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env=dict(os.environ, TUNE_REGRETS="1"))  # per seed, on stderr
    text = done.stdout
    wall = time.monotonic() - begin
    header = next(line for line in text.splitlines() if line.startswith("| variant |"))
    row = next(line for line in text.splitlines() if line.startswith("| `"))
    names = [c.strip() for c in header.strip("|").split("|")][1:]
    cells = [c.strip() for c in row.strip("|").split("|")][1:]
    assert names == FUNCTIONS, names
    out = {"median": {}, "q1": {}, "q3": {}, "mean_log10": {}, "seeds": args.seeds, "wall_s": wall,
           "regrets": {f: [] for f in names}}
    for line in done.stderr.splitlines():
        if line.startswith("REGRET "):  # REGRET function seed value
            _, f, _, value = line.split()
            out["regrets"][f].append(float(value))
    for f, cell in zip(names, cells):
        m = re.fullmatch(rf"({NUM}) \(({NUM})\) \[({NUM})-({NUM})\]", cell)
        out["median"][f], out["mean_log10"][f], out["q1"][f], out["q3"][f] = map(float, m.groups())
    return out


def optuna_regret(args, make=None):
    """Optuna's median regret on FUNCTIONS over seeds 0..args.seeds-1; `make(bench_quality,
    seed)` builds the sampler (default: args.sampler of SAMPLERS). bench/peers/search.py passes
    its own."""
    sys.path.insert(0, BASELINES)
    import bench_quality as bq  # the shared objectives and samplers
    import optuna
    import warnings
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore")
    make = make or (lambda module, seed: make_sampler(module, args.sampler, seed))
    begin = time.monotonic()
    regrets = {}
    for f in FUNCTIONS:
        fn, fmin = bq.FUNCS[f]
        regrets[f] = []
        for seed in range(args.seeds):
            study = optuna.create_study(sampler=make(bq, seed))
            study.optimize(fn, n_trials=args.trials)
            regrets[f].append(study.best_value - fmin)
    out = summarise(regrets, time.monotonic() - begin)
    out["optuna"] = optuna.__version__
    return out


def tune_speed(args):
    cmd = [os.path.join(args.bin, "tune-bench-tpe"), "speed", str(args.last), "/speed/tpe/"]
    text = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout
    header = next(line for line in text.splitlines() if line.startswith("| sampler |"))
    row = next(line for line in text.splitlines() if line.startswith("| tpe |"))
    points = [c.strip() for c in header.strip("|").split("|")][1:]
    cells = [c.strip() for c in row.strip("|").split("|")][1:]
    out = {"wall_ms": {}, "wall_median_ms": {}, "cpu_ms": {}}
    for n, cell in zip(points, cells):  # "mean (median) cpu"
        m = re.fullmatch(rf"({NUM}) \(({NUM})\) ({NUM})", cell)
        out["wall_ms"][n], out["wall_median_ms"][n], out["cpu_ms"][n] = map(float, m.groups())
    return out


def optuna_speed(args):
    sys.path.insert(0, BASELINES)
    import bench_sampler_speed as bs  # the shared space/objective and samplers
    import optuna
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=make_sampler(bs, args.sampler, 0), direction="minimize")
    wall, cpu = [], []
    for _ in range(args.last):
        w0, c0 = time.perf_counter(), time.thread_time()
        trial = study.ask()
        value = bs.suggest_and_eval(trial)
        study.tell(trial, value)
        cpu.append((time.thread_time() - c0) * 1e3)
        wall.append((time.perf_counter() - w0) * 1e3)
    out = {"wall_ms": {}, "wall_median_ms": {}, "cpu_ms": {}, "optuna": optuna.__version__}
    for n in (100, 500, 1000, 2000, 5000):
        if n <= args.last:
            out["wall_ms"][str(n)] = sum(wall[n - WINDOW:n]) / WINDOW
            out["wall_median_ms"][str(n)] = quantile(wall[n - WINDOW:n], 0.5)
            out["cpu_ms"][str(n)] = sum(cpu[n - WINDOW:n]) / WINDOW
    return out


def main():
    def configure(parser):
        parser.add_argument("--sampler", choices=list(SAMPLERS), default="tpe")
        parser.add_argument("--last", type=int, default=2000, help="speed: largest trial count")
    common.regret_speed_main({("tune", "regret"): tune_regret, ("optuna", "regret"): optuna_regret,
                              ("tune", "speed"): tune_speed, ("optuna", "speed"): optuna_speed},
                             configure)


if __name__ == "__main__":
    main()
