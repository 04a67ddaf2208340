//! redis-clients-exporter: polls Redis servers on held connections, folds CLIENT LIST into
//! bounded aggregates that say who holds the connections, and serves them to Prometheus.
//! ARCHITECTURE.md maps the modules; [`start`] wires them together and [`Running::reload`]
//! applies a new configuration without a restart.

pub mod aggregate;
pub mod client_list;
pub mod config;
pub mod diagnose;
pub mod history;
pub mod http;
pub mod info;
pub mod metrics;
pub mod poller;
pub mod render;
pub mod state;
pub mod synthetic;
pub mod tls;
pub mod triage;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::Mutex;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, Target};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("web TLS: {0}")]
    Tls(#[from] tls::TlsError),
}

/// One running poller and what it was started with, to tell on reload whether it changed.
struct PollerHandle {
    target: Target,
    top_k: usize,
    idle_threshold_seconds: u64,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

/// A running exporter: its bound address and the handles to reload or stop it.
pub struct Running {
    pub addr: SocketAddr,
    pub store: Arc<state::Store>,
    listen: SocketAddr,
    shutdown: CancellationToken,
    pollers: Mutex<BTreeMap<String, PollerHandle>>,
    http: JoinHandle<()>,
}

/// What a reload changed, for the log line.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ReloadSummary {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub restarted: Vec<String>,
    pub kept: usize,
}

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
        let pollers = std::mem::take(&mut *self.pollers.lock().await);
        for (_, p) in pollers {
            let _ = p.task.await;
        }
    }

    /// Applies a new configuration: starts added targets, stops removed ones (their series
    /// disappear), restarts changed ones, and leaves the others and their connections alone.
    /// The listen address, web config and log format need a restart; a change is logged.
    pub async fn reload(&self, cfg: Config) -> ReloadSummary {
        if cfg.listen != self.listen {
            tracing::warn!(old = %self.listen, new = %cfg.listen, "a new listen address needs a restart; keeping the old one");
        }
        let mut pollers = self.pollers.lock().await;
        let mut summary = ReloadSummary::default();
        let wanted: BTreeMap<String, Target> = cfg
            .targets
            .into_iter()
            .map(|t| (t.label.clone(), t))
            .collect();
        let labels: Vec<String> = pollers.keys().cloned().collect();
        for label in labels {
            let same = pollers.get(&label).is_some_and(|p| {
                wanted.get(&label) == Some(&p.target)
                    && p.top_k == cfg.top_k
                    && p.idle_threshold_seconds == cfg.idle_threshold_seconds
            });
            if same {
                summary.kept += 1;
                continue;
            }
            if let Some(p) = pollers.remove(&label) {
                p.stop.cancel();
                let _ = p.task.await;
            }
            if wanted.contains_key(&label) {
                summary.restarted.push(label.clone());
            } else {
                self.store.remove(&label);
                summary.removed.push(label);
            }
        }
        for (label, target) in wanted {
            if pollers.contains_key(&label) {
                continue;
            }
            if !summary.restarted.contains(&label) {
                summary.added.push(label.clone());
            }
            let handle = spawn_poller(
                target,
                cfg.top_k,
                cfg.idle_threshold_seconds,
                &self.store,
                &self.shutdown,
            );
            pollers.insert(label, handle);
        }
        summary
    }
}

fn spawn_poller(
    target: Target,
    top_k: usize,
    idle: u64,
    store: &Arc<state::Store>,
    shutdown: &CancellationToken,
) -> PollerHandle {
    let stop = shutdown.child_token();
    let poller = poller::Poller::new(target.clone(), Arc::clone(store), top_k, idle);
    let task = tokio::spawn(poller.run(stop.clone()));
    PollerHandle {
        target,
        top_k,
        idle_threshold_seconds: idle,
        stop,
        task,
    }
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
    let store = Arc::new(state::Store::default());
    let shutdown = CancellationToken::new();
    let mut pollers = BTreeMap::new();
    for target in cfg.targets {
        if target.tls.as_ref().is_some_and(|t| t.insecure_skip_verify) {
            tracing::warn!(target_label = %target.label, "TLS certificate verification is disabled for this target");
        }
        let label = target.label.clone();
        pollers.insert(
            label,
            spawn_poller(
                target,
                cfg.top_k,
                cfg.idle_threshold_seconds,
                &store,
                &shutdown,
            ),
        );
    }
    let app = http::router(Arc::clone(&store), cfg.web.basic_auth_users.clone());
    let acceptor = cfg
        .web
        .tls_server_config
        .as_ref()
        .map(tls::acceptor)
        .transpose()?;
    let http = tokio::spawn(http::serve(listener, acceptor, app, shutdown.clone()));
    let scheme = if cfg.web.tls_server_config.is_some() {
        "https"
    } else {
        "http"
    };
    tracing::info!(%addr, scheme, basic_auth = !cfg.web.basic_auth_users.is_empty(), "listening");
    Ok(Running {
        addr,
        store,
        listen: cfg.listen,
        shutdown,
        pollers: Mutex::new(pollers),
        http,
    })
}
