#!/usr/bin/env python3
"""Convention checks promtool does not do (python3 stdlib only).

On the rules alerts/generate.py renders from alerts/thresholds.yml (generate.py --check proves the
committed rules file is exactly that):
  * alert names CamelCase, <= 40 characters, unique; severity info|warning|critical
  * summary without templates, starting with a capital and ending with a period
  * description with templates naming the target ({{ $labels.target }}), except for absent()
  * runbook_url = <runbook_base_url>#<alert name in lower case>, and docs/runbook.md has that heading
  * <= 20 rules per group
  * every alert appears in an alert_rule_test of tests/alerts/*.test.yml
"""
import glob
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.dont_write_bytecode = True  # no alerts/__pycache__ in the work tree
sys.path.insert(0, HERE)
import generate  # noqa: E402


def anchors(markdown):
    """GitHub-style anchors of the headings of a Markdown file."""
    out = set()
    for line in markdown.splitlines():
        m = re.match(r"^#{1,6}\s+(.*?)\s*$", line)
        if m:
            a = re.sub(r"[^\w\- ]", "", m.group(1).lower()).replace(" ", "-")
            out.add(a)
    return out


def main():
    t = generate.load_thresholds(generate.THRESHOLDS)
    groups = generate.build(t)
    with open(os.path.join(ROOT, "docs", "runbook.md"), encoding="utf-8") as f:
        runbook = anchors(f.read())
    tested = set()
    for path in glob.glob(os.path.join(ROOT, "tests", "alerts", "*.test.yml")):
        with open(path, encoding="utf-8") as f:
            tested |= set(re.findall(r"^\s*-\s*alertname:\s*(\S+)\s*$", f.read(), re.M))

    problems, names = [], []
    for gname, rules in groups:
        if len(rules) > 20:
            problems.append(f"group {gname}: {len(rules)} rules (> 20)")
        for r in rules:
            if "alert" not in r:
                continue
            n = r["alert"]
            names.append(n)
            a = r["annotations"]
            if not re.match(r"^[A-Z][a-z0-9]+(?:[A-Z][a-z0-9]*)*$", n) or len(n) > 40:
                problems.append(f"{n}: not CamelCase or longer than 40 characters")
            if r["labels"].get("severity") not in ("info", "warning", "critical"):
                problems.append(f"{n}: severity {r['labels'].get('severity')!r}")
            s = a.get("summary", "")
            if "{{" in s or not s[:1].isupper() or not s.endswith("."):
                problems.append(f"{n}: summary must be plain text, start with a capital, end with a period")
            d = a.get("description", "")
            if "absent(" not in r["expr"] and "{{ $labels.target }}" not in d:
                problems.append(f"{n}: description does not name {{{{ $labels.target }}}}")
            want = f"{t['runbook_base_url']}#{n.lower()}"
            if a.get("runbook_url") != want:
                problems.append(f"{n}: runbook_url {a.get('runbook_url')!r} != {want!r}")
            if n.lower() not in runbook:
                problems.append(f"{n}: docs/runbook.md has no heading `## {n}`")
            if n not in tested:
                problems.append(f"{n}: no alert_rule_test in tests/alerts/*.test.yml")
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        problems.append(f"duplicate alert names: {sorted(dup)}")
    if not names:
        problems.append("no alerts found")
    print(f"checked {len(names)} alerts: names, severity, summary, description, runbook anchors, tests")
    for p in problems:
        print(f"  problem: {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except generate.ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
