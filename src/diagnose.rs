//! The diagnosis: from one observation (INFO, CONFIG, the CLIENT LIST aggregates) and a short
//! history, names which of the known causes of connection exhaustion is happening, how sure it
//! is, the evidence in numbers, and the commands that restore service.
//!
//! Pure and cheap (it reads top-K aggregates, never the raw list), so the daemon runs it after
//! every poll and the one-shot `diagnose` command runs the same code. Every confidence is a
//! heuristic in [0, 1]; the thresholds live in [`Thresholds`] and each finding shows the numbers
//! it was computed from, so an SRE can check the reasoning instead of trusting it.

use serde::Serialize;

use crate::aggregate::{ClientListSummary, GroupStats, OTHER, UNNAMED};
use crate::client_list::ClientEntry;
use crate::config::{Endpoint, Target};
use crate::history::Sample;
use crate::info::Info;
use crate::poller::CLIENT_NAME;
use crate::shell;
use crate::state::ConfigValues;

/// The causes the diagnosis knows, as the `cause` label of `redis_client_diagnosis`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    ConnectionLeak,
    ScaleOut,
    MaxclientsTooLow,
    StalePubsub,
    ConnectionChurn,
    BlockedClients,
    OutputBufferHogs,
    RiskyConfig,
}

impl Cause {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ConnectionLeak => "connection_leak",
            Self::ScaleOut => "scale_out",
            Self::MaxclientsTooLow => "maxclients_too_low",
            Self::StalePubsub => "stale_pubsub",
            Self::ConnectionChurn => "connection_churn",
            Self::BlockedClients => "blocked_clients",
            Self::OutputBufferHogs => "output_buffer_hogs",
            Self::RiskyConfig => "risky_config",
        }
    }
}

/// Overall state of the target, worst first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// No poll has succeeded, or the last one failed.
    Unreachable,
    /// Connections at maxclients, or refusals seen.
    Full,
    Critical,
    Warning,
    Healthy,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unreachable => "unreachable",
            Self::Full => "full",
            Self::Critical => "critical",
            Self::Warning => "warning",
            Self::Healthy => "healthy",
        }
    }
}

/// The heuristics' knobs. Defaults follow the issue's wording (churn above 100/s, ...).
#[derive(Debug, Clone, Copy)]
pub struct Thresholds {
    pub warning_ratio: f64,
    pub critical_ratio: f64,
    /// New connections per second above which churn is a finding.
    pub churn_per_second: f64,
    /// Redis' default maxclients; a lower value is "set too low".
    pub default_maxclients: f64,
    /// Confidence from which a finding counts as a cause (below: a note).
    pub cause_confidence: f64,
    /// Confidence (after rounding to two decimals) below which a finding is not reported at
    /// all: a pattern this faint is noise, and its kill step would close innocent connections.
    pub min_confidence: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            warning_ratio: 0.8,
            critical_ratio: 0.9,
            churn_per_second: 100.0,
            default_maxclients: 10_000.0,
            cause_confidence: 0.5,
            min_confidence: 0.05,
        }
    }
}

/// Which connections a remediation acts on: the finding's culprit group plus a predicate.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Selector {
    /// `source_ip` or `client_name`.
    pub group: &'static str,
    pub key: String,
    /// `idle` (idle ≥ threshold, not pub/sub), `idle_pubsub`, `blocked` or `output_buffer`.
    pub only: &'static str,
    pub idle_seconds: u64,
}

impl Selector {
    /// True when a CLIENT LIST line is one of the connections this selector means.
    pub fn matches(&self, e: &ClientEntry<'_>) -> bool {
        let in_group = match self.group {
            "source_ip" => e.source_ip() == self.key,
            _ => e.name.filter(|n| !n.is_empty()).unwrap_or(UNNAMED) == self.key,
        };
        if !in_group || e.name == Some(CLIENT_NAME) {
            return false;
        }
        let pubsub = e.client_type() == crate::client_list::ClientType::Pubsub
            || e.sub.unwrap_or(0) + e.psub.unwrap_or(0) + e.ssub.unwrap_or(0) > 0;
        let idle = e.idle.is_some_and(|i| i >= self.idle_seconds);
        match self.only {
            "idle" => idle && !pubsub && !e.has_flag(b'b'),
            "idle_pubsub" => idle && pubsub,
            "blocked" => e.has_flag(b'b'),
            "output_buffer" => e.omem.unwrap_or(0) > 0,
            _ => false,
        }
    }

