//! `connection_leak`: connections that are opened and then neither used nor closed. Looked for
//! in every group that can hold them, one source, one client name, one client library, one
//! /24 (a fleet of pods), connections without a name, so that a leak spread thinly over many
//! instances is seen as one.

use super::{
    advice, companion, ev, healing_steps, kill_steps, pct, span, Cause, Ctx, Evidence, Finding,
    Only, Selector, Step, Threat,
};
use crate::analysis::aggregate::{
    Dimension, Fleet, FleetKind, GroupStats, WorkloadMembers, OTHER, UNNAMED,
};
use crate::redis::client_list::CLIENT_NAME;

/// A group that may hold the leak.
struct Candidate<'a> {
    kind: Dimension,
    /// The summary's key (`unnamed` for connections without a name).
    key: &'a str,
    g: &'a GroupStats,
    fleet: Option<&'a Fleet>,
    /// A workload's addresses (src/identity), for [`Dimension::Workload`] only.
    members: Option<&'a WorkloadMembers>,
}

/// The group's unused connections over the polls: the newest run of polls in which the count
/// never fell, when it rose in at least two of them and by at least 3 in all. A leak in
/// progress; a step (a deploy's pools opening at once) rises in one poll only.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Trend {
    pub rise: f64,
    pub span: f64,
    pub pace: f64,
}

impl Candidate<'_> {
    /// Its unused connections in each sample of the history, the current poll's from the
    /// snapshot itself.
    fn trend(&self, ctx: &Ctx<'_>) -> Option<Trend> {
        let cur = self.g.unused();
        let n = ctx.history.len();
        let mut prev = cur;
        let (mut start_at, mut start) = (ctx.now, cur);
        let mut rises = 0;
        for s in ctx.history[..n.saturating_sub(1)].iter().rev() {
            let Some((_, u)) = s.counts(self.kind, self.key) else {
                break;
            };
            if u > prev || s.at >= start_at {
                break;
            }
            rises += usize::from(u < prev);
            (start_at, start, prev) = (s.at, u, u);
        }
        let rise = cur.saturating_sub(start) as f64;
        let span = ctx.now - start_at;
        (rises >= 2 && rise >= 3.0 && span > 0.0).then(|| Trend {
            rise,
            span,
            pace: rise / span,
        })
    }

    fn selector_key(&self) -> String {
        if self.kind == Dimension::ClientName && self.key == UNNAMED {
            String::new()
        } else {
            self.key.to_string()
        }
    }

    /// How specific the group is: a source is one host, unnamed connections may be anyone's.
    fn specificity(&self) -> u8 {
        match self.kind {
            Dimension::SourceIp => 0,
            // A workload (src/identity) is one service, whatever nodes its pods are on: named
            // before a name, a library or a /24 that may mix services.
            Dimension::Workload => 1,
            Dimension::ClientName if self.key != UNNAMED => 2,
            Dimension::LibName => 3,
            Dimension::AddressPrefix => 4,
            _ => 5,
        }
    }
}

/// A candidate with its evidence weighed.
struct Weighed<'c, 'a> {
    cand: &'c Candidate<'a>,
    trend: Option<Trend>,
    /// Leak candidates counted: idle ones, and the fresh untouched ones when the group grows
    /// poll by poll or the server is full (they hold slots for nothing while others are
    /// refused).
    mass: f64,
    fresh: f64,
    /// Growth of its unused connections since the oldest sample.
    rise: f64,
    base: f64,
}

