//! The routes: `/metrics`, `/diagnose`, `/`, `/healthz`, `/readyz`, `/scrape`
//! (src/targets/dynamic.rs), `/relief/*` (src/relief), the auth gate and the configured
//! response headers. Handlers read the store only; no handler talks to Redis, so a scrape is
//! as fast when Redis hangs as when it is idle (`/scrape` waits a bounded time for the first
//! poll of a new target, never on Redis itself). The accept loop is src/web/accept.rs.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

pub use crate::web::accept::{
    serve, FIRST_REQUEST_TIMEOUT, HEADER_READ_TIMEOUT, MAX_CONNECTIONS, MAX_UNFINISHED_PER_SOURCE,
};
pub use crate::web::auth::{AuthUser, BasicAuth};
use crate::web::auth::{ClientCertNames, CERT_USER_PREFIX};
use crate::web::live_config::LiveWebConfig;
use crate::web::negotiate;

use crate::config::topology::ScrapeTargetError;
use crate::targets::dynamic::{Dynamic, ScrapeError};
use crate::targets::state::Store;

/// `/scrape?target=…[&auth=…]`: one target, its poller started on its first scrape (src/targets/dynamic.rs).
async fn scrape(
    axum::Extension(d): axum::Extension<Arc<Dynamic>>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    // Off means off, whatever the parameters: one 404 for every request.
    if !d.enabled() {
        return scrape_error(StatusCode::NOT_FOUND, &ScrapeError::Disabled);
    }
    let Some(target) = q.get("target") else {
        return scrape_error(StatusCode::BAD_REQUEST, &ScrapeError::MissingTarget);
    };
    match d.scrape(target, q.get("auth").map(String::as_str)).await {
        Ok((label, state)) => {
            let format = negotiate::format(&headers);
            let body = crate::web::metrics::render_body_as(&[(label, state)], format);
            negotiate::respond(body, format, negotiate::encoding(&headers)).await
        }
        Err(e @ ScrapeError::Full(_)) => scrape_error(StatusCode::SERVICE_UNAVAILABLE, &e),
        Err(e @ ScrapeError::Held) => scrape_error(StatusCode::CONFLICT, &e),
        Err(e @ ScrapeError::Disabled) => scrape_error(StatusCode::NOT_FOUND, &e),
        Err(
            e @ ScrapeError::Target(ScrapeTargetError::NotAllowed | ScrapeTargetError::Profile(_)),
        ) => scrape_error(StatusCode::FORBIDDEN, &e),
        Err(e) => scrape_error(StatusCode::BAD_REQUEST, &e),
    }
}

fn scrape_error(status: StatusCode, e: &ScrapeError) -> Response {
    (status, format!("{e}\n")).into_response()
}

/// The routes. With basic-auth users configured, everything but `/healthz` and `/readyz` needs
/// basic auth: probes must work without credentials and those two reveal nothing about Redis.
/// The users, like the headers, are the web configuration's in force (`live`).
pub fn router(
    store: Arc<Store>,
    live: Arc<LiveWebConfig>,
    dynamic: Arc<Dynamic>,
    relief: Arc<crate::relief::ReliefHub>,
) -> Router {
    Router::new()
        .route("/", get(landing))
        .route("/metrics", get(metrics))
        .route("/diagnose", get(diagnose))
        // The one route that may wait on Redis: a bounded wait for a new target's first poll.
        .route("/scrape", get(scrape))
        // Relief (src/relief): its own permission (relief.users) on top of this auth.
        .route("/relief/preview", post(crate::web::relief::preview))
        .route("/relief/execute", post(crate::web::relief::execute))
        .layer(axum::Extension(dynamic))
        .layer(axum::Extension(Arc::clone(&relief)))
        .layer(axum::middleware::from_fn_with_state(
            (Arc::clone(&live), relief),
            require_auth,
        ))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .layer(axum::middleware::from_fn_with_state(live, add_headers))
        .with_state(store)
}

