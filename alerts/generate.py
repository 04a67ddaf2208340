#!/usr/bin/env python3
"""Render alerts/redis-clients.rules.yml, alerts/alertmanager-fragment.yml and the Helm chart's
rules template (deploy/helm/redis-clients-exporter/files/redis-clients.rules.yml) from the
monitoring mixin (python3 stdlib + jsonnet).

    python3 alerts/generate.py            # write both files
    python3 alerts/generate.py --check    # exit 1 if a committed file differs
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

FILES = (render.RULES, render.ALERTMANAGER, render.CHART_RULES)


def main(argv):
    mode = argv[1] if len(argv) > 1 else "--write"
    if mode not in ("--write", "--check", "--stdout"):
        print(__doc__, file=sys.stderr)
        return 2
    try:
        shipped = render.shipped()
    except render.RenderError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    status = 0
    for path in FILES:
        text, rel = shipped[path], os.path.relpath(path)
        if mode == "--stdout":
            sys.stdout.write(text)
        elif mode == "--check":
            try:
                with open(path, encoding="utf-8") as f:
                    current = f.read()
            except FileNotFoundError:
                current = ""
            if current != text:
                sys.stderr.writelines(difflib.unified_diff(
                    current.splitlines(True), text.splitlines(True), path, "rendered from mixin/"))
                print(f"error: {rel} differs from what the mixin renders; run `python3 alerts/generate.py`",
                      file=sys.stderr)
                status = 1
            else:
                print(f"ok: {rel} is exactly what mixin/ renders")
        else:
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
            print(f"wrote {rel}")
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv))
