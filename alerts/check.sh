#!/usr/bin/env bash
# Checks alert rules, their unit tests and the Grafana dashboards. Run from anywhere:
#   bash alerts/check.sh                  # ~5 s; exits non-zero on the first failing step
#   MUTATIONS=1 bash alerts/check.sh      # also proves the tests pin every threshold and `for` (~1 min)
# Needs promtool (Debian/Ubuntu package `prometheus`) and python3 (stdlib only).
set -euo pipefail
cd "$(dirname "$0")/.."

command -v promtool >/dev/null || { echo "error: promtool not found (apt-get install prometheus)" >&2; exit 1; }
command -v python3 >/dev/null || { echo "error: python3 not found" >&2; exit 1; }

shopt -s nullglob
rules=(alerts/*.rules.yml)
tests=(tests/alerts/*.test.yml)
dashboards=(dashboards/*.json)
[ "${#rules[@]}" -gt 0 ] || { echo "error: no alerts/*.rules.yml" >&2; exit 1; }
[ "${#tests[@]}" -gt 0 ] || { echo "error: no tests/alerts/*.test.yml" >&2; exit 1; }
[ "${#dashboards[@]}" -gt 0 ] || { echo "error: no dashboards/*.json" >&2; exit 1; }

echo "== alert rules match alerts/thresholds.yml (python3 alerts/generate.py --check)"
python3 alerts/generate.py --check

echo "== promtool check rules --lint=all --lint-fatal ${rules[*]}"
promtool check rules --lint=all --lint-fatal "${rules[@]}"

echo "== alert conventions, runbook anchors, one test per alert (python3 alerts/lint_rules.py)"
python3 alerts/lint_rules.py

echo "== promtool test rules ${tests[*]}"
promtool test rules "${tests[@]}"

if [ "${MUTATIONS:-0}" = 1 ]; then
    echo "== mutation check: every threshold and for is pinned by a test (python3 alerts/mutation_check.py)"
    python3 alerts/mutation_check.py
fi

echo "== dashboards match dashboards/generate.py (python3 dashboards/generate.py --check)"
python3 dashboards/generate.py --check

echo "== dashboard conventions (python3 dashboards/lint.py ${dashboards[*]})"
python3 dashboards/lint.py "${dashboards[@]}"

echo "== all alert and dashboard checks passed"