/// The gate of every route but the probes: with basic-auth users configured, valid credentials
/// are needed. The request's [`AuthUser`] is the first of (the basic-auth user, `cert:` + each
/// verified certificate name) that `relief.users` lists, else the first of them: relief then
/// acts for a listed identity, and refuses any other by its name.
pub async fn require_auth(
    State((live, relief)): State<(Arc<LiveWebConfig>, Arc<crate::relief::ReliefHub>)>,
    mut req: Request,
    next: Next,
) -> Response {
    let served = live.current();
    let mut identities: Vec<String> = Vec::new();
    if !served.auth.is_empty() {
        let auth = Arc::clone(&served.auth);
        match auth.allows(req.headers().get(header::AUTHORIZATION)).await {
            Some(user) => identities.push(user),
            None => {
                if req.uri().path().starts_with("/relief/") {
                    let peer = req
                        .extensions()
                        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                        .map(|c| c.0);
                    let claimed = claimed_user(req.headers().get(header::AUTHORIZATION));
                    relief.refused_credentials(req.uri().path(), claimed.as_deref(), peer);
                }
                return (
                    StatusCode::UNAUTHORIZED,
                    [(
                        header::WWW_AUTHENTICATE,
                        "Basic realm=\"redis-clients-exporter\"",
                    )],
                    "unauthorized\n",
                )
                    .into_response();
            }
        }
    }
    if let Some(ClientCertNames(names)) = req.extensions().get::<ClientCertNames>() {
        identities.extend(names.iter().map(|n| format!("{CERT_USER_PREFIX}{n}")));
    }
    let listed = relief.config().users;
    let user = identities
        .iter()
        .find(|i| listed.contains(i))
        .or(identities.first())
        .cloned();
    if let Some(user) = user {
        req.extensions_mut().insert(AuthUser(user));
    }
    next.run(req).await
}

/// The user name a basic-auth header claims (for the audit line of a refused one; never the
/// password).
fn claimed_user(h: Option<&header::HeaderValue>) -> Option<String> {
    use base64::Engine;
    let v = h?.to_str().ok()?;
    let b64 = v
        .strip_prefix("Basic ")
        .or_else(|| v.strip_prefix("basic "))?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    let text = String::from_utf8_lossy(&raw);
    text.split_once(':').map(|(u, _)| u.to_string())
}

/// Adds `http_server_config.headers` to every response.
pub async fn add_headers(
    State(live): State<Arc<LiveWebConfig>>,
    req: Request,
    next: Next,
) -> Response {
    let served = live.current();
    let mut response = next.run(req).await;
    for (name, value) in &served.headers {
        response.headers_mut().insert(name.clone(), value.clone());
    }
    response
}
/// The page is assembled from the targets' blocks (written when each was polled) as it is
/// sent, in chunks of at most 256 KiB: with thousands of targets it is megabytes, and a scrape
/// holds one chunk of it. The format and
/// the compression are negotiated (src/web/negotiate.rs).
async fn metrics(
    State(store): State<Arc<Store>>,
    axum::Extension(relief): axum::Extension<Arc<crate::relief::ReliefHub>>,
    headers: HeaderMap,
) -> Response {
    use crate::web::metrics::{
        render_actions_as, render_body_as, render_discovery_as, render_shard_as,
    };
    let format = negotiate::format(&headers);
    let mut body = render_body_as(&store.snapshot(), format);
    body.push(render_actions_as(&relief.counts(), &relief.auth_failures(), format).into());
    body.push(render_shard_as(&store.shard, format).into());
    body.push(render_discovery_as(&store.dropped_nodes, format).into());
    body.push(crate::web::metrics::render_identity_as(&store.identity, format).into());
    negotiate::respond(body, format, negotiate::encoding(&headers)).await
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
    axum::Extension(dynamic): axum::Extension<Arc<Dynamic>>,
    Query(q): Query<DiagnoseQuery>,
) -> Response {
    let mut snapshot = store.snapshot();
    // "The only target" means the only configured one: /scrape targets come and go.
    let configured = snapshot.len();
    // Errors list the targets of the configuration (as /metrics does), never `/scrape` ones:
    // those were named by callers, and one caller must not learn what the others asked for.
    let labels: Vec<String> = snapshot.iter().map(|(l, _)| l.clone()).collect();
    snapshot.extend(dynamic.snapshot());
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
    let extras = crate::web::render::Extras::of(state);
    match q.format.as_deref().unwrap_or("json") {
        "json" => json(StatusCode::OK, report.as_ref()),
        "html" => Html(crate::web::render::html_with(report, &extras)).into_response(),
        "text" => crate::web::render::text_with(report, &extras).into_response(),
        "markdown" | "md" => (
            [(header::CONTENT_TYPE, "text/markdown; charset=utf-8")],
            crate::web::render::markdown_with(report, &extras),
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

/// Each configured target's status and a link to its report; `/scrape` targets are not listed
/// (src/web/landing.rs).
async fn landing(State(store): State<Arc<Store>>) -> Html<String> {
    let snapshot = store.snapshot();
    let mut rows: Vec<crate::web::landing::Row<'_>> = snapshot
        .iter()
        .map(|(label, s)| crate::web::landing::Row {
            label,
            status: s.diagnosis.as_ref().map(|d| d.status),
            headline: s.diagnosis.as_ref().map(|d| d.headline.as_str()),
            last_success: s.last_success,
        })
        .collect();
    let refresh = snapshot
        .iter()
        .map(|(_, s)| crate::web::render::refresh_seconds(s.poll_interval))
        .min()
        .unwrap_or(15);
    Html(crate::web::landing::page(
        env!("CARGO_PKG_VERSION"),
        &mut rows,
        refresh,
    ))
}
