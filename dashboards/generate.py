#!/usr/bin/env python3
"""Render the Grafana dashboards of dashboards/ (python3 stdlib only).

    python3 dashboards/generate.py            # write dashboards/*.json
    python3 dashboards/generate.py --check    # exit 1 if a committed JSON differs
    python3 dashboards/generate.py --queries  # print every PromQL expression, one per line

Conventions (checked by dashboards/lint.py): one `datasource` variable, every panel and target
on `${datasource}`, `target` from label_values(redis_up, target), a unit and a description on
every panel, `$__rate_interval` in every rate/increase, no rate() over the snapshot histograms.
Gauges of a target are wrapped in `max by (target)` so that two exporters scraping the same
Redis (HA pair) do not double it, and every stat/gauge keeps one value per target.
"""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
DS = {"type": "prometheus", "uid": "${datasource}"}
T = 'target=~"$target"'
TAGS = ["redis", "redis-clients-exporter"]


def templating():
    return {
        "list": [
            {
                "name": "datasource",
                "label": "Data source",
                "type": "datasource",
                "query": "prometheus",
                "current": {},
                "hide": 0,
                "includeAll": False,
                "multi": False,
                "options": [],
                "refresh": 1,
                "regex": "",
                "skipUrlSync": False,
            },
            {
                "name": "target",
                "label": "Target",
                "type": "query",
                "datasource": DS,
                "definition": "label_values(redis_up, target)",
                "query": {
                    "qryType": 1,
                    "query": "label_values(redis_up, target)",
                    "refId": "PrometheusVariableQueryEditor-VariableQuery",
                },
                "current": {},
                "hide": 0,
                "includeAll": True,
                "allValue": ".+",
                "multi": True,
                "options": [],
                "refresh": 2,
                "regex": "",
                "skipUrlSync": False,
                "sort": 1,
            },
        ]
    }


class Layout:
    """Places panels left to right, wrapping at 24 columns."""

    def __init__(self):
        self.x = self.y = self.row_h = 0
        self.next_id = 1

    def place(self, panel, w, h):
        if self.x + w > 24:
            self.x, self.y, self.row_h = 0, self.y + self.row_h, 0
        panel["gridPos"] = {"x": self.x, "y": self.y, "w": w, "h": h}
        panel["id"] = self.next_id
        self.next_id += 1
        self.x += w
        self.row_h = max(self.row_h, h)
        return panel


def target(expr, legend="{{target}}", ref="A", instant=False, fmt="time_series"):
    t = {"datasource": DS, "expr": expr, "legendFormat": legend, "refId": ref, "editorMode": "code"}
    if instant:
        t.update({"instant": True, "range": False, "format": fmt})
    else:
        t.update({"range": True, "instant": False, "format": fmt})
    return t


def thresholds(*steps):
    """steps: (value or None, colour) ..."""
    return {"mode": "absolute", "steps": [{"color": c, "value": v} for v, c in steps]}


def timeseries(title, desc, targets, unit, min_=0, max_=None, steps=None, stack=False, legend_calcs=("lastNotNull", "max")):
    defaults = {
        "unit": unit,
        "color": {"mode": "palette-classic"},
        "custom": {
            "drawStyle": "line",
            "lineWidth": 1,
            "fillOpacity": 10 if not stack else 30,
            "showPoints": "never",
            "spanNulls": False,
            "stacking": {"mode": "normal" if stack else "none", "group": "A"},
            "thresholdsStyle": {"mode": "line+area" if steps else "off"},
        },
        "thresholds": steps or thresholds((None, "green")),
    }
    if min_ is not None:
        defaults["min"] = min_
    if max_ is not None:
        defaults["max"] = max_
    return {
        "type": "timeseries",
        "title": title,
        "description": desc,
        "datasource": DS,
        "targets": targets,
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {
            "legend": {"displayMode": "table", "placement": "bottom", "showLegend": True, "calcs": list(legend_calcs)},
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
    }


def stat(title, desc, targets, unit, steps, mappings=None, no_value=None, kind="stat", min_=None, max_=None):
    defaults = {"unit": unit, "thresholds": steps, "color": {"mode": "thresholds"}, "mappings": mappings or []}
    if no_value:
        defaults["noValue"] = no_value
    if min_ is not None:
        defaults["min"] = min_
    if max_ is not None:
        defaults["max"] = max_
    options = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}, "orientation": "auto"}
    if kind == "stat":
        options.update({"textMode": "value_and_name", "colorMode": "background", "graphMode": "none", "justifyMode": "auto"})
    else:
        options.update({"showThresholdMarkers": True, "showThresholdLabels": False})
    return {
        "type": kind,
        "title": title,
        "description": desc,
        "datasource": DS,
        "targets": targets,
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": options,
    }


