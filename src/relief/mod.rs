//! Relief: act on a full Redis through the one connection that still works.
//!
//! When Redis refuses new connections (`ERR max number of clients reached`), `redis-cli` cannot
//! run `CLIENT KILL` or `CONFIG SET`: it needs a connection. The exporter's poller already
//! holds one. An operator asks the exporter (`POST /relief/preview`, then `/relief/execute`
//! with the preview's token, or `redis-clients-exporter relieve`) to close the connections a
//! selector names and/or to set `timeout`, `tcp-keepalive` or `maxclients`.
//!
//! No HTTP handler talks to Redis: a handler sends a [`Job`] to the target's poller
//! (src/targets/poller.rs serves its queue between polls, on its held connection) and waits a bounded
//! time for the job's answer. Off unless `[relief] enabled`; only listed basic-auth users;
//! a preview first (a fresh CLIENT LIST: the exact connections), then an execute within the
//! token's short life that re-checks every connection before closing it; bounded in
//! connections per action, actions per minute and CONFIG SET values; one audit line
//! (`target: "audit"`) and one count in `redis_clients_exporter_actions_total` per request.

pub mod client;
mod select;

pub use crate::config::relief::{Param, RawRelief, ReliefConfig};

/// The basic-auth user a request authenticated as (a request extension): relief acts only
/// for the users `relief.users` lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthUser(pub String);

pub use select::{Addr, Criteria, Protected, Select, Verdict};

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::{mpsc, oneshot};

use crate::config::Target;
use crate::diagnose::{Cause, Finding, Relieve, Remedy, Report, Step};
use crate::redis::client_list::Parser;
use crate::redis::connection::ErrorKind;
use crate::redis::connection::{Conn, PollError, Stage};
use crate::redis::resp::{Arg, Value};
use crate::targets::state::Store;

/// Tokens (used or not) remembered at once; the oldest go first.
const MAX_TOKENS: usize = 256;
/// Strings from Redis in a preview (names, users, libraries) are cut to this many bytes: a
/// client name can be megabytes, and a preview lists up to 10,000 connections.
const MAX_SHOWN: usize = 200;
/// Longest request body read.
const MAX_BODY: usize = 64 * 1024;

pub use crate::targets::jobs::{idle, Job, POLLER_WAIT, QUEUE};

/// What a request did, as the `action` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    Preview,
    Execute,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Preview => "preview",
            Action::Execute => "execute",
        }
    }
}

/// How a request ended, as the `result` label (and its HTTP status).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    Ok,
    /// Redis failed part-way: something was done, not all (the answer says what).
    Partial,
    /// Redis refused or failed before anything changed.
    Failed,
    /// No held connection, the poller busy or not answering in time.
    Unavailable,
    Disabled,
    Unauthenticated,
    /// Authenticated, but not a relief user.
    Denied,
    Invalid,
    UnknownTarget,
    TooMany,
    OutOfBounds,
    RateLimited,
    StaleToken,
    ReusedToken,
    UnknownToken,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Partial => "partial",
            Outcome::Failed => "failed",
            Outcome::Unavailable => "unavailable",
            Outcome::Disabled => "disabled",
            Outcome::Unauthenticated => "unauthenticated",
            Outcome::Denied => "denied",
            Outcome::Invalid => "invalid",
            Outcome::UnknownTarget => "unknown_target",
            Outcome::TooMany => "too_many",
            Outcome::OutOfBounds => "out_of_bounds",
            Outcome::RateLimited => "rate_limited",
            Outcome::StaleToken => "stale_token",
            Outcome::ReusedToken => "reused_token",
            Outcome::UnknownToken => "unknown_token",
        }
    }

    fn status(self) -> StatusCode {
        match self {
            Outcome::Ok | Outcome::Partial => StatusCode::OK,
            Outcome::Failed => StatusCode::BAD_GATEWAY,
            Outcome::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Outcome::Disabled | Outcome::Denied => StatusCode::FORBIDDEN,
            Outcome::Unauthenticated => StatusCode::UNAUTHORIZED,
            Outcome::Invalid => StatusCode::BAD_REQUEST,
            Outcome::UnknownTarget | Outcome::UnknownToken => StatusCode::NOT_FOUND,
            Outcome::TooMany | Outcome::OutOfBounds => StatusCode::UNPROCESSABLE_ENTITY,
            Outcome::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Outcome::StaleToken => StatusCode::GONE,
            Outcome::ReusedToken => StatusCode::CONFLICT,
        }
    }
}

/// A request refused or failed, with the reason said to the caller and the audit line.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub outcome: Outcome,
    pub message: String,
}

fn refuse(outcome: Outcome, message: impl Into<String>) -> Refusal {
    Refusal {
        outcome,
        message: message.into(),
    }
}

impl From<PollError> for Refusal {
    fn from(e: PollError) -> Self {
        refuse(Outcome::Failed, format!("Redis: {e}"))
    }
}

/// A poller's side of the hub: where to send its jobs, and its timing.
#[derive(Clone)]
struct Handle {
    jobs: mpsc::Sender<Job>,
    poll_interval: Duration,
}

/// A previewed connection, as the execute step must find it again.
#[derive(Debug, Clone)]
struct Previewed {
    id: u64,
    addr: String,
    age: u64,
}

/// What a token stands for.
struct Pending {
    target: String,
    user: String,
    select: Select,
    criteria: Criteria,
    conns: Vec<Previewed>,
    set: Vec<(Param, i64)>,
    expires: Instant,
    used: bool,
}

/// The exporter's relief state, shared by the pollers (their job queues) and the HTTP
/// handlers: configuration, tokens, rate windows, counts. Lives in the [`Store`].
#[derive(Default)]
pub struct Hub {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    config: ReliefConfig,
    exporter_url: String,
    pollers: HashMap<String, Handle>,
    tokens: HashMap<String, Pending>,
    windows: HashMap<(String, Action), VecDeque<Instant>>,
    counts: BTreeMap<(String, Action, Outcome), u64>,
}

