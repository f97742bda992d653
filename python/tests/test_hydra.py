"""docs/python.md's Hydra recipe: a Hydra app as a trial, its config overridden by TUNE_CONFIG.
The app in the docs is python/tests/trials/hydra_app.py, word for word (checked here)."""
import re
from pathlib import Path

import pytest

from conftest import REPO, TRIALS, python_command, require, run_tune
from tune_client import TuneError, hydra_overrides

try:
    import hydra  # noqa: F401
    HAVE_HYDRA = True
except ImportError:
    HAVE_HYDRA = False


def test_overrides_from_a_config() -> None:
    config = {"lr": 0.001, "epochs": 3, "amp": True, "tag": "a, b=c", "none": None,
              "model": {"hidden": 128, "layers": [1, 2]}, "empty": {}}
    assert hydra_overrides(config, trial_dir="/runs/t_1") == [
        "++lr=0.001", "++epochs=3", "++amp=true", '++tag="a, b=c"', "++none=null",
        "++model.hidden=128", "++model.layers=[1,2]", "++empty={}",
        'hydra.run.dir="/runs/t_1/hydra"']
    with pytest.raises(TuneError, match="config key x has a value Hydra cannot take"):
        hydra_overrides({"x": object()}, trial_dir="")


def test_the_docs_show_the_tested_app() -> None:
    docs = (REPO / "docs" / "python.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", docs, re.S)
    app = (TRIALS / "hydra_app.py").read_text()
    assert app in blocks, "docs/python.md must show python/tests/trials/hydra_app.py verbatim"


def test_hydra_app_as_a_trial(tune_bin: Path, tmp_path: Path) -> None:
    require("hydra-core", HAVE_HYDRA)
    spec = {
        "name": "hydra", "metric": "loss", "mode": "min", "num_samples": 1,
        "trainer": {"command": python_command(TRIALS / "hydra_app.py"), "max_epochs": 3,
                    "model": {"name": "cnn, wide"}},
        "space": {"optimizer": {"lr": {"grid_search": [0.1, 0.5]}},
                  "model": {"hidden": {"choice": [256]}}},
    }
    run = run_tune(tune_bin, spec, tmp_path)
    assert run.proc.returncode == 0, run.describe()
    trials = run.trial_dirs()
    assert len(trials) == 2
    for trial, lr in zip(trials, (0.1, 0.5)):
        results = run.results(trial)
        # max_epochs=3 and the sampled values reached the app through Hydra's overrides.
        assert len(results) == 3, run.describe()
        assert results[-1]["loss"] == pytest.approx((1 - lr) ** 3)
        assert results[-1]["hidden"] == 256 and results[-1]["name"] == "cnn, wide"
        assert (trial / "hydra" / ".hydra" / "overrides.yaml").is_file(), "run dir in the trial"
