//! `/scrape?target=redis://host:port&auth=PROFILE`: targets named by Prometheus service
//! discovery rather than by the configuration. The first scrape of a target starts an ordinary
//! poller (one held connection) and waits a bounded time for its first poll; later scrapes read
//! its last poll from memory. Targets not scraped for `scrape_idle_timeout_seconds` are stopped,
//! and at most `scrape_max_targets` run at once. Their states live in a store of their own, so
//! `/metrics` is unchanged and each `/scrape` renders one target only.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::extract::Query;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::reconcile::{PollerSpec, TaskSet};
use crate::state::Store;
use crate::topology_config::{DynamicConfig, Resolver, ScrapeTargetError};

struct Settings {
    limits: DynamicConfig,
    resolver: Resolver,
    top_k: usize,
    idle_threshold_seconds: u64,
}

struct Inner {
    pollers: TaskSet<PollerSpec>,
    last_scrape: HashMap<String, Instant>,
}

pub struct Dynamic {
    settings: RwLock<Settings>,
    inner: Mutex<Inner>,
    store: Arc<Store>,
}

/// Why a scrape was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScrapeError {
    #[error("missing `target` parameter (/scrape?target=redis://host:port)")]
    MissingTarget,
    #[error("invalid target: {0}")]
    Target(#[from] ScrapeTargetError),
    #[error("dynamic targets are turned off (scrape_max_targets = 0)")]
    Disabled,
    #[error("too many dynamic targets ({0} running, the limit set by scrape_max_targets); idle ones expire after scrape_idle_timeout_seconds")]
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
        });
        let weak = Arc::downgrade(&d);
        tokio::spawn(async move {
            loop {
                let Some(d) = weak.upgrade() else { return };
                let every = (d.read_settings().limits.idle_timeout / 4)
                    .clamp(Duration::from_millis(50), Duration::from_secs(30));
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

    /// Takes the new limits, profiles and defaults; running targets go on until they expire.
    pub fn configure(&self, cfg: &Config) {
        *self.settings.write().unwrap_or_else(|e| e.into_inner()) = settings(cfg);
    }

    /// Stops targets not scraped for the idle timeout. Their pollers are waited for after the
    /// lock is let go, so that scrapes never queue behind a slow close.
    async fn expire(&self) {
        let idle = self.read_settings().limits.idle_timeout;
        let stopped: Vec<(String, tokio::task::JoinHandle<()>)> = {
            let mut inner = self.inner.lock().await;
            let old: Vec<String> = inner
                .last_scrape
                .iter()
                .filter(|(_, at)| at.elapsed() >= idle)
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
        for (label, task) in stopped {
            let _ = task.await;
            // A scrape may have started the target again meanwhile: its state stays.
            let inner = self.inner.lock().await;
            if !inner.pollers.labels().any(|l| l == label) {
                self.store.remove(&label);
            }
            drop(inner);
            tracing::info!(target_label = %label, "dynamic target expired");
        }
    }

    pub async fn stop_all(&self) {
        let mut inner = self.inner.lock().await;
        inner.last_scrape.clear();
        inner.pollers.stop_all(|l| self.store.remove(l)).await;
    }

    /// The dynamic targets' last polls, for `/diagnose`: the alert on a diagnosis links there
    /// whichever way its target was scraped.
    pub fn snapshot(&self) -> Vec<(String, Arc<crate::state::TargetState>)> {
        self.store.snapshot()
    }

    /// Renders one target, starting its poller on the first scrape.
    pub async fn scrape(&self, address: &str, auth: Option<&str>) -> Result<Vec<u8>, ScrapeError> {
        let (spec, wait) = {
            let s = self.read_settings();
            if s.limits.max_targets == 0 {
                return Err(ScrapeError::Disabled);
            }
            let target = s.resolver.scrape_target(address, auth)?;
            let spec = PollerSpec {
                target,
                top_k: s.top_k,
                idle_threshold_seconds: s.idle_threshold_seconds,
                topology: None,
            };
            (spec, s.limits.clone())
        };
        let label = spec.target.label.clone();
        {
            let mut inner = self.inner.lock().await;
            let running = inner.pollers.labels().any(|l| l == label);
            if !running && inner.pollers.len() >= wait.max_targets {
                return Err(ScrapeError::Full(inner.pollers.len()));
            }
            // A target asked for with another auth profile is the same server: it restarts
            // with the new credentials instead of holding two connections.
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
            inner.last_scrape.insert(label.clone(), Instant::now());
        }
        let state = self.first_poll(&label, wait.first_poll_wait).await;
        Ok(crate::metrics::render(&[(label, state)]))
    }

    /// The target's state once its first poll has ended, or what there is after `wait`.
    async fn first_poll(&self, label: &str, wait: Duration) -> Arc<crate::state::TargetState> {
        let deadline = Instant::now() + wait;
        loop {
            let s = self.store.get(label).unwrap_or_default();
            if s.counters.polls > 0 || Instant::now() >= deadline {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
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

/// `GET /scrape?target=...&auth=...`.
pub async fn scrape(
    Extension(d): Extension<Arc<Dynamic>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let Some(target) = q.get("target") else {
        return error(StatusCode::BAD_REQUEST, &ScrapeError::MissingTarget);
    };
    match d.scrape(target, q.get("auth").map(String::as_str)).await {
        Ok(body) => ([(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)], body).into_response(),
        Err(e @ ScrapeError::Full(_)) => error(StatusCode::SERVICE_UNAVAILABLE, &e),
        Err(e @ ScrapeError::Disabled) => error(StatusCode::NOT_FOUND, &e),
        Err(e) => error(StatusCode::BAD_REQUEST, &e),
    }
}

fn error(status: StatusCode, e: &ScrapeError) -> Response {
    (status, format!("{e}\n")).into_response()
}