impl Hub {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic under the lock leaves plain maps behind: still consistent enough to serve.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets the configuration (at start; relief settings need a restart) and the URL the
    /// printed `relieve` commands name.
    pub fn configure(&self, config: ReliefConfig, exporter_url: String) {
        let mut i = self.lock();
        i.config = config;
        i.exporter_url = exporter_url;
    }

    pub fn config(&self) -> ReliefConfig {
        self.lock().config.clone()
    }

    /// A poller announces its job queue (replacing a stopped predecessor's).
    fn register_queue(&self, target: &Target, jobs: mpsc::Sender<Job>) {
        self.lock().pollers.insert(
            target.label.clone(),
            Handle {
                jobs,
                poll_interval: target.poll_interval,
            },
        );
    }

    /// The target is gone: nothing can act on it any more.
    fn forget_queue(&self, target: &str) {
        self.lock().pollers.remove(target);
    }

    fn handle(&self, target: &str) -> Option<Handle> {
        self.lock().pollers.get(target).cloned()
    }

    /// `(target, action, result, count)` for `redis_clients_exporter_actions_total`; with
    /// relief enabled, every running target's `ok` series exist from the start (at 0), so that
    /// `increase()` sees the first action.
    pub fn counts(&self) -> Vec<(String, &'static str, &'static str, u64)> {
        let i = self.lock();
        let mut all = i.counts.clone();
        if i.config.enabled {
            for t in i.pollers.keys() {
                for a in [Action::Preview, Action::Execute] {
                    all.entry((t.clone(), a, Outcome::Ok)).or_insert(0);
                }
            }
        }
        all.into_iter()
            .map(|((t, a, o), n)| (t, a.as_str(), o.as_str(), n))
            .collect()
    }

    fn count(&self, target: &str, action: Action, outcome: Outcome) {
        let mut i = self.lock();
        // Only targets that exist: a caller must not grow the label set with made-up names.
        if i.pollers.contains_key(target) {
            *i.counts
                .entry((target.to_string(), action, outcome))
                .or_insert(0) += 1;
        }
    }

    /// Counts one request of `action` on `target` against `limit` per minute; the time until
    /// a slot frees when over.
    fn admit(&self, target: &str, action: Action, limit: u32) -> Result<(), Duration> {
        let now = Instant::now();
        let mut i = self.lock();
        let w = i.windows.entry((target.to_string(), action)).or_default();
        while w
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(60))
        {
            w.pop_front();
        }
        if w.len() >= limit as usize {
            let oldest = w.front().copied().unwrap_or(now);
            return Err(Duration::from_secs(60).saturating_sub(now.duration_since(oldest)));
        }
        w.push_back(now);
        Ok(())
    }

    fn remember(&self, token: String, p: Pending) {
        let mut i = self.lock();
        let now = Instant::now();
        let ttl = i.config.token_ttl;
        // Expired tokens are kept one more lifetime, to answer "expired" rather than "unknown".
        i.tokens.retain(|_, p| p.expires + ttl > now);
        while i.tokens.len() >= MAX_TOKENS {
            let oldest = i
                .tokens
                .iter()
                .min_by_key(|(_, p)| p.expires)
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => i.tokens.remove(&k),
                None => break,
            };
        }
        i.tokens.insert(token, p);
    }

    /// Checks a token and, when it is good and the rate allows, uses it up (single use).
    fn redeem(
        &self,
        token: &str,
        target: &str,
        user: &str,
        limit: u32,
    ) -> Result<Pending, Refusal> {
        let now = Instant::now();
        {
            let i = self.lock();
            let p = match i.tokens.get(token) {
                Some(p) if p.target == target => p,
                _ => {
                    return Err(refuse(
                        Outcome::UnknownToken,
                        "unknown token for this target: preview again",
                    ))
                }
            };
            if p.used {
                return Err(refuse(
                    Outcome::ReusedToken,
                    "this token was already used: a token acts once; preview again",
                ));
            }
            if now >= p.expires {
                return Err(refuse(
                    Outcome::StaleToken,
                    "this token has expired: preview again (what it listed may have changed)",
                ));
            }
            if p.user != user {
                return Err(refuse(
                    Outcome::Denied,
                    "this token belongs to the user who previewed it",
                ));
            }
        }
        self.admit(target, Action::Execute, limit).map_err(|wait| {
            refuse(
                Outcome::RateLimited,
                format!("more than relief.max_actions_per_target_per_minute ({limit}) actions on this target in the last minute: retry in {} s (the token stays valid until it expires)", wait.as_secs() + 1),
            )
        })?;
        let mut i = self.lock();
        match i.tokens.get_mut(token) {
            Some(p) if !p.used => {
                p.used = true;
                Ok(Pending {
                    target: p.target.clone(),
                    user: p.user.clone(),
                    select: p.select.clone(),
                    criteria: p.criteria.clone(),
                    conns: std::mem::take(&mut p.conns),
                    set: p.set.clone(),
                    expires: p.expires,
                    used: true,
                })
            }
            _ => Err(refuse(
                Outcome::ReusedToken,
                "this token was already used: a token acts once; preview again",
            )),
        }
    }

    /// Adds, to each finding of a target's diagnosis that names connections or a CONFIG SET,
    /// the `relieve` command that does it through the exporter's held connection, right after
    /// the finding's first command. Only when relief is enabled and the target is one relief
    /// can act on; the daemon's poller calls this on each new report.
    fn add_relieve_steps(&self, target: &str, report: &mut Report) {
        let (url, bounds) = {
            let i = self.lock();
            if !i.config.enabled || !i.pollers.contains_key(target) {
                return;
            }
            (i.exporter_url.clone(), i.config.bounds.clone())
        };
        for f in &mut report.findings {
            if let Some(step) = step(&url, target, f, &bounds) {
                let at = f
                    .remediation
                    .iter()
                    .position(|s| s.command().is_some())
                    .map_or(f.remediation.len(), |i| i + 1);
                f.remediation.insert(at, step);
            }
        }
    }
}