    /// The awk condition (over [`shell::reselect_and_kill`]'s `f` and `a`) that is
    /// [`matches`](Self::matches) for a live CLIENT LIST line; the key is read from
    /// `ENVIRON["K"]`, never written into the program.
    fn awk_condition(&self) -> String {
        let group = if self.group == "source_ip" {
            "(a \"\")==(ENVIRON[\"K\"] \"\")"
        } else {
            "(f[\"name\"] \"\")==(ENVIRON[\"K\"] \"\")"
        };
        let pubsub = "(f[\"flags\"]~/P/||f[\"sub\"]+f[\"psub\"]+f[\"ssub\"]>0)";
        // `+0`: substr() gives strings, and awk compares a string with a number as strings
        // ("9" >= "10").
        let idle = format!("f[\"idle\"]+0>={}", self.idle_seconds);
        let only = match self.only {
            "idle" => format!("{idle}&&!{pubsub}&&f[\"flags\"]!~/b/"),
            "idle_pubsub" => format!("{idle}&&{pubsub}"),
            "blocked" => "f[\"flags\"]~/b/".to_string(),
            "output_buffer" => "f[\"omem\"]+0>0".to_string(),
            _ => "0".to_string(),
        };
        // Our own name is a constant of safe characters: it can sit in the program.
        debug_assert!(CLIENT_NAME
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-'));
        format!("{group}&&f[\"name\"]!=\"{CLIENT_NAME}\"&&{only}")
    }

    /// A command that re-selects these connections from a live CLIENT LIST and kills them by
    /// id, on any server version (only newer servers filter by idle time). The key goes
    /// through the environment, shell-quoted; the pipeline exits 1 when Redis refuses it.
    pub fn pipeline(&self, cli: &str) -> String {
        shell::reselect_and_kill(cli, &[("K", &self.key)], &self.awk_condition())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evidence {
    pub what: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step {
    pub why: String,
    /// A command to run, or `None` for advice.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    pub cause: Cause,
    pub title: String,
    pub confidence: f64,
    /// `source_ip 10.0.0.5`, `client_name billing`, ...
    #[serde(skip_serializing_if = "Option::is_none")]
    pub culprit: Option<String>,
    pub summary: String,
    pub evidence: Vec<Evidence>,
    pub remediation: Vec<Step>,
    /// The connections a kill step acts on; the one-shot command lists their ids.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selector: Option<Selector>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ServerFacts {
    pub version: Option<String>,
    pub role: Option<String>,
    pub maxclients: Option<f64>,
    /// `config` or `info`.
    pub maxclients_source: Option<&'static str>,
    /// Everything Redis counts against maxclients (clients + replicas + cluster bus).
    pub limit_connections: Option<f64>,
    pub utilisation_ratio: Option<f64>,
    pub rejected_connections: Option<f64>,
    pub timeout: Option<f64>,
    pub tcp_keepalive: Option<f64>,
    pub new_connections_per_second: Option<f64>,
    pub client_list_connections: u64,
    pub distinct_sources: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub target: String,
    /// Unix time, seconds.
    pub generated_at: f64,
    pub status: Status,
    pub headline: String,
    pub server: ServerFacts,
    /// Ranked, most confident first. Those below the cause threshold are notes.
    pub findings: Vec<Finding>,
    pub history_samples: usize,
    pub history_window_seconds: f64,
    /// `redis-cli` with the connection arguments the commands below use (no password: set
    /// `REDISCLI_AUTH` in the shell).
    pub redis_cli: String,
}

impl Report {
    /// The finding an alert should carry: the most confident one at or above the threshold.
    pub fn top_cause(&self) -> Option<&Finding> {
        self.findings
            .first()
            .filter(|f| f.confidence >= Thresholds::default().cause_confidence)
    }

    /// A report for a target that could not be observed.
    pub fn unreachable(target: &str, now: f64, why: &str, redis_cli: &str) -> Report {
        let mut headline = format!("Cannot observe {target}: {why}");
        if why.contains("max number of clients") {
            headline.push_str(" No new connection, so no redis-cli command, can run while the server is full. What works: recycle or restart the client service that holds the most connections (its connections close with its processes), or, where the exporter's relief action is enabled, close connections over a connection that is already open.");
        }
        Report {
            target: target.to_string(),
            generated_at: now,
            status: Status::Unreachable,
            headline,
            server: ServerFacts::default(),
            findings: Vec::new(),
            history_samples: 0,
            history_window_seconds: 0.0,
            redis_cli: redis_cli.to_string(),
        }
    }
}

/// The `redis-cli` invocation that reaches a target, without any secret: the password is
/// expected in `REDISCLI_AUTH`.
pub fn redis_cli_for(t: &Target) -> String {
    use std::os::unix::ffi::OsStrExt;
    // A dynamic target's host and user come from a URL anyone may send: quoted like the rest.
    let mut cli = match &t.endpoint {
        Endpoint::Tcp { host, port } => format!("redis-cli -h {} -p {port}", shell::quote(host)),
        Endpoint::Unix(path) => {
            format!("redis-cli -s {}", shell::quote(path.as_os_str().as_bytes()))
        }
    };
    if t.tls.is_some() {
        cli.push_str(" --tls");
    }
    if let Some(u) = &t.username {
        cli.push_str(&format!(" --user {}", shell::quote(u)));
    }
    if let Some(db) = t.db.filter(|&d| d != 0) {
        cli.push_str(&format!(" -n {db}"));
    }
    cli
}

/// What one poll observed.
pub struct Observation<'a> {
    pub info: &'a Info,
    pub config: &'a ConfigValues,
    pub clients: &'a ClientListSummary,
    pub idle_threshold_seconds: u64,
}

fn ev(what: impl Into<String>, value: impl ToString) -> Evidence {
    Evidence {
        what: what.into(),
        value: value.to_string(),
    }
}

fn advice(why: impl Into<String>) -> Step {
    Step {
        why: why.into(),
        command: None,
    }
}

fn run(why: impl Into<String>, command: impl Into<String>) -> Step {
    Step {
        why: why.into(),
        command: Some(command.into()),
    }
}

fn pct(x: f64) -> String {
    format!("{:.0}%", x * 100.0)
}

/// `major.minor.patch` of a version string; missing parts are 0.
fn version(v: Option<&str>) -> (u32, u32, u32) {
    let mut it = v
        .unwrap_or("0")
        .split('.')
        .map(|p| p.trim().parse::<u32>().unwrap_or(0));
    (
        it.next().unwrap_or(0),
        it.next().unwrap_or(0),
        it.next().unwrap_or(0),
    )
}

/// The largest group by `score` over sources and names (sources win ties: an IP is the more
/// actionable culprit); our own connection's name and the `other` bucket never are culprits.
fn culprit<'a>(
    c: &'a ClientListSummary,
    score: impl Fn(&GroupStats) -> u64,
) -> Option<(&'static str, &'a str, &'a GroupStats)> {
    let best = |groups: &'a [(String, GroupStats)], kind: &'static str| {
        groups
            .iter()
            .filter(|(k, _)| k != OTHER && k != CLIENT_NAME && k != UNNAMED)
            .max_by_key(|(_, v)| score(v))
            .map(|(k, v)| (kind, k.as_str(), v))
    };
    let s = best(&c.by_source, "source_ip");
    let n = best(&c.by_name, "client_name");
    match (s, n) {
        (Some(s), Some(n)) if score(n.2) > score(s.2) => Some(n),
        (Some(s), _) => Some(s),
        (None, n) => n,
    }
    .filter(|(_, _, v)| score(v) > 0)
}

/// The one group of the other dimension that holds most of a culprit's connections: for a
/// source, the dominant client name, and the other way round.
fn companion(c: &ClientListSummary, kind: &str, score: impl Fn(&GroupStats) -> u64) -> String {
    let groups = if kind == "source_ip" {
        &c.by_name
    } else {
        &c.by_source
    };
    groups
        .iter()
        .filter(|(k, _)| k != OTHER && k != CLIENT_NAME)
        .max_by_key(|(_, v)| score(v))
        .filter(|(_, v)| score(v) > 0)
        .map(|(k, v)| format!("{k} ({})", score(v)))
        .unwrap_or_else(|| "-".to_string())
}

struct Ctx<'a> {
    obs: &'a Observation<'a>,
    history: &'a [Sample],
    th: Thresholds,
    cli: &'a str,
    total: f64,
    maxclients: Option<f64>,
    utilisation: Option<f64>,
    version: (u32, u32, u32),
    valkey: Option<(u32, u32, u32)>,
}

impl Ctx<'_> {
    fn pressure(&self) -> f64 {
        self.utilisation.unwrap_or(0.0).clamp(0.0, 1.0)
    }

