"""ASHA decisions, tune vs Ray Tune's AsyncHyperBandScheduler, on replayed result streams.

The comparison itself is tests/peers/asha_diff.py (its `--summary` mode prints one Markdown
line); this part runs it with the replay binary tune-test-asha-replay from the bin directory and
puts that line in PEERS.md.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402


def streams(quick):
    return 20 if quick else 200


def run(ctx):
    script = os.path.join(ctx.root, "tests", "peers", "asha_diff.py")
    replay = os.path.join(ctx.bin_dir, "tune-test-asha-replay")
    missing = [p for p in (script, replay) if not os.path.exists(p)]
    if missing:
        return "not run: " + ", ".join(f"`{os.path.relpath(p, ctx.root)}` missing" for p in missing) + "\n"
    cmd = [ctx.python, script, "--summary", "--streams", str(streams(ctx.quick)), "--replay", replay]
    log_path = os.path.join(ctx.work, "asha_diff.txt")
    err_path = os.path.join(ctx.work, "asha_diff.err")
    rc = common.run_in_session(ctx, cmd, log_path, err_path=err_path)
    with open(log_path, errors="replace") as f:
        text = f.read()
    lines = [line for line in text.splitlines() if line.strip()]
    if rc != 0 or not lines:
        with open(err_path, errors="replace") as f:
            text += f.read()
        return f"failed (exit {rc}): `{common.shown(cmd, ctx.root)}`\n\n```\n{text[-1500:]}\n```\n"
    return f"{lines[-1]}\n\nCommand: `{common.shown(cmd, ctx.root)}`\n"
