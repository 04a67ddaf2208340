// The ONE place for alert thresholds, `for` durations, selectors and link bases. Override any
// of them when you import the mixin:
//
//   (import 'redis-clients-exporter-mixin/mixin.libsonnet') + {
//     _config+:: { redisClientsExporterSelector: 'job="redis-clients"', utilisationWarningRatio: 0.85 },
//   }
//
// alerts/redis-clients.rules.yml and dashboards/*.json are these defaults rendered
// (python3 alerts/generate.py, python3 dashboards/generate.py); tests/alerts/ pins them.
// Ratios are 0..1; durations are Prometheus durations with one unit (30s, 5m, 1h; 0m = no `for`).
{
  _config+:: {
    // Label matchers added to every selector of every rule, alert template and dashboard query,
    // so that the rules never match another exporter's series of the same names (the Go
    // redis_exporter's redis_up, redis_blocked_clients, ...). '' matches every job.
    redisClientsExporterSelector: 'job="redis-clients-exporter"',

    // Each alert links to <runbookUrlBase>#<alert name in lower case>: point it at wherever your
    // copy of docs/runbook.md is served (your Git host's blob URL, a wiki page).
    runbookUrlBase: 'https://github.com/redis-clients-exporter/redis-clients-exporter/blob/main/docs/runbook.md',

    // Base of the links to the exporter's /diagnose page, <base>/diagnose?target=...&format=html.
    // It is an alert template: the default is the scraped address of the exporter; behind TLS,
    // a reverse proxy or with /scrape targets (whose `instance` is the Redis address) set e.g.
    // 'https://redis-exporter.example.com' or 'https://{{ $labels.instance }}'.
    diagnoseUrlBase: 'http://{{ $labels.instance }}',
    // The same for the dashboards' diagnosis panel, a Grafana data link: the default is the
    // `instance` (the exporter) of the series clicked.
    dashboardDiagnoseUrlBase: 'http://${__field.labels.instance}',

    // Window of rate()/increase() in the rules (alerts cannot use $__rate_interval).
    rateWindow: '5m',

    // Utilisation = redis_client_limit_connections / redis_config_maxclients
    // (clients + replicas + cluster bus: everything Redis counts against maxclients).
    utilisationWarningRatio: 0.80,
    utilisationWarningFor: '5m',
    utilisationCriticalRatio: 0.95,
    utilisationCriticalFor: '2m',

    // A target is "at its limit" while its utilisation reached atLimitRatio at some poll of the
    // last rateWindow (full, or within a poll of full: redis:client_utilisation:max_over_time<w>).
    // At its limit the diagnosis pages (critical) and the exhaustion prediction is silent.
    atLimitRatio: 0.95,

    // Any increase of redis_rejected_connections_total above this within rateWindow. Redis
    // counts more than maxclients there (protected mode's -DENIED too): a refusal is paged as
    // maxclients (RedisConnectionsRejected) only at the limit; the others raise
    // RedisConnectionsRefusedBelowLimit (warning) instead.
    rejectedConnectionsMinIncrease: 0,
    rejectedConnectionsFor: '0m',
    refusedBelowLimitFor: '0m',

    // predict_linear(redis_client_limit_connections[lookback], horizon) >= maxclients, only while
    // utilisation is at least exhaustionMinUtilisationRatio (avoids noise on idle servers).
    exhaustionLookback: '1h',
    exhaustionHorizon: '1h',
    exhaustionMinUtilisationRatio: 0.50,
    exhaustionFor: '10m',

    // Idle leak: connections idle longer than idleLeakLe seconds (a bucket boundary of
    // redis_client_idle_seconds), as a share of all connections AND as a share of maxclients
    // (relative, so that it fires on a 50-slot server as on a 10,000-slot one).
    // idleLeakMinConnections adds an absolute floor (0 = none); idleLeakMinMaxclientsRatio 0
    // drops the relative one.
    idleLeakLe: 600,
    idleLeakMinMaxclientsRatio: 0.20,
    idleLeakMinConnections: 0,
    idleLeakMinRatio: 0.30,
    idleLeakFor: '15m',

    // One source IP (not `other`) holding more than this share of all connections, and at
    // least sourceShareMinMaxclientsRatio of maxclients. sourceShareMinConnections adds an
    // absolute floor (0 = none; it was 100, without the relative one, before); sourceShareMinMaxclientsRatio
    // 0 drops the relative one.
    sourceShareRatio: 0.50,
    sourceShareMinMaxclientsRatio: 0.25,
    sourceShareMinConnections: 0,
    sourceShareFor: '15m',

    // New connections per second (rate of redis_connections_received_total).
    churnPerSecond: 100,
    churnFor: '10m',

    // The exporter's own diagnosis (redis_client_diagnosis: the score, 0-1, of the most likely
    // cause). RedisClientsCauseDiagnosed is a warning after diagnosisFor while the server has
    // room, and critical after diagnosisCriticalFor while it is full or refusing at its limit
    // (atLimitRatio).
    // diagnosisMinConfidence, the key's name before it was called a score, still works as an
    // alias of diagnosisMinScore (deprecated: set diagnosisMinScore).
    diagnosisMinScore: if std.objectHas(self, 'diagnosisMinConfidence') then self.diagnosisMinConfidence else 0.70,
    diagnosisFor: '10m',
    diagnosisCriticalFor: '1m',

    // Configuration risks.
    maxclientsClampedFor: '5m',
    timeoutDisabledFor: '30m',
    tcpKeepaliveDisabledFor: '1h',

    // Idle pub/sub subscribers (redis_client_idle_connections{type="pubsub"}) above this.
    pubsubIdleConnections: 500,
    pubsubIdleFor: '30m',

    // redis_blocked_clients above this.
    blockedClients: 100,
    blockedClientsFor: '10m',

    // The exporter itself.
    targetDownFor: '5m',
    staleAfterSeconds: 300,
    staleFor: '5m',
    absentFor: '15m',

    // Alertmanager (mixin/alertmanager.libsonnet, rendered to alerts/alertmanager-fragment.yml):
    // the receivers of the pages (critical) and of the rest (warning, info), the labels that make
    // one incident (group_by, and `equal` of the inhibit rules) and the grouping timers.
    alertmanagerCriticalReceiver: 'redis-clients-page',
    alertmanagerWarningReceiver: 'redis-clients-ticket',
    alertmanagerIncidentLabels: ['cluster', 'job', 'target'],
    // Long enough for the alerts of one incident (the diagnosis comes after 1m at the limit) to
    // arrive together: one notification, not one per alert.
    alertmanagerGroupWait: '1m',
    alertmanagerGroupInterval: '15m',
    alertmanagerRepeatInterval: '4h',

    // Dashboards.
    dashboardTags: ['redis', 'redis-clients-exporter'],
    dashboardRefresh: '30s',
    dashboardPeriod: 'now-6h',
    dashboardTimezone: '',
  },
}
