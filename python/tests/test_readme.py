"""README.md's "Tuning your own Lightning module": its train.py and space.json, copied out of the
README as a reader would, tuned by the real `tune`."""
import os
import re
import sys
from pathlib import Path

from conftest import REPO, require, run_tune, trial_env

try:
    import lightning  # noqa: F401
    HAVE_LIGHTNING = True
except ImportError:
    HAVE_LIGHTNING = False

SECTION = "### Tuning your own Lightning module"


def readme_blocks() -> dict:
    """{language: the section's first fenced block in that language}."""
    text = (REPO / "README.md").read_text()
    start = text.index(SECTION)
    end = text.find("\n### ", start + len(SECTION))
    blocks = {}
    for language, body in re.findall(r"```(\w+)\n(.*?)```", text[start:end], re.S):
        blocks.setdefault(language, body)
    return blocks


def test_the_readme_lightning_example_tunes_as_written(tune_bin: Path, tmp_path: Path) -> None:
    require("the lightning package", HAVE_LIGHTNING)
    blocks = readme_blocks()
    assert {"python", "json", "sh"} <= set(blocks), sorted(blocks)
    assert "build/bin/tune run space.json" in blocks["sh"]
    (tmp_path / "train.py").write_text(blocks["python"])
    (tmp_path / "space.json").write_text(blocks["json"])
    # `source .venv/bin/activate`: the spec's python3 is this interpreter.
    env = trial_env()
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    run = run_tune(tune_bin, tmp_path / "space.json", tmp_path, env=env, name="my_lightning",
                   timeout=480)
    assert run.proc.returncode == 0, run.describe()
    trials = run.trial_dirs()
    assert len(trials) == 4, run.describe()
    statuses = {run.final_status(t) for t in trials}
    assert statuses <= {"TERMINATED", "STOPPED"} and "TERMINATED" in statuses, run.describe()
    assert "Best trial:" in run.proc.stdout
    best = max((r["val_acc"] for t in trials for r in run.results(t)))
    assert best > 0.8, run.describe()