impl crate::targets::jobs::Actions for Hub {
    fn register(&self, target: &Target, jobs: mpsc::Sender<Job>) {
        self.register_queue(target, jobs);
    }
    fn forget(&self, target: &str) {
        self.forget_queue(target);
    }
    fn add_steps(&self, target: &str, report: &mut Report) {
        self.add_relieve_steps(target, report);
    }
}

/// The `relieve` step for one finding: `--finding CAUSE` for one that blames connections
/// (with the opt-in its connections need), `--set` for each of its `CONFIG SET`s that the
/// configured bounds allow. Every value is shell-quoted. `None` when relief cannot do its fix.
pub fn step(
    exporter: &str,
    target: &str,
    f: &Finding,
    bounds: &BTreeMap<Param, (i64, i64)>,
) -> Option<Step> {
    let mut does = Vec::new();
    let finding = f.selector.as_ref().map(|sel| (f.cause, sel.only));
    if finding.is_some() {
        does.push("lists the exact connections this finding blames".to_string());
    }
    let mut sets: Vec<(Param, i64)> = Vec::new();
    for s in &f.remediation {
        let Remedy::SetParam { param, value } = s.remedy else {
            continue;
        };
        let allowed = bounds
            .get(&param)
            .is_some_and(|(lo, hi)| (*lo..=*hi).contains(&value));
        if allowed && !sets.iter().any(|(q, _)| *q == param) {
            sets.push((param, value));
        }
    }
    for (p, v) in &sets {
        does.push(format!("CONFIG SET {} {v}", p.redis_name()));
    }
    if does.is_empty() {
        return None;
    }
    Some(Step::relieve(
        format!(
            "Works while the server is full, unlike the redis-cli commands (they need a new connection, which a full server refuses): the exporter acts through the connection it already holds. This previews what it would do ({}), changing nothing; add --execute to do it. Needs a relief user (RELIEVE_USER and RELIEVE_PASSWORD_FILE); see docs/relief.md.",
            does.join("; ")
        ),
        Relieve {
            exporter: exporter.to_string(),
            target: target.to_string(),
            finding,
            sets,
        },
    ))
}

// ---- HTTP ----

/// Who is asking: the authenticated basic-auth user (`AuthUser`) and the peer.
#[derive(Debug, Clone)]
struct Who {
    user: Option<String>,
    peer: Option<SocketAddr>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PreviewRequest {
    target: String,
    #[serde(default)]
    select: Select,
    /// Parameter -> value: `{"timeout": 30}`.
    #[serde(default)]
    set: BTreeMap<String, i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExecuteRequest {
    target: String,
    token: String,
}

/// What the audit line says about one request.
#[derive(Default)]
struct Record {
    target: Option<String>,
    select: Option<String>,
    finding: Option<&'static str>,
    token: Option<String>,
    listed: Option<usize>,
    closed: Vec<u64>,
    skipped: usize,
    set: Vec<String>,
}

async fn read(req: Request) -> (Who, Result<axum::body::Bytes, Refusal>) {
    let (parts, body) = req.into_parts();
    let who = Who {
        user: parts.extensions.get::<AuthUser>().map(|u| u.0.clone()),
        peer: parts
            .extensions
            .get::<axum::extract::ConnectInfo<SocketAddr>>()
            .map(|c| c.0),
    };
    let body = axum::body::to_bytes(body, MAX_BODY).await.map_err(|_| {
        refuse(
            Outcome::Invalid,
            format!("the body must be JSON of at most {MAX_BODY} bytes"),
        )
    });
    (who, body)
}

/// The request; when it is malformed, its target is still noted (if it names one) so that the
/// refusal is counted for that target.
fn parse<T: serde::de::DeserializeOwned>(body: &[u8], rec: &mut Record) -> Result<T, Refusal> {
    serde_json::from_slice(body).map_err(|e| {
        rec.target = serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v.get("target")?.as_str().map(String::from));
        refuse(Outcome::Invalid, format!("bad request: {e}"))
    })
}

/// The checks every request passes first: relief on, an authenticated relief user, a target
/// relief can act on.
fn gate(hub: &Hub, who: &Who, target: &str) -> Result<(ReliefConfig, Handle), Refusal> {
    let cfg = hub.config();
    if !cfg.enabled {
        return Err(refuse(
            Outcome::Disabled,
            "relief actions are disabled on this exporter ([relief] enabled = false)",
        ));
    }
    let Some(user) = &who.user else {
        return Err(refuse(
            Outcome::Unauthenticated,
            "relief needs basic-auth credentials of a relief user",
        ));
    };
    if !cfg.users.iter().any(|u| u == user) {
        return Err(refuse(
            Outcome::Denied,
            "this user may read the exporter but not act: relief.users does not list it",
        ));
    }
    let handle = hub.handle(target).ok_or_else(|| {
        refuse(
            Outcome::UnknownTarget,
            "no such target: relief acts on configured and discovered targets (not on /scrape ones)",
        )
    })?;
    Ok((cfg, handle))
}

/// `POST /relief/preview`: what an action would close and set, from a fresh CLIENT LIST on the
/// held connection, and the token that lets it run. Changes nothing in Redis.
pub async fn preview(
    State(store): State<Arc<Store>>,
    Extension(hub): Extension<Arc<Hub>>,
    req: Request,
) -> Response {
    let (who, body) = read(req).await;
    let mut rec = Record::default();
    let r = match body {
        Ok(b) => do_preview(&store, &hub, &who, &b, &mut rec).await,
        Err(e) => Err(e),
    };
    finish(&hub, Action::Preview, &who, rec, r)
}

/// `POST /relief/execute`: runs a previewed action, once, within the token's life.
pub async fn execute(Extension(hub): Extension<Arc<Hub>>, req: Request) -> Response {
    let (who, body) = read(req).await;
    let mut rec = Record::default();
    let r = match body {
        Ok(b) => do_execute(&hub, &who, &b, &mut rec).await,
        Err(e) => Err(e),
    };
    finish(&hub, Action::Execute, &who, rec, r)
}

/// Counts, audits and answers one request.
fn finish(
    hub: &Hub,
    action: Action,
    who: &Who,
    rec: Record,
    r: Result<(Outcome, serde_json::Value), Refusal>,
) -> Response {
    let (outcome, message, body) = match r {
        Ok((o, body)) => (o, String::new(), body),
        Err(e) => {
            let body = json!({ "result": e.outcome.as_str(), "error": e.message });
            (e.outcome, e.message, body)
        }
    };
    let target = rec.target.as_deref().unwrap_or("");
    hub.count(target, action, outcome);
    let closed: Vec<String> = rec.closed.iter().map(u64::to_string).collect();
    // Who, where from, on what, with which selector, what it closed or set, and how it ended.
    // Never a secret: the token shows as its first characters only; values from the request
    // are escaped and cut (a log line must not be forged with a newline in a name).
    tracing::info!(
        target: "audit",
        action = action.as_str(),
        result = outcome.as_str(),
        user = %clean(who.user.as_deref().unwrap_or("-"), 64),
        peer = %who.peer.map_or("-".to_string(), |p| p.to_string()),
        target_label = %clean(target, 200),
        select = %clean(rec.select.as_deref().unwrap_or("-"), 2000),
        finding = rec.finding.unwrap_or("-"),
        token = %rec.token.as_deref().map_or("-".to_string(), token_prefix),
        listed = rec.listed.unwrap_or(0),
        closed = %if closed.is_empty() { "-".to_string() } else { closed.join(",") },
        skipped = rec.skipped,
        set = %if rec.set.is_empty() { "-".to_string() } else { rec.set.join(",") },
        reason = %clean(if message.is_empty() { "-" } else { &message }, 500),
        "relief {}",
        action.as_str()
    );
    let mut resp = (
        outcome.status(),
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::to_vec_pretty(&body).unwrap_or_default(),
    )
        .into_response();
    if outcome == Outcome::Unauthenticated {
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Basic realm=\"redis-clients-exporter\""),
        );
    }
    resp
}

