"""A Lightning callback that makes a Trainer a `tune` trial (needs ``lightning`` >= 2.0, or the
older ``pytorch_lightning`` package when ``lightning`` is not installed; only this module imports
it).

Example (the whole script a trial runs; examples/lightning/ is a complete one)::

    import lightning.pytorch as pl
    import tune_client
    from tune_client.lightning import TuneCallback

    config = tune_client.load_config()            # TUNE_CONFIG, on every rank, no connection
    model = MyModule(lr=config["lr"])
    tune_cb = TuneCallback(metrics=["val_acc", "val_loss"], checkpoint=True)
    trainer = pl.Trainer(max_epochs=config["max_epochs"], callbacks=[tune_cb])
    trainer.fit(model, datamodule=MyData(), ckpt_path=TuneCallback.ckpt_path())

At the end of each validation run of ``fit`` (not the sanity check) the callback saves the
Trainer's checkpoint, if asked, to ``<trial_dir>/checkpoint_<n>/lightning.ckpt`` and reports
the chosen ``trainer.callback_metrics`` plus ``epoch`` (1-based) and ``step`` as iteration n: the
number of validation reports so far, counting those before a resume (the count is part of the
callback's state in the Lightning checkpoint, so a trial resumed from a checkpoint, its own or a
PBT donor's, goes on from it). With one validation per epoch n is the epoch; with
``val_check_interval < 1`` or ``check_val_every_n_epoch > 1`` each report still gets its own
iteration, as with Ray's ``TuneReportCheckpointCallback``. The tuner's decision then reaches every rank through the Trainer's strategy
(``strategy.broadcast``), so under DDP all ranks act on rank 0's decision together:

- ``continue``: training goes on.
- ``stop``: ``trainer.should_stop = True``; the fit ends after this epoch as with EarlyStopping
  (``min_epochs``/``min_steps`` still apply: Lightning trains on until they are reached).
- ``pause``: the epoch's checkpoint (saved now when ``checkpoint=False``) is acknowledged with
  ``paused`` and the fit ends; the script should then exit 0 (``callback.paused`` says so). The
  tuner relaunches it later with TUNE_CHECKPOINT set, and ``TuneCallback.ckpt_path()`` turns that
  into the ``ckpt_path`` for ``fit`` (epoch, weights, optimizer, schedulers, loops all resume). A
  pause at ``max_epochs`` just lets the fit finish, as tune-trainer does.

After a PBT exploit TUNE_CHECKPOINT is a copy of another trial's checkpoint and TUNE_CONFIG holds
mutated params: build the module from the new config, and re-apply values the checkpoint's
optimizer state would override (the learning rate) in ``on_load_checkpoint`` or
``on_train_start`` (docs/python.md, "PBT").

Only global rank 0 connects to the tuner; a fit that ends normally tells it ``done``.
"""

from __future__ import annotations

import math
import os
import shutil
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

from tune_client.session import Decision, Session, TuneError

try:
    import lightning.pytorch as pl
except ImportError:  # the older package name
    import pytorch_lightning as pl  # type: ignore[no-redef]

__all__ = ["TuneCallback"]

CHECKPOINT_FILE = "lightning.ckpt"
MetricsArg = Union[None, str, Sequence[str], Mapping[str, str]]


def _metric_names(metrics: MetricsArg) -> Optional[Dict[str, str]]:
    """{name reported to tune: name logged in Lightning}, or None for every logged metric."""
    if metrics is None:
        return None
    if isinstance(metrics, str):
        return {metrics: metrics}
    if isinstance(metrics, Mapping):
        return {str(k): str(v) for k, v in metrics.items()}
    return {str(m): str(m) for m in metrics}


def _scalar(value: Any) -> Any:
    if hasattr(value, "item"):
        try:
            return value.item()
        except (ValueError, RuntimeError):  # a tensor of more than one element
            return None
    return value