    /// The oldest sample of the window, when there is history besides the current poll.
    fn baseline(&self) -> Option<&Sample> {
        (self.history.len() >= 2).then(|| &self.history[0])
    }

    fn rate(&self, f: impl Fn(&Sample) -> Option<f64>) -> Option<f64> {
        let n = self.history.len();
        if n < 2 {
            return None;
        }
        let (a, b) = (&self.history[n - 2], &self.history[n - 1]);
        let dt = b.at - a.at;
        let dv = f(b)? - f(a)?;
        (dt > 0.0 && dv >= 0.0).then(|| dv / dt)
    }

    /// Remediation steps that kill a selector's connections, by the filters the server has.
    fn kill_steps(&self, sel: &Selector, what: &str) -> Vec<Step> {
        let mut steps = Vec::new();
        // Valkey 9 filters by IP, NAME and IDLE itself; older servers and Redis need ids.
        if self.valkey.is_some_and(|v| v.0 >= 9) && sel.only == "idle" {
            let filter = if sel.group == "source_ip" {
                "IP"
            } else {
                "NAME"
            };
            steps.push(run(
                format!("Close {what} now (server-side filter)"),
                shell::checked(&format!(
                    "{} CLIENT KILL {filter} {} IDLE {} TYPE normal SKIPME yes",
                    self.cli,
                    shell::quote(&sel.key),
                    sel.idle_seconds
                )),
            ));
        } else {
            steps.push(run(
                format!(
                    "Close {what} now (Redis {}.{} has no idle filter for CLIENT KILL, so by id)",
                    self.version.0, self.version.1
                ),
                sel.pipeline(self.cli),
            ));
        }
        steps
    }
}

/// Runs every detector and ranks the findings.
pub fn diagnose(
    target: &str,
    obs: &Observation<'_>,
    history: &[Sample],
    now: f64,
    redis_cli: &str,
) -> Report {
    let th = Thresholds::default();
    let (maxclients, source) = match (obs.config.maxclients, obs.info.maxclients) {
        (Some(m), _) => (Some(m), Some("config")),
        (None, Some(m)) => (Some(m), Some("info")),
        _ => (None, None),
    };
    let limit = obs.info.limit_connections();
    let utilisation = match (limit, maxclients) {
        (Some(l), Some(m)) if m > 0.0 => Some(l / m),
        _ => None,
    };
    let valkey = obs.info.valkey_version.as_deref().map(|v| version(Some(v)));
    let ctx = Ctx {
        obs,
        history,
        th,
        cli: redis_cli,
        total: obs.clients.connections as f64,
        maxclients,
        utilisation,
        version: version(obs.info.redis_version.as_deref()),
        valkey,
    };
    let mut findings: Vec<Finding> = [
        leak(&ctx),
        scale_out(&ctx),
        maxclients_too_low(&ctx),
        stale_pubsub(&ctx),
        churn(&ctx),
        blocked(&ctx),
        output_buffers(&ctx),
        risky_config(&ctx),
    ]
    .into_iter()
    .flatten()
    .map(|mut f| {
        f.confidence = (f.confidence.clamp(0.0, 1.0) * 100.0).round() / 100.0;
        f
    })
    // Filtered after rounding: a finding shown as 0.00 must not come with kill commands.
    .filter(|f| f.confidence >= th.min_confidence)
    .collect();
    findings.sort_by(|a, b| b.confidence.total_cmp(&a.confidence));

    let rejected_recently = ctx
        .baseline()
        .and_then(|b| Some(obs.info.rejected_connections? - b.rejected_connections?))
        .is_some_and(|d| d > 0.0);
    let full = matches!((limit, maxclients), (Some(l), Some(m)) if l >= m) || rejected_recently;
    let u = utilisation.unwrap_or(0.0);
    let causes = findings
        .iter()
        .filter(|f| f.confidence >= th.cause_confidence)
        .count();
    let status = if full {
        Status::Full
    } else if u >= th.critical_ratio {
        Status::Critical
    } else if u >= th.warning_ratio || causes > 0 {
        Status::Warning
    } else {
        Status::Healthy
    };
    let slots = match (limit, maxclients) {
        (Some(l), Some(m)) => format!("{l:.0} of {m:.0} connection slots in use ({})", pct(u)),
        (Some(l), None) => format!("{l:.0} connections, maxclients unknown"),
        _ => "connection count unknown".to_string(),
    };
    if status == Status::Full {
        for f in &mut findings {
            if f.remediation.iter().any(|s| s.command.is_some()) {
                let step = full_server_step(f);
                f.remediation.insert(0, step);
            }
        }
    }
    let mut headline = match findings
        .first()
        .filter(|f| f.confidence >= th.cause_confidence)
    {
        Some(f) => format!(
            "{}: {}. Most likely cause: {} (confidence {:.2}).",
            status.as_str().to_uppercase(),
            slots,
            f.title,
            f.confidence
        ),
        None if status == Status::Healthy => {
            format!("HEALTHY: {slots}. No cause of connection exhaustion found.")
        }
        None => format!(
            "{}: {slots}. No single cause stands out; see the notes.",
            status.as_str().to_uppercase()
        ),
    };
    if status == Status::Full {
        headline.push_str(" New connections are refused, so the printed commands cannot run until a slot frees: see each fix's first step.");
    }
    let window = match (history.first(), history.last()) {
        (Some(a), Some(b)) => b.at - a.at,
        _ => 0.0,
    };
    Report {
        target: target.to_string(),
        generated_at: now,
        status,
        headline,
        server: ServerFacts {
            version: obs.info.redis_version.clone(),
            role: obs.info.role.clone(),
            maxclients,
            maxclients_source: source,
            limit_connections: limit,
            utilisation_ratio: utilisation,
            rejected_connections: obs.info.rejected_connections,
            timeout: obs.config.timeout,
            tcp_keepalive: obs.config.tcp_keepalive,
            new_connections_per_second: ctx.rate(|s| s.total_connections_received),
            client_list_connections: obs.clients.connections,
            distinct_sources: obs.clients.distinct_sources,
        },
        findings,
        history_samples: history.len(),
        history_window_seconds: window,
        redis_cli: redis_cli.to_string(),
    }
}

