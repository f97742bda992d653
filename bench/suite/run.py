"""The TPE robustness suite (issue 16 part 5): tune's searcher vs Optuna 5.0's default
TPESampler on the functions of bench/suite/functions.py, median regret after 100 sequential
trials over seeds 0..19.

Both sides run the same Python loop over the same function objects: tune's searcher through
`tune-bench-suite` (ask and tell over a pipe, one process for every study of a run), Optuna's
TPESampler(seed=s) in-process. Each side writes the regrets per function and seed to a JSON
file; `table` compares two such files.

  .venv/bin/python bench/suite/run.py tune --bin build-suite/bin --search '{"algorithm": "tpe"}' \
      --out bench/suite/results/tune_default.json [--functions train|report|all|NAME,...]
  .venv/bin/python bench/suite/run.py optuna --out bench/suite/results/optuna.json
      (resumable: functions already in --out are kept)
  .venv/bin/python bench/suite/run.py table bench/suite/results/tune_default.json \
      bench/suite/results/optuna.json [--functions ...]

"Worse" in the table: tune's median regret above Optuna's (ratio > 1) and tune's regrets
stochastically larger by a one-sided Mann-Whitney U test at p < 0.05 over the seeds; "better"
the same the other way; otherwise "tie".
"""
import argparse
import json
import math
import os
import subprocess
import sys
import time
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "peers"))
import functions as suite  # noqa: E402
from common import median  # noqa: E402  (bench/peers/common.py)
from tpe import quantile  # noqa: E402  (bench/peers/tpe.py, the five shared functions' harness)

P_WORSE = 0.05
TINY = 1e-9  # regrets below this count as 0 (the optimum found)


def chosen(spec):
    fs = suite.functions()
    if spec in ("all", None):
        return list(fs)
    if spec in ("train", "report"):
        return [n for n, f in fs.items() if f[3] == spec]
    names = spec.split(",")
    for n in names:
        if n not in fs:
            sys.exit(f"unknown function {n} (known: {', '.join(fs)})")
    return names


def load(path):
    if path and os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    return {"regrets": {}, "wall_s": {}}


def save(path, data):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=0)
    os.replace(tmp, path)


class TuneSide:
    def __init__(self, bin_dir):
        self.proc = subprocess.Popen([os.path.join(bin_dir, "tune-bench-suite")], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, bufsize=1)

    def request(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline().rstrip("\n")
        if answer.startswith("error "):
            raise RuntimeError(f"tune-bench-suite: {answer[6:]} (request {line[:80]})")
        return answer

    def minimise(self, search, space, f, seed, trials):
        self.request("\t".join(["study", str(seed), str(trials), json.dumps(search), json.dumps(space)]))
        best = math.inf
        for _ in range(trials):
            config = json.loads(self.request("ask"))
            value = f(config)
            self.proc.stdin.write(f"tell {value!r}\n")
            best = min(best, value)
        return best

    def close(self):
        self.proc.stdin.close()
        self.proc.wait()


def optuna_minimise(space, f, seed, trials):
    import optuna
    sampler = optuna.samplers.TPESampler(seed=seed)
    study = optuna.create_study(sampler=sampler)
    study.optimize(lambda t: f(suite.optuna_suggest(t, space)), n_trials=trials)
    return study.best_value


def run_side(args):
    fs = suite.functions()
    data = load(args.out) if args.side == "optuna" else {"regrets": {}, "wall_s": {}}
    data["command"] = " ".join(sys.argv)
    data["seeds"], data["trials"] = args.seeds, args.trials
    if args.side == "tune":
        data["search"] = json.loads(args.search)
        tune = TuneSide(args.bin)
    else:
        import optuna
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        data["optuna"] = optuna.__version__
    for name in chosen(args.functions):
        if name in data["regrets"] and len(data["regrets"][name]) >= args.seeds:
            continue
        space, f, minimum, _ = fs[name]
        begin = time.monotonic()
        regrets = []
        for seed in range(args.seeds):
            if args.side == "tune":
                best = tune.minimise(data["search"], space, f, seed, args.trials)
            else:
                best = optuna_minimise(space, f, seed, args.trials)
            regrets.append(max(best - minimum, 0.0))
        data["regrets"][name] = regrets
        data["wall_s"][name] = time.monotonic() - begin
        print(f"{name}: median {median(regrets):.4g} ({data['wall_s'][name]:.1f} s)", file=sys.stderr,
              flush=True)
        if args.side == "optuna":
            save(args.out, data)  # resumable
    if args.side == "tune":
        tune.close()
    save(args.out, data)


def compare(ours, theirs):
    """(ratio of medians, p of 'ours larger', p of 'ours smaller', verdict)."""
    from scipy.stats import mannwhitneyu
    a = [0.0 if x < TINY else x for x in ours]
    b = [0.0 if x < TINY else x for x in theirs]
    ma, mb = median(a), median(b)
    ratio = (ma / mb) if mb > 0 else (1.0 if ma == 0 else math.inf)
    if a == b or len(set(a + b)) == 1:
        p_worse = p_better = 1.0
    else:
        p_worse = mannwhitneyu(a, b, alternative="greater").pvalue
        p_better = mannwhitneyu(a, b, alternative="less").pvalue
    verdict = "tie"
    if ratio > 1 and p_worse < P_WORSE:
        verdict = "**worse**"
    elif ratio < 1 and p_better < P_WORSE:
        verdict = "better"
    return ratio, p_worse, p_better, verdict


def fmt(x):
    if x == 0:
        return "0"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.3g}"


