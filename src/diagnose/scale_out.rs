//! `scale_out`: more instances of a service, each with its own pool, so the connection count
//! is instances × pool. Seen in connection ages, whenever it happened: each instance's oldest
//! connection says since when it exists, so "instances that existed before" are those older
//! than a jump in the ages (see `aggregate::AgeStep`). The daemon's history confirms or
//! refutes it when it reaches back before the jump; its first sample alone is never "before".

use super::{advice, ev, pct, raise_maxclients, Cause, Ctx, Evidence, Finding, Step};
use crate::analysis::aggregate::{AgeStep, Fleet, FleetKind, UNNAMED};

/// A sample from before the jump: its instance count and time.
type Before = Option<(u64, f64)>;

/// Preference among fleets of equal confidence: a name says which service, a library almost,
/// a /24 where the pods run, connections without a name or all sources say least.
fn rank(f: &Fleet) -> u8 {
    match f.kind {
        FleetKind::Name if f.key != UNNAMED => 0,
        FleetKind::Lib => 1,
        FleetKind::Prefix => 2,
        FleetKind::Name => 3,
        FleetKind::All => 4,
    }
}

/// The finding, and how many connections the scale-out added (the newer instances').
pub(super) fn detect(ctx: &Ctx<'_>) -> Option<(Finding, f64)> {
    let (f, conf, before) = best_fleet(ctx)?;
    let s = f.step?;
    let n = f.instances as f64;
    let young = s.young_instances as f64;
    let old = n - young;
    let culprit = match f.kind {
        FleetKind::All => None,
        FleetKind::Name if f.key == UNNAMED => Some("client_name ''".to_string()),
        k => Some(format!("{} {}", k.as_str(), f.key)),
    };
    let who = culprit.clone().unwrap_or_else(|| "the clients".to_string());
    let pool = f.connections as f64 / n.max(1.0);
    let mut evidence = evidence(ctx, f, s, &who, before);
    let remediation = remediation(ctx, f, &who, &mut evidence);
    let title = match &culprit {
        Some(c) => format!("scale-out of {c}: more instances, each with its own pool"),
        None => "scale-out: more client instances, each with its own pool".to_string(),
    };
    let mut finding = Finding::new(Cause::ScaleOut, title, conf);
    finding.severity = ctx.threat.value;
    finding.threat = ctx.threat.why.clone();
    finding.culprit = culprit;
    finding.summary = format!(
        "{young:.0} of the {n:.0} instances of {who} appeared within the last {} s, after {old:.0} that exist for {} s or more; each holds ~{pool:.1} connections, so the count follows instances × pool ({} in all).",
        s.young_oldest_age + 1,
        s.old_youngest_age,
        f.connections
    );
    finding.evidence = evidence;
    finding.remediation = remediation;
    Some((finding, s.young_connections as f64))
}

/// The fleet whose age step looks most like a scale-out, its confidence, and the history's
/// sample from before the step (if it reaches back that far).
fn best_fleet<'c>(ctx: &Ctx<'c>) -> Option<(&'c Fleet, f64, Before)> {
    let c = ctx.obs.clients;
    let mut fleets: Vec<&Fleet> = c.fleets.iter().collect();
    fleets.sort_by_key(|f| rank(f));
    let mut best: Option<(&Fleet, f64, Before)> = None;
    for f in fleets {
        let Some(s) = f.step else { continue };
        let young = s.young_instances as f64;
        let old = f.instances.saturating_sub(s.young_instances) as f64;
        if young < 3.0 || old < 1.0 || young < 0.5 * old {
            continue;
        }
        let growth = 0.55 + 0.35 * (young / old / 2.0).min(1.0);
        let evenness = f.similar_pools as f64 / f.instances.max(1) as f64;
        let active = 1.0 - 0.6 * f.idle_unused as f64 / f.connections.max(1) as f64;
        let relevance = 0.5 + 0.5 * (f.connections as f64 / ctx.clients.max(1.0) / 0.5).min(1.0);
        // The history, when it reaches back before the newer instances appeared, says whether
        // the count of instances really grew (a rolling deploy replaces them instead).
        let before = ctx
            .sample_before(ctx.now - s.young_oldest_age as f64 - 1.0)
            .map(|b| (u64::from(b.instances), b.at));
        let history = match before {
            Some((n, _)) if (c.instances as f64 - n as f64) >= 0.5 * young => 1.05,
            Some(_) => 0.4,
            None => 1.0,
        };
        let conf = growth * (0.5 + 0.5 * evenness) * active * relevance * history;
        if conf > best.map_or(0.0, |(_, x, _)| x) {
            best = Some((f, conf, before));
        }
    }
    best
}

