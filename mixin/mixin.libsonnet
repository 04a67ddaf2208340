// redis-clients-exporter monitoring mixin: recording rules, alerts and Grafana dashboards.
// Configure through _config (see config.libsonnet); README.md ("Monitoring mixin") shows how
// to vendor and render it.
(import 'config.libsonnet')
+ (import 'rules.libsonnet')
+ (import 'alerts.libsonnet')
+ (import 'dashboards.libsonnet')
