// The Grafana dashboards. Conventions (checked by dashboards/lint.py): one `datasource`
// variable, every panel and query on `${datasource}`, template variables from label_values()
// of our own metrics, a unit and a description on every panel, `$__rate_interval` in every
// rate(), no rate() over the snapshot histograms. Gauges of a target are wrapped in
// `max by (target)` so that two exporters scraping the same Redis (HA pair) do not double it.
local g = import 'lib/grafana.libsonnet';
local u = import 'lib/util.libsonnet';
local validate = import 'lib/validate.libsonnet';

{
  grafanaDashboards+:: {
    local c = validate($._config),
    local sel = std.stripChars(c.redisClientsExporterSelector, ' '),
    local job = if sel == '' then '' else sel + ', ',
    // Every query filters on the selector and the four template variables.
    local T = job + 'cluster=~"$cluster", node=~"$node", role=~"$role", target=~"$target"',
    local target = g.target,
    local thresholds = g.thresholds,

    local variables = [
      g.datasourceVariable,
      // Plain targets have no cluster/node/role labels: `All` must match the empty value.
      g.queryVariable('cluster', 'Cluster', 'label_values(redis_up%s, cluster)' % u.sel(sel), '.*'),
      g.queryVariable('node', 'Node', 'label_values(redis_up{%scluster=~"$cluster"}, node)' % job, '.*'),
      g.queryVariable('role', 'Role', 'label_values(redis_up{%scluster=~"$cluster"}, role)' % job, '.*'),
      g.queryVariable('target',
                      'Target',
                      'label_values(redis_up{%scluster=~"$cluster", node=~"$node", role=~"$role"}, target)' % job,
                      '.+'),
    ],

    // max by (target) of a per-target gauge.
    local m(metric, extra='') = 'max by (target) (%s{%s})' % [metric, T + (if extra != '' then ', ' + extra else '')],
    // The n largest series of one label dimension, per target, with a legend naming both.
    local top(n, metric, label) =
      target('topk(%d, max by (target, %s) (%s{%s}))' % [n, label, metric, T], '{{target}} {{%s}}' % label),
    // p50, p90 and p99 of a snapshot histogram (no rate(): the buckets are a snapshot).
    local quantiles(buckets) = [
      target('histogram_quantile(%s, %s)' % [q[0], buckets], '{{target}} p%s' % q[1], q[2])
      for q in [['0.5', '50', 'A'], ['0.9', '90', 'B'], ['0.99', '99', 'C']]
    ],
    // Per cluster: `by` must include `cluster`. A plain target (no cluster label) stands for
    // itself (its target name as the cluster) instead of being summed with unrelated servers.
    local perCluster(metric, by, extra='') =
      local s = T + (if extra != '' then ', ' + extra else '');
      '(\n  label_replace(max by (target, %s) (%s{%s, cluster=""}), "cluster", "$1", "target", "(.*)")\n' % [by, metric, s]
      + '  or max by (target, %s) (%s{%s, cluster!=""})\n)' % [by, metric, s],
    // Plain targets have no role: call it standalone.
    local withRole(expr) = 'label_replace(%s, "role", "standalone", "role", "")' % expr,

    local utilExpr = '%s\n/ (%s > 0)' % [m('redis_client_limit_connections'), m('redis_config_maxclients')],
    local utilSteps = thresholds([[null, 'green'], [c.utilisationWarningRatio, 'orange'], [c.utilisationCriticalRatio, 'red']]),
    local warnPct = u.pct(c.utilisationWarningRatio),
    local critPct = u.pct(c.utilisationCriticalRatio),
    local le = c.idleLeakLe,
    local longIdle = u.humanSeconds(le),
    local lookback = c.exhaustionLookback,
    local horizon = c.exhaustionHorizon,

    'redis-connections-overview.json': g.dashboard(
      c,
      'redis-clients-overview',
      'Redis connections overview',
      'Capacity of Redis connections against maxclients, per target, cluster and role, from redis-clients-exporter.',
      variables,
      g.layout([
        [g.stat(
          'Utilisation of maxclients',
          'Connections Redis counts against maxclients (clients + replicas + cluster bus, '
          + 'redis_client_limit_connections) divided by maxclients, one gauge per target. Orange from %s ' % warnPct
          + '(RedisClientUtilisationHigh), red from %s (RedisClientUtilisationCritical). If maxclients is ' % critPct
          + "clamped by the fd limit (see 'maxclients clamped'), this ratio is measured against the reduced limit.",
          [target(utilExpr, instant=true)],
          'percentunit',
          utilSteps,
          kind='gauge',
          min=0,
          max=1
        ), 8, 7],
        [g.stat(
          'Headroom (new connections still accepted)',
          'maxclients minus everything Redis counts against it (redis_client_headroom_connections). This is '
          + 'how many more connections the server accepts before answering ERR max number of clients reached. '
          + "Red below 50, orange below 200: look at 'Connections per source IP' on the sources dashboard for who is taking them.",
          [target(m('redis_client_headroom_connections'), instant=true)],
          'short',
          thresholds([[null, 'red'], [50, 'orange'], [200, 'green']])
        ), 8, 7],
        [g.stat(
          'Time to exhaustion (%s trend)' % lookback,
          'Headroom divided by the growth rate of the connection count over the last %s (deriv over %s). ' % [lookback, lookback]
          + "Empty ('not growing') when connections are flat or shrinking. Under an hour means "
          + 'RedisClientsExhaustionPredicted is about to fire: find the growing source on the sources dashboard.',
          [target('%s\n/ (max by (target) (deriv(redis_client_limit_connections{%s}[%s])) > 0)'
                  % [m('redis_client_headroom_connections'), T, lookback], instant=true)],
          's',
          thresholds([[null, 'red'], [3600, 'orange'], [21600, 'green']]),
          noValue='not growing'
        ), 8, 7],
        [g.stat(
          'Diagnosis: most likely cause and culprit',
          "The exporter's own diagnosis after its last poll (redis_client_diagnosis): the most likely cause of "
          + 'connection exhaustion per target, the culprit it names (source_ip or client_name) and its score (0-1). '
          + 'none = nothing found. Orange from 0.5 (the report calls it a cause), red from %s (RedisClientsCauseDiagnosed). '
            % u.num(c.diagnosisMinScore)
          + 'Click a value for the evidence and the commands that fix it: /diagnose?target=<target>&format=html on the exporter.',
          // topk keeps `instance` (the exporter that diagnosed it) for the link, one value per target.
          [target('topk by (target, cause, culprit_kind, culprit) (1, redis_client_diagnosis{%s})' % T,
                  '{{target}}: {{cause}} {{culprit_kind}} {{culprit}}',
                  instant=true)],
          'none',
          thresholds([[null, 'green'], [0.5, 'orange'], [c.diagnosisMinScore, 'red']]),
          min=0,
          max=1,
          links=[{
            title: 'Evidence and fix (/diagnose)',
            url: c.dashboardDiagnoseUrlBase + '/diagnose?target=${__field.labels.target:percentencode}&format=html',
            targetBlank: true,
          }],
        ), 24, 4],
        [g.stat(
          'Exporter reaches target',
          "redis_up per target: 1 when the exporter's held connection answered its last poll. DOWN means "
          + "every other panel is blank for that target; see 'Poll errors per second by kind' (kind maxclients = "
          + 'the exporter lost its connection while Redis was full).',
          [target(m('redis_up'), instant=true)],
          'none',
          thresholds([[null, 'red'], [1, 'green']]),
          mappings=[{ type: 'value', options: { '0': { text: 'DOWN', color: 'red' }, '1': { text: 'UP', color: 'green' } } }]
        ), 4, 5],
        [g.stat(
          'maxclients',
          "Effective maxclients (CONFIG GET maxclients, or INFO's maxclients where CONFIG is disabled, "
          + 'e.g. managed services). Compare with what you configured: a smaller value usually means the fd clamp.',
          [target(m('redis_config_maxclients'), instant=true)],
          'short',
          thresholds([[null, 'blue']])
        ), 4, 5],
        [g.stat(
          'maxclients source',
          'Where maxclients came from: config (CONFIG GET) or info (INFO clients, when CONFIG GET is renamed or '
          + 'forbidden, as on managed services). With info, the timeout and tcp-keepalive panels stay empty.',
          [target('max by (target, source) (redis_client_maxclients_source{%s})' % T, '{{target}}: {{source}}', instant=true)],
          'none',
          thresholds([[null, 'blue']]),
          textMode='name'
        ), 4, 5],
        [g.stat(
          'maxclients clamped by fd limit',
          'CLAMPED when maxclients has the value Redis sets itself when the open-file limit is too low '
          + '(an open-files limit minus 32: 992, 4064, 19968...). Raise LimitNOFILE / ulimit -n and restart; until then '
          + 'utilisation is measured against the reduced limit (RedisMaxclientsClampedByFdLimit).',
          [target(m('redis_client_maxclients_clamped'), instant=true)],
          'none',
          thresholds([[null, 'green'], [1, 'red']]),
          mappings=[{ type: 'value', options: { '0': { text: 'no', color: 'green' }, '1': { text: 'CLAMPED', color: 'red' } } }]
        ), 4, 5],
        [g.stat(
          'Idle timeout',
          "CONFIG GET timeout per target: seconds after which Redis closes an idle client. 0 (shown as 'never') "
          + 'means leaked connections are never closed by the server (RedisIdleTimeoutDisabled). '
          + 'Empty when CONFIG is unavailable (redis_client_config_available 0).',
          [target(m('redis_client_config_timeout_seconds'), instant=true)],
          's',
          thresholds([[null, 'orange'], [1, 'green']]),
          mappings=[{ type: 'value', options: { '0': { text: 'never', color: 'orange' } } }]
        ), 4, 5],
        [g.stat(
          'tcp-keepalive',
          "CONFIG GET tcp-keepalive per target. 0 ('off') means connections of crashed clients or clients "
          + 'behind a dropped NAT/firewall entry are never detected and hold a maxclients slot forever '
          + "(RedisTcpKeepaliveDisabled). 300 is Redis' default since 3.2.1.",
          [target(m('redis_client_config_tcp_keepalive_seconds'), instant=true)],
          's',
          thresholds([[null, 'orange'], [1, 'green']]),
          mappings=[{ type: 'value', options: { '0': { text: 'off', color: 'orange' } } }]
        ), 4, 5],

        [g.timeseries(
          'Connections counted against maxclients vs maxclients',
          'Solid: clients + replicas + cluster bus (redis_client_limit_connections); dashed: maxclients. '
          + 'The gap is the headroom. A steady climb towards the dashed line is a leak or a pool growing with '
          + 'the number of application instances.',
          [
            target(m('redis_client_limit_connections'), '{{target}} used', 'A'),
            target(m('redis_config_maxclients'), '{{target}} maxclients', 'B'),
          ],
          'short',
          overrides=g.dashedMaxclients
        ), 12, 8],
        [g.timeseries(
          'Utilisation over time',
          'Connections counted against maxclients divided by maxclients. The shaded bands are the alert '
          + 'thresholds (%s warning, %s critical).' % [warnPct, critPct],
          [target(utilExpr)],
          'percentunit',
          max=1,
          steps=utilSteps
        ), 12, 8],

        // Clusters and Sentinel sets: the fullest node decides when connections are refused.
        [g.timeseries(
          'Fullest node per cluster and role',
          'The highest utilisation of maxclients among the nodes of each cluster (or Sentinel set), separately '
          + 'for primaries and replicas; a plain target is its own cluster with role standalone. Clients of a '
          + 'cluster connect to every node, so one node at its limit refuses connections while the cluster '
          + 'average looks fine. Bands: %s warning, %s critical.' % [warnPct, critPct],
          [target(withRole('max by (cluster, role) (\n%s\n/ (%s > 0)\n)' % [
            perCluster('redis_client_limit_connections', 'cluster, role'),
            perCluster('redis_config_maxclients', 'cluster, role'),
          ]), '{{cluster}} {{role}}')],
          'percentunit',
          max=1,
          steps=utilSteps
        ), 12, 8],
        [g.timeseries(
          'Connections per cluster and role',
          'Connections counted against maxclients, summed over the nodes of each cluster (or Sentinel set) '
          + 'and role; a plain target is its own cluster with role standalone. Replica connections growing '
          + 'with the primaries means clients read from replicas too.',
          [target(withRole('sum by (cluster, role) %s' % perCluster('redis_client_limit_connections', 'cluster, role')),
                  '{{cluster}} {{role}}')],
          'short',
          stack=true
        ), 12, 8],
        [g.table(
          'Nodes: role, utilisation and headroom',
          'One row per target with its cluster, node address and role (cluster and Sentinel nodes; empty '
          + 'for plain targets): utilisation of maxclients, connections counted against it, headroom and '
          + 'maxclients at the last poll. Sort by utilisation to find the node that refuses connections first.',
          [
            target('max by (target, cluster, node, role) (redis_client_limit_connections{%s})\n/ (max by (target, cluster, node, role) (redis_config_maxclients{%s}) > 0)'
                   % [T, T], '', 'A', instant=true, format='table'),
            target('max by (target, cluster, node, role) (redis_client_limit_connections{%s})' % T, '', 'B', instant=true, format='table'),
            target('max by (target, cluster, node, role) (redis_client_headroom_connections{%s})' % T, '', 'C', instant=true, format='table'),
            target('max by (target, cluster, node, role) (redis_config_maxclients{%s})' % T, '', 'D', instant=true, format='table'),
          ],
          'short',
          { 'Value #A': 'utilisation', 'Value #B': 'connections', 'Value #C': 'headroom', 'Value #D': 'maxclients' },
          units={ utilisation: 'percentunit' },
          sortBy='utilisation'
        ), 24, 8],

        [g.timeseries(
          'Connected, blocked and tracking clients',
          'INFO clients per target: connected_clients (replicas excluded), blocked_clients (BLPOP, XREAD, '
          + 'WAIT...), tracking_clients (CLIENT TRACKING), plus replicas and cluster bus links which also count '
          + 'against maxclients. Blocked clients climbing with connections means consumers pile up on empty '
          + 'queues (RedisBlockedClientsHigh).',
          [
            target(m('redis_connected_clients'), '{{target}} connected', 'A'),
            target(m('redis_blocked_clients'), '{{target}} blocked', 'B'),
            target(m('redis_tracking_clients'), '{{target}} tracking', 'C'),
            target(m('redis_connected_slaves'), '{{target}} replicas', 'D'),
            target(m('redis_cluster_connections'), '{{target}} cluster bus', 'E'),
          ],
          'short'
        ), 12, 8],
        [g.timeseries(
          'Headroom over time',
          'New connections Redis still accepts (maxclients minus clients, replicas and cluster bus). '
          + 'Anything at 0 means connections are being refused right now.',
          [target(m('redis_client_headroom_connections'))],
          'short',
          steps=thresholds([[null, 'red'], [50, 'transparent']])
        ), 12, 8],

        [g.timeseries(
          'Rejected connections per second',
          'rate of redis_rejected_connections_total: connections refused with ERR max number of clients '
          + 'reached. Should be 0; any value fires RedisConnectionsRejected.',
          [target('max by (target) (rate(redis_rejected_connections_total{%s}[$__rate_interval]))' % T)],
          'cps',
          steps=thresholds([[null, 'transparent'], [0.0001, 'red']])
        ), 12, 8],
        [g.timeseries(
          'New connections per second',
          'rate of redis_connections_received_total. Above %s/s (the RedisConnectionChurnHigh threshold) ' % u.num(c.churnPerSecond)
          + 'clients usually connect per request instead of using a pool; the client names on the sources '
          + 'dashboard tell which application.',
          [target('max by (target) (rate(redis_connections_received_total{%s}[$__rate_interval]))' % T)],
          'cps',
          steps=thresholds([[null, 'transparent'], [c.churnPerSecond, 'orange']])
        ), 12, 8],

        [g.timeseries(
          'Predicted connections in %s (linear trend)' % horizon,
          'predict_linear over the last %s of redis_client_limit_connections, %s ahead, against maxclients ' % [lookback, horizon]
          + '(dashed). The prediction crossing maxclients for %s fires RedisClientsExhaustionPredicted.' % c.exhaustionFor,
          [
            target('max by (target) (predict_linear(redis_client_limit_connections{%s}[%s], %s))'
                   % [T, lookback, u.num(u.seconds(horizon))], '{{target}} in %s' % horizon, 'A'),
            target(m('redis_config_maxclients'), '{{target}} maxclients', 'B'),
          ],
          'short',
          overrides=g.dashedMaxclients
        ), 12, 8],
        [g.timeseries(
          'Connections by type',
          'CLIENT LIST connections by type: normal, pubsub, replica, master. A pubsub line that only grows '
          + 'points at subscribers that never unsubscribe (RedisPubsubIdleSubscribersHigh).',
          [target('max by (target, type) (redis_client_connections_by_type{%s})' % T, '{{target}} {{type}}')],
          'short',
          stack=true
        ), 12, 8],

        [g.timeseries(
          'Exporter poll duration by stage',
          'Time the last poll spent per stage (info, config, client_list, aggregate, total). client_list '
          + 'grows with the number of connections; a total near the poll interval means polls fall behind.',
          [target('max by (target, stage) (redis_clients_exporter_poll_duration_seconds{%s})' % T, '{{target}} {{stage}}')],
          's'
        ), 8, 8],
        [g.timeseries(
          'Poll errors per second by kind',
          'rate of redis_clients_exporter_poll_errors_total by kind (connect, timeout, auth, maxclients, '
          + 'config_unavailable, protocol, other). maxclients: Redis was full when the exporter reconnected; '
          + 'config_unavailable is expected on managed services.',
          [target('sum by (target, kind) (rate(redis_clients_exporter_poll_errors_total{%s}[$__rate_interval]))' % T,
                  '{{target}} {{kind}}')],
          'cps'
        ), 8, 8],
        [g.stat(
          'Age of the last completed poll',
          'Seconds since the exporter last completed a poll of each target. Should stay near the poll interval '
          + '(15s by default); above %s fires RedisClientsExporterDataStale.' % u.humanSeconds(c.staleAfterSeconds),
          [target('max by (target) (time() - redis_clients_exporter_last_success_timestamp_seconds{%s})' % T, instant=true)],
          's',
          thresholds([[null, 'green'], [60, 'orange'], [c.staleAfterSeconds, 'red']])
        ), 8, 8],
      ]),
    ),

    local topSrc = 'topk(20, max by (target, source_ip) (redis_client_connections{%s}))' % T,
    local inTop = 'and on (target, source_ip) ' + topSrc,
    local libTop = 'topk(20, max by (target, library, version) (redis_client_connections_by_library{%s}))' % T,
    local libIn = 'and on (target, library, version) ' + libTop,
    local idleB = 'max by (target, le) (redis_client_idle_seconds_bucket{%s})' % T,
    local ageB = 'max by (target, le) (redis_client_age_seconds_bucket{%s})' % T,

    'redis-connection-sources.json': g.dashboard(
      c,
      'redis-clients-sources',
      'Redis connection sources',
      'Who holds the Redis connections: source IPs, client names, users, commands, idle and connection age, '
      + 'from redis-clients-exporter.',
      variables,
      g.layout([
        [g.table(
          'Top source IPs (now)',
          'The 20 source IPs with the most connections right now, with their connections idle at least '
          + 'idle_threshold (60s by default), their longest idle time and their summed client memory. '
          + "'other' folds every source beyond the exporter's top_k. One IP with a long oldest-idle and many "
          + 'idle connections is the usual leak (RedisClientIdleLeak names it).',
          [
            target(topSrc, '', 'A', instant=true, format='table'),
            target('max by (target, source_ip) (redis_client_source_idle_connections{%s})\n%s' % [T, inTop], '', 'B', instant=true, format='table'),
            target('max by (target, source_ip) (redis_client_source_oldest_idle_seconds{%s})\n%s' % [T, inTop], '', 'C', instant=true, format='table'),
            target('max by (target, source_ip) (redis_client_source_memory_bytes{%s})\n%s' % [T, inTop], '', 'D', instant=true, format='table'),
          ],
          'short',
          { 'Value #A': 'connections', 'Value #B': 'idle', 'Value #C': 'oldest idle', 'Value #D': 'client memory', source_ip: 'source IP' },
          units={ 'oldest idle': 's', 'client memory': 'bytes' },
          sortBy='connections'
        ), 12, 10],
        [g.timeseries(
          'Connections per source IP (top 10)',
          'Connections per source IP over time (top 10 at each step). A line rising without falling back '
          + 'is a client that leaks; many lines rising together after a deploy is a pool sized per instance.',
          [top(10, 'redis_client_connections', 'source_ip')],
          'short'
        ), 12, 10],

        [g.table(
          'Top client names (now)',
          'The 20 client names (CLIENT SETNAME) with the most connections. ' + "'unnamed' are clients that never "
          + 'set a name: ask their owners to set one, it is the cheapest way to know who holds a connection.',
          [target('topk(20, max by (target, name) (redis_client_connections_by_name{%s}))' % T, '', 'A', instant=true, format='table')],
          'short',
          { Value: 'connections', name: 'client name' },
          sortBy='connections'
        ), 12, 9],
        [g.timeseries(
          'Connections per client name (top 10)',
          'Connections per client name over time. Compare with the per-IP panel: one name on many IPs is '
          + 'one application scaled out.',
          [top(10, 'redis_client_connections_by_name', 'name')],
          'short'
        ), 12, 9],

        [g.table(
          'Client libraries (now)',
          'Connections per client library and version, as the clients declared them with CLIENT SETINFO '
          + '(Redis 7.2+ and Valkey; modern redis-py, Jedis, Lettuce, go-redis, node-redis and GLIDE do it), with '
          + 'their idle connections and summed client memory. When every application shares one address and sets '
          + "no name, the library and version that hold the idle connections name the leaking driver. 'unset' is "
          + 'connections that declared nothing (older drivers, redis-cli).',
          [
            target(libTop, '', 'A', instant=true, format='table'),
            target('max by (target, library, version) (redis_client_library_idle_connections{%s})\n%s' % [T, libIn], '', 'B', instant=true, format='table'),
            target('max by (target, library, version) (redis_client_library_memory_bytes{%s})\n%s' % [T, libIn], '', 'C', instant=true, format='table'),
          ],
          'short',
          { 'Value #A': 'connections', 'Value #B': 'idle', 'Value #C': 'client memory' },
          units={ 'client memory': 'bytes' },
          sortBy='connections'
        ), 12, 8],
        [g.timeseries(
          'Idle connections per client library (top 10)',
          'Connections idle at least idle_threshold per client library and version over time. A library whose '
          + 'idle connections only grow is the driver (or the version of it) that leaks; an upgrade shows as one '
          + 'version handing over to the next.',
          [target('topk(10, max by (target, library, version) (redis_client_library_idle_connections{%s}))' % T,
                  '{{target}} {{library}} {{version}}')],
          'short'
        ), 12, 8],

        [g.timeseries(
          'Source IPs per cluster, all nodes (top 10)',
          'Connections per source IP summed over every node of a cluster (or Sentinel set): a cluster client '
          + 'holds a pool to each node, so its total is what it costs the cluster. A plain target is its own '
          + "cluster. The source at the top here with a growing line is the one to fix first ('other' excluded).",
          [target('topk(10, sum by (cluster, source_ip) %s)' % perCluster('redis_client_connections', 'cluster, source_ip', 'source_ip!="other"'),
                  '{{cluster}} {{source_ip}}')],
          'short'
        ), 12, 8],
        [g.timeseries(
          'Client names per cluster and role, all nodes (top 10)',
          'Connections per client name summed over the nodes of each cluster (or Sentinel set) and role: which '
          + 'application reads from replicas, which one holds the primaries. A plain target is its own cluster '
          + 'with role standalone.',
          [target(withRole('topk(10, sum by (cluster, role, name) %s)'
                           % perCluster('redis_client_connections_by_name', 'cluster, role, name', 'name!="other"')),
                  '{{cluster}} {{role}} {{name}}')],
          'short'
        ), 12, 8],

        [g.timeseries(
          'Distinct source IPs (scale-out)',
          'Distinct source IPs in CLIENT LIST (counted before top-K folding). Rising together with the '
          + 'connection count means more application instances, each with its own pool: maxclients must '
          + 'cover instances x pool size.',
          [target(m('redis_client_distinct_sources'))],
          'short'
        ), 8, 8],
        [g.timeseries(
          'Connections per ACL user',
          "Connections per ACL user ('default' before Redis 6). Useful to split the blame between "
          + 'applications sharing source IPs (e.g. behind NAT or a proxy).',
          [top(10, 'redis_client_connections_by_user', 'user')],
          'short'
        ), 8, 8],
        [g.timeseries(
          'Connections per last command (top 10)',
          'Connections by the last command they ran, subcommands folded into their command (Redis 6.2 '
          + 'reports client, 7.0+ and Valkey client|list: both count as client). Many connections whose last '
          + 'command is a blocking one (blpop, xread, wait) are workers waiting; NULL means connected but never '
          + 'sent a command.',
          [target('topk(10, sum by (target, cmd) (label_replace(max by (target, command) (redis_client_connections_by_command{%s}), "cmd", "$1", "command", "([^|]*).*")))' % T,
                  '{{target}} {{cmd}}')],
          'short'
        ), 8, 8],

        [g.heatmap(
          'Idle-time distribution',
          'How many connections sit in each idle-time bucket (1s ... 1d), summed over the selected targets. '
          + 'Snapshot histogram of the last CLIENT LIST: no rate(). Weight moving to the top buckets '
          + '(1h and more) is connections that are never used again.',
          'sum by (le) (%s)' % idleB,
          's'
        ), 12, 9],
        [g.timeseries(
          'Idle time quantiles',
          'Median, 90th and 99th percentile of idle time per target (histogram_quantile over the snapshot '
          + 'buckets, no rate()). A p90 above 1h with a stable connection count means pooled connections that '
          + 'are never reused; with timeout 0 they are never closed either.',
          quantiles(idleB),
          's'
        ), 12, 9],
        [g.heatmap(
          'Connection-age distribution',
          'How many connections sit in each age bucket (time since connect), summed over the selected targets. '
          + 'Snapshot histogram: no rate(). Mass in the lowest buckets means connection churn (see '
          + "'New connections per second' on the overview); mass at 1d+ is long-lived pools.",
          'sum by (le) (%s)' % ageB,
          's'
        ), 12, 9],
        [g.timeseries(
          'Connection age quantiles',
          'Median, 90th and 99th percentile of connection age per target (histogram_quantile over the snapshot '
          + 'buckets, no rate()). A median of seconds means clients reconnect per request.',
          quantiles(ageB),
          's'
        ), 12, 9],

        [g.timeseries(
          'Connections idle longer than %s' % longIdle,
          'Connections idle for more than %s (histogram count minus the le=%d bucket). %s or more ' % [longIdle, le, u.num(c.idleLeakMinConnections)]
          + 'that are also %s of all connections, for %s, fire RedisClientIdleLeak.' % [u.pct(c.idleLeakMinRatio), c.idleLeakFor],
          [target('%s\n- %s' % [m('redis_client_idle_seconds_count'), m('redis_client_idle_seconds_bucket', 'le="%d"' % le)])],
          'short'
        ), 8, 8],
        [g.timeseries(
          'Idle connections per source IP (top 10)',
          'Connections idle at least idle_threshold (60s by default) per source IP. The source at the top '
          + 'of this panel while the %s-idle count grows is the one to fix (or CLIENT KILL).' % longIdle,
          [top(10, 'redis_client_source_idle_connections', 'source_ip')],
          'short'
        ), 8, 8],
        [g.timeseries(
          'Oldest idle connection per source IP (top 10)',
          'Longest idle time per source IP. Hours or days on an application server usually means a pool '
          + 'without idle eviction, or connections of a process that died behind a NAT/firewall '
          + '(tcp-keepalive 0 never notices).',
          [top(10, 'redis_client_source_oldest_idle_seconds', 'source_ip')],
          's'
        ), 8, 8],

        [g.timeseries(
          'Client memory per source IP (top 10)',
          'Summed client memory (tot-mem: query and output buffers) per source IP. A source growing here '
          + 'reads big replies slowly or subscribes to more than it consumes.',
          [top(10, 'redis_client_source_memory_bytes', 'source_ip')],
          'bytes'
        ), 8, 8],
        [g.timeseries(
          'Output buffer memory (all clients)',
          'Summed output buffer memory (omem) of all clients per target. Spikes are slow consumers; a steady '
          + 'climb is usually a pub/sub subscriber that cannot keep up.',
          [target(m('redis_client_output_buffer_bytes'))],
          'bytes'
        ), 8, 8],
        [g.timeseries(
          'Connections by state flag',
          'Connections in a state: blocked, multi (inside MULTI), tracking, unix_socket, readonly, '
          + 'close_asap, no_evict. Not a partition: a connection can have several flags. close_asap growing '
          + 'means Redis is dropping clients over output buffer limits.',
          [target('max by (target, flag) (redis_client_connections_by_flag{%s})' % T, '{{target}} {{flag}}')],
          'short'
        ), 8, 8],

        [g.timeseries(
          'Pub/sub subscribers: connected and idle',
          'Pub/sub connections (type pubsub) and those idle at least idle_threshold. Subscribers are idle by '
          + 'nature (they only receive); what matters is a count that only grows: above %s idle for %s ' % [u.num(c.pubsubIdleConnections), c.pubsubIdleFor]
          + 'fires RedisPubsubIdleSubscribersHigh.',
          [
            target(m('redis_client_connections_by_type', 'type="pubsub"'), '{{target}} pubsub connections', 'A'),
            target(m('redis_client_idle_connections', 'type="pubsub"'), '{{target}} idle pubsub', 'B'),
          ],
          'short'
        ), 12, 8],
        [g.timeseries(
          'Subscriptions by kind',
          'Subscriptions held by all clients: channel (SUBSCRIBE), pattern (PSUBSCRIBE), shard (SSUBSCRIBE). '
          + 'Subscriptions rising faster than subscribers means clients subscribe repeatedly without unsubscribing.',
          [target('max by (target, kind) (redis_client_subscriptions{%s})' % T, '{{target}} {{kind}}')],
          'short'
        ), 12, 8],
      ]),
    ),
  },
}
