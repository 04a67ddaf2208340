//! The HTTP side: `/metrics`, `/diagnose`, `/`, `/healthz`, `/readyz`, `/scrape`
//! (src/targets/dynamic.rs), `/relief/*` (src/relief), and optional basic auth. Handlers read the store only; no handler talks to
//! Redis, so a scrape is as fast when Redis hangs as when it is idle (`/scrape` waits a bounded
//! time for the first poll of a new target, never on Redis itself).

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use base64::Engine;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::topology::ScrapeTargetError;
use crate::targets::dynamic::{Dynamic, ScrapeError};
use crate::targets::state::Store;

/// A new connection gets this long to send its first request's headers (a TLS client: to
/// finish its handshake and send them). Prometheus sends at once; a connection that trickles
/// bytes, or sends none, is closed.
pub const FIRST_REQUEST_TIMEOUT: Duration = Duration::from_secs(3);
/// A kept-alive connection gets this long to send the headers of each later request (hyper's
/// header read timeout, which is also how long an idle kept-alive connection stays open).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections open at once. At the limit a new connection takes the place of the oldest one
/// that has not sent a complete request yet, else of the one idle (kept alive between
/// requests) the longest; only when every one is in the middle of a request is it closed. So
/// half-sent requests never lock a scraper out: its connection is the newest, and it sends
/// its request at once.
pub const MAX_CONNECTIONS: usize = 256;
/// Connections from one source (an IPv4 address, an IPv6 /64) that have not sent a complete
/// request yet; past it the oldest of them is closed, so that one source cannot fill the
/// connection limit with half requests (and push out other sources' new connections).
pub const MAX_UNFINISHED_PER_SOURCE: usize = 32;

/// Serves `app` until `shutdown`, then lets requests in flight finish (5 s at most).
///
/// Hand-rolled instead of `axum::serve` for the protections it lacks: the connection limit
/// with eviction (see [`MAX_CONNECTIONS`]), the per-source limit, the first-request and
/// header read timeouts. With `tls`, handshakes run in each connection's own task.
pub async fn serve(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    app: Router,
    shutdown: CancellationToken,
) {
    let conns = Arc::new(Connections::default());
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
        let Some((id, evicted)) = conns.admit(peer.ip()) else {
            tracing::debug!(%peer, "connection limit reached, every connection busy; closing");
            continue;
        };
        let service = Tracked {
            inner: TowerToHyperService::new(app.clone()),
            conns: Arc::clone(&conns),
            id,
            peer,
        };
        let tls = tls.clone();
        let watcher = graceful.watcher();
        let conns_of_task = Arc::clone(&conns);
        tokio::spawn(async move {
            let conns = conns_of_task;
            let _slot = Slot {
                conns: Arc::clone(&conns),
                id,
            };
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT);
            let tcp = Watched {
                io: tcp,
                conns: Arc::clone(&conns),
                id,
                waited: false,
            };
            let served = async {
                let served = match tls {
                    None => {
                        watcher
                            .watch(http.serve_connection(TokioIo::new(tcp), service))
                            .await
                    }
                    Some(acceptor) => match acceptor.accept(tcp).await {
                        Ok(stream) => {
                            watcher
                                .watch(http.serve_connection(TokioIo::new(stream), service))
                                .await
                        }
                        Err(e) => return tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                    },
                };
                if let Err(e) = served {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
            };
            // Still no complete request (or handshake) after FIRST_REQUEST_TIMEOUT: closed.
            let first_request = async {
                tokio::time::sleep(FIRST_REQUEST_TIMEOUT).await;
                if !conns.is_unfinished(id) {
                    std::future::pending::<()>().await;
                }
            };
            tokio::select! {
                biased;
                () = served => {}
                () = evicted.cancelled() => {
                    tracing::debug!(%peer, "closed to make room: no complete request yet, or idle the longest");
                }
                () = first_request => {
                    tracing::debug!(%peer, "no complete request within the first-request timeout; closing");
                }
            }
        });
        // Let the new connection's task read what its client sent before accepting more: a
        // scraper's request is then seen complete (busy) before a flood of new connections
        // can push it out, and an attacker's half request is seen waiting.
        tokio::task::yield_now().await;
    }
    drop(listener);
    let _ = tokio::time::timeout(Duration::from_secs(5), graceful.shutdown()).await;
}