class TuneCallback(pl.Callback):
    """Reports to `tune` after each validation of ``Trainer.fit`` and obeys its decisions.

    Args:
        metrics: what to report from ``trainer.callback_metrics``: a name, a list of names, a
            dict {name reported to tune: name logged} (Ray Tune's form), or None for every
            scalar logged. A named metric that was not logged is an error naming it.
        checkpoint: save the Trainer's checkpoint with every report (needed for PBT and for
            retries to resume; a pause saves one either way).
        keep_checkpoints: how many of this trial's ``checkpoint_<epoch>`` folders to keep
            (older ones are deleted; the tuner only needs the latest).
        session: a Session to use instead of ``Session.from_env()`` on rank 0 (tests).

    Attributes:
        stopped: the tuner said ``stop``. paused: it said ``pause`` and the pause was
            acknowledged (the script should exit 0 without more training).
        last_decision: the last decision, on every rank (None before the first report).
    """

    def __init__(self, metrics: MetricsArg = None, checkpoint: bool = True,
                 keep_checkpoints: int = 2, session: Optional[Session] = None) -> None:
        super().__init__()
        if keep_checkpoints < 1:
            raise ValueError("tune: TuneCallback keep_checkpoints must be >= 1, got %r"
                             % (keep_checkpoints,))
        self.metrics = _metric_names(metrics)
        self.checkpoint = checkpoint
        self.keep_checkpoints = keep_checkpoints
        self.stopped = False
        self.paused = False
        self.last_decision: Optional[Decision] = None
        self.reports = 0  # validation reports so far (the last reported iteration)
        self._session = session
        self._trial_dir = os.environ.get("TUNE_TRIAL_DIR") or None

    @staticmethod
    def ckpt_path() -> Optional[str]:
        """The Lightning checkpoint to resume from, for ``trainer.fit(..., ckpt_path=...)``:
        TUNE_CHECKPOINT itself when it is a file, ``lightning.ckpt`` (else the only ``*.ckpt``)
        inside it when it is a folder, None when the trial starts afresh. Raises TuneError when
        TUNE_CHECKPOINT names nothing loadable."""
        path = os.environ.get("TUNE_CHECKPOINT")
        if not path:
            return None
        if os.path.isfile(path):
            return path
        if os.path.isdir(path):
            inside = os.path.join(path, CHECKPOINT_FILE)
            if os.path.isfile(inside):
                return inside
            found = sorted(f for f in os.listdir(path) if f.endswith(".ckpt"))
            if len(found) == 1:
                return os.path.join(path, found[0])
        raise TuneError("tune: TUNE_CHECKPOINT %s holds no Lightning checkpoint (%s)"
                        % (path, CHECKPOINT_FILE))

    # Lightning hooks ----------------------------------------------------------------------

    def state_dict(self) -> Dict[str, Any]:
        return {"reports": self.reports}

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        self.reports = int(state_dict.get("reports", 0))

    def setup(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", stage: str) -> None:
        # A new connection per fit (a fit's end closed the last one).
        if stage == "fit" and trainer.is_global_zero and \
                (self._session is None or
                 (self._session.is_reporting and not self._session.is_open)):
            self._session = Session.from_env(rank=0)

    def on_validation_end(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        if trainer.sanity_checking or not _fitting(trainer) or self.paused:
            return
        epoch = trainer.current_epoch + 1
        self.reports += 1  # every rank counts alike: the checkpoint's state holds the count
        iteration = self.reports
        metrics = self._collect(trainer, epoch) if trainer.is_global_zero else {}
        saved = self._save(trainer, iteration) if self.checkpoint else None
        decision = Decision.CONTINUE
        if trainer.is_global_zero and self._session is not None:
            decision = self._session.report(iteration, metrics, checkpoint=saved)
        decision = Decision(trainer.strategy.broadcast(decision.value, src=0))
        self.last_decision = decision
        if decision is Decision.PAUSE and _at_last_epoch(trainer, epoch):
            decision = Decision.CONTINUE  # nothing left to resume: let the fit finish (done)
        if decision is Decision.STOP:
            self.stopped = True
            trainer.should_stop = True
        elif decision is Decision.PAUSE:
            if saved is None:
                saved = self._save(trainer, iteration)
            if trainer.is_global_zero and self._session is not None:
                self._session.paused(saved)
            self.paused = True
            trainer.should_stop = True

    def on_fit_end(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        if self._session is not None and self._session.is_open:
            self._session.done()

    def on_exception(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule",
                     exception: BaseException) -> None:
        self._close()

    def teardown(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", stage: str) -> None:
        if stage == "fit":
            self._close()

    # Helpers ------------------------------------------------------------------------------

    def _close(self) -> None:
        if self._session is not None:
            self._session.close()  # without "done": the fit did not finish

    def _collect(self, trainer: "pl.Trainer", epoch: int) -> Dict[str, Any]:
        logged = trainer.callback_metrics
        metrics: Dict[str, Any] = {}
        if self.metrics is None:
            for name, value in logged.items():
                value = _scalar(value)
                if value is not None:
                    metrics[name] = value
        else:
            for reported, name in self.metrics.items():
                if name not in logged:
                    raise TuneError("tune: TuneCallback: metric %r was not logged by the end of "
                                    "validation (logged: %s); log it with self.log(%r, ...)"
                                    % (name, ", ".join(sorted(logged)) or "nothing", name))
                metrics[reported] = _scalar(logged[name])
        metrics.setdefault("epoch", epoch)
        metrics.setdefault("step", trainer.global_step)
        return metrics

    def _save(self, trainer: "pl.Trainer", iteration: int) -> Optional[str]:
        """Saves the Trainer's checkpoint of report `iteration` (every rank takes part, rank 0
        writes) to a temporary folder, then publishes it as checkpoint_<iteration>: the tuner is
        only ever told about a complete checkpoint."""
        if not self._trial_dir:
            return None
        final = os.path.join(self._trial_dir, "checkpoint_%d" % iteration)
        staging = final + ".tmp"
        trainer.save_checkpoint(os.path.join(staging, CHECKPOINT_FILE))
        if trainer.is_global_zero:
            shutil.rmtree(final, ignore_errors=True)
            os.replace(staging, final)
            self._prune()
        trainer.strategy.barrier("tune_client.checkpoint")
        return final

    def _prune(self) -> None:
        assert self._trial_dir is not None
        epochs: List[int] = []
        for name in os.listdir(self._trial_dir):
            number = name[len("checkpoint_"):]
            if name.startswith("checkpoint_") and number.isdigit():
                epochs.append(int(number))
        for old in sorted(epochs)[:-self.keep_checkpoints]:
            shutil.rmtree(os.path.join(self._trial_dir, "checkpoint_%d" % old), ignore_errors=True)


def _fitting(trainer: "pl.Trainer") -> bool:
    fn = getattr(trainer.state, "fn", None)
    return str(getattr(fn, "value", fn)) == "fit"


def _at_last_epoch(trainer: "pl.Trainer", epoch: int) -> bool:
    max_epochs = trainer.max_epochs
    return max_epochs is not None and max_epochs >= 0 and not math.isinf(max_epochs) and \
        epoch >= max_epochs
