"""Report throughput with result logging on, tune vs Ray Tune.

tune: bench/tuner_bench.py (b): `tune run` with 16 tune-bench-trial processes in flood mode, each
sending its reports back to back (each waits for its decision); result.json and progress.csv
written; rate = reports / (first trial's start .. last trial's end), checked against the lines
in result.json.
Ray: 16 function trainables, each calling ray.tune.report() in a tight loop with the same
metrics, through tune.Tuner(num_samples=16, max_concurrent_trials=16) on ray.init(num_cpus=16),
default loggers (JSON, CSV, TensorBoard); the same span: each trainable logs its start and end.

One repetition of one side: python bench/peers/throughput.py --side tune|ray --trials 16
--reports N; prints RESULT {...}.
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

TRIALS = 16


def sizes(quick):
    """(concurrent trials, reports per trial, repetitions per side); Ray manages a few hundred
    reports/s on the 2-core machine, so both sides get a size Ray finishes in minutes."""
    return (8, 300, 1) if quick else (TRIALS, 1000, 2)


def run(ctx):
    trials, reports, reps = sizes(ctx.quick)
    rows, by_side = [], {"tune": [], "ray": []}

    def one(side, k, n, rep, tag):
        cmd = [ctx.python, os.path.join(common.HERE, "throughput.py"), "--side", side,
               "--trials", str(k), "--reports", str(n)]
        if side == "tune":
            cmd += ["--bin", ctx.bin_dir]
        work = os.path.join(ctx.work, f"throughput_{side}_{tag}")
        os.makedirs(work)
        r = common.measure(ctx, cmd + ["--work", work])
        ctx.log(f"  throughput {side} {tag}: {r}")
        rows.append((rep, side, k, n, r, common.shown(cmd, ctx.root)))
        return r

    for rep, side in common.interleave(reps, ["tune", "ray"]):
        by_side[side].append(one(side, trials, reports, rep, str(rep)))
    if not ctx.quick:  # tune at tuner_bench.py (b)'s own size, for reference (not in the ratio)
        one("tune", TRIALS, 50000, "ref", "ref")
    out = [f"Report throughput, result logging on: {trials} concurrent trials x {reports} reports "
           "each, every report waiting for the tuner's reply; reports/s over the span from the first "
           "trial's start to the last one's end (start-up excluded on both sides). Repetitions "
           "interleaved.",
           "",
           "| rep | side | trials x reports | span s | reports/s | result lines | command |",
           "|---|---|---|---|---|---|---|"]
    for rep, side, k, n, r, cmd in rows:
        out.append(f"| {rep} | {side} | {k} x {n} | {r['span_s']:.2f} | {r['rate']:,.0f} | "
                   f"{r['result_lines']} | `{cmd}` |")
    tune_rate = common.median([r["rate"] for r in by_side["tune"]])
    ray_rate = common.median([r["rate"] for r in by_side["ray"]])
    ratio = tune_rate / ray_rate
    out += ["",
            f"Median: tune {tune_rate:,.0f} reports/s, Ray {ray_rate:,.0f} reports/s. "
            f"**tune / Ray = {ratio:,.1f}x** (target >= 50x: {'met' if ratio >= 50 else 'NOT met'}).",
            ""]
    if ctx.quick:
        out[-1:] = ["(--quick: at this size tune's span is mostly its trials' process start-up; "
                    "the full run's 16 x 1000 and the 16 x 50,000 reference row measure the rate.)", ""]
    else:
        out[-1:] = ["(rep \"ref\": tune at bench/tuner_bench.py (b)'s own size, not in the ratio.)", ""]
    return "\n".join(out)


def tune_side(args):
    common.add_bench_path()
    import tuner_bench  # bench/tuner_bench.py (b): the spec, the run and the result-line check
    rate, _, _ = tuner_bench.flood(os.path.abspath(args.bin), args.work, "throughput", args.trials,
                                   args.reports)
    total = args.trials * args.reports
    return {"rate": rate, "span_s": total / rate, "reports": total, "result_lines": total}


def flood_trainable(config):
    from ray import tune
    start = time.time()
    metrics = {"score": 0.0, "loss": 1.0, "epoch": 0}
    for i in range(1, config["reports"] + 1):
        metrics["score"] = i * 0.001
        metrics["epoch"] = i
        tune.report(dict(metrics))
    with open(config["timeline"], "a") as f:
        f.write(f"{start} {time.time()}\n")


def ray_side(args):
    ray = common.ray_init(args.work, num_cpus=args.trials)
    from ray import tune
    timeline = os.path.join(args.work, "timeline.txt")
    tuner = tune.Tuner(flood_trainable,
                       param_space={"reports": args.reports, "timeline": timeline,
                                    "x": tune.uniform(0, 1)},
                       tune_config=tune.TuneConfig(num_samples=args.trials,
                                                   max_concurrent_trials=args.trials),
                       run_config=tune.RunConfig(name="throughput",
                                                 storage_path=os.path.join(args.work, "ray_results"),
                                                 verbose=1))
    results = tuner.fit()
    errors = [str(r.error) for r in results if r.error is not None]
    lines = 0
    for r in results:
        with open(os.path.join(r.path, "result.json")) as f:
            lines += sum(1 for _ in f)
    ray.shutdown()
    if errors:
        sys.exit(f"{len(errors)} Ray trials failed: {errors[0]}")
    with open(timeline) as f:
        rows = [tuple(map(float, line.split())) for line in f]
    total = args.trials * args.reports
    if len(rows) != args.trials or lines != total:
        sys.exit(f"{len(rows)} trials finished, {lines} result lines for {total} reports")
    span = max(r[1] for r in rows) - min(r[0] for r in rows)
    return {"rate": total / span, "span_s": span, "reports": total, "result_lines": lines}


def main():
    parser = common.side_args()
    parser.add_argument("--trials", type=int, default=TRIALS)
    parser.add_argument("--reports", type=int, default=1000)
    args = parser.parse_args()
    common.run_side(args, {"tune": tune_side, "ray": ray_side})


if __name__ == "__main__":
    main()
