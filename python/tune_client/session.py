"""The trial side of the report protocol (docs/protocol.md): the Python twin of
tuner/client/session.h, standard library only.

A program started by `tune run` finds the tuner's address, its trial id, token and config in its
environment. It reports one result per iteration and obeys the tuner's decision::

    import tune_client

    with tune_client.Session.from_env() as session:
        config = session.config                  # the trial's params.json, as a dict
        start = load(session.checkpoint) + 1 if session.checkpoint else 1
        for epoch in range(start, config["max_epochs"] + 1):
            val_loss = train_one_epoch(config)
            path = save(session.checkpoint_dir(epoch))
            decision = session.report(epoch, {"val_loss": val_loss}, checkpoint=path)
            if decision is tune_client.Decision.STOP:
                break
            if decision is tune_client.Decision.PAUSE:  # HyperBand, PBT, median(hard_stop false)
                session.paused(path)                    # `tune` relaunches from it later
                break
    # Leaving the block normally sends "done" (not after paused()); leaving it with an exception
    # only closes the connection: the tuner records the failure from the exit status.

PBT's exploit is a pause followed by a relaunch: the new process finds the copied checkpoint in
``session.checkpoint`` (TUNE_CHECKPOINT) and the mutated params in ``session.config``; it loads
the state from the checkpoint and then applies the config's values (learning rate, ...).

In a multi-process trial (torchrun's RANK set and not 0) only rank 0 talks to the tuner:
``from_env()`` on any other rank connects to nothing and returns a session whose ``report()``
returns ``Decision.CONTINUE`` at once and whose ``heartbeat()``/``done()``/``paused()`` do
nothing (``session.is_reporting`` is False). Share rank 0's decision with the other ranks, e.g.
``torch.distributed.broadcast_object_list([decision.value], src=0)``.

Metric values may be numbers, strings, bools or None. NaN and +/-inf cannot be JSON, so they are
sent as the strings "nan", "inf", "-inf"; the tuner turns them back into numbers (a NaN in the
optimised metric fails the trial). Values with an ``item()`` method (numpy and torch scalars) are
converted with it.
"""

from __future__ import annotations

import enum
import json
import math
import os
import socket
from types import TracebackType
from typing import IO, Any, Dict, Mapping, NoReturn, Optional, Type, Union

__all__ = ["Decision", "Session", "TuneError", "MAX_LINE_BYTES", "load_config"]

#: The longest line either side accepts, newline excluded (kMaxLineBytes in protocol.h).
MAX_LINE_BYTES = 1 << 20

PathLike = Union[str, "os.PathLike[str]"]
MetricValue = Union[int, float, str, bool, None]


class TuneError(RuntimeError):
    """The session cannot go on: missing or bad environment, lost connection, bad reply."""


class Decision(str, enum.Enum):
    """The tuner's answer to a report. A ``str`` enum: ``Decision.STOP == "stop"`` holds."""

    CONTINUE = "continue"
    STOP = "stop"    #: save what you need and exit soon (the tuner kills it after stop_grace_s)
    PAUSE = "pause"  #: save a checkpoint, call Session.paused(path), exit 0; relaunched later

    def __str__(self) -> str:
        return self.value


def _require_env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise TuneError("tune: environment variable %s is not set "
                        "(is this program being run by `tune run`?)" % name)
    return value


def _split_address(address: str) -> "tuple[str, int]":
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise TuneError('tune: tuner address "%s" (TUNE_REPORT_ADDR) is not host:port' % address)
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


def _metric_value(name: str, value: Any) -> MetricValue:
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return value
    if hasattr(value, "item"):  # numpy / torch scalars
        return _metric_value(name, value.item())
    try:
        return _metric_value(name, float(value))
    except (TypeError, ValueError):
        raise TypeError("tune: metric %r must be a number, string, bool or None, got %s"
                        % (name, type(value).__name__)) from None


def _read_config(path: str) -> Dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as config_file:
            config = json.load(config_file)
    except OSError as error:
        raise TuneError("tune: cannot open TUNE_CONFIG file %s: %s" % (path, error)) from None
    except ValueError as error:
        raise TuneError("tune: TUNE_CONFIG file %s is not valid JSON: %s" % (path, error)) from None
    if not isinstance(config, dict):
        raise TuneError("tune: TUNE_CONFIG file %s must hold a JSON object, not %s"
                        % (path, type(config).__name__))
    return config


