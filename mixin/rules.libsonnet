// Recording rules: the ratios the alerts and dashboards share.
local u = import 'lib/util.libsonnet';
local validate = import 'lib/validate.libsonnet';

{
  prometheusRules+:: {
    local c = validate($._config),
    local s(extra='') = u.sel(c.redisClientsExporterSelector, extra),
    local w = c.rateWindow,
    groups+: [
      {
        name: 'redis-clients.recording',
        rules: [
          {
            record: 'redis:client_utilisation:ratio',
            expr: 'redis_client_limit_connections%s\n/ (redis_config_maxclients%s > 0)' % [s(), s()],
          },
          // The highest utilisation of any poll of the rate window: a refusal counted by
          // redis_rejected_connections_total is a maxclients refusal only when this reached
          // atLimitRatio (Redis counts protected mode's -DENIED there too).
          {
            record: 'redis:client_utilisation:max_over_time%s' % w,
            expr: 'max_over_time(redis_client_limit_connections%s[%s])\n/ (redis_config_maxclients%s > 0)' % [s(), w, s()],
          },
          {
            record: 'redis:client_idle_long:connections',
            expr: 'redis_client_idle_seconds_count%s\n- ignoring(le) redis_client_idle_seconds_bucket%s'
                  % [s(), s('le="%d"' % c.idleLeakLe)],
          },
          {
            record: 'redis:client_idle_long:ratio',
            expr: 'redis:client_idle_long:connections%s\n/ (redis_client_idle_seconds_count%s > 0)' % [s(), s()],
          },
          // The thresholds relative to maxclients (a 50-slot server fills with 50 connections).
          {
            record: 'redis:client_idle_long:maxclients_ratio',
            expr: 'redis:client_idle_long:connections%s\n/ (redis_config_maxclients%s > 0)' % [s(), s()],
          },
          {
            record: 'redis:client_source:maxclients_ratio',
            expr: 'redis_client_connections%s\n/ ignoring(source_ip) group_left() (redis_config_maxclients%s > 0)'
                  % [s('source_ip!="other"'), s()],
          },
          {
            record: 'redis:client_source_share:ratio',
            expr: 'redis_client_connections%s\n/ ignoring(source_ip) group_left() (redis_client_snapshot_connections%s > 0)'
                  % [s('source_ip!="other"'), s()],
          },
          {
            record: 'redis:connections_received:rate%s' % w,
            expr: 'rate(redis_connections_received_total%s[%s])' % [s(), w],
          },
        ],
      },
    ],
  },
}