impl Weighed<'_, '_> {
    /// How strongly the group's own numbers say "leak", before history and ages: the share of
    /// its connections that are unused, times how much of the server it is (a third of all
    /// connections counts fully), times how many (20 count fully; for a leak growing poll by
    /// poll a tenth of maxclients, 5 to 20: on a small server a few are already many).
    fn weigh(&mut self, ctx: &Ctx<'_>) {
        let clients = ctx.clients;
        let purity = self.mass / self.cand.g.clients().max(1) as f64;
        let dominance = (self.mass / clients.max(1.0) / 0.3).min(1.0);
        let full_mass = match (self.trend, ctx.maxclients) {
            (Some(_), Some(m)) => (m * 0.1).clamp(5.0, 20.0),
            _ => 20.0,
        };
        let mass = (self.mass / full_mass).min(1.0);
        self.base = purity * dominance * mass;
    }
}

fn candidates<'a>(ctx: &'a Ctx<'_>) -> Vec<Candidate<'a>> {
    let c = ctx.obs.clients;
    let fleet =
        |kind: FleetKind, key: &str| c.fleets.iter().find(|f| f.kind == kind && f.key == key);
    let mut out = Vec::new();
    // Workloads first (src/identity; none without it): those whose every address is listed,
    // so that a selector can name them all.
    for m in &c.workloads {
        let g = c.by_workload.iter().find(|(k, _)| *k == m.workload);
        if let Some((k, g)) = g.filter(|_| m.instances as usize == m.sources.len()) {
            if g.clients() > 0 {
                out.push(Candidate {
                    kind: Dimension::Workload,
                    key: k,
                    g,
                    fleet: None,
                    members: Some(m),
                });
            }
        }
    }
    // Order breaks ties: a source is the most actionable, then a name, a library, a /24, and
    // last the connections without a name (they may belong to anyone).
    for (k, g) in &c.by_source {
        if k != OTHER && g.clients() > 0 {
            out.push(Candidate {
                kind: Dimension::SourceIp,
                key: k,
                g,
                fleet: None,
                members: None,
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
                members: None,
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
                members: None,
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
                members: None,
            });
        }
    }
    out
}

/// The finding, and the fresh connections it counted (they are not the limit's fault).
pub(super) fn detect(ctx: &Ctx<'_>) -> Option<(Finding, f64)> {
    let cands = candidates(ctx);
    let at_limit = matches!((ctx.limit, ctx.maxclients), (Some(l), Some(m)) if l >= m);
    let mut weighed: Vec<Weighed<'_, '_>> = cands
        .iter()
        .map(|cand| {
            let trend = cand.trend(ctx);
            let fresh = if trend.is_some() || at_limit || ctx.rejecting {
                cand.g.fresh_unused as f64
            } else {
                0.0
            };
            let rise = ctx
                .baseline()
                .and_then(|b| b.counts(cand.kind, cand.key))
                .map_or(0.0, |(_, was)| cand.g.unused().saturating_sub(was) as f64);
            let mut w = Weighed {
                cand,
                trend,
                mass: cand.g.idle_unused() as f64 + fresh,
                fresh,
                rise,
                base: 0.0,
            };
            w.weigh(ctx);
            w
        })
        .collect();
    let mut best: Option<usize> = None;
    for (i, w) in weighed.iter().enumerate() {
        if w.base > best.map_or(0.0, |b| weighed[b].base) {
            best = Some(i);
        }
    }
    let mut pick = best?;
    // The most specific group that explains the leak: a broad group (unnamed connections, a
    // library, a /24, a name over many hosts) whose unused connections one host (or one
    // workload) mostly holds, or whose growth it makes, is that host's leak. Closing the
    // broad group would close healthy services' spare connections too.
    let b = &weighed[pick];
    let explains = |w: &Weighed<'_, '_>| {
        w.cand.specificity() < b.cand.specificity()
            && w.base >= 0.5 * b.base
            && (w.mass >= 0.6 * b.mass || (b.rise >= 3.0 && w.rise >= 0.8 * b.rise))
    };
    if let Some((i, _)) = weighed
        .iter()
        .enumerate()
        .filter(|(_, w)| explains(w))
        .min_by(|(_, x), (_, y)| {
            x.cand
                .specificity()
                .cmp(&y.cand.specificity())
                .then(y.mass.total_cmp(&x.mass))
        })
    {
        pick = i;
    }
    let w = weighed.swap_remove(pick);
    Some((finding(ctx, &w, at_limit), w.fresh))
}

