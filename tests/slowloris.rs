//! Slowloris against the exporter's own endpoint: hundreds of connections that send half a
//! request and then nothing, from one address and from many, must not keep Prometheus from
//! /metrics, neither while they are open nor when the attacker reopens every one that is
//! closed. Plain HTTP and TLS (where a handshake that never finishes is the half request).
//!
//! No latency is measured: each scrape gets a client timeout of a few seconds and must
//! succeed within it, where the old endpoint refused it outright (connection closed unread).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{config, Exporter, Redis};
use redis_clients_exporter::config::{WebConfig, WebTls};
use tokio_util::sync::CancellationToken;

/// A request line and a header, without the blank line that ends the head.
const HALF_REQUEST: &[u8] = b"GET /metrics HTTP/1.1\r\nHost: x\r\n";
/// The 5-byte header of a TLS handshake record announcing 512 bytes that never come.
const HALF_HANDSHAKE: &[u8] = &[0x16, 0x03, 0x01, 0x02, 0x00];
/// How long a scrape may take before the test calls it locked out.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(4);

/// Attacking connections: `per_source` connections from each address in `sources`, each
/// sending `half` and then waiting; with `reconnect`, each one closed by the exporter is
/// opened again (after `pause`) until the attack is dropped.
struct Attack {
    rt: tokio::runtime::Runtime,
    stop: CancellationToken,
    /// Connections open now, as the attacker sees them.
    open: Arc<AtomicUsize>,
    /// Connections opened since the start.
    opened: Arc<AtomicUsize>,
    /// Connections the exporter closed.
    closed: Arc<AtomicUsize>,
}

impl Attack {
    fn start(
        target: SocketAddr,
        sources: &[IpAddr],
        per_source: usize,
        half: &'static [u8],
        reconnect: Option<Duration>,
    ) -> Attack {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let attack = Attack {
            rt,
            stop: CancellationToken::new(),
            open: Arc::default(),
            opened: Arc::default(),
            closed: Arc::default(),
        };
        for &source in sources {
            for _ in 0..per_source {
                let (stop, open, opened, closed) = (
                    attack.stop.clone(),
                    Arc::clone(&attack.open),
                    Arc::clone(&attack.opened),
                    Arc::clone(&attack.closed),
                );
                attack.rt.spawn(async move {
                    loop {
                        tokio::select! {
                            _ = stop.cancelled() => return,
                            held = hold(target, source, half, &open, &opened) => {
                                if held {
                                    closed.fetch_add(1, Ordering::SeqCst);
                                }
                            }
                        }
                        match reconnect {
                            Some(pause) => tokio::time::sleep(pause).await,
                            None => return,
                        }
                    }
                });
            }
        }
        attack
    }

