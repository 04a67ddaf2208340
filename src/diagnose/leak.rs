//! `connection_leak`: connections that are opened and then neither used nor closed. Looked for
//! in every group that can hold them, one source, one client name, one client library, one
//! /24 (a fleet of pods), connections without a name, so that a leak spread thinly over many
//! instances is seen as one.

use super::{
    advice, companion, ev, healing_steps, kill_steps, pct, Cause, Ctx, Evidence, Finding, Only,
    Selector,
};
use crate::analysis::aggregate::{Dimension, Fleet, FleetKind, GroupStats, OTHER, UNNAMED};
use crate::redis::client_list::CLIENT_NAME;

/// A group that may hold the leak.
struct Candidate<'a> {
    kind: Dimension,
    /// The summary's key (`unnamed` for connections without a name).
    key: &'a str,
    g: &'a GroupStats,
    fleet: Option<&'a Fleet>,
}

impl Candidate<'_> {
    /// How strongly the group's own numbers say "leak", before history and ages: the share of
    /// its connections that are idle and unused, times how much of the server it is (a third
    /// of all connections counts fully), times how many (20 count fully).
    fn base(&self, clients: f64) -> f64 {
        let idle = self.g.idle_unused() as f64;
        let purity = idle / self.g.clients().max(1) as f64;
        let dominance = (idle / clients.max(1.0) / 0.3).min(1.0);
        let mass = (idle / 20.0).min(1.0);
        purity * dominance * mass
    }

    fn selector_key(&self) -> String {
        if self.kind == Dimension::ClientName && self.key == UNNAMED {
            String::new()
        } else {
            self.key.to_string()
        }
    }
}

fn candidates<'a>(ctx: &'a Ctx<'_>) -> Vec<Candidate<'a>> {
    let c = ctx.obs.clients;
    let fleet =
        |kind: FleetKind, key: &str| c.fleets.iter().find(|f| f.kind == kind && f.key == key);
    let mut out = Vec::new();
    // Order breaks ties: a source is the most actionable, then a name, a library, a /24, and
    // last the connections without a name (they may belong to anyone).
    for (k, g) in &c.by_source {
        if k != OTHER && g.clients() > 0 {
            out.push(Candidate {
                kind: Dimension::SourceIp,
                key: k,
                g,
                fleet: None,
            });
        }
    }
    for (k, g) in &c.by_name {
        if k != OTHER && k != CLIENT_NAME && k != UNNAMED {
            out.push(Candidate {
                kind: Dimension::ClientName,
                key: k,
                g,
                fleet: fleet(FleetKind::Name, k),
            });
        }
    }
    // Libraries and /24 prefixes: every group but the folded rest is a candidate service.
    for (kind, groups, fleet_kind) in [
        (Dimension::LibName, &c.by_lib, FleetKind::Lib),
        (Dimension::AddressPrefix, &c.by_prefix, FleetKind::Prefix),
    ] {
        for (k, g) in groups.iter().filter(|(k, _)| k != OTHER) {
            out.push(Candidate {
                kind,
                key: k,
                g,
                fleet: fleet(fleet_kind, k),
            });
        }
    }
    for (k, g) in &c.by_name {
        if k == UNNAMED {
            out.push(Candidate {
                kind: Dimension::ClientName,
                key: k,
                g,
                fleet: fleet(FleetKind::Name, k),
            });
        }
    }
    out
}

