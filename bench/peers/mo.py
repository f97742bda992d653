"""Multi-objective search, tune vs Optuna 5.0: hypervolume at 100 and 300 trials, time per
suggestion.

Problems: ZDT1, ZDT2, ZDT3 (30 variables in [0, 1], 2 objectives) and DTLZ2 (12 variables, 3
objectives), all minimised, each trial told before the next is asked. tune's side is
`tune-bench-mo` (bench/mo_bench.cc) with {"algorithm": "tpe"} (MOTPE) and {"algorithm": "nsga2"};
Optuna's side runs TPESampler() and NSGAIISampler() (defaults: 10 random startup trials, a
population of 50) in-process on the same functions. Every hypervolume, both sides', is computed
here by Optuna's own optuna._hypervolume.compute_hypervolume, over the first 100 and all 300
trials, with fixed reference points: (1.1, 11) for the ZDTs (f1 <= 1, f2 <= 10 on this domain)
and (4, 4, 4) for DTLZ2 (each f <= 1 + 10 * 0.25). Time per suggestion: tune's Suggest() call;
Optuna's ask() plus the suggest_float calls (the sampling happens there), mean over the run.

One command runs both sides (tune's runs are fast; Optuna's take minutes) and prints the table:
  .venv/bin/python bench/peers/mo.py --bin build-mo/bin [--seeds 20] [--out FILE]
    [--optuna-cache FILE]   (keep Optuna's runs: a rerun redoes only tune's side)
    [--optuna-only]         (only fill the cache, seed after seed over every problem)
    [--cached-only]         (Optuna: only the runs in the cache, however many seeds)
    [--held-out A B]        (tune's MOTPE with search objects A and B on the held-out
                             problems ZDT4, ZDT6, DTLZ1, DTLZ7, paired by seed: for defaults)
    [--variant V]           (tune-bench-mo's benchmark-only TPE variants, e.g.
                             single-objective-estimator)
The "wins" columns count the seeds (of those both sides ran) where tune's hypervolume is >=
Optuna's with the same seed number (the two sides' random streams differ, so this pairs runs
arbitrarily; it says how often, not by how much), and give p of a one-sided Mann-Whitney test
of "tune's hypervolumes are lower" over all seeds of each side.

Time per suggestion with N trials of history (`--speed N`, on ZDT1): TPE with N random startup
trials on both sides (n_startup_trials=N), NSGA-II run for N trials, then the mean of the next
10 suggestions (tune: Suggest(); Optuna: ask() and the 30 suggest_float calls), one seed.
"""
import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time

PROBLEMS = {"zdt1": (30, 2), "zdt2": (30, 2), "zdt3": (30, 2), "dtlz2": (12, 3)}
REFERENCE = {"zdt1": [1.1, 11.0], "zdt2": [1.1, 11.0], "zdt3": [1.1, 11.0], "dtlz2": [4.0, 4.0, 4.0]}
ALGORITHMS = ["tpe", "nsga2"]
OPTUNA_NAME = {"tpe": "Optuna TPESampler()", "nsga2": "Optuna NSGAIISampler()"}
TUNE_NAME = {"tpe": 'tune {"algorithm": "tpe"} (MOTPE)', "nsga2": 'tune {"algorithm": "nsga2"}'}
BUDGETS = [100, 300]


def evaluate(problem, x):
    if problem.startswith("zdt"):
        g = 1 + 9 * sum(x[1:]) / (len(x) - 1)
        r = x[0] / g
        if problem == "zdt1":
            return [x[0], g * (1 - math.sqrt(r))]
        if problem == "zdt2":
            return [x[0], g * (1 - r * r)]
        return [x[0], g * (1 - math.sqrt(r) - r * math.sin(10 * math.pi * x[0]))]
    g = sum((v - 0.5) ** 2 for v in x[2:])
    a, b = x[0] * math.pi / 2, x[1] * math.pi / 2
    return [(1 + g) * math.cos(a) * math.cos(b), (1 + g) * math.cos(a) * math.sin(b),
            (1 + g) * math.sin(a)]


def optuna_run(problem, algo, seed, trials, n_startup=None):
    import optuna
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    n, m = PROBLEMS[problem]
    extra = {} if n_startup is None else {"n_startup_trials": n_startup}
    sampler = (optuna.samplers.TPESampler(seed=seed, **extra) if algo == "tpe"
               else optuna.samplers.NSGAIISampler(seed=seed))
    study = optuna.create_study(directions=["minimize"] * m, sampler=sampler)
    values, spent, tail = [], 0.0, 0.0
    for t in range(trials):
        begin = time.perf_counter()
        trial = study.ask()
        x = [trial.suggest_float(f"x{i:02d}", 0.0, 1.0) for i in range(n)]
        spent += time.perf_counter() - begin
        if t >= trials - 10:
            tail += time.perf_counter() - begin
        f = evaluate(problem, x)
        study.tell(trial, f)
        values.append(f)
    return {"seed": seed, "values": values, "suggest_ms": 1e3 * spent / trials,
            "tail_ms": 1e3 * tail / min(trials, 10)}


