// Alerting rules. Texts follow the mixin conventions: summary plain text ending in a period,
// description with the templates; every alert links to its runbook section.
local u = import 'lib/util.libsonnet';
local validate = import 'lib/validate.libsonnet';

// The exporter's own connection (poller::CLIENT_NAME) is never a culprit.
local exporterClientName = 'redis-clients-exporter';

// Client names are chosen by clients (CLIENT SETNAME accepts `<!channel>`): defuse the markup of
// chat and mail receivers before a page quotes one.
local defuse = ' | reReplaceAll "[<>&]" "_"';

local alert(c, name, severity, for_, expr, summary, description, extra={}) =
  assert std.length(name) <= 40 : '%s: alert names have at most 40 characters' % name;
  assert std.length(std.find(severity, ['info', 'warning', 'critical'])) == 1 : '%s: severity %s' % [name, severity];
  assert std.length(std.findSubstr('{{', summary)) == 0 && std.endsWith(summary, '.') : '%s: summary' % name;
  {
    alert: name,
    expr: expr,
    labels: { severity: severity },
    annotations: {
      summary: summary,
      description: description,
      runbook_url: '%s#%s' % [c.runbookUrlBase, std.asciiLower(name)],
    } + extra,
  } + (if u.isZero(for_) then {} else { 'for': for_ });