def table(title, desc, targets, unit, renames, units=None, sort_by=None):
    """Instant queries merged into one table; renames: 'Value #A' -> header."""
    overrides = [
        {"matcher": {"id": "byName", "options": name}, "properties": [{"id": "unit", "value": u}]}
        for name, u in (units or {}).items()
    ]
    excl = {"Time": True}
    return {
        "type": "table",
        "title": title,
        "description": desc,
        "datasource": DS,
        "targets": targets,
        "fieldConfig": {"defaults": {"unit": unit, "custom": {"align": "auto", "filterable": True}}, "overrides": overrides},
        "options": {"showHeader": True, "cellHeight": "sm", "sortBy": [{"displayName": sort_by, "desc": True}] if sort_by else []},
        "transformations": [
            {"id": "merge", "options": {}},
            {"id": "organize", "options": {"excludeByName": excl, "renameByName": renames}},
        ],
    }


def heatmap(title, desc, expr, yunit):
    return {
        "type": "heatmap",
        "title": title,
        "description": desc,
        "datasource": DS,
        "targets": [dict(target(expr, legend="{{le}}", fmt="heatmap"))],
        "fieldConfig": {"defaults": {"unit": "short", "custom": {"hideFrom": {"legend": False, "tooltip": False, "viz": False}}}, "overrides": []},
        "options": {
            "calculate": False,
            "cellGap": 1,
            "color": {"mode": "scheme", "scheme": "Oranges", "scale": "exponential", "exponent": 0.5, "steps": 64, "fill": "dark-orange", "reverse": False},
            "yAxis": {"axisPlacement": "left", "unit": yunit, "reverse": False},
            "rowsFrame": {"layout": "auto", "value": "Connections"},
            "cellValues": {"unit": "short"},
            "tooltip": {"mode": "single", "yHistogram": False, "showColorScale": False},
            "legend": {"show": True},
            "exemplars": {"color": "rgba(255,0,255,0.7)"},
            "filterValues": {"le": 1e-9},
        },
    }


def dashboard(uid, title, desc, panels, other_uid):
    return {
        "uid": uid,
        "title": title,
        "description": desc,
        "tags": TAGS,
        "timezone": "",
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "timepicker": {},
        "fiscalYearStartMonth": 0,
        "liveNow": False,
        "weekStart": "",
        "annotations": {"list": []},
        "links": [
            {"type": "dashboards", "tags": ["redis-clients-exporter"], "title": "Redis clients dashboards",
             "asDropdown": False, "includeVars": True, "keepTime": True, "targetBlank": False, "icon": "external link"},
        ],
        "templating": templating(),
        "panels": panels,
    }


def m(metric, extra=""):
    """max by (target) of a per-target gauge (HA exporters scraping one Redis must not double it)."""
    sel = T + (", " + extra if extra else "")
    return f"max by (target) ({metric}{{{sel}}})"

def top(n, metric, label):
    """The n largest series of one label dimension, per target, with a legend naming both."""
    return target(f"topk({n}, max by (target, {label}) ({metric}{{{T}}}))", "{{target}} {{%s}}" % label)


def quantiles(buckets):
    """p50, p90 and p99 of a snapshot histogram (no rate(): the buckets are a snapshot)."""
    return [target(f"histogram_quantile({q}, {buckets})", "{{target}} p%s" % p, ref)
            for q, p, ref in (("0.5", "50", "A"), ("0.9", "90", "B"), ("0.99", "99", "C"))]



