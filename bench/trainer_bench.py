#!/usr/bin/env python3
"""tune-trainer vs a PyTorch Python loop: epoch throughput on Fashion-MNIST (issue 3, part 8).

Model (both sides): MLP 784-256-256-10, ReLU, CrossEntropy, Adam lr 1e-3, batch 128, 60,000
training images staged in memory, a fresh shuffle per epoch, set_to_none zero_grad.
Precisions: fp32, and bf16 = CPU autocast around forward+loss (parameters/Adam stay fp32).

Each measurement is a fresh process with the same environment: the given thread count
(torch.set_num_threads / `threads`), OMP/OPENBLAS threads pinned to it, and glibc malloc
tuned the same way on both sides (MALLOC_MMAP_THRESHOLD_/MALLOC_TRIM_THRESHOLD_ in the
environment; tune-trainer also calls mallopt itself). Throughput is the second of two epochs
(the first warms up): tune-trainer's per-epoch samples/s line, and for Python the same loop
timed with perf_counter. Median of --runs (3) runs, measurements interleaved.

--clock cpu measures CPU time instead of wall time, for a shared, busy machine where other
processes steal the cores (wall-clock rates then vary 2x from run to run): Python times its
second epoch with process_time(), tune-trainer reports the process CPU time of each epoch on
its progress line ("cpu 1.234 s"; older binaries without it run twice, with 1 and 2 epochs, and
the difference of the two processes' CPU times is one epoch). With one thread, CPU time is the
work done; it still includes cache and SMT interference from the neighbours.

Usage: .venv/bin/python bench/trainer_bench.py [--trainer build/bin/tune-trainer]
           [--threads 1] [--runs 3] [--precisions fp32,bf16] [--model mlp|cnn] [--clock wall|cpu]
           [--python .venv/bin/python]
The PyTorch loop runs under the project's .venv (the torch whose LibTorch tune-trainer is built
against) unless --python names another interpreter.
bench/peers/trainer.py reuses load_train/build_model/python_command/run_trainer/env_for and adds
a Lightning Trainer as a third contestant.
"""
import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "33554432", "MALLOC_TRIM_THRESHOLD_": "1073741824"}
DEFAULT_PYTHON = os.path.join(ROOT, ".venv", "bin", "python")


def read_idx(path):
    import numpy as np
    with open(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def load_train(data, model="mlp"):
    """Fashion-MNIST's 60,000 training images staged in memory as normalised floats
    ([N,784], or [N,1,28,28] for the cnn) and int64 labels, like tune-trainer's StageNormalised."""
    import torch
    d = os.path.join(data, "fashion")
    x = torch.from_numpy(read_idx(os.path.join(d, "train-images-idx3-ubyte")).copy()).reshape(-1, 784)
    y = torch.from_numpy(read_idx(os.path.join(d, "train-labels-idx1-ubyte")).astype("int64"))
    x = (x.float() / 255.0 - 0.2860) / 0.3530  # staged as float, like the baseline
    return (x.reshape(-1, 1, 28, 28) if model == "cnn" else x), y


def build_model(model="mlp"):
    """The benchmark's model, the same layers as tune-trainer's config in trainer_process()."""
    import torch.nn as nn
    if model == "cnn":
        # tune-trainer's cnn (channels 32, hidden 256): Conv3x3-ReLU-Pool-Conv3x3-ReLU-Pool-Dense-ReLU-Dense.
        return nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                             nn.Linear(64 * 5 * 5, 256), nn.ReLU(), nn.Linear(256, 10))
    return nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10))


