//! `/scrape?target=redis://host:port&auth=PROFILE`: targets named by Prometheus service
//! discovery rather than by the configuration. Off unless `scrape_allow` lists where it may
//! connect (docs/security.md). The first scrape of a target starts an ordinary poller (one held
//! connection) and waits a bounded time for its first poll; later scrapes read its last poll
//! from memory. Targets not scraped for `scrape_idle_timeout_seconds` are stopped (those never
//! up after `scrape_never_up_timeout_seconds`), and at most `scrape_max_targets` run at once:
//! past it, a target that has never been up makes room for a new one. Their states live in a
//! store of their own, so `/metrics` is unchanged and each `/scrape` renders one target only.
//!
//! Whoever can reach the port chooses these targets, so what they are told of one is generic
//! ([`for_caller`]): the class of the failure, never the remote service's own words, and the
//! same answer for a closed port and for an open port that is not Redis.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::Mutex;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::topology::{DynamicConfig, Resolver, ScrapeTargetError};
use crate::config::Config;
use crate::diagnose::Report;
use crate::targets::reconcile::{PollerSpec, TaskSet};
use crate::targets::state::{ErrorKind, Store, TargetState};

struct Settings {
    limits: DynamicConfig,
    resolver: Resolver,
    top_k: usize,
    idle_threshold_seconds: u64,
}

struct Inner {
    pollers: TaskSet<PollerSpec>,
    /// By label: when the target was last scraped, and how it was asked for (so that a reload
    /// can check it against the new allowlists).
    last_scrape: HashMap<String, Asked>,
}

struct Asked {
    at: Instant,
    address: String,
    auth: Option<String>,
}

pub struct Dynamic {
    settings: RwLock<Settings>,
    inner: Mutex<Inner>,
    store: Arc<Store>,
    /// Scrapes that may wait for a first poll at once ([`FIRST_POLL_WAITERS`]).
    waiters: tokio::sync::Semaphore,
}

/// At most this many `/scrape` requests wait for a new target's first poll at once; the others
/// answer at once with what there is (`redis_up 0` until the first poll ends). A handler that
/// waits keeps its HTTP connection busy, and the server never closes a busy connection to make
/// room (src/web/http.rs: 256): a flood of scrapes of new targets that never answer must not
/// hold them all.
pub const FIRST_POLL_WAITERS: usize = 32;

/// Why a scrape was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScrapeError {
    #[error("missing `target` parameter (/scrape?target=redis://host:port)")]
    MissingTarget,
    #[error("{0}")]
    Target(#[from] ScrapeTargetError),
    #[error("/scrape is turned off in this exporter's configuration")]
    Disabled,
    #[error("this target runs with another auth profile or scheme; a scrape cannot change how a running target connects (it changes at a reload or when the target expires)")]
    Held,
    #[error("too many dynamic targets ({0} running, the limit set by scrape_max_targets), all of them up at least once; idle ones expire after scrape_idle_timeout_seconds")]
    Full(usize),
}

