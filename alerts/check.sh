#!/usr/bin/env bash
# Checks the monitoring mixin, the alert rules and dashboards it renders, their unit tests and
# linters. Run from anywhere:
#   bash alerts/check.sh                  # ~10 s; exits non-zero on the first failing step
#   MUTATIONS=1 bash alerts/check.sh      # also proves the tests pin every threshold, `for` and
#                                         # selector (one promtool run per mutant, a few minutes)
# Needs promtool (Debian/Ubuntu package `prometheus`), jsonnet and jsonnetfmt (package `jsonnet`)
# and python3 (stdlib; PyYAML, when installed, also proves the rules YAML reads back as rendered).
set -euo pipefail
cd "$(dirname "$0")/.."

command -v promtool >/dev/null || { echo "error: promtool not found (apt-get install prometheus)" >&2; exit 1; }
command -v python3 >/dev/null || { echo "error: python3 not found" >&2; exit 1; }
command -v jsonnet >/dev/null || { echo "error: jsonnet not found (apt-get install jsonnet)" >&2; exit 1; }
command -v jsonnetfmt >/dev/null || { echo "error: jsonnetfmt not found (apt-get install jsonnet)" >&2; exit 1; }

shopt -s nullglob
rules=(alerts/*.rules.yml)
tests=(tests/alerts/*.test.yml)
dashboards=(dashboards/*.json)
[ "${#rules[@]}" -gt 0 ] || { echo "error: no alerts/*.rules.yml" >&2; exit 1; }
[ "${#tests[@]}" -gt 0 ] || { echo "error: no tests/alerts/*.test.yml" >&2; exit 1; }
[ "${#dashboards[@]}" -gt 0 ] || { echo "error: no dashboards/*.json" >&2; exit 1; }

echo "== mixin sources are jsonnetfmt-formatted"
jsonnetfmt --test mixin/*.libsonnet mixin/lib/*.libsonnet

echo "== the mixin vendors and configures like a jsonnet-bundler dependency"
vendor=$(mktemp -d)
trap 'rm -rf "$vendor"' EXIT
mkdir -p "$vendor/github.com/redis-clients-exporter/redis-clients-exporter"
ln -s "$PWD/mixin" "$vendor/github.com/redis-clients-exporter/redis-clients-exporter/mixin"
jsonnet -J "$vendor" -o "$vendor/out.json" -e "
  local m = (import 'github.com/redis-clients-exporter/redis-clients-exporter/mixin/mixin.libsonnet')
    + { _config+:: { redisClientsExporterSelector: 'job=\"redis-vendored\"', runbookUrlBase: 'https://wiki.example/rce' } };
  { alerts: m.prometheusAlerts, rules: m.prometheusRules, dashboards: m.grafanaDashboards }"
python3 - "$vendor/out.json" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
text = json.dumps(m)
assert m["alerts"]["groups"] and m["rules"]["groups"] and m["dashboards"], "empty mixin"
assert 'job=\\"redis-clients-exporter\\"' not in text and text.count("redis-vendored") > 50, "selector override not applied"
assert "https://wiki.example/rce#redisclientutilisationhigh" in text, "runbookUrlBase override not applied"
print(f"ok: the vendored mixin renders {len(m['alerts']['groups'])} alert groups, {len(m['rules']['groups'])} "
      f"recording group(s) and {len(m['dashboards'])} dashboards, with the overrides")
PY

# Render the defaults once for every step below (jsonnet takes seconds).
python3 -B mixin/render.py >"$vendor/rendered.json"
export MIXIN_RENDERED="$vendor/rendered.json"

echo "== alert rules are exactly what the mixin renders (python3 alerts/generate.py --check)"
python3 alerts/generate.py --check

echo "== promtool check rules --lint=all --lint-fatal ${rules[*]}"
promtool check rules --lint=all --lint-fatal "${rules[@]}"

echo "== alert conventions, runbook anchors, one test per alert (python3 alerts/lint_rules.py)"
python3 alerts/lint_rules.py

echo "== promtool test rules ${tests[*]}"
promtool test rules "${tests[@]}"

if [ "${MUTATIONS:-0}" = 1 ]; then
    echo "== mutation check: every threshold, for and selector is pinned by a test (python3 alerts/mutation_check.py)"
    python3 alerts/mutation_check.py
fi

echo "== dashboards are exactly what the mixin renders (python3 dashboards/generate.py --check)"
python3 dashboards/generate.py --check

echo "== dashboard conventions (python3 dashboards/lint.py ${dashboards[*]})"
python3 dashboards/lint.py "${dashboards[@]}"

echo "== all alert and dashboard checks passed"
