//! Relief's HTTP side: `POST /relief/preview` and `POST /relief/execute` read the request
//! (bounded body, JSON), hand it to relief (src/relief/), and write one audit line
//! (`target: "audit"`) and one count per request, whatever the outcome.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use serde_json::json;

use crate::relief::{clean, Action, AuditRecord, AuthUser, Outcome, Refusal, ReliefHub};
use crate::targets::state::Store;

/// Longest request body read.
const MAX_BODY: usize = 64 * 1024;

/// Who is asking: the authenticated basic-auth user ([`AuthUser`]) and the peer.
#[derive(Debug, Clone)]
struct Requester {
    user: Option<String>,
    peer: Option<SocketAddr>,
}

/// `POST /relief/preview`: what an action would close and set, from a fresh CLIENT LIST on the
/// held connection, and the token that lets it run. Changes nothing in Redis.
pub async fn preview(
    State(store): State<Arc<Store>>,
    Extension(hub): Extension<Arc<ReliefHub>>,
    req: Request,
) -> Response {
    let (requester, body) = read(req).await;
    let mut audit = AuditRecord::default();
    let result = match body.and_then(|b| parse(&b, &mut audit)) {
        Ok(r) => {
            let user = requester.user.as_deref();
            crate::relief::preview(&store, &hub, user, r, &mut audit).await
        }
        Err(e) => Err(e),
    };
    finish(&hub, Action::Preview, &requester, audit, result)
}

/// `POST /relief/execute`: runs a previewed action, once, within the token's life.
pub async fn execute(Extension(hub): Extension<Arc<ReliefHub>>, req: Request) -> Response {
    let (requester, body) = read(req).await;
    let mut audit = AuditRecord::default();
    let result = match body.and_then(|b| parse(&b, &mut audit)) {
        Ok(r) => crate::relief::execute(&hub, requester.user.as_deref(), r, &mut audit).await,
        Err(e) => Err(e),
    };
    finish(&hub, Action::Execute, &requester, audit, result)
}

async fn read(req: Request) -> (Requester, Result<axum::body::Bytes, Refusal>) {
    let (parts, body) = req.into_parts();
    let requester = Requester {
        user: parts.extensions.get::<AuthUser>().map(|u| u.0.clone()),
        peer: parts
            .extensions
            .get::<axum::extract::ConnectInfo<SocketAddr>>()
            .map(|c| c.0),
    };
    let body = axum::body::to_bytes(body, MAX_BODY)
        .await
        .map_err(|_| Refusal {
            outcome: Outcome::Invalid,
            message: format!("the body must be JSON of at most {MAX_BODY} bytes"),
        });
    (requester, body)
}

/// The request; when it is malformed, its target is still noted (if it names one) so that the
/// refusal is counted for that target.
fn parse<T: serde::de::DeserializeOwned>(
    body: &[u8],
    audit: &mut AuditRecord,
) -> Result<T, Refusal> {
    serde_json::from_slice(body).map_err(|e| {
        audit.target = serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v.get("target")?.as_str().map(String::from));
        Refusal {
            outcome: Outcome::Invalid,
            message: format!("bad request: {e}"),
        }
    })
}

/// The HTTP status of an outcome.
fn status(outcome: Outcome) -> StatusCode {
    match outcome {
        Outcome::Ok | Outcome::Partial => StatusCode::OK,
        Outcome::Failed => StatusCode::BAD_GATEWAY,
        Outcome::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Outcome::Disabled | Outcome::Denied => StatusCode::FORBIDDEN,
        Outcome::Unauthenticated => StatusCode::UNAUTHORIZED,
        Outcome::Invalid => StatusCode::BAD_REQUEST,
        Outcome::UnknownTarget | Outcome::UnknownToken => StatusCode::NOT_FOUND,
        Outcome::TooMany | Outcome::OutOfBounds => StatusCode::UNPROCESSABLE_ENTITY,
        Outcome::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        Outcome::StaleToken => StatusCode::GONE,
        Outcome::ReusedToken => StatusCode::CONFLICT,
    }
}

/// Counts, audits and answers one request.
fn finish(
    hub: &ReliefHub,
    action: Action,
    requester: &Requester,
    audit: AuditRecord,
    result: Result<(Outcome, serde_json::Value), Refusal>,
) -> Response {
    let (outcome, message, body) = match result {
        Ok((o, body)) => (o, String::new(), body),
        Err(e) => {
            let body = json!({ "result": e.outcome.as_str(), "error": e.message });
            (e.outcome, e.message, body)
        }
    };
    let target = audit.target.as_deref().unwrap_or("");
    hub.count(target, action, outcome);
    let closed: Vec<String> = audit.closed.iter().map(u64::to_string).collect();
    // Who, where from, on what, with which selector, what it closed or set, and how it ended.
    // Never a secret: the token shows as its first characters only; values from the request
    // are escaped and cut (a log line must not be forged with a newline in a name).
    tracing::info!(
        target: "audit",
        action = action.as_str(),
        result = outcome.as_str(),
        user = %clean(requester.user.as_deref().unwrap_or("-"), 64),
        peer = %requester.peer.map_or("-".to_string(), |p| p.to_string()),
        target_label = %clean(target, 200),
        select = %clean(audit.select.as_deref().unwrap_or("-"), 2000),
        finding = audit.finding.unwrap_or("-"),
        token = %audit.token.as_deref().map_or("-".to_string(), token_prefix),
        listed = audit.listed.unwrap_or(0),
        closed = %if closed.is_empty() { "-".to_string() } else { closed.join(",") },
        skipped = audit.skipped,
        set = %if audit.set.is_empty() { "-".to_string() } else { audit.set.join(",") },
        reason = %clean(if message.is_empty() { "-" } else { &message }, 500),
        "relief {}",
        action.as_str()
    );
    let mut resp = (
        status(outcome),
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::to_vec_pretty(&body).unwrap_or_default(),
    )
        .into_response();
    if outcome == Outcome::Unauthenticated {
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Basic realm=\"redis-clients-exporter\""),
        );
    }
    resp
}

/// Enough of a token to tell actions apart in the audit log, too little to use it.
fn token_prefix(t: &str) -> String {
    format!("{}…", t.chars().take(6).collect::<String>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_shown_by_prefix_only() {
        let token = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
        let p = token_prefix(token);
        assert!(token.starts_with(p.trim_end_matches('…')) && p.chars().count() == 7);
    }
}
