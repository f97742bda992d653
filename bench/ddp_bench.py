#!/usr/bin/python3
"""tune-trainer DDP scaling on CPU (Gloo): training samples/s of 1 rank vs 2 ranks (issue 3, part 5).

Model: the default MLP 784-256-256-10 on Fashion-MNIST (60,000 training images), Adam lr 1e-3,
fp32, one thread per rank (`threads=1`), 2 epochs; throughput is the second epoch's
samples/s line of rank 0 (the whole epoch's records over its wall time, so for 2 ranks it is
the combined rate). Configurations:
  1 rank,  batch 128
  2 ranks, batch 64 per rank  (the same global batch 128: the same optimisation)
  2 ranks, batch 128 per rank (global batch 256: half the optimizer steps and all-reduces)
  2 ranks, batch 128/rank, zero_stage 1 (the optimizer state sharded over the ranks, ZeRO stage 1)
  2 ranks, batch 128/rank, zero_stage 2 (the gradients too: each bucket reduced to its owner)
Each run also prints rank 0's `allreduce_wait` share from profiler=simple. Median of --runs
runs, interleaved. Then memory: a wide MLP (784-4096x4-10, 53.6M parameters; Adam's state is
429 MB, its gradients 214 MB) for one short epoch on 2 ranks with zero_stage 0, 1 and 2, the
peak RSS of each rank.
The ranks are started like `tune run` does (torchrun's environment on
127.0.0.1, a fresh port per run).

Usage: /usr/bin/python3 bench/ddp_bench.py [--trainer build-ddp/bin/tune-trainer] [--runs 3]
"""
import argparse
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(trainer, ranks, batch, epochs, workdir, extra=()):
    port = str(free_port())
    procs = []
    for rank in range(ranks):
        env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
        if ranks > 1:
            env.update(WORLD_SIZE=str(ranks), RANK=str(rank), LOCAL_RANK=str(rank),
                       MASTER_ADDR="127.0.0.1", MASTER_PORT=port)
        log = open(os.path.join(workdir, "rank%d.log" % rank), "w")
        procs.append(subprocess.Popen(
            [trainer, os.path.join(workdir, "config.json"), "batch_size=%d" % batch,
             "max_epochs=%d" % epochs] + list(extra), env=env, stdout=log, stderr=subprocess.STDOUT))
    codes, peaks = [], []
    for p in procs:
        _, status, usage = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        codes.append(p.returncode)
        peaks.append(usage.ru_maxrss / 1024.0)  # MiB
    run.peak_rss_mb = peaks
    text = open(os.path.join(workdir, "rank0.log")).read()
    if any(codes):
        sys.exit("tune-trainer failed (%s):\n%s" % (codes, text))
    rates = [float(m) for m in re.findall(r"([0-9.]+) samples/s\n", text)]
    wait = re.search(r"allreduce_wait\s*\|\s*\S+\s*\|\s*\S+\s*\|\s*\S+\s*\|\s*([0-9.]+)%", text)
    return rates[-1], float(wait.group(1)) if wait else 0.0


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--trainer", default=os.path.join(ROOT, "build-ddp", "bin", "tune-trainer"))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    configs = [("1 rank,  batch 128", 1, 128, ()), ("2 ranks, batch 64/rank (global 128)", 2, 64, ()),
               ("2 ranks, batch 128/rank (global 256)", 2, 128, ()),
               ("2 ranks, batch 128/rank, zero_stage 1", 2, 128, ("zero_stage=1",)),
               ("2 ranks, batch 128/rank, zero_stage 2", 2, 128, ("zero_stage=2",))]
    results = {name: [] for name, _, _, _ in configs}
    waits = {name: [] for name, _, _, _ in configs}
    memory = {0: [], 1: [], 2: []}
    with tempfile.TemporaryDirectory() as workdir:
        with open(os.path.join(workdir, "config.json"), "w") as f:
            f.write('{"dataset": "fashion_mnist", "data_dir": "%s", "threads": 1, "profiler": "simple",'
                    ' "checkpoint": false}' % os.path.join(ROOT, "data"))
        for _ in range(args.runs):
            for name, ranks, batch, extra in configs:
                rate, wait = run(args.trainer, ranks, batch, args.epochs, workdir, extra)
                results[name].append(rate)
                waits[name].append(wait)
            for stage in memory:
                run(args.trainer, 2, 128, 1, workdir,
                    ("zero_stage=%d" % stage, "hidden=4096", "layers=4", "train_subset=1024", "val_subset=1000"))
                memory[stage].append(max(run.peak_rss_mb))
    base = statistics.median(results[configs[0][0]])
    print("cores: %d   runs: %d (median)" % (os.cpu_count(), args.runs))
    for name, _, _, _ in configs:
        rate = statistics.median(results[name])
        print("%-38s %9.0f samples/s  x%.2f   allreduce_wait %4.1f%% of rank 0's profiled time"
              % (name, rate, rate / base, statistics.median(waits[name])))
    for stage in memory:
        print("MLP 784-4096x4-10 (53.6M parameters, Adam), 2 ranks, zero_stage %d: peak RSS %6.0f MiB per rank"
              % (stage, statistics.median(memory[stage])))


if __name__ == "__main__":
    main()