def table(args):
    fs = suite.functions()
    ours, theirs = load(args.ours), load(args.theirs)
    names = [n for n in chosen(args.functions) if n in ours["regrets"] and n in theirs["regrets"]]
    lines = ["| function | half | dims | tune median [IQR] | Optuna median [IQR] | tune/Optuna | "
             "p (tune worse) | verdict |", "|---|---|---|---|---|---|---|---|"]
    logs, counts = [], {"**worse**": [], "better": [], "tie": []}
    for n in names:
        a, b = ours["regrets"][n], theirs["regrets"][n]
        ratio, p_worse, _, verdict = compare(a, b)
        counts[verdict].append(n)
        if math.isfinite(ratio) and ratio > 0:
            logs.append(math.log(ratio))
        lines.append(f"| {n} | {fs[n][3]} | {len(fs[n][0])} | {fmt(median(a))} [{fmt(quantile(a, .25))}-"
                     f"{fmt(quantile(a, .75))}] | {fmt(median(b))} [{fmt(quantile(b, .25))}-"
                     f"{fmt(quantile(b, .75))}] | {ratio:.2f} | {p_worse:.3f} | {verdict} |")
    geo = math.exp(sum(logs) / len(logs)) if logs else float("nan")
    summary = (f"{len(names)} functions: worse on {len(counts['**worse**'])}"
               + (f" ({', '.join(counts['**worse**'])})" if counts["**worse**"] else "")
               + f", better on {len(counts['better'])}, tie on {len(counts['tie'])}; "
               f"geometric mean of the median ratios {geo:.3f}.")
    print("\n".join(lines) + "\n\n" + summary)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="side", required=True)
    for side in ("tune", "optuna"):
        p = sub.add_parser(side)
        p.add_argument("--out", required=True)
        p.add_argument("--functions", default="all")
        p.add_argument("--seeds", type=int, default=20)
        p.add_argument("--trials", type=int, default=100)
        if side == "tune":
            p.add_argument("--bin", default=os.path.join(ROOT, "build", "bin"))
            p.add_argument("--search", default='{"algorithm": "tpe"}')
    p = sub.add_parser("table")
    p.add_argument("ours")
    p.add_argument("theirs")
    p.add_argument("--functions", default="all")
    args = parser.parse_args()
    if args.side == "table":
        table(args)
    else:
        run_side(args)


if __name__ == "__main__":
    main()
