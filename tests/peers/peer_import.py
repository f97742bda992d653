"""The import step every differential test of tests/peers/ shares: the peer's own packages, or a
skip (exit 77, which CTest reports as skipped) with the reason, except on CI (CI=true), where a
missing peer is a failure.

  from peer_import import require
  np, ray, async_hyperband = require("asha_diff", "numpy", "ray",
                                     "ray.tune.schedulers.async_hyperband")
"""
import importlib
import os
import sys

SKIP = 77


def require(who, *modules):
    """The modules, imported in order; exits 77 (1 on CI) naming the one that is missing."""
    try:
        return [importlib.import_module(name) for name in modules]
    except ImportError as error:
        message = f"{who}: cannot import {error.name or 'a peer package'} ({error})"
        if os.environ.get("CI") == "true":
            print(message + "; CI=true, so this is a failure", file=sys.stderr)
            sys.exit(1)
        print(message + "; SKIPPED (scripts/setup.sh --peers installs bench/peers/requirements.txt "
              "into .venv)")
        sys.exit(SKIP)