def overview():
    L = Layout()
    p = []
    util_expr = (f"{m('redis_client_limit_connections')}\n/ {m('redis_config_maxclients')} > 0"
                 .replace(f"/ {m('redis_config_maxclients')} > 0", f"/ ({m('redis_config_maxclients')} > 0)"))
    util_steps = thresholds((None, "green"), (0.8, "orange"), (0.95, "red"))
    p.append(L.place(stat(
        "Utilisation of maxclients",
        "Connections Redis counts against maxclients (clients + replicas + cluster bus, "
        "redis_client_limit_connections) divided by maxclients, one gauge per target. Orange from 80% "
        "(RedisClientUtilisationHigh), red from 95% (RedisClientUtilisationCritical). If maxclients is "
        "clamped by the fd limit (see 'maxclients clamped'), this ratio is measured against the reduced limit.",
        [target(util_expr, instant=True)], "percentunit", util_steps, kind="gauge", min_=0, max_=1), 8, 7))
    p.append(L.place(stat(
        "Headroom (new connections still accepted)",
        "maxclients minus everything Redis counts against it (redis_client_headroom_connections). This is "
        "how many more connections the server accepts before answering ERR max number of clients reached. "
        "Red below 50, orange below 200: look at 'Connections per source IP' on the sources dashboard for who is taking them.",
        [target(m("redis_client_headroom_connections"), instant=True)], "short",
        thresholds((None, "red"), (50, "orange"), (200, "green"))), 8, 7))
    p.append(L.place(stat(
        "Time to exhaustion (1h trend)",
        "Headroom divided by the growth rate of the connection count over the last hour (deriv over 1h). "
        "Empty ('not growing') when connections are flat or shrinking. Under an hour means "
        "RedisClientsExhaustionPredicted is about to fire: find the growing source on the sources dashboard.",
        [target(f"{m('redis_client_headroom_connections')}\n/ (max by (target) (deriv(redis_client_limit_connections{{{T}}}[1h])) > 0)",
                instant=True)], "s",
        thresholds((None, "red"), (3600, "orange"), (21600, "green")), no_value="not growing"), 8, 7))

    diag = stat(
        "Diagnosis: most likely cause",
        "The exporter's own diagnosis after its last poll (redis_client_diagnosis): the most likely cause of "
        "connection exhaustion per target and its confidence (0-1). none = nothing found. Orange from 0.5 "
        "(the report calls it a cause), red from 0.7 (RedisClientsCauseDiagnosed). The evidence, the culprit "
        "source or client name and the commands that fix it are at /diagnose?target=<target>&format=html on the exporter.",
        [target(f"max by (target, cause) (redis_client_diagnosis{{{T}}})", "{{target}}: {{cause}}", instant=True)],
        "none", thresholds((None, "green"), (0.5, "orange"), (0.7, "red")), min_=0, max_=1)
    diag["options"]["textMode"] = "value_and_name"
    p.append(L.place(diag, 24, 4))

    p.append(L.place(stat(
        "Exporter reaches target",
        "redis_up per target: 1 when the exporter's held connection answered its last poll. DOWN means "
        "every other panel is blank for that target; see 'Poll errors per second by kind' (kind maxclients = "
        "the exporter lost its connection while Redis was full).",
        [target(m("redis_up"), instant=True)], "none",
        thresholds((None, "red"), (1, "green")),
        mappings=[{"type": "value", "options": {"0": {"text": "DOWN", "color": "red"}, "1": {"text": "UP", "color": "green"}}}]), 4, 5))
    p.append(L.place(stat(
        "maxclients",
        "Effective maxclients (CONFIG GET maxclients, or INFO's maxclients where CONFIG is disabled, "
        "e.g. managed services). Compare with what you configured: a smaller value usually means the fd clamp.",
        [target(m("redis_config_maxclients"), instant=True)], "short", thresholds((None, "blue"))), 4, 5))
    src = stat(
        "maxclients source",
        "Where maxclients came from: config (CONFIG GET) or info (INFO clients, when CONFIG GET is renamed or "
        "forbidden, as on managed services). With info, the timeout and tcp-keepalive panels stay empty.",
        [target(f"max by (target, source) (redis_client_maxclients_source{{{T}}})", "{{target}}: {{source}}", instant=True)],
        "none", thresholds((None, "blue")))
    src["options"]["textMode"] = "name"
    p.append(L.place(src, 4, 5))
    p.append(L.place(stat(
        "maxclients clamped by fd limit",
        "CLAMPED when maxclients has the value Redis sets itself when the open-file limit is too low "
        "(an open-files limit minus 32: 992, 4064, 19968...). Raise LimitNOFILE / ulimit -n and restart; until then "
        "utilisation is measured against the reduced limit (RedisMaxclientsClampedByFdLimit).",
        [target(m("redis_client_maxclients_clamped"), instant=True)], "none",
        thresholds((None, "green"), (1, "red")),
        mappings=[{"type": "value", "options": {"0": {"text": "no", "color": "green"}, "1": {"text": "CLAMPED", "color": "red"}}}]), 4, 5))
    p.append(L.place(stat(
        "Idle timeout",
        "CONFIG GET timeout per target: seconds after which Redis closes an idle client. 0 (shown as 'never') "
        "means leaked connections are never closed by the server (RedisIdleTimeoutDisabled). "
        "Empty when CONFIG is unavailable (redis_client_config_available 0).",
        [target(m("redis_client_config_timeout_seconds"), instant=True)], "s",
        thresholds((None, "orange"), (1, "green")),
        mappings=[{"type": "value", "options": {"0": {"text": "never", "color": "orange"}}}]), 4, 5))
    p.append(L.place(stat(
        "tcp-keepalive",
        "CONFIG GET tcp-keepalive per target. 0 ('off') means connections of crashed clients or clients "
        "behind a dropped NAT/firewall entry are never detected and hold a maxclients slot forever "
        "(RedisTcpKeepaliveDisabled). 300 is Redis' default since 3.2.1.",
        [target(m("redis_client_config_tcp_keepalive_seconds"), instant=True)], "s",
        thresholds((None, "orange"), (1, "green")),
        mappings=[{"type": "value", "options": {"0": {"text": "off", "color": "orange"}}}]), 4, 5))

    p.append(L.place(timeseries(
        "Connections counted against maxclients vs maxclients",
        "Solid: clients + replicas + cluster bus (redis_client_limit_connections); dashed: maxclients. "
        "The gap is the headroom. A steady climb towards the dashed line is a leak or a pool growing with "
        "the number of application instances.",
        [target(m("redis_client_limit_connections"), "{{target}} used", "A"),
         target(m("redis_config_maxclients"), "{{target}} maxclients", "B")], "short"), 12, 8))
    p[-1]["fieldConfig"]["overrides"].append({
        "matcher": {"id": "byRegexp", "options": ".* maxclients"},
        "properties": [{"id": "custom.lineStyle", "value": {"fill": "dash", "dash": [10, 10]}},
                       {"id": "custom.fillOpacity", "value": 0}]})
    p.append(L.place(timeseries(
        "Utilisation over time",
        "Connections counted against maxclients divided by maxclients. The shaded bands are the alert "
        "thresholds (80% warning, 95% critical).",
        [target(util_expr)], "percentunit", max_=1, steps=util_steps), 12, 8))

    p.append(L.place(timeseries(
        "Connected, blocked and tracking clients",
        "INFO clients per target: connected_clients (replicas excluded), blocked_clients (BLPOP, XREAD, "
        "WAIT...), tracking_clients (CLIENT TRACKING), plus replicas and cluster bus links which also count "
        "against maxclients. Blocked clients climbing with connections means consumers pile up on empty "
        "queues (RedisBlockedClientsHigh).",
        [target(m("redis_connected_clients"), "{{target}} connected", "A"),
         target(m("redis_blocked_clients"), "{{target}} blocked", "B"),
         target(m("redis_tracking_clients"), "{{target}} tracking", "C"),
         target(m("redis_connected_slaves"), "{{target}} replicas", "D"),
         target(m("redis_cluster_connections"), "{{target}} cluster bus", "E")], "short"), 12, 8))
    p.append(L.place(timeseries(
        "Headroom over time",
        "New connections Redis still accepts (maxclients minus clients, replicas and cluster bus). "
        "Anything at 0 means connections are being refused right now.",
        [target(m("redis_client_headroom_connections"))], "short",
        steps=thresholds((None, "red"), (50, "transparent"))), 12, 8))

    p.append(L.place(timeseries(
        "Rejected connections per second",
        "rate of redis_rejected_connections_total: connections refused with ERR max number of clients "
        "reached. Should be 0; any value fires RedisConnectionsRejected.",
        [target(f"max by (target) (rate(redis_rejected_connections_total{{{T}}}[$__rate_interval]))")], "cps",
        steps=thresholds((None, "transparent"), (0.0001, "red"))), 12, 8))
    p.append(L.place(timeseries(
        "New connections per second",
        "rate of redis_connections_received_total. Above 100/s (the RedisConnectionChurnHigh threshold) "
        "clients usually connect per request instead of using a pool; the client names on the sources "
        "dashboard tell which application.",
        [target(f"max by (target) (rate(redis_connections_received_total{{{T}}}[$__rate_interval]))")], "cps",
        steps=thresholds((None, "transparent"), (100, "orange"))), 12, 8))

    p.append(L.place(timeseries(
        "Predicted connections in 1h (linear trend)",
        "predict_linear over the last hour of redis_client_limit_connections, 1h ahead, against maxclients "
        "(dashed). The prediction crossing maxclients for 10 minutes fires RedisClientsExhaustionPredicted.",
        [target(f"max by (target) (predict_linear(redis_client_limit_connections{{{T}}}[1h], 3600))", "{{target}} in 1h", "A"),
         target(m("redis_config_maxclients"), "{{target}} maxclients", "B")], "short"), 12, 8))
    p[-1]["fieldConfig"]["overrides"].append({
        "matcher": {"id": "byRegexp", "options": ".* maxclients"},
        "properties": [{"id": "custom.lineStyle", "value": {"fill": "dash", "dash": [10, 10]}},
                       {"id": "custom.fillOpacity", "value": 0}]})
    p.append(L.place(timeseries(
        "Connections by type",
        "CLIENT LIST connections by type: normal, pubsub, replica, master. A pubsub line that only grows "
        "points at subscribers that never unsubscribe (RedisPubsubIdleSubscribersHigh).",
        [target(f"max by (target, type) (redis_client_connections_by_type{{{T}}})", "{{target}} {{type}}")], "short",
        stack=True), 12, 8))

    p.append(L.place(timeseries(
        "Exporter poll duration by stage",
        "Time the last poll spent per stage (info, config, client_list, aggregate, total). client_list "
        "grows with the number of connections; a total near the poll interval means polls fall behind.",
        [target(f"max by (target, stage) (redis_clients_exporter_poll_duration_seconds{{{T}}})", "{{target}} {{stage}}")], "s"), 8, 8))
    p.append(L.place(timeseries(
        "Poll errors per second by kind",
        "rate of redis_clients_exporter_poll_errors_total by kind (connect, timeout, auth, maxclients, "
        "config_unavailable, protocol, other). maxclients: Redis was full when the exporter reconnected; "
        "config_unavailable is expected on managed services.",
        [target(f"sum by (target, kind) (rate(redis_clients_exporter_poll_errors_total{{{T}}}[$__rate_interval]))",
                "{{target}} {{kind}}")], "cps"), 8, 8))
    p.append(L.place(stat(
        "Age of the last completed poll",
        "Seconds since the exporter last completed a poll of each target. Should stay near the poll interval "
        "(15s by default); above 5 minutes fires RedisClientsExporterDataStale.",
        [target(f"max by (target) (time() - redis_clients_exporter_last_success_timestamp_seconds{{{T}}})", instant=True)], "s",
        thresholds((None, "green"), (60, "orange"), (300, "red"))), 8, 8))

    return dashboard(
        "redis-clients-overview", "Redis connections overview",
        "Capacity of Redis connections against maxclients, per target, from redis-clients-exporter.", p,
        "redis-clients-sources")


