//! The remedies the causes share: closing a selector's connections with the filters the server
//! has, the settings that make leaks heal (`timeout`, `tcp-keepalive`), raising `maxclients`
//! (and when that works), and what to do while the server is full. Every printed command
//! fails loudly when Redis refuses it (see `shell`).

use super::shell;
use super::step::{kill_filter, CloseBy, Notice};
use super::{advice, Ctx, Finding, Only, Selector, Step};
use crate::analysis::aggregate::Dimension;
use crate::config::relief::Param;

/// How every "server is full" notice begins.
pub const FULL_NOTICE: &str = "The server is full:";

/// Remediation steps that kill a selector's connections, by the filters the server has.
pub(crate) fn kill_steps(ctx: &Ctx<'_>, sel: &Selector, what: &str) -> Vec<Step> {
    // Valkey 9 filters by IP, NAME, LIB-NAME and IDLE itself; every other server needs ids.
    // A cut key is not the value itself: no server-side filter can take it.
    let server_side = kill_filter(sel.group).is_some()
        && ctx.server.kills_by_idle()
        && sel.only == Only::Idle
        && !sel.key.is_empty()
        && sel.cut_key().is_none();
    if server_side {
        vec![Step::close(
            format!("Close {what} now (server-side filter)"),
            ctx.cli,
            sel.clone(),
            CloseBy::ServerFilter,
        )]
    } else {
        vec![Step::close(
            format!(
                "Close {what} now ({} has no CLIENT KILL filter for this, so they are re-selected from a live CLIENT LIST and closed by id)",
                ctx.server.name()
            ),
            ctx.cli,
            sel.clone(),
            CloseBy::Reselect,
        )]
    }
}

/// The `timeout` a leak fix proposes: 5 minutes, and never below twice the idle threshold
/// (so the connections the diagnosis calls idle are what it closes, not busier ones).
fn proposed_timeout(ctx: &Ctx<'_>) -> i64 {
    i64::try_from(2 * ctx.obs.idle_threshold_seconds)
        .unwrap_or(i64::MAX)
        .max(300)
}

/// The steps every leak fix carries, whatever the server's settings: `timeout` (Redis closes
/// idle connections; pub/sub and blocked ones are exempt) and `tcp-keepalive` (connections of
/// dead peers are found), as commands where they are off, as facts where they are on.
/// What a leak leaves for `timeout` to hold: its pace (connections per second it opens, or
/// tries to open while the server refuses it) and the slots free once its connections are
/// closed.
pub(crate) struct Hold<'a> {
    pub pace: f64,
    pub freed: f64,
    /// Who to recycle when no timeout can hold.
    pub who: &'a str,
}

/// The shortest `timeout` worth suggesting: Redis measures idleness in whole seconds and
/// checks it about once a second.
pub const MIN_HOLD_TIMEOUT: f64 = 2.0;

pub(crate) fn healing_steps(ctx: &Ctx<'_>, pubsub: bool, hold: Option<&Hold<'_>>) -> Vec<Step> {
    let cfg = ctx.obs.config;
    let mut steps = Vec::new();
    let t = proposed_timeout(ctx);
    if pubsub {
        steps.push(advice(
            "`timeout` never closes pub/sub connections: only the subscriber's own fix or a kill does.",
        ));
    } else if let Some(h) = hold.filter(|h| h.pace > 0.0) {
        steps.extend(holding_timeout(ctx, h));
    } else {
        match cfg.timeout {
            Some(0.0) => steps.push(Step::set_param(
                format!("Let Redis close connections idle longer than {t} s (timeout is 0: never). Every client's idle connections are closed then, healthy pools' too: they reconnect; pub/sub and blocked clients are exempt"),
                ctx.cli,
                Param::Timeout,
                t,
            )),
            Some(x) => steps.push(advice(format!(
                "timeout is {x:.0} s: Redis already closes connections idle longer than that; lower it (CONFIG SET timeout {t}) if leaked connections pile up faster."
            ))),
            None => steps.push(advice(format!(
                "Set `timeout {t}` (CONFIG GET is not available here: on a managed service, in its parameter group) so that Redis closes idle connections."
            ))),
        }
    }
    match cfg.tcp_keepalive {
        Some(0.0) => steps.push(Step::set_param(
            "Detect dead peers (crashed pods, dropped NAT entries): tcp-keepalive is 0, so their connections stay forever",
            ctx.cli,
            Param::TcpKeepalive,
            60,
        )),
        Some(k) => steps.push(advice(format!(
            "tcp-keepalive is {k:.0} s: connections of dead peers are found and closed after about {k:.0} s plus the kernel's probes; connections of live clients that leak are not."
        ))),
        None => steps.push(advice(
            "Set `tcp-keepalive 60` (CONFIG GET is not available here: on a managed service, in its parameter group) so that connections of dead peers are closed.",
        )),
    }
    if cfg.timeout == Some(0.0) || cfg.tcp_keepalive == Some(0.0) {
        steps.push(advice(
            "Persist what you set: `CONFIG REWRITE`, or the same lines in redis.conf.",
        ));
    }
    steps
}