/// A connection's service: `inner`, with the connection marked busy while a request is
/// handled and idle after.
#[derive(Clone)]
struct Tracked<S> {
    inner: S,
    conns: Arc<Connections>,
    id: u64,
    /// Handed to handlers as `ConnectInfo` (the relief audit line says who acted from where).
    peer: std::net::SocketAddr,
}

impl<S, B> hyper::service::Service<hyper::Request<B>> for Tracked<S>
where
    S: hyper::service::Service<hyper::Request<B>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future =
        std::pin::Pin<Box<dyn std::future::Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn call(&self, mut req: hyper::Request<B>) -> Self::Future {
        req.extensions_mut()
            .insert(axum::extract::ConnectInfo(self.peer));
        self.conns.set(self.id, Phase::Busy);
        let fut = self.inner.call(req);
        // Idle once the handler returned (or its future was dropped with the connection): a
        // client slow to read the response is then evictable too.
        let done = IdleOnDrop {
            conns: Arc::clone(&self.conns),
            id: self.id,
        };
        Box::pin(async move {
            let response = fut.await;
            drop(done);
            response
        })
    }
}

/// What a connection is doing, for the choice of which to close at the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Accepted, no complete request yet (TLS: handshake included). Closed first.
    Unfinished,
    /// A request is being handled. Never closed to make room.
    Busy,
    /// Between requests of a kept-alive connection. Closed when no unfinished one is left.
    Idle,
}

#[derive(Debug)]
struct Conn {
    id: u64,
    /// The source, as counted by the per-source limit.
    source: IpAddr,
    phase: Phase,
    /// When it entered `phase`, on a counter (older is smaller).
    since: u64,
    /// A read found nothing more to read while it was unfinished: it was waited on, it is
    /// not merely too new to have been read yet.
    waited: bool,
    evict: CancellationToken,
}

/// The open connections of the endpoint: at most [`MAX_CONNECTIONS`], so a linear scan per
/// accept is cheaper than keeping indexes in step.
#[derive(Default)]
struct Connections {
    inner: Mutex<ConnectionsInner>,
}

#[derive(Default)]
struct ConnectionsInner {
    conns: Vec<Conn>,
    clock: u64,
    /// The last warning about the limit: at most one a minute, an attack would flood the log.
    warned: Option<std::time::Instant>,
}

/// Why a connection was closed to make room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Eviction {
    PerSource,
    Limit,
}

impl Connections {
    fn lock(&self) -> std::sync::MutexGuard<'_, ConnectionsInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a new connection from `peer`, closing another to make room when needed
    /// (its token is cancelled). `None`: every connection is busy, close the new one.
    fn admit(&self, peer: IpAddr) -> Option<(u64, CancellationToken)> {
        let mut c = self.lock();
        let (id, token, evicted) = c.admit(peer)?;
        if let Some(reason) = evicted {
            let now = std::time::Instant::now();
            if c.warned
                .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(60))
            {
                c.warned = Some(now);
                let unfinished = c
                    .conns
                    .iter()
                    .filter(|x| x.phase == Phase::Unfinished)
                    .count();
                tracing::warn!(
                    reason = ?reason,
                    open = c.conns.len(),
                    unfinished,
                    limit = MAX_CONNECTIONS,
                    per_source_limit = MAX_UNFINISHED_PER_SOURCE,
                    "HTTP connections at a limit: closing the oldest that have not sent a complete request (slow or hostile clients?); logged at most once a minute"
                );
            }
        }
        Some((id, token))
    }

    fn set(&self, id: u64, phase: Phase) {
        let mut c = self.lock();
        c.clock += 1;
        let now = c.clock;
        if let Some(x) = c.conns.iter_mut().find(|x| x.id == id) {
            x.phase = phase;
            x.since = now;
        }
    }

    fn waited(&self, id: u64) {
        if let Some(x) = self.lock().conns.iter_mut().find(|x| x.id == id) {
            x.waited = true;
        }
    }

    fn is_unfinished(&self, id: u64) -> bool {
        self.lock()
            .conns
            .iter()
            .any(|x| x.id == id && x.phase == Phase::Unfinished)
    }

    fn remove(&self, id: u64) {
        let mut c = self.lock();
        if let Some(i) = c.conns.iter().position(|x| x.id == id) {
            c.conns.swap_remove(i);
        }
    }
}