pub(super) fn detect(ctx: &Ctx<'_>) -> Option<Finding> {
    let cands = candidates(ctx);
    let mut best: Option<(&Candidate<'_>, f64)> = None;
    for cand in &cands {
        let b = cand.base(ctx.clients);
        if b > best.map_or(0.0, |(_, x)| x) {
            best = Some((cand, b));
        }
    }
    let (cand, base) = best?;
    let g = cand.g;
    let idle = g.idle_unused() as f64;
    let t = ctx.obs.idle_threshold_seconds;
    let mut conf = base;
    let mut evidence: Vec<Evidence> = Vec::new();

    // Growth over the daemon's history (the group's idle connections then and now). Never
    // the only evidence: a restarted exporter or the one-shot command has none.
    let then = ctx
        .baseline()
        .and_then(|b| b.counts(cand.kind, cand.key).map(|(_, idle)| (idle, b.at)));
    let grew = match then {
        Some((was, at)) => {
            let d = idle - was as f64;
            evidence.push(ev(
                format!("idle connections {:.0} s ago", ctx.now - at),
                format!("{was} ({d:+.0})"),
            ));
            d >= 1.0 && d >= 0.1 * idle
        }
        None => false,
    };
    conf = match then {
        Some(_) if grew => conf * 0.8 + 0.2,
        Some(_) => conf * 0.9,
        // One snapshot cannot show growth: be less sure.
        None => conf * 0.85,
    };

    // Across a fleet: instances that exist longer hold more leaked connections.
    let mut grows_with_age = false;
    let mut uniform = false;
    if let Some(f) = cand.fleet.filter(|f| f.instances >= 2) {
        let per = idle / f.instances as f64;
        evidence.push(ev(
            "instances (source addresses) holding them",
            format!(
                "{} (~{per:.1} idle each, at most {})",
                f.instances, f.max_idle_per_instance
            ),
        ));
        if let Some(s) = f.step {
            let old_n = f.instances.saturating_sub(s.young_instances).max(1) as f64;
            let old_per = f.idle_unused.saturating_sub(s.young_idle) as f64 / old_n;
            let young_per = s.young_idle as f64 / s.young_instances.max(1) as f64;
            evidence.push(ev(
                "idle per instance, older vs newer instances",
                format!(
                    "{old_per:.1} (older than {} s) vs {young_per:.1} (newer than {} s)",
                    s.old_youngest_age, s.young_oldest_age
                ),
            ));
            grows_with_age = old_per >= 1.5 * young_per + 1.0;
        }
        uniform = (f.max_idle_per_instance as f64) <= 1.5 * per + 1.0;
    }
    if grows_with_age {
        conf = conf * 0.8 + 0.2;
    }
    // Never ran a command: opened and forgotten, not a pool's warm spare (which was used or
    // at least checked).
    let never = (g.no_command as f64 / idle.max(1.0)).min(1.0);
    // A pool keeping warm spares: the same few idle in every instance, young and old alike,
    // each used once, and no growth seen. Still a pattern; less likely a leak.
    if uniform && !grows_with_age && !grew && never < 0.5 {
        conf *= 0.85;
    }
    conf += (1.0 - conf) * 0.3 * never;

    let culprit_name = format!("{} {}", cand.kind, cand.key);
    let share_of_group = idle / g.clients().max(1) as f64;
    let share_of_all = idle / ctx.clients.max(1.0);
    let mut head = vec![
        ev(format!("{culprit_name}: connections"), g.clients()),
        ev(
            format!("of them idle ≥ {t} s (not pub/sub, not blocked)"),
            format!("{idle:.0} ({})", pct(share_of_group)),
        ),
        ev("share of all connections", pct(share_of_all)),
        ev("oldest idle", format!("{} s", g.oldest_idle_seconds)),
        ev("never ran a command (cmd=NULL)", g.no_command),
    ];
    // The other dimension's dominant group says something only of a group on one address, or
    // an address: across a fleet it would name one instance of many.
    let spread = cand.fleet.is_some_and(|f| f.instances >= 2);
    if matches!(cand.kind, Dimension::SourceIp | Dimension::ClientName) && !spread {
        head.push(ev(
            if cand.kind == Dimension::ClientName {
                "dominant source IP"
            } else {
                "dominant client name"
            },
            companion(ctx.obs.clients, cand.kind, GroupStats::idle_unused),
        ));
    }
    head.extend(evidence);

    let sel = Selector {
        group: cand.kind,
        key: cand.selector_key(),
        only: Only::Idle,
        idle_seconds: t,
    };
    let who = sel.describe();
    let mut remediation = kill_steps(ctx, &sel, &format!("the idle connections of {who}"));
    let fleet_word = if cand.fleet.is_some_and(|f| f.instances >= 2) {
        "every instance of the service"
    } else {
        "the service"
    };
    remediation.push(advice(format!(
        "Fix {fleet_word} behind {who}: return connections to its pool, and give the pool a maximum size and an idle timeout (e.g. minIdle 0, idle eviction below {t} s)."
    )));
    remediation.extend(healing_steps(ctx, false));

    // The leak's own pace, from its connections' ages: what it has accumulated since its
    // oldest connection opened (only once that is 5 minutes old: a young group's pace is a
    // burst, not a rate).
    let mut threat = ctx.threat.clone();
    if g.oldest_age_seconds >= 300 && idle > 0.0 {
        threat = threat.max(ctx.growth_threat(
            idle / g.oldest_age_seconds as f64,
            "the leak's average pace",
        ));
    }
    let mut f = Finding::new(
        Cause::ConnectionLeak,
        format!("connection leak from {who}"),
        conf,
    );
    f.severity = threat.value;
    f.threat = threat.why;
    f.culprit = Some(who.clone());
    f.summary = format!(
        "{idle:.0} of the {} connections from {who} are idle ≥ {t} s ({} of all connections){}; a pool that never returns or closes connections looks like this.",
        g.clients(),
        pct(share_of_all),
        cand.fleet
            .filter(|f| f.instances >= 2)
            .map_or(String::new(), |f| format!(", spread over {} instances", f.instances))
    );
    f.evidence = head;
    f.remediation = remediation;
    f.selector = Some(sel);
    Some(f)
}