/// How every "server is full" step begins; the one-shot command puts its by-id step after it.
pub const FULL_NOTICE: &str = "The server is full:";

/// What a full server means for a finding's commands, said first: they open a new connection,
/// which Redis refuses while every slot is taken, so what works then is named.
fn full_server_step(f: &Finding) -> Step {
    let who = match (&f.selector, &f.culprit) {
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
    advice(format!(
        "{FULL_NOTICE} no new connection can be opened while every slot is taken, so none of the redis-cli commands below can run now (they fail with `ERR max number of clients reached`). What works while it is full: {recycle}. Where the exporter's relief action is enabled, it can close connections over the connection the exporter already holds. Once slots are free, run the commands below to clear what is left."
    ))
}

fn leak(ctx: &Ctx<'_>) -> Option<Finding> {
    let c = ctx.obs.clients;
    let (kind, key, g) = culprit(c, GroupStats::idle_unused)?;
    let idle = g.idle_unused() as f64;
    let share_of_group = idle / g.connections.max(1) as f64;
    let share_of_all = idle / ctx.total.max(1.0);
    let mut conf = share_of_group * (share_of_all / 0.3).min(1.0) * (idle / 20.0).min(1.0);
    let by_name = kind == "client_name";
    let growth = ctx.baseline().map(|b| {
        let then = b.count_of(key, by_name);
        (g.connections as f64 - then as f64, b.at)
    });
    match growth {
        Some((d, _)) if d > 0.0 && d >= 0.1 * g.connections as f64 => conf = conf * 0.8 + 0.2,
        Some(_) => conf *= 0.9,
        // One snapshot cannot show growth: be less sure.
        None => conf *= 0.85,
    }
    let t = ctx.obs.idle_threshold_seconds;
    let mut evidence = vec![
        ev(format!("{kind} {key}: connections"), g.connections),
        ev(
            format!("of them idle ≥ {t} s (not pub/sub, not blocked)"),
            format!("{idle:.0} ({})", pct(share_of_group)),
        ),
        ev("share of all connections", pct(share_of_all)),
        ev("oldest idle", format!("{} s", g.oldest_idle_seconds)),
        ev("never ran a command (cmd=NULL)", g.no_command),
        ev(
            if by_name {
                "dominant source IP"
            } else {
                "dominant client name"
            },
            companion(c, kind, GroupStats::idle_unused),
        ),
    ];
    if let Some((d, at)) = growth {
        evidence.push(ev(
            format!("growth since {:.0} s ago", ctx.obs_now() - at),
            format!("{d:+.0}"),
        ));
    }
    let sel = Selector {
        group: kind,
        key: key.to_string(),
        only: "idle",
        idle_seconds: t,
    };
    let mut remediation = ctx.kill_steps(&sel, &format!("the idle connections of {key}"));
    remediation.push(advice(format!(
        "Fix the service behind {kind} {key}: return connections to its pool, and give the pool a maximum size and an idle timeout (e.g. minIdle 0, idle eviction below {t} s)."
    )));
    if ctx.obs.config.timeout == Some(0.0) {
        remediation.push(run(
            "Let Redis close connections idle longer than 5 minutes (timeout is 0: never)",
            format!("{} CONFIG SET timeout 300", ctx.cli),
        ));
    }
    Some(Finding {
        cause: Cause::ConnectionLeak,
        title: format!("connection leak from {kind} {key}"),
        confidence: conf,
        culprit: Some(format!("{kind} {key}")),
        summary: format!(
            "{idle:.0} of the {} connections from {kind} {key} are idle ≥ {t} s ({} of all connections); a pool that never returns or closes connections looks like this.",
            g.connections,
            pct(share_of_all)
        ),
        evidence,
        remediation,
        selector: Some(sel),
    })
}

impl Ctx<'_> {
    fn obs_now(&self) -> f64 {
        self.history.last().map_or(0.0, |s| s.at)
    }
}

