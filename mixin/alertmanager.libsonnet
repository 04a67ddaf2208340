// Recommended Alertmanager routing and inhibition for the alerts of this mixin: one notification
// per incident (a target) and receiver, never one per alert. Rendered to
// alerts/alertmanager-fragment.yml (python3 alerts/generate.py); README.md ("Alertmanager") says
// how to merge it into an Alertmanager configuration. Alertmanager has no includes: the
// fragment is the `routes` and `inhibit_rules` to copy, with receivers you define.
local validate = import 'lib/validate.libsonnet';

{
  alertmanagerConfig+:: {
    local c = validate($._config),
    local names = std.set([r.alert for g in $.prometheusAlerts.groups for r in g.rules]),
    // Matches this mixin's alerts only, whatever else the Alertmanager routes.
    local ours = 'alertname=~"%s"' % std.join('|', names),
    local route(receiver, severity) = {
      receiver: receiver,
      matchers: [ours, severity],
      // One group per incident: every alert of one target (and exporter job, and cluster when
      // Prometheus adds one) in one notification.
      group_by: c.alertmanagerIncidentLabels,
      group_wait: c.alertmanagerGroupWait,
      group_interval: c.alertmanagerGroupInterval,
      repeat_interval: c.alertmanagerRepeatInterval,
    },

    route: {
      routes: [
        route(c.alertmanagerCriticalReceiver, 'severity="critical"'),
        route(c.alertmanagerWarningReceiver, 'severity=~"warning|info"'),
      ],
    },
    inhibit_rules: [
      // While a target pages, its warnings and infos (utilisation high, exhaustion predicted,
      // the diagnosis as a warning, idle leak, dominant source...) say nothing new.
      {
        source_matchers: [ours, 'severity="critical"'],
        target_matchers: [ours, 'severity=~"warning|info"'],
        equal: c.alertmanagerIncidentLabels,
      },
      // Refusals at the limit say more than "at or near maxclients".
      {
        source_matchers: ['alertname="RedisConnectionsRejected"'],
        target_matchers: ['alertname="RedisClientUtilisationCritical"'],
        equal: c.alertmanagerIncidentLabels,
      },
    ],
  },
}
