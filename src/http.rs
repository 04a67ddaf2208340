//! The HTTP side: `/metrics`, `/diagnose`, `/`, `/healthz`, `/readyz`, `/scrape`
//! (src/dynamic.rs), and optional basic auth. Handlers read the store only; no handler talks to
//! Redis, so a scrape is as fast when Redis hangs as when it is idle (`/scrape` waits a bounded
//! time for the first poll of a new target, never on Redis itself).

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use base64::Engine;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::state::Store;

/// A client gets this long to send a request's headers (and a TLS client its handshake), so
/// that connections trickling bytes cannot pile up.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once; past it new ones are closed at once. Prometheus needs one.
pub const MAX_CONNECTIONS: usize = 256;

/// Serves `app` until `shutdown`, then lets requests in flight finish (5 s at most).
///
/// Hand-rolled instead of `axum::serve` for two protections it lacks: a header read timeout
/// and a cap on open connections. With `tls`, handshakes run in each connection's own task.
pub async fn serve(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    app: Router,
    shutdown: CancellationToken,
) {
    let permits = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let (tcp, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(v) => v,
                Err(e) => {
                    // Out of file descriptors, most likely: wait instead of spinning.
                    tracing::debug!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
            tracing::debug!(%peer, "connection limit reached; closing");
            continue;
        };
        let service = TowerToHyperService::new(app.clone());
        let tls = tls.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _permit = permit;
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT);
            let served = match tls {
                None => {
                    watcher
                        .watch(http.serve_connection(TokioIo::new(tcp), service))
                        .await
                }
                Some(acceptor) => {
                    match tokio::time::timeout(HEADER_READ_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(stream)) => {
                            watcher
                                .watch(http.serve_connection(TokioIo::new(stream), service))
                                .await
                        }
                        Ok(Err(e)) => {
                            return tracing::debug!(%peer, error = %e, "TLS handshake failed")
                        }
                        Err(_) => return tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                }
            };
            if let Err(e) = served {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    let _ = tokio::time::timeout(Duration::from_secs(5), graceful.shutdown()).await;
}

/// Basic-auth users (bcrypt hashes) and a cache of header values already verified: bcrypt
/// costs tens of milliseconds on purpose, too much to pay on every scrape.
#[derive(Default)]
pub struct BasicAuth {
    users: BTreeMap<String, String>,
    verified: Mutex<HashSet<String>>,
}

/// Entries kept in the verified cache; past it the cache restarts, so a flood of distinct
/// credentials cannot grow memory.
const VERIFIED_CACHE: usize = 64;

impl BasicAuth {
    pub fn new(users: BTreeMap<String, String>) -> Self {
        Self {
            users,
            verified: Mutex::new(HashSet::new()),
        }
    }

    async fn allows(self: Arc<Self>, header: Option<&HeaderValue>) -> bool {
        let Some(value) = header.and_then(|h| h.to_str().ok()) else {
            return false;
        };
        if self
            .verified
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(value)
        {
            return true;
        }
        let Some(encoded) = value.strip_prefix("Basic ") else {
            return false;
        };
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
            return false;
        };
        let Ok(decoded) = String::from_utf8(decoded) else {
            return false;
        };
        let Some((user, password)) = decoded.split_once(':') else {
            return false;
        };
        let Some(hash) = self.users.get(user).cloned() else {
            return false;
        };
        let password = password.to_string();
        let ok =
            tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash).unwrap_or(false))
                .await
                .unwrap_or(false);
        if ok {
            let mut cache = self.verified.lock().unwrap_or_else(|e| e.into_inner());
            if cache.len() >= VERIFIED_CACHE {
                cache.clear();
            }
            cache.insert(value.to_string());
        }
        ok
    }
}

async fn require_auth(State(auth): State<Arc<BasicAuth>>, req: Request, next: Next) -> Response {
    if auth.allows(req.headers().get(header::AUTHORIZATION)).await {
        return next.run(req).await;
    }
    (
        StatusCode::UNAUTHORIZED,
        [(
            header::WWW_AUTHENTICATE,
            "Basic realm=\"redis-clients-exporter\"",
        )],
        "unauthorized\n",
    )
        .into_response()
}