/// The `timeout` that holds against a leak at its own pace: the freed slots last
/// `freed / pace` seconds; half of that as the timeout (at most the usual proposal), so that Redis closes each connection
/// the leak grabs again (after `timeout` s idle, checked about once a second) well before the
/// free slots run out: the leak then holds about `pace × (timeout + 1)` connections. Below
/// [`MIN_HOLD_TIMEOUT`] no timeout can hold, and recycling the service is the only fix.
fn holding_timeout(ctx: &Ctx<'_>, h: &Hold<'_>) -> Vec<Step> {
    let lasts = h.freed / h.pace;
    // Never longer than the usual proposal: a slow leak needs no more than it.
    let t = (lasts / 2.0).floor().min(proposed_timeout(ctx) as f64);
    let pace = format!("{:.1}/s", h.pace);
    let freed = format!("{:.0}", h.freed);
    let lasts_text = super::span(lasts);
    if t < MIN_HOLD_TIMEOUT {
        return vec![advice(format!(
            "No timeout can hold: at the leak's pace ({pace}) it takes the {freed} slots that closing its connections frees back in about {lasts_text}, sooner than Redis can close idle connections. Recycling (restarting) the service behind {} is the only fix: its connections close with its processes.",
            h.who
        ))];
    }
    let held = h.pace * (t + 1.0);
    let why = format!(
        "Keep the headroom: closing the leak's connections frees about {freed} slots, which it takes back at its pace ({pace}) in about {lasts_text}; with timeout {t:.0} Redis closes each connection it grabs again after {t:.0} s idle, so it holds about {held:.0} of them and the rest of the headroom lasts until its service is fixed. Every client's connections idle longer than {t:.0} s are closed too (healthy pools reconnect; pub/sub and blocked clients are exempt)"
    );
    // i64 from a floored, positive, finite f64 (bounded by the slots of one server).
    let value = t.min(1e9) as i64;
    match ctx.obs.config.timeout {
        Some(x) if x > 0.0 && x <= t => vec![advice(format!(
            "timeout is {x:.0} s: Redis closes what the leak grabs again before the {freed} freed slots run out at its pace ({pace}, about {lasts_text})."
        ))],
        Some(_) => vec![Step::set_param(why, ctx.cli, Param::Timeout, value)],
        None => vec![advice(format!(
            "Set `timeout {value}` (CONFIG GET is not available here: on a managed service, in its parameter group). {why}."
        ))],
    }
}

