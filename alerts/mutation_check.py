#!/usr/bin/env python3
"""Prove that tests/alerts/ pins every alert threshold and `for` (python3 stdlib + promtool).

For every alerting rule of alerts/redis-clients.rules.yml it makes mutated copies -- each numeric
literal of the expression nudged up and down (x1.02 / x0.98, or +-1 for 0), the `for` removed,
shortened and lengthened by one evaluation interval -- and runs `promtool test rules` on each.
Every mutant must make the tests fail; survivors are listed and the exit status is 1.

    python3 alerts/mutation_check.py           # about one promtool run per mutant (~1 min)
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
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
        target = os.path.join(tmp, "alerts", "redis-clients.rules.yml")
        survivors, total = [], 0
        for desc, mutated in mutants(lines):
            total += 1
            with open(target, "w", encoding="utf-8") as f:
                f.write("\n".join(mutated))
            r = subprocess.run(["promtool", "test", "rules", *tests],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            status = "killed" if r.returncode != 0 else "SURVIVED"
            print(f"{status:8} {desc}")
            if r.returncode == 0:
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