def sources():
    L = Layout()
    p = []
    top_src = f"topk(20, max by (target, source_ip) (redis_client_connections{{{T}}}))"
    in_top = f"and on (target, source_ip) {top_src}"
    p.append(L.place(table(
        "Top source IPs (now)",
        "The 20 source IPs with the most connections right now, with their connections idle at least "
        "idle_threshold (60s by default), their longest idle time and their summed client memory. "
        "'other' folds every source beyond the exporter's top_k. One IP with a long oldest-idle and many "
        "idle connections is the usual leak (RedisClientIdleLeak names it).",
        [target(top_src, "", "A", instant=True, fmt="table"),
         target(f"max by (target, source_ip) (redis_client_source_idle_connections{{{T}}})\n{in_top}", "", "B", instant=True, fmt="table"),
         target(f"max by (target, source_ip) (redis_client_source_oldest_idle_seconds{{{T}}})\n{in_top}", "", "C", instant=True, fmt="table"),
         target(f"max by (target, source_ip) (redis_client_source_memory_bytes{{{T}}})\n{in_top}", "", "D", instant=True, fmt="table")],
        "short",
        {"Value #A": "connections", "Value #B": "idle", "Value #C": "oldest idle", "Value #D": "client memory",
         "source_ip": "source IP"},
        units={"oldest idle": "s", "client memory": "bytes"}, sort_by="connections"), 12, 10))
    p.append(L.place(timeseries(
        "Connections per source IP (top 10)",
        "Connections per source IP over time (top 10 at each step). A line rising without falling back "
        "is a client that leaks; many lines rising together after a deploy is a pool sized per instance.",
        [top(10, "redis_client_connections", "source_ip")],
        "short"), 12, 10))

    p.append(L.place(table(
        "Top client names (now)",
        "The 20 client names (CLIENT SETNAME) with the most connections. 'unnamed' are clients that never "
        "set a name: ask their owners to set one, it is the cheapest way to know who holds a connection.",
        [target(f"topk(20, max by (target, name) (redis_client_connections_by_name{{{T}}}))", "", "A", instant=True, fmt="table")],
        "short", {"Value": "connections", "name": "client name"}, sort_by="connections"), 12, 9))
    p.append(L.place(timeseries(
        "Connections per client name (top 10)",
        "Connections per client name over time. Compare with the per-IP panel: one name on many IPs is "
        "one application scaled out.",
        [top(10, "redis_client_connections_by_name", "name")],
        "short"), 12, 9))

    p.append(L.place(timeseries(
        "Distinct source IPs (scale-out)",
        "Distinct source IPs in CLIENT LIST (counted before top-K folding). Rising together with the "
        "connection count means more application instances, each with its own pool: maxclients must "
        "cover instances x pool size.",
        [target(m("redis_client_distinct_sources"))], "short"), 8, 8))
    p.append(L.place(timeseries(
        "Connections per ACL user",
        "Connections per ACL user ('default' before Redis 6). Useful to split the blame between "
        "applications sharing source IPs (e.g. behind NAT or a proxy).",
        [top(10, "redis_client_connections_by_user", "user")],
        "short"), 8, 8))
    p.append(L.place(timeseries(
        "Connections per last command (top 10)",
        "Connections by the last command they ran. Many connections whose last command is a blocking one "
        "(blpop, xread, wait) are workers waiting; NULL means connected but never sent a command.",
        [top(10, "redis_client_connections_by_command", "command")],
        "short"), 8, 8))

    idle_b = f"max by (target, le) (redis_client_idle_seconds_bucket{{{T}}})"
    age_b = f"max by (target, le) (redis_client_age_seconds_bucket{{{T}}})"
    p.append(L.place(heatmap(
        "Idle-time distribution",
        "How many connections sit in each idle-time bucket (1s ... 1d), summed over the selected targets. "
        "Snapshot histogram of the last CLIENT LIST: no rate(). Weight moving to the top buckets "
        "(1h and more) is connections that are never used again.",
        f"sum by (le) ({idle_b})", "s"), 12, 9))
    p.append(L.place(timeseries(
        "Idle time quantiles",
        "Median, 90th and 99th percentile of idle time per target (histogram_quantile over the snapshot "
        "buckets, no rate()). A p90 above 1h with a stable connection count means pooled connections that "
        "are never reused; with timeout 0 they are never closed either.",
        quantiles(idle_b), "s"), 12, 9))
    p.append(L.place(heatmap(
        "Connection-age distribution",
        "How many connections sit in each age bucket (time since connect), summed over the selected targets. "
        "Snapshot histogram: no rate(). Mass in the lowest buckets means connection churn (see "
        "'New connections per second' on the overview); mass at 1d+ is long-lived pools.",
        f"sum by (le) ({age_b})", "s"), 12, 9))
    p.append(L.place(timeseries(
        "Connection age quantiles",
        "Median, 90th and 99th percentile of connection age per target (histogram_quantile over the snapshot "
        "buckets, no rate()). A median of seconds means clients reconnect per request.",
        quantiles(age_b), "s"), 12, 9))

    le_1h = 'le="3600"'
    long_idle = (f"{m('redis_client_idle_seconds_count')}\n"
                 f"- {m('redis_client_idle_seconds_bucket', le_1h)}")
    p.append(L.place(timeseries(
        "Connections idle longer than 1h",
        "Connections idle for more than an hour (histogram count minus the le=3600 bucket). 50 or more "
        "that are also 30% of all connections, for 30 minutes, fire RedisClientIdleLeak.",
        [target(long_idle)], "short"), 8, 8))
    p.append(L.place(timeseries(
        "Idle connections per source IP (top 10)",
        "Connections idle at least idle_threshold (60s by default) per source IP. The source at the top "
        "of this panel while the 1h-idle count grows is the one to fix (or CLIENT KILL).",
        [top(10, "redis_client_source_idle_connections", "source_ip")],
        "short"), 8, 8))
    p.append(L.place(timeseries(
        "Oldest idle connection per source IP (top 10)",
        "Longest idle time per source IP. Hours or days on an application server usually means a pool "
        "without idle eviction, or connections of a process that died behind a NAT/firewall "
        "(tcp-keepalive 0 never notices).",
        [top(10, "redis_client_source_oldest_idle_seconds", "source_ip")],
        "s"), 8, 8))

    p.append(L.place(timeseries(
        "Client memory per source IP (top 10)",
        "Summed client memory (tot-mem: query and output buffers) per source IP. A source growing here "
        "reads big replies slowly or subscribes to more than it consumes.",
        [top(10, "redis_client_source_memory_bytes", "source_ip")],
        "bytes"), 8, 8))
    p.append(L.place(timeseries(
        "Output buffer memory (all clients)",
        "Summed output buffer memory (omem) of all clients per target. Spikes are slow consumers; a steady "
        "climb is usually a pub/sub subscriber that cannot keep up.",
        [target(m("redis_client_output_buffer_bytes"))], "bytes"), 8, 8))
    p.append(L.place(timeseries(
        "Connections by state flag",
        "Connections in a state: blocked, multi (inside MULTI), tracking, unix_socket, readonly, "
        "close_asap, no_evict. Not a partition: a connection can have several flags. close_asap growing "
        "means Redis is dropping clients over output buffer limits.",
        [target(f"max by (target, flag) (redis_client_connections_by_flag{{{T}}})", "{{target}} {{flag}}")], "short"), 8, 8))

    p.append(L.place(timeseries(
        "Pub/sub subscribers: connected and idle",
        "Pub/sub connections (type pubsub) and those idle at least idle_threshold. Subscribers are idle by "
        "nature (they only receive); what matters is a count that only grows: above 500 idle for 30 "
        "minutes fires RedisPubsubIdleSubscribersHigh.",
        [target(m("redis_client_connections_by_type", 'type="pubsub"'), "{{target}} pubsub connections", "A"),
         target(m("redis_client_idle_connections", 'type="pubsub"'), "{{target}} idle pubsub", "B")], "short"), 12, 8))
    p.append(L.place(timeseries(
        "Subscriptions by kind",
        "Subscriptions held by all clients: channel (SUBSCRIBE), pattern (PSUBSCRIBE), shard (SSUBSCRIBE). "
        "Subscriptions rising faster than subscribers means clients subscribe repeatedly without unsubscribing.",
        [target(f"max by (target, kind) (redis_client_subscriptions{{{T}}})", "{{target}} {{kind}}")], "short"), 12, 8))

    return dashboard(
        "redis-clients-sources", "Redis connection sources",
        "Who holds the Redis connections: source IPs, client names, users, commands, idle and connection age, "
        "from redis-clients-exporter.", p, "redis-clients-overview")


