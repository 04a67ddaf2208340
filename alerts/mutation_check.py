#!/usr/bin/env python3
"""Prove that tests/alerts/ pins every alert threshold, `for` and selector (python3 stdlib + promtool).

For every alerting rule of alerts/redis-clients.rules.yml it makes mutated copies -- each numeric
literal of the expression nudged up and down (x1.02 / x0.98, or +-1 for 0), the `for` removed,
shortened and lengthened by one evaluation interval -- and for every alerting and recording rule
a copy whose expression has lost the configured selector (redisClientsExporterSelector of
mixin/config.libsonnet) everywhere; it runs `promtool test rules` on each.
Every mutant must make the tests fail; survivors are listed and the exit status is 1.

    python3 alerts/mutation_check.py           # one promtool run per mutant and test file until one fails
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(ROOT, "mixin"))
import render  # noqa: E402

RULES = os.path.join(ROOT, "alerts", "redis-clients.rules.yml")
TESTS = os.path.join(ROOT, "tests", "alerts")

# a number not inside a word, a [range] or a "string"
NUMBER = re.compile(r'(?<![\w.\[":])(\d+(?:\.\d+)?)(?![\w.\]":])')


def nudges(text):
    x = float(text)
    if x == 0:
        return ["1", "-1"]
    return [repr(x * 1.02), repr(x * 0.98)]


def shift_for(value, minutes):
    m = re.match(r"^(\d+)([smh])$", value)
    n, unit = int(m.group(1)), m.group(2)
    total = n * {"s": 1 / 60, "m": 1, "h": 60}[unit] + minutes
    return f"{int(total)}m" if total > 0 else None


def unscoped(lines, selector):
    """Yield (description, mutated lines): each rule's expression without the selector."""
    rule, start = None, None
    for i, line in enumerate(lines + ["      - end"]):
        m = re.match(r"^      - (alert|record|end)", line)
        if m and rule is not None:
            mutated, in_expr = list(lines), False
            for j in range(start, i):
                if re.match(r"^        \S", mutated[j]):
                    in_expr = mutated[j] == "        expr: |-"
                elif in_expr:
                    mutated[j] = mutated[j].replace("{" + selector + "}", "").replace(selector + ", ", "")
            if mutated != lines:
                yield f"{rule}: selector {selector} removed from the expression", mutated
        if m:
            rule, start = line.split(": ", 1)[-1], i


def mutants(lines):
    """Yield (description, mutated lines)."""
    alert = None
    in_expr = False
    for i, line in enumerate(lines):
        m = re.match(r"^      - (alert|record): (\S+)", line)
        if m:
            alert = m.group(2) if m.group(1) == "alert" else None
            in_expr = False
            continue
        if alert is None:
            continue
        if re.match(r"^        expr: \|-$", line):
            in_expr = True
            continue
        if in_expr and line.startswith("          "):
            for nm in NUMBER.finditer(line):
                for new in nudges(nm.group(1)):
                    mutated = list(lines)
                    mutated[i] = line[:nm.start()] + new + line[nm.end():]
                    yield f"{alert}: {nm.group(1)} -> {new} in `{line.strip()}`", mutated
            continue
        in_expr = False
        fm = re.match(r"^        for: (\S+)$", line)
        if fm:
            mutated = list(lines)
            del mutated[i]
            yield f"{alert}: `for: {fm.group(1)}` removed", mutated
            for delta in (-1, 1):
                new = shift_for(fm.group(1), delta)
                if new:
                    mutated = list(lines)
                    mutated[i] = f"        for: {new}"
                    yield f"{alert}: `for: {fm.group(1)}` -> {new}", mutated


def main():
    with open(RULES, encoding="utf-8") as f:
        lines = f.read().split("\n")
    tmp = tempfile.mkdtemp(prefix="rce-mutants-")
    try:
        os.makedirs(os.path.join(tmp, "alerts"))
        shutil.copytree(TESTS, os.path.join(tmp, "tests", "alerts"))
        tests = sorted(os.path.join(tmp, "tests", "alerts", n)
                       for n in os.listdir(os.path.join(tmp, "tests", "alerts")) if n.endswith(".test.yml"))
        texts = {}
        for t in tests:
            with open(t, encoding="utf-8") as f:
                texts[t] = f.read()
        target = os.path.join(tmp, "alerts", "redis-clients.rules.yml")
        survivors, total = [], 0
        selector = render.jsonnet()["config"]["redisClientsExporterSelector"].strip()
        all_mutants = list(mutants(lines)) + (list(unscoped(lines, selector)) if selector else [])
        for desc, mutated in all_mutants:
            total += 1
            with open(target, "w", encoding="utf-8") as f:
                f.write("\n".join(mutated))
            # One failing file kills a mutant: try the files that name the rule first.
            rule = desc.split(":", 1)[0] if not desc.startswith("redis:") else desc.split(": ", 1)[0]
            ordered = sorted(tests, key=lambda t: rule not in texts[t])
            killed = any(subprocess.run(["promtool", "test", "rules", t], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL).returncode != 0 for t in ordered)
            status = "killed" if killed else "SURVIVED"
            print(f"{status:8} {desc}")
            if not killed:
                survivors.append(desc)
        print(f"{total - len(survivors)}/{total} mutants killed")
        if survivors:
            print("error: the tests in tests/alerts/ do not notice these changes:", file=sys.stderr)
            for s in survivors:
                print(f"  {s}", file=sys.stderr)
            return 1
        return 0
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    sys.exit(main())
