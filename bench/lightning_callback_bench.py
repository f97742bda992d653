#!/usr/bin/env python3
"""What tune_client.lightning.TuneCallback adds to a Lightning epoch (issue 15's target: < 1 %).

Trains examples/lightning/train.py's Classifier (the small CNN) on synthetic 28x28 images, one
epoch per fit round, in three arms interleaved round by round so that machine load drifts hit
all of them alike: no callback; TuneCallback(checkpoint=False) (reporting only); and
TuneCallback(checkpoint=True) (reporting plus the Trainer checkpoint each epoch, what PBT and
retries need). The tuner is a stand-in process answering "continue" to every report over TCP,
as `tune`'s report server does (docs/protocol.md). It prints, per arm, the median epoch time
and the median time spent inside the callback's hook, and the overhead both ways: the
difference of medians (noisy on a loaded machine) and the hook's own time over the epoch time.

    .venv/bin/python bench/lightning_callback_bench.py [--rounds 7] [--samples 4096]
"""
import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def serve(port_file: str) -> None:
    """The stand-in tuner: accepts connections, answers each report with "continue"."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    with open(port_file, "w") as f:
        f.write(str(listener.getsockname()[1]))
    reply = b'{"type":"decision","action":"continue"}\n'
    while True:
        conn, _ = listener.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with conn, conn.makefile("rb") as reader:
            for line in reader:
                if json.loads(line).get("type") == "report":
                    conn.sendall(reply)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=7, help="epochs per arm (interleaved)")
    parser.add_argument("--samples", type=int, default=4096, help="training images per epoch")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return 0

    sys.path.insert(0, os.path.join(ROOT, "examples", "lightning"))
    sys.path.insert(0, os.path.join(ROOT, "python"))
    import lightning.pytorch as pl
    import torch
    from torch.utils.data import DataLoader, TensorDataset
    from train import Classifier  # examples/lightning/train.py
    from tune_client.lightning import TuneCallback

    torch.set_num_threads(args.threads)
    work = tempfile.mkdtemp(prefix="tune-lightning-bench-")
    port_file = os.path.join(work, "port")
    server = subprocess.Popen([sys.executable, __file__, "--serve", port_file])
    try:
        while not os.path.exists(port_file) or not open(port_file).read():
            time.sleep(0.05)
        with open(os.path.join(work, "params.json"), "w") as f:
            json.dump({"lr": 1e-3}, f)
        os.environ.update({"TUNE_REPORT_ADDR": "127.0.0.1:" + open(port_file).read(),
                           "TUNE_TRIAL_ID": "t_bench", "TUNE_TOKEN": "x",
                           "TUNE_CONFIG": os.path.join(work, "params.json"),
                           "TUNE_TRIAL_DIR": work})
        os.environ.pop("TUNE_REPORT_SOCKET", None)
        g = torch.Generator().manual_seed(0)
        x = torch.randn(args.samples, 1, 28, 28, generator=g)
        y = torch.randint(0, 10, (args.samples,), generator=g)
        train = DataLoader(TensorDataset(x, y), batch_size=64, shuffle=True)
        val = DataLoader(TensorDataset(x[:1024], y[:1024]), batch_size=512)

        class Timer(pl.Callback):
            def on_train_epoch_start(self, trainer, pl_module):
                self.start = time.perf_counter()

            def on_train_epoch_end(self, trainer, pl_module):
                self.epoch_s = time.perf_counter() - self.start

        class TimedTuneCallback(TuneCallback):
            hook_s = 0.0

            def on_validation_end(self, trainer, pl_module):
                start = time.perf_counter()
                super().on_validation_end(trainer, pl_module)
                self.hook_s = time.perf_counter() - start

        arms = {"none": None, "report": False, "report+checkpoint": True}
        epochs = {name: [] for name in arms}
        hooks = {name: [] for name in arms}
        models = {name: Classifier(lr=1e-3) for name in arms}
        for round_index in range(args.rounds + 1):  # round 0 warms up
            for name, checkpoint in arms.items():
                timer = Timer()
                callbacks = [timer]
                tune_cb = None
                if checkpoint is not None:
                    tune_cb = TimedTuneCallback(metrics=["val_acc", "val_loss"],
                                                checkpoint=checkpoint)
                    callbacks.append(tune_cb)
                trainer = pl.Trainer(accelerator="cpu", devices=1, max_epochs=1,
                                     callbacks=callbacks, logger=False,
                                     enable_checkpointing=False, enable_progress_bar=False,
                                     enable_model_summary=False, num_sanity_val_steps=0)
                trainer.fit(models[name], train, val)
                if round_index:
                    epochs[name].append(timer.epoch_s)
                    hooks[name].append(tune_cb.hook_s if tune_cb else 0.0)
        base = statistics.median(epochs["none"])
        print("Lightning %s, torch %s, %d threads; CNN on %d images (batch 64) + 1024 val; "
              "%d interleaved rounds" % (pl.__version__, torch.__version__, args.threads,
                                          args.samples, args.rounds))
        print("%-18s %10s %12s %12s %12s %12s" % ("arm", "epoch_s", "vs none", "paired",
                                                  "hook_ms", "hook/epoch"))
        for name in arms:
            med = statistics.median(epochs[name])
            hook = statistics.median(hooks[name])
            # The same round's epochs side by side: less of the load drift between rounds.
            paired = statistics.median(a / b - 1 for a, b in zip(epochs[name], epochs["none"]))
            print("%-18s %10.3f %+11.2f%% %+11.2f%% %12.3f %11.3f%%" % (
                name, med, 100 * (med - base) / base, 100 * paired, 1000 * hook,
                100 * hook / med))
        print("epoch_s of every round: " + json.dumps(
            {k: [round(v, 3) for v in vs] for k, vs in epochs.items()}))
    finally:
        server.kill()
        server.wait()
        import shutil
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
