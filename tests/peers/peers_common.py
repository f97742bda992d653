"""What the differential tests of tests/peers/ share.

require(): the peer's own packages, or a skip (exit 77, which CTest reports as skipped) with the
reason, except on CI (CI=true), where a missing peer is a failure.

  from peers_common import require
  np, ray, async_hyperband = require("asha_diff", "numpy", "ray",
                                     "ray.tune.schedulers.async_hyperband")

random_cases(): the command line (--replay, --cases, --seed) and the run of a replay driver over
random cases, one JSON line in and one out each, for the tests that compare one function on
random inputs (motpe_split_diff.py, nsga2_elite_diff.py, parzen_diff.py).
"""
import argparse
import importlib
import json
import os
import random
import subprocess
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


def random_cases(doc, driver, default_cases, make_case, to_line=json.dumps):
    """Parses the command line (`doc`'s first line as the description), makes --cases cases with
    make_case(random.Random(--seed)) and runs the --replay driver (`driver` names it in --help)
    on to_line(case) for each; returns the cases and the driver's answers (parsed JSON), or exits
    1 when the driver answered a different number of lines."""
    parser = argparse.ArgumentParser(description=doc.split("\n")[0])
    parser.add_argument("--replay", required=True, help=f"the {driver} binary")
    parser.add_argument("--cases", type=int, default=default_cases)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    cases = [make_case(rng) for _ in range(args.cases)]
    out = subprocess.run([args.replay], input="".join(to_line(c) + "\n" for c in cases),
                         stdout=subprocess.PIPE, text=True, check=True).stdout.splitlines()
    if len(out) != len(cases):
        print(f"FAIL the driver answered {len(out)} of {len(cases)} cases")
        sys.exit(1)
    return cases, [json.loads(line) for line in out]
