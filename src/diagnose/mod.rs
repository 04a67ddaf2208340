//! The diagnosis: from one observation (INFO, CONFIG, the CLIENT LIST aggregates) and a short
//! history, names which of the known causes of connection exhaustion is happening, how sure it
//! is, how much it threatens the limit, the evidence in numbers, and the commands that restore
//! service.
//!
//! Pure and cheap (it reads top-K aggregates, never the raw list), so the daemon runs it after
//! every poll and the one-shot `diagnose` command runs the same code. Each cause is one module
//! behind [`Cause`]; what they share (the context, severity, the remedies) is here and in
//! `remediation`. docs/diagnosis.md explains every cause, its evidence, how confidence and
//! severity are computed and what each cannot see.
//!
//! Two numbers per finding: `confidence` (is the pattern there?) and `severity` (does it
//! threaten the connection limit, now or at the current growth?). Their product, `score`,
//! ranks the findings, makes the status and is what `redis_client_diagnosis` exports: a
//! healthy server may show a pattern (a scale-out at 2 %) with no threat, and reads HEALTHY.

mod blocked;
mod capacity;
mod churn;
mod leak;
mod maxclients;
mod output_buffers;
mod pubsub;
mod remediation;
mod risky_config;
mod scale_out;
mod selector;
pub mod shell;
mod step;
#[cfg(test)]
mod tests;
mod workload;

/// Seconds as a short duration: "45 s", "12 min", "3.5 h".
pub(crate) fn span(seconds: f64) -> String {
    if seconds < 120.0 {
        format!("{seconds:.0} s")
    } else if seconds < 7200.0 {
        format!("{:.0} min", seconds / 60.0)
    } else {
        format!("{:.1} h", seconds / 3600.0)
    }
}

use serde::Serialize;

use crate::analysis::aggregate::{ClientListSummary, Dimension, GroupStats, OTHER, UNNAMED};
use crate::analysis::history::Sample;
use crate::config::{Endpoint, Target};
use crate::redis::client_list::CLIENT_NAME;
use crate::redis::connection::{ConfigValues, MaxclientsSource};
use crate::redis::info::Info;

pub use remediation::FULL_NOTICE;
pub(crate) use remediation::{blame, healing_steps, kill_steps, raise_maxclients};
pub use selector::{Only, Selector};
pub use step::{CloseBy, Notice, Relieve, Remedy, Step};

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
    /// A workload's autoscaler maximum would exhaust maxclients (only with Kubernetes identity).
    CapacityAtMaxScale,
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
            Self::CapacityAtMaxScale => "capacity_at_max_scale",
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