impl Dynamic {
    /// Creates the registry and its expiry task (stopped with `shutdown`).
    pub fn new(cfg: &Config, shutdown: CancellationToken) -> Arc<Dynamic> {
        let d = Arc::new(Dynamic {
            settings: RwLock::new(settings(cfg)),
            inner: Mutex::new(Inner {
                pollers: TaskSet::new(shutdown.clone()),
                last_scrape: HashMap::new(),
            }),
            store: Arc::new(Store::default()),
            waiters: tokio::sync::Semaphore::new(FIRST_POLL_WAITERS),
        });
        let weak = Arc::downgrade(&d);
        tokio::spawn(async move {
            loop {
                let Some(d) = weak.upgrade() else { return };
                let every = {
                    let l = &d.read_settings().limits;
                    (l.idle_timeout.min(l.never_up_timeout) / 4)
                        .clamp(Duration::from_millis(50), Duration::from_secs(30))
                };
                drop(d);
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(every) => {}
                }
                let Some(d) = weak.upgrade() else { return };
                d.expire().await;
            }
        });
        d
    }

    fn read_settings(&self) -> std::sync::RwLockReadGuard<'_, Settings> {
        self.settings.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes the new allowlists, limits, profiles and defaults. Each running target is asked
    /// for again as it was: one the new configuration refuses (its host no longer allowed, its
    /// profile no longer listing it, `/scrape` turned off) stops now rather than at its expiry,
    /// one that resolves differently (new credentials, timeouts, top_k) restarts, and the rest
    /// keep their connection.
    pub async fn configure(&self, cfg: &Config) {
        *self.settings.write().unwrap_or_else(|e| e.into_inner()) = settings(cfg);
        let mut inner = self.inner.lock().await;
        let wanted: Vec<(String, Option<PollerSpec>)> = {
            let s = self.read_settings();
            inner
                .last_scrape
                .iter()
                .map(|(label, asked)| {
                    let spec = s
                        .limits
                        .enabled()
                        .then(|| {
                            s.resolver
                                .scrape_target(
                                    &asked.address,
                                    asked.auth.as_deref(),
                                    &s.limits.allow,
                                )
                                .ok()
                        })
                        .flatten()
                        .map(|target| PollerSpec {
                            target,
                            top_k: s.top_k,
                            idle_threshold_seconds: s.idle_threshold_seconds,
                            topology: None,
                        });
                    (label.clone(), spec)
                })
                .collect()
        };
        let mut stopped = Vec::new();
        for (label, spec) in wanted {
            match spec {
                Some(spec) => {
                    let store = &self.store;
                    inner
                        .pollers
                        .ensure(
                            &label,
                            spec,
                            |spec, stop| spec.spawn(store, stop),
                            |l| store.remove(l),
                        )
                        .await;
                }
                None => {
                    inner.last_scrape.remove(&label);
                    if let Some(task) = inner.pollers.cancel(&label) {
                        stopped.push((label, task));
                    }
                }
            }
        }
        drop(inner);
        self.forget(stopped, "no longer allowed by the configuration")
            .await;
    }

    /// True when `/scrape` answers at all (an allowlist is configured).
    pub fn enabled(&self) -> bool {
        self.read_settings().limits.enabled()
    }

    /// True once the target has completed a poll: a Redis that answered, not junk.
    fn ever_up(&self, label: &str) -> bool {
        self.store
            .get(label)
            .is_some_and(|s| s.last_success.is_some())
    }

    /// Stops targets not scraped for the idle timeout (the shorter never-up timeout for those
    /// that have never been up). Their pollers are waited for after the lock is let go, so that
    /// scrapes never queue behind a slow close.
    async fn expire(&self) {
        let (idle, never_up) = {
            let l = &self.read_settings().limits;
            (l.idle_timeout, l.never_up_timeout.min(l.idle_timeout))
        };
        let stopped: Vec<(String, JoinHandle<()>)> = {
            let mut inner = self.inner.lock().await;
            let old: Vec<String> = inner
                .last_scrape
                .iter()
                .filter(|(l, asked)| {
                    let limit = if self.ever_up(l) { idle } else { never_up };
                    asked.at.elapsed() >= limit
                })
                .map(|(l, _)| l.clone())
                .collect();
            old.into_iter()
                .filter_map(|label| {
                    inner.last_scrape.remove(&label);
                    let task = inner.pollers.cancel(&label)?;
                    Some((label, task))
                })
                .collect()
        };
        self.forget(stopped, "expired").await;
    }

    /// Waits for stopped pollers, then drops their states.
    async fn forget(&self, stopped: Vec<(String, JoinHandle<()>)>, why: &'static str) {
        for (label, task) in stopped {
            let _ = task.await;
            // A scrape may have started the target again meanwhile: its state stays.
            let inner = self.inner.lock().await;
            if !inner.pollers.labels().any(|l| l == label) {
                self.store.remove(&label);
            }
            drop(inner);
            tracing::info!(target_label = %label, why, "dynamic target stopped");
        }
    }

    /// The target to stop so that a new one fits: never one that has been up (a Redis in an
    /// outage is exactly what must stay watched); first those that have failed a poll, then
    /// those whose first poll is still running; the least recently scraped first.
    fn eviction_candidate(&self, inner: &Inner) -> Option<String> {
        inner
            .pollers
            .labels()
            .filter_map(|l| {
                let s = self.store.get(l).unwrap_or_default();
                if s.last_success.is_some() {
                    return None;
                }
                let scraped = inner.last_scrape.get(l).map(|a| a.at);
                Some((s.counters.polls == 0, scraped, l.to_string()))
            })
            .min()
            .map(|(_, _, l)| l)
    }

    pub async fn stop_all(&self) {
        let mut inner = self.inner.lock().await;
        inner.last_scrape.clear();
        inner.pollers.stop_all(|l| self.store.remove(l)).await;
    }

    /// The dynamic targets' last polls, for `/diagnose`: the alert on a diagnosis links there
    /// whichever way its target was scraped. As a caller may see them ([`for_caller`]).
    pub fn snapshot(&self) -> Vec<(String, Arc<TargetState>)> {
        self.store
            .snapshot()
            .into_iter()
            .map(|(l, s)| {
                let s = for_caller(&l, s);
                (l, s)
            })
            .collect()
    }

    /// Renders one target, starting its poller on the first scrape.
    pub async fn scrape(
        self: &Arc<Self>,
        address: &str,
        auth: Option<&str>,
    ) -> Result<(String, Arc<TargetState>), ScrapeError> {
        let (spec, wait) = {
            let s = self.read_settings();
            if !s.limits.enabled() {
                return Err(ScrapeError::Disabled);
            }
            let target = s.resolver.scrape_target(address, auth, &s.limits.allow)?;
            let spec = PollerSpec {
                target,
                top_k: s.top_k,
                idle_threshold_seconds: s.idle_threshold_seconds,
                topology: None,
            };
            (spec, s.limits.clone())
        };
        let label = spec.target.label.clone();
        // A target asked for with another auth profile or scheme is the same server. A caller
        // must never close a held connection (on a full server, a leaker takes the slot and the
        // exporter goes blind): a target that has been up, or whose first poll still runs,
        // keeps its connection and the caller is refused. Only one that has never been up and
        // has failed its first poll (wrong credentials, say) restarts with the new ones. The
        // old poller is stopped outside the lock (a QUIT to a slow server takes up to a
        // second), so that scrapes of other targets do not queue behind it; its series go
        // before the new one starts.
        let replaced = {
            let mut inner = self.inner.lock().await;
            if inner.pollers.spec(&label).is_some_and(|s| *s != spec) {
                let s = self.store.get(&label).unwrap_or_default();
                if s.last_success.is_some() || s.counters.polls == 0 {
                    return Err(ScrapeError::Held);
                }
                inner.pollers.cancel(&label)
            } else {
                None
            }
        };
        if let Some(old) = replaced {
            let _ = old.await;
            self.store.remove(&label);
        }
        let mut evicted = Vec::new();
        {
            let mut inner = self.inner.lock().await;
            let running = inner.pollers.labels().any(|l| l == label);
            // Junk must not starve real servers: at the cap, targets that have never been up
            // make room (a reload may have lowered the cap: make room until the new one fits).
            while !running && inner.pollers.len() >= wait.max_targets {
                let Some(victim) = self.eviction_candidate(&inner) else {
                    return Err(ScrapeError::Full(inner.pollers.len()));
                };
                inner.last_scrape.remove(&victim);
                if let Some(task) = inner.pollers.cancel(&victim) {
                    evicted.push((victim, task));
                }
            }
            // Started if not running; restarted (rarely: another scrape changed it meanwhile)
            // if its spec differs.
            let store = &self.store;
            if inner
                .pollers
                .ensure(
                    &label,
                    spec,
                    |spec, stop| spec.spawn(store, stop),
                    // The old credentials' last poll must not answer for the new ones.
                    |l| store.remove(l),
                )
                .await
            {
                tracing::info!(target_label = %label, restarted = running, "dynamic target started");
            }
            inner.last_scrape.insert(
                label.clone(),
                Asked {
                    at: Instant::now(),
                    address: address.to_string(),
                    auth: auth.map(str::to_string),
                },
            );
        }
        if !evicted.is_empty() {
            // Not waited for here: the new target's first poll must not queue behind them.
            let d = Arc::clone(self);
            tokio::spawn(async move { d.forget(evicted, "made room for a new target").await });
        }
        let state = match self.waiters.try_acquire() {
            Ok(_waiting) => self.first_poll(&label, wait.first_poll_wait).await,
            Err(_) => self.first_poll(&label, Duration::ZERO).await,
        };
        let state = for_caller(&label, state);
        Ok((label, state))
    }

    /// The target's state once its first poll has ended, or what there is after `wait`.
    async fn first_poll(&self, label: &str, wait: Duration) -> Arc<TargetState> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            // Interest registered before the check: a publish between the two is not missed.
            let published = self.store.published();
            tokio::pin!(published);
            published.as_mut().enable();
            let s = self.store.get(label).unwrap_or_default();
            if s.counters.polls > 0 || tokio::time::Instant::now() >= deadline {
                return s;
            }
            let _ = tokio::time::timeout_at(deadline, published).await;
        }
    }
}

