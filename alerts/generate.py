#!/usr/bin/env python3
"""Render alerts/redis-clients.rules.yml from alerts/thresholds.yml (python3 stdlib only).

    python3 alerts/generate.py            # write the rules file
    python3 alerts/generate.py --check    # exit 1 if the committed rules file differs
    python3 alerts/generate.py --stdout   # print instead of writing

Thresholds, `for` durations and the runbook URL live in thresholds.yml only; the expressions
and texts live here. Never edit the rules file by hand: `--check` (run by alerts/check.sh)
fails when it drifts from what this script renders.
"""
import difflib
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
THRESHOLDS = os.path.join(HERE, "thresholds.yml")
RULES = os.path.join(HERE, "redis-clients.rules.yml")

IDLE_BUCKETS = (1, 10, 60, 300, 600, 1800, 3600, 21600, 86400)
DURATION = re.compile(r"^[0-9]+(ms|s|m|h|d|w|y)$")

# key -> kind: ratio (0 < x <= 1), number (>= 0), duration, string
SCHEMA = {
    "runbook_base_url": "string",
    "rate_window": "duration",
    "utilisation_warning_ratio": "ratio",
    "utilisation_warning_for": "duration",
    "utilisation_critical_ratio": "ratio",
    "utilisation_critical_for": "duration",
    "rejected_connections_min_increase": "number",
    "rejected_connections_for": "duration",
    "exhaustion_lookback": "duration",
    "exhaustion_horizon": "duration",
    "exhaustion_min_utilisation_ratio": "ratio",
    "exhaustion_for": "duration",
    "idle_leak_le": "number",
    "idle_leak_min_connections": "number",
    "idle_leak_min_ratio": "ratio",
    "idle_leak_for": "duration",
    "source_share_ratio": "ratio",
    "source_share_min_connections": "number",
    "source_share_for": "duration",
    "churn_per_second": "number",
    "churn_for": "duration",
    "diagnosis_min_confidence": "ratio",
    "diagnosis_for": "duration",
    "maxclients_clamped_for": "duration",
    "timeout_disabled_for": "duration",
    "tcp_keepalive_disabled_for": "duration",
    "pubsub_idle_connections": "number",
    "pubsub_idle_for": "duration",
    "blocked_clients": "number",
    "blocked_clients_for": "duration",
    "target_down_for": "duration",
    "stale_after_seconds": "number",
    "stale_for": "duration",
    "absent_for": "duration",
    "exporter_selector": "string",
}


class ConfigError(Exception):
    pass


def load_thresholds(path):
    """Parse the flat `key: value` YAML subset of thresholds.yml."""
    values = {}
    with open(path, encoding="utf-8") as f:
        for lineno, raw in enumerate(f, 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            m = re.match(r"^([a-z_]+):\s*(.*)$", line)
            if not m:
                raise ConfigError(f"{path}:{lineno}: expected `key: value`, got {raw.rstrip()!r}")
            key, value = m.group(1), m.group(2)
            if value.startswith('"') or value.startswith("'"):
                q = value[0]
                end = value.find(q, 1)
                if end < 0:
                    raise ConfigError(f"{path}:{lineno}: unterminated string")
                rest = value[end + 1:].strip()
                if rest and not rest.startswith("#"):
                    raise ConfigError(f"{path}:{lineno}: text after the string")
                value = value[1:end]
            else:
                value = re.sub(r"\s+#.*$", "", value).strip()
            if key not in SCHEMA:
                raise ConfigError(f"{path}:{lineno}: unknown key `{key}`")
            if key in values:
                raise ConfigError(f"{path}:{lineno}: duplicate key `{key}`")
            values[key] = (value, lineno)

    missing = sorted(set(SCHEMA) - set(values))
    if missing:
        raise ConfigError(f"{path}: missing keys: {', '.join(missing)}")

    t = {}
    for key, (value, lineno) in values.items():
        kind = SCHEMA[key]
        where = f"{path}:{lineno}: `{key}`"
        if kind in ("ratio", "number"):
            try:
                num = float(value)
            except ValueError:
                raise ConfigError(f"{where}: not a number: {value!r}")
            if num < 0 or (kind == "ratio" and not 0 < num <= 1):
                raise ConfigError(f"{where}: out of range: {value}")
            t[key] = num
        elif kind == "duration":
            if not DURATION.match(value):
                raise ConfigError(f"{where}: not a Prometheus duration with one unit: {value!r}")
            t[key] = value
        else:
            t[key] = value
    if int(t["idle_leak_le"]) != t["idle_leak_le"] or int(t["idle_leak_le"]) not in IDLE_BUCKETS:
        raise ConfigError(f"{path}: `idle_leak_le` must be one of the buckets {IDLE_BUCKETS}")
    if t["utilisation_warning_ratio"] >= t["utilisation_critical_ratio"]:
        raise ConfigError(f"{path}: utilisation_warning_ratio must be below utilisation_critical_ratio")
    if t["rate_window"] in ("0s", "0m", "0h"):
        raise ConfigError(f"{path}: rate_window must not be zero")
    if '"' in t["runbook_base_url"] or " " in t["runbook_base_url"]:
        raise ConfigError(f"{path}: runbook_base_url must not contain quotes or spaces")
    return t


def num(x):
    """PromQL literal: 80.0 -> 80, 0.80 -> 0.8."""
    return str(int(x)) if float(x).is_integer() else repr(float(x))


def pct(x):
    return f"{x * 100:g}%"


def seconds(duration):
    n, unit = re.match(r"^([0-9]+)([a-z]+)$", duration).groups()
    return int(n) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}[unit]