/// How a report names the culprit: its name and its address where one of each holds it
/// ("checkout-svc @ 10.0.0.5"), else the group.
fn display(ctx: &Ctx<'_>, cand: &Candidate<'_>) -> String {
    let c = ctx.obs.clients;
    let unused = cand.g.unused();
    if let Some(w) = super::workload::culprit_workload(c, cand.kind, cand.key, unused) {
        return w;
    }
    let top = |groups: &[(String, GroupStats)]| {
        groups
            .iter()
            .filter(|(k, _)| k != OTHER && k != CLIENT_NAME)
            .max_by_key(|(_, g)| g.unused())
            .filter(|(_, g)| g.unused() > 0)
            .map(|(k, g)| (k.clone(), g.unused()))
    };
    let name = |k: &str| {
        if k == UNNAMED {
            "(unnamed)".to_string()
        } else {
            k.to_string()
        }
    };
    match cand.kind {
        Dimension::SourceIp => match top(&c.by_name) {
            Some((n, u)) if 2 * u >= unused => format!("{} @ {}", name(&n), cand.key),
            _ => cand.key.to_string(),
        },
        Dimension::ClientName => match (top(&c.by_source), cand.fleet) {
            (Some((ip, u)), _) if 5 * u >= 4 * unused => format!("{} @ {ip}", name(cand.key)),
            (_, Some(f)) if f.instances >= 2 => {
                format!("{} ({} sources)", name(cand.key), f.instances)
            }
            _ => name(cand.key),
        },
        Dimension::LibName => format!("library {}", cand.key),
        Dimension::AddressPrefix => format!("sources in {}", cand.key),
        Dimension::AllSources => cand.key.to_string(),
        Dimension::Workload => cand
            .members
            .map_or_else(|| cand.key.to_string(), super::workload::describe),
    }
}

fn finding(ctx: &Ctx<'_>, w: &Weighed<'_, '_>, at_limit: bool) -> Finding {
    let cand = w.cand;
    let g = cand.g;
    let mass = w.mass;
    let t = ctx.obs.idle_threshold_seconds;
    let mut evidence: Vec<Evidence> = Vec::new();
    let conf = confidence(ctx, w, &mut evidence);
    let room = ctx.headroom();
    let (head, pace_text) = head_evidence(ctx, w, at_limit, room, evidence);
    let share_of_all = mass / ctx.clients.max(1.0);
    let (sel, remediation) = selection_and_steps(ctx, w, room);
    let who = sel.describe();
    let shown = display(ctx, cand);
    let threat = leak_threat(ctx, w);
    let title = match (w.trend, room) {
        (Some(tr), Some(r)) if !at_limit && r >= 1.0 => format!(
            "connection leak from {shown} ({:.1}/s, full in about {})",
            tr.pace,
            span(r / tr.pace)
        ),
        (Some(tr), _) => format!("connection leak from {shown} ({:.1}/s)", tr.pace),
        (None, _) => format!("connection leak from {shown}"),
    };
    let mut f = Finding::new(Cause::ConnectionLeak, title, conf);
    f.severity = threat.value;
    f.threat = threat.why;
    f.culprit = Some(who.clone());
    let fresh_text = if w.fresh > 0.0 {
        format!(
            ", {:.0} of them younger and untouched since they connected",
            w.fresh
        )
    } else {
        String::new()
    };
    f.summary = format!(
        "{mass:.0} of the {} connections from {shown} ({who}) are unused: idle ≥ {t} s{fresh_text} ({} of all connections){}; a pool that never returns or closes connections looks like this.{pace_text}",
        g.clients(),
        pct(share_of_all),
        match (cand.fleet.filter(|f| f.instances >= 2), cand.members) {
            (Some(f), _) => format!(", spread over {} instances", f.instances),
            (None, Some(m)) if m.instances >= 2 => {
                format!(", spread over {} addresses of the workload", m.instances)
            }
            _ => String::new(),
        }
    );
    f.evidence = head;
    f.remediation = remediation;
    f.selector = Some(sel);
    f
}