impl ConnectionsInner {
    fn admit(&mut self, peer: IpAddr) -> Option<(u64, CancellationToken, Option<Eviction>)> {
        let source = source_of(peer);
        let mut evicted = None;
        let own = |x: &Conn| x.source == source && x.phase == Phase::Unfinished;
        if self.conns.iter().filter(|x| own(x)).count() >= MAX_UNFINISHED_PER_SOURCE {
            if let Some(i) = self.oldest(own) {
                self.evict(i);
                evicted = Some(Eviction::PerSource);
            }
        }
        if self.conns.len() >= MAX_CONNECTIONS {
            let i = self
                .oldest(|x| x.phase == Phase::Unfinished)
                .or_else(|| self.oldest(|x| x.phase == Phase::Idle))?;
            self.evict(i);
            evicted = Some(Eviction::Limit);
        }
        self.clock += 1;
        let token = CancellationToken::new();
        self.conns.push(Conn {
            id: self.clock,
            source,
            phase: Phase::Unfinished,
            since: self.clock,
            waited: false,
            evict: token.clone(),
        });
        Some((self.clock, token, evicted))
    }

    /// The connection to close first among `which`: one already waited on before one not yet
    /// read at all (a client that sent its request at once is then never closed for being
    /// slow to be scheduled), then the oldest.
    fn oldest(&self, which: impl Fn(&Conn) -> bool) -> Option<usize> {
        self.conns
            .iter()
            .enumerate()
            .filter(|(_, x)| which(x))
            .min_by_key(|(_, x)| (!x.waited, x.since))
            .map(|(i, _)| i)
    }

    /// Forgets connection `i` at once (its room is free now) and tells its task to close it.
    fn evict(&mut self, i: usize) {
        self.conns.swap_remove(i).evict.cancel();
    }
}

/// The source a connection counts against: its IPv4 address (also when it arrives as
/// IPv4-mapped IPv6), or its IPv6 /64, the block one host usually holds.
fn source_of(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

/// A connection's socket, telling [`Connections`] the first time a read has to wait (a TLS
/// handshake's reads included).
struct Watched<T> {
    io: T,
    conns: Arc<Connections>,
    id: u64,
    waited: bool,
}

impl<T: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Watched<T> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let polled = std::pin::Pin::new(&mut self.io).poll_read(cx, buf);
        if polled.is_pending() && !self.waited {
            self.waited = true;
            self.conns.waited(self.id);
        }
        polled
    }
}

impl<T: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Watched<T> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// A connection's place in [`Connections`], given back when its task ends.
struct Slot {
    conns: Arc<Connections>,
    id: u64,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.conns.remove(self.id);
    }
}

struct IdleOnDrop {
    conns: Arc<Connections>,
    id: u64,
}

impl Drop for IdleOnDrop {
    fn drop(&mut self) {
        self.conns.set(self.id, Phase::Idle);
    }
}

/// Basic-auth users (bcrypt hashes) and a cache of header values already verified: bcrypt
/// costs tens of milliseconds on purpose, too much to pay on every scrape.
#[derive(Default)]
pub struct BasicAuth {
    users: BTreeMap<String, String>,
    /// Header value -> the user it authenticated.
    verified: Mutex<HashMap<String, String>>,
}

pub use crate::relief::AuthUser;

/// Entries kept in the verified cache; past it the cache restarts, so a flood of distinct
/// credentials cannot grow memory.
const VERIFIED_CACHE: usize = 64;

impl BasicAuth {
    pub fn new(users: BTreeMap<String, String>) -> Self {
        Self {
            users,
            verified: Mutex::new(HashMap::new()),
        }
    }