DASHBOARDS = {
    "redis-connections-overview.json": overview,
    "redis-connection-sources.json": sources,
}


def render(fn):
    return json.dumps(fn(), indent=2, ensure_ascii=False) + "\n"


def queries():
    for name, fn in DASHBOARDS.items():
        d = fn()
        for v in d["templating"]["list"]:
            if v.get("type") == "query":
                yield name, f"variable {v['name']}", v["definition"]
        for panel in d["panels"]:
            for t in panel.get("targets", []):
                yield name, panel["title"], t["expr"]


def main(argv):
    mode = argv[1] if len(argv) > 1 else "--write"
    if mode == "--queries":
        for name, title, expr in queries():
            print(f"{name} | {title} | {' '.join(expr.split())}")
        return 0
    if mode not in ("--write", "--check"):
        print(__doc__, file=sys.stderr)
        return 2
    bad = 0
    for name, fn in DASHBOARDS.items():
        path = os.path.join(HERE, name)
        text = render(fn)
        if mode == "--check":
            try:
                with open(path, encoding="utf-8") as f:
                    current = f.read()
            except FileNotFoundError:
                current = ""
            if current != text:
                print(f"error: dashboards/{name} differs from what dashboards/generate.py renders; "
                      "run `python3 dashboards/generate.py`", file=sys.stderr)
                bad = 1
            else:
                print(f"ok: dashboards/{name} matches dashboards/generate.py")
        else:
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
            print(f"wrote dashboards/{name}")
    return bad


if __name__ == "__main__":
    sys.exit(main(sys.argv))
