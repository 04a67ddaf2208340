// redis-clients-exporter monitoring mixin: recording rules, alerts, Grafana dashboards and the
// recommended Alertmanager routing and inhibition (alertmanagerConfig).
// Configure through _config (see config.libsonnet); README.md ("Monitoring mixin") shows how
// to vendor and render it.
(import 'config.libsonnet')
+ (import 'rules.libsonnet')
+ (import 'alerts.libsonnet')
+ (import 'dashboards.libsonnet')
+ (import 'alertmanager.libsonnet')
