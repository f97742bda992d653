"""tune_client.Session: the wire protocol against a scripted server (errors, encoding) and the
real `tune` binary (continue, stop, pause and resume)."""
import json
import os
import socket
import threading
from pathlib import Path
from typing import Callable, List

import pytest

import tune_client
from tune_client import Decision, Session, TuneError

from conftest import TRIALS, python_command, run_tune


class FakeTuner:
    """A one-connection server: records every line the client sends and answers with `reply`
    (a function of the received message; None: no answer, "close": close the connection)."""

    def __init__(self, reply: Callable[[dict], object]) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(1)
        self.address = "127.0.0.1:%d" % self.listener.getsockname()[1]
        self.received: List[dict] = []
        self.reply = reply
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.listener.accept()
        with conn, conn.makefile("rb") as reader:
            for line in reader:
                message = json.loads(line)
                self.received.append(message)
                answer = self.reply(message)
                if answer == "close":
                    return
                if answer is not None:
                    conn.sendall(answer if isinstance(answer, bytes)
                                 else (json.dumps(answer) + "\n").encode())

    def join(self) -> None:
        self.thread.join(5)
        self.listener.close()


def decide(action: str) -> Callable[[dict], object]:
    return lambda m: {"type": "decision", "action": action} if m["type"] == "report" else None


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    config = tmp_path / "params.json"
    config.write_text(json.dumps({"lr": 0.1, "hidden": 128}))
    for name in ("TUNE_REPORT_SOCKET", "TUNE_CHECKPOINT", "RANK"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TUNE_TRIAL_ID", "t_00001")
    monkeypatch.setenv("TUNE_TOKEN", "secret")
    monkeypatch.setenv("TUNE_CONFIG", str(config))
    monkeypatch.setenv("TUNE_TRIAL_DIR", str(tmp_path))
    return config


def test_hello_report_encoding_and_done(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    server = FakeTuner(decide("continue"))
    monkeypatch.setenv("TUNE_REPORT_ADDR", server.address)
    monkeypatch.setenv("TUNE_CHECKPOINT", "/ck/3")
    with Session.from_env() as session:
        assert session.config == {"lr": 0.1, "hidden": 128}
        assert session.checkpoint == "/ck/3"
        assert session.checkpoint_dir(4) == os.path.join(str(env.parent), "checkpoint_4")
        decision = session.report(1, {"loss": float("nan"), "up": float("inf"),
                                      "down": float("-inf"), "name": "x", "ok": True,
                                      "none": None}, checkpoint=Path("/ck/1"))
        assert decision is Decision.CONTINUE and decision == "continue"
        session.heartbeat()
    server.join()
    hello, report, heartbeat, done = server.received
    assert hello == {"type": "hello", "trial_id": "t_00001", "token": "secret",
                     "pid": os.getpid()}
    assert report == {"type": "report", "iter": 1, "checkpoint": "/ck/1",
                      "metrics": {"loss": "nan", "up": "inf", "down": "-inf", "name": "x",
                                  "ok": True, "none": None}}
    assert heartbeat == {"type": "heartbeat"} and done == {"type": "done"}


def test_stop_and_pause_decisions(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    actions = iter(["continue", "stop"])
    server = FakeTuner(lambda m: {"type": "decision", "action": next(actions)}
                       if m["type"] == "report" else None)
    monkeypatch.setenv("TUNE_REPORT_ADDR", server.address)
    session = Session.from_env()
    assert session.report(1, {"x": 1}) is Decision.CONTINUE
    assert session.report(2, {"x": 2}) is Decision.STOP and session.should_stop
    session.done()
    server.join()
    # After a stop the trial did not finish by itself: no "done" (the tuner records STOPPED).
    assert server.received[-1]["type"] == "report", server.received
    assert not session.is_open

    server = FakeTuner(decide("pause"))
    monkeypatch.setenv("TUNE_REPORT_ADDR", server.address)
    with Session.from_env() as session:
        assert session.report(3, {"x": 3}) is Decision.PAUSE and session.should_pause
        session.paused("/ck/3")
        assert not session.is_open
    server.join()
    assert server.received[-1] == {"type": "paused", "checkpoint": "/ck/3"}, "no done after it"


def test_missing_and_bad_environment_is_a_clear_error(env: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TUNE_REPORT_ADDR", raising=False)
    with pytest.raises(TuneError, match="TUNE_REPORT_ADDR is not set .*tune run"):
        Session.from_env()
    monkeypatch.setenv("TUNE_REPORT_ADDR", "localhost")
    with pytest.raises(TuneError, match='"localhost" \\(TUNE_REPORT_ADDR\\) is not host:port'):
        Session.from_env()
    monkeypatch.setenv("TUNE_REPORT_ADDR", "127.0.0.1:1")
    env.write_text("{not json")
    with pytest.raises(TuneError, match="TUNE_CONFIG file .*params.json is not valid JSON"):
        Session.from_env()
    env.write_text("[1, 2]")
    with pytest.raises(TuneError, match="must hold a JSON object, not list"):
        Session.from_env()
    env.write_text("{}")
    monkeypatch.setenv("RANK", "zero")
    with pytest.raises(TuneError, match="RANK is not a rank: 'zero'"):
        Session.from_env()
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(TuneError, match="cannot connect to tuner at 127.0.0.1:1"):
        Session.from_env()


def test_other_ranks_connect_to_nothing(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TUNE_REPORT_ADDR", "127.0.0.1:1")  # nothing listens there
    monkeypatch.setenv("RANK", "1")
    with Session.from_env() as session:
        assert not session.is_reporting and session.config["hidden"] == 128
        assert session.report(1, {"x": 1}) is Decision.CONTINUE
        session.heartbeat()
        session.paused("/ck")
    assert Session.from_env(rank=3).is_reporting is False


def test_lost_connection_and_bad_reply(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    server = FakeTuner(lambda m: "close" if m["type"] == "report" else None)
    monkeypatch.setenv("TUNE_REPORT_ADDR", server.address)
    session = Session.from_env()
    with pytest.raises(TuneError, match="lost connection to tuner at .*: the tuner closed"):
        session.report(1, {"x": 1})
    server.join()
    with pytest.raises(TuneError, match="already closed"):
        session.report(2, {"x": 1})

    server = FakeTuner(lambda m: {"type": "decision", "action": "explode"}
                       if m["type"] == "report" else None)
    monkeypatch.setenv("TUNE_REPORT_ADDR", server.address)
    with pytest.raises(TuneError, match="unexpected reply from tuner"):
        Session.from_env().report(1, {"x": 1})
    server.join()


def test_bad_arguments(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TUNE_REPORT_ADDR", "127.0.0.1:1")
    monkeypatch.setenv("RANK", "1")
    session = Session.from_env()
    with pytest.raises(ValueError, match="iteration must be an integer >= 0, got -1"):
        session.report(-1, {})
    with pytest.raises(TypeError, match="metric 'm' must be a number, string, bool or None"):
        session.report(1, {"m": [1, 2]})
    assert session.report(2.0, {"m": 1}) is Decision.CONTINUE


def plain_spec(**overrides: object) -> dict:
    spec = {
        "name": "plain", "metric": "score", "mode": "max", "num_samples": 2,
        "trainer": {"command": python_command(TRIALS / "plain_trial.py"), "max_epochs": 4},
        "space": {"x": {"grid_search": [1.0, 2.0]}},
    }
    spec.update(overrides)
    return spec


def test_real_tune_reports_and_stops(tune_bin: Path, tmp_path: Path) -> None:
    # A stopper ends every trial at training_iteration 2: the trial is told "stop" there.
    spec = plain_spec(num_samples=1, stop={"training_iteration": 2})
    run = run_tune(tune_bin, spec, tmp_path)
    assert run.proc.returncode == 0, run.describe()
    trials = run.trial_dirs()
    assert len(trials) == 2, run.describe()
    for trial in trials:
        assert [r["epoch"] for r in run.results(trial)] == [1, 2], run.describe()
        assert [d["decision"] for d in run.decisions(trial)] == ["continue", "stop"]


def test_real_tune_pause_resumes_from_the_checkpoint(tune_bin: Path, tmp_path: Path) -> None:
    # The median rule without hard_stop, one trial at a time: a trial worse than the median of
    # those before it is paused, and runs on once no new trial is left, relaunched from the
    # checkpoint it acknowledged; it counts on from there. x=1.0 scores below x=2.0.
    spec = plain_spec(max_concurrent=1, space={"x": {"grid_search": [2.0, 1.0]}}, scheduler={
        "type": "median", "time_attr": "training_iteration", "grace_period": 1,
        "min_samples_required": 1, "hard_stop": False})
    run = run_tune(tune_bin, spec, tmp_path)
    assert run.proc.returncode == 0, run.describe()
    resumed = 0
    for trial in run.trial_dirs():
        assert [r["epoch"] for r in run.results(trial)] == [1, 2, 3, 4], run.describe()
        decisions = run.decisions(trial)
        # After each pause the next epoch ran in a new process resumed from that checkpoint.
        for before, after in zip(decisions, decisions[1:]):
            if before["decision"] == "pause":
                assert after["resumed_from"] == str(trial / ("checkpoint_%d" % before["epoch"]))
                resumed += 1
    assert resumed >= 1, run.describe()
