//! `maxclients_too_low`: the limit itself is the problem, set low or clamped by the open-files
//! limit, while what fills it is demand: connections that are used, not leaked, not stale
//! subscribers, not blocked, not just added by a scale-out (those are the other causes, and
//! raising the limit would only postpone them).

use super::{ev, pct, raise_maxclients, smoothstep, Cause, Ctx, Finding};

/// `recent`: connections a scale-out added, weighted by its confidence; `fresh`: the young
/// connections untouched since they connected that a leak counted (idle ones are counted
/// here already).
pub(super) fn detect(ctx: &Ctx<'_>, recent: f64, fresh: f64) -> Option<Finding> {
    let m = ctx.maxclients?;
    let clamped = crate::redis::info::looks_fd_clamped(m);
    let low = m < ctx.th.default_maxclients;
    if !clamped && !low {
        return None;
    }
    let c = ctx.obs.clients;
    let sum = |f: fn(&crate::analysis::aggregate::GroupStats) -> u64| -> f64 {
        c.by_source.iter().map(|(_, g)| f(g)).sum::<u64>() as f64
    };
    let idle = sum(|g| g.idle_unused());
    let stale = sum(|g| g.idle_pubsub);
    let blocked = sum(|g| g.blocked);
    let idle = idle + fresh;
    let explained = (idle + stale + blocked + recent).min(ctx.clients);
    let limit = ctx.limit.unwrap_or(ctx.total);
    let needed = (limit - explained).max(0.0);
    let need = smoothstep(needed / m.max(1.0), 0.5, 0.85);
    let conf = if clamped {
        0.5 + 0.45 * need
    } else {
        0.15 + 0.8 * need
    };
    let wanted = ctx
        .th
        .default_maxclients
        .max((limit * 2.0).ceil())
        .max(m + 1.0);
    let mut evidence = vec![
        ev("maxclients", format!("{m:.0}")),
        ev("utilisation", ctx.utilisation.map_or("unknown".into(), pct)),
        ev(
            "connections other causes explain (unused + stale pub/sub + blocked + added by a scale-out)",
            format!("{explained:.0} ({idle:.0} + {stale:.0} + {blocked:.0} + {recent:.0})"),
        ),
        ev(
            "connections left that the clients use: share of maxclients",
            format!("{needed:.0} ({})", pct(needed / m.max(1.0))),
        ),
    ];
    let (title, summary) = if clamped {
        evidence.push(ev(
            "maxclients + 32",
            format!("{:.0}: a typical open-files limit (ulimit -n)", m + 32.0),
        ));
        (
            format!("maxclients clamped to {m:.0} by the open-files limit"),
            format!(
                "maxclients is {m:.0} = {:.0} − 32: Redis lowers maxclients to the open-files limit minus 32 when the limit is too low, and says so only in its log.",
                m + 32.0
            ),
        )
    } else {
        evidence.push(ev(
            "Redis default",
            format!("{:.0}", ctx.th.default_maxclients),
        ));
        (
            format!("maxclients set low ({m:.0})"),
            format!(
                "maxclients is {m:.0}, below Redis' default of {:.0}; {}",
                ctx.th.default_maxclients,
                if need >= 0.5 {
                    "the connections that fill it are in use: the limit is what runs out."
                } else {
                    "most connections are explained by other causes, which a higher limit would only postpone."
                }
            ),
        )
    };
    let mut f = Finding::new(Cause::MaxclientsTooLow, title, conf);
    f.severity = ctx.threat.value;
    f.threat = ctx.threat.why.clone();
    f.summary = summary;
    f.evidence = evidence;
    f.remediation = raise_maxclients(ctx, wanted, clamped);
    Some(f)
}