def human_seconds(s):
    s = int(s)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size and s % size == 0:
            return f"{s // size}{unit}"
    return f"{s}s"


def is_zero(duration):
    return seconds(duration) == 0


def build(t):
    """Return the rule groups as plain data."""
    w = t["rate_window"]
    le = int(t["idle_leak_le"])
    long_idle = human_seconds(le)
    sel = t["exporter_selector"].strip()
    absent_sel = "redis_clients_exporter_build_info" + (f"{{{sel}}}" if sel else "")
    leak_cond = (
        f"redis:client_idle_long:connections >= {num(t['idle_leak_min_connections'])}\n"
        f"and redis:client_idle_long:ratio >= {num(t['idle_leak_min_ratio'])}"
    )
    # Go-template fragments reused in descriptions (evaluated by Prometheus at alert time).
    top_idle_source = (
        "{{ with printf `topk(1, redis_client_source_idle_connections{target=%q,source_ip!=\"other\"}"
        f" and redis_client_source_oldest_idle_seconds >= {le})` $labels.target | query }}}}"
        "{{ with first . }}{{ .Labels.source_ip }} ({{ .Value | humanize }} idle connections){{ end }}"
        "{{ else }}none found{{ end }}"
    )
    idle_share = (
        "{{ with printf `redis:client_idle_long:ratio{target=%q}` $labels.target | query }}"
        "{{ . | first | value | humanizePercentage }}{{ else }}an unknown share{{ end }}"
    )

    recording = [
        {
            "record": "redis:client_utilisation:ratio",
            "expr": "redis_client_limit_connections\n/ (redis_config_maxclients > 0)",
        },
        {
            "record": "redis:client_idle_long:connections",
            "expr": f"redis_client_idle_seconds_count\n- ignoring(le) redis_client_idle_seconds_bucket{{le=\"{le}\"}}",
        },
        {
            "record": "redis:client_idle_long:ratio",
            "expr": "redis:client_idle_long:connections\n/ (redis_client_idle_seconds_count > 0)",
        },
        {
            "record": "redis:client_source_share:ratio",
            "expr": "redis_client_connections{source_ip!=\"other\"}\n"
                    "/ ignoring(source_ip) group_left() (redis_client_snapshot_connections > 0)",
        },
        {
            "record": f"redis:connections_received:rate{w}",
            "expr": f"rate(redis_connections_received_total[{w}])",
        },
    ]

    capacity = [
        alert("RedisClientUtilisationHigh", "warning", t["utilisation_warning_for"],
              f"redis:client_utilisation:ratio > {num(t['utilisation_warning_ratio'])}",
              "Redis connections are close to maxclients.",
              "{{ $labels.target }} uses {{ $value | humanizePercentage }} of maxclients (clients + replicas + "
              f"cluster bus), above {pct(t['utilisation_warning_ratio'])} for {t['utilisation_warning_for']}.", t),
        alert("RedisClientUtilisationCritical", "critical", t["utilisation_critical_for"],
              f"redis:client_utilisation:ratio > {num(t['utilisation_critical_ratio'])}",
              "Redis connections are about to hit maxclients.",
              "{{ $labels.target }} uses {{ $value | humanizePercentage }} of maxclients (clients + replicas + "
              f"cluster bus), above {pct(t['utilisation_critical_ratio'])} for {t['utilisation_critical_for']}; "
              "new connections will soon be refused with ERR max number of clients reached.", t),
        alert("RedisConnectionsRejected", "critical", t["rejected_connections_for"],
              f"increase(redis_rejected_connections_total[{w}]) > {num(t['rejected_connections_min_increase'])}",
              "Redis is refusing connections because maxclients is reached.",
              "{{ $labels.target }} refused about {{ $value | printf \"%.0f\" }} connections in the last "
              f"{w} (ERR max number of clients reached).", t),
        alert("RedisClientsExhaustionPredicted", "warning", t["exhaustion_for"],
              f"predict_linear(redis_client_limit_connections[{t['exhaustion_lookback']}], "
              f"{num(seconds(t['exhaustion_horizon']))})\n"
              ">= redis_config_maxclients\n"
              f"and redis:client_utilisation:ratio >= {num(t['exhaustion_min_utilisation_ratio'])}",
              "Redis connections are predicted to reach maxclients soon.",
              f"At the trend of the last {t['exhaustion_lookback']}, {{{{ $labels.target }}}} reaches "
              f"{{{{ $value | humanize }}}} connections within {t['exhaustion_horizon']}, at or above maxclients.", t),
        alert("RedisClientIdleLeak", "warning", t["idle_leak_for"], leak_cond,
              "Many Redis connections have been idle for a long time.",
              f"{{{{ $labels.target }}}} has {{{{ $value | humanize }}}} connections idle for more than {long_idle} "
              f"({idle_share} of all connections; thresholds {num(t['idle_leak_min_connections'])} and "
              f"{pct(t['idle_leak_min_ratio'])}). Top source with connections idle over {long_idle}: "
              f"{top_idle_source}.", t),
        alert("RedisClientSourceDominant", "warning", t["source_share_for"],
              f"redis:client_source_share:ratio > {num(t['source_share_ratio'])}\n"
              f"and redis_client_connections >= {num(t['source_share_min_connections'])}",
              "One source IP holds a large share of all Redis connections.",
              "{{ $labels.source_ip }} holds {{ $value | humanizePercentage }} of all connections to "
              f"{{{{ $labels.target }}}} (threshold {pct(t['source_share_ratio'])}, at least "
              f"{num(t['source_share_min_connections'])} connections).", t),
        alert("RedisConnectionChurnHigh", "warning", t["churn_for"],
              f"redis:connections_received:rate{w} > {num(t['churn_per_second'])}",
              "Redis accepts new connections at a high rate.",
              "{{ $labels.target }} accepts {{ $value | humanize }} new connections per second "
              f"(threshold {num(t['churn_per_second'])}/s over {w}): clients connect per request instead of pooling.", t),
        alert("RedisClientsCauseDiagnosed", "warning", t["diagnosis_for"],
              f"redis_client_diagnosis{{cause!=\"none\"}} >= {num(t['diagnosis_min_confidence'])}",
              "The exporter has diagnosed a cause of Redis connection exhaustion.",
              "{{ $labels.target }}: the most likely cause of connection exhaustion is {{ $labels.cause }} "
              "(confidence {{ $value | printf \"%.2f\" }}, threshold "
              f"{num(t['diagnosis_min_confidence'])}). Evidence, culprit and fix: "
              "http://{{ $labels.instance }}/diagnose?target={{ $labels.target | urlquery }}&format=html", t),
    ]

    config = [
        alert("RedisMaxclientsClampedByFdLimit", "warning", t["maxclients_clamped_for"],
              "redis_client_maxclients_clamped == 1",
              "Redis maxclients looks reduced by a low open-file limit.",
              "maxclients of {{ $labels.target }} has the value Redis sets when the open-file limit is too low "
              "(an open-files limit such as 1024, 4096 or 20000, minus 32); utilisation ratios are measured against this reduced limit.", t),
        alert("RedisIdleTimeoutDisabled", "info", t["timeout_disabled_for"],
              "redis_client_config_timeout_seconds == 0\nand (\n  " + leak_cond.replace("\n", "\n  ") + "\n)",
              "Redis never closes idle connections while idle connections pile up.",
              "{{ $labels.target }} has timeout 0, so connections idle for more than "
              f"{long_idle} (currently over the idle-leak thresholds) are never closed by the server.", t),
        alert("RedisTcpKeepaliveDisabled", "info", t["tcp_keepalive_disabled_for"],
              "redis_client_config_tcp_keepalive_seconds == 0",
              "Redis does not detect dead client peers.",
              "{{ $labels.target }} has tcp-keepalive 0: connections of crashed or unreachable clients stay "
              "open and count against maxclients.", t),
        alert("RedisPubsubIdleSubscribersHigh", "warning", t["pubsub_idle_for"],
              f"redis_client_idle_connections{{type=\"pubsub\"}} > {num(t['pubsub_idle_connections'])}",
              "Many idle pub/sub subscribers are connected to Redis.",
              "{{ $labels.target }} has {{ $value | humanize }} idle pub/sub connections "
              f"(threshold {num(t['pubsub_idle_connections'])}): subscribers may be leaking.", t),
        alert("RedisBlockedClientsHigh", "warning", t["blocked_clients_for"],
              f"redis_blocked_clients > {num(t['blocked_clients'])}",
              "Many Redis clients are blocked.",
              "{{ $labels.target }} has {{ $value | humanize }} clients blocked in BLPOP, XREAD, WAIT or similar "
              f"(threshold {num(t['blocked_clients'])}).", t),
    ]

    exporter = [
        alert("RedisClientsExporterTargetDown", "warning", t["target_down_for"],
              "redis_up == 0",
              "The Redis clients exporter cannot poll a target.",
              "redis-clients-exporter {{ $labels.instance }} has not polled {{ $labels.target }} successfully "
              f"for {t['target_down_for']}. Most frequent error kind in the last 15m: "
              "{{ with printf `topk(1, increase(redis_clients_exporter_poll_errors_total{target=%q,kind!=\"config_unavailable\"}[15m]) > 0)` "
              "$labels.target | query }}{{ with first . }}{{ .Labels.kind }}{{ end }}{{ else }}none recorded{{ end }}.", t),
        alert("RedisClientsExporterDataStale", "warning", t["stale_for"],
              f"time() - redis_clients_exporter_last_success_timestamp_seconds > {num(t['stale_after_seconds'])}\n"
              "unless redis_up == 0",
              "The Redis clients exporter serves stale data.",
              "The last completed poll of {{ $labels.target }} by {{ $labels.instance }} is {{ $value | humanizeDuration }} "
              f"old (threshold {human_seconds(t['stale_after_seconds'])}) although the target is not reported down.", t),
        alert("RedisClientsExporterAbsent", "warning", t["absent_for"],
              f"absent({absent_sel})",
              "No Redis clients exporter is scraped.",
              f"Prometheus has had no {absent_sel} series for {t['absent_for']}: "
              "redis-clients-exporter is down or not scraped, and no other alert of this file can fire.", t),
    ]

    return [
        ("redis-clients.recording", recording),
        ("redis-clients.capacity", capacity),
        ("redis-clients.config", config),
        ("redis-clients.exporter", exporter),
    ]