/// Steps that raise maxclients to `wanted`, saying when `CONFIG SET maxclients` works: Redis
/// raises its own open-files limit to maxclients + 32 and refuses the change ("The operating
/// system is not able to handle the specified number of clients") when it cannot. A clamped
/// maxclients means it could not at start, so it cannot now either, until the limit of the
/// running process is raised.
pub(crate) fn raise_maxclients(ctx: &Ctx<'_>, wanted: f64, clamped: bool) -> Vec<Step> {
    let fds = wanted + 32.0;
    // `wanted` is whole (a ceiling or the default); `as` saturates, never wraps.
    let value = wanted.round() as i64;
    let set = |why: String| Step::set_param(why, ctx.cli, Param::Maxclients, value);
    let m = ctx.maxclients.unwrap_or(0.0);
    if clamped {
        vec![
            advice(format!(
                "CONFIG SET maxclients above {m:.0} fails now: Redis already runs at its open-files limit ({:.0}) and cannot raise it. Raise the limit to at least {fds:.0} first: systemd `LimitNOFILE={fds:.0}` in a drop-in for redis-server.service, `ulimit -n {fds:.0}` in its start script, or the container runtime's nofile ulimit; then restart Redis.",
                m + 32.0
            )),
            advice(format!(
                "Without a restart (Linux, as root): `prlimit --pid $(pidof redis-server) --nofile={fds:.0}:{fds:.0}` raises the running process's limit; the command below works after that."
            )),
            set(format!(
                "Then raise maxclients (fails until the open-files limit allows {fds:.0})"
            )),
            advice("Persist it: `maxclients` in redis.conf (or `CONFIG REWRITE`)."),
        ]
    } else {
        vec![
            set(format!("Raise maxclients to {wanted:.0}: works at runtime when redis-server may raise its open-files limit to {fds:.0} (its hard limit allows it); otherwise Redis refuses with \"The operating system is not able to handle the specified number of clients\" and changes nothing (then raise LimitNOFILE / ulimit -n and restart)")),
            advice("Persist it: `maxclients` in redis.conf (or `CONFIG REWRITE`)."),
        ]
    }
}

/// What a full server means for a finding's commands, said first: they open a new connection,
/// which Redis refuses while every slot is taken, so what works then is named. A relief action
/// (the exporter closing connections over the connection it already holds) can act on the
/// finding's [`Selector`].
pub(crate) fn full_server_step(f: &Finding) -> Step {
    let who = match (&f.selector, &f.culprit) {
        (Some(s), _) if s.key.is_empty() => Some(s.describe()),
        (Some(s), _) => Some(format!("{} {}", s.group, shell::quote(&s.key))),
        (None, Some(c)) => c
            .split_once(' ')
            .map(|(kind, key)| format!("{kind} {}", shell::quote(key))),
        (None, None) => None,
    };
    let recycle = match who {
        Some(w) => format!("recycle or restart the service behind {w}: its connections close with its processes"),
        None => "restart or scale in the client service that holds the most connections: its connections close with its processes".to_string(),
    };
    Step::notice(Notice::FullServer, format!(
        "{FULL_NOTICE} no new connection can be opened while every slot is taken, so none of the redis-cli commands below can run now (they fail with `ERR max number of clients reached`). What works while it is full: {recycle}. Where the exporter's relief action is enabled, it can close these connections over the connection the exporter already holds. Once slots are free, run the commands below to clear what is left."
    ))
}

/// What a finding about "one group holds the problem connections" says of that group: a title
/// naming it, the culprit, a step that closes its connections, then the advice.
pub(crate) struct Blame {
    pub title: String,
    pub culprit: Option<String>,
    pub remediation: Vec<Step>,
    pub selector: Option<Selector>,
}

pub(crate) fn blame(
    ctx: &Ctx<'_>,
    who: Option<(Dimension, &str, &crate::analysis::aggregate::GroupStats)>,
    only: Only,
    title: &str,
    kill_why: impl Fn(&str) -> String,
    fix: &str,
) -> Blame {
    let mut b = Blame {
        title: title.to_string(),
        culprit: None,
        remediation: Vec::new(),
        selector: None,
    };
    if let Some((kind, key, _)) = who {
        let s = Selector {
            group: kind,
            key: key.to_string(),
            only,
            idle_seconds: 0,
            sources: String::new(),
        };
        b.title = format!("{title}, most from {kind} {key}");
        b.culprit = Some(format!("{kind} {key}"));
        b.remediation.push(Step::close(
            kill_why(key),
            ctx.cli,
            s.clone(),
            CloseBy::Reselect,
        ));
        b.selector = Some(s);
    }
    b.remediation.push(advice(fix));
    b
}