def speed(bin_dir, n):
    """ms per suggestion with n trials of history on ZDT1 (see the top of this file)."""
    print(f"Time per suggestion (ms) with {n} trials of history, ZDT1, mean of the next 10:\n\n"
          "| sampler | ms / suggestion |\n|---|---|")
    for algo in ALGORITHMS:
        search = {"n_startup_trials": n} if algo == "tpe" else {}
        ours = tune_runs(bin_dir, "zdt1", algo, 1, n + 10, search=search)[0]["tail_ms"]
        theirs = optuna_run("zdt1", algo, 0, n + 10, n if algo == "tpe" else None)["tail_ms"]
        print(f"| {TUNE_NAME[algo]} | {ours:.3f} |\n| {OPTUNA_NAME[algo]} | {theirs:.1f} "
              f"(Optuna / tune: {theirs / ours:.0f}x) |", flush=True)


def tune_runs(bin_dir, problem, algo, seeds, trials, variant=None, search=None, first=0):
    cmd = [os.path.join(bin_dir, "tune-bench-mo"), problem,
           json.dumps(dict({"algorithm": algo}, **(search or {}))), str(first),
           str(first + seeds - 1), str(trials)]
    if variant and algo == "tpe":
        cmd.append(variant)
    text = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def hypervolumes(problem, run, reference=None):
    """The run's hypervolume after each budget against the problem's fixed reference point (or
    `reference`), points outside it left out."""
    import numpy as np
    from optuna._hypervolume import compute_hypervolume
    ref = np.array(REFERENCE[problem] if reference is None else reference)
    out = {}
    for budget in BUDGETS:
        points = np.array(run["values"][:budget])
        inside = points[(points < ref).all(axis=1)]
        out[budget] = float(compute_hypervolume(inside, ref)) if len(inside) else 0.0
    return out


def quartiles(values):
    q = statistics.quantiles(values, n=4, method="inclusive") if len(values) > 1 else values * 3
    return q[0], statistics.median(values), q[2]


HELD_OUT = ["zdt4", "zdt6", "dtlz1", "dtlz7"]


