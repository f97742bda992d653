"""Stdlib-only Python client for `tune` trials: the Python twin of tuner/client/session.h.

A program started by `tune run` finds the tuner's address, its trial id, token and config in
its environment (docs/protocol.md). It reports one result per iteration and stops when the
tuner says so:

    import tune_client

    with tune_client.Session.from_env() as session:
        config = session.config                     # the trial's params.json, as a dict
        start = load(session.checkpoint) if session.checkpoint else 1
        for epoch in range(start, config["max_epochs"] + 1):
            val_loss = train_one_epoch(config)
            action = session.report(epoch, {"val_loss": val_loss}, save(epoch))
            if action == "stop":
                break
            if action == "pause":               # HyperBand, PBT, median with hard_stop false
                session.paused(save(epoch))     # acknowledged; `tune` relaunches from it later
                break
    # Leaving the block normally sends "done" (not after paused()); leaving it with an exception
    # just closes the connection, and the tuner records the trial's failure from its exit status.

In a multi-process trial (torchrun's RANK set and not 0) only rank 0 talks to the tuner:
``from_env()`` on any other rank connects to nothing and returns a session whose ``report()``
returns "continue" at once and whose ``heartbeat()``/``done()`` do nothing
(``session.is_reporting`` is False). Share rank 0's decision with the other ranks yourself, e.g.
``torch.distributed.broadcast_object_list([action], src=0)``.

Metric values may be numbers, strings, bools or None. NaN and +/-inf cannot be JSON, so they are
sent as the strings "nan", "inf", "-inf"; the tuner turns them back into numbers (a NaN in the
optimised metric fails the trial). Values with an ``item()`` method (numpy and torch scalars) are
converted with it.
"""

import json
import math
import os
import socket

__all__ = ["Session", "TuneError"]

MAX_LINE_BYTES = 1 << 20


class TuneError(RuntimeError):
    """The session cannot go on: missing environment, lost connection, bad reply."""


def _require_env(name):
    value = os.environ.get(name)
    if not value:
        raise TuneError(
            "tune: environment variable %s is not set "
            "(is this program being run by `tune run`?)" % name)
    return value


def _split_address(address):
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise TuneError('tune: tuner address "%s" is not host:port' % address)
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


def _metric_value(name, value):
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


class Session:
    """One trial's connection to the tuner. Use from one thread (rank 0 only)."""

    def __init__(self, address, trial_id, token, config=None, checkpoint=None, rank=0,
                 local_address=None):
        """Connects to the tuner and says hello: over its Unix-domain socket `local_address`
        ("@abstract-name" or a path; TUNE_REPORT_SOCKET) when given and reachable, else over TCP
        at `address` ("host:port"). With `rank` other than 0, connects to nothing (a no-op
        session, see the module's docstring)."""
        self.address = address
        self.trial_id = trial_id
        self.config = config if config is not None else {}
        self.checkpoint = checkpoint  # the checkpoint to resume from, or None
        self.should_stop = False      # True once the tuner answered "stop"
        self.should_pause = False     # True once the tuner answered "pause"
        self.is_reporting = rank == 0
        self._sock = None
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
    def from_env(cls):
        """Connects using TUNE_REPORT_ADDR (or TUNE_REPORT_SOCKET when set and reachable),
        TUNE_TRIAL_ID, TUNE_TOKEN, TUNE_CONFIG and the optional TUNE_CHECKPOINT. Raises TuneError naming a missing variable."""
        address = _require_env("TUNE_REPORT_ADDR")
        trial_id = _require_env("TUNE_TRIAL_ID")
        token = _require_env("TUNE_TOKEN")
        config_path = _require_env("TUNE_CONFIG")
        try:
            with open(config_path, encoding="utf-8") as config_file:
                config = json.load(config_file)
        except OSError as error:
            raise TuneError("tune: cannot open TUNE_CONFIG file %s: %s"
                            % (config_path, error)) from None
        except ValueError as error:
            raise TuneError("tune: TUNE_CONFIG file %s is not valid JSON: %s"
                            % (config_path, error)) from None
        rank = os.environ.get("RANK") or "0"
        if not rank.isdigit():
            raise TuneError("tune: environment variable RANK is not a rank: %r" % rank)
        return cls(address, trial_id, token, config, os.environ.get("TUNE_CHECKPOINT") or None,
                   rank=int(rank), local_address=os.environ.get("TUNE_REPORT_SOCKET"))

    def report(self, iter, metrics, checkpoint=None):
        """Sends one result and waits for the tuner's decision: "continue", "stop" or "pause"
        (save a checkpoint, call paused() with it, and exit 0)."""
        if isinstance(iter, float) and iter.is_integer():
            iter = int(iter)
        if not isinstance(iter, int) or isinstance(iter, bool) or iter < 0:
            raise ValueError("tune: iter must be an integer >= 0, got %r" % (iter,))
        message = {"type": "report", "iter": iter,
                   "metrics": {str(k): _metric_value(k, v) for k, v in metrics.items()}}
        if not self.is_reporting:
            return "continue"
        if checkpoint is not None:
            message["checkpoint"] = os.fspath(checkpoint)
        self._send(message)
        try:
            line = self._reader.readline(MAX_LINE_BYTES + 1)
        except OSError as error:
            self._lost(error)
        if not line.endswith(b"\n"):
            self._lost("the tuner closed the connection" if not line else "reply too long")
        try:
            reply = json.loads(line)
            action = reply["action"] if reply.get("type") == "decision" else None
        except (ValueError, AttributeError, KeyError):
            action = None
        if action not in ("continue", "stop", "pause"):
            raise TuneError("tune: unexpected reply from tuner at %s: %r" % (self.address, line[:200]))
        if action == "stop":
            self.should_stop = True
        if action == "pause":
            self.should_pause = True
        return action

    def paused(self, checkpoint=None):
        """Acknowledges a "pause": the trial saved `checkpoint` (None: it could not; it is then
        relaunched from its last reported checkpoint) and exits next. Closes the connection."""
        if self._sock is None:
            return
        message = {"type": "paused"}
        if checkpoint is not None:
            message["checkpoint"] = os.fspath(checkpoint)
        self._send(message)
        self.close()

    def heartbeat(self):
        """Tells the tuner the trial is alive (no reply), e.g. during a long epoch, so that
        the experiment's trial_timeout_s does not kill it."""
        if not self.is_reporting:
            return
        self._send({"type": "heartbeat"})

    def done(self):
        """Tells the tuner the trial finished on its own, then closes the connection."""
        if self._sock is None:
            return
        self._send({"type": "done"})
        self.close()

    def close(self):
        """Closes the connection without "done" (the trial did not finish)."""
        if self._sock is None:
            return
        try:
            self._reader.close()
            self._sock.close()
        finally:
            self._sock = None

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.done()
        else:
            self.close()
        return False

    def _send(self, message):
        if self._sock is None:
            raise TuneError("tune: the session is already done")
        data = json.dumps(message, separators=(",", ":"), allow_nan=False).encode("utf-8") + b"\n"
        try:
            self._sock.sendall(data)
        except OSError as error:
            self._lost(error)

    def _lost(self, why):
        self.close()
        raise TuneError("tune: lost connection to tuner at %s: %s" % (self.address, why))
