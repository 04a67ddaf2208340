#!/usr/bin/env python3
"""Render the Grafana dashboards of dashboards/ from the monitoring mixin (python3 stdlib + jsonnet).

    python3 dashboards/generate.py            # write dashboards/*.json
    python3 dashboards/generate.py --check    # exit 1 if a committed JSON differs (or is not rendered)
    python3 dashboards/generate.py --queries  # print every PromQL expression, one per line

The panels live in mixin/dashboards.libsonnet, their thresholds and the selector in
mixin/config.libsonnet. Conventions are checked by dashboards/lint.py.
"""
import glob
import json
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "mixin"))
import render  # noqa: E402


def main(argv):
    mode = argv[1] if len(argv) > 1 else "--write"
    if mode not in ("--write", "--check", "--queries"):
        print(__doc__, file=sys.stderr)
        return 2
    try:
        # dashboards/*.json and the Helm chart's templates of them (files/dashboards/)
        files = {p: t for p, t in render.shipped().items() if p.endswith(".json")}
    except render.RenderError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if mode == "--queries":
        for path, text in files.items():
            if os.path.dirname(path) != render.DASHBOARDS:
                continue
            d = json.loads(text)
            name = os.path.basename(path)
            for v in d["templating"]["list"]:
                if v.get("type") == "query":
                    print(f"{name} | variable {v['name']} | {v['definition']}")
            for panel in d["panels"]:
                for t in panel.get("targets", []):
                    print(f"{name} | {panel['title']} | {' '.join(t['expr'].split())}")
        return 0
    bad = 0
    for path, text in files.items():
        rel = os.path.relpath(path, render.ROOT)
        if mode == "--check":
            try:
                with open(path, encoding="utf-8") as f:
                    current = f.read()
            except FileNotFoundError:
                current = ""
            if current != text:
                print(f"error: {rel} differs from what the mixin renders; run `python3 dashboards/generate.py`",
                      file=sys.stderr)
                bad = 1
            else:
                print(f"ok: {rel} is exactly what mixin/ renders")
        else:
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
            print(f"wrote {rel}")
    # A dashboard in dashboards/ that the mixin no longer renders would still be shipped.
    for path in glob.glob(os.path.join(render.DASHBOARDS, "*.json")):
        if path not in files:
            print(f"error: {os.path.relpath(path, render.ROOT)} is not rendered by the mixin", file=sys.stderr)
            bad = 1
    return bad


if __name__ == "__main__":
    sys.exit(main(sys.argv))
