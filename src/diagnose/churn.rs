//! `connection_churn`: clients that connect per request instead of keeping pooled connections.
//! The rate is `total_connections_received` over the history minus the growth of the count
//! (a scale-out opens many too, but they stay); `CONFIG RESETSTAT` is a reset, not negative
//! churn. Who churns: the sources whose connections are always young, tallied over the recent
//! polls (one snapshot may catch a per-request client between two connections).

use super::{advice, ev, smoothstep, Cause, Ctx, Finding, Threat};

pub(super) fn detect(ctx: &Ctx<'_>) -> Option<Finding> {
    let opened = ctx.counter_rate(|s| s.total_connections_received())?;
    let grew = ctx
        .gauge_rate(|s| s.limit_connections())
        .unwrap_or(0.0)
        .max(0.0);
    let rate = (opened - grew).max(0.0);
    let limit = ctx.th.churn_per_second;
    let conf = if rate >= limit {
        0.7 + 0.3 * ((rate - limit) / (2.0 * limit)).min(1.0)
    } else if rate >= limit / 2.0 {
        0.3
    } else {
        return None;
    };
    let c = ctx.obs.clients;
    let tally = ctx
        .history
        .last()
        .map(crate::analysis::history::Sample::young)
        .unwrap_or_default();
    let who: Option<(String, f64)> = match tally.first().filter(|t| t.value >= 1.0) {
        Some(t) => Some((format!("source_ip {}", t.key), t.value)),
        None => c
            .young_sources
            .first()
            .filter(|(_, n)| *n > 0)
            .map(|(k, n)| (format!("source_ip {k}"), *n as f64)),
    };
    let young: u64 = c.by_source.iter().map(|(_, v)| v.young).sum();
    let mut evidence = vec![
        ev("new connections per second", format!("{opened:.0}")),
        ev(
            "of them closed again (not added to the count)",
            format!("{rate:.0} per second"),
        ),
        ev(
            format!(
                "connections at most {} s old now",
                crate::analysis::aggregate::YOUNG_SECONDS
            ),
            young,
        ),
    ];
    if let Some((w, n)) = &who {
        evidence.push(ev(
            format!("most young connections over the recent polls: {w}"),
            format!("{n:.0}"),
        ));
    }
    // Churn is a threat of its own (handshakes, TIME_WAIT, bursts that meet maxclients), not
    // only through how full the server is.
    let own = Threat {
        value: smoothstep(rate, limit / 2.0, limit)
            * (0.75 + 0.25 * ((rate - limit).max(0.0) / (4.0 * limit)).min(1.0)),
        why: format!("{rate:.0} connections opened and closed per second"),
    };
    let threat = ctx.threat.clone().max(own);
    let title = match &who {
        Some((w, _)) => format!("connection churn (no pooling), most from {w}"),
        None => "connection churn (no pooling)".to_string(),
    };
    let mut f = Finding::new(Cause::ConnectionChurn, title, conf);
    f.severity = threat.value;
    f.threat = threat.why;
    f.culprit = who.map(|(w, _)| w);
    f.summary = format!(
        "Redis accepts {opened:.0} new connections per second and {rate:.0} of them close again: clients connect per request instead of keeping pooled connections; each costs a TCP and often a TLS/AUTH handshake, and bursts can hit maxclients."
    );
    f.evidence = evidence;
    f.remediation = vec![advice(
        "Use a connection pool (or one multiplexed connection) in the service that connects per request, and keep connections open between requests.",
    )];
    Some(f)
}
