#!/usr/bin/env python3
"""Check Grafana dashboards against the project's conventions (python3 stdlib only).

    python3 dashboards/lint.py [dashboards/*.json]    # default: every dashboards/*.json

Exit status 1 and one line per problem when anything is wrong. Checks (see /work/shared/FACTS.md,
modelled on grafana/dashboard-linter):
  * the file is JSON; schemaVersion >= 39; no `__inputs` and no `${DS_...}` placeholders
  * exactly one datasource variable, named `datasource`, type datasource, query prometheus
  * a `target` variable: query type, label_values(...) of one of our metrics, multi, includeAll,
    refresh on time range change (2), on `${datasource}`
  * every `datasource` reference anywhere is `${datasource}` (no hard-coded uid)
  * `cluster`, `node` and `role` variables beside `target` (cluster and Sentinel nodes), and every
    query filters on every query variable (`$cluster`, `$node`, `$role`, `$target`)
  * every panel: non-empty title, description and fieldConfig.defaults.unit; panel and target
    datasource `${datasource}`; unique ids; a gridPos
  * every rate/irate/increase uses `[$__rate_interval]`; every `*_total` series is inside one
  * no rate/irate/increase over the snapshot histograms redis_client_{idle,age}_seconds_*
  * every metric `redis_*` a query names is documented in docs/metrics.md
  * stat and gauge panels keep one value per target (legend has {{target}} and expr groups by target)
"""
import glob
import json
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DS_REF = "${datasource}"
FUNCS = re.compile(r"\b(rate|irate|increase)\s*\(")
TOTAL = re.compile(r"(?<![\w:])([a-zA-Z_:][a-zA-Z0-9_:]*_total)\b")
METRIC = re.compile(r"(?<![\w:$])(redis_[a-z0-9_]+)\b")
SNAPSHOT_HIST = re.compile(r"\bredis_client_(idle|age)_seconds_(bucket|count|sum)\b")


def documented_metrics():
    path = os.path.join(ROOT, "docs", "metrics.md")
    with open(path, encoding="utf-8") as f:
        return set(re.findall(r"`(redis_[a-z0-9_]+)`", f.read()))


def call_spans(expr):
    """(function, start, end) of the argument text of every rate/irate/increase call."""
    spans = []
    for m in FUNCS.finditer(expr):
        depth, i = 1, m.end()
        while i < len(expr) and depth:
            depth += {"(": 1, ")": -1}.get(expr[i], 0)
            i += 1
        spans.append((m.group(1), m.end(), i - 1))
    return spans


def check_expr(expr, where, known, problems):
    spans = call_spans(expr)
    for fn, a, b in spans:
        arg = expr[a:b]
        ranges = re.findall(r"\[([^\]]*)\]", arg)
        if not ranges:
            problems.append(f"{where}: {fn}() without a range: {expr!r}")
        for r in ranges:
            if r.strip() != "$__rate_interval":
                problems.append(f"{where}: {fn}() uses [{r}] instead of [$__rate_interval]")
        if SNAPSHOT_HIST.search(arg):
            problems.append(f"{where}: {fn}() over a snapshot histogram (use histogram_quantile directly)")
    for m in TOTAL.finditer(expr):
        if not any(a <= m.start() < b for _, a, b in spans):
            problems.append(f"{where}: counter {m.group(1)} is not wrapped in rate/irate/increase")
    for name in METRIC.findall(expr):
        base = re.sub(r"_(bucket|count|sum)$", "", name)
        if name not in known and base not in known:
            problems.append(f"{where}: metric {name} is not in docs/metrics.md")


