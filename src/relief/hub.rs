//! The [`ReliefHub`]: the exporter's relief state, shared by the pollers (their job queues)
//! and the HTTP handlers: configuration, single-use tokens, rate windows, counts, and the gate
//! every request passes (relief on, a relief user, a target relief can act on).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::{clean, refuse, Action, Criteria, Job, Outcome, Param, Refusal, ReliefConfig, Select};
use crate::config::Target;
use crate::diagnose::Report;

/// Tokens (used or not) remembered at once; the oldest go first.
const MAX_TOKENS: usize = 256;

/// A poller's side of the hub: where to send its jobs, and its timing.
#[derive(Clone)]
pub(super) struct PollerHandle {
    pub(super) jobs: mpsc::Sender<Job>,
    pub(super) poll_interval: Duration,
}

/// A previewed connection, as the execute step must find it again.
#[derive(Debug, Clone)]
pub(super) struct Previewed {
    pub(super) id: u64,
    pub(super) addr: String,
    pub(super) age: u64,
}

/// What a token stands for.
pub(super) struct Pending {
    pub(super) target: String,
    pub(super) user: String,
    pub(super) select: Select,
    pub(super) criteria: Criteria,
    pub(super) conns: Vec<Previewed>,
    pub(super) set: Vec<(Param, i64)>,
    pub(super) expires: Instant,
    pub(super) used: bool,
}
/// The exporter's relief state, shared by the pollers (their job queues) and the HTTP
/// handlers: configuration, tokens, rate windows, counts. Lives in the [`Store`].
#[derive(Default)]
pub struct ReliefHub {
    state: Mutex<HubState>,
}

#[derive(Default)]
struct HubState {
    config: ReliefConfig,
    exporter_url: String,
    pollers: HashMap<String, PollerHandle>,
    tokens: HashMap<String, Pending>,
    windows: HashMap<(String, Action), VecDeque<Instant>>,
    counts: BTreeMap<(String, Action, Outcome), u64>,
    /// Requests to a relief route refused for failed basic-auth credentials, per action.
    auth_failures: [u64; 2],
}
impl ReliefHub {
    fn lock(&self) -> std::sync::MutexGuard<'_, HubState> {
        // A panic under the lock leaves plain maps behind: still consistent enough to serve.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
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
            PollerHandle {
                jobs,
                poll_interval: target.poll_interval,
            },
        );
    }

    /// The target is gone: nothing can act on it any more.
    fn forget_queue(&self, target: &str) {
        self.lock().pollers.remove(target);
    }

    fn handle(&self, target: &str) -> Option<PollerHandle> {
        self.lock().pollers.get(target).cloned()
    }

    /// The checks every request passes first: relief on, an authenticated relief user, a
    /// target relief can act on.
    pub(super) fn authorize(
        &self,
        user: Option<&str>,
        target: &str,
    ) -> Result<(ReliefConfig, PollerHandle), Refusal> {
        let cfg = self.config();
        if !cfg.enabled {
            return Err(refuse(
                Outcome::Disabled,
                "relief actions are disabled on this exporter ([relief] enabled = false)",
            ));
        }
        let Some(user) = user else {
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
        let handle = self.handle(target).ok_or_else(|| {
            refuse(
                Outcome::UnknownTarget,
                "no such target: relief acts on configured and discovered targets (not on /scrape ones)",
            )
        })?;
        Ok((cfg, handle))
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

    /// Counts one request's outcome for `redis_clients_exporter_actions_total`.
    /// A request to a relief route whose basic-auth credentials failed (the web layer checks
    /// them before relief sees the request): an audit line and a count, so that a password
    /// being guessed shows. `user` is the name the request claimed (untrusted: cleaned, cut).
    pub fn refused_credentials(&self, path: &str, user: Option<&str>, peer: Option<SocketAddr>) {
        let action = if path.ends_with("/execute") {
            Action::Execute
        } else {
            Action::Preview
        };
        self.lock().auth_failures[action as usize] += 1;
        tracing::warn!(
            target: "audit",
            action = action.as_str(),
            result = Outcome::Unauthenticated.as_str(),
            user = %clean(user.unwrap_or("-"), 64),
            peer = %peer.map_or("-".to_string(), |p| p.to_string()),
            reason = "basic-auth credentials refused",
            "relief {}",
            action.as_str()
        );
    }

    /// `(action, count)` of [`refused_credentials`](Self::refused_credentials), for
    /// `redis_clients_exporter_relief_auth_failures_total`: with relief enabled both actions
    /// from the start (so that `increase()` sees the first), otherwise once one was refused.
    pub fn auth_failures(&self) -> Vec<(&'static str, u64)> {
        let i = self.lock();
        if !i.config.enabled && i.auth_failures == [0, 0] {
            return Vec::new();
        }
        [Action::Preview, Action::Execute]
            .into_iter()
            .map(|a| (a.as_str(), i.auth_failures[a as usize]))
            .collect()
    }

    pub fn count(&self, target: &str, action: Action, outcome: Outcome) {
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
    pub(super) fn admit(&self, target: &str, action: Action, limit: u32) -> Result<(), Duration> {
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

    pub(super) fn remember(&self, token: String, p: Pending) {
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
    pub(super) fn redeem(
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
            if let Some(step) = super::step(&url, target, f, &bounds) {
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

impl crate::targets::jobs::Actions for ReliefHub {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_windows_count_per_target_and_action() {
        let hub = ReliefHub::default();
        assert!(hub.admit("a", Action::Execute, 2).is_ok());
        assert!(hub.admit("a", Action::Execute, 2).is_ok());
        let wait = hub.admit("a", Action::Execute, 2).expect_err("third");
        assert!(wait <= Duration::from_secs(60) && wait > Duration::from_secs(50));
        assert!(hub.admit("b", Action::Execute, 2).is_ok());
        assert!(hub.admit("a", Action::Preview, 2).is_ok());
    }
}
