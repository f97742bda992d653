#!/usr/bin/env python3
"""A plain PyTorch training script (no framework) tuned by `tune` through tune_client: an MLP on
Fashion-MNIST with its own loop, checkpoints and resume. Copy it and replace model and data.

    bash scripts/setup.sh && bash scripts/get_data.sh && bash scripts/build.sh
    source .venv/bin/activate                 # python3 with torch and tune_client
    build/bin/tune run examples/pytorch/space.json

space.json runs Population Based Training: every few epochs the worse trials are paused and
relaunched from a copy of a better trial's checkpoint (TUNE_CHECKPOINT) with mutated params
(TUNE_CONFIG). The script therefore checkpoints every epoch, resumes from TUNE_CHECKPOINT
(epoch, weights, optimizer, RNG), then applies the config's hyperparameters, and answers
"pause" by acknowledging its checkpoint and exiting 0.
"""
import argparse
import os
import sys

import numpy as np
import torch
from torch import nn

import tune_client


def load(data_dir: str, prefix: str, subset: int):
    """Images and labels of an MNIST-format IDX pair (16- and 8-byte headers, then uint8s)."""
    images = np.fromfile(os.path.join(data_dir, prefix + "-images-idx3-ubyte"), np.uint8,
                         offset=16).reshape(-1, 784)
    labels = np.fromfile(os.path.join(data_dir, prefix + "-labels-idx1-ubyte"), np.uint8,
                         offset=8)
    if subset:
        images, labels = images[:subset], labels[:subset]
    x = torch.from_numpy(images.astype(np.float32) / 255.0)
    return (x - 0.2860) / 0.3530, torch.from_numpy(labels.astype(np.int64))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "..", "data", "fashion"))
    args = parser.parse_args()
    with tune_client.Session.from_env() as session:
        config = session.config
        torch.manual_seed(int(config.get("seed", 0)))
        torch.set_num_threads(int(config.get("threads", 1)))
        train_x, train_y = load(args.data, "train", int(config.get("train_subset", 0)))
        val_x, val_y = load(args.data, "t10k", int(config.get("val_subset", 0)))
        model = nn.Sequential(nn.Linear(784, int(config.get("hidden", 256))), nn.ReLU(),
                              nn.Dropout(float(config.get("dropout", 0.0))),
                              nn.Linear(int(config.get("hidden", 256)), 10))
        optimizer = torch.optim.SGD(model.parameters(), lr=float(config["lr"]), momentum=0.9)
        start = 1
        if session.checkpoint:  # a pause, a retry, or a PBT exploit (another trial's state)
            state = torch.load(os.path.join(session.checkpoint, "state.pt"))
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            torch.set_rng_state(state["rng"])
            start = state["epoch"] + 1
        for group in optimizer.param_groups:  # the config's values win over the checkpoint's
            group["lr"] = float(config["lr"])
            group["momentum"] = float(config.get("momentum", 0.9))
        batch = int(config.get("batch_size", 128))
        for epoch in range(start, int(config["max_epochs"]) + 1):
            model.train()
            for idx in torch.randperm(len(train_x)).split(batch):
                optimizer.zero_grad()
                nn.functional.cross_entropy(model(train_x[idx]), train_y[idx]).backward()
                optimizer.step()
            model.eval()
            with torch.no_grad():
                logits = model(val_x)
                val_loss = nn.functional.cross_entropy(logits, val_y).item()
                val_acc = (logits.argmax(1) == val_y).float().mean().item()
            # Written completely before the tuner is told about it.
            path = session.checkpoint_dir(epoch)
            os.makedirs(path, exist_ok=True)
            torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                        "rng": torch.get_rng_state(), "epoch": epoch},
                       os.path.join(path, "state.pt.tmp"))
            os.replace(os.path.join(path, "state.pt.tmp"), os.path.join(path, "state.pt"))
            decision = session.report(epoch, {"val_acc": val_acc, "val_loss": val_loss,
                                              "epoch": epoch}, checkpoint=path)
            if decision is tune_client.Decision.STOP:
                break
            if decision is tune_client.Decision.PAUSE and epoch < int(config["max_epochs"]):
                session.paused(path)  # relaunched later from it (or exploited by PBT)
                return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
