#!/usr/bin/env python3
"""A user's own Python training script tuned by `tune`, through the stdlib-only client.

It fits y = 3x - 2 with plain SGD on noisy points (no dependencies beyond Python), reports the
validation loss every epoch, and stops when the tuner says so. Run it with:

    pip install ./python          # the client package (scripts/setup.sh installs it into .venv)
    build/bin/tune run examples/python_sgd.json
"""
import os
import random
import sys

try:
    import tune_client
except ImportError:  # run from a checkout without `pip install ./python`
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python"))
    import tune_client


def make_data(n, rng):
    xs = [rng.uniform(-1, 1) for _ in range(n)]
    return [(x, 3 * x - 2 + rng.gauss(0, 0.1)) for x in xs]


def main():
    with tune_client.Session.from_env() as session:
        config = session.config
        rng = random.Random(config.get("seed", 0))
        train, val = make_data(256, rng), make_data(64, rng)
        w, b = 0.0, 0.0
        lr, batch = config["lr"], int(config["batch_size"])
        momentum, vw, vb = config.get("momentum", 0.0), 0.0, 0.0
        for epoch in range(1, int(config.get("max_epochs", 10)) + 1):
            rng.shuffle(train)
            for start in range(0, len(train), batch):
                chunk = train[start:start + batch]
                gw = sum(2 * (w * x + b - y) * x for x, y in chunk) / len(chunk)
                gb = sum(2 * (w * x + b - y) for x, y in chunk) / len(chunk)
                vw, vb = momentum * vw + gw, momentum * vb + gb
                w, b = w - lr * vw, b - lr * vb
            val_loss = sum((w * x + b - y) ** 2 for x, y in val) / len(val)
            decision = session.report(epoch, {"val_loss": val_loss, "epoch": epoch})
            if decision is tune_client.Decision.STOP:
                return
            if decision is tune_client.Decision.PAUSE:  # never under ASHA; HyperBand, PBT...
                session.paused()  # no checkpoint kept: `tune` relaunches it from scratch
                return


if __name__ == "__main__":
    main()
