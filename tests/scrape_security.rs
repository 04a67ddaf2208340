//! `/scrape` as a hostile caller would use it (issue 13, item 1): it is off unless an allowlist
//! is configured; no credential ever goes to a host the operator did not list for it (checked
//! on a real hostile peer that records every byte it receives); a closed port and an open port
//! that is not Redis answer alike and nothing of the remote service is echoed; junk targets do
//! not starve real ones; `/0` and `/1` of one server are one poller on one connection.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{free_port, Exporter, Metrics, Redis};
use redis_clients_exporter::config::{load_with_env, Config, Overrides};

const WAIT: Duration = Duration::from_secs(20);
const PASSWORD: &str = "T0p-level-Secret-pw";
const MARKER: &str = "secret-marker";

/// What a hostile peer sends back.
#[derive(Clone, Copy)]
enum Answer {
    /// A Redis-looking error line quoting something the caller must never see, at once on
    /// accept and after every read.
    ErrorLine,
    /// An HTTP server's answer to whatever it was sent, then close.
    Http,
    /// `+OK` to everything: RESP, but not Redis (INFO gets no INFO).
    Ok,
    /// Accepts and reads, never answers (a server waiting for its own protocol).
    Silent,
}

/// A hostile service on a loopback port: a tokio listener that records every byte any
/// connection sends it.
struct Peer {
    port: u16,
    received: Arc<Mutex<Vec<u8>>>,
    accepted: Arc<AtomicUsize>,
    _rt: tokio::runtime::Runtime,
}

