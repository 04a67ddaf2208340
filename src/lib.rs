//! redis-clients-exporter: polls Redis servers on held connections, folds CLIENT LIST into
//! bounded aggregates that say who holds the connections, and serves them to Prometheus.
//! ARCHITECTURE.md maps the modules; [`start`] wires them together and [`Running::reload`]
//! applies a new configuration without a restart.

// Forbidden here, not only denied (Cargo.toml): no module can lift it with an `allow`.
#![forbid(unsafe_code)]

pub mod analysis;
pub mod cli;
pub mod config;
pub mod diagnose;
pub mod hash;
pub mod identity;
pub mod redis;
pub mod relief;
pub mod targets;
pub mod web;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::Mutex;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::targets::reconcile::{PollerSpec, TaskSet};
use crate::targets::{discovery, dynamic, reconcile, state};
use crate::web::http;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("web TLS: {0}")]
    Tls(#[from] web::tls_server::ServerTlsError),
}

/// A running exporter: its bound address and the handles to reload or stop it.
pub struct Running {
    pub addr: SocketAddr,
    pub store: Arc<state::Store>,
    /// Relief's state (src/relief): configuration, tokens, counts; the pollers know it as
    /// the store's `actions`.
    pub relief: Arc<relief::ReliefHub>,
    listen: SocketAddr,
    shutdown: CancellationToken,
    pollers: Mutex<TaskSet<PollerSpec>>,
    /// Clusters, Sentinel sets and the targets file: each a task that owns its node pollers.
    groups: Mutex<TaskSet<discovery::SourceSpec>>,
    pub dynamic: Arc<dynamic::Dynamic>,
    http: JoinHandle<()>,
}

pub use reconcile::ReloadSummary;

impl Running {
    /// Stops the pollers and the HTTP server and waits for them.
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.wait().await;
    }

    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Waits until every task has ended (after the shutdown token is cancelled).
    pub async fn wait(self) {
        let _ = self.http.await;
        self.groups.lock().await.stop_all(|_| {}).await;
        self.pollers.lock().await.stop_all(|_| {}).await;
        self.dynamic.stop_all().await;
    }

    /// Applies a new configuration: starts added targets, stops removed ones (their series
    /// disappear), restarts changed ones, and leaves the others and their connections alone.
    /// The listen address and log format need a restart; a change is logged. The web config
    /// file is re-read by the HTTP server itself when it changes (src/web/live_config.rs).
    pub async fn reload(&self, cfg: Config) -> ReloadSummary {
        if cfg.listen != self.listen {
            tracing::warn!(old = %self.listen, new = %cfg.listen, "a new listen address needs a restart; keeping the old one");
        }
        if cfg.relief != self.relief.config() {
            tracing::warn!("changed [relief] settings need a restart; keeping the running ones");
        }
        if cfg.shard != self.store.shard.snapshot().0 {
            tracing::info!(shard = %cfg.shard, "new shard: targets move to and from the other replicas");
            self.store.shard.configure(cfg.shard);
        }
        self.store.identity.configure(&cfg.identity, &self.shutdown);
        let mut pollers = self.pollers.lock().await;
        let wanted = poller_specs(&cfg, &self.store);
        let mut summary = reconcile::reconcile_pollers(&mut pollers, wanted, &self.store).await;
        let mut groups = self.groups.lock().await;
        summary.merge(discovery::reconcile_sources(&mut groups, &cfg, &self.store).await);
        self.dynamic.configure(&cfg).await;
        summary
    }
}

/// The configured plain targets this replica owns (`shard`) as poller specs, by label; the
/// owned and skipped counts go to the store's ledger.
fn poller_specs(cfg: &Config, store: &state::Store) -> BTreeMap<String, PollerSpec> {
    let (owned, skipped): (Vec<_>, Vec<_>) =
        cfg.targets.iter().partition(|t| cfg.shard.owns(&t.label));
    if !cfg.targets.is_empty() {
        store.shard.record("targets", owned.len(), skipped.len());
    } else {
        store.shard.forget("targets");
    }
    owned
        .into_iter()
        .map(|t| {
            (
                t.label.clone(),
                PollerSpec {
                    target: t.clone(),
                    top_k: cfg.top_k,
                    idle_threshold_seconds: cfg.idle_threshold_seconds,
                    topology: None,
                },
            )
        })
        .collect()
}

/// The URL the printed `relieve` commands name: this exporter as seen from its own host.
fn exporter_url(addr: SocketAddr, cfg: &Config) -> String {
    let scheme = if cfg.web.tls_server_config.is_some() {
        "https"
    } else {
        "http"
    };
    let ip = match addr.ip() {
        std::net::IpAddr::V4(v4) if v4.is_unspecified() => std::net::Ipv4Addr::LOCALHOST.into(),
        std::net::IpAddr::V6(v6) if v6.is_unspecified() => std::net::Ipv6Addr::LOCALHOST.into(),
        ip => ip,
    };
    format!("{scheme}://{}", SocketAddr::new(ip, addr.port()))
}

/// Binds the listener, starts one poller per target and the HTTP server.
pub async fn start(cfg: Config) -> Result<Running, StartError> {
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .map_err(|source| StartError::Listen {
            addr: cfg.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| StartError::Listen {
        addr: cfg.listen,
        source,
    })?;
    let relief = Arc::new(relief::ReliefHub::default());
    relief.configure(cfg.relief.clone(), exporter_url(addr, &cfg));
    let store = Arc::new(state::Store::new(relief.clone()));
    // Each target's series are written when it is polled; a scrape of /metrics assembles them.
    store.set_prerender(crate::web::metrics::render_block);
    store.shard.configure(cfg.shard);
    if !cfg.shard.is_whole() {
        tracing::info!(shard = %cfg.shard, "polling only the targets whose label hashes to this shard");
    }
    if cfg.relief.enabled {
        tracing::warn!(users = ?cfg.relief.users, bounds = ?cfg.relief.bounds, "relief actions are enabled: these users may close connections and CONFIG SET through the held connections (docs/relief.md)");
    }
    let shutdown = CancellationToken::new();
    store.identity.configure(&cfg.identity, &shutdown);
    let mut pollers = TaskSet::new(shutdown.clone());
    for target in &cfg.targets {
        if target.tls.as_ref().is_some_and(|t| t.insecure_skip_verify) {
            tracing::warn!(target_label = %target.label, "TLS certificate verification is disabled for this target");
        }
    }
    reconcile::reconcile_pollers(&mut pollers, poller_specs(&cfg, &store), &store).await;
    let mut groups = TaskSet::new(shutdown.clone());
    discovery::reconcile_sources(&mut groups, &cfg, &store).await;
    let dynamic = dynamic::Dynamic::new(&cfg, shutdown.clone());
    let live = Arc::new(web::live_config::LiveWebConfig::new(&cfg.web)?);
    let app = http::router(
        Arc::clone(&store),
        Arc::clone(&live),
        Arc::clone(&dynamic),
        Arc::clone(&relief),
    );
    let http = tokio::spawn(http::serve(listener, live, app, shutdown.clone()));
    let scheme = if cfg.web.tls_server_config.is_some() {
        "https"
    } else {
        "http"
    };
    tracing::info!(%addr, scheme, basic_auth = !cfg.web.basic_auth_users.is_empty(), "listening");
    Ok(Running {
        addr,
        store,
        relief,
        listen: cfg.listen,
        shutdown,
        pollers: Mutex::new(pollers),
        groups: Mutex::new(groups),
        dynamic,
        http,
    })
}
