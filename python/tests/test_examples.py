"""The examples a user copies, each run by the real `tune` in a tiny configuration (overrides on
the command line): examples/python_sgd.json, examples/lightning/space.json (ASHA over a
LightningModule on Fashion-MNIST) and examples/pytorch/space.json (PBT over a plain PyTorch
loop). Their commands say `python3`: this interpreter's folder goes first on PATH."""
import os
import sys
from pathlib import Path

from conftest import REPO, require, run_tune, trial_env

FASHION = REPO / "data" / "fashion"


def env() -> dict:
    base = trial_env()
    base["PATH"] = os.path.dirname(sys.executable) + os.pathsep + base.get("PATH", "")
    return base


def have_fashion() -> bool:
    return (FASHION / "train-images-idx3-ubyte").is_file()


def test_python_sgd(tune_bin: Path, tmp_path: Path) -> None:
    run = run_tune(tune_bin, REPO / "examples" / "python_sgd.json", tmp_path,
                   ["--num-samples", "1", "trainer.max_epochs=5", "scheduler.max_t=5"], env=env())
    assert run.proc.returncode == 0, run.describe()
    assert len(run.trial_dirs()) == 2
    assert all(run.results(t) for t in run.trial_dirs())


def test_lightning_example(tune_bin: Path, tmp_path: Path) -> None:
    require("lightning", __import__("importlib").util.find_spec("lightning") is not None)
    require("Fashion-MNIST in data/fashion (scripts/get_data.sh)", have_fashion())
    run = run_tune(tune_bin, REPO / "examples" / "lightning" / "space.json", tmp_path,
                   ["--num-samples", "3", "--max-concurrent", "1", "trainer.max_epochs=3",
                    "scheduler.max_t=3", "trainer.train_subset=1024", "trainer.val_subset=512",
                    "search.n_startup_trials=3"], env=env())
    assert run.proc.returncode == 0, run.describe()
    trials = run.trial_dirs()
    assert len(trials) == 3
    lengths = [len(run.results(t)) for t in trials]
    assert lengths[0] == 3 and all(1 <= n <= 3 for n in lengths), (lengths, run.describe())
    best = max(r["val_acc"] for t in trials for r in run.results(t))
    assert best > 0.5, "a small CNN learns Fashion-MNIST well past chance in 3 short epochs"
    assert (trials[0] / "checkpoint_3" / "lightning.ckpt").is_file()


def test_pytorch_example(tune_bin: Path, tmp_path: Path) -> None:
    require("Fashion-MNIST in data/fashion (scripts/get_data.sh)", have_fashion())
    run = run_tune(tune_bin, REPO / "examples" / "pytorch" / "space.json", tmp_path,
                   ["trainer.max_epochs=4", "scheduler.perturbation_interval=1",
                    "scheduler.quantile_fraction=0.5", "trainer.train_subset=1024",
                    "trainer.val_subset=512"], env=env())
    assert run.proc.returncode == 0, run.describe()
    trials = run.trial_dirs()
    assert len(trials) == 4
    ends = [run.results(t)[-1]["epoch"] for t in trials if run.results(t)]
    assert len(ends) == 4 and max(ends) == 4, (ends, run.describe())
    assert max(r["val_acc"] for t in trials for r in run.results(t)) > 0.5
