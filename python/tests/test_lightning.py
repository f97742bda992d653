"""tune_client.lightning.TuneCallback with real Lightning on CPU under the real `tune`: ASHA
stopping a trial, a pause resumed from the Lightning checkpoint, a PBT exploit resumed from
another trial's checkpoint with a new lr, several validations per epoch, and DDP with 2 CPU
ranks where only rank 0 reports and both ranks stop."""
import json
from pathlib import Path
from typing import Dict, List

import pytest

from conftest import TRIALS, Experiment, python_command, require, run_tune

try:
    import lightning  # noqa: F401
    HAVE_LIGHTNING = True
except ImportError:
    HAVE_LIGHTNING = False


@pytest.fixture(autouse=True)
def needs_lightning() -> None:
    require("the lightning package", HAVE_LIGHTNING)


def lightning_spec(**overrides: object) -> dict:
    spec = {
        "name": "lightning", "metric": "val_acc", "mode": "max", "num_samples": 1,
        "max_concurrent": 1,
        "trainer": {"command": python_command(TRIALS / "lightning_trial.py"), "max_epochs": 3},
        # lr 0 never learns: it is the worse trial, and runs second.
        "space": {"lr": {"grid_search": [0.5, 0.0]}},
    }
    spec.update(overrides)
    return spec


def rank_log(trial: Path, rank: int) -> List[Dict]:
    path = trial / ("rank%d.jsonl" % rank)
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_asha_stops_the_worse_trial(tune_bin: Path, tmp_path: Path) -> None:
    spec = lightning_spec(scheduler={"type": "asha", "time_attr": "training_iteration",
                                     "max_t": 3, "grace_period": 1, "reduction_factor": 2})
    run = run_tune(tune_bin, spec, tmp_path)
    assert run.proc.returncode == 0, run.describe()
    good, bad = run.trial_dirs()
    good_results, bad_results = run.results(good), run.results(bad)
    assert [r["epoch"] for r in good_results] == [1, 2, 3], run.describe()
    assert good_results[-1]["val_acc"] > 0.8
    assert [r["epoch"] for r in bad_results] == [1], run.describe()
    assert bad_results[0]["val_acc"] < good_results[0]["val_acc"]
    # The stopped trial trained no further epoch; its Trainer ended cleanly (exit 0, stopped).
    assert [r.get("epoch") for r in rank_log(bad, 0) if "epoch" in r] == [1]
    assert rank_log(bad, 0)[-1] == {"end": True, "stopped": True, "paused": False,
                                    "last_decision": "stop"}
    # Pruned: STOPPED, not TERMINATED (the callback sends no "done" after a stop).
    assert run.final_status(bad) == "STOPPED", run.describe()
    # The good one ran to ASHA's max_t, whose result is answered "stop" too: the end of its
    # budget, TERMINATED.
    assert [r.get("epoch") for r in rank_log(good, 0) if "epoch" in r] == [1, 2, 3]
    assert run.final_status(good) == "TERMINATED", run.describe()
    # A checkpoint came with each report; only the last 2 are kept.
    assert sorted(p.name for p in good.glob("checkpoint_*")) == ["checkpoint_2", "checkpoint_3"]
    assert (good / "checkpoint_3" / "lightning.ckpt").is_file()