/// The heuristics' knobs. Defaults follow the issues' wording (churn above 100/s, ...).
#[derive(Debug, Clone, Copy)]
pub struct Thresholds {
    pub warning_ratio: f64,
    pub critical_ratio: f64,
    /// New connections per second above which churn is a finding.
    pub churn_per_second: f64,
    /// Redis' default maxclients; a lower value is "set low".
    pub default_maxclients: f64,
    /// Score from which a finding counts as a cause (below: a note), and the status is at
    /// least WARNING.
    pub cause_score: f64,
    /// Score from which the shipped alert `RedisClientsCauseDiagnosed` fires.
    pub alert_score: f64,
    /// Confidence (after rounding to two decimals) below which a finding is not reported at
    /// all: a pattern this faint is noise.
    pub min_confidence: f64,
    /// Score (after rounding) below which a finding is listed without commands: a pattern
    /// with no threat is no reason to close anyone's connections.
    pub min_score: f64,
    /// Utilisation from which severity starts to rise, and at which it is 1.
    pub severity_from: f64,
    pub severity_full: f64,
    /// Projected time to full (seconds) at which the growth term starts to rise, and from
    /// which it is 1.
    pub growth_horizon: f64,
    pub growth_urgent: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            warning_ratio: 0.8,
            critical_ratio: 0.9,
            churn_per_second: 100.0,
            default_maxclients: 10_000.0,
            cause_score: 0.5,
            alert_score: 0.7,
            min_confidence: 0.05,
            min_score: 0.05,
            severity_from: 0.6,
            severity_full: 0.9,
            growth_horizon: 3600.0,
            growth_urgent: 900.0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evidence {
    pub what: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    pub cause: Cause,
    pub title: String,
    /// Is the pattern there (0–1)?
    pub confidence: f64,
    /// Does it threaten the connection limit, now or at the current growth (0–1)?
    pub severity: f64,
    /// `confidence × severity`: ranks the findings, makes the status, and is the value of
    /// `redis_client_diagnosis`.
    pub score: f64,
    /// What the severity was computed from.
    pub threat: String,
    /// `source_ip 10.0.0.5`, `client_name billing`, `address_prefix 10.0.3.0/24`, ...
    #[serde(skip_serializing_if = "Option::is_none")]
    pub culprit: Option<String>,
    pub summary: String,
    pub evidence: Vec<Evidence>,
    pub remediation: Vec<Step>,
    /// The connections a kill step acts on; the one-shot command lists their ids, and a relief
    /// action can select the same connections over the exporter's held connection. `None` when
    /// the finding has nothing to close, or no threat that would justify closing anything.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selector: Option<Selector>,
}

impl Finding {
    /// A finding with severity and score still to be set by [`diagnose`].
    fn new(cause: Cause, title: String, confidence: f64) -> Finding {
        Finding {
            cause,
            title,
            confidence,
            severity: 0.0,
            score: 0.0,
            threat: String::new(),
            culprit: None,
            summary: String::new(),
            evidence: Vec::new(),
            remediation: Vec::new(),
            selector: None,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ServerFacts {
    /// `redis` or `valkey` (from INFO `server_name` / `valkey_version`).
    pub product: Option<&'static str>,
    /// The product's own version: Valkey's `valkey_version`, Redis' `redis_version`.
    pub version: Option<String>,
    /// What INFO says in `redis_version` (Valkey keeps 7.2.4 there for compatibility).
    pub redis_version: Option<String>,
    pub role: Option<String>,
    pub maxclients: Option<f64>,
    /// `config` or `info`.
    pub maxclients_source: Option<MaxclientsSource>,
    /// Everything Redis counts against maxclients (clients + replicas + cluster bus).
    pub limit_connections: Option<f64>,
    pub utilisation_ratio: Option<f64>,
    pub rejected_connections: Option<f64>,
    /// True when connections were refused since the previous poll (the server refuses now).
    pub rejecting: bool,
    /// Refusals within the history window, when there were any: how many, between when and
    /// when, and when they stopped (`recovered_at`, absent while they go on).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refusals: Option<Refusals>,
    pub timeout: Option<f64>,
    pub tcp_keepalive: Option<f64>,
    pub new_connections_per_second: Option<f64>,
    /// Sustained growth of the connection count (per second), when the history shows one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub growth_per_second: Option<f64>,
    pub client_list_connections: u64,
    pub distinct_sources: u64,
    /// Client instances: distinct sources other than the exporter's own connection.
    pub instances: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub target: String,
    /// Unix time, seconds.
    pub generated_at: f64,
    pub status: Status,
    pub headline: String,
    pub server: ServerFacts,
    /// Ranked by score (then confidence). Those below the cause score are notes.
    pub findings: Vec<Finding>,
    pub history_samples: usize,
    pub history_window_seconds: f64,
    /// `redis-cli` with the connection arguments the commands below use (no password: set
    /// `REDISCLI_AUTH` in the shell).
    pub redis_cli: String,
}

impl Report {
    /// The finding an alert should carry: the top one, when its score makes it a cause.
    pub fn top_cause(&self) -> Option<&Finding> {
        self.findings
            .first()
            .filter(|f| f.score >= Thresholds::default().cause_score)
    }

    /// `(cause, score)` for `redis_client_diagnosis`: the top finding, or `none` with 0 when
    /// no finding has a score worth showing.
    pub fn exported(&self) -> (&'static str, f64) {
        self.findings
            .first()
            .filter(|f| f.score >= Thresholds::default().min_score)
            .map_or(("none", 0.0), |f| (f.cause.as_str(), f.score))
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

/// Which server this is, for the advice that depends on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Server {
    pub valkey: bool,
    pub version: (u32, u32, u32),
}

impl Server {
    fn of(info: &Info) -> Server {
        let valkey = info.valkey_version.is_some()
            || info
                .server_name
                .as_deref()
                .is_some_and(|n| n.trim().eq_ignore_ascii_case("valkey"));
        let v = if valkey {
            info.valkey_version
                .as_deref()
                .or(info.redis_version.as_deref())
        } else {
            info.redis_version.as_deref()
        };
        Server {
            valkey,
            version: version(v),
        }
    }

    pub fn product(self) -> &'static str {
        if self.valkey {
            "valkey"
        } else {
            "redis"
        }
    }

    /// `Redis 7.0` / `Valkey 8.1`.
    pub fn name(self) -> String {
        let p = if self.valkey { "Valkey" } else { "Redis" };
        format!("{p} {}.{}", self.version.0, self.version.1)
    }

    /// `CLIENT KILL` filters `IP`, `NAME`, `LIB-NAME` and `IDLE`: Valkey 9.0 (its
    /// commands/client-kill.json history). No Redis release has `IDLE`; `MAXAGE` (Redis 7.4,
    /// Valkey 8.0) selects by connection age, which is not what a leak needs.
    pub fn kills_by_idle(self) -> bool {
        self.valkey && self.version.0 >= 9
    }
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

pub(crate) fn ev(what: impl Into<String>, value: impl ToString) -> Evidence {
    Evidence {
        what: what.into(),
        value: value.to_string(),
    }
}

pub(crate) fn advice(why: impl Into<String>) -> Step {
    Step::advice(why)
}

pub(crate) fn pct(x: f64) -> String {
    format!("{:.0}%", x * 100.0)
}

/// 0 below `lo`, 1 above `hi`, a smooth S in between.
pub(crate) fn smoothstep(x: f64, lo: f64, hi: f64) -> f64 {
    if hi <= lo {
        return f64::from(u8::from(x >= hi));
    }
    let t = ((x - lo) / (hi - lo)).clamp(0.0, 1.0);
    t * t * (3.0 - 2.0 * t)
}

/// The largest group by `score` over sources and names (sources win ties: an IP is the more
/// actionable culprit); our own connection's name, connections without a name and the
/// `other` bucket never are culprits here.
pub(crate) fn culprit<'a>(
    c: &'a ClientListSummary,
    score: impl Fn(&GroupStats) -> u64,
) -> Option<(Dimension, &'a str, &'a GroupStats)> {
    let best = |groups: &'a [(String, GroupStats)], kind: Dimension| {
        groups
            .iter()
            .filter(|(k, _)| k != OTHER && k != CLIENT_NAME && k != UNNAMED)
            .max_by_key(|(_, v)| score(v))
            .map(|(k, v)| (kind, k.as_str(), v))
    };
    let s = best(&c.by_source, Dimension::SourceIp);
    let n = best(&c.by_name, Dimension::ClientName);
    match (s, n) {
        (Some(s), Some(n)) if score(n.2) > score(s.2) => Some(n),
        (Some(s), _) => Some(s),
        (None, n) => n,
    }
    .filter(|(_, _, v)| score(v) > 0)
}

/// The one group of the other dimension that holds most of a culprit's connections: for a
/// source, the dominant client name, and the other way round.
pub(crate) fn companion(
    c: &ClientListSummary,
    kind: Dimension,
    score: impl Fn(&GroupStats) -> u64,
) -> String {
    let groups = if kind == Dimension::SourceIp {
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

/// How much the server's state threatens the limit, whatever the cause: the common part of
/// every finding's severity.
#[derive(Debug, Clone, Default)]
pub(crate) struct Threat {
    pub value: f64,
    pub why: String,
}

impl Threat {
    /// The larger of two threats.
    pub fn max(self, o: Threat) -> Threat {
        if o.value > self.value {
            o
        } else {
            self
        }
    }
}

pub(crate) struct Ctx<'a> {
    pub obs: &'a Observation<'a>,
    pub history: &'a [Sample],
    pub th: Thresholds,
    pub cli: &'a str,
    /// Connections in CLIENT LIST.
    pub total: f64,
    /// Of them, not the exporter's own.
    pub clients: f64,
    pub maxclients: Option<f64>,
    pub limit: Option<f64>,
    pub utilisation: Option<f64>,
    pub server: Server,
    pub now: f64,
    /// Connections were refused since the previous poll: the server is refusing now.
    pub rejecting: bool,
    /// Sustained growth of the connection count per second, from the history.
    pub growth: Option<f64>,
    pub threat: Threat,
}

impl Ctx<'_> {
    /// The oldest sample of the window, when there is history besides the current poll.
    pub fn baseline(&self) -> Option<&Sample> {
        (self.history.len() >= 2).then(|| &self.history[0])
    }

    /// The latest sample taken at or before `at`, when the history reaches back that far.
    pub fn sample_before(&self, at: f64) -> Option<&Sample> {
        let n = self.history.len();
        // The last sample is the current poll: never a "before".
        self.history[..n.saturating_sub(1)]
            .iter()
            .rev()
            .find(|s| s.at <= at)
    }

    /// Free slots: what a growth has left to fill.
    pub fn headroom(&self) -> Option<f64> {
        Some((self.maxclients? - self.limit?).max(0.0))
    }

    /// The threat of a growth of `rate` connections per second: 1 when it fills the server
    /// within [`Thresholds::growth_urgent`], 0 beyond [`Thresholds::growth_horizon`].
    pub fn growth_threat(&self, rate: f64, what: &str) -> Threat {
        let Some(room) = self.headroom().filter(|_| rate > 0.0) else {
            return Threat::default();
        };
        let ttf = room / rate;
        let value = 1.0 - smoothstep(ttf, self.th.growth_urgent, self.th.growth_horizon);
        Threat {
            value,
            why: format!(
                "{what} of {rate:.2}/s fills the {room:.0} free slots in about {:.0} min",
                ttf / 60.0
            ),
        }
    }

    /// Connections that `rate` measures, per second, between the last two samples.
    /// `CONFIG RESETSTAT` zeroes counters: a decrease is a reset, after which the counter
    /// holds what happened since (a lower bound of the rate), never a negative rate.
    pub fn counter_rate(&self, f: impl Fn(&Sample) -> Option<f64>) -> Option<f64> {
        let n = self.history.len();
        if n < 2 {
            return None;
        }
        let (a, b) = (&self.history[n - 2], &self.history[n - 1]);
        let dt = b.at - a.at;
        let (va, vb) = (f(a)?, f(b)?);
        let dv = if vb >= va { vb - va } else { vb };
        (dt > 0.0).then(|| dv / dt)
    }

    /// Change per second of a gauge between the last two samples (may be negative).
    pub fn gauge_rate(&self, f: impl Fn(&Sample) -> Option<f64>) -> Option<f64> {
        let n = self.history.len();
        if n < 2 {
            return None;
        }
        let (a, b) = (&self.history[n - 2], &self.history[n - 1]);
        let dt = b.at - a.at;
        let dv = f(b)? - f(a)?;
        (dt > 0.0).then(|| dv / dt)
    }
}

/// Connections refused within the history window: how many, between which samples, and the
/// first sample after the last one that showed any.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Refusals {
    pub count: f64,
    /// Unix times: the sample before the first rise of `rejected_connections`, the sample of
    /// its last rise.
    pub from: f64,
    pub to: f64,
    /// The first sample after the last rise (none while the last poll still saw refusals).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovered_at: Option<f64>,
}

/// Refusals in the history (the current poll is its last sample; a counter reset counts what
/// came after it), and whether the server refused connections since the previous poll.
fn refusals(obs: &Observation<'_>, history: &[Sample]) -> (bool, Option<Refusals>) {
    let n = history.len();
    if n < 2 {
        return (false, None);
    }
    let value = |i: usize| {
        if i + 1 == n {
            obs.info
                .rejected_connections
                .or(history[i].rejected_connections())
        } else {
            history[i].rejected_connections()
        }
    };
    let mut found: Option<Refusals> = None;
    let mut last_rise = None;
    for i in 1..n {
        let (Some(a), Some(b)) = (value(i - 1), value(i)) else {
            continue;
        };
        let d = if b >= a { b - a } else { b };
        if d > 0.0 {
            let r = found.get_or_insert(Refusals {
                count: 0.0,
                from: history[i - 1].at,
                to: history[i].at,
                recovered_at: None,
            });
            r.count += d;
            r.to = history[i].at;
            last_rise = Some(i);
        }
    }
    let now = last_rise == Some(n - 1);
    if let (Some(r), Some(i)) = (found.as_mut(), last_rise) {
        r.recovered_at = history.get(i + 1).map(|s| s.at);
    }
    (now, found)
}

/// `HH:MM:SS` UTC of a Unix time.
pub(crate) fn clock(at: f64) -> String {
    let s = at.max(0.0) as u64 % 86_400;
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// Sustained growth of the count (per second) over a history of at least five minutes: the
/// slower of its two halves, both growing. A step (a deploy, a scale-out) grows in one half
/// only and is not a trend to extrapolate.
fn sustained_growth(history: &[Sample]) -> Option<f64> {
    let (first, last) = (history.first()?, history.last()?);
    let span = last.at - first.at;
    if span < 300.0 {
        return None;
    }
    let mid_at = first.at + span / 2.0;
    let mid = history
        .iter()
        .min_by(|a, b| (a.at - mid_at).abs().total_cmp(&(b.at - mid_at).abs()))?;
    let slope = |a: &Sample, b: &Sample| {
        let dt = b.at - a.at;
        Some((b.limit_connections()? - a.limit_connections()?) / dt).filter(|_| dt > 0.0)
    };
    let (s1, s2) = (slope(first, mid)?, slope(mid, last)?);
    (s1 > 0.0 && s2 > 0.0).then(|| s1.min(s2))
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
    let effective = obs.config.effective_maxclients(Some(obs.info));
    let (maxclients, source) = (effective.map(|(m, _)| m), effective.map(|(_, s)| s));
    let limit = obs.info.limit_connections();
    let utilisation = match (limit, maxclients) {
        (Some(l), Some(m)) if m > 0.0 => Some(l / m),
        _ => None,
    };
    let own: u64 = obs.clients.by_source.iter().map(|(_, g)| g.own).sum();
    let (rejecting, refused) = refusals(obs, history);
    let mut ctx = Ctx {
        obs,
        history,
        th,
        cli: redis_cli,
        total: obs.clients.connections as f64,
        clients: obs.clients.connections.saturating_sub(own) as f64,
        maxclients,
        limit,
        utilisation,
        server: Server::of(obs.info),
        now,
        rejecting,
        growth: sustained_growth(history),
        threat: Threat::default(),
    };
    ctx.threat = common_threat(&ctx);

    let scale = scale_out::detect(&ctx);
    let recent = scale
        .as_ref()
        .map_or(0.0, |(f, recent)| recent * f.confidence);
    let leak = leak::detect(&ctx);
    let fresh = leak.as_ref().map_or(0.0, |(_, fresh)| *fresh);
    let mut findings: Vec<Finding> = [
        leak.map(|(f, _)| f),
        scale.map(|(f, _)| f),
        maxclients::detect(&ctx, recent, fresh),
        pubsub::detect(&ctx),
        churn::detect(&ctx),
        blocked::detect(&ctx),
        output_buffers::detect(&ctx),
        risky_config::detect(&ctx),
        capacity::detect(&ctx),
    ]
    .into_iter()
    .flatten()
    .map(|mut f| {
        let round = |x: f64| (x.clamp(0.0, 1.0) * 100.0).round() / 100.0;
        f.confidence = round(f.confidence);
        f.severity = round(f.severity);
        f.score = round(f.confidence * f.severity);
        f
    })
    // Filtered after rounding: a finding shown as 0.00 is not listed.
    .filter(|f| f.confidence >= th.min_confidence)
    .map(|mut f| {
        // No threat, no commands: a healthy pool's idle connections are not to be closed.
        if f.score < th.min_score {
            f.remediation.retain(|s| s.command().is_none());
            f.selector = None;
            f.remediation.insert(
                0,
                advice(
                    "No threat to the connection limit now: nothing needs closing. Shown as a pattern to know about.",
                ),
            );
        }
        f
    })
    .collect();
    findings.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then(b.confidence.total_cmp(&a.confidence))
    });

