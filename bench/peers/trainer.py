#!/usr/bin/env python3
"""Peers benchmark, trainer throughput (issue 11, part 4): tune-trainer vs the same model in a
PyTorch 2.13 Python loop and in a Lightning 2.6.6 Trainer.

Model: MLP 784-256-256-10 (with --models mlp,cnn also the small CNN of trainer_bench.py), batch 128, Adam lr 1e-3,
the 60,000 Fashion-MNIST training images staged in memory as normalised floats.
Precisions: fp32, and bf16 = CPU autocast (bf16-mixed: parameters and Adam stay fp32).

Contestants (each measurement a fresh process, the same environment: bench/trainer_bench.py's
env_for(threads), i.e. OMP/MKL/OPENBLAS threads pinned, torch.set_num_threads / `threads`, the
same glibc malloc thresholds in the environment; no LD_LIBRARY_PATH/LD_PRELOAD):
  tune          build/bin/tune-trainer, 2 epochs, its per-epoch samples/s line of epoch 2
                (bench/trainer_bench.py run_trainer)
  pytorch       bench/trainer_bench.py's PyTorch loop (worker), run by the project's .venv
                python (torch 2.13), second epoch timed
  lightning     a LightningModule around the same nn.Sequential (trainer_bench.build_model) and
                torch.optim.Adam(lr 1e-3), DataLoader(TensorDataset(x, y), batch_size=128,
                shuffle=True, num_workers=0) over the same staged tensors, Trainer(accelerator=cpu,
                devices=1, precision=32-true|bf16-mixed, max_epochs=2, no logger/checkpointing/
                progress bar/model summary); a Callback times the second epoch.
Throughput = 60,000 / seconds of the second epoch (wall clock; --clock cpu: process CPU time).
Order interleaved and rotated per run (tune, pytorch, lightning; then pytorch, lightning, tune;
...), median of --runs.

Usage (alone):  .venv/bin/python bench/peers/trainer.py [--quick] [--bin build/bin]
                    [--runs 3] [--threads 1,2] [--precisions fp32,bf16] [--models mlp,cnn]
                    [--contestants tune,pytorch,lightning] [--clock wall|cpu] [--out FILE.md]
As a part of bench/peers/run.py: run(ctx) returns the Markdown section.
Quick: 1 run, MLP, 1 thread (6 processes, about 1.5 min on an idle 2-core machine, 4 min busy).
Full: 3 runs, MLP, 1 and 2 threads (36 processes, about 20 min on an idle 2-core machine: on a
CPU without AVX512-BF16, as the 2-core VM, bf16 autocast runs at ~2,200 samples/s on all three
sides, about a minute per process). `--models mlp,cnn` adds the CNN (about 35 min more); on a
busy machine the 2-thread rows crawl (OpenMP threads wait for each other whenever one is
descheduled).
"""
import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)
import common  # noqa: E402  (bench/peers/common.py: shown, emit)
import trainer_bench  # noqa: E402  (bench/trainer_bench.py: the PyTorch loop, env, tune-trainer runner)

CONTESTANTS = ("tune", "pytorch", "lightning")
TARGETS = {"pytorch": 1.3, "lightning": 1.5}


def lightning_worker(args):
    import torch
    import torch.nn as nn
    import lightning as L
    from torch.utils.data import DataLoader, TensorDataset

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    x, y = trainer_bench.load_train(args.data, args.model)
    clock = time.process_time if args.clock == "cpu" else time.perf_counter

    class Module(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.model = trainer_bench.build_model(args.model)
            self.loss_fn = nn.CrossEntropyLoss()

        def training_step(self, batch, batch_idx):
            xb, yb = batch
            return self.loss_fn(self.model(xb), yb)

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=1e-3)

    class EpochTimer(L.Callback):
        def __init__(self):
            self.rates = []

        def on_train_epoch_start(self, trainer, module):
            self.t0 = clock()

        def on_train_epoch_end(self, trainer, module):
            self.rates.append(x.shape[0] / (clock() - self.t0))

    timer = EpochTimer()
    loader = DataLoader(TensorDataset(x, y), batch_size=128, shuffle=True, num_workers=0)
    trainer = L.Trainer(accelerator="cpu", devices=1,
                        precision="bf16-mixed" if args.prec == "bf16" else "32-true", max_epochs=2,
                        logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=[timer])
    trainer.fit(Module(), loader)
    assert len(timer.rates) == 2, timer.rates
    common.emit({"samples_per_s": timer.rates[-1]})