    /// Waits until `n` connections have been opened (the kernel completes the handshake even
    /// for connections the exporter has not accepted yet).
    fn wait_opened(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.opened.load(Ordering::SeqCst) < n {
            assert!(
                Instant::now() < deadline,
                "the attacker opened only {} of {n} connections",
                self.opened.load(Ordering::SeqCst)
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn counts(&self) -> String {
        format!(
            "attacker: {} open, {} opened, {} closed by the exporter",
            self.open.load(Ordering::SeqCst),
            self.opened.load(Ordering::SeqCst),
            self.closed.load(Ordering::SeqCst)
        )
    }
}

impl Drop for Attack {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// One attacking connection: connect from `source`, send `half`, wait until the exporter closes
/// it. Returns whether it was open at all.
async fn hold(
    target: SocketAddr,
    source: IpAddr,
    half: &[u8],
    open: &AtomicUsize,
    opened: &AtomicUsize,
) -> bool {
    let Ok(sock) = tokio::net::TcpSocket::new_v4() else {
        return false;
    };
    if sock.bind(SocketAddr::new(source, 0)).is_err() {
        return false;
    }
    let Ok(stream) = sock.connect(target).await else {
        return false;
    };
    opened.fetch_add(1, Ordering::SeqCst);
    open.fetch_add(1, Ordering::SeqCst);
    if stream.writable().await.is_ok() {
        let _ = stream.try_write(half);
    }
    // Whatever comes back (EOF, a reset, a 408) means the exporter let go.
    let mut buf = [0u8; 256];
    loop {
        if stream.readable().await.is_err() {
            break;
        }
        match stream.try_read(&mut buf) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            _ => break,
        }
    }
    open.fetch_sub(1, Ordering::SeqCst);
    true
}

/// GET /metrics on a new connection; the status and body, or why there is none.
fn scrape(addr: SocketAddr) -> Result<String, String> {
    let mut s = TcpStream::connect_timeout(&addr, CLIENT_TIMEOUT).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(CLIENT_TIMEOUT))
        .map_err(|e| e.to_string())?;
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
        .map_err(|e| format!("write: {e}"))?;
    let mut resp = String::new();
    s.read_to_string(&mut resp)
        .map_err(|e| format!("read: {e}"))?;
    if !resp.starts_with("HTTP/1.0 200") && !resp.starts_with("HTTP/1.1 200") {
        return Err(format!("no 200: {:?}", &resp[..resp.len().min(120)]));
    }
    if !resp.contains("redis_up{target=\"main\"} 1") {
        return Err(format!("no redis_up: {resp}"));
    }
    Ok(resp)
}

fn loopback(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

/// 127.0.0.2 .. 127.0.0.(1 + n)
fn other_sources(n: u8) -> Vec<IpAddr> {
    (2..2 + n).map(loopback).collect()
}

/// The exporter with one real Redis `main`, once a scrape (by `get`) shows it up.
fn exporter_up(web: WebConfig, get: fn(SocketAddr) -> Result<String, String>) -> (Redis, Exporter) {
    let r = Redis::start(&[]);
    let mut cfg = config(vec![r.target("main")], 50);
    cfg.web = web;
    let exp = Exporter::start(cfg);
    let deadline = Instant::now() + Duration::from_secs(15);
    while let Err(e) = get(exp.addr) {
        assert!(Instant::now() < deadline, "main never up: {e}");
        std::thread::sleep(Duration::from_millis(50));
    }
    (r, exp)
}

/// GET https://127.0.0.1:PORT/metrics with curl (the certificate is not what is tested here).
fn tls_scrape(addr: SocketAddr) -> Result<String, String> {
    let out = std::process::Command::new("curl")
        .args(["-sS", "--insecure", "--max-time"])
        .arg(CLIENT_TIMEOUT.as_secs().to_string())
        .arg(format!("https://127.0.0.1:{}/metrics", addr.port()))
        .output()
        .map_err(|e| format!("curl: {e}"))?;
    let body = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() && body.contains("redis_up{target=\"main\"} 1") {
        Ok(body)
    } else {
        Err(format!(
            "curl {}: {} {body}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// 300 half requests from 127.0.0.1 and 300 more from ten other addresses (30 each: under
/// any per-address cap, and together past the connection limit), then a scrape.
#[test]
fn a_scrape_gets_through_six_hundred_half_sent_requests() {
    let (_r, exp) = exporter_up(WebConfig::default(), scrape);
    let attack = Attack::start(exp.addr, &[loopback(1)], 300, HALF_REQUEST, None);
    let others = Attack::start(exp.addr, &other_sources(10), 30, HALF_REQUEST, None);
    attack.wait_opened(300);
    others.wait_opened(300);
    let got = scrape(exp.addr);
    eprintln!("127.0.0.1 {}; others {}", attack.counts(), others.counts());
    if let Err(e) = got {
        panic!("scrape during the attack: {e}");
    }
}

/// The attacker reopens every connection the exporter closes (after 100 ms): for 12 s, a
/// scrape every half second must get through each time.
#[test]
fn an_attacker_who_keeps_reconnecting_does_not_lock_prometheus_out() {
    let (_r, exp) = exporter_up(WebConfig::default(), scrape);
    let pause = Some(Duration::from_millis(100));
    let attack = Attack::start(exp.addr, &[loopback(1)], 200, HALF_REQUEST, pause);
    let others = Attack::start(exp.addr, &other_sources(8), 40, HALF_REQUEST, pause);
    attack.wait_opened(200);
    others.wait_opened(320);
    let start = Instant::now();
    let mut scrapes = 0;
    while start.elapsed() < Duration::from_secs(12) {
        if let Err(e) = scrape(exp.addr) {
            panic!(
                "scrape #{scrapes} locked out: {e}; 127.0.0.1 {}; others {}",
                attack.counts(),
                others.counts()
            );
        }
        scrapes += 1;
        std::thread::sleep(Duration::from_millis(500));
    }
    eprintln!(
        "{scrapes} scrapes; 127.0.0.1 {}; others {}",
        attack.counts(),
        others.counts()
    );
    // The attack was real: the exporter closed attacking connections and they came back.
    assert!(
        others.opened.load(Ordering::SeqCst) > 320 && attack.opened.load(Ordering::SeqCst) > 200,
        "the attacker never had to reconnect: 127.0.0.1 {}; others {}",
        attack.counts(),
        others.counts()
    );
}

/// With TLS, a handshake that never finishes is an unfinished request like any other.
#[test]
fn a_tls_scrape_gets_through_half_finished_handshakes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "key.pem",
            "-out",
            "cert.pem",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ])
        .current_dir(dir.path())
        .output()
        .expect("openssl (apt-get install openssl)");
    assert!(out.status.success(), "{out:?}");
    let (_r, exp) = exporter_up(
        WebConfig {
            tls_server_config: Some(WebTls::files(
                dir.path().join("cert.pem"),
                dir.path().join("key.pem"),
            )),
            basic_auth_users: Default::default(),
            ..Default::default()
        },
        tls_scrape,
    );
    let attack = Attack::start(exp.addr, &[loopback(1)], 300, HALF_HANDSHAKE, None);
    let others = Attack::start(exp.addr, &other_sources(10), 30, HALF_HANDSHAKE, None);
    attack.wait_opened(300);
    others.wait_opened(300);
    let got = tls_scrape(exp.addr);
    eprintln!("127.0.0.1 {}; others {}", attack.counts(), others.counts());
    if let Err(e) = got {
        panic!("TLS scrape during the attack: {e}");
    }
}
