//! `risky_config`: `timeout 0` and `tcp-keepalive 0`, which let any leak, and any dead peer's
//! connection, stay until maxclients. A risk, not a cause: it ranks above noise only when idle
//! connections are already a large share.

use super::{ev, Cause, Ctx, Finding, Step};
use crate::config::relief::Param;

pub(super) fn detect(ctx: &Ctx<'_>) -> Option<Finding> {
    let cfg = ctx.obs.config;
    let no_timeout = cfg.timeout == Some(0.0);
    let no_keepalive = cfg.tcp_keepalive == Some(0.0);
    if !no_timeout && !no_keepalive {
        return None;
    }
    let mut remediation = Vec::new();
    let mut evidence = Vec::new();
    if no_timeout {
        evidence.push(ev("timeout", "0 (idle connections are never closed)"));
        remediation.push(Step::set_param(
            "Close connections idle for 5 minutes (pub/sub and blocked clients are exempt)",
            ctx.cli,
            Param::Timeout,
            300,
        ));
    }
    if no_keepalive {
        evidence.push(ev(
            "tcp-keepalive",
            "0 (connections of dead peers stay until a write fails)",
        ));
        remediation.push(Step::set_param(
            "Detect dead peers (crashed pods, dropped NAT entries)",
            ctx.cli,
            Param::TcpKeepalive,
            60,
        ));
    }
    let idle: u64 = ctx
        .obs
        .clients
        .by_source
        .iter()
        .map(|(_, g)| g.idle_unused())
        .sum();
    let idle_share = idle as f64 / ctx.clients.max(1.0);
    let conf = 0.1 + 0.1 * f64::from(u8::from(no_keepalive)) + 0.2 * idle_share;
    let mut f = Finding::new(
        Cause::RiskyConfig,
        "risky configuration: leaked connections never heal".to_string(),
        conf,
    );
    f.severity = ctx.threat.value;
    f.threat = ctx.threat.why.clone();
    f.summary = match (no_timeout, no_keepalive) {
        (true, true) => "timeout 0: Redis never closes an idle connection; tcp-keepalive 0: a dead peer's connection is never noticed. Any leak accumulates until maxclients.",
        (true, false) => "timeout 0: Redis never closes an idle connection, so any leak accumulates until maxclients.",
        _ => "tcp-keepalive 0: the connections of crashed or unreachable clients are never noticed and hold their slots.",
    }
    .to_string();
    f.evidence = evidence;
    f.remediation = remediation;
    Some(f)
}