fn scale_out(ctx: &Ctx<'_>) -> Option<Finding> {
    let c = ctx.obs.clients;
    let n = c.distinct_sources as f64;
    if n < 2.0 {
        return None;
    }
    let clients = (c.by_type[0] + c.by_type[1]) as f64;
    let pool = clients / n;
    let counts: Vec<f64> = c
        .by_source
        .iter()
        .filter(|(k, _)| k != OTHER)
        .map(|(_, v)| v.connections as f64)
        .collect();
    // Similar pools: the share of the named top sources within ±50% of the median pool, so
    // that one outlier (a leaking source beside the fleet) does not hide the fleet's shape.
    let mut sorted = counts.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted.get(sorted.len() / 2).copied().unwrap_or(0.0);
    let similar = counts
        .iter()
        .filter(|&&x| x >= 0.5 * median && x <= 1.5 * median)
        .count();
    let evenness = similar as f64 / counts.len().max(1) as f64;
    let idle_share = c.idle_by_type[0] as f64 / (c.by_type[0].max(1)) as f64;
    let active = 1.0 - 0.6 * idle_share;
    let jump = ctx.baseline().map(|b| (n - b.distinct_sources as f64, b));
    let mut conf = match jump {
        Some((d, b)) if d >= 3.0 && d >= 0.3 * b.distinct_sources as f64 => {
            let rel = d / (b.distinct_sources as f64).max(1.0);
            0.6 + 0.3 * rel.min(1.0)
        }
        // No jump seen: many similar pools only matter when they fill the server.
        _ if n >= 10.0 => 0.45 * ctx.pressure(),
        _ => 0.0,
    };
    conf *= (0.5 + 0.5 * evenness) * active;
    if conf <= 0.0 {
        return None;
    }
    let mut evidence = vec![
        ev("distinct source IPs now", n),
        ev(
            "sources × connections per source",
            format!("{n:.0} × {pool:.1} = {clients:.0}"),
        ),
        ev(
            "top sources with a pool within ±50% of the median",
            format!("{similar} of {} (median {median:.0})", counts.len()),
        ),
        ev("idle share of normal connections", pct(idle_share)),
    ];
    if let Some((d, b)) = jump {
        evidence.push(ev(
            format!("distinct sources {:.0} s ago", ctx.obs_now() - b.at),
            format!("{} ({d:+.0})", b.distinct_sources),
        ));
    }
    let mut remediation = Vec::new();
    if let Some(m) = ctx.maxclients {
        let fit = (0.8 * m / n).floor();
        evidence.push(ev(
            "pool size per source that fits 80% of maxclients",
            format!("{fit:.0} (80% of {m:.0} / {n:.0} sources)"),
        ));
        remediation.push(advice(format!(
            "Cap each instance's pool at {fit:.0} connections (now ~{pool:.0}): {n:.0} instances × {fit:.0} = {:.0} ≤ 80% of maxclients {m:.0}; or scale the service back in.",
            n * fit
        )));
        let wanted = (clients * 1.5).max(m).ceil();
        remediation.push(run(
            format!(
                "Or give Redis room for the larger fleet (needs an fd limit of at least {:.0})",
                wanted + 32.0
            ),
            format!("{} CONFIG SET maxclients {wanted:.0}", ctx.cli),
        ));
    }
    remediation.push(advice(
        "For fleets that keep growing, put a connection-multiplexing proxy (Envoy redis_proxy, twemproxy) between the pods and Redis.",
    ));
    Some(Finding {
        cause: Cause::ScaleOut,
        title: "scale-out: more client instances, each with its own pool".to_string(),
        confidence: conf,
        culprit: None,
        summary: format!(
            "{n:.0} source IPs hold ~{pool:.1} connections each ({clients:.0} in all); the connection count follows the number of instances times the pool size."
        ),
        evidence,
        remediation,
        selector: None,
    })
}

fn maxclients_too_low(ctx: &Ctx<'_>) -> Option<Finding> {
    let m = ctx.maxclients?;
    let clamped = crate::info::looks_fd_clamped(m);
    let low = m < ctx.th.default_maxclients;
    if !clamped && !low {
        return None;
    }
    let p = ctx.pressure();
    let conf = if clamped && low {
        0.55 + 0.4 * p
    } else if clamped {
        0.3 + 0.4 * p
    } else {
        0.15 + 0.5 * p
    };
    let wanted = ctx
        .th
        .default_maxclients
        .max((ctx.obs.info.limit_connections().unwrap_or(0.0) * 2.0).ceil());
    let fds = wanted + 32.0;
    let mut evidence = vec![
        ev("maxclients", format!("{m:.0}")),
        ev("utilisation", ctx.utilisation.map_or("unknown".into(), pct)),
    ];
    let title;
    let summary;
    if clamped {
        evidence.push(ev(
            "maxclients + 32",
            format!("{:.0}: a typical open-files limit (ulimit -n)", m + 32.0),
        ));
        title = format!("maxclients clamped to {m:.0} by the open-files limit");
        summary = format!(
            "maxclients is {m:.0} = {:.0} − 32: Redis lowers maxclients to the open-files limit minus 32 when the limit is too low, and says so only in its log.",
            m + 32.0
        );
    } else {
        evidence.push(ev(
            "Redis default",
            format!("{:.0}", ctx.th.default_maxclients),
        ));
        title = format!("maxclients set low ({m:.0})");
        summary = format!(
            "maxclients is {m:.0}, below Redis' default of {:.0}.",
            ctx.th.default_maxclients
        );
    }
    let remediation = vec![
        advice(format!(
            "Raise the open-files limit of redis-server to at least {fds:.0}: systemd `LimitNOFILE={fds:.0}` in a drop-in for redis-server.service, or `ulimit -n {fds:.0}` in its start script, or the container runtime's nofile ulimit; then restart Redis."
        )),
        run(
            format!("Then raise maxclients (works at runtime once the fd limit allows {fds:.0})"),
            format!("{} CONFIG SET maxclients {wanted:.0}", ctx.cli),
        ),
        advice("Persist it: `maxclients` in redis.conf (or `CONFIG REWRITE`)."),
    ];
    Some(Finding {
        cause: Cause::MaxclientsTooLow,
        title,
        confidence: conf,
        culprit: None,
        summary,
        evidence,
        remediation,
        selector: None,
    })
}

fn stale_pubsub(ctx: &Ctx<'_>) -> Option<Finding> {
    let c = ctx.obs.clients;
    let (kind, key, g) = culprit(c, |g| g.idle_pubsub)?;
    let stale = g.idle_pubsub as f64;
    let share = stale / g.pubsub.max(1) as f64;
    let all = stale / ctx.total.max(1.0);
    let conf = share * (all / 0.2).min(1.0) * (stale / 10.0).min(1.0);
    let t = ctx.obs.idle_threshold_seconds;
    let sel = Selector {
        group: kind,
        key: key.to_string(),
        only: "idle_pubsub",
        idle_seconds: t,
    };
    let mut remediation = ctx.kill_steps(&sel, &format!("the stale subscribers of {key}"));
    remediation.push(advice(format!(
        "Fix the subscriber behind {kind} {key}: one shared subscriber connection per process, UNSUBSCRIBE and close on shutdown. Redis' `timeout` does not close pub/sub connections."
    )));
    Some(Finding {
        cause: Cause::StalePubsub,
        title: format!("stale pub/sub subscribers from {kind} {key}"),
        confidence: conf,
        culprit: Some(format!("{kind} {key}")),
        summary: format!(
            "{stale:.0} pub/sub connections from {kind} {key} have received nothing for ≥ {t} s ({} of all connections).",
            pct(all)
        ),
        evidence: vec![
            ev(format!("{kind} {key}: pub/sub connections"), g.pubsub),
            ev(format!("of them idle ≥ {t} s"), format!("{stale:.0} ({})", pct(share))),
            ev("subscriptions they hold", g.subscriptions),
            ev("oldest idle", format!("{} s", g.oldest_idle_seconds)),
            ev(
                "pub/sub connections on the server",
                c.by_type[crate::client_list::ClientType::Pubsub as usize],
            ),
        ],
        remediation,
        selector: Some(sel),
    })
}

