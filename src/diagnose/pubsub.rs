//! `stale_pubsub`: subscribers that receive nothing for long (a subscriber that gets messages
//! is not idle), typically one new subscription connection per request or per reconnect,
//! never closed. Redis' `timeout` does not close them.

use super::{
    advice, culprit, ev, healing_steps, kill_steps, pct, Cause, Ctx, Finding, Only, Selector,
};

pub(super) fn detect(ctx: &Ctx<'_>) -> Option<Finding> {
    let c = ctx.obs.clients;
    let (kind, key, g) = culprit(c, |g| g.idle_pubsub)?;
    let stale = g.idle_pubsub as f64;
    let share = stale / g.pubsub.max(1) as f64;
    let all = stale / ctx.clients.max(1.0);
    let conf = share * (all / 0.2).min(1.0) * (stale / 10.0).min(1.0);
    let t = ctx.obs.idle_threshold_seconds;
    let sel = Selector {
        group: kind,
        key: key.to_string(),
        only: Only::IdlePubsub,
        idle_seconds: t,
        sources: String::new(),
    };
    let mut remediation = kill_steps(ctx, &sel, &format!("the stale subscribers of {key}"));
    remediation.push(advice(format!(
        "Fix the subscriber behind {kind} {key}: one shared subscriber connection per process, UNSUBSCRIBE and close on shutdown."
    )));
    remediation.extend(healing_steps(ctx, true, None));
    let mut f = Finding::new(
        Cause::StalePubsub,
        format!("stale pub/sub subscribers from {kind} {key}"),
        conf,
    );
    f.severity = ctx.threat.value;
    f.threat = ctx.threat.why.clone();
    f.culprit = Some(format!("{kind} {key}"));
    f.summary = format!(
        "{stale:.0} pub/sub connections from {kind} {key} have received nothing for ≥ {t} s ({} of all connections).",
        pct(all)
    );
    f.evidence = vec![
        ev(format!("{kind} {key}: pub/sub connections"), g.pubsub),
        ev(
            format!("of them idle ≥ {t} s"),
            format!("{stale:.0} ({})", pct(share)),
        ),
        ev("subscriptions they hold", g.subscriptions),
        ev("oldest idle", format!("{} s", g.oldest_idle_seconds)),
        ev(
            "pub/sub connections on the server",
            c.by_type[crate::redis::client_list::ClientType::Pubsub],
        ),
    ];
    f.remediation = remediation;
    f.selector = Some(sel);
    Some(f)
}
