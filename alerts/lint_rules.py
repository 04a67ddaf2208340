#!/usr/bin/env python3
"""Convention checks promtool does not do (python3 stdlib + jsonnet).

On the rules the mixin renders (alerts/generate.py --check proves the committed rules file is
exactly that):
  * alert names CamelCase, <= 40 characters, unique per severity (one name may come as a warning
    and a critical rule, the critical one inhibiting the warning); severity info|warning|critical
  * summary without templates, starting with a capital and ending with a period
  * description with templates naming the target ({{ $labels.target }}), except for absent()
  * runbook_url = <runbookUrlBase>#<alert name in lower case>, and docs/runbook.md has that heading
  * every vector selector of every expression, and of every query an annotation template runs,
    carries the configured selector (redisClientsExporterSelector)
  * <= 20 rules per group
  * every alert appears in an alert_rule_test of tests/alerts/*.test.yml
"""
import glob
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.dont_write_bytecode = True  # no __pycache__ in the work tree
sys.path.insert(0, os.path.join(ROOT, "mixin"))
import render  # noqa: E402

KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan"}
LABEL_LISTS = {"by", "without", "on", "ignoring", "group_left", "group_right"}
# Aggregations may put `by (...)`/`without (...)` between their name and their argument.
AGGREGATIONS = {"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
                "bottomk", "topk", "quantile"}


def anchors(markdown):
    """GitHub-style anchors of the headings of a Markdown file."""
    out = set()
    for line in markdown.splitlines():
        m = re.match(r"^#{1,6}\s+(.*?)\s*$", line)
        if m:
            a = re.sub(r"[^\w\- ]", "", m.group(1).lower()).replace(" ", "-")
            out.add(a)
    return out


def selectors(expr):
    """(metric name, matchers text or None) of every vector selector of a PromQL expression."""
    out, i, n = [], 0, len(expr)
    while i < n:
        ch = expr[i]
        if ch in "\"'`":
            end = expr.find(ch, i + 1)
            i = n if end < 0 else end + 1
        elif ch == "[":
            i = expr.find("]", i) + 1 or n
        elif ch == "{":
            # a selector without a metric name, e.g. {__name__=~"..."}
            end = expr.find("}", i)
            out.append(("", expr[i + 1:end]))
            i = n if end < 0 else end + 1
        elif ch.isdigit():
            m = re.match(r"[0-9.eE+-]+[a-z]*", expr[i:])
            i += len(m.group(0))
        elif re.match(r"[A-Za-z_:]", ch):
            m = re.match(r"[A-Za-z_:][A-Za-z0-9_:]*", expr[i:])
            word, i = m.group(0), i + len(m.group(0))
            rest = expr[i:].lstrip()
            if word in LABEL_LISTS and rest.startswith("("):
                i = expr.find(")", i) + 1
            elif word in KEYWORDS or word in AGGREGATIONS or rest.startswith("("):
                pass  # a keyword or a function call
            elif rest.startswith("{"):
                start = expr.find("{", i)
                end = expr.find("}", start)
                out.append((word, expr[start + 1:end]))
                i = end + 1
            else:
                out.append((word, None))
        else:
            i += 1
    return out


def template_queries(text):
    """The PromQL of every `printf `...` ... | query` of an annotation template."""
    return re.findall(r"printf `([^`]*)`", text)


def unscoped(expr, selector):
    """Selectors of `expr` that do not carry `selector`."""
    if not selector:
        return []
    return [f"{name}{{{m or ''}}}" for name, m in selectors(expr) if m is None or selector not in m]


def main():
    data = render.jsonnet()
    c, groups = data["config"], data["rules"]["groups"]
    selector = c["redisClientsExporterSelector"].strip()
    with open(os.path.join(ROOT, "docs", "runbook.md"), encoding="utf-8") as f:
        runbook = anchors(f.read())
    tested = set()
    for path in glob.glob(os.path.join(ROOT, "tests", "alerts", "*.test.yml")):
        with open(path, encoding="utf-8") as f:
            tested |= set(re.findall(r"^\s*-\s*alertname:\s*(\S+)\s*$", f.read(), re.M))

    problems, names, nsel = [], [], 0
    for g in groups:
        if len(g["rules"]) > 20:
            problems.append(f"group {g['name']}: {len(g['rules'])} rules (> 20)")
        for r in g["rules"]:
            n = r.get("alert") or r.get("record")
            exprs = [("expr", r["expr"])] + [
                (f"annotation {k}", q) for k, v in r.get("annotations", {}).items() for q in template_queries(v)]
            for where, e in exprs:
                nsel += len(selectors(e))
                for s in unscoped(e, selector):
                    problems.append(f"{n}: {where}: selector {s} lacks {selector}")
            if "alert" not in r:
                continue
            names.append((n, r["labels"].get("severity")))
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
            want = f"{c['runbookUrlBase']}#{n.lower()}"
            if a.get("runbook_url") != want:
                problems.append(f"{n}: runbook_url {a.get('runbook_url')!r} != {want!r}")
            if n.lower() not in runbook:
                problems.append(f"{n}: docs/runbook.md has no heading `## {n}`")
            if n not in tested:
                problems.append(f"{n}: no alert_rule_test in tests/alerts/*.test.yml")
    dup = {n for n, sev in names if names.count((n, sev)) > 1}
    if dup:
        problems.append(f"duplicate alert names: {sorted(dup)}")
    if not names:
        problems.append("no alerts found")
    print(f"checked {len(names)} alerting rules ({len({n for n, _ in names})} names): names, severity, summary, description, runbook anchors, tests; "
          f"{nsel} selectors (expressions and annotation queries) carry {selector}")
    for p in problems:
        print(f"  problem: {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except render.RenderError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
