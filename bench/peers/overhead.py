"""Bookkeeping overhead, tune vs Ray Tune, in the spirit of Ray's release test
(release/tune_tests/scalability_tests/workloads/test_bookkeeping_overhead.py: many 1 s trials
reporting as they go, 16 at a time; overhead = wall / ideal - 1).

tune: `tune run` on bench/tuner_bench.py's overhead spec (tune-bench-trial, mode sleep).
Ray: Ray's own release-test trainable (ray.tune.utils.release_test_util.function_trainable:
report, sleep, report, ...) through tune.Tuner with TuneConfig(num_samples=N,
max_concurrent_trials=16, reuse_actors=True as timed_tune_run passes) on ray.init(num_cpus=16),
TUNE_GLOBAL_CHECKPOINT_S=100 as the release test sets, default loggers (JSON, CSV, TensorBoard).

One repetition of one side: python bench/peers/overhead.py --side tune|ray --trials N
--sleep S --reports R [--slots 16]; prints RESULT {...}.
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

SLOTS = 16
REPORTS = 5  # tuner_bench.py (a): 5 reports per trial


def sizes(quick):
    """(trials, seconds per trial, concurrent slots, repetitions per side). --quick: 8 slots, as
    tuner_bench.py --quick, since Ray's start of 16 workers alone takes a minute on a busy 2-core
    machine."""
    return (24, 1.0, 8, 1) if quick else (400, 1.0, SLOTS, 2)


def run(ctx):
    trials, trial_s, slots, reps = sizes(ctx.quick)
    ideal = trials / slots * trial_s
    rows, by_side = [], {"tune": [], "ray": []}
    for rep, side in common.interleave(reps, ["tune", "ray"]):
        cmd = [ctx.python, os.path.join(common.HERE, "overhead.py"), "--side", side,
               "--trials", str(trials), "--sleep", str(trial_s), "--reports", str(REPORTS),
               "--slots", str(slots)]
        if side == "tune":
            cmd += ["--bin", ctx.bin_dir]
        work = os.path.join(ctx.work, f"overhead_{side}_{rep}")
        os.makedirs(work)
        r = common.measure(ctx, cmd + ["--work", work])
        by_side[side].append(r)
        rows.append((rep, side, r, common.shown(cmd, ctx.root)))
        ctx.log(f"  overhead {side} rep {rep}: {r}")
    out = [f"Bookkeeping overhead: {trials} trials x {trial_s:g} s, {REPORTS} reports each, "
           f"{slots} concurrent; ideal {ideal:g} s. Overhead = wall / ideal - 1. tune's wall is the "
           "`tune run` process from spawn to exit; Ray's is `Tuner.fit()` from call to return "
           "(**used for the ratio**; ray.init excluded, which favours Ray), and \"with init\" adds "
           "ray.init and building the Tuner. Repetitions interleaved (tune, Ray, tune, Ray, ...).",
           "",
           "| rep | side | wall s | overhead | wall with init s | overhead with init | trials ok | "
           "result lines | command |",
           "|---|---|---|---|---|---|---|---|---|"]
    for rep, side, r, cmd in rows:
        out.append(f"| {rep} | {side} | {r['wall_s']:.2f} | {100 * (r['wall_s'] / ideal - 1):.1f} % | "
                   f"{r.get('total_s', r['wall_s']):.2f} | "
                   f"{100 * (r.get('total_s', r['wall_s']) / ideal - 1):.1f} % | {r['trials_ok']} | "
                   f"{r['result_lines']} | `{cmd}` |")
    tune_ov = common.median([r["wall_s"] / ideal - 1 for r in by_side["tune"]])
    ray_ov = common.median([r["wall_s"] / ideal - 1 for r in by_side["ray"]])
    ray_ov_init = common.median([r["total_s"] / ideal - 1 for r in by_side["ray"]])
    ratio = tune_ov / ray_ov if ray_ov > 0 else float("inf")
    out += ["",
            f"Median overhead: tune {100 * tune_ov:.2f} %, Ray {100 * ray_ov:.1f} % "
            f"({100 * ray_ov_init:.1f} % with ray.init). **tune / Ray = {ratio:.4f}**"
            + (f" (1/{1 / ratio:,.0f})" if 0 < ratio < 1 else "") + " "
            f"(target <= 0.1: {'met' if ratio <= 0.1 else 'NOT met'}).", ""]
    return "\n".join(out)


def tune_side(args):
    common.add_bench_path()
    import tuner_bench  # the tune side's spec and runner: one place, bench/tuner_bench.py (a)
    wall, ideal, breakdown = tuner_bench.overhead(os.path.abspath(args.bin), args.work, args.trials,
                                                  args.slots, args.sleep)
    results = tuner_bench.trial_results(os.path.join(args.work, "overhead"))
    ok = len(results)
    lines = sum(1 for path in results for _ in open(path))
    return {"wall_s": wall, "total_s": wall, "ideal_s": ideal, "trials_ok": ok,
            "result_lines": lines, "gap_mean_ms": breakdown["gap_mean_ms"]}


def ray_side(args):
    # As the release test does ("Tweak"): Ray's experiment-state checkpoint at most every 100 s.
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "100")
    begin = time.monotonic()
    ray = common.ray_init(args.work, num_cpus=args.slots)
    from ray import tune
    from ray.tune.utils.release_test_util import function_trainable
    sleep_time = args.sleep / args.reports
    # timed_tune_run's config: num_iters reports, sleep_time after each.
    config = {"score": tune.uniform(0.0, 1.0), "num_iters": args.reports, "sleep_time": sleep_time,
              "checkpoint_iters": -1, "checkpoint_size_b": 0, "checkpoint_num_files": 1}
    storage = os.path.join(args.work, "ray_results")
    tuner = tune.Tuner(function_trainable, param_space=config,
                       tune_config=tune.TuneConfig(num_samples=args.trials,
                                                   max_concurrent_trials=args.slots,
                                                   reuse_actors=True),
                       run_config=tune.RunConfig(name="overhead", storage_path=storage, verbose=1))
    fit_begin = time.monotonic()
    results = tuner.fit()
    end = time.monotonic()
    ok = sum(1 for r in results if r.error is None)
    lines = 0
    for r in results:
        with open(os.path.join(r.path, "result.json")) as f:
            lines += sum(1 for _ in f)
    ray.shutdown()
    return {"wall_s": end - fit_begin, "total_s": end - begin,
            "ideal_s": args.trials / args.slots * args.sleep, "trials_ok": ok,
            "result_lines": lines, "shutdown_s": time.monotonic() - end}


def main():
    parser = common.side_args()
    parser.add_argument("--trials", type=int, default=400)
    parser.add_argument("--sleep", type=float, default=1.0)
    parser.add_argument("--reports", type=int, default=REPORTS)
    parser.add_argument("--slots", type=int, default=SLOTS)
    args = parser.parse_args()
    if args.side == "tune" and args.reports != REPORTS:
        sys.exit("the tune side uses tuner_bench.py's 5 reports per trial")
    common.run_side(args, {"tune": tune_side, "ray": ray_side})


if __name__ == "__main__":
    main()
