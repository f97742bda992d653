"""A tiny Lightning trial for the tests: logistic regression on a fixed synthetic 2-class set,
TuneCallback(metrics=["val_acc", "val_loss", "lr"]). Config: lr, max_epochs, devices (2: DDP on
CPU, Gloo), val_check_interval (default 1.0). The optimizer's lr is set from the config when
training starts, so a PBT exploit's new lr applies over the donor checkpoint's. Each rank appends what it did to <trial_dir>/rank<global rank>.jsonl: one line per
finished training epoch, and one at the end with the callback's stopped/paused flags."""
import json
import os
import sys

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

import tune_client
from tune_client.lightning import TuneCallback


def dataset(n: int, seed: int) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=g)
    y = (x @ torch.arange(1.0, 9.0) > 0).long()
    return TensorDataset(x, y)


class Model(pl.LightningModule):
    def __init__(self, lr: float) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.layer = torch.nn.Linear(8, 2)

    def training_step(self, batch, _):
        x, y = batch
        return torch.nn.functional.cross_entropy(self.layer(x), y)

    def validation_step(self, batch, _):
        x, y = batch
        logits = self.layer(x)
        self.log("val_loss", torch.nn.functional.cross_entropy(logits, y), sync_dist=True)
        self.log("val_acc", (logits.argmax(1) == y).float().mean(), sync_dist=True)
        self.log("lr", float(self.trainer.optimizers[0].param_groups[0]["lr"]))

    def on_train_start(self) -> None:
        for group in self.trainer.optimizers[0].param_groups:
            group["lr"] = self.hparams.lr

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


class RankLog(pl.Callback):
    def __init__(self, tune_cb: TuneCallback) -> None:
        self.tune_cb = tune_cb

    def write(self, trainer: pl.Trainer, record: dict) -> None:
        path = os.path.join(os.environ["TUNE_TRIAL_DIR"], "rank%d.jsonl" % trainer.global_rank)
        with open(path, "a") as f:
            f.write(json.dumps(record) + "\n")

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.write(trainer, {"epoch": trainer.current_epoch + 1, "step": trainer.global_step,
                             "resumed_from": os.environ.get("TUNE_CHECKPOINT")})


def main() -> int:
    config = tune_client.load_config()
    torch.manual_seed(0)
    tune_cb = TuneCallback(metrics=["val_acc", "val_loss", "lr"], checkpoint=True)
    rank_log = RankLog(tune_cb)
    devices = int(config.get("devices", 1))
    trainer = pl.Trainer(
        accelerator="cpu", devices=devices, strategy="ddp" if devices > 1 else "auto",
        max_epochs=int(config["max_epochs"]), callbacks=[tune_cb, rank_log],
        val_check_interval=float(config.get("val_check_interval", 1.0)),
        logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, num_sanity_val_steps=0)
    train = DataLoader(dataset(256, 1), batch_size=32, shuffle=True)
    val = DataLoader(dataset(128, 2), batch_size=64)
    trainer.fit(Model(float(config["lr"])), train, val, ckpt_path=TuneCallback.ckpt_path())
    rank_log.write(trainer, {"end": True, "stopped": tune_cb.stopped, "paused": tune_cb.paused,
                             "last_decision": tune_cb.last_decision and tune_cb.last_decision.value})
    return 0


if __name__ == "__main__":
    sys.exit(main())
