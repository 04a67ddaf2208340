//! The HTTP side: `/metrics`, `/`, `/healthz`, `/readyz`, and optional basic auth. Handlers
//! read the store only; no handler ever talks to Redis, so a scrape is as fast when Redis hangs
//! as when it is idle.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use base64::Engine;

use crate::state::Store;

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
pub fn router(store: Arc<Store>, users: BTreeMap<String, String>) -> Router {
    let mut protected = Router::new()
        .route("/", get(landing))
        .route("/metrics", get(metrics));
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
        rows.push_str(&format!("<li>{} — {status}</li>", escape(&label)));
    }
    Html(format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>redis-clients-exporter</title></head>\
         <body><h1>redis-clients-exporter {}</h1><p>Who holds the connections of your Redis.</p>\
         <ul><li><a href=\"metrics\">/metrics</a></li><li><a href=\"healthz\">/healthz</a></li>\
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
