"""tune_client: report a Python training program's results to `tune` and obey its decisions.

The core (:class:`Session`, :class:`Decision`, :class:`TuneError`) needs only the standard
library; :mod:`tune_client.lightning` adds a Lightning callback (and imports Lightning only when
it is imported itself). See docs/python.md for the guide and docs/protocol.md for the wire
protocol.

Example::

    import tune_client

    with tune_client.Session.from_env() as session:
        for epoch in range(1, session.config["max_epochs"] + 1):
            loss = train_one_epoch(session.config)
            if session.report(epoch, {"val_loss": loss}) is not tune_client.Decision.CONTINUE:
                break
"""

from tune_client.overrides import hydra_overrides
from tune_client.session import MAX_LINE_BYTES, Decision, Session, TuneError, load_config

__all__ = [
    "Decision", "Session", "TuneError", "MAX_LINE_BYTES", "load_config", "hydra_overrides",
    "__version__",
]
__version__ = "0.1.0"