/// Control characters escaped (no forged log lines), at most `max` characters.
fn clean(s: &str, max: usize) -> String {
    let mut o = String::new();
    for (n, c) in s.chars().enumerate() {
        if n == max {
            o.push('…');
            break;
        }
        if c.is_control()
            || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
        {
            o.extend(c.escape_unicode());
        } else {
            o.push(c);
        }
    }
    o
}

/// Enough of a token to tell actions apart in the audit log, too little to use it.
fn token_prefix(t: &str) -> String {
    format!("{}…", t.chars().take(6).collect::<String>())
}

fn new_token() -> Result<String, Refusal> {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).map_err(|e| {
        refuse(
            Outcome::Failed,
            format!("no random numbers from the operating system: {e}"),
        )
    })?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b))
}

/// Checks the requested CONFIG SETs against the bounds, in the order an action runs them.
fn check_set(
    set: &BTreeMap<String, i64>,
    cfg: &ReliefConfig,
    poll_interval: Duration,
) -> Result<Vec<(Param, i64)>, Refusal> {
    let mut out = Vec::new();
    for (k, v) in set {
        let p = Param::parse(k).ok_or_else(|| {
            refuse(
                Outcome::Invalid,
                format!(
                    "relief cannot set `{}`: only maxclients, timeout and tcp_keepalive",
                    clean(k, 64)
                ),
            )
        })?;
        let Some((lo, hi)) = cfg.bounds.get(&p) else {
            return Err(refuse(
                Outcome::OutOfBounds,
                format!(
                    "{} cannot be set: relief.config_set_bounds.{} is not configured",
                    p.redis_name(),
                    p.key()
                ),
            ));
        };
        if !(lo..=hi).contains(&v) {
            return Err(refuse(
                Outcome::OutOfBounds,
                format!(
                    "{} {v} is outside relief.config_set_bounds.{} [{lo}, {hi}]",
                    p.redis_name(),
                    p.key()
                ),
            ));
        }
        // Redis would close the exporter's own connection between two polls, and with it the
        // one way in while the server is full.
        let floor = 2 * poll_interval.as_secs().max(1);
        if p == Param::Timeout && *v > 0 && (*v as u64) < floor {
            return Err(refuse(
                Outcome::OutOfBounds,
                format!("timeout {v} is shorter than twice this target's poll interval ({floor} s): Redis would close the exporter's own held connection between polls"),
            ));
        }
        if !out.iter().any(|(q, _)| *q == p) {
            out.push((p, *v));
        }
    }
    out.sort();
    Ok(out)
}

/// The finding a selector names, from the target's current diagnosis.
fn finding(
    store: &Store,
    target: &str,
    name: &str,
) -> Result<(Cause, crate::diagnose::Selector), Refusal> {
    let report = store
        .get(target)
        .and_then(|s| s.diagnosis.clone())
        .ok_or_else(|| refuse(Outcome::Invalid, "this target has no diagnosis yet"))?;
    let f = if name == "top" {
        report.top_cause().ok_or_else(|| {
            refuse(
                Outcome::Invalid,
                "the diagnosis has no finding at or above the cause threshold",
            )
        })?
    } else {
        report
            .findings
            .iter()
            .find(|f| f.cause.as_str() == name)
            .ok_or_else(|| {
                refuse(
                    Outcome::Invalid,
                    format!("the current diagnosis has no `{}` finding", clean(name, 64)),
                )
            })?
    };
    let sel = f.selector.clone().ok_or_else(|| {
        refuse(
            Outcome::Invalid,
            format!(
                "the `{}` finding blames no connections (its fix is configuration or the client service)",
                f.cause.as_str()
            ),
        )
    })?;
    Ok((f.cause, sel))
}

