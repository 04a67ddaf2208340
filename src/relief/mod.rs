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
//!
//! The steps, one file each: `hub` (the [`ReliefHub`]: pollers' queues, tokens, rate windows,
//! counts, who may act), `preview` and `execute` (what a request does, on the held connection
//! through `held`), `steps` (the `relieve` step added to the daemon's diagnosis), `select`
//! (which connections a selector means, and which are never closed). The HTTP handlers and the
//! audit line are in src/web/relief.rs.

mod execute;
mod held;
mod hub;
mod preview;
mod select;
mod steps;

pub use crate::config::relief::{Param, RawRelief, ReliefConfig};
pub use crate::targets::jobs::{idle, Job, POLLER_WAIT, QUEUE};
pub use execute::{execute, ExecuteRequest};
pub use hub::ReliefHub;
pub use preview::{preview, PreviewRequest};
pub use select::{Addr, Criteria, Protected, Select, Verdict};
pub use steps::step;

use crate::redis::connection::PollError;

/// The basic-auth user a request authenticated as (a request extension): relief acts only
/// for the users `relief.users` lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthUser(pub String);

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

/// What the audit line says about one request: filled in by the steps as they learn it, so
/// that a request refused part-way is still audited with what it asked (src/web/relief.rs
/// writes the line).
#[derive(Debug, Default)]
pub struct AuditRecord {
    pub target: Option<String>,
    /// The selector, as JSON.
    pub select: Option<String>,
    pub finding: Option<&'static str>,
    pub token: Option<String>,
    pub listed: Option<usize>,
    pub closed: Vec<u64>,
    pub skipped: usize,
    pub set: Vec<String>,
}

/// Control characters escaped (no forged log lines), at most `max` characters: the one rule,
/// `redis::untrusted::escape`.
pub fn clean(s: &str, max: usize) -> String {
    crate::redis::untrusted::escape(s, max).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_values_cannot_forge_lines() {
        assert_eq!(clean("a\nb\u{1b}[2J", 100), "a\\u{a}b\\u{1b}[2J");
        assert_eq!(clean("abcdef", 3), "abc…");
    }
}