def walk(node, path=""):
    """Yield (path, key, value) for every dict entry in the JSON tree."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield path, k, v
            yield from walk(v, f"{path}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from walk(v, f"{path}[{i}]")


def ds_ok(ds):
    if isinstance(ds, str):
        return ds == DS_REF
    return isinstance(ds, dict) and ds.get("uid") == DS_REF and ds.get("type", "prometheus") == "prometheus"


def all_panels(panels):
    for p in panels:
        yield p
        yield from all_panels(p.get("panels", []))


def lint(path, known):
    problems, checked = [], []
    name = os.path.relpath(path, ROOT)
    with open(path, encoding="utf-8") as f:
        raw = f.read()
    try:
        d = json.loads(raw)
    except json.JSONDecodeError as e:
        return [f"{name}: invalid JSON: {e}"], checked
    checked.append("json")

    if not isinstance(d.get("schemaVersion"), int) or d["schemaVersion"] < 39:
        problems.append(f"{name}: schemaVersion {d.get('schemaVersion')!r} < 39")
    if "__inputs" in d or "__requires" in d:
        problems.append(f"{name}: has __inputs/__requires (export-for-sharing placeholders)")
    if "${DS_" in raw:
        problems.append(f"{name}: contains a ${{DS_...}} placeholder")
    if not d.get("title") or not d.get("uid"):
        problems.append(f"{name}: dashboard needs a title and a uid")
    checked.append("schemaVersion>=39, no __inputs/${DS_}")

    variables = d.get("templating", {}).get("list", [])
    ds_vars = [v for v in variables if v.get("type") == "datasource"]
    if len(ds_vars) != 1 or ds_vars[0].get("name") != "datasource" or ds_vars[0].get("query") != "prometheus":
        problems.append(f"{name}: needs exactly one datasource variable named `datasource` with query `prometheus`")
    target_vars = [v for v in variables if v.get("name") == "target"]
    if len(target_vars) != 1:
        problems.append(f"{name}: needs one `target` variable")
    query_vars = [v.get("name") for v in variables if v.get("type") == "query"]
    for want in ("cluster", "node", "role"):
        if want not in query_vars:
            problems.append(f"{name}: needs a `{want}` variable")
    for v in variables:
        if v.get("type") != "query":
            continue
        q = v.get("query")
        q = q.get("query", "") if isinstance(q, dict) else (q or "")
        where = f"{name}: variable `{v.get('name')}`"
        m = re.match(r"^label_values\((\w+)(\{[^}]*\})?\s*,\s*\w+\)$", q.strip())
        if not m or not m.group(1).startswith("redis_") or m.group(1) not in known:
            problems.append(f"{where}: query {q!r} is not label_values() of a documented metric")
        if v.get("refresh") != 2:
            problems.append(f"{where}: must refresh on time range change (refresh: 2)")
        if not ds_ok(v.get("datasource")):
            problems.append(f"{where}: datasource is not ${{datasource}}")
        if v.get("name") == "target" and not (v.get("multi") and v.get("includeAll")):
            problems.append(f"{where}: must be multi-value with includeAll")
    checked.append("variables")

    for p, k, v in walk(d):
        if k == "datasource" and not ds_ok(v):
            problems.append(f"{name}: {p}.datasource = {json.dumps(v)} is not ${{datasource}}")
    checked.append("every datasource is ${datasource}")

    ids = set()
    npanels = nexprs = 0
    for panel in all_panels(d.get("panels", [])):
        ptype = panel.get("type")
        title = panel.get("title", "").strip()
        where = f"{name}: panel {panel.get('id')} {title!r}"
        npanels += 1
        if panel.get("id") in ids:
            problems.append(f"{where}: duplicate id")
        ids.add(panel.get("id"))
        if "gridPos" not in panel:
            problems.append(f"{where}: no gridPos")
        if ptype == "row":
            problems.append(f"{where}: row panels have no description or unit; lay panels out without rows")
            continue
        if not title:
            problems.append(f"{where}: empty title")
        if not panel.get("description", "").strip():
            problems.append(f"{where}: empty description")
        if not panel.get("fieldConfig", {}).get("defaults", {}).get("unit"):
            problems.append(f"{where}: no unit (fieldConfig.defaults.unit)")
        if not ds_ok(panel.get("datasource")):
            problems.append(f"{where}: panel datasource is not ${{datasource}}")
        targets = panel.get("targets", [])
        if not targets:
            problems.append(f"{where}: no targets")
        for t in targets:
            twhere = f"{where} target {t.get('refId')}"
            if not ds_ok(t.get("datasource")):
                problems.append(f"{twhere}: datasource is not ${{datasource}}")
            expr = t.get("expr", "")
            if not expr.strip():
                problems.append(f"{twhere}: empty expr")
                continue
            nexprs += 1
            for var in query_vars:
                if not re.search(r"\$\{?" + re.escape(var) + r"\b", expr):
                    problems.append(f"{twhere}: does not filter on ${var}")
            check_expr(expr, twhere, known, problems)
            if ptype in ("stat", "gauge", "bargauge"):
                if "{{target}}" not in t.get("legendFormat", "") or not re.search(r"by \([^)]*\btarget\b", expr):
                    problems.append(f"{twhere}: a {ptype} must keep one value per target "
                                    "(aggregate `by (target)` and legend {{target}})")
    checked.append(f"{npanels} panels / {nexprs} queries: filters on ${', $'.join(query_vars)}, title, description, unit, datasource, "
                   "$__rate_interval, counters in rate(), no rate() on snapshot histograms, documented metrics, "
                   "stat/gauge per target")
    return problems, checked


def main(argv):
    files = argv[1:] or sorted(glob.glob(os.path.join(ROOT, "dashboards", "*.json")))
    if not files:
        print("error: no dashboards/*.json found", file=sys.stderr)
        return 1
    known = documented_metrics()
    if not known:
        print("error: no metric names found in docs/metrics.md", file=sys.stderr)
        return 1
    all_problems = []
    for path in files:
        problems, checked = lint(path, known)
        status = "FAIL" if problems else "ok"
        print(f"{status}: {os.path.relpath(path, ROOT)}: " + "; ".join(checked))
        all_problems += problems
    for p in all_problems:
        print(f"  problem: {p}", file=sys.stderr)
    return 1 if all_problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