def lightning_command(python, prec, threads, data, model, clock):
    return [python, os.path.abspath(__file__), "--lightning-worker", "--prec", prec, "--threads", str(threads),
            "--data", data, "--model", model, "--clock", clock]


def measure(ctx, who, prec, threads, model, clock, data):
    binary = os.path.join(ctx.bin_dir, "tune-trainer")
    if who == "tune":
        return trainer_bench.run_trainer(binary, prec, threads, data, model, clock)
    if who == "pytorch":
        return trainer_bench.run_python(prec, threads, data, model, clock, python=ctx.python)
    proc = subprocess.run(lightning_command(ctx.python, prec, threads, data, model, clock),
                          env=trainer_bench.env_for(threads), capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"lightning worker failed:\n{proc.stderr[-3000:]}")
    line = [l for l in proc.stdout.splitlines() if l.startswith(common.RESULT_PREFIX)][-1]
    return json.loads(line[len(common.RESULT_PREFIX):])["samples_per_s"]


def settings(ctx):
    quick = ctx.quick
    get = lambda name, default: getattr(ctx, name, None) or default  # noqa: E731
    return dict(runs=int(get("runs", 1 if quick else 3)),
                threads=[int(t) for t in str(get("threads", "1" if quick else "1,2")).split(",")],
                precisions=str(get("precisions", "fp32" if quick else "fp32,bf16")).split(","),  # bf16: ~1 min a process on AVX2
                models=str(get("models", "mlp")).split(","),
                contestants=[c for c in str(get("contestants", ",".join(CONTESTANTS))).split(",")],
                clock=get("clock", "wall"))


def reproduce(ctx, s, prec, threads, model):
    rel_bin = os.path.relpath(ctx.bin_dir, ctx.root)
    who = "" if list(s["contestants"]) == list(CONTESTANTS) else f" --contestants {','.join(s['contestants'])}"
    return (f".venv/bin/python bench/peers/trainer.py --bin {shlex.quote(rel_bin)} --runs {s['runs']} "
            f"--models {model} --precisions {prec} --threads {threads} --clock {s['clock']}{who}")


