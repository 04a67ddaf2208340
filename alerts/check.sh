#!/usr/bin/env bash
# Checks the monitoring mixin, the alert rules and dashboards it renders, their unit tests and
# linters. Run from anywhere:
#   bash alerts/check.sh                  # ~10 s; exits non-zero on the first failing step
#   MUTATIONS=1 bash alerts/check.sh      # also proves the tests pin every threshold, `for` and
#                                         # selector (one promtool run per mutant, a few minutes)
# Needs promtool (Debian/Ubuntu package `prometheus`; amtool of `prometheus-alertmanager` when
# installed), jsonnet and jsonnetfmt (package `jsonnet`)
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

echo "== the deprecated _config.diagnosisMinConfidence still sets the diagnosis threshold (alias of diagnosisMinScore)"
jsonnet -J mixin -o "$vendor/alias.json" -e "
  local old = (import 'mixin/mixin.libsonnet') + { _config+:: { diagnosisMinConfidence: 0.8 } };
  local both = (import 'mixin/mixin.libsonnet') + { _config+:: { diagnosisMinConfidence: 0.8, diagnosisMinScore: 0.9 } };
  local exprs(m) = [r.expr for g in m.prometheusAlerts.groups for r in g.rules if r.alert == 'RedisClientsCauseDiagnosed'];
  { old: exprs(old), both: exprs(both) }"
python3 - "$vendor/alias.json" <<'PY'
import json, sys
a = json.load(open(sys.argv[1]))
assert len(a["old"]) == 2 and all(">= 0.8\n" in e for e in a["old"]), f"diagnosisMinConfidence ignored: {a['old']}"
assert all(">= 0.9\n" in e for e in a["both"]), f"diagnosisMinScore must win over the alias: {a['both']}"
print("ok: diagnosisMinConfidence 0.8 renders >= 0.8; with diagnosisMinScore 0.9 beside it, >= 0.9")
PY

# Render the defaults once for every step below (jsonnet takes seconds).
python3 -B mixin/render.py >"$vendor/rendered.json"
export MIXIN_RENDERED="$vendor/rendered.json"

echo "== alert rules and the Alertmanager fragment are exactly what the mixin renders (python3 alerts/generate.py --check)"
python3 alerts/generate.py --check

echo "== promtool check rules --lint=all --lint-fatal ${rules[*]}"
promtool check rules --lint=all --lint-fatal "${rules[@]}"

if command -v amtool >/dev/null; then
    echo "== amtool check-config: alerts/alertmanager-fragment.yml in a configuration with its receivers"
    python3 - "$vendor/alertmanager.yml" <<'PY'
import json, sys
sys.dont_write_bytecode = True
sys.path.insert(0, "mixin")
import render
am = render.jsonnet()["alertmanager"]
receivers = sorted({r["receiver"] for r in am["route"]["routes"]})
cfg = {"route": {"receiver": "default", "routes": am["route"]["routes"]},
       "receivers": [{"name": n} for n in ["default"] + receivers],
       "inhibit_rules": am["inhibit_rules"]}
with open(sys.argv[1], "w") as f:
    json.dump(cfg, f)  # JSON is YAML
PY
    amtool check-config "$vendor/alertmanager.yml"
else
    echo "== SKIP amtool check-config: amtool not installed (apt-get install prometheus-alertmanager)"
fi

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