def load_config() -> Dict[str, Any]:
    """The trial's config (TUNE_CONFIG's params.json) without connecting to the tuner: for code
    that runs on every rank (a Lightning script builds its model before the Trainer starts the
    other ranks, and only rank 0 may connect). Raises TuneError like Session.from_env()."""
    return _read_config(_require_env("TUNE_CONFIG"))


class Session:
    """One trial's connection to the tuner. Use it from one thread, on rank 0 (others: no-op).

    Attributes:
        config: the trial's config (TUNE_CONFIG's params.json), a dict.
        checkpoint: the checkpoint to resume from (TUNE_CHECKPOINT), or None.
        trial_id: the trial's id (TUNE_TRIAL_ID).
        trial_dir: the trial's directory (TUNE_TRIAL_DIR), or None when not set.
        is_reporting: False on the no-op session of a rank other than 0.
        should_stop / should_pause: True once the tuner answered "stop" / "pause".
    """

    def __init__(self, address: str, trial_id: str, token: str,
                 config: Optional[Dict[str, Any]] = None, checkpoint: Optional[str] = None,
                 rank: int = 0, local_address: Optional[str] = None,
                 trial_dir: Optional[str] = None) -> None:
        """Connects to the tuner and says hello: over its Unix-domain socket `local_address`
        ("@abstract-name" or a path; TUNE_REPORT_SOCKET) when given and reachable, else over TCP
        at `address` ("host:port"). With `rank` other than 0, connects to nothing."""
        self.address = address
        self.trial_id = trial_id
        self.config: Dict[str, Any] = config if config is not None else {}
        self.checkpoint = checkpoint
        self.trial_dir = trial_dir
        self.should_stop = False
        self.should_pause = False
        self.is_reporting = rank == 0
        self._sock: Optional[socket.socket] = None
        self._reader: Optional[IO[bytes]] = None
        if not self.is_reporting:
            return
        if local_address and local_address[0] in "@/" and hasattr(socket, "AF_UNIX"):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.connect("\0" + local_address[1:] if local_address[0] == "@" else local_address)
                self._sock = sock
            except OSError:
                sock.close()  # e.g. another network namespace: TCP still works
        if self._sock is None:
            host, port = _split_address(address)
            try:
                self._sock = socket.create_connection((host, port))
            except OSError as error:
                raise TuneError("tune: cannot connect to tuner at %s: %s"
                                % (address, error)) from None
            # Each report is one small write waiting for its answer: Nagle would delay every one.
            self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._reader = self._sock.makefile("rb")
        self._send({"type": "hello", "trial_id": trial_id, "token": token, "pid": os.getpid()})

    @classmethod
    def from_env(cls, rank: Optional[int] = None) -> "Session":
        """Connects using TUNE_REPORT_ADDR (or TUNE_REPORT_SOCKET when set and reachable),
        TUNE_TRIAL_ID, TUNE_TOKEN, TUNE_CONFIG and the optional TUNE_CHECKPOINT and
        TUNE_TRIAL_DIR. `rank` defaults to the RANK variable (0 when unset); frameworks that
        know the global rank otherwise (Lightning) pass it. Raises TuneError naming a missing
        or bad variable before anything connects."""
        address = _require_env("TUNE_REPORT_ADDR")
        trial_id = _require_env("TUNE_TRIAL_ID")
        token = _require_env("TUNE_TOKEN")
        config = _read_config(_require_env("TUNE_CONFIG"))
        if rank is None:
            rank_text = os.environ.get("RANK") or "0"
            if not rank_text.isdigit():
                raise TuneError("tune: environment variable RANK is not a rank: %r" % rank_text)
            rank = int(rank_text)
        return cls(address, trial_id, token, config, os.environ.get("TUNE_CHECKPOINT") or None,
                   rank=rank, local_address=os.environ.get("TUNE_REPORT_SOCKET"),
                   trial_dir=os.environ.get("TUNE_TRIAL_DIR") or None)

    def checkpoint_dir(self, iteration: int) -> str:
        """``<trial_dir>/checkpoint_<iteration>``, the experiment directory's place for the
        checkpoint of that iteration (not created). Raises TuneError without TUNE_TRIAL_DIR."""
        if not self.trial_dir:
            raise TuneError("tune: environment variable TUNE_TRIAL_DIR is not set "
                            "(is this program being run by `tune run`?)")
        return os.path.join(self.trial_dir, "checkpoint_%d" % iteration)

    def report(self, iteration: int, metrics: Mapping[str, Any],
               checkpoint: Optional[PathLike] = None) -> Decision:
        """Sends one result (`iteration` is the trial's own counter, usually the epoch; the
        checkpoint, when given, must be complete on disk) and waits for the tuner's decision."""
        if isinstance(iteration, float) and iteration.is_integer():
            iteration = int(iteration)
        if not isinstance(iteration, int) or isinstance(iteration, bool) or iteration < 0:
            raise ValueError("tune: iteration must be an integer >= 0, got %r" % (iteration,))
        message: Dict[str, Any] = {
            "type": "report", "iter": iteration,
            "metrics": {str(k): _metric_value(str(k), v) for k, v in metrics.items()}}
        if not self.is_reporting:
            return Decision.CONTINUE
        if checkpoint is not None:
            message["checkpoint"] = os.fspath(checkpoint)
        self._send(message)
        assert self._reader is not None
        try:
            line = self._reader.readline(MAX_LINE_BYTES + 1)
        except OSError as error:
            self._lost(error)
        if not line.endswith(b"\n"):
            self._lost("the tuner closed the connection" if not line else "reply too long")
        try:
            reply = json.loads(line)
            action = reply["action"] if reply.get("type") == "decision" else None
            decision = Decision(action)
        except (ValueError, AttributeError, KeyError, TypeError):
            raise TuneError("tune: unexpected reply from tuner at %s: %r"
                            % (self.address, line[:200])) from None
        if decision is Decision.STOP:
            self.should_stop = True
        elif decision is Decision.PAUSE:
            self.should_pause = True
        return decision

    def paused(self, checkpoint: Optional[PathLike] = None) -> None:
        """Acknowledges a "pause": the trial saved `checkpoint` (None: it could not; it is then
        relaunched from its last reported checkpoint) and exits 0 next. Closes the connection."""
        if self._sock is None:
            return
        message: Dict[str, Any] = {"type": "paused"}
        if checkpoint is not None:
            message["checkpoint"] = os.fspath(checkpoint)
        self._send(message)
        self.close()

    def heartbeat(self) -> None:
        """Tells the tuner the trial is alive (no reply), e.g. during a long epoch, so that the
        experiment's trial_timeout_s does not kill it."""
        if not self.is_reporting:
            return
        self._send({"type": "heartbeat"})

    def done(self) -> None:
        """Tells the tuner the trial finished on its own, then closes the connection. After a
        "stop" it only closes, as the C++ trainer does: the trial did not finish by itself, and
        the tuner records it as pruned (STOPPED) unless the stop was the end of its budget."""
        if self._sock is None:
            return
        if self.should_stop:
            self.close()
            return
        self._send({"type": "done"})
        self.close()

    def close(self) -> None:
        """Closes the connection without "done" (the trial did not finish)."""
        if self._sock is None:
            return
        try:
            if self._reader is not None:
                self._reader.close()
            self._sock.close()
        finally:
            self._sock = None
            self._reader = None

    @property
    def is_open(self) -> bool:
        """True while the connection is open (False after done(), paused(), close())."""
        return self._sock is not None

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, exc_type: Optional[Type[BaseException]],
                 exc: Optional[BaseException], tb: Optional[TracebackType]) -> bool:
        if exc_type is None:
            self.done()
        else:
            self.close()
        return False

    def _send(self, message: Dict[str, Any]) -> None:
        if self._sock is None:
            raise TuneError("tune: the session is already closed (done, paused or lost)")
        data = json.dumps(message, separators=(",", ":"), allow_nan=False).encode("utf-8") + b"\n"
        try:
            self._sock.sendall(data)
        except OSError as error:
            self._lost(error)

    def _lost(self, why: object) -> NoReturn:
        self.close()
        raise TuneError("tune: lost connection to tuner at %s: %s" % (self.address, why))
