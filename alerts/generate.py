#!/usr/bin/env python3
"""Render alerts/redis-clients.rules.yml from the monitoring mixin (python3 stdlib + jsonnet).

    python3 alerts/generate.py            # write the rules file
    python3 alerts/generate.py --check    # exit 1 if the committed rules file differs
    python3 alerts/generate.py --stdout   # print instead of writing

Thresholds, `for` durations, the selector and the link bases live in mixin/config.libsonnet;
the expressions and texts in mixin/rules.libsonnet and mixin/alerts.libsonnet. Never edit the
rules file by hand: `--check` (run by alerts/check.sh) fails when it drifts from the mixin.
"""
import difflib
import os
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the work tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "mixin"))
import render  # noqa: E402

RULES = render.RULES


def main(argv):
    mode = argv[1] if len(argv) > 1 else "--write"
    if mode not in ("--write", "--check", "--stdout"):
        print(__doc__, file=sys.stderr)
        return 2
    try:
        text = render.shipped()[RULES]
    except render.RenderError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    rel = os.path.relpath(RULES)
    if mode == "--stdout":
        sys.stdout.write(text)
        return 0
    if mode == "--check":
        try:
            with open(RULES, encoding="utf-8") as f:
                current = f.read()
        except FileNotFoundError:
            current = ""
        if current != text:
            sys.stderr.writelines(difflib.unified_diff(
                current.splitlines(True), text.splitlines(True), RULES, "rendered from mixin/"))
            print(f"error: {rel} differs from what the mixin renders; run `python3 alerts/generate.py`",
                  file=sys.stderr)
            return 1
        print(f"ok: {rel} is exactly what mixin/ renders")
        return 0
    with open(RULES, "w", encoding="utf-8") as f:
        f.write(text)
    print(f"wrote {rel}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