def held_out(bin_dir, seeds, searches):
    """Two of tune's MOTPE settings on the problems the tables do not report (bench/mo_bench.cc:
    ZDT4, ZDT6, DTLZ1, DTLZ7), for choosing defaults where they are not reported on. Same seeds
    on both sides (the same random startup trials), so the test is paired (Wilcoxon); the
    reference point of a problem is 1.1 x the worst value of each objective over both settings'
    runs. Prints one line per problem and budget."""
    import numpy as np
    from scipy.stats import wilcoxon
    for problem in HELD_OUT:
        runs = [tune_runs(bin_dir, problem, "tpe", seeds, max(BUDGETS), search=s) for s in searches]
        worst = np.array([v for side in runs for r in side for v in r["values"]]).max(axis=0)
        volumes = [[hypervolumes(problem, r, 1.1 * worst) for r in side] for side in runs]
        for budget in BUDGETS:
            hv = [[v[budget] for v in side] for side in volumes]
            wins = sum(a > b for a, b in zip(*hv))
            p = wilcoxon(hv[0], hv[1]).pvalue
            print(f"{problem} at {budget}: A {statistics.median(hv[0]):.6g}, B "
                  f"{statistics.median(hv[1]):.6g}; A higher on {wins} of {seeds} seeds "
                  f"(Wilcoxon p {p:.3f})", flush=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", default="build/bin")
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--first-seed", type=int, default=0,
                        help="seeds FIRST..FIRST+N-1 on both sides (Optuna's cache is kept apart)")
    parser.add_argument("--problems", default=",".join(PROBLEMS))
    parser.add_argument("--algos", default=",".join(ALGORITHMS),
                        help="comma-separated subset of tpe,nsga2")
    parser.add_argument("--out", default=None)
    parser.add_argument("--optuna-cache", default=None,
                        help="JSON file of Optuna's runs: read when present and extended run by "
                             "run, so a rerun after a change to tune redoes only tune's side")
    parser.add_argument("--cached-only", action="store_true",
                        help="Optuna's side: only the runs --optuna-cache holds")
    parser.add_argument("--variant", default=None, help="tune-bench-mo's TPE variants")
    parser.add_argument("--speed", type=int, default=None,
                        help="only the time per suggestion with this many trials of history")
    parser.add_argument("--held-out", nargs=2, metavar=("SEARCH_A", "SEARCH_B"), default=None,
                        help="tune against tune: two TPE search objects (JSON, merged into "
                             "{\"algorithm\": \"tpe\"}) on the held-out problems, paired by seed")
    parser.add_argument("--optuna-only", action="store_true",
                        help="only fill --optuna-cache, seed by seed over every problem and "
                             "algorithm (an interrupted run keeps the seeds it finished)")
    args = parser.parse_args()
    cache = {}
    if args.optuna_cache and os.path.exists(args.optuna_cache):
        with open(args.optuna_cache) as f:
            cache = json.load(f)
    import optuna
    from scipy.stats import mannwhitneyu
    problems = args.problems.split(",")
    algorithms = args.algos.split(",")
    if args.speed:
        speed(args.bin, args.speed)
        return
    if args.held_out:
        held_out(args.bin, args.seeds, [json.loads(s) for s in args.held_out])
        return

    def optuna_runs(problem, algo, seeds):
        key = f"{problem} {algo}" + (f" from {args.first_seed}" if args.first_seed else "")
        runs = cache.setdefault(key, [])
        while len(runs) < seeds and not args.cached_only:
            runs.append(optuna_run(problem, algo, args.first_seed + len(runs), max(BUDGETS)))
            if args.optuna_cache:
                with open(args.optuna_cache + ".tmp", "w") as f:
                    json.dump(cache, f)
                os.replace(args.optuna_cache + ".tmp", args.optuna_cache)
        return runs[:seeds]

    if args.optuna_only:
        for seeds in range(1, args.seeds + 1):
            for algo in algorithms:
                for problem in problems:
                    begin = time.monotonic()
                    optuna_runs(problem, algo, seeds)
                    last = args.first_seed + seeds - 1
                    print(f"optuna {problem} {algo} seeds {args.first_seed}..{last} "
                          f"({time.monotonic() - begin:.0f} s)", file=sys.stderr, flush=True)
        return
    rows, verdicts = [], []
    for problem in problems:
        for algo in algorithms:
            sides, hvs = {}, {}
            for side in ("tune", "optuna"):
                begin = time.monotonic()
                if side == "tune":
                    runs = tune_runs(args.bin, problem, algo, args.seeds, max(BUDGETS), args.variant,
                                     first=args.first_seed)
                else:
                    runs = optuna_runs(problem, algo, args.seeds)
                hvs[side] = [hypervolumes(problem, r) for r in runs]
                sides[side] = {b: quartiles([h[b] for h in hvs[side]]) for b in BUDGETS}
                sides[side]["ms"] = statistics.median(r["suggest_ms"] for r in runs)
                sides[side]["seeds"] = len(runs)
                print(f"{problem} {algo} {side}: {sides[side]} ({time.monotonic() - begin:.0f} s)",
                      file=sys.stderr, flush=True)
            common = min(len(hvs["tune"]), len(hvs["optuna"]))
            wins = {b: sum(hvs["tune"][k][b] >= hvs["optuna"][k][b] for k in range(common))
                    for b in BUDGETS}
            lower = {b: mannwhitneyu([h[b] for h in hvs["tune"]], [h[b] for h in hvs["optuna"]],
                                     alternative="less").pvalue for b in BUDGETS}
            for side in ("tune", "optuna"):
                name = TUNE_NAME[algo] if side == "tune" else OPTUNA_NAME[algo]
                cells = [f"{s[1]:.4f} [{s[0]:.4f}, {s[2]:.4f}]" for s in (sides[side][b] for b in BUDGETS)]
                won = [f"{wins[b]}/{common} (p {lower[b]:.2f})" if side == "tune" else ""
                       for b in BUDGETS]
                rows.append(f"| {problem} | {name} | {sides[side]['seeds']} | " + " | ".join(cells) +
                            " | " + " | ".join(won) + f" | {sides[side]['ms']:.2f} |")
            for b in BUDGETS:
                ours, theirs = sides["tune"][b][1], sides["optuna"][b][1]
                verdicts.append((problem, algo, b, ours >= theirs))
    out = [f"Median hypervolume over seeds 0..N-1 [interquartile range], Optuna "
           f"{optuna.__version__}; wins: seeds (of those both sides ran) where tune's hypervolume "
           f">= Optuna's (p: one-sided Mann-Whitney, tune lower); ms per suggestion: median over seeds of the mean over {max(BUDGETS)} "
           "trials.", "",
           "| problem | sampler | N seeds | HV at 100 | HV at 300 | tune wins at 100 | at 300 | "
           "ms / suggestion |",
           "|---|---|---|---|---|---|---|---|"] + rows
    lost = [f"{p} {a} at {b}" for p, a, b, ok in verdicts if not ok]
    out += ["", f"tune's median >= Optuna's with the same algorithm: {sum(ok for *_, ok in verdicts)}"
            f"/{len(verdicts)}" + (f" (lower on {', '.join(lost)})" if lost else "") + "."]
    text = "\n".join(out) + "\n"
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
