"""Shared fixtures: the real `tune` binary runs tiny experiments whose trials are Python programs
using tune_client (installed, or found beside these tests in the repository's python/ folder).

The binary is TUNE_BIN (CTest sets it to the build's), else build/bin/tune of the repository.
Without one the tests that need it are skipped, except on CI (CI=true), where they fail.
"""
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import pytest

REPO = Path(__file__).resolve().parents[2]
PYTHON_DIR = REPO / "python"
TRIALS = Path(__file__).resolve().parent / "trials"


def _tune_bin() -> Optional[Path]:
    candidate = Path(os.environ.get("TUNE_BIN") or REPO / "build" / "bin" / "tune")
    return candidate if candidate.is_file() and os.access(candidate, os.X_OK) else None


def require(what: str, ok: bool) -> None:
    """Skips the test when `what` is missing, except on CI, where that fails it."""
    if not ok:
        if os.environ.get("CI") == "true":
            pytest.fail("%s is missing (CI=true: not skipped)" % what)
        pytest.skip("%s is missing" % what)


@pytest.fixture
def tune_bin() -> Path:
    path = _tune_bin()
    require("the tune binary (set TUNE_BIN)", path is not None)
    assert path is not None
    return path


def trial_env(**extra: str) -> Dict[str, str]:
    """The environment `tune` runs with: trials import tune_client even when not installed."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PYTHON_DIR), env.get("PYTHONPATH")]))
    env.pop("RANK", None)
    env.update(extra)
    return env


class Experiment:
    """A finished `tune run`: its output and experiment directory."""

    def __init__(self, proc: "subprocess.CompletedProcess[str]", directory: Path) -> None:
        self.proc = proc
        self.dir = directory

    def trial_dirs(self) -> List[Path]:
        if not self.dir.is_dir():
            return []
        return sorted(p for p in self.dir.iterdir() if p.is_dir() and p.name.startswith("t_"))

    def results(self, trial: Path) -> List[Dict[str, Any]]:
        path = trial / "result.json"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def journal(self, event_type: str) -> List[Dict[str, Any]]:
        events = [json.loads(line) for line in (self.dir / "journal.jsonl").read_text().splitlines()]
        return [e for e in events if e.get("type") == event_type or e.get("event") == event_type]

    def final_status(self, trial: Path) -> str:
        """The status of the trial's last trial_ended event in the journal ("" when none)."""
        ended = [e for e in self.journal("trial_ended") if e.get("trial_id") == trial.name]
        return ended[-1]["status"] if ended else ""

    def decisions(self, trial: Path) -> List[Dict[str, Any]]:
        path = trial / "decisions.jsonl"
        return [json.loads(l) for l in path.read_text().splitlines()] if path.exists() else []

    def describe(self) -> str:
        text = "exit %d\n--- stdout\n%s\n--- stderr\n%s" % (
            self.proc.returncode, self.proc.stdout[-4000:], self.proc.stderr[-4000:])
        for trial in self.trial_dirs():
            err = trial / "stderr.log"
            if err.exists() and err.stat().st_size:
                text += "\n--- %s/stderr.log\n%s" % (trial.name, err.read_text()[-3000:])
        return text


def run_tune(tune: Path, spec: Any, tmp_path: Path, args: Sequence[str] = (),
             env: Optional[Dict[str, str]] = None, name: str = "exp",
             timeout: float = 240) -> Experiment:
    """Runs `tune run` on `spec` (a dict written to tmp_path/space.json, or a path) with storage
    under tmp_path; returns the finished experiment."""
    if isinstance(spec, dict):
        spec_path = tmp_path / "space.json"
        spec_path.write_text(json.dumps(spec))
    else:
        spec_path = Path(spec)
    storage = tmp_path / "results"
    cmd = [str(tune), "run", str(spec_path), "--storage", str(storage), "--name", name, *args]
    proc = subprocess.run(cmd, env=env or trial_env(), capture_output=True, text=True,
                          timeout=timeout, cwd=str(tmp_path))
    return Experiment(proc, storage / name)


def python_command(script: Path, *args: str) -> List[str]:
    return [sys.executable, str(script), *args]