{
  prometheusAlerts+:: {
    local c = validate($._config),
    local s(extra='') = u.sel(c.redisClientsExporterSelector, extra),
    // A selector inside a Go-template printf (alert-time queries).
    local ps(extra) = u.printfSel(c.redisClientsExporterSelector, extra),
    local w = c.rateWindow,
    local le = c.idleLeakLe,
    local longIdle = u.humanSeconds(le),
    // Long-idle connections, their share of all connections, and the floors relative to
    // maxclients and absolute (each 0 = not required). The value is the connection count.
    local leakCond = std.join('\nand ', [
      'redis:client_idle_long:connections%s%s' % [s(), if c.idleLeakMinConnections > 0 then ' >= ' + u.num(c.idleLeakMinConnections) else ''],
      'redis:client_idle_long:ratio%s >= %s' % [s(), u.num(c.idleLeakMinRatio)],
    ] + (if c.idleLeakMinMaxclientsRatio > 0 then ['redis:client_idle_long:maxclients_ratio%s >= %s' % [s(), u.num(c.idleLeakMinMaxclientsRatio)]] else [])),
    local idleFloors = std.join(' and ', [u.pct(c.idleLeakMinRatio) + ' of all connections']
                                         + (if c.idleLeakMinMaxclientsRatio > 0 then [u.pct(c.idleLeakMinMaxclientsRatio) + ' of maxclients'] else [])
                                         + (if c.idleLeakMinConnections > 0 then [u.num(c.idleLeakMinConnections) + ' connections'] else [])),
    local sourceFloors = std.join(' and ', (if c.sourceShareMinMaxclientsRatio > 0 then [u.pct(c.sourceShareMinMaxclientsRatio) + ' of maxclients'] else [])
                                           + (if c.sourceShareMinConnections > 0 then [u.num(c.sourceShareMinConnections) + ' connections'] else [])),

    // At its limit: utilisation reached atLimitRatio at some poll of the rate window.
    local atLimit = 'redis:client_utilisation:max_over_time%s%s >= %s' % [w, s(), u.num(c.atLimitRatio)],
    local rejected = 'increase(redis_rejected_connections_total%s[%s]) > %s' % [s(), w, u.num(c.rejectedConnectionsMinIncrease)],
    // The same for an alert-time query of the target's highest utilisation in the window.
    local maxUtil =
      '{{ with printf `redis:client_utilisation:max_over_time%s%s` $labels.target | query }}' % [w, ps('target=%q')]
      + '{{ . | first | value | humanizePercentage }}{{ else }}an unknown share (maxclients unknown){{ end }}',

    // Go-template fragments evaluated by Prometheus when the alert fires: they read the
    // exporter's own series of the alert's target, so the page itself says who and why.
    local diagnoseUrl = c.diagnoseUrlBase + '/diagnose?target={{ $labels.target | urlquery }}&format=html',
    // The largest source IP (with its idle connections) and the largest client name.
    local holders =
      'Top source: {{ with printf `topk(1, redis_client_connections%s)` $labels.target | query }}'
      % ps('target=%q, source_ip!="other"')
      + '{{ with first . }}{{ $source := .Labels.source_ip }}{{ .Labels.source_ip }} holds {{ .Value | humanize }} connections'
      + '{{ with printf `redis_client_source_idle_connections%s` $labels.target $source | query }}'
        % ps('target=%q, source_ip=%q')
      + ' ({{ . | first | value | humanize }} idle){{ end }}{{ end }}{{ else }}none found{{ end }}; '
      + 'top client name: {{ with printf `topk(1, redis_client_connections_by_name%s)` $labels.target | query }}'
        % ps('target=%q, name!~"other|' + exporterClientName + '"')
      + '{{ with first . }}{{ .Labels.name' + defuse + ' }} holds {{ .Value | humanize }} connections{{ end }}{{ else }}none found{{ end }}.',
    // The exporter's diagnosis of the target: cause, score, culprit, and the link.
    local diagnosis =
      'Diagnosis: {{ with printf `topk(1, redis_client_diagnosis%s)` $labels.target | query }}'
      % ps('target=%q, cause!="none"')
      + '{{ with first . }}{{ .Labels.cause }} (score {{ .Value | printf "%.2f" }})'
      + '{{ if .Labels.culprit }}, culprit {{ .Labels.culprit_kind }} {{ .Labels.culprit' + defuse + ' }}{{ end }}{{ end }}'
      + '{{ else }}no cause found yet{{ end }}. Evidence and fix: ' + diagnoseUrl,
    local who = ' ' + holders + ' ' + diagnosis,
    local links = { diagnose_url: diagnoseUrl },

    local topIdleSource =
      '{{ with printf `topk(1, redis_client_source_idle_connections%s and redis_client_source_oldest_idle_seconds%s >= %d)` $labels.target | query }}'
      % [ps('target=%q, source_ip!="other"'), ps(''), le]
      + '{{ with first . }}{{ .Labels.source_ip }} ({{ .Value | humanize }} idle connections){{ end }}'
      + '{{ else }}none found{{ end }}',
    local idleShare =
      '{{ with printf `redis:client_idle_long:ratio%s` $labels.target | query }}' % ps('target=%q')
      + '{{ . | first | value | humanizePercentage }}{{ else }}an unknown share{{ end }}',

    local diagnosed(for_, severity, op, summary, state) =
      alert(c,
            'RedisClientsCauseDiagnosed',
            severity,
            for_,
            'max without (culprit_kind, culprit) (redis_client_diagnosis%s)\n>= %s\n%s ignoring(cause) %s'
            % [s('cause!="none"'), u.num(c.diagnosisMinScore), op, atLimit],
            summary,
            '{{ $labels.target }}: the most likely cause of connection exhaustion is {{ $labels.cause }} '
            + '(score {{ $value | printf "%.2f" }}, threshold ' + u.num(c.diagnosisMinScore) + '), culprit: '
            + '{{ with printf `redis_client_diagnosis%s` $labels.target $labels.cause | query }}' % ps('target=%q, cause=%q')
            + '{{ with first . }}{{ if .Labels.culprit }}{{ .Labels.culprit_kind }} {{ .Labels.culprit' + defuse + ' }}'
            + '{{ else }}none named{{ end }}{{ end }}{{ else }}none named{{ end }}. '
            + state + holders + ' Evidence and fix: ' + diagnoseUrl,
            links),

    groups+: [
      {
        name: 'redis-clients.capacity',
        rules: [
          alert(c,
                'RedisClientUtilisationHigh',
                'warning',
                c.utilisationWarningFor,
                'redis:client_utilisation:ratio%s > %s' % [s(), u.num(c.utilisationWarningRatio)],
                'Redis connections are close to maxclients.',
                '{{ $labels.target }} uses {{ $value | humanizePercentage }} of maxclients (clients + replicas + '
                + 'cluster bus), above %s for %s.' % [u.pct(c.utilisationWarningRatio), c.utilisationWarningFor]
                + who,
                links),
          alert(c,
                'RedisClientUtilisationCritical',
                'critical',
                c.utilisationCriticalFor,
                'redis:client_utilisation:ratio%s > %s' % [s(), u.num(c.utilisationCriticalRatio)],
                'Redis connections are at or near maxclients.',
                '{{ $labels.target }} uses {{ $value | humanizePercentage }} of maxclients (clients + replicas + '
                + 'cluster bus), above %s for %s; ' % [u.pct(c.utilisationCriticalRatio), c.utilisationCriticalFor]
                // Never "will be refused" while they are: full, or refusals at the limit, say so.
                + '{{ if ge $value 1.0 }}it is full: new connections are refused with ERR max number of clients reached.'
                + '{{ else }}{{ with printf `%s` $labels.target | query }}' % std.strReplace(rejected, s(), ps('target=%q'))
                + 'it refused connections in the last %s: new connections are already being refused.' % w
                + '{{ else }}new connections will be refused with ERR max number of clients reached once it is full.{{ end }}{{ end }}'
                + who,
                links),
          alert(c,
                'RedisConnectionsRejected',
                'critical',
                c.rejectedConnectionsFor,
                rejected + '\nand ' + atLimit,
                'Redis is refusing connections at maxclients.',
                '{{ $labels.target }} refused about {{ $value | printf "%.0f" }} connections in the last '
                + '%s while at its limit (up to ' % w + maxUtil + ' of maxclients in use; ERR max number of clients reached).'
                + who,
                links),
          // Redis counts protected mode's -DENIED (and other refusals) in the same counter: below
          // the limit a refusal is not maxclients, and is not paged as such.
          alert(c,
                'RedisConnectionsRefusedBelowLimit',
                'warning',
                c.refusedBelowLimitFor,
                rejected + '\nunless ' + atLimit,
                'Redis refuses connections while below maxclients.',
                '{{ $labels.target }} refused about {{ $value | printf "%.0f" }} connections in the last '
                + '%s while at most ' % w + maxUtil + ' of maxclients was in use (at-limit threshold %s): ' % u.pct(c.atLimitRatio)
                + 'not maxclients. Redis counts protected mode refusals (-DENIED: a client from a non-loopback address '
                + 'while no password is set) in rejected_connections too; check protected-mode, bind and requirepass.',
                links),
          alert(c,
                'RedisClientsExhaustionPredicted',
                'warning',
                c.exhaustionFor,
                'predict_linear(redis_client_limit_connections%s[%s], %s)\n' % [s(), c.exhaustionLookback, u.num(u.seconds(c.exhaustionHorizon))]
                + '>= redis_config_maxclients%s\n' % s()
                + 'and redis:client_utilisation:ratio%s >= %s\n' % [s(), u.num(c.exhaustionMinUtilisationRatio)]
                // Once at the limit the prediction has come true: the critical alerts speak.
                + 'unless ' + atLimit,
                'Redis connections are predicted to reach maxclients soon.',
                'At the trend of the last %s, {{ $labels.target }} reaches ' % c.exhaustionLookback
                + '{{ $value | humanize }} connections within %s, at or above maxclients.' % c.exhaustionHorizon
                + who,
                links),
          alert(c,
                'RedisClientIdleLeak',
                'warning',
                c.idleLeakFor,
                leakCond,
                'Many Redis connections have been idle for a long time.',
                '{{ $labels.target }} has {{ $value | humanize }} connections idle for more than %s (' % longIdle
                + idleShare
                + ' of all connections; thresholds %s). ' % idleFloors
                + 'Top source with connections idle over %s: ' % longIdle + topIdleSource + '.',
                links),
          alert(c,
                'RedisClientSourceDominant',
                'warning',
                c.sourceShareFor,
                std.join('\nand ', ['redis:client_source_share:ratio%s > %s' % [s(), u.num(c.sourceShareRatio)]]
                                   + (if c.sourceShareMinMaxclientsRatio > 0 then ['redis:client_source:maxclients_ratio%s >= %s' % [s(), u.num(c.sourceShareMinMaxclientsRatio)]] else [])
                                   + (if c.sourceShareMinConnections > 0 then ['redis_client_connections%s >= %s' % [s(), u.num(c.sourceShareMinConnections)]] else [])),
                'One source IP holds a large share of all Redis connections.',
                '{{ $labels.source_ip }} holds {{ $value | humanizePercentage }} of all connections to '
                + '{{ $labels.target }} (threshold %s%s).'
                  % [u.pct(c.sourceShareRatio), if sourceFloors == '' then '' else ', holding at least ' + sourceFloors],
                links),
          alert(c,
                'RedisConnectionChurnHigh',
                'warning',
                c.churnFor,
                'redis:connections_received:rate%s%s > %s' % [w, s(), u.num(c.churnPerSecond)],
                'Redis accepts new connections at a high rate.',
                '{{ $labels.target }} accepts {{ $value | humanize }} new connections per second '
                + '(threshold %s/s over %s): clients connect per request instead of pooling.' % [u.num(c.churnPerSecond), w],
                links),
          // The culprit labels are dropped from the alert's identity (and read back in the
          // description): a culprit that changes between evaluations must not restart `for`.
          // One name, two severities: a warning while the server has room, critical (and prompt)
          // while it is at its limit; the recommended inhibition (alerts/alertmanager-fragment.yml)
          // mutes the warning while the critical one fires.
          diagnosed(c.diagnosisFor, 'warning', 'unless', 'The exporter has diagnosed a cause of Redis connection exhaustion.', ''),
          diagnosed(c.diagnosisCriticalFor,
                    'critical',
                    'and',
                    'The exporter has diagnosed why Redis is at maxclients.',
                    'The server is at its limit (up to ' + maxUtil + ' of maxclients in use in the last %s). ' % w),
        ],
      },
      {
        name: 'redis-clients.config',
        rules: [
          alert(c,
                'RedisMaxclientsClampedByFdLimit',
                'warning',
                c.maxclientsClampedFor,
                'redis_client_maxclients_clamped%s == 1' % s(),
                'Redis maxclients looks reduced by a low open-file limit.',
                'maxclients of {{ $labels.target }} has the value Redis sets when the open-file limit is too low '
                + '(an open-files limit such as 1024, 4096 or 20000, minus 32); utilisation ratios are measured against this reduced limit.'),
          alert(c,
                'RedisIdleTimeoutDisabled',
                'info',
                c.timeoutDisabledFor,
                'redis_client_config_timeout_seconds%s == 0\nand (\n  ' % s() + std.strReplace(leakCond, '\n', '\n  ') + '\n)',
                'Redis never closes idle connections while idle connections pile up.',
                '{{ $labels.target }} has timeout 0, so connections idle for more than '
                + '%s (currently over the idle-leak thresholds) are never closed by the server.' % longIdle),
          alert(c,
                'RedisTcpKeepaliveDisabled',
                'info',
                c.tcpKeepaliveDisabledFor,
                'redis_client_config_tcp_keepalive_seconds%s == 0' % s(),
                'Redis does not detect dead client peers.',
                '{{ $labels.target }} has tcp-keepalive 0: connections of crashed or unreachable clients stay '
                + 'open and count against maxclients.'),
          alert(c,
                'RedisPubsubIdleSubscribersHigh',
                'warning',
                c.pubsubIdleFor,
                'redis_client_idle_connections%s > %s' % [s('type="pubsub"'), u.num(c.pubsubIdleConnections)],
                'Many idle pub/sub subscribers are connected to Redis.',
                '{{ $labels.target }} has {{ $value | humanize }} idle pub/sub connections '
                + '(threshold %s): subscribers may be leaking.' % u.num(c.pubsubIdleConnections)),
          alert(c,
                'RedisBlockedClientsHigh',
                'warning',
                c.blockedClientsFor,
                'redis_blocked_clients%s > %s' % [s(), u.num(c.blockedClients)],
                'Many Redis clients are blocked.',
                '{{ $labels.target }} has {{ $value | humanize }} clients blocked in BLPOP, XREAD, WAIT or similar '
                + '(threshold %s).' % u.num(c.blockedClients)),
        ],
      },
      {
        name: 'redis-clients.exporter',
        rules: [
          alert(c,
                'RedisClientsExporterTargetDown',
                'warning',
                c.targetDownFor,
                'redis_up%s == 0' % s(),
                'The Redis clients exporter cannot poll a target.',
                'redis-clients-exporter {{ $labels.instance }} has not polled {{ $labels.target }} successfully '
                + 'for %s. Most frequent error kind in the last 15m: ' % c.targetDownFor
                + '{{ with printf `topk(1, increase(redis_clients_exporter_poll_errors_total%s[15m]) > 0)` '
                  % ps('target=%q, kind!="config_unavailable"')
                + '$labels.target | query }}{{ with first . }}{{ .Labels.kind }}{{ end }}{{ else }}none recorded{{ end }}.'),
          alert(c,
                'RedisClientsExporterDataStale',
                'warning',
                c.staleFor,
                'time() - redis_clients_exporter_last_success_timestamp_seconds%s > %s\n' % [s(), u.num(c.staleAfterSeconds)]
                + 'unless redis_up%s == 0' % s(),
                'The Redis clients exporter serves stale data.',
                'The last completed poll of {{ $labels.target }} by {{ $labels.instance }} is {{ $value | humanizeDuration }} '
                + 'old (threshold %s) although the target is not reported down.' % u.humanSeconds(c.staleAfterSeconds)),
          alert(c,
                'RedisClientsExporterAbsent',
                'warning',
                c.absentFor,
                'absent(redis_clients_exporter_build_info%s)' % s(),
                'No Redis clients exporter is scraped.',
                'Prometheus has had no redis_clients_exporter_build_info%s series for %s: ' % [s(), c.absentFor]
                + 'redis-clients-exporter is down or not scraped, and no other alert of this file can fire.'),
        ],
      },
    ],
  },
}
