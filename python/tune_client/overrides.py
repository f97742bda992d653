"""A trial's config as Hydra command-line overrides (docs/python.md, "Hydra").

A Hydra app becomes a trial by appending these to its arguments before ``@hydra.main`` parses
them::

    if __name__ == "__main__":
        sys.argv += tune_client.hydra_overrides()
        main()

Every leaf of TUNE_CONFIG becomes ``++dotted.key=value`` (``++``: set it whether or not the
app's config has it), and Hydra's run folder moves into the trial's folder.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any, Dict, List, Optional

from tune_client.session import TuneError, load_config

__all__ = ["hydra_overrides"]


def _value(key: str, value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a quoted string: Hydra reads commas, spaces, '=' literally
    if isinstance(value, list):
        return "[" + ",".join(_value(key, v) for v in value) + "]"
    raise TuneError("tune: config key %s has a value Hydra cannot take: %r" % (key, value))


def _flatten(prefix: str, config: Dict[str, Any], out: List[str]) -> None:
    for key, value in config.items():
        dotted = prefix + str(key)
        if isinstance(value, dict) and value:
            _flatten(dotted + ".", value, out)
        elif isinstance(value, dict):
            out.append("++%s={}" % dotted)
        else:
            out.append("++%s=%s" % (dotted, _value(dotted, value)))


def hydra_overrides(config: Optional[Dict[str, Any]] = None,
                    trial_dir: Optional[str] = None) -> List[str]:
    """``["++lr=0.01", "++model.hidden=128", ..., "hydra.run.dir=<trial_dir>/hydra"]`` for
    `config` (default: TUNE_CONFIG) and `trial_dir` (default: TUNE_TRIAL_DIR; none: Hydra's
    run folder stays its default)."""
    out: List[str] = []
    _flatten("", load_config() if config is None else config, out)
    trial_dir = trial_dir if trial_dir is not None else os.environ.get("TUNE_TRIAL_DIR")
    if trial_dir:
        out.append("hydra.run.dir=%s" % json.dumps(os.path.join(trial_dir, "hydra")))
    return out
