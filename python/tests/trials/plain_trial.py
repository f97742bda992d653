"""A trial for the tests: counts epochs, checkpoints each one (a JSON file), resumes from
TUNE_CHECKPOINT, and writes every decision it got to <trial_dir>/decisions.jsonl."""
import json
import os
import sys

import tune_client


def main() -> int:
    with tune_client.Session.from_env() as session:
        config = session.config
        start, value = 1, 0.0
        if session.checkpoint:
            with open(os.path.join(session.checkpoint, "state.json")) as f:
                state = json.load(f)
            start, value = state["epoch"] + 1, state["value"]
        log = open(os.path.join(session.trial_dir, "decisions.jsonl"), "a")
        for epoch in range(start, int(config["max_epochs"]) + 1):
            value += float(config["x"])
            path = session.checkpoint_dir(epoch)
            os.makedirs(path, exist_ok=True)
            with open(os.path.join(path, "state.json"), "w") as f:
                json.dump({"epoch": epoch, "value": value}, f)
            decision = session.report(epoch, {"score": value, "epoch": epoch}, checkpoint=path)
            log.write(json.dumps({"epoch": epoch, "decision": decision.value,
                                  "resumed_from": session.checkpoint}) + "\n")
            log.flush()
            if decision is tune_client.Decision.STOP:
                break
            if decision is tune_client.Decision.PAUSE:
                session.paused(path)
                return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