def alert(name, severity, for_, expr, summary, description, t):
    assert re.match(r"^[A-Z][A-Za-z0-9]+$", name) and len(name) <= 40, name
    assert severity in ("info", "warning", "critical"), severity
    assert summary[0].isupper() and summary.endswith(".") and "{{" not in summary, summary
    rule = {"alert": name, "expr": expr}
    if not is_zero(for_):
        rule["for"] = for_
    rule["labels"] = {"severity": severity}
    rule["annotations"] = {
        "summary": summary,
        "description": description,
        "runbook_url": f"{t['runbook_base_url']}#{name.lower()}",
    }
    return rule


def block(text, indent):
    pad = " " * indent
    return "|-\n" + "\n".join(pad + line for line in text.split("\n"))


def render(t):
    out = [
        "# GENERATED by alerts/generate.py from alerts/thresholds.yml -- do not edit by hand.",
        "# Change thresholds in alerts/thresholds.yml, run `python3 alerts/generate.py`, then",
        "# `bash alerts/check.sh` (tests/alerts/ pins the shipped defaults). See docs/runbook.md.",
        "groups:",
    ]
    for gname, rules in build(t):
        assert len(rules) <= 20, gname
        out.append(f"  - name: {gname}")
        out.append("    rules:")
        for r in rules:
            if "record" in r:
                out.append(f"      - record: {r['record']}")
                out.append(f"        expr: {block(r['expr'], 10)}")
                continue
            out.append(f"      - alert: {r['alert']}")
            out.append(f"        expr: {block(r['expr'], 10)}")
            if "for" in r:
                out.append(f"        for: {r['for']}")
            out.append("        labels:")
            for k, v in r["labels"].items():
                out.append(f"          {k}: {v}")
            out.append("        annotations:")
            a = r["annotations"]
            out.append("          summary: '" + a["summary"].replace("'", "''") + "'")
            out.append(f"          description: {block(a['description'], 12)}")
            out.append(f"          runbook_url: '{a['runbook_url']}'")
    return "\n".join(out) + "\n"


def main(argv):
    mode = argv[1] if len(argv) > 1 else "--write"
    if mode not in ("--write", "--check", "--stdout"):
        print(__doc__, file=sys.stderr)
        return 2
    try:
        text = render(load_thresholds(THRESHOLDS))
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if mode == "--stdout":
        sys.stdout.write(text)
        return 0
    if mode == "--check":
        try:
            with open(RULES, encoding="utf-8") as f:
                current = f.read()
        except FileNotFoundError:
            current = ""
        if current != text:
            sys.stderr.writelines(difflib.unified_diff(
                current.splitlines(True), text.splitlines(True), RULES, "generated"))
            print(f"error: {os.path.relpath(RULES)} differs from what alerts/generate.py renders "
                  "from alerts/thresholds.yml; run `python3 alerts/generate.py`", file=sys.stderr)
            return 1
        print(f"ok: {os.path.relpath(RULES)} matches alerts/thresholds.yml")
        return 0
    with open(RULES, "w", encoding="utf-8") as f:
        f.write(text)
    print(f"wrote {os.path.relpath(RULES)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