/// The routes. With users configured, everything but `/healthz` and `/readyz` needs basic
/// auth: probes must work without credentials and those two reveal nothing about Redis.
pub fn router(
    store: Arc<Store>,
    users: BTreeMap<String, String>,
    dynamic: Arc<crate::dynamic::Dynamic>,
) -> Router {
    let mut protected = Router::new()
        .route("/", get(landing))
        .route("/metrics", get(metrics))
        .route("/diagnose", get(diagnose))
        // The one route that may wait on Redis: a bounded wait for a new target's first poll.
        .route("/scrape", get(crate::dynamic::scrape))
        .layer(axum::Extension(dynamic));
    if !users.is_empty() {
        let auth = Arc::new(BasicAuth::new(users));
        protected = protected.layer(axum::middleware::from_fn_with_state(auth, require_auth));
    }
    protected
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .with_state(store)
}

async fn metrics(State(store): State<Arc<Store>>) -> impl IntoResponse {
    let body = crate::metrics::render(&store.snapshot());
    ([(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)], body)
}

#[derive(Debug, serde::Deserialize)]
struct DiagnoseQuery {
    target: Option<String>,
    format: Option<String>,
}

fn json<T: serde::Serialize>(status: StatusCode, value: &T) -> Response {
    match serde_json::to_vec_pretty(value) {
        Ok(body) => (status, [(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

fn json_error(status: StatusCode, message: &str, targets: &[String]) -> Response {
    json(
        status,
        &serde_json::json!({ "error": message, "targets": targets }),
    )
}

/// The last poll's diagnosis of one target (the only one when there is a single target), as
/// JSON (default), `html`, `text` or `markdown`; configured targets first, then `/scrape` ones.
/// Computed by the poller, so this never waits on Redis either.
async fn diagnose(
    State(store): State<Arc<Store>>,
    axum::Extension(dynamic): axum::Extension<Arc<crate::dynamic::Dynamic>>,
    Query(q): Query<DiagnoseQuery>,
) -> Response {
    let mut snapshot = store.snapshot();
    // "The only target" means the only configured one: /scrape targets come and go.
    let configured = snapshot.len();
    snapshot.extend(dynamic.snapshot());
    let labels: Vec<String> = snapshot.iter().map(|(l, _)| l.clone()).collect();
    let state = match &q.target {
        Some(t) => snapshot.iter().find(|(l, _)| l == t),
        None if configured == 1 => snapshot.first(),
        None => {
            return json_error(
                StatusCode::BAD_REQUEST,
                "name one target: /diagnose?target=<label>",
                &labels,
            )
        }
    };
    let Some((_, state)) = state else {
        return json_error(StatusCode::NOT_FOUND, "no such target", &labels);
    };
    let Some(report) = state.diagnosis.as_ref() else {
        return json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "no poll of this target has completed yet",
            &labels,
        );
    };
    match q.format.as_deref().unwrap_or("json") {
        "json" => json(StatusCode::OK, report.as_ref()),
        "html" => Html(crate::render::html(report)).into_response(),
        "text" => crate::render::text(report).into_response(),
        "markdown" | "md" => (
            [(header::CONTENT_TYPE, "text/markdown; charset=utf-8")],
            crate::render::markdown(report),
        )
            .into_response(),
        _ => json_error(
            StatusCode::BAD_REQUEST,
            "format must be json, html, text or markdown",
            &labels,
        ),
    }
}

async fn ready(State(store): State<Arc<Store>>) -> impl IntoResponse {
    if store.any_success() {
        (StatusCode::OK, "ready\n")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "no poll has completed yet\n",
        )
    }
}

async fn landing(State(store): State<Arc<Store>>) -> Html<String> {
    let mut rows = String::new();
    for (label, s) in store.snapshot() {
        let status = if s.up { "up" } else { "down" };
        rows.push_str(&format!(
            "<li>{} — {status} — <a href=\"diagnose?target={}&amp;format=html\">diagnosis</a></li>",
            escape(&label),
            crate::render::url_encode(&label)
        ));
    }
    Html(format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>redis-clients-exporter</title></head>\
         <body><h1>redis-clients-exporter {}</h1><p>Who holds the connections of your Redis.</p>\
         <ul><li><a href=\"metrics\">/metrics</a></li><li><a href=\"diagnose?format=html\">/diagnose</a> (add <code>?target=</code> with several targets)</li><li><a href=\"healthz\">/healthz</a></li>\
         <li><a href=\"readyz\">/readyz</a></li></ul><h2>Targets</h2><ul>{rows}</ul></body></html>",
        env!("CARGO_PKG_VERSION")
    ))
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
