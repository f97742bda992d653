"""A tiny Lightning trial for the tests: logistic regression on a fixed synthetic 2-class set,
TuneCallback(metrics=["val_acc", "val_loss", "lr"]). Config: lr, max_epochs, devices (2: DDP on
CPU, Gloo), val_check_interval (default 1.0), loader ("plain": a shuffling DataLoader, the
default; "resumable": one Lightning saves the position of in its checkpoint), log_batches (write
every training batch's samples), exit_delay_s (after a fit told to stop or pause, wait this long
before exiting: a slow teardown). The optimizer's lr is set from the config when training
starts, so a PBT exploit's new lr applies over the donor checkpoint's. Each rank appends what it
did to <trial_dir>/rank<global rank>.jsonl: one line per finished training epoch, and one at the
end with the callback's stopped/paused flags; with log_batches, one line per training batch to
<trial_dir>/batches<global rank>.jsonl."""
import json
import os
import sys
import time

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, Sampler, TensorDataset

import tune_client
from tune_client.lightning import TuneCallback


def dataset(n: int, seed: int) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=g)
    y = (x @ torch.arange(1.0, 9.0) > 0).long()
    return TensorDataset(x, y, torch.arange(n))  # the sample's index, for the batch log


class EpochSampler(Sampler):
    """A shuffle seeded by the epoch (Lightning calls set_epoch before each one)."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        return iter(torch.randperm(self.n, generator=torch.Generator().manual_seed(self.epoch)).tolist())

    def __len__(self) -> int:
        return self.n


class ResumableLoader(DataLoader):
    """A DataLoader with state_dict/load_state_dict (what torchdata's StatefulDataLoader has):
    Lightning keeps its state in the checkpoint, and a fit resumed mid-epoch skips the batches
    the epoch already trained."""

    def __init__(self, data: TensorDataset, batch_size: int) -> None:
        super().__init__(data, batch_size=batch_size, sampler=EpochSampler(len(data)))
        self._served = 0
        self._skip = 0

    def __iter__(self):
        skip, self._skip = self._skip, 0
        self._served = skip
        for index, batch in enumerate(super().__iter__()):
            if index >= skip:
                self._served = index + 1
                yield batch

    def state_dict(self) -> dict:
        return {"batches": self._served}

    def load_state_dict(self, state: dict) -> None:
        self._skip = int(state["batches"])


class Model(pl.LightningModule):
    def __init__(self, lr: float) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.layer = torch.nn.Linear(8, 2)

    def training_step(self, batch, _):
        x, y, _ = batch
        return torch.nn.functional.cross_entropy(self.layer(x), y)

    def validation_step(self, batch, _):
        x, y, _ = batch
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
    def __init__(self, tune_cb: TuneCallback, log_batches: bool) -> None:
        self.tune_cb = tune_cb
        self.log_batches = log_batches

    def write(self, trainer: pl.Trainer, record: dict, log: str = "rank") -> None:
        path = os.path.join(os.environ["TUNE_TRIAL_DIR"], "%s%d.jsonl" % (log, trainer.global_rank))
        with open(path, "a") as f:
            f.write(json.dumps(record) + "\n")

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.write(trainer, {"epoch": trainer.current_epoch + 1, "step": trainer.global_step,
                             "resumed_from": os.environ.get("TUNE_CHECKPOINT")})

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.log_batches:
            self.write(trainer, {"epoch": trainer.current_epoch + 1, "batch": batch_idx,
                                 "step": trainer.global_step, "samples": batch[2].tolist(),
                                 "resumed_from": os.environ.get("TUNE_CHECKPOINT")}, "batches")


def main() -> int:
    config = tune_client.load_config()
    torch.manual_seed(0)
    tune_cb = TuneCallback(metrics=["val_acc", "val_loss", "lr"], checkpoint=True)
    rank_log = RankLog(tune_cb, bool(config.get("log_batches", False)))
    devices = int(config.get("devices", 1))
    trainer = pl.Trainer(
        accelerator="cpu", devices=devices, strategy="ddp" if devices > 1 else "auto",
        max_epochs=int(config["max_epochs"]), callbacks=[tune_cb, rank_log],
        val_check_interval=float(config.get("val_check_interval", 1.0)),
        logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, num_sanity_val_steps=0)
    loader = config.get("loader", "plain")
    if loader not in ("plain", "resumable"):
        raise ValueError("loader must be plain or resumable, got %r" % (loader,))
    train = DataLoader(dataset(256, 1), batch_size=32, shuffle=True) if loader == "plain" \
        else ResumableLoader(dataset(256, 1), batch_size=32)
    val = DataLoader(dataset(128, 2), batch_size=64)
    trainer.fit(Model(float(config["lr"])), train, val, ckpt_path=TuneCallback.ckpt_path())
    rank_log.write(trainer, {"end": True, "stopped": tune_cb.stopped, "paused": tune_cb.paused,
                             "last_decision": tune_cb.last_decision and tune_cb.last_decision.value})
    if tune_cb.last_decision in (tune_client.Decision.STOP, tune_client.Decision.PAUSE):
        delay = float(config.get("exit_delay_s", 0))
        if delay > 0:
            time.sleep(delay)  # killed after stop_grace_s if longer
            rank_log.write(trainer, {"exit_delay_s": delay})  # not written when killed
    return 0


if __name__ == "__main__":
    sys.exit(main())
