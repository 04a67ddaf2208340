//! `blocked_clients`: connections waiting in blocking commands (BLPOP, XREAD BLOCK, WAIT...)
//! hold their slots while they wait; with no timeout on the call, they wait forever.

use super::{blame, culprit, ev, Cause, Ctx, Finding, Only};

pub(super) fn detect(ctx: &Ctx<'_>) -> Option<Finding> {
    let c = ctx.obs.clients;
    let from_list = c.by_flag[crate::redis::client_list::Flag::Blocked] as f64;
    let n = ctx.obs.info.blocked_clients.unwrap_or(0.0).max(from_list);
    if n < 5.0 {
        return None;
    }
    let conf = 0.9 * (n / (0.2 * ctx.clients).max(20.0)).min(1.0);
    let who = culprit(c, |g| g.blocked);
    let b = blame(
        ctx,
        who,
        Only::Blocked,
        "blocked clients piling up",
        |key| format!("Unblock or close the blocked connections of {key}"),
        "Give blocking commands a timeout (BLPOP key 5, not 0) and size the pool for them separately: every blocked call holds a connection.",
    );
    let mut f = Finding::new(Cause::BlockedClients, b.title, conf);
    f.severity = ctx.threat.value;
    f.threat = ctx.threat.why.clone();
    f.culprit = b.culprit;
    f.summary = format!(
        "{n:.0} connections wait in blocking commands (BLPOP, BRPOP, XREAD BLOCK, WAIT...) and hold their slots meanwhile."
    );
    f.evidence = vec![
        ev(
            "blocked_clients (INFO)",
            ctx.obs
                .info
                .blocked_clients
                .map_or("-".into(), |b| format!("{b:.0}")),
        ),
        ev("connections with flag b", from_list),
        ev(
            "most blocked group",
            who.map_or("-".into(), |(k, v, g)| format!("{k} {v} ({})", g.blocked)),
        ),
    ];
    f.remediation = b.remediation;
    f.selector = b.selector;
    Some(f)
}
