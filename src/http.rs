//! The HTTP side: `/metrics`, `/`, `/healthz`, `/readyz`. Handlers read the store only; no
//! handler ever talks to Redis, so a scrape is as fast when Redis hangs as when it is idle.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use axum::Router;

use crate::state::Store;

pub fn router(store: Arc<Store>) -> Router {
    Router::new()
        .route("/", get(landing))
        .route("/metrics", get(metrics))
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