fn settings(cfg: &Config) -> Settings {
    Settings {
        limits: cfg.topology.dynamic.clone(),
        resolver: cfg.topology.resolver.clone(),
        top_k: cfg.top_k,
        idle_threshold_seconds: cfg.idle_threshold_seconds,
    }
}

/// A dynamic target's state as a caller of `/scrape` or `/diagnose` may see it. The caller chose
/// the target, so the answer must not make the exporter a probe of other services: every
/// failure that is not a Redis refusal (connection refused or closed, a timeout, a reply that is
/// not Redis', any other error) is one class, counted as `connect`, and the diagnosis of a
/// target that is down names that class in fixed words instead of the error's text (which may
/// quote the remote service). The log keeps the details for the operator.
pub fn for_caller(label: &str, state: Arc<TargetState>) -> Arc<TargetState> {
    const FOLDED: [ErrorKind; 3] = [ErrorKind::Timeout, ErrorKind::Protocol, ErrorKind::Other];
    let folding = FOLDED
        .iter()
        .any(|&k| state.counters.errors[k as usize] > 0);
    if state.up && !folding {
        return state;
    }
    let mut s = (*state).clone();
    for k in FOLDED {
        s.counters.errors[ErrorKind::Connect as usize] += s.counters.errors[k as usize];
        s.counters.errors[k as usize] = 0;
    }
    if !s.up {
        s.last_error = s.last_error.map(|k| match k {
            ErrorKind::Auth | ErrorKind::Maxclients => k,
            _ => ErrorKind::Connect,
        });
        if let Some(d) = &s.diagnosis {
            s.diagnosis = Some(Arc::new(Report::unreachable(
                label,
                d.generated_at,
                generic_reason(s.last_error),
                &d.redis_cli,
            )));
        }
    }
    Arc::new(s)
}

/// Fixed words for each class of failure a caller may learn.
fn generic_reason(kind: Option<ErrorKind>) -> &'static str {
    match kind {
        Some(ErrorKind::Auth) => "the server refused the exporter: it needs credentials, or refused those sent. Credentials go only to targets listed by an auth profile (&auth=NAME).",
        Some(ErrorKind::Maxclients) => "Redis is full: it refused the exporter's connection (ERR max number of clients reached). The exporter retries until a slot frees.",
        _ => "unreachable or not a Redis server (the connection was refused, timed out or closed, or the reply was not Redis'). The exporter's log has the details.",
    }
}
