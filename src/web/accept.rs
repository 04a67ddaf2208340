//! The accept loop of the HTTP endpoint and its caps: the connection limit that makes room
//! by closing the oldest connection without a complete request (then the longest idle, never
//! a busy one), the per-source cap on unfinished connections, the first-request and header
//! read timeouts, TLS handshakes in each connection's own task (with the web configuration
//! in force for that connection: src/web/live_config.rs), graceful shutdown.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::web::auth::ClientCertNames;
use crate::web::live_config::LiveWebConfig;

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
    live: Arc<LiveWebConfig>,
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
        let mut service = Tracked {
            inner: TowerToHyperService::new(app.clone()),
            conns: Arc::clone(&conns),
            id,
            peer,
            client: None,
        };
        let live = Arc::clone(&live);
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
                // The web configuration in force for this connection, read again if changed.
                let web = live.refresh();
                let served = match web.tls.clone() {
                    None => {
                        watcher
                            .watch(http.serve_connection(TokioIo::new(tcp), service))
                            .await
                    }
                    Some(acceptor) => match acceptor.accept(tcp).await {
                        Ok(stream) => {
                            if web.verifies_client {
                                service.client = stream
                                    .get_ref()
                                    .1
                                    .peer_certificates()
                                    .and_then(|c| c.first())
                                    .map(|c| {
                                        ClientCertNames(Arc::new(
                                            crate::web::tls_server::certificate_names(c),
                                        ))
                                    });
                            }
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
    /// The verified client certificate's names, handed to handlers (src/web/auth.rs).
    client: Option<ClientCertNames>,
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
        if let Some(names) = &self.client {
            req.extensions_mut().insert(names.clone());
        }
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