/// Runs `work` on the target's poller (its held connection) and waits for the answer.
async fn on_poller<T, F>(h: &Handle, work: F) -> Result<T, Refusal>
where
    T: Send + 'static,
    F: for<'a> FnOnce(&'a mut Conn) -> Work<'a, T> + Send + 'static,
{
    let (tx, rx) = oneshot::channel();
    // Each command of `work` is bounded by the connection's (the target's) command timeout.
    let job: Job = Box::new(move |conn| {
        Box::pin(async move {
            // The requester stopped waiting: it was told nothing happened, so nothing does.
            if tx.is_closed() {
                return;
            }
            let r = match conn {
                Some(c) if !c.broken() => work(c).await,
                _ => Err(refuse(
                    Outcome::Unavailable,
                    "the exporter holds no connection to this target right now (down or reconnecting): nothing can be done through it",
                )),
            };
            if tx.send(r).is_err() {
                tracing::warn!(target: "audit", "a relief job finished after its requester stopped waiting");
            }
        })
    });
    h.jobs.try_send(job).map_err(|e| match e {
        mpsc::error::TrySendError::Full(_) => refuse(
            Outcome::Unavailable,
            "other relief requests are queued for this target: retry in a moment",
        ),
        mpsc::error::TrySendError::Closed(_) => {
            refuse(Outcome::Unavailable, "this target's poller is not running")
        }
    })?;
    match tokio::time::timeout(POLLER_WAIT, rx).await {
        Ok(Ok(r)) => r,
        Ok(Err(_)) => Err(refuse(
            Outcome::Unavailable,
            "the poller stopped before running the request",
        )),
        Err(_) => Err(refuse(
            Outcome::Unavailable,
            format!("the poller did not take the request within {} s (a poll of a slow server in progress?): nothing was done", POLLER_WAIT.as_secs()),
        )),
    }
}

/// A job's work on the held connection.
type Work<'a, T> = std::pin::Pin<Box<dyn Future<Output = Result<T, Refusal>> + Send + 'a>>;

async fn command(
    c: &mut Conn,
    stage: Stage,
    name: &'static str,
    args: Vec<String>,
) -> Result<Value, PollError> {
    let all = std::iter::once(Arg::Str(name)).chain(args.iter().map(|a| Arg::Str(a)));
    c.call(stage, all).await
}

/// CLIENT LIST (of `ids` only, when given), decoded lossily: a name with invalid UTF-8 must
/// not make the list unreadable.
async fn client_list(c: &mut Conn, ids: Option<&[u64]>) -> Result<String, PollError> {
    let mut args = vec!["LIST".to_string()];
    if let Some(ids) = ids {
        args.push("ID".to_string());
        args.extend(ids.iter().map(u64::to_string));
    }
    let v = command(c, Stage::ClientList, "CLIENT", args).await?;
    match v.as_bytes() {
        Some(b) => Ok(String::from_utf8_lossy(b).into_owned()),
        None => Err(PollError::new(
            ErrorKind::Protocol,
            Stage::ClientList,
            "CLIENT LIST did not answer text",
        )),
    }
}

async fn own_id(c: &mut Conn) -> Result<Option<u64>, PollError> {
    let v = command(c, Stage::ClientId, "CLIENT", vec!["ID".into()]).await?;
    Ok(v.as_u64())
}

/// The current value of a parameter, or why it cannot be read.
async fn config_get(c: &mut Conn, p: Param) -> Result<Option<i64>, String> {
    let v = command(
        c,
        Stage::Config,
        "CONFIG",
        vec!["GET".into(), p.redis_name().into()],
    )
    .await
    .map_err(|e| e.to_string())?;
    let pair = v
        .into_strings()
        .ok_or_else(|| "CONFIG GET did not answer strings".to_string())?;
    Ok(pair.get(1).and_then(|v| v.trim().parse().ok()))
}

async fn config_set(c: &mut Conn, p: Param, v: i64) -> Result<(), PollError> {
    command(
        c,
        Stage::Config,
        "CONFIG",
        vec!["SET".into(), p.redis_name().into(), v.to_string()],
    )
    .await
    .map(|_| ())
}

/// What the preview's job brings back from Redis.
struct Snapshot {
    own: Option<u64>,
    reply: String,
    current: Vec<(Param, Result<Option<i64>, String>)>,
}