    /// The user these credentials authenticate, if they do.
    async fn allows(self: Arc<Self>, header: Option<&HeaderValue>) -> Option<String> {
        let value = header.and_then(|h| h.to_str().ok())?;
        if let Some(user) = self
            .verified
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(value)
        {
            return Some(user.clone());
        }
        let encoded = value.strip_prefix("Basic ")?;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .ok()?;
        let decoded = String::from_utf8(decoded).ok()?;
        let (user, password) = decoded.split_once(':')?;
        let hash = self.users.get(user).cloned()?;
        let password = password.to_string();
        let ok =
            tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash).unwrap_or(false))
                .await
                .unwrap_or(false);
        if !ok {
            return None;
        }
        let mut cache = self.verified.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= VERIFIED_CACHE {
            cache.clear();
        }
        cache.insert(value.to_string(), user.to_string());
        Some(user.to_string())
    }
}

async fn require_auth(
    State(auth): State<Arc<BasicAuth>>,
    mut req: Request,
    next: Next,
) -> Response {
    if let Some(user) = auth.allows(req.headers().get(header::AUTHORIZATION)).await {
        req.extensions_mut().insert(AuthUser(user));
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

/// `/scrape?target=…[&auth=…]`: one target, its poller started on its first scrape (src/targets/dynamic.rs).
async fn scrape(
    axum::Extension(d): axum::Extension<Arc<Dynamic>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    // Off means off, whatever the parameters: one 404 for every request.
    if !d.enabled() {
        return scrape_error(StatusCode::NOT_FOUND, &ScrapeError::Disabled);
    }
    let Some(target) = q.get("target") else {
        return scrape_error(StatusCode::BAD_REQUEST, &ScrapeError::MissingTarget);
    };
    match d.scrape(target, q.get("auth").map(String::as_str)).await {
        Ok((label, state)) => (
            [(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)],
            crate::web::metrics::render(&[(label, state)]),
        )
            .into_response(),
        Err(e @ ScrapeError::Full(_)) => scrape_error(StatusCode::SERVICE_UNAVAILABLE, &e),
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

/// The routes. With users configured, everything but `/healthz` and `/readyz` needs basic
/// auth: probes must work without credentials and those two reveal nothing about Redis.
pub fn router(
    store: Arc<Store>,
    users: BTreeMap<String, String>,
    dynamic: Arc<Dynamic>,
    relief: Arc<crate::relief::Hub>,
) -> Router {
    let mut protected = Router::new()
        .route("/", get(landing))
        .route("/metrics", get(metrics))
        .route("/diagnose", get(diagnose))
        // The one route that may wait on Redis: a bounded wait for a new target's first poll.
        .route("/scrape", get(scrape))
        // Relief (src/relief): its own permission (relief.users) on top of this auth.
        .route("/relief/preview", post(crate::relief::preview))
        .route("/relief/execute", post(crate::relief::execute))
        .layer(axum::Extension(dynamic))
        .layer(axum::Extension(relief));
    if !users.is_empty() {
        let auth = Arc::new(BasicAuth::new(users));
        protected = protected.layer(axum::middleware::from_fn_with_state(auth, require_auth));
    }
    protected
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .with_state(store)
}

/// The page is written once, as one text chunk per family, and sent as those chunks: with
/// thousands of targets it is megabytes, and joining it would hold it twice.
async fn metrics(
    State(store): State<Arc<Store>>,
    axum::Extension(relief): axum::Extension<Arc<crate::relief::Hub>>,
) -> impl IntoResponse {
    let mut chunks = crate::web::metrics::render_chunks(&store.snapshot());
    chunks.push(crate::web::metrics::render_actions(&relief.counts()).into());
    chunks.push(crate::web::metrics::render_shard(&store.shard).into());
    (
        [(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)],
        axum::body::Body::new(crate::web::exposition::Chunks::new(chunks)),
    )
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

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    /// Admits a connection that must get in; its id and token.
    fn admit(c: &mut ConnectionsInner, from: &str) -> (u64, CancellationToken) {
        let (id, token, _) = c.admit(ip(from)).expect("admitted");
        (id, token)
    }

    fn set(c: &mut ConnectionsInner, id: u64, phase: Phase) {
        c.clock += 1;
        let now = c.clock;
        let x = c.conns.iter_mut().find(|x| x.id == id).expect("open");
        x.phase = phase;
        x.since = now;
    }

    #[test]
    fn one_source_holds_a_bounded_number_of_unfinished_connections() {
        let mut c = ConnectionsInner::default();
        let first: Vec<_> = (0..MAX_UNFINISHED_PER_SOURCE)
            .map(|_| admit(&mut c, "10.0.0.1"))
            .collect();
        let (other, other_token) = admit(&mut c, "10.0.0.2");
        // One that finished its request does not count.
        set(&mut c, first[1].0, Phase::Busy);
        let (_, _, why) = c.admit(ip("10.0.0.1")).expect("admitted");
        assert_eq!(why, None, "31 unfinished + 1 busy: room for one more");
        let (_, _, why) = c.admit(ip("10.0.0.1")).expect("admitted");
        assert_eq!(why, Some(Eviction::PerSource));
        assert!(
            first[0].1.is_cancelled(),
            "the source's oldest unfinished one goes"
        );
        assert!(!first[1].1.is_cancelled() && !first[2].1.is_cancelled());
        assert!(!other_token.is_cancelled());
        assert!(c.conns.iter().any(|x| x.id == other));
        // IPv6: one /64 is one source; IPv4-mapped is the IPv4 address.
        assert_eq!(source_of(ip("2001:db8:1:2:aaaa::1")), ip("2001:db8:1:2::"));
        assert_eq!(source_of(ip("::ffff:10.0.0.1")), ip("10.0.0.1"));
    }

    #[test]
    fn at_the_limit_unfinished_go_first_then_idle_never_busy() {
        let mut c = ConnectionsInner::default();
        // From distinct sources, so that only the global limit applies.
        let conns: Vec<_> = (0..MAX_CONNECTIONS)
            .map(|i| admit(&mut c, &format!("10.1.{}.{}", i / 200, i % 200)))
            .collect();
        for (id, _) in &conns[..100] {
            set(&mut c, *id, Phase::Busy);
        }
        for (id, _) in &conns[100..200] {
            set(&mut c, *id, Phase::Idle);
        }
        // 56 unfinished: the oldest goes first, except that one already waited on goes before
        // any not read yet.
        c.conns
            .iter_mut()
            .find(|x| x.id == conns[250].0)
            .expect("open")
            .waited = true;
        let (_, _, why) = c.admit(ip("10.9.9.9")).expect("admitted");
        assert_eq!(why, Some(Eviction::Limit));
        assert!(conns[250].1.is_cancelled(), "the waited-on one first");
        c.admit(ip("10.9.9.9")).expect("admitted");
        assert!(conns[200].1.is_cancelled(), "then the oldest unfinished");
        assert_eq!(c.conns.len(), MAX_CONNECTIONS);
        // Unfinished ones (the new ones included) all go before any idle one.
        for i in 0..200 {
            c.admit(ip(&format!("10.8.{}.{}", i / 200, i % 200)))
                .expect("admitted");
        }
        assert!(conns[..200].iter().all(|(_, t)| !t.is_cancelled()));
        // With none unfinished left, the longest idle goes.
        for x in c.conns.iter_mut().filter(|x| x.phase == Phase::Unfinished) {
            x.phase = Phase::Busy;
        }
        c.admit(ip("10.7.0.1")).expect("admitted");
        assert!(conns[100].1.is_cancelled(), "the longest idle");
        assert!(conns[..100].iter().all(|(_, t)| !t.is_cancelled()));
        // Every one busy: the new one is refused, nobody is cut off mid-request.
        for x in c.conns.iter_mut() {
            x.phase = Phase::Busy;
        }
        assert!(c.admit(ip("10.7.0.2")).is_none());
        assert_eq!(c.conns.len(), MAX_CONNECTIONS);
    }
}