/// The numbers of the scale-out: instances before and after the step, pools, idle share, and
/// what the history saw.
fn evidence(ctx: &Ctx<'_>, f: &Fleet, s: AgeStep, who: &str, before: Before) -> Vec<Evidence> {
    let n = f.instances as f64;
    let young = s.young_instances as f64;
    let old = n - young;
    let pool = f.connections as f64 / n.max(1.0);
    let mut evidence = vec![
        ev(
            format!("{who}: instances (source addresses) now"),
            f.instances,
        ),
        ev(
            format!(
                "instances older than {} s (before the jump)",
                s.old_youngest_age
            ),
            format!("{old:.0}"),
        ),
        ev(
            format!(
                "instances that appeared within the last {} s",
                s.young_oldest_age + 1
            ),
            format!("{young:.0} (+{:.0}%)", 100.0 * young / old.max(1.0)),
        ),
        ev(
            "instances × connections per instance",
            format!("{n:.0} × {pool:.1} = {}", f.connections),
        ),
        ev(
            "instances with a pool within ±50% of the median",
            format!(
                "{} of {} (median {})",
                f.similar_pools, f.instances, f.pool_median
            ),
        ),
        ev(
            "idle share of their connections",
            pct(f.idle_unused as f64 / f.connections.max(1) as f64),
        ),
        ev("connections the newer instances hold", s.young_connections),
    ];
    match before {
        Some((was, at)) => evidence.push(ev(
            format!("instances {:.0} s ago (history)", ctx.now - at),
            format!("{was} (now {})", ctx.obs.clients.instances),
        )),
        None => evidence.push(ev(
            "history before the jump",
            "none (the exporter started later, or this is the one-shot command): read from connection ages",
        )),
    }
    evidence
}

/// The fix: a pool size that fits 80% of maxclients (added to the evidence), a higher
/// maxclients when the count needs it, a multiplexing proxy.
fn remediation(ctx: &Ctx<'_>, f: &Fleet, who: &str, evidence: &mut Vec<Evidence>) -> Vec<Step> {
    let n = f.instances as f64;
    let pool = f.connections as f64 / n.max(1.0);
    let mut remediation = Vec::new();
    if let Some(m) = ctx.maxclients {
        let others = (ctx.clients - f.connections as f64).max(0.0);
        let fit = ((0.8 * m - others) / n.max(1.0)).floor();
        if fit >= 1.0 {
            evidence.push(ev(
                "pool size per instance that fits 80% of maxclients",
                format!(
                    "{fit:.0} ((80% of {m:.0} − {others:.0} other connections) / {n:.0} instances)"
                ),
            ));
            remediation.push(advice(format!(
                "Cap each instance's pool at {fit:.0} connections (now ~{pool:.0}): {n:.0} instances × {fit:.0} = {:.0}, with the {others:.0} other connections ≤ 80% of maxclients {m:.0}; or scale {who} back in.",
                n * fit
            )));
        } else {
            remediation.push(advice(format!(
                "No pool size fits: {n:.0} instances beside {others:.0} other connections exceed 80% of maxclients {m:.0} even with one connection each. Scale {who} back in, or raise maxclients."
            )));
        }
        let wanted = (ctx.clients * 1.5).ceil();
        if wanted > m {
            remediation.extend(raise_maxclients(
                ctx,
                wanted,
                crate::redis::info::looks_fd_clamped(m),
            ));
        }
    }
    remediation.push(advice(
        "For fleets that keep growing, put a connection-multiplexing proxy (Envoy redis_proxy, twemproxy) between the instances and Redis.",
    ));
    remediation
}