fn churn(ctx: &Ctx<'_>) -> Option<Finding> {
    let opened = ctx.rate(|s| s.total_connections_received)?;
    // Churn is connections that open and close again: a scale-out also opens many, but they
    // stay, so the growth of the connection count is not churn.
    let grew = ctx.rate(|s| s.limit_connections).unwrap_or(0.0);
    let rate = (opened - grew).max(0.0);
    let limit = ctx.th.churn_per_second;
    let conf = if rate >= limit {
        0.6 + 0.4 * ((rate - limit) / (4.0 * limit)).min(1.0)
    } else if rate >= limit / 2.0 {
        0.3
    } else {
        return None;
    };
    let c = ctx.obs.clients;
    let who = culprit(c, |g| g.young);
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
                crate::aggregate::YOUNG_SECONDS
            ),
            young,
        ),
    ];
    if let Some((kind, key, g)) = who {
        evidence.push(ev(format!("youngest group: {kind} {key}"), g.young));
    }
    Some(Finding {
        cause: Cause::ConnectionChurn,
        title: match who {
            Some((kind, key, _)) => format!("connection churn (no pooling), most from {kind} {key}"),
            None => "connection churn (no pooling)".to_string(),
        },
        confidence: conf,
        culprit: who.map(|(k, v, _)| format!("{k} {v}")),
        summary: format!(
            "Redis accepts {opened:.0} new connections per second and {rate:.0} of them close again: clients connect per request instead of keeping pooled connections; each costs a TCP and often a TLS/AUTH handshake, and bursts can hit maxclients."
        ),
        evidence,
        remediation: vec![advice(
            "Use a connection pool (or one multiplexed connection) in the service that connects per request, and keep connections open between requests.",
        )],
        selector: None,
    })
}

/// What a finding about "one group holds the problem connections" says of that group: a title
/// naming it, the culprit, a step that closes its connections, then the advice.
struct Blame {
    title: String,
    culprit: Option<String>,
    remediation: Vec<Step>,
    selector: Option<Selector>,
}

fn blame(
    ctx: &Ctx<'_>,
    who: Option<(&'static str, &str, &GroupStats)>,
    only: &'static str,
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
        };
        b.title = format!("{title}, most from {kind} {key}");
        b.culprit = Some(format!("{kind} {key}"));
        b.remediation.push(run(kill_why(key), s.pipeline(ctx.cli)));
        b.selector = Some(s);
    }
    b.remediation.push(advice(fix));
    b
}

fn blocked(ctx: &Ctx<'_>) -> Option<Finding> {
    let c = ctx.obs.clients;
    let from_list = c.by_flag[0] as f64;
    let n = ctx.obs.info.blocked_clients.unwrap_or(0.0).max(from_list);
    if n < 5.0 {
        return None;
    }
    let conf = 0.9 * (n / (0.2 * ctx.total).max(20.0)).min(1.0);
    let who = culprit(c, |g| g.blocked);
    let b = blame(
        ctx,
        who,
        "blocked",
        "blocked clients piling up",
        |key| format!("Unblock or close the blocked connections of {key}"),
        "Give blocking commands a timeout (BLPOP key 5, not 0) and size the pool for them separately: every blocked call holds a connection.",
    );
    Some(Finding {
        cause: Cause::BlockedClients,
        title: b.title,
        confidence: conf,
        culprit: b.culprit,
        summary: format!(
            "{n:.0} connections wait in blocking commands (BLPOP, BRPOP, XREAD BLOCK, WAIT...) and hold their slots meanwhile."
        ),
        evidence: vec![
            ev("blocked_clients (INFO)", ctx.obs.info.blocked_clients.map_or("-".into(), |b| format!("{b:.0}"))),
            ev("connections with flag b", from_list),
            ev(
                "most blocked group",
                who.map_or("-".into(), |(k, v, g)| format!("{k} {v} ({})", g.blocked)),
            ),
        ],
        remediation: b.remediation,
        selector: b.selector,
    })
}

fn output_buffers(ctx: &Ctx<'_>) -> Option<Finding> {
    const MIB: f64 = 1024.0 * 1024.0;
    let c = ctx.obs.clients;
    let total = c.output_buffer_bytes as f64;
    if total < 8.0 * MIB {
        return None;
    }
    let conf = 0.4 + 0.5 * (total / (128.0 * MIB)).min(1.0);
    let who = culprit(c, |g| g.output_bytes);
    let b = blame(
        ctx,
        who,
        "output_buffer",
        "output-buffer hogs",
        |key| format!("Close the connections of {key} with pending output"),
        "The client reads slower than Redis answers (or not at all): fix the reader, and bound it with client-output-buffer-limit (normal / pubsub classes).",
    );
    Some(Finding {
        cause: Cause::OutputBufferHogs,
        title: b.title,
        confidence: conf,
        culprit: b.culprit,
        summary: format!(
            "Clients hold {:.1} MiB of unread replies in Redis' output buffers.",
            total / MIB
        ),
        evidence: vec![
            ev(
                "output buffers, all clients",
                format!("{:.1} MiB", total / MIB),
            ),
            ev(
                "largest group",
                who.map_or("-".into(), |(k, v, g)| {
                    format!(
                        "{k} {v}: {:.1} MiB, largest single {:.1} MiB",
                        g.output_bytes as f64 / MIB,
                        g.max_output_bytes as f64 / MIB
                    )
                }),
            ),
        ],
        remediation: b.remediation,
        selector: b.selector,
    })
}

