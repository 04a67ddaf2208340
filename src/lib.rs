//! redis-clients-exporter: polls Redis servers on held connections, folds CLIENT LIST into
//! bounded aggregates that say who holds the connections, and serves them to Prometheus.
//! ARCHITECTURE.md maps the modules; [`start`] wires them together.

pub mod aggregate;
pub mod client_list;
pub mod config;
pub mod http;
pub mod info;
pub mod metrics;
pub mod poller;
pub mod state;
pub mod synthetic;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A running exporter: its bound address and the handles to stop it.
pub struct Running {
    pub addr: SocketAddr,
    pub store: Arc<state::Store>,
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl Running {
    /// Stops the pollers and the HTTP server and waits for them.
    pub async fn stop(self) {
        self.shutdown.cancel();
        for t in self.tasks {
            let _ = t.await;
        }
    }

    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Waits until every task has ended (after the shutdown token is cancelled).
    pub async fn wait(self) {
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// Binds the listener, starts one poller per target and the HTTP server.
pub async fn start(cfg: config::Config) -> std::io::Result<Running> {
    let listener = tokio::net::TcpListener::bind(cfg.listen).await?;
    let addr = listener.local_addr()?;
    let store = Arc::new(state::Store::default());
    let shutdown = CancellationToken::new();
    let mut tasks = Vec::new();
    for target in cfg.targets {
        let poller = poller::Poller::new(
            target,
            Arc::clone(&store),
            cfg.top_k,
            cfg.idle_threshold_seconds,
        );
        tasks.push(tokio::spawn(poller.run(shutdown.clone())));
    }
    let app = http::router(Arc::clone(&store));
    let token = shutdown.clone();
    tasks.push(tokio::spawn(async move {
        let serve = axum::serve(listener, app).with_graceful_shutdown(token.cancelled_owned());
        if let Err(e) = serve.await {
            tracing::error!(error = %e, "HTTP server failed");
        }
    }));
    tracing::info!(%addr, "listening");
    Ok(Running {
        addr,
        store,
        shutdown,
        tasks,
    })
}