    let full = matches!((limit, maxclients), (Some(l), Some(m)) if l >= m) || rejecting;
    let u = utilisation.unwrap_or(0.0);
    let top_score = findings.first().map_or(0.0, |f| f.score);
    let status = if full {
        Status::Full
    } else if u >= th.critical_ratio {
        Status::Critical
    } else if u >= th.warning_ratio || top_score >= th.cause_score {
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
            if f.remediation.iter().any(|s| s.command().is_some()) {
                let step = remediation::full_server_step(f);
                f.remediation.insert(0, step);
            }
        }
    }
    let mut headline = match findings.first().filter(|f| f.score >= th.cause_score) {
        Some(f) => format!(
            "{}: {}. Most likely cause: {} (confidence {:.2}, severity {:.2}).",
            status.as_str().to_uppercase(),
            slots,
            f.title,
            f.confidence,
            f.severity
        ),
        None if status == Status::Healthy => {
            let seen: Vec<String> = findings
                .iter()
                .filter(|f| f.confidence >= th.cause_score)
                .map(|f| format!("{} {:.2}", f.cause.as_str(), f.confidence))
                .collect();
            let mut h = format!("HEALTHY: {slots}. No cause of connection exhaustion found.");
            if !seen.is_empty() {
                h.push_str(&format!(
                    " Patterns seen without a threat to the limit: {} (confidence); see the notes.",
                    seen.join(", ")
                ));
            }
            h
        }
        None => format!(
            "{}: {slots}. No single cause stands out; see the notes.",
            status.as_str().to_uppercase()
        ),
    };
    if status == Status::Full {
        headline.push_str(" New connections are refused, so the printed commands cannot run until a slot frees: see each fix's first step.");
    } else if let Some(r) = &refused {
        // Past refusals are history, not the state: said once, plainly, without paging.
        headline.push_str(&format!(
            " Recovered at {} UTC: {:.0} connections were refused between {} and {} UTC.",
            r.recovered_at.map_or_else(|| clock(now), clock),
            r.count,
            clock(r.from),
            clock(r.to)
        ));
    }
    let window = match (history.first(), history.last()) {
        (Some(a), Some(b)) => b.at - a.at,
        _ => 0.0,
    };
    let server = ctx.server;
    let report = Report {
        target: target.to_string(),
        generated_at: now,
        status,
        headline,
        server: ServerFacts {
            product: Some(server.product()),
            version: if server.valkey {
                obs.info
                    .valkey_version
                    .clone()
                    .or(obs.info.redis_version.clone())
            } else {
                obs.info.redis_version.clone()
            },
            redis_version: obs.info.redis_version.clone(),
            role: obs.info.role.clone(),
            maxclients,
            maxclients_source: source,
            limit_connections: limit,
            utilisation_ratio: utilisation,
            rejected_connections: obs.info.rejected_connections,
            rejecting,
            refusals: refused,
            timeout: obs.config.timeout,
            tcp_keepalive: obs.config.tcp_keepalive,
            new_connections_per_second: ctx.counter_rate(|s| s.total_connections_received()),
            growth_per_second: ctx.growth,
            client_list_connections: obs.clients.connections,
            distinct_sources: obs.clients.distinct_sources,
            instances: obs.clients.instances,
        },
        findings,
        history_samples: history.len(),
        history_window_seconds: window,
        redis_cli: redis_cli.to_string(),
    };
    // Every target keeps its report until the next poll: a clone (String and Vec clones are
    // exact) drops the spare capacity its text grew with, ~1.5 kB of a small report's ~4.5 kB
    // (issue 20; tests/memory.rs).
    report.clone()
}

/// The threat every finding shares: how full the server is, whether it refuses connections,
/// and how soon a sustained growth would fill it.
fn common_threat(ctx: &Ctx<'_>) -> Threat {
    let th = ctx.th;
    if ctx.rejecting {
        return Threat {
            value: 1.0,
            why: "Redis refused connections since the previous poll".to_string(),
        };
    }
    let u = ctx.utilisation.unwrap_or(0.0);
    let full = Threat {
        value: smoothstep(u, th.severity_from, th.severity_full),
        why: match ctx.utilisation {
            Some(u) => format!("{} of maxclients in use", pct(u)),
            None => "utilisation unknown (no maxclients)".to_string(),
        },
    };
    match ctx.growth {
        Some(g) => full.max(ctx.growth_threat(g, "a sustained growth")),
        None => full,
    }
}
