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
    return 500 if quick else 3000  # 3000: asha_diff.py's own default


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
    shown = common.shown(cmd, ctx.root)
    if rc == 77:
        return f"not run: `{shown}` says Ray cannot be imported.\n"
    summary = [line for line in lines if line.startswith("ASHA vs Ray")] or (lines[-1:] if rc == 0 else [])
    if rc in (0, 1) and summary:
        body = f"{summary[-1]}\n\nCommand: `{shown}`\n"
        if rc == 1:  # mismatches: asha_diff.py printed them before its summary
            body += "\nExit status 1 (mismatch); its report:\n\n```\n" + text[-3000:] + "\n```\n"
        return body
    with open(err_path, errors="replace") as f:
        text += f.read()
    return f"failed (exit {rc}): `{shown}`\n\n```\n{text[-1500:]}\n```\n"