@pytest.mark.parametrize("devices", [1, 2], ids=["1rank", "ddp2ranks"])
def test_pause_resumes_from_the_lightning_checkpoint(tune_bin: Path, tmp_path: Path,
                                                     devices: int) -> None:
    # The median rule without hard_stop, one trial at a time: the worse trial is paused after
    # epoch 1 and runs on after the good one, from its checkpoint. Under DDP every rank pauses
    # and every rank resumes.
    spec = lightning_spec(scheduler={"type": "median", "time_attr": "training_iteration",
                                     "grace_period": 1, "min_samples_required": 1,
                                     "hard_stop": False},
                          trainer={"command": python_command(TRIALS / "lightning_trial.py"),
                                   "max_epochs": 3, "devices": devices})
    run = run_tune(tune_bin, spec, tmp_path)
    assert run.proc.returncode == 0, run.describe()
    _, bad = run.trial_dirs()
    steps_per_epoch = 8 // devices  # 256 samples, batches of 32, split over the ranks
    assert [(r["epoch"], r["step"]) for r in run.results(bad)] == \
        [(e, e * steps_per_epoch) for e in (1, 2, 3)], run.describe()
    for rank in range(devices):
        epochs = [r for r in rank_log(bad, rank) if "epoch" in r]
        ends = [r for r in rank_log(bad, rank) if "end" in r]
        assert [e["paused"] for e in ends] == [True, False], (rank, ends)
        # Epoch 1 trained in the first process; 2 and 3 in the relaunched one, resumed from
        # epoch 1's checkpoint: the epoch count and the optimizer's step count go on, no batch
        # trains twice. (The checkpoint is saved in on_validation_end, as ModelCheckpoint's
        # are, so the relaunch first finishes epoch 1's end hooks before epoch 2.)
        assert [(r["epoch"], r["step"] // steps_per_epoch) for r in epochs] == \
            [(1, 1), (1, 1), (2, 2), (3, 3)], (rank, epochs)
        assert epochs[0]["resumed_from"] is None
        assert {r["resumed_from"] for r in epochs[1:]} == {str(bad / "checkpoint_1")}


def test_ddp_two_cpu_ranks_only_rank_0_reports_and_both_stop(tune_bin: Path,
                                                             tmp_path: Path) -> None:
    # A stopper ends the trial at training_iteration 2 of 4: rank 0 is told "stop" and both
    # ranks end their fit after epoch 2.
    spec = lightning_spec(num_samples=1, space={"lr": 0.5}, stop={"training_iteration": 2},
                          trainer={"command": python_command(TRIALS / "lightning_trial.py"),
                                   "max_epochs": 4, "devices": 2})
    run = run_tune(tune_bin, spec, tmp_path)
    assert run.proc.returncode == 0, run.describe()
    (trial,) = run.trial_dirs()
    assert [r["epoch"] for r in run.results(trial)] == [1, 2], "one report per epoch, rank 0's"
    for rank in (0, 1):
        log = rank_log(trial, rank)
        assert [r["epoch"] for r in log if "epoch" in r] == [1, 2], (rank, log)
        assert log[-1] == {"end": True, "stopped": True, "paused": False,
                           "last_decision": "stop"}, (rank, log)
    # 128 validation samples split over 2 ranks: the reported accuracy is the synced one.
    assert 0.0 <= run.results(trial)[-1]["val_acc"] <= 1.0


def test_pbt_exploit_restores_the_donor_checkpoint_under_the_new_config(tune_bin: Path,
                                                                       tmp_path: Path) -> None:
    # Synchronous PBT over the two trials (lr 0.5, and lr 0 which never learns): at iteration 2
    # both pause, the worse one is exploited, and its relaunch loads a copy of the better one's
    # checkpoint_2 with a mutated lr, which on_train_start puts on the optimizer. (3 epochs: the
    # next perturbation, at 4, would come with the end of training.)
    spec = lightning_spec(max_concurrent=2, resources_per_trial={"cpu": 0.5},
                          scheduler={"type": "pbt", "time_attr": "training_iteration",
                                     "perturbation_interval": 2, "quantile_fraction": 0.5,
                                     "synch": True, "seed": 0,
                                     "hyperparam_mutations": {"lr": {"uniform": [0.1, 1.0]}}},
                          trainer={"command": python_command(TRIALS / "lightning_trial.py"),
                                   "max_epochs": 3})
    run = run_tune(tune_bin, spec, tmp_path, timeout=480)  # 4 Lightning starts, 2 at a time
    assert run.proc.returncode == 0, run.describe()
    good, bad = run.trial_dirs()
    exploits = run.journal("trial_exploited")
    assert [(e["trial_id"], e["source"]) for e in exploits] == [(bad.name, good.name)], \
        run.describe()
    copy = Path(exploits[0]["checkpoint"])
    assert copy.name == "checkpoint_2" and copy.parent.parent == bad, copy
    new_lr = exploits[0]["params"]["lr"]
    assert new_lr > 0.0

    donor = {r["iter"]: r for r in run.results(good)}
    results = run.results(bad)
    # The curve goes on from the donor's report 2: iterations, steps and accuracy continue from
    # its checkpoint, under the new lr.
    assert [r["iter"] for r in results] == [1, 2, 3], run.describe()
    assert [r["training_iteration"] for r in results] == [1, 2, 3]
    assert [r["lr"] for r in results] == [0.0, 0.0, pytest.approx(new_lr)]
    assert [r["step"] for r in results] == [8, 16, donor[2]["step"] + 8]
    assert results[1]["val_acc"] < donor[2]["val_acc"] <= results[2]["val_acc"] + 0.05
    epochs = [r for r in rank_log(bad, 0) if "epoch" in r]
    assert {r["resumed_from"] for r in epochs if r["epoch"] > 2} == {str(copy)}, epochs
    assert json.loads((bad / "params.json").read_text())["lr"] == new_lr
    assert run.final_status(bad) == "TERMINATED", run.describe()


def test_val_check_interval_gives_each_report_its_own_iteration(tune_bin: Path,
                                                                  tmp_path: Path) -> None:
    # Two validations per epoch: four reports over two epochs, iterations 1..4 (the epoch metric
    # says which epoch), each with its own checkpoint_<iteration>.
    spec = lightning_spec(space={"lr": 0.5},
                          trainer={"command": python_command(TRIALS / "lightning_trial.py"),
                                   "max_epochs": 2, "val_check_interval": 0.5})
    run = run_tune(tune_bin, spec, tmp_path)
    assert run.proc.returncode == 0, run.describe()
    (trial,) = run.trial_dirs()
    results = run.results(trial)
    assert [r["iter"] for r in results] == [1, 2, 3, 4], run.describe()
    assert [r["training_iteration"] for r in results] == [1, 2, 3, 4]
    assert [r["epoch"] for r in results] == [1, 1, 2, 2]
    assert [r["step"] for r in results] == [4, 8, 12, 16]
    assert sorted(p.name for p in trial.glob("checkpoint_*")) == ["checkpoint_3", "checkpoint_4"]
    assert run.final_status(trial) == "TERMINATED", run.describe()


def test_ckpt_path_from_tune_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tune_client import TuneError
    from tune_client.lightning import TuneCallback

    monkeypatch.delenv("TUNE_CHECKPOINT", raising=False)
    assert TuneCallback.ckpt_path() is None
    folder = tmp_path / "checkpoint_3"
    folder.mkdir()
    monkeypatch.setenv("TUNE_CHECKPOINT", str(folder))
    with pytest.raises(TuneError, match="checkpoint_3 holds no Lightning checkpoint"):
        TuneCallback.ckpt_path()
    (folder / "epoch=2.ckpt").write_bytes(b"")
    assert TuneCallback.ckpt_path() == str(folder / "epoch=2.ckpt")  # the only *.ckpt
    (folder / "lightning.ckpt").write_bytes(b"")
    assert TuneCallback.ckpt_path() == str(folder / "lightning.ckpt")
    monkeypatch.setenv("TUNE_CHECKPOINT", str(folder / "epoch=2.ckpt"))
    assert TuneCallback.ckpt_path() == str(folder / "epoch=2.ckpt")
    with pytest.raises(ValueError, match="keep_checkpoints must be >= 1"):
        TuneCallback(keep_checkpoints=0)


def test_a_metric_that_was_not_logged_is_an_error_naming_it(tmp_path: Path) -> None:
    import lightning.pytorch as pl
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    from tune_client import Session, TuneError
    from tune_client.lightning import TuneCallback

    class Tiny(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.layer = torch.nn.Linear(2, 1)

        def training_step(self, batch, _):
            return self.layer(batch[0]).pow(2).mean()

        def validation_step(self, batch, _):
            self.log("val_loss", self.layer(batch[0]).pow(2).mean())

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    data = DataLoader(TensorDataset(torch.ones(4, 2)), batch_size=2)
    # A session of rank 1 connects to nothing: the metrics are still collected on rank 0.
    callback = TuneCallback(metrics={"acc": "val_acc"}, checkpoint=False,
                            session=Session("127.0.0.1:1", "t", "x", rank=1))
    trainer = pl.Trainer(accelerator="cpu", max_epochs=1, callbacks=[callback], logger=False,
                         enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, num_sanity_val_steps=0,
                         default_root_dir=str(tmp_path))
    with pytest.raises(TuneError, match="metric 'val_acc' was not logged .*logged: val_loss"):
        trainer.fit(Tiny(), data, data)