def worker(args):
    import torch
    import torch.nn as nn
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    x, y = load_train(args.data, args.model)
    model = build_model(args.model)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    bf16 = args.prec == "bf16"
    rates = []
    for epoch in range(2):
        clock = time.process_time if args.clock == "cpu" else time.perf_counter
        t0 = clock()
        order = torch.randperm(x.shape[0])
        for lo in range(0, x.shape[0], 128):
            idx = order[lo:lo + 128]
            xb, yb = x[idx], y[idx]
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                loss = loss_fn(model(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        rates.append(x.shape[0] / (clock() - t0))
    print("RESULT " + json.dumps({"samples_per_s": rates[-1], "loss": float(loss)}), flush=True)


def env_for(threads):
    env = dict(os.environ)
    for k in ("LD_LIBRARY_PATH", "LD_PRELOAD"):
        env.pop(k, None)
    env.update(MALLOC_ENV)
    for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[k] = str(threads)
    return env


def python_command(prec, threads, data, model="mlp", clock="wall", python=DEFAULT_PYTHON):
    """The command line of one PyTorch-loop measurement (a fresh process; run it with env_for)."""
    return [python, os.path.abspath(__file__), "--worker", "--prec", prec, "--threads", str(threads),
            "--data", data, "--model", model, "--clock", clock]


def run_python(prec, threads, data, model="mlp", clock="wall", python=DEFAULT_PYTHON):
    out = subprocess.run(python_command(prec, threads, data, model, clock, python),
                         env=env_for(threads), capture_output=True, text=True, check=True).stdout
    return json.loads([l for l in out.splitlines() if l.startswith("RESULT ")][-1][7:])["samples_per_s"]


def trainer_process(binary, prec, threads, data, model, epochs):
    """Runs tune-trainer for `epochs` epochs; returns (its stderr, its CPU seconds)."""
    config = {"dataset": "fashion_mnist", "data_dir": data,
              "model": {"type": model, "hidden": 256, "layers": 2, "channels": 32},
              "optimizer": {"type": "adam", "lr": 1e-3}, "batch_size": 128, "max_epochs": epochs,
              "precision": "bf16-mixed" if prec == "bf16" else "32", "threads": threads,
              "checkpoint": False, "val_every_n_epochs": 100}
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(config, f)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        proc = subprocess.run([binary, f.name], env=env_for(threads), capture_output=True, text=True)
    finally:
        os.unlink(f.name)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        sys.exit(f"tune-trainer failed:\n{proc.stderr}")
    return proc.stderr, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def run_trainer(binary, prec, threads, data, model="mlp", clock="wall"):
    stderr, _ = trainer_process(binary, prec, threads, data, model, 2)
    if clock == "cpu":
        cpu = re.findall(r"epoch \d+/\d+ .* samples/s  cpu ([0-9.]+) s", stderr)
        if cpu:
            return 60000 / float(cpu[-1])
        # An older tune-trainer without the cpu field: one epoch's CPU time is the difference
        # between a 2-epoch and a 1-epoch process.
        _, one = trainer_process(binary, prec, threads, data, model, 1)
        _, two = trainer_process(binary, prec, threads, data, model, 2)
        return 60000 / max(two - one, 1e-9)
    rates = re.findall(r"epoch (\d+)/\d+ .* ([0-9.]+) samples/s", stderr)
    return float(rates[-1][1])


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--worker", action="store_true")
    p.add_argument("--prec", default="fp32")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--data", default=os.path.join(ROOT, "data"))
    p.add_argument("--trainer", default=os.path.join(ROOT, "build-tr3", "bin", "tune-trainer"))
    p.add_argument("--model", default="mlp", choices=["mlp", "cnn"])
    p.add_argument("--clock", default="wall", choices=["wall", "cpu"])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--precisions", default="fp32,bf16")
    p.add_argument("--python", default=DEFAULT_PYTHON, help="interpreter of the PyTorch loop (e.g. .venv/bin/python)")
    args = p.parse_args()
    if args.worker:
        return worker(args)
    results = {}
    for r in range(args.runs):
        for prec in args.precisions.split(","):
            t = run_trainer(args.trainer, prec, args.threads, args.data, args.model, args.clock)
            py = run_python(prec, args.threads, args.data, args.model, args.clock, args.python)
            results.setdefault(prec, {"tune-trainer": [], "python": []})
            results[prec]["tune-trainer"].append(t)
            results[prec]["python"].append(py)
            print(f"run {r} {prec}: tune-trainer {t:8.0f}  python {py:8.0f} samples/s", flush=True)
    name = "CNN (32/64 channels, dense 256)" if args.model == "cnn" else "MLP 784-256-256-10"
    print(f"\n{name}, batch 128, Adam, threads={args.threads}, {args.clock} clock, median of {args.runs}:")
    for prec, res in results.items():
        t, py = statistics.median(res["tune-trainer"]), statistics.median(res["python"])
        print(f"  {prec:5s} tune-trainer {t:8.0f} samples/s   python3-torch {py:8.0f} samples/s   ratio {t / py:.2f}x")


if __name__ == "__main__":
    main()
