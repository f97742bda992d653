#!/usr/bin/env python3
"""A LightningModule and a LightningDataModule on Fashion-MNIST, tuned by `tune` through
tune_client.lightning.TuneCallback. Copy this folder and replace the module and the data.

    bash scripts/setup.sh && bash scripts/get_data.sh && bash scripts/build.sh
    source .venv/bin/activate                 # python3 with lightning and tune_client
    build/bin/tune run examples/lightning/space.json

Each trial runs this script; its config (TUNE_CONFIG) is space.json's "trainer" section with the
sampled values merged in. The callback reports val_acc/val_loss after each validation, saves the
Trainer's checkpoint with it, and obeys the tuner: ASHA's "stop" ends the fit cleanly; a "pause"
(HyperBand, PBT) saves, acknowledges and ends it, and the relaunched trial resumes from
TuneCallback.ckpt_path(). Any Trainer option works as usual (precision, devices with
strategy="ddp", accumulate_grad_batches, gradient_clip_val, ...): only rank 0 reports.
"""
import argparse
import os
import struct
import sys

import lightning.pytorch as pl
import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import tune_client
from tune_client.lightning import TuneCallback


def read_idx(path: str) -> np.ndarray:
    """An IDX file (the MNIST format: big-endian dims, then uint8 data) as an array."""
    with open(path, "rb") as f:
        data = f.read()
    _, _, dtype, ndim = struct.unpack(">BBBB", data[:4])
    if dtype != 0x08:
        raise ValueError("%s: not an unsigned-byte IDX file" % path)
    shape = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


class FashionMNIST(pl.LightningDataModule):
    """Fashion-MNIST from the IDX files scripts/get_data.sh fetches into data/fashion/; the
    first `train_subset` training and `val_subset` test images (0: all)."""

    def __init__(self, data_dir: str, batch_size: int, train_subset: int = 0,
                 val_subset: int = 0) -> None:
        super().__init__()
        self.data_dir, self.batch_size = data_dir, batch_size
        self.train_subset, self.val_subset = train_subset, val_subset

    def _load(self, prefix: str, subset: int) -> TensorDataset:
        images = read_idx(os.path.join(self.data_dir, prefix + "-images-idx3-ubyte"))
        labels = read_idx(os.path.join(self.data_dir, prefix + "-labels-idx1-ubyte"))
        if subset:
            images, labels = images[:subset], labels[:subset]
        x = torch.from_numpy(images.astype(np.float32) / 255.0).view(len(images), 1, 28, 28)
        return TensorDataset((x - 0.2860) / 0.3530, torch.from_numpy(labels.astype(np.int64)))

    def setup(self, stage: str) -> None:
        self.train_set = self._load("train", self.train_subset)
        self.val_set = self._load("t10k", self.val_subset)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val_set, batch_size=512)


class Classifier(pl.LightningModule):
    """A small CNN (channels > 0) or MLP (channels 0) with dropout, trained with AdamW."""

    def __init__(self, lr: float, hidden: int = 128, channels: int = 16, dropout: float = 0.0,
                 weight_decay: float = 0.0) -> None:
        super().__init__()
        self.save_hyperparameters()
        if channels:
            features = nn.Sequential(
                nn.Conv2d(1, channels, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                nn.Conv2d(channels, 2 * channels, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                nn.Flatten())
            width = 2 * channels * 7 * 7
        else:
            features, width = nn.Flatten(), 28 * 28
        self.net = nn.Sequential(features, nn.Linear(width, hidden), nn.ReLU(),
                                 nn.Dropout(dropout), nn.Linear(hidden, 10))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = nn.functional.cross_entropy(self.net(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self.net(x)
        self.log("val_loss", nn.functional.cross_entropy(logits, y), sync_dist=True)
        self.log("val_acc", (logits.argmax(1) == y).float().mean(), sync_dist=True)

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr,
                                 weight_decay=self.hparams.weight_decay)

    def on_train_start(self) -> None:
        # After a resume the optimizer state came from the checkpoint; after a PBT exploit the
        # config's (mutated) hyperparameters must win over the checkpoint's.
        for group in self.optimizers().optimizer.param_groups:
            group["lr"], group["weight_decay"] = self.hparams.lr, self.hparams.weight_decay


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "..", "data", "fashion"),
        help="folder of the Fashion-MNIST IDX files (default: the repository's data/fashion)")
    args = parser.parse_args()
    config = tune_client.load_config()  # on every rank; only rank 0 connects (in the callback)
    pl.seed_everything(int(config.get("seed", 0)), workers=True)
    model = Classifier(lr=float(config["lr"]), hidden=int(config.get("hidden", 128)),
                       channels=int(config.get("channels", 16)),
                       dropout=float(config.get("dropout", 0.0)),
                       weight_decay=float(config.get("weight_decay", 0.0)))
    data = FashionMNIST(args.data, int(config.get("batch_size", 64)),
                        int(config.get("train_subset", 0)), int(config.get("val_subset", 0)))
    tune_callback = TuneCallback(metrics=["val_acc", "val_loss"], checkpoint=True)
    devices = int(config.get("devices", 1))
    trainer = pl.Trainer(
        accelerator=config.get("accelerator", "cpu"), devices=devices,
        strategy="ddp" if devices > 1 else "auto",
        max_epochs=int(config["max_epochs"]),
        precision=config.get("precision", "32-true"),
        accumulate_grad_batches=int(config.get("accumulate_grad_batches", 1)),
        gradient_clip_val=config.get("gradient_clip_val"),
        callbacks=[tune_callback],
        logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, num_sanity_val_steps=0)
    torch.set_num_threads(int(config.get("threads", 1)))
    trainer.fit(model, datamodule=data, ckpt_path=TuneCallback.ckpt_path())
    return 0


if __name__ == "__main__":
    sys.exit(main())