fn risky_config(ctx: &Ctx<'_>) -> Option<Finding> {
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
        remediation.push(run(
            "Close connections idle for 5 minutes (pub/sub and blocked clients are exempt)",
            format!("{} CONFIG SET timeout 300", ctx.cli),
        ));
    }
    if no_keepalive {
        evidence.push(ev(
            "tcp-keepalive",
            "0 (connections of dead peers stay until a write fails)",
        ));
        remediation.push(run(
            "Detect dead peers (crashed pods, dropped NAT entries)",
            format!("{} CONFIG SET tcp-keepalive 60", ctx.cli),
        ));
    }
    // A risk, not a cause: it turns a leak into an outage. Rank it above noise only when
    // idle connections are already a large share.
    let idle_share = ctx.obs.clients.idle_by_type[0] as f64 / ctx.total.max(1.0);
    let conf = 0.1 + 0.1 * f64::from(u8::from(no_keepalive)) + 0.2 * idle_share;
    Some(Finding {
        cause: Cause::RiskyConfig,
        title: "risky configuration: leaked connections never heal".to_string(),
        confidence: conf,
        culprit: None,
        summary: match (no_timeout, no_keepalive) {
            (true, true) => "timeout 0: Redis never closes an idle connection; tcp-keepalive 0: a dead peer's connection is never noticed. Any leak accumulates until maxclients.",
            (true, false) => "timeout 0: Redis never closes an idle connection, so any leak accumulates until maxclients.",
            _ => "tcp-keepalive 0: the connections of crashed or unreachable clients are never noticed and hold their slots.",
        }
        .to_string(),
        evidence,
        remediation,
        selector: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::Aggregator;

    fn line(
        id: u32,
        ip: &str,
        name: &str,
        age: u64,
        idle: u64,
        flags: &str,
        extra: &str,
    ) -> String {
        format!("id={id} addr={ip}:{} fd=8 name={name} age={age} idle={idle} flags={flags} db=0 omem=0 tot-mem=1000 cmd=get user=default {extra}\n", 40000 + id)
    }

    fn report(reply: &str, info: &str, config: ConfigValues, history: &[Sample]) -> Report {
        let clients = Aggregator::new(60).summarize(reply, 20);
        let info = Info::parse(info);
        let obs = Observation {
            info: &info,
            config: &config,
            clients: &clients,
            idle_threshold_seconds: 60,
        };
        diagnose("t", &obs, history, 1000.0, "redis-cli -p 1")
    }

    fn cfg(maxclients: f64) -> ConfigValues {
        ConfigValues {
            available: true,
            maxclients: Some(maxclients),
            timeout: Some(300.0),
            tcp_keepalive: Some(300.0),
        }
    }

    #[test]
    fn leak_names_the_idle_source() {
        let mut r = String::new();
        for i in 0..150 {
            r += &line(i, "10.0.0.9", "", 900, 800, "N", "");
        }
        for i in 150..170 {
            r += &line(i, "10.0.0.1", "api", 900, 0, "N", "");
        }
        let rep = report(
            &r,
            "redis_version:7.0.15\nconnected_clients:170\n",
            cfg(200.0),
            &[],
        );
        assert_eq!(rep.findings[0].cause, Cause::ConnectionLeak);
        assert_eq!(
            rep.findings[0].culprit.as_deref(),
            Some("source_ip 10.0.0.9")
        );
        assert!(rep.findings[0].confidence >= 0.5, "{:?}", rep.findings[0]);
        assert_eq!(rep.status, Status::Warning);
        let kill = rep.findings[0].remediation[0]
            .command
            .clone()
            .unwrap_or_default();
        assert!(
            kill.contains("K=10.0.0.9 awk") && kill.contains("CLIENT KILL ID"),
            "{kill}"
        );
    }

    #[test]
    fn healthy_server_has_no_cause() {
        let mut r = String::new();
        for i in 0..20 {
            r += &line(i, &format!("10.0.0.{}", i % 3), "api", 900, 0, "N", "");
        }
        let rep = report(
            &r,
            "redis_version:7.0.15\nconnected_clients:20\n",
            cfg(10000.0),
            &[],
        );
        assert_eq!(rep.status, Status::Healthy, "{rep:#?}");
        assert!(rep.top_cause().is_none());
        assert!(rep.headline.starts_with("HEALTHY"));
    }

    #[test]
    fn selector_matches_only_its_connections() {
        let s = Selector {
            group: "source_ip",
            key: "10.0.0.9".into(),
            only: "idle",
            idle_seconds: 60,
        };
        let yes = line(1, "10.0.0.9", "", 900, 800, "N", "");
        let busy = line(2, "10.0.0.9", "", 900, 1, "N", "");
        let other = line(3, "10.0.0.90", "", 900, 800, "N", "");
        let sub = line(4, "10.0.0.9", "", 900, 800, "P", "sub=1");
        let hit = |l: &str| ClientEntry::parse(l.trim_end()).is_ok_and(|e| s.matches(&e));
        assert!(hit(&yes));
        assert!(!hit(&busy) && !hit(&other) && !hit(&sub));
    }

    #[test]
    fn unreachable_because_full_says_what_works() {
        let why = "Redis is full: it refused the exporter's connection (ERR max number of clients reached).";
        let r = Report::unreachable("t", 0.0, why, "redis-cli");
        assert!(r
            .headline
            .contains("No new connection, so no redis-cli command, can run"));
        assert!(r.headline.contains("relief action"));
        let r = Report::unreachable("t", 0.0, "io error: refused", "redis-cli");
        assert!(!r.headline.contains("No new connection"));
    }

    /// The ids awk selects from `reply` with a selector's program, as the printed pipeline does.
    fn awk_selects(s: &Selector, reply: &str) -> Vec<u64> {
        use std::io::Write;
        let mut child = std::process::Command::new("awk")
            .arg(shell::select_program(&s.awk_condition()))
            .env("K", &s.key)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("awk");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(reply.as_bytes())
            .expect("write");
        let out = child.wait_with_output().expect("awk output");
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| {
                l.strip_prefix("CLIENT KILL ID ")
                    .and_then(|id| id.parse().ok())
                    .expect("a CLIENT KILL ID line")
            })
            .collect()
    }

    #[test]
    fn the_printed_selection_is_the_selector() {
        // Traps: numeric-looking names (awk would compare "0123" and "123" as numbers), idle 9
        // against 10 (as strings "9" >= "10"), a name holding '=', another field holding the
        // name, IPv6, unix sockets, our own connection, pub/sub and blocked ones. (A repeated
        // `name=` field, which Redis cannot print, is left out: awk keeps the first, so a later
        // field cannot shadow the real name; the Rust parser keeps the last.)
        let mut r = String::new();
        r += &line(1, "10.0.0.9", "0123", 900, 800, "N", "");
        r += &line(2, "10.0.0.9", "123", 900, 800, "N", "");
        r += &line(3, "10.0.0.9", "0123", 900, 9, "N", "");
        r += &line(4, "10.0.0.9", "a=b", 900, 800, "N", "");
        r += &line(5, "10.0.0.90", "0123", 900, 800, "N", "");
        r += &line(6, "10.0.0.9", "x", 900, 800, "N", "lib-name=0123");
        r += &line(7, "10.0.0.9", CLIENT_NAME, 900, 800, "N", "");
        r += &line(8, "10.0.0.9", "0123", 900, 800, "P", "sub=1");
        r += &line(9, "10.0.0.9", "0123", 900, 800, "b", "");
        r += &line(10, "10.0.0.9", "0123", 900, 800, "N", "").replace("omem=0", "omem=5");
        r += "id=11 addr=[::1]:5000 fd=8 name=v6 age=9 idle=99 flags=N db=0 omem=0 cmd=get\n";
        r += "id=12 addr=/tmp/r.sock:0 fd=8 name=sock age=9 idle=99 flags=U db=0 omem=0 cmd=get\n";
        r += "id=13 addr=::1:5001 fd=8 name=old6 age=9 idle=99 flags=N db=0 omem=0 cmd=get\n";
        let rust = |s: &Selector| -> Vec<u64> {
            r.lines()
                .filter_map(|l| ClientEntry::parse(l).ok())
                .filter(|e| s.matches(e))
                .filter_map(|e| e.id)
                .collect()
        };
        let mut selected = 0;
        for (group, key) in [
            ("client_name", "0123"),
            ("client_name", "a=b"),
            ("source_ip", "10.0.0.9"),
            ("source_ip", "::1"),
            ("source_ip", "unix"),
        ] {
            for only in ["idle", "idle_pubsub", "blocked", "output_buffer"] {
                let s = Selector {
                    group,
                    key: key.into(),
                    only,
                    idle_seconds: 10,
                };
                let want = rust(&s);
                assert_eq!(awk_selects(&s, &r), want, "{s:?}");
                selected += want.len();
            }
        }
        assert!(selected >= 10, "the cases select something: {selected}");
        let s = Selector {
            group: "client_name",
            key: "0123".into(),
            only: "idle",
            idle_seconds: 10,
        };
        assert_eq!(rust(&s), vec![1, 5, 10], "only the exact name, idle ≥ 10");
    }

    #[test]
    fn a_finding_that_rounds_to_nothing_is_not_listed() {
        // One idle connection of 1,000: a leak "confidence" of about 0.00.
        let mut r = String::new();
        r += &line(1, "10.0.0.9", "", 900, 800, "N", "");
        for i in 2..1000 {
            let ip = format!("10.0.{}.{}", i / 250, i % 250);
            r += &line(i, &ip, "api", 900, 0, "N", "");
        }
        let rep = report(
            &r,
            "redis_version:7.0.15\nconnected_clients:999\n",
            cfg(10000.0),
            &[],
        );
        assert!(
            rep.findings.iter().all(|f| f.confidence >= 0.05),
            "{rep:#?}"
        );
        assert!(
            !rep.findings
                .iter()
                .any(|f| f.cause == Cause::ConnectionLeak),
            "{rep:#?}"
        );
    }

    #[test]
    fn a_full_server_says_commands_cannot_run_and_what_works() {
        let mut r = String::new();
        for i in 0..190 {
            r += &line(
                i,
                "10.0.0.9",
                "x';touch${IFS}/tmp/P;echo'",
                900,
                800,
                "N",
                "",
            );
        }
        for i in 190..200 {
            r += &line(i, "10.0.0.1", "api", 900, 0, "N", "");
        }
        let rep = report(
            &r,
            "redis_version:7.0.15\nconnected_clients:200\n",
            cfg(200.0),
            &[],
        );
        assert_eq!(rep.status, Status::Full);
        assert!(
            rep.headline.contains("New connections are refused"),
            "{}",
            rep.headline
        );
        let leak = &rep.findings[0];
        assert_eq!(leak.cause, Cause::ConnectionLeak);
        let first = &leak.remediation[0];
        assert!(first.command.is_none());
        assert!(first.why.starts_with(FULL_NOTICE), "{}", first.why);
        assert!(
            first.why.contains(r"source_ip 10.0.0.9"),
            "the culprit, named: {}",
            first.why
        );
        assert!(first.why.contains("relief action"), "{}", first.why);
        for f in &rep.findings {
            if f.remediation.iter().any(|s| s.command.is_some()) {
                assert!(f.remediation[0].why.starts_with(FULL_NOTICE), "{f:#?}");
            }
        }
    }

    #[test]
    fn kill_commands_quote_the_culprit() {
        let s = Selector {
            group: "client_name",
            key: "x';touch${IFS}/tmp/P;echo'".into(),
            only: "idle",
            idle_seconds: 60,
        };
        let kill = s.pipeline("redis-cli -p 1");
        assert!(
            kill.contains(r"K='x'\'';touch${IFS}/tmp/P;echo'\''' awk "),
            "{kill}"
        );
        assert_eq!(kill.matches("touch").count(), 1, "{kill}");
    }
}