/// Up to `MAX_SHOWN` bytes of a string from Redis, cut at a character boundary.
fn shown(s: &str) -> String {
    if s.len() <= MAX_SHOWN {
        return s.to_string();
    }
    let mut end = MAX_SHOWN;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

async fn do_preview(
    store: &Store,
    hub: &Hub,
    who: &Who,
    body: &[u8],
    rec: &mut Record,
) -> Result<(Outcome, serde_json::Value), Refusal> {
    let req: PreviewRequest = parse(body, rec)?;
    rec.target = Some(req.target.clone());
    rec.select = serde_json::to_string(&req.select).ok();
    let (cfg, handle) = gate(hub, who, &req.target)?;
    let user = who.user.clone().unwrap_or_default();
    let set = check_set(&req.set, &cfg, handle.poll_interval)?;
    rec.set = set
        .iter()
        .map(|(p, v)| format!("{}={v}", p.redis_name()))
        .collect();
    if req.select.is_empty() && set.is_empty() {
        return Err(refuse(
            Outcome::Invalid,
            "nothing to do: give a selector (addr, name, lib, user, min_idle_seconds, finding) and/or set",
        ));
    }
    let found = match &req.select.finding {
        Some(name) => Some(finding(store, &req.target, name)?),
        None => None,
    };
    rec.finding = found.as_ref().map(|(c, _)| c.as_str());
    let criteria = Criteria::new(&req.select, found).map_err(|m| refuse(Outcome::Invalid, m))?;
    let limit = cfg.max_previews_per_target_per_minute;
    hub.admit(&req.target, Action::Preview, limit).map_err(|wait| {
        refuse(
            Outcome::RateLimited,
            format!("more than relief.max_previews_per_target_per_minute ({limit}) previews on this target in the last minute: retry in {} s", wait.as_secs() + 1),
        )
    })?;
    let params: Vec<Param> = set.iter().map(|(p, _)| *p).collect();
    let wants_list = !req.select.is_empty();
    let snap = on_poller(&handle, move |c| {
        Box::pin(async move {
            let mut current = Vec::new();
            for p in params {
                current.push((p, config_get(c, p).await));
            }
            let (own, reply) = if wants_list {
                (own_id(c).await?, client_list(c, None).await?)
            } else {
                (None, String::new())
            };
            Ok(Snapshot {
                own,
                reply,
                current,
            })
        })
    })
    .await?;

    let mut conns = Vec::new();
    let mut listed = Vec::new();
    let mut left_out: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut lib_names = false;
    Parser::new().each_entry(&snap.reply, |e| {
        lib_names |= e.lib_name.is_some();
        match criteria.verdict(e, snap.own) {
            Verdict::NoMatch => {}
            Verdict::Protected(p) => *left_out.entry(p.as_str()).or_insert(0) += 1,
            Verdict::Close => {
                let (Some(id), Some(age)) = (e.id, e.age) else {
                    *left_out.entry(Protected::NoId.as_str()).or_insert(0) += 1;
                    return;
                };
                conns.push(Previewed {
                    id,
                    addr: e.addr.to_string(),
                    age,
                });
                listed.push(json!({
                    "id": id,
                    "addr": shown(e.addr),
                    "name": shown(e.name.unwrap_or("")),
                    "user": shown(e.user.unwrap_or("")),
                    "lib": shown(e.lib_name.unwrap_or("")),
                    "age_seconds": age,
                    "idle_seconds": e.idle,
                    "flags": shown(e.flags.unwrap_or("")),
                    "cmd": shown(e.cmd.unwrap_or("")),
                }));
            }
        }
    });
    rec.listed = Some(conns.len());
    if conns.len() > cfg.max_connections_per_action {
        return Err(refuse(
            Outcome::TooMany,
            format!(
                "the selector matches {} connections, more than relief.max_connections_per_action ({}): narrow it",
                conns.len(),
                cfg.max_connections_per_action
            ),
        ));
    }
    let mut notes = Vec::new();
    if req.select.lib.is_some() && !lib_names && wants_list {
        notes.push(
            "this server does not report lib-name (Redis 7.2+, Valkey 8+): `lib` matches nothing"
                .to_string(),
        );
    }
    for (what, flag) in [("pubsub", "include_pubsub"), ("blocked", "include_blocked")] {
        if let Some(n) = left_out.get(what) {
            notes.push(format!(
                "{n} {what} connection(s) matched but are left alone: add {flag} to close them"
            ));
        }
    }
    let set_json: Vec<serde_json::Value> = set
        .iter()
        .map(|(p, v)| {
            let current = snap
                .current
                .iter()
                .find(|(q, _)| q == p)
                .map(|(_, c)| c.clone());
            let mut o = json!({
                "parameter": p.key(),
                "value": v,
                "when": if p.before_kills() { "before the kills" } else { "after the kills" },
            });
            match current {
                Some(Ok(c)) => o["current"] = json!(c),
                Some(Err(e)) => {
                    o["current"] = serde_json::Value::Null;
                    o["warning"] = json!(format!(
                        "CONFIG GET failed ({e}): CONFIG SET will likely fail too"
                    ));
                }
                None => {}
            }
            o
        })
        .collect();
    let token = if conns.is_empty() && set.is_empty() {
        notes.push("nothing matches: no token".to_string());
        None
    } else {
        let token = new_token()?;
        rec.token = Some(token.clone());
        hub.remember(
            token.clone(),
            Pending {
                target: req.target.clone(),
                user,
                select: req.select.clone(),
                criteria: criteria.clone(),
                conns,
                set: set.clone(),
                expires: Instant::now() + cfg.token_ttl,
                used: false,
            },
        );
        Some(token)
    };
    let finding_json = criteria
        .finding
        .as_ref()
        .map(|(cause, sel)| json!({ "cause": cause.as_str(), "selector": sel }));
    Ok((
        Outcome::Ok,
        json!({
            "result": "ok",
            "target": req.target,
            "token": token,
            "expires_in_seconds": token.as_ref().map(|_| cfg.token_ttl.as_secs_f64()),
            "select": req.select,
            "finding": finding_json,
            "count": listed.len(),
            "connections": listed,
            "left_out": left_out,
            "set": set_json,
            "notes": notes,
        }),
    ))
}

/// What the execute job did.
#[derive(Debug, Default, Serialize)]
struct Executed {
    closed: Vec<u64>,
    skipped: Vec<Skipped>,
    set: Vec<SetResult>,
    connected_clients_after: Option<u64>,
    /// The Redis error that stopped the action part-way, if any.
    error: Option<String>,
    /// Whether anything had changed when `error` happened.
    changed: bool,
}

#[derive(Debug, Serialize)]
struct Skipped {
    id: u64,
    reason: &'static str,
}

#[derive(Debug, Serialize)]
struct SetResult {
    parameter: &'static str,
    value: i64,
    previous: Option<i64>,
    applied: bool,
}

/// On the held connection: CONFIG SETs that go first, the re-check, the kills, the CONFIG SETs
/// that go last. Every previewed connection is closed only if it is still the same connection
/// (same address, not younger) and still matches the selector and no protection.
async fn run_action(c: &mut Conn, p: Pending) -> Executed {
    let mut x = Executed::default();
    for (param, v) in p.set.iter().filter(|(q, _)| q.before_kills()) {
        let previous = config_get(c, *param).await.ok().flatten();
        if let Err(e) = config_set(c, *param, *v).await {
            x.error = Some(format!("CONFIG SET {} {v}: {e}", param.redis_name()));
            return x;
        }
        x.changed = true;
        x.set.push(SetResult {
            parameter: param.key(),
            value: *v,
            previous,
            applied: true,
        });
    }
    let mut kill: Vec<&Previewed> = Vec::new();
    if !p.conns.is_empty() {
        let ids: Vec<u64> = p.conns.iter().map(|c| c.id).collect();
        let fresh = async {
            let own = own_id(c).await?;
            // CLIENT LIST ID (6.2+) costs a microsecond per listed id where a full list holds
            // Redis' main thread for every client; older servers answer a syntax error.
            let reply = match client_list(c, Some(&ids)).await {
                Ok(r) => r,
                Err(e) if e.kind == ErrorKind::Other => client_list(c, None).await?,
                Err(e) => return Err(e),
            };
            Ok::<_, PollError>((own, reply))
        };
        let (own, reply) = match fresh.await {
            Ok(v) => v,
            Err(e) => {
                x.error = Some(format!("re-reading the connections: {e}"));
                return x;
            }
        };
        let mut now: HashMap<u64, (String, Option<u64>, Verdict)> = HashMap::new();
        Parser::new().each_entry(&reply, |e| {
            if let Some(id) = e.id {
                now.insert(id, (e.addr.to_string(), e.age, p.criteria.verdict(e, own)));
            }
        });
        for prev in &p.conns {
            let reason = match now.get(&prev.id) {
                None => Some("gone"),
                Some((addr, age, _)) if *addr != prev.addr || age.is_none_or(|a| a < prev.age) => {
                    Some("not the same connection")
                }
                Some((_, _, v)) if *v != Verdict::Close => Some("no longer matches"),
                _ => None,
            };
            match reason {
                Some(reason) => x.skipped.push(Skipped {
                    id: prev.id,
                    reason,
                }),
                None => kill.push(prev),
            }
        }
    }
    if !kill.is_empty() {
        // Redis 7.0's CLIENT KILL ID takes one id: one command per connection, pipelined on
        // the held connection. ADDR makes Redis itself check it is still the same connection.
        c.settle();
        let mut sent = 0;
        for k in &kill {
            let args = [
                Arg::Str("CLIENT"),
                Arg::Str("KILL"),
                Arg::Str("ID"),
                Arg::Int(k.id),
                Arg::Str("ADDR"),
                Arg::Str(&k.addr),
                Arg::Str("SKIPME"),
                Arg::Str("yes"),
            ];
            if let Err(e) = c.send(Stage::ClientId, args).await {
                x.error = Some(format!("CLIENT KILL: {e}"));
                break;
            }
            sent += 1;
        }
        for k in &kill[..sent] {
            match c.recv(Stage::ClientId).await {
                Ok(v) if v.as_u64() == Some(1) => x.closed.push(k.id),
                Ok(_) => x.skipped.push(Skipped {
                    id: k.id,
                    reason: "gone",
                }),
                Err(e) if matches!(e.kind, ErrorKind::Timeout | ErrorKind::Connect) => {
                    // Some may have been closed: the next poll shows it.
                    x.changed = true;
                    x.error = Some(format!("CLIENT KILL: {e}"));
                    return x;
                }
                Err(e) => {
                    x.skipped.push(Skipped {
                        id: k.id,
                        reason: "refused",
                    });
                    x.error.get_or_insert_with(|| format!("CLIENT KILL: {e}"));
                }
            }
        }
        x.changed |= !x.closed.is_empty();
        if sent < kill.len() {
            return x;
        }
    }
    for (param, v) in p.set.iter().filter(|(q, _)| !q.before_kills()) {
        let previous = config_get(c, *param).await.ok().flatten();
        match config_set(c, *param, *v).await {
            Ok(()) => {
                x.changed = true;
                x.set.push(SetResult {
                    parameter: param.key(),
                    value: *v,
                    previous,
                    applied: true,
                });
            }
            Err(e) => {
                x.set.push(SetResult {
                    parameter: param.key(),
                    value: *v,
                    previous,
                    applied: false,
                });
                x.error
                    .get_or_insert_with(|| format!("CONFIG SET {} {v}: {e}", param.redis_name()));
            }
        }
    }
    if let Ok(Value::String(info)) = c.command(Stage::Info, &["INFO", "clients"]).await {
        x.connected_clients_after = crate::redis::info::Info::parse(&info)
            .connected_clients
            .map(|v| v as u64);
    }
    x
}

async fn do_execute(
    hub: &Hub,
    who: &Who,
    body: &[u8],
    rec: &mut Record,
) -> Result<(Outcome, serde_json::Value), Refusal> {
    let req: ExecuteRequest = parse(body, rec)?;
    rec.target = Some(req.target.clone());
    rec.token = Some(req.token.clone());
    let (cfg, handle) = gate(hub, who, &req.target)?;
    let user = who.user.clone().unwrap_or_default();
    let pending = hub.redeem(
        &req.token,
        &req.target,
        &user,
        cfg.max_actions_per_target_per_minute,
    )?;
    rec.select = serde_json::to_string(&pending.select).ok();
    rec.finding = pending.criteria.finding.as_ref().map(|(c, _)| c.as_str());
    rec.listed = Some(pending.conns.len());
    let x = on_poller(&handle, move |c| {
        Box::pin(async move { Ok(run_action(c, pending).await) })
    })
    .await?;
    rec.closed = x.closed.clone();
    rec.skipped = x.skipped.len();
    rec.set = x
        .set
        .iter()
        .map(|s| match (s.applied, s.previous) {
            (true, Some(p)) => format!("{}={} (was {p})", s.parameter, s.value),
            (true, None) => format!("{}={}", s.parameter, s.value),
            (false, _) => format!("{}={} (failed)", s.parameter, s.value),
        })
        .collect();
    let outcome = match (&x.error, x.changed) {
        (None, _) => Outcome::Ok,
        (Some(_), true) => Outcome::Partial,
        (Some(e), false) => {
            return Err(refuse(Outcome::Failed, format!("{e}: nothing was changed")))
        }
    };
    let mut body = serde_json::to_value(&x).unwrap_or_default();
    body["result"] = json!(outcome.as_str());
    body["target"] = json!(req.target);
    body["closed_count"] = json!(x.closed.len());
    if let Some(e) = &x.error {
        // Say it in the audit line too.
        rec.set.push(format!("error: {}", clean(e, 200)));
    }
    Ok((outcome, body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnose::shell::quote;
    use crate::diagnose::{CloseBy, Evidence, Only, Selector};

    fn finding(cause: Cause, only: Option<Only>, sets: &[(Param, i64)]) -> Finding {
        let selector = only.map(|only| Selector {
            group: crate::analysis::aggregate::Dimension::ClientName,
            key: "x".into(),
            only,
            idle_seconds: 60,
        });
        let mut remediation: Vec<Step> = selector
            .iter()
            .map(|s| Step::close("w", "redis-cli -p 1", s.clone(), CloseBy::Reselect))
            .collect();
        remediation.extend(
            sets.iter()
                .map(|&(p, v)| Step::set_param("w", "redis-cli -p 1", p, v)),
        );
        Finding {
            cause,
            title: "t".into(),
            confidence: 0.9,
            severity: 1.0,
            score: 0.9,
            threat: String::new(),
            culprit: None,
            summary: String::new(),
            evidence: vec![Evidence {
                what: "w".into(),
                value: "v".into(),
            }],
            remediation,
            selector,
        }
    }

    #[test]
    fn the_relieve_step_is_quoted_and_asks_only_what_bounds_allow() {
        let hostile = "x';touch${IFS}/tmp/P;echo'";
        let bounds: BTreeMap<Param, (i64, i64)> =
            [(Param::Timeout, (30, 3600))].into_iter().collect();
        let f = finding(
            Cause::ConnectionLeak,
            Some(Only::Idle),
            &[(Param::Timeout, 300)],
        );
        let s = step("http://127.0.0.1:9816", hostile, &f, &bounds).expect("a step");
        let cmd = s.command().expect("command").to_string();
        assert_eq!(
            cmd,
            format!("redis-clients-exporter relieve --exporter http://127.0.0.1:9816 --target {} --finding connection_leak --set timeout=300", quote(hostile))
        );
        assert!(
            s.why.contains("Works while the server is full"),
            "{}",
            s.why
        );
        // Out of bounds or without bounds: not offered. Nothing to do: no step.
        let f = finding(Cause::MaxclientsTooLow, None, &[(Param::Maxclients, 20000)]);
        assert!(step("u", "t", &f, &bounds).is_none());
        let f = finding(Cause::RiskyConfig, None, &[(Param::Timeout, 5)]);
        assert!(step("u", "t", &f, &bounds).is_none());
        let f = finding(Cause::StalePubsub, Some(Only::IdlePubsub), &[]);
        let cmd = step("u", "t", &f, &bounds)
            .and_then(|s| s.command().map(str::to_string))
            .expect("cmd");
        assert!(
            cmd.ends_with("--finding stale_pubsub --include-pubsub"),
            "{cmd}"
        );
        let f = finding(Cause::BlockedClients, Some(Only::Blocked), &[]);
        let cmd = step("u", "t", &f, &bounds)
            .and_then(|s| s.command().map(str::to_string))
            .expect("cmd");
        assert!(
            cmd.ends_with("--finding blocked_clients --include-blocked"),
            "{cmd}"
        );
    }

    #[test]
    fn tokens_are_long_random_and_shown_by_prefix_only() {
        let a = new_token().expect("token");
        let b = new_token().expect("token");
        assert_ne!(a, b);
        assert_eq!(a.len(), 43, "32 random bytes, base64url");
        let p = token_prefix(&a);
        assert!(a.starts_with(p.trim_end_matches('…')) && p.chars().count() == 7);
    }

    #[test]
    fn audit_values_cannot_forge_lines() {
        assert_eq!(clean("a\nb\u{1b}[2J", 100), "a\\u{a}b\\u{1b}[2J");
        assert_eq!(clean("abcdef", 3), "abc…");
    }

    #[test]
    fn set_values_are_checked_against_bounds_and_the_poll_interval() {
        let cfg = ReliefConfig {
            bounds: [
                (Param::Timeout, (0, 3600)),
                (Param::Maxclients, (100, 20_000)),
            ]
            .into_iter()
            .collect(),
            ..ReliefConfig::default()
        };
        let set = |pairs: &[(&str, i64)]| {
            check_set(
                &pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
                &cfg,
                Duration::from_secs(1),
            )
            .map_err(|r| (r.outcome, r.message))
        };
        assert_eq!(
            set(&[("maxclients", 200), ("timeout", 30)]).expect("ok"),
            vec![(Param::Timeout, 30), (Param::Maxclients, 200)],
            "timeout first"
        );
        assert_eq!(
            set(&[("maxclients", 50)]).expect_err("low").0,
            Outcome::OutOfBounds
        );
        let (o, m) = set(&[("tcp_keepalive", 60)]).expect_err("no bounds");
        assert!(
            o == Outcome::OutOfBounds && m.contains("relief.config_set_bounds.tcp_keepalive"),
            "{m}"
        );
        assert_eq!(
            set(&[("save", 1)]).expect_err("unknown").0,
            Outcome::Invalid
        );
        let (o, m) = set(&[("timeout", 1)]).expect_err("below two polls");
        assert!(
            o == Outcome::OutOfBounds && m.contains("own held connection"),
            "{m}"
        );
        set(&[("timeout", 0)]).expect("0 = never is allowed by these bounds");
    }

    #[test]
    fn rate_windows_count_per_target_and_action() {
        let hub = Hub::default();
        assert!(hub.admit("a", Action::Execute, 2).is_ok());
        assert!(hub.admit("a", Action::Execute, 2).is_ok());
        let wait = hub.admit("a", Action::Execute, 2).expect_err("third");
        assert!(wait <= Duration::from_secs(60) && wait > Duration::from_secs(50));
        assert!(hub.admit("b", Action::Execute, 2).is_ok());
        assert!(hub.admit("a", Action::Preview, 2).is_ok());
    }
}