/// How sure the finding is: the group's own weight, then growth over the history (pushed to
/// `evidence`), a fleet whose older instances hold more, and connections that never ran a
/// command; less for a pool's warm spares.
fn confidence(ctx: &Ctx<'_>, w: &Weighed<'_, '_>, evidence: &mut Vec<Evidence>) -> f64 {
    let cand = w.cand;
    let g = cand.g;
    let idle = g.idle_unused() as f64;
    let mass = w.mass;
    let mut conf = w.base;

    // Growth over the daemon's history (the group's unused connections then and now). Never
    // the only evidence: a restarted exporter or the one-shot command has none.
    let then = ctx
        .baseline()
        .and_then(|b| b.counts(cand.kind, cand.key).map(|(_, idle)| (idle, b.at)));
    let grew = match then {
        Some((was, at)) => {
            let now = g.unused() as f64;
            let d = now - was as f64;
            evidence.push(ev(
                format!("unused connections {:.0} s ago", ctx.now - at),
                format!("{was} ({d:+.0})"),
            ));
            (d >= 1.0 && d >= 0.1 * now) || w.trend.is_some()
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
    let never = (g.no_command as f64 / mass.max(1.0)).min(1.0);
    // A pool keeping warm spares: the same few idle in every instance, young and old alike,
    // each used once, and no growth seen. Still a pattern; less likely a leak.
    if uniform && !grows_with_age && !grew && never < 0.5 {
        conf *= 0.85;
    }
    conf += (1.0 - conf) * 0.3 * never;
    conf
}

/// The numbers a person reads first: the group's connections, idle and fresh, its share, the
/// other dimension's dominant group, and the pace poll by poll with the time to full (also
/// returned as a sentence for the summary); then `evidence`.
fn head_evidence(
    ctx: &Ctx<'_>,
    w: &Weighed<'_, '_>,
    at_limit: bool,
    room: Option<f64>,
    evidence: Vec<Evidence>,
) -> (Vec<Evidence>, String) {
    let cand = w.cand;
    let g = cand.g;
    let idle = g.idle_unused() as f64;
    let mass = w.mass;
    let t = ctx.obs.idle_threshold_seconds;
    let culprit_name = format!("{} {}", cand.kind, cand.key);
    let share_of_all = mass / ctx.clients.max(1.0);
    let mut head = vec![
        ev(format!("{culprit_name}: connections"), g.clients()),
        ev(
            format!("of them idle ≥ {t} s (not pub/sub, not blocked)"),
            format!("{idle:.0} ({})", pct(idle / g.clients().max(1) as f64)),
        ),
        ev(
            format!("of them younger than {t} s and untouched since they connected"),
            if w.fresh > 0.0 || g.fresh_unused == 0 {
                g.fresh_unused.to_string()
            } else {
                format!(
                    "{} (not counted: not growing poll by poll, server not full)",
                    g.fresh_unused
                )
            },
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
            companion(ctx.obs.clients, cand.kind, GroupStats::unused),
        ));
    }
    // The pace poll by poll and what it leaves: how long the free slots last.
    let mut pace_text = String::new();
    if let Some(tr) = w.trend {
        head.push(ev(
            "growing poll by poll",
            format!(
                "+{:.0} in the last {} ({:.2} connections/s)",
                tr.rise,
                span(tr.span),
                tr.pace
            ),
        ));
        let left = match room {
            Some(r) if at_limit || r < 1.0 => "the server is full".to_string(),
            Some(r) => format!(
                "the {r:.0} free slots last about {} at this pace",
                span(r / tr.pace)
            ),
            None => "maxclients unknown".to_string(),
        };
        head.push(ev("time to full", left.clone()));
        pace_text = format!(
            " It grows poll by poll, {:.2} connections/s over the last {}: {left}.",
            tr.pace,
            span(tr.span)
        );
    }
    if let Some(m) = cand.members {
        head.push(ev(
            "addresses of the workload holding them (src/identity)",
            m.instances,
        ));
    }
    head.extend(evidence);
    (head, pace_text)
}

/// The leak's own connections as a selector, and the fix: close them now, fix the service,
/// and a timeout that holds against the leak's pace.
fn selection_and_steps(
    ctx: &Ctx<'_>,
    w: &Weighed<'_, '_>,
    room: Option<f64>,
) -> (Selector, Vec<Step>) {
    let cand = w.cand;
    let g = cand.g;
    let idle = g.idle_unused() as f64;
    let mass = w.mass;
    let t = ctx.obs.idle_threshold_seconds;
    let sel = Selector {
        group: cand.kind,
        key: cand.selector_key(),
        // Its own connections: the fresh ones too when they were counted (a server-side
        // `IDLE` filter cannot select those, so only an all-idle leak keeps it).
        only: if w.fresh > 0.0 {
            Only::Unused
        } else {
            Only::Idle
        },
        idle_seconds: t,
        sources: cand
            .members
            .map(|m| m.sources.join(" "))
            .unwrap_or_default(),
    };
    let who = sel.describe();
    let mut remediation = kill_steps(
        ctx,
        &sel,
        &if w.fresh > 0.0 {
            format!(
                "the unused connections of {who} (idle ≥ {t} s, or untouched since they connected)"
            )
        } else {
            format!("the idle connections of {who}")
        },
    );
    let fleet_word = if cand.fleet.is_some_and(|f| f.instances >= 2) {
        "every instance of the service"
    } else {
        "the service"
    };
    remediation.push(advice(format!(
        "Fix {fleet_word} behind {who}: return connections to its pool, and give the pool a maximum size and an idle timeout (e.g. minIdle 0, idle eviction below {t} s)."
    )));
    // The leak's pace: poll by poll; while the server refuses it, its tries (the refusals per
    // second); or its average since its oldest connection.
    let refusing = ctx
        .rejecting
        .then(|| ctx.counter_rate(|s| s.rejected_connections()))
        .flatten();
    let average =
        (g.oldest_age_seconds >= 300 && idle > 0.0).then(|| idle / g.oldest_age_seconds as f64);
    let pace = [w.trend.map(|t| t.pace), refusing, average]
        .into_iter()
        .flatten()
        .fold(0.0, f64::max);
    let hold = super::remediation::Hold {
        pace,
        freed: room.unwrap_or(0.0) + mass,
        who: &who,
    };
    remediation.extend(healing_steps(
        ctx,
        false,
        (pace > 0.0 && ctx.maxclients.is_some()).then_some(&hold),
    ));
    (sel, remediation)
}

/// The threat to the limit, raised by the leak's own pace.
fn leak_threat(ctx: &Ctx<'_>, w: &Weighed<'_, '_>) -> Threat {
    let g = w.cand.g;
    let idle = g.idle_unused() as f64;
    // The leak's own pace: poll by poll when the polls show it; otherwise from its
    // connections' ages, what it has accumulated since its oldest connection opened (only
    // once that is 5 minutes old: a young group's pace is a burst, not a rate).
    let mut threat = ctx.threat.clone();
    if let Some(tr) = w.trend {
        threat = threat.max(ctx.growth_threat(tr.pace, "the leak's pace poll by poll"));
    }
    if g.oldest_age_seconds >= 300 && idle > 0.0 {
        threat = threat.max(ctx.growth_threat(
            idle / g.oldest_age_seconds as f64,
            "the leak's average pace",
        ));
    }
    threat
}