def run(ctx):
    s = settings(ctx)
    data = os.path.join(ctx.root, "data")
    common.need_fashion_and_bins(ctx, "trainer", ("tune-trainer",) if "tune" in s["contestants"] else ())
    raw = {}  # (model, prec, threads) -> contestant -> [samples/s]
    t_start = time.time()
    for r in range(s["runs"]):
        for model in s["models"]:
            for prec in s["precisions"]:
                for threads in s["threads"]:
                    k = r % len(s["contestants"])
                    order = s["contestants"][k:] + s["contestants"][:k]
                    for who in order:
                        rate = measure(ctx, who, prec, threads, model, s["clock"], data)
                        raw.setdefault((model, prec, threads), {}).setdefault(who, []).append(rate)
                        ctx.log(f"trainer: run {r} {model} {prec} {threads} thr {who:9s} {rate:9.0f} samples/s")
    elapsed = time.time() - t_start

    names = {"mlp": "MLP 784-256-256-10", "cnn": "CNN (Conv32-Pool-Conv64-Pool-Dense256)"}
    out = ["## Trainer throughput: tune-trainer vs PyTorch loop vs Lightning", ""]
    out.append(f"Samples/s of the second epoch (60,000 Fashion-MNIST images, batch 128, Adam), "
               f"{s['clock']} clock, median of {s['runs']} run(s), each a fresh process with the same "
               f"environment ({', '.join(f'{k}={v}' for k, v in trainer_bench.MALLOC_ENV.items())}, "
               f"OMP/MKL/OPENBLAS threads = threads); order interleaved. Raw runs in brackets. "
               f"Targets: tune/PyTorch >= {TARGETS['pytorch']}x, tune/Lightning >= {TARGETS['lightning']}x."
               + (" **Quick mode: a smoke test, not a measurement.**" if ctx.quick else ""))
    load = os.getloadavg()
    out.append(f"Load average at the end: {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} on {os.cpu_count()} CPUs; "
               f"the section took {elapsed:.0f} s.")
    out.append("")
    cols = [c for c in CONTESTANTS if c in s["contestants"]]
    header = ["model", "precision", "threads"] + [f"{c} samples/s" for c in cols]
    ratio_cols = [c for c in ("pytorch", "lightning") if c in cols and "tune" in cols]
    header += [f"tune/{c} (target {TARGETS[c]}x)" for c in ratio_cols] + ["reproduce"]
    out.append("| " + " | ".join(header) + " |")
    out.append("|" + "---|" * len(header))
    for (model, prec, threads), res in raw.items():
        med = {c: statistics.median(v) for c, v in res.items()}
        row = [names.get(model, model), prec, str(threads)]
        row += [f"{med[c]:,.0f} [{', '.join(f'{v:,.0f}' for v in res[c])}]" for c in cols]
        for c in ratio_cols:
            ratio = med["tune"] / med[c]
            row.append(f"{ratio:.2f}x {'met' if ratio >= TARGETS[c] else 'NOT met'}")
        row.append("`" + reproduce(ctx, s, prec, threads, model) + "`")
        out.append("| " + " | ".join(row) + " |")
    out.append("")
    out.append("One measurement alone (each prints `RESULT {\"samples_per_s\": ...}` or a progress line; "
               "environment: `env MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=1073741824 "
               "OMP_NUM_THREADS=T MKL_NUM_THREADS=T OPENBLAS_NUM_THREADS=T`):")
    out.append("- PyTorch: `" + common.shown(trainer_bench.python_command(
        "fp32", 1, os.path.join(ctx.root, "data"), "mlp", "wall", ".venv/bin/python"), ctx.root) + "`")
    out.append("- Lightning: `" + common.shown(lightning_command(
        ".venv/bin/python", "fp32", 1, os.path.join(ctx.root, "data"), "mlp", "wall"), ctx.root) + "`")
    out.append("- tune-trainer: `build/bin/tune-trainer CONFIG.json` with trainer_bench.py's config "
               "(`{\"dataset\": \"fashion_mnist\", \"model\": {\"type\": \"mlp\", \"hidden\": 256, \"layers\": 2}, "
               "\"optimizer\": {\"type\": \"adam\", \"lr\": 0.001}, \"batch_size\": 128, \"max_epochs\": 2, "
               "\"precision\": \"32\", \"threads\": 1, \"checkpoint\": false, \"val_every_n_epochs\": 100}`)")
    out.append("")
    return "\n".join(out)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--lightning-worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--prec", default="fp32", help=argparse.SUPPRESS)
    p.add_argument("--data", default=os.path.join(ROOT, "data"), help=argparse.SUPPRESS)
    p.add_argument("--model", default="mlp", help=argparse.SUPPRESS)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--bin", default=os.path.join(ROOT, "build", "bin"))
    p.add_argument("--runs", type=int)
    p.add_argument("--threads")
    p.add_argument("--precisions")
    p.add_argument("--models")
    p.add_argument("--contestants")
    p.add_argument("--clock", choices=["wall", "cpu"], default=None)
    p.add_argument("--out")
    args = p.parse_args()
    if args.lightning_worker:
        args.threads = int(args.threads or 1)
        args.clock = args.clock or "wall"
        return lightning_worker(args)
    common.run_alone(run, args, "peers-trainer-", runs=args.runs, threads=args.threads,
                     precisions=args.precisions, models=args.models, contestants=args.contestants,
                     clock=args.clock)

if __name__ == "__main__":
    main()