impl Peer {
    fn start(answer: Answer) -> Peer {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind peer");
        let port = listener.local_addr().expect("addr").port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let accepted = Arc::new(AtomicUsize::new(0));
        let (r, a) = (Arc::clone(&received), Arc::clone(&accepted));
        rt.spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                a.fetch_add(1, Ordering::SeqCst);
                let r = Arc::clone(&r);
                tokio::spawn(async move {
                    let err = format!("-ERR something {MARKER}\r\n");
                    let http = format!(
                        "HTTP/1.1 400 Bad Request\r\nServer: {MARKER}\r\nContent-Length: 13\r\n\r\n{MARKER}"
                    );
                    if let Answer::ErrorLine = answer {
                        let _ = write_all(&sock, err.as_bytes()).await;
                    }
                    let mut buf = [0u8; 4096];
                    loop {
                        let n = match read(&sock, &mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        r.lock().expect("lock").extend_from_slice(&buf[..n]);
                        match answer {
                            Answer::ErrorLine => {
                                let _ = write_all(&sock, err.as_bytes()).await;
                            }
                            Answer::Http => {
                                let _ = write_all(&sock, http.as_bytes()).await;
                                return;
                            }
                            Answer::Ok => {
                                let _ = write_all(&sock, b"+OK\r\n").await;
                            }
                            Answer::Silent => {}
                        }
                    }
                });
            }
        });
        Peer {
            port,
            received,
            accepted,
            _rt: rt,
        }
    }

    fn received(&self) -> String {
        String::from_utf8_lossy(&self.received.lock().expect("lock")).into_owned()
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

// The crate builds tokio without `io-util`; readiness and `try_*` need no feature.
async fn read(sock: &tokio::net::TcpStream, buf: &mut [u8]) -> std::io::Result<usize> {
    loop {
        sock.readable().await?;
        match sock.try_read(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            r => return r,
        }
    }
}

async fn write_all(sock: &tokio::net::TcpStream, mut data: &[u8]) -> std::io::Result<()> {
    while !data.is_empty() {
        sock.writable().await?;
        match sock.try_write(data) {
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    free_port()
}

fn load(body: &str, overrides: &Overrides) -> (Config, tempfile::NamedTempFile) {
    let f = tempfile::Builder::new()
        .suffix(".toml")
        .tempfile()
        .expect("tempfile");
    std::fs::write(f.path(), body).expect("write config");
    let cfg = load_with_env(Some(f.path()), overrides, Vec::new())
        .unwrap_or_else(|e| panic!("config: {e}\n{body}"));
    (cfg, f)
}

/// `--password-file` with the top-level password, as in the report.
fn password_file(dir: &Path) -> Overrides {
    let pw = dir.join("pw");
    std::fs::write(&pw, format!("{PASSWORD}\n")).expect("write pw");
    Overrides {
        password_file: Some(pw),
        ..Default::default()
    }
}

fn scrape_url(port: u16) -> String {
    format!("/scrape?target=redis://127.0.0.1:{port}")
}

/// Waits until the peer has had `n` connections (the exporter reconnects with backoff).
fn wait_accepted(peer: &Peer, n: usize) {
    let deadline = Instant::now() + WAIT;
    while peer.accepted() < n {
        assert!(
            Instant::now() < deadline,
            "the peer saw {} connection(s), wanted {n}",
            peer.accepted()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn assert_no_credentials(peer: &Peer) {
    let got = peer.received();
    assert!(
        !got.to_ascii_uppercase().contains("AUTH") && !got.contains(PASSWORD),
        "credentials reached the peer: {got:?}"
    );
}

#[test]
fn scrape_is_off_by_default_and_never_contacts_the_target() {
    // The set-up: one target, --password-file, nothing else.
    let redis = Redis::start(&["--requirepass", PASSWORD]);
    let peer = Peer::start(Answer::ErrorLine);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut o = password_file(dir.path());
    o.targets = vec![format!("redis://127.0.0.1:{}", redis.port)];
    o.listen = Some("127.0.0.1:0".into());
    let cfg = load_with_env(None, &o, Vec::new()).expect("config");
    let exp = Exporter::start(cfg);
    let label = format!("127.0.0.1:{}", redis.port);
    exp.wait_for("the configured target up", WAIT, |m| {
        m.get("redis_up", &[("target", &label)]) == Some(1.0)
    });

    let off = exp.get(&scrape_url(peer.port));
    assert_eq!(off.0, 404, "{}", off.1);
    assert!(off.1.contains("turned off"), "{}", off.1);
    // Off means the same answer whatever is asked.
    for path in ["/scrape", "/scrape?target=ftp://x", "/scrape?auth=ops"] {
        assert_eq!(exp.get(path), off, "{path}");
    }
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(peer.accepted(), 0, "the exporter connected to the peer");
    assert_no_credentials(&peer);
}

#[test]
fn credentials_go_only_where_an_auth_profile_lists_them() {
    let redis = Redis::start(&["--requirepass", PASSWORD]);
    let allowed = Peer::start(Answer::ErrorLine);
    let not_allowed = Peer::start(Answer::ErrorLine);
    let dir = tempfile::tempdir().expect("tempdir");
    let o = password_file(dir.path());
    let (cfg, _f) = load(
        &format!(
            "listen = \"127.0.0.1:0\"\npoll_interval_seconds = 0.2\n\
             connect_timeout_seconds = 1\ncommand_timeout_seconds = 1\n\
             scrape_allow = [\"127.0.0.1:{r}\", \"127.0.0.1:{p}\"]\n\
             [auth_profiles.ops]\npassword = \"{PASSWORD}\"\ntargets = [\"127.0.0.1:{r}\"]\n\
             [auth_profiles.wide]\npassword = \"{PASSWORD}\"\n\
             [[targets]]\naddress = \"redis://127.0.0.1:{r}\"\nalias = \"configured\"\n",
            r = redis.port,
            p = allowed.port,
        ),
        &o,
    );
    let exp = Exporter::start(cfg);
    // The configured target still gets the top-level password.
    exp.wait_for("the configured target up", WAIT, |m| {
        m.get("redis_up", &[("target", "configured")]) == Some(1.0)
    });

    // Not in scrape_allow: refused before any connection, with or without a profile.
    for q in ["", "&auth=ops", "&auth=wide"] {
        let (status, body) = exp.get(&format!("{}{q}", scrape_url(not_allowed.port)));
        assert_eq!(status, 403, "{q}: {body}");
        assert!(body.contains("scrape_allow"), "{body}");
    }
    // Allowed, but no profile lists the peer: a profile without `targets` is usable nowhere,
    // and an unknown profile gets the same answer.
    for profile in ["ops", "wide", "nope"] {
        let (status, body) = exp.get(&format!("{}&auth={profile}", scrape_url(allowed.port)));
        assert_eq!(status, 403, "{profile}: {body}");
        assert_eq!(
            body,
            format!("auth profile `{profile}` is unknown or may not be sent to this target\n")
        );
    }
    assert_eq!(not_allowed.accepted(), 0);
    assert_eq!(allowed.accepted(), 0);

    // Allowed without a profile: the exporter connects, and sends no credential at all, on the
    // first connection and on every reconnect.
    let (status, body) = exp.get(&scrape_url(allowed.port));
    assert_eq!(status, 200, "{body}");
    let label = format!("127.0.0.1:{}", allowed.port);
    assert_eq!(
        Metrics::parse(&body).get("redis_up", &[("target", &label)]),
        Some(0.0),
        "{body}"
    );
    wait_accepted(&allowed, 3);
    assert!(!allowed.received().is_empty(), "the peer was sent nothing");
    assert_no_credentials(&allowed);
    assert_no_credentials(&not_allowed);

    // Where the profile lists the target, its credentials are used.
    let (status, body) = exp.get(&format!("{}&auth=ops", scrape_url(redis.port)));
    assert_eq!(status, 200, "{body}");
    let label = format!("127.0.0.1:{}", redis.port);
    assert_eq!(
        Metrics::parse(&body).get("redis_up", &[("target", &label)]),
        Some(1.0),
        "{body}"
    );
    // Without it, the running target is not restarted without credentials (issue 25, item 2):
    // the caller is refused and the target stays up with the profile's.
    let (status, body) = exp.get(&scrape_url(redis.port));
    assert_eq!(status, 409, "{body}");
    let (status, body) = exp.get(&format!("{}&auth=ops", scrape_url(redis.port)));
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        Metrics::parse(&body).get("redis_up", &[("target", &label)]),
        Some(1.0),
        "{body}"
    );
    assert_no_credentials(&allowed);
}

/// `/scrape`'s answer for a target, with the target's port written as PORT.
fn scrape_answer(exp: &Exporter, port: u16) -> (u16, String) {
    let (status, body) = exp.get(&scrape_url(port));
    (status, body.replace(&port.to_string(), "PORT"))
}

/// `/diagnose`'s JSON for a target once it has failed a poll, without the poll's time, with
/// the port written as PORT.
fn diagnose_answer(exp: &Exporter, port: u16) -> (u16, String) {
    let (status, body) = exp.get(&format!("/diagnose?target=127.0.0.1:{port}"));
    let mut v: serde_json::Value =
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    if let Some(o) = v.as_object_mut() {
        o.remove("generated_at");
    }
    (status, v.to_string().replace(&port.to_string(), "PORT"))
}

#[test]
fn closed_port_and_non_redis_port_answer_alike_and_nothing_is_echoed() {
    let redis = Redis::start(&[]);
    let err_peer = Peer::start(Answer::ErrorLine);
    let http_peer = Peer::start(Answer::Http);
    let ok_peer = Peer::start(Answer::Ok);
    let silent_peer = Peer::start(Answer::Silent);
    let closed = closed_port();
    let (cfg, _f) = load(
        &format!(
            "listen = \"127.0.0.1:0\"\npoll_interval_seconds = 0.2\n\
             connect_timeout_seconds = 1\ncommand_timeout_seconds = 1\n\
             scrape_allow = [\"127.0.0.0/8:1-65535\"]\n\
             [[targets]]\naddress = \"unix://{}\"\n",
            redis.socket_path().display()
        ),
        &Overrides::default(),
    );
    let exp = Exporter::start(cfg);
    let ports = [
        closed,
        err_peer.port,
        http_peer.port,
        ok_peer.port,
        silent_peer.port,
    ];

    let scrapes: Vec<(u16, String)> = ports.iter().map(|&p| scrape_answer(&exp, p)).collect();
    for (port, (status, body)) in ports.iter().zip(&scrapes) {
        assert_eq!(*status, 200, "{port}: {body}");
        assert!(!body.contains(MARKER), "{port}: {body}");
        assert!(
            body.contains("redis_up{target=\"127.0.0.1:PORT\"} 0"),
            "{body}"
        );
    }
    for (i, what) in [(1, "-ERR"), (2, "HTTP"), (3, "+OK"), (4, "silent")] {
        assert_eq!(scrapes[0], scrapes[i], "closed port vs {what} peer");
    }
    for p in [&err_peer, &http_peer, &ok_peer, &silent_peer] {
        assert!(p.accepted() > 0, "a peer was never contacted");
    }

    let diagnoses: Vec<(u16, String)> = ports.iter().map(|&p| diagnose_answer(&exp, p)).collect();
    for (port, (status, body)) in ports.iter().zip(&diagnoses) {
        assert_eq!(*status, 200, "{port}: {body}");
        assert!(!body.contains(MARKER), "{port}: {body}");
    }
    for (i, what) in [(1, "-ERR"), (2, "HTTP"), (3, "+OK"), (4, "silent")] {
        assert_eq!(diagnoses[0], diagnoses[i], "closed port vs {what} peer");
    }
    assert!(
        diagnoses[0].1.contains("not a Redis server"),
        "{diagnoses:?}"
    );
    for port in ports {
        for format in ["html", "text", "markdown"] {
            let (status, body) = exp.get(&format!(
                "/diagnose?target=127.0.0.1:{port}&format={format}"
            ));
            assert_eq!(status, 200, "{format}: {body}");
            assert!(!body.contains(MARKER), "{format}: {body}");
        }
        // Later scrapes (after reconnects) stay generic too.
        let (status, body) = exp.get(&scrape_url(port));
        assert_eq!(status, 200);
        assert!(!body.contains(MARKER), "{body}");
        for kind in ["timeout", "protocol", "other"] {
            let m = Metrics::parse(&body);
            let label = format!("127.0.0.1:{port}");
            assert_eq!(
                m.get(
                    "redis_clients_exporter_poll_errors_total",
                    &[("target", &label), ("kind", kind)]
                ),
                Some(0.0),
                "{body}"
            );
        }
    }
}

#[test]
fn junk_targets_make_room_for_a_real_redis() {
    let r1 = Redis::start(&[]);
    let r2 = Redis::start(&[]);
    let r3 = Redis::start(&[]);
    let (cfg, _f) = load(
        &format!(
            "listen = \"127.0.0.1:0\"\npoll_interval_seconds = 0.2\n\
             connect_timeout_seconds = 1\ncommand_timeout_seconds = 1\n\
             scrape_allow = [\"127.0.0.1:1-65535\"]\nscrape_max_targets = 3\n\
             [[targets]]\naddress = \"unix://{}\"\n",
            r1.socket_path().display()
        ),
        &Overrides::default(),
    );
    let exp = Exporter::start(cfg);
    let up = |port: u16| -> Option<f64> {
        let (status, body) = exp.get(&scrape_url(port));
        assert_eq!(status, 200, "{port}: {body}");
        Metrics::parse(&body).get("redis_up", &[("target", &format!("127.0.0.1:{port}"))])
    };
    // The cap filled with junk, as an attacker (or a broken service discovery) would.
    let junk: Vec<u16> = (0..3).map(|_| closed_port()).collect();
    for &p in &junk {
        assert_eq!(up(p), Some(0.0));
    }
    // A real server is served at once, in place of junk.
    assert_eq!(up(r1.port), Some(1.0));
    assert_eq!(up(r2.port), Some(1.0));
    assert_eq!(up(r3.port), Some(1.0));
    // Servers that have been up are never pushed out by newcomers: junk now gets 503.
    let (status, body) = exp.get(&scrape_url(closed_port()));
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("scrape_max_targets"), "{body}");
    for r in [&r1, &r2, &r3] {
        assert_eq!(up(r.port), Some(1.0));
    }
    // The junk that made room is gone from /diagnose too.
    let deadline = Instant::now() + WAIT;
    while junk
        .iter()
        .any(|p| exp.get(&format!("/diagnose?target=127.0.0.1:{p}")).0 != 404)
    {
        assert!(Instant::now() < deadline, "evicted targets still listed");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn targets_never_up_expire_sooner_than_idle_ones() {
    let redis = Redis::start(&[]);
    let (cfg, _f) = load(
        &format!(
            "listen = \"127.0.0.1:0\"\npoll_interval_seconds = 0.2\n\
             connect_timeout_seconds = 1\ncommand_timeout_seconds = 1\n\
             scrape_allow = [\"127.0.0.1:1-65535\"]\n\
             scrape_idle_timeout_seconds = 600\nscrape_never_up_timeout_seconds = 0.5\n\
             [[targets]]\naddress = \"unix://{}\"\n",
            redis.socket_path().display()
        ),
        &Overrides::default(),
    );
    let exp = Exporter::start(cfg);
    let junk = closed_port();
    assert_eq!(exp.get(&scrape_url(junk)).0, 200);
    assert_eq!(exp.get(&scrape_url(redis.port)).0, 200);
    let junk_label = format!("/diagnose?target=127.0.0.1:{junk}");
    let real_label = format!("/diagnose?target=127.0.0.1:{}", redis.port);
    let deadline = Instant::now() + WAIT;
    while exp.get(&junk_label).0 != 404 {
        assert!(
            Instant::now() < deadline,
            "the never-up target did not expire"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The server that was up stays for the idle timeout.
    assert_eq!(exp.get(&real_label).0, 200);
}

/// Client ids of the exporter's TCP connections to `redis` (its unix-socket one is the
/// configured target).
fn exporter_connections(redis: &Redis) -> Vec<String> {
    exporter_connections_with(redis, None)
}

fn exporter_connections_with(redis: &Redis, password: Option<&str>) -> Vec<String> {
    let mut c = redis.conn();
    if let Some(pw) = password {
        assert_eq!(c.cmd(&["AUTH", pw]).as_simple(), Some("OK"));
    }
    let list = c.cmd(&["CLIENT", "LIST"]);
    list.as_bulk()
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("name=redis-clients-exporter") && l.contains("addr=127.0.0.1:"))
        .filter_map(|l| l.split(' ').find_map(|f| f.strip_prefix("id=")))
        .map(str::to_string)
        .collect()
}

#[test]
fn database_numbers_of_one_server_share_one_poller() {
    let redis = Redis::start(&[]);
    let (cfg, _f) = load(
        &format!(
            "listen = \"127.0.0.1:0\"\npoll_interval_seconds = 0.2\n\
             scrape_allow = [\"127.0.0.1:{}\"]\n\
             [[targets]]\naddress = \"unix://{}\"\n",
            redis.port,
            redis.socket_path().display()
        ),
        &Overrides::default(),
    );
    let exp = Exporter::start(cfg);
    let label = format!("127.0.0.1:{}", redis.port);
    let scrape = |db: u8| {
        let (status, body) = exp.get(&format!("{}/{db}", scrape_url(redis.port)));
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            Metrics::parse(&body).get("redis_up", &[("target", &label)]),
            Some(1.0),
            "{body}"
        );
    };
    scrape(0);
    let first = exporter_connections(&redis);
    assert_eq!(first.len(), 1, "{first:?}");
    for db in [1, 0, 1, 2, 0] {
        scrape(db);
        // Long enough for a restarted poller to have reconnected.
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(exporter_connections(&redis), first, "after /{db}");
    }
}

#[test]
fn a_reload_stops_targets_the_new_configuration_refuses() {
    let redis = Redis::start(&["--requirepass", PASSWORD]);
    let other = Redis::start(&[]);
    let config = |allow: &str, profile_targets: &str| {
        format!(
            "listen = \"127.0.0.1:0\"\npoll_interval_seconds = 0.2\n{allow}\n\
             [auth_profiles.ops]\npassword = \"{PASSWORD}\"\n{profile_targets}\n\
             [[targets]]\naddress = \"unix://{}\"\n",
            other.socket_path().display()
        )
    };
    let allow = format!("scrape_allow = [\"127.0.0.1:{}\"]", redis.port);
    let listed = format!("targets = [\"127.0.0.1:{}\"]", redis.port);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (cfg, _f) = load(&config(&allow, &listed), &Overrides::default());
    let running = rt
        .block_on(redis_clients_exporter::start(cfg))
        .expect("start");
    let addr = running.addr;
    let url = format!("{}&auth=ops", scrape_url(redis.port));
    let label = format!("127.0.0.1:{}", redis.port);
    let scrape_up = || {
        let (status, body) = common::http_get(addr, &url);
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            Metrics::parse(&body).get("redis_up", &[("target", &label)]),
            Some(1.0),
            "{body}"
        );
        assert_eq!(exporter_connections_with(&redis, Some(PASSWORD)).len(), 1);
    };
    let wait_gone = |what: &str| {
        let deadline = Instant::now() + WAIT;
        while !exporter_connections_with(&redis, Some(PASSWORD)).is_empty() {
            assert!(Instant::now() < deadline, "{what}: the connection stayed");
            std::thread::sleep(Duration::from_millis(100));
        }
        let (status, _) = common::http_get(addr, &format!("/diagnose?target={label}"));
        assert_eq!(status, 404, "{what}: still listed");
    };

    scrape_up();
    // The profile no longer lists the server: its credentials must stop going there now, not
    // at the idle timeout (600 s).
    let (cfg, _f2) = load(&config(&allow, ""), &Overrides::default());
    rt.block_on(running.reload(cfg));
    wait_gone("profile narrowed");
    assert_eq!(common::http_get(addr, &url).0, 403);

    let (cfg, _f3) = load(&config(&allow, &listed), &Overrides::default());
    rt.block_on(running.reload(cfg));
    scrape_up();
    // /scrape turned off.
    let (cfg, _f4) = load(&config("", &listed), &Overrides::default());
    rt.block_on(running.reload(cfg));
    wait_gone("scrape_allow removed");
    assert_eq!(common::http_get(addr, &url).0, 404);
    rt.block_on(running.stop());
}

/// Connections to `redis` until it refuses one (maxclients), kept open.
fn fill(redis: &Redis) -> Vec<std::net::TcpStream> {
    use std::io::{Read, Write};
    let mut held = Vec::new();
    loop {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", redis.port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        s.write_all(b"PING\r\n").expect("ping");
        let mut buf = [0u8; 256];
        let n = s.read(&mut buf).unwrap_or(0);
        let reply = String::from_utf8_lossy(&buf[..n]).into_owned();
        if reply.contains("max number of clients") {
            return held;
        }
        assert!(
            reply.starts_with("-NOAUTH") || reply.starts_with("+PONG"),
            "{reply}"
        );
        held.push(s);
        assert!(held.len() < 200, "the server never filled");
    }
}

/// Issue 25, item 2: a caller who asks for a running target with another profile, no profile or
/// another scheme must not make the exporter close its held connection. On a full server the
/// slot would go to whoever connects next, and the exporter would be blind when it matters.
#[test]
fn another_profile_or_scheme_never_closes_the_held_connection_of_a_full_server() {
    let redis = Redis::start(&["--requirepass", PASSWORD, "--maxclients", "12"]);
    let (cfg, _f) = load(
        &format!(
            "listen = \"127.0.0.1:0\"\npoll_interval_seconds = 0.2\n\
             connect_timeout_seconds = 1\ncommand_timeout_seconds = 1\n\
             scrape_allow = [\"127.0.0.1:{r}\"]\n\
             [auth_profiles.ops]\npassword = \"{PASSWORD}\"\ntargets = [\"127.0.0.1:{r}\"]\n\
             [auth_profiles.other]\npassword = \"not-the-password\"\ntargets = [\"127.0.0.1:{r}\"]\n",
            r = redis.port,
        ),
        &Overrides::default(),
    );
    let exp = Exporter::start(cfg);
    let label = format!("127.0.0.1:{}", redis.port);
    let ops = format!("{}&auth=ops", scrape_url(redis.port));
    let up = |body: &str| Metrics::parse(body).get("redis_up", &[("target", &label)]);
    let (status, body) = exp.get(&ops);
    assert_eq!((status, up(&body)), (200, Some(1.0)), "{body}");
    let mut admin = redis.conn();
    assert_eq!(admin.cmd(&["AUTH", PASSWORD]).as_simple(), Some("OK"));
    let mut ours = || {
        let list = admin.cmd(&["CLIENT", "LIST"]);
        list.as_bulk()
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("name=redis-clients-exporter"))
            .filter_map(|l| l.split(' ').find_map(|f| f.strip_prefix("id=")))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let held = ours();
    assert_eq!(held.len(), 1, "{held:?}");
    let _leakers = fill(&redis);

    for (what, path) in [
        (
            "another profile",
            format!("{}&auth=other", scrape_url(redis.port)),
        ),
        ("no profile", scrape_url(redis.port)),
        (
            "an unknown profile's twin",
            format!("{}&auth=ops&auth=other", scrape_url(redis.port)),
        ),
        (
            "another scheme",
            format!("/scrape?target=rediss://127.0.0.1:{}&auth=ops", redis.port),
        ),
    ] {
        let (status, body) = exp.get(&path);
        assert!(status == 409 || status == 400, "{what}: {status} {body}");
        if status == 409 {
            assert!(
                body.contains("runs with another auth profile or scheme"),
                "{body}"
            );
        }
        // Long enough for a restarted poller to have closed and reconnected.
        std::thread::sleep(Duration::from_millis(500));
        assert_eq!(ours(), held, "{what}: the held connection was replaced");
        let (status, body) = exp.get(&ops);
        assert_eq!((status, up(&body)), (200, Some(1.0)), "{what}: {body}");
    }
}

/// `/diagnose`'s errors list the configured targets only: `/scrape` targets were named by
/// callers, and another caller must not learn them.
#[test]
fn diagnose_errors_do_not_list_scrape_targets() {
    let redis = Redis::start(&[]);
    let other = Redis::start(&[]);
    let (cfg, _f) = load(
        &format!(
            "listen = \"127.0.0.1:0\"\npoll_interval_seconds = 0.2\n\
             scrape_allow = [\"127.0.0.1:{}\"]\n\
             [[targets]]\naddress = \"redis://127.0.0.1:{}\"\nalias = \"configured\"\n",
            redis.port, other.port
        ),
        &Overrides::default(),
    );
    let exp = Exporter::start(cfg);
    let (status, body) = exp.get(&scrape_url(redis.port));
    assert_eq!(status, 200, "{body}");
    let dynamic = format!("127.0.0.1:{}", redis.port);
    // It is diagnosable by its label...
    let (status, body) = exp.get(&format!("/diagnose?target={dynamic}"));
    assert_ne!(status, 404, "{body}");
    // ...but never listed to a caller who does not know it.
    for path in [
        "/diagnose?target=nope",
        "/diagnose?target=configured&format=x",
    ] {
        let (status, body) = exp.get(path);
        assert!([400, 404, 503].contains(&status), "{path}: {status} {body}");
        assert!(body.contains("configured"), "{path}: {body}");
        assert!(
            !body.contains(&dynamic),
            "{path} lists a /scrape target: {body}"
        );
    }
}

/// A flood of scrapes of new targets that never answer must not hold every HTTP connection
/// for their first polls: past a few dozen waiting, a scrape answers at once.
#[test]
fn a_flood_of_slow_first_polls_does_not_hold_every_connection() {
    // One silent listener on every loopback address: 60 distinct targets.
    let listener = std::net::TcpListener::bind("0.0.0.0:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming().map_while(Result::ok) {
            held.push(s);
        }
    });
    let (cfg, _f) = load(
        &format!(
            "listen = \"127.0.0.1:0\"\nconnect_timeout_seconds = 30\ncommand_timeout_seconds = 30\n\
             scrape_first_poll_wait_seconds = 30\n\
             scrape_allow = [\"127.0.0.0/8:{port}\"]\n"
        ),
        &Overrides::default(),
    );
    let exp = Exporter::start(cfg);
    let addr = exp.addr;
    let done = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..60)
        .map(|i| {
            let done = Arc::clone(&done);
            std::thread::spawn(move || {
                let path = format!("/scrape?target=redis://127.0.0.{}:{port}", i + 2);
                let mut s = std::net::TcpStream::connect(addr).expect("connect");
                use std::io::{Read, Write};
                s.set_read_timeout(Some(Duration::from_secs(60)))
                    .expect("timeout");
                write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").expect("write");
                let mut out = String::new();
                let _ = s.read_to_string(&mut out);
                if out.starts_with("HTTP/1.0 200") || out.starts_with("HTTP/1.1 200") {
                    done.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    // Those past the waiters' bound answer long before the 30 s first-poll wait ends.
    let deadline = Instant::now() + Duration::from_secs(15);
    while done.load(Ordering::SeqCst)
        < 60 - redis_clients_exporter::targets::dynamic::FIRST_POLL_WAITERS
    {
        assert!(
            Instant::now() < deadline,
            "only {} of 60 scrapes answered while the others wait for their first poll",
            done.load(Ordering::SeqCst)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // And /metrics still answers meanwhile.
    assert_eq!(exp.get("/metrics").0, 200);
    // The waiting ones are cut off with the exporter; their threads end with it.
    drop(exp);
    drop(threads);
}
