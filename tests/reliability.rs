//! Reliability: a hung Redis (SIGSTOP), a proxy that stops forwarding or answers with junk, a
//! server full before the exporter arrives, a crowd of scrapers and oversized requests, and
//! connection churn. In every case the exporter must keep serving /metrics, report the target
//! down with the failure counted, leave other targets alone, come back by itself, and never hold
//! more than one connection per target.
//!
//! The waits are "within a generous bound" waits (the machine running this may be small and
//! busy); nothing here measures speed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::proxy::{Garbage, Mode, Proxy};
use common::{config, http_get, Exporter, Metrics, Redis, Reply, RespConn};
use redis_clients_exporter::config::{Endpoint, Target};

const WAIT: Duration = Duration::from_secs(15);
const OUR_NAME: &str = "redis-clients-exporter";
const ERRORS: &str = "redis_clients_exporter_poll_errors_total";
const POLLS: &str = "redis_clients_exporter_polls_total";
const LAST_SUCCESS: &str = "redis_clients_exporter_last_success_timestamp_seconds";

fn up(m: &Metrics, t: &str) -> Option<f64> {
    m.get("redis_up", &[("target", t)])
}

fn errors(m: &Metrics, t: &str) -> f64 {
    m.sum(ERRORS, &[("target", t)])
}

fn error_kind(m: &Metrics, t: &str, kind: &str) -> f64 {
    m.get(ERRORS, &[("target", t), ("kind", kind)])
        .unwrap_or(0.0)
}

fn last_success(m: &Metrics, t: &str) -> f64 {
    m.get(LAST_SUCCESS, &[("target", t)]).unwrap_or(0.0)
}

fn our_connections_metric(m: &Metrics, t: &str) -> Option<f64> {
    m.get(
        "redis_client_connections_by_name",
        &[("target", t), ("name", OUR_NAME)],
    )
}

/// A target with a short command timeout, so that hangs are detected quickly.
fn quick(mut t: Target) -> Target {
    t.connect_timeout = Duration::from_secs(1);
    t.command_timeout = Duration::from_secs(1);
    t
}

/// A target that reaches `r`'s server through `proxy`.
fn via_proxy(r: &Redis, proxy: &Proxy, label: &str) -> Target {
    let mut t = quick(r.target(label));
    t.endpoint = Endpoint::Tcp {
        host: "127.0.0.1".into(),
        port: proxy.port,
    };
    t
}

/// Every CLIENT LIST line of the real server except the asking connection's own, as seen on
/// a fresh raw connection.
fn others_in_client_list(r: &Redis) -> Vec<String> {
    let mut c = r.conn();
    let Reply::Int(me) = c.cmd(&["CLIENT", "ID"]) else {
        panic!("CLIENT ID")
    };
    let list = c.cmd(&["CLIENT", "LIST"]);
    let list = list.as_bulk().expect("CLIENT LIST reply").to_string();
    list.lines()
        .filter(|l| !l.starts_with(&format!("id={me} ")))
        .map(str::to_string)
        .collect()
}

fn named_ours(lines: &[String]) -> usize {
    lines
        .iter()
        .filter(|l| l.contains(&format!(" name={OUR_NAME} ")))
        .count()
}

/// Polls `cond` until it holds, or panics with `what` after `timeout`.
fn eventually(what: &str, timeout: Duration, mut cond: impl FnMut() -> Result<(), String>) {
    let deadline = Instant::now() + timeout;
    loop {
        match cond() {
            Ok(()) => return,
            Err(e) if Instant::now() > deadline => panic!("timed out waiting for {what}: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// The exporter's footprint on the real server is exactly one connection, named ours, and it
/// stays so for `hold` (several polls): no leaked or doubled connection.
fn exactly_one_exporter_connection(r: &Redis, hold: Duration) {
    let check = || {
        let others = others_in_client_list(r);
        if others.len() == 1 && named_ours(&others) == 1 {
            Ok(())
        } else {
            Err(format!("CLIENT LIST besides ours:\n{}", others.join("\n")))
        }
    };
    eventually("exactly one exporter connection", WAIT, check);
    let until = Instant::now() + hold;
    while Instant::now() < until {
        if let Err(e) = check() {
            panic!("the exporter's single connection did not stay single: {e}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn redis_pid(r: &Redis) -> u32 {
    let mut c = r.conn();
    let info = c.cmd(&["INFO", "server"]);
    let info = info.as_bulk().expect("INFO reply");
    info.lines()
        .find_map(|l| l.strip_prefix("process_id:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("process_id in INFO server")
}

fn signal(pid: u32, sig: &str) {
    let ok = std::process::Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()
        .expect("run kill")
        .success();
    assert!(ok, "kill -{sig} {pid}");
}

/// SIGSTOPs a process and SIGCONTs it on drop, so that a failing test never leaves a stopped
/// redis-server behind.
struct Stopped(Option<u32>);

impl Stopped {
    fn new(pid: u32) -> Stopped {
        signal(pid, "STOP");
        Stopped(Some(pid))
    }
    fn resume(&mut self) {
        if let Some(pid) = self.0.take() {
            signal(pid, "CONT");
        }
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        self.resume();
    }
}

/// Both targets up.
fn both_up(exp: &Exporter, a: &str, b: &str) {
    exp.wait_for("both targets up", WAIT, |m| {
        up(m, a) == Some(1.0) && up(m, b) == Some(1.0)
    });
}

/// `b`'s last successful poll moves forward by more than a second and b stays up.
fn keeps_updating(exp: &Exporter, b: &str) {
    let seen = last_success(&exp.scrape(), b);
    exp.wait_for("the healthy target keeps being polled", WAIT, |m| {
        up(m, b) == Some(1.0) && last_success(m, b) > seen + 1.0
    });
}

#[test]
fn a_stopped_redis_times_out_without_piling_up_polls_and_comes_back_with_one_connection() {
    let a = Redis::start(&[]);
    let b = Redis::start(&[]);
    let ta = quick(a.target("a"));
    let command_timeout = ta.command_timeout;
    let exp = Exporter::start(config(vec![ta, b.target("b")], 50));
    both_up(&exp, "a", "b");
    exactly_one_exporter_connection(&a, Duration::ZERO);

    let pid = redis_pid(&a);
    let mut stopped = Stopped::new(pid);
    // One command timeout, plus up to a second for QUIT on close, plus a poll interval.
    let m = exp.wait_for("a down on a timeout", Duration::from_secs(8), |m| {
        up(m, "a") == Some(0.0) && error_kind(m, "a", "timeout") >= 1.0
    });
    // A down target shows that it is down, not its last values.
    assert_eq!(m.get("redis_connected_clients", &[("target", "a")]), None);
    keeps_updating(&exp, "b");

    // While a is stopped, every attempt waits for a timeout: attempts are bounded by one per
    // (command timeout + the smallest backoff, 250 ms × 0.5 jitter), not one per 200 ms poll
    // interval (which would be ~5 per second).
    let m0 = exp.scrape();
    let (p0, t0) = (
        m0.get(POLLS, &[("target", "a")]).expect("polls"),
        Instant::now(),
    );
    std::thread::sleep(Duration::from_secs(6));
    let m1 = exp.scrape();
    let elapsed = t0.elapsed();
    let p1 = m1.get(POLLS, &[("target", "a")]).expect("polls");
    let min_cycle = command_timeout + Duration::from_millis(125);
    // Starts in a window of E seconds: at most E / min_cycle + 1; one more because the counter
    // is published at the end of a cycle, not at its start.
    let bound = (elapsed.as_secs_f64() / min_cycle.as_secs_f64()).floor() + 2.0;
    eprintln!(
        "stopped server: {} polls in {elapsed:?} (bound {bound})",
        p1 - p0
    );
    assert!(
        p1 - p0 <= bound,
        "{} polls in {elapsed:?} against a stopped server (bound {bound})",
        p1 - p0
    );
    assert!(p1 > p0, "the exporter stopped retrying a stopped server");
    assert_eq!(up(&m1, "a"), Some(0.0));
    assert!(errors(&m1, "a") >= errors(&m0, "a"));
    assert_eq!(up(&m1, "b"), Some(1.0));

    stopped.resume();
    exp.wait_for("a back up after SIGCONT", WAIT, |m| up(m, "a") == Some(1.0));
    exp.wait_for("a's snapshot shows one exporter connection", WAIT, |m| {
        our_connections_metric(m, "a") == Some(1.0)
    });
    // The attempts made while the server was stopped (queued in its accept backlog) are gone
    // once it runs again; only the held connection remains.
    exactly_one_exporter_connection(&a, Duration::from_secs(2));
    assert_eq!(up(&exp.scrape(), "b"), Some(1.0));
}

#[test]
fn a_proxy_that_stops_forwarding_is_a_timeout_and_recovery_is_clean() {
    let r = Redis::start(&[]);
    let b = Redis::start(&[]);
    let proxy = Proxy::start(r.port);
    let exp = Exporter::start(config(vec![via_proxy(&r, &proxy, "a"), b.target("b")], 50));
    both_up(&exp, "a", "b");

    proxy.set_mode(Mode::Hang);
    exp.wait_for("a down on a timeout", Duration::from_secs(8), |m| {
        up(m, "a") == Some(0.0) && error_kind(m, "a", "timeout") >= 1.0
    });
    keeps_updating(&exp, "b");
    // Still down: nothing gets through a hung path.
    let m = exp.scrape();
    assert_eq!(up(&m, "a"), Some(0.0));
    assert_eq!(m.get("redis_connected_clients", &[("target", "a")]), None);

    recovers_with_one_connection(&exp, &proxy, &r, Duration::from_secs(2));
}

/// Switches the proxy back to forwarding and waits until target `a` is up again on exactly one
/// connection: one socket to the proxy (abandoned ones closed) and, on the server, one
/// connection named ours for `settle`.
fn recovers_with_one_connection(exp: &Exporter, proxy: &Proxy, r: &Redis, settle: Duration) {
    proxy.set_mode(Mode::Forward);
    exp.wait_for("a back up", WAIT, |m| up(m, "a") == Some(1.0));
    exp.wait_for("one exporter connection in a's snapshot", WAIT, |m| {
        our_connections_metric(m, "a") == Some(1.0)
    });
    eventually("one proxied connection", WAIT, || {
        match proxy.open_connections() {
            1 => Ok(()),
            n => Err(format!("{n} proxied connections")),
        }
    });
    exactly_one_exporter_connection(r, settle);
}

/// A held connection closed by the server (CLIENT KILL, a restart, the idle `timeout`, a
/// reset) must be noticed at the next poll and counted as `connect`, not left to wait for the
/// command timeout and counted as `timeout` (the "server hung" signal): the keepalive PING or
/// the next command reads EOF and the connection says it was closed.
#[test]
fn a_connection_closed_by_the_server_is_a_connect_error_noticed_at_the_next_poll() {
    let r = Redis::start(&[]);
    let mut t = r.target("a");
    // Far longer than the wait below: only a poll that notices the close can pass.
    t.command_timeout = Duration::from_secs(30);
    let exp = Exporter::start(config(vec![t], 50));
    exp.wait_for("up", WAIT, |m| up(m, "a") == Some(1.0));
    let before = exp.scrape();

    let lines = others_in_client_list(&r);
    let line = lines
        .iter()
        .find(|l| l.contains(&format!(" name={OUR_NAME} ")))
        .expect("the exporter's connection");
    let id = line
        .strip_prefix("id=")
        .and_then(|l| l.split(' ').next())
        .expect("id");
    let mut admin = r.conn();
    assert_eq!(admin.cmd(&["CLIENT", "KILL", "ID", id]), Reply::Int(1));

    let m = exp.wait_for("the close noticed and counted", WAIT, |m| {
        errors(m, "a") > errors(&before, "a")
    });
    assert_eq!(
        error_kind(&m, "a", "timeout"),
        error_kind(&before, "a", "timeout"),
        "a closed connection was counted as a timeout"
    );
    assert!(error_kind(&m, "a", "connect") > error_kind(&before, "a", "connect"));
    exp.wait_for("up again", WAIT, |m| up(m, "a") == Some(1.0));
}

/// Junk instead of replies: no panic, /metrics keeps being served, the target is down with
/// its failures counted, the other target is unaffected, and Forward brings it back.
fn garbage_replies(kind: Garbage) {
    let r = Redis::start(&[]);
    let b = Redis::start(&[]);
    let proxy = Proxy::start(r.port);
    let exp = Exporter::start(config(vec![via_proxy(&r, &proxy, "a"), b.target("b")], 50));
    both_up(&exp, "a", "b");
    let before = exp.scrape();
    let errors_before = errors(&before, "a");

    // The held connection gets junk on its next command; later reconnects get junk from the
    // first reply on.
    proxy.set_mode(Mode::Garbage(kind));
    let m = exp.wait_for("a down with an error counted", WAIT, |m| {
        up(m, "a") == Some(0.0) && errors(m, "a") > errors_before
    });
    assert_eq!(m.get("redis_connected_clients", &[("target", "a")]), None);

    // It stays down for as long as the junk lasts: a server that answers junk is never "up",
    // and never shows values.
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        let m = exp.scrape();
        assert_eq!(
            up(&m, "a"),
            Some(0.0),
            "{kind:?}: target up while every reply is junk\n{}",
            m.text
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    keeps_updating(&exp, "b");
    let m = exp.scrape();
    let kinds: Vec<String> = ["connect", "timeout", "protocol", "other"]
        .iter()
        .map(|k| {
            format!(
                "{k}={}",
                error_kind(&m, "a", k) - error_kind(&before, "a", k)
            )
        })
        .collect();
    eprintln!("{kind:?}: new errors by kind: {}", kinds.join(" "));
    assert_eq!(exp.get("/healthz").0, 200);

    recovers_with_one_connection(&exp, &proxy, &r, Duration::from_secs(1));
}

#[test]
fn garbage_random_bytes() {
    garbage_replies(Garbage::RandomBytes);
}

#[test]
fn garbage_truncated_bulk() {
    garbage_replies(Garbage::TruncatedBulk);
}

/// `:42` to INFO, CONFIG GET and CLIENT LIST: an integer where text is due is a protocol
/// error, never a poll that "succeeds" with empty values (redis_up 1, 0 connections).
#[test]
fn garbage_wrong_type() {
    garbage_replies(Garbage::WrongType);
}

#[test]
fn garbage_absurd_length() {
    garbage_replies(Garbage::AbsurdLength);
}

#[test]
fn a_server_full_before_the_exporter_starts_is_down_as_maxclients_then_comes_up() {
    let r = Redis::start(&["--maxclients", "5"]);
    let mut held = Vec::new();
    for _ in 0..5 {
        let mut c = r.conn();
        assert_eq!(c.cmd(&["PING"]).as_simple(), Some("PONG"));
        held.push(c);
    }
    // Really full: the next one is refused.
    let mut extra = r.conn();
    let refused = extra.cmd(&["PING"]);
    assert!(
        matches!(&refused, Reply::Error(e) if e.contains("max number of clients")),
        "{refused:?}"
    );
    drop(extra);

    let exp = Exporter::start(config(vec![quick(r.target("full"))], 50));
    let m = exp.wait_for("full target down as maxclients", WAIT, |m| {
        up(m, "full") == Some(0.0) && error_kind(m, "full", "maxclients") >= 1.0
    });
    assert_eq!(
        m.get("redis_connected_clients", &[("target", "full")]),
        None
    );
    // It keeps trying, and keeps serving.
    let tries = m.get(POLLS, &[("target", "full")]).expect("polls");
    exp.wait_for("more attempts", WAIT, |m| {
        m.get(POLLS, &[("target", "full")]) > Some(tries + 1.0) && up(m, "full") == Some(0.0)
    });
    assert_eq!(exp.get("/healthz").0, 200);
    assert_eq!(exp.get("/readyz").0, 503);

    // Free one slot: the exporter takes it and holds it.
    held.pop();
    let m = exp.wait_for("full target up", WAIT, |m| up(m, "full") == Some(1.0));
    assert_eq!(
        m.get("redis_config_maxclients", &[("target", "full")]),
        Some(5.0)
    );
    let m = exp.wait_for("the snapshot shows the server full again", WAIT, |m| {
        m.get("redis_client_snapshot_connections", &[("target", "full")]) == Some(5.0)
    });
    assert_eq!(our_connections_metric(&m, "full"), Some(1.0));
    assert_eq!(
        m.get("redis_client_headroom_connections", &[("target", "full")]),
        Some(0.0)
    );
    assert_eq!(exp.get("/readyz").0, 200);
}

/// With a password and a database, the exporter sends AUTH, SELECT and CLIENT SETNAME in one
/// write. A full server answers the first with "max number of clients reached" and closes:
/// that reason, not the close, is the error (maxclients, not connect).
#[test]
fn a_full_server_is_maxclients_also_when_the_exporter_authenticates() {
    let r = Redis::start(&["--maxclients", "2", "--requirepass", "pw"]);
    let mut held: Vec<_> = (0..2).map(|_| r.conn()).collect();
    for c in &mut held {
        assert!(matches!(c.cmd(&["AUTH", "pw"]), Reply::Simple(_)));
    }
    let mut t = quick(r.target("full"));
    t.password = redis_clients_exporter::config::Secret::Value("pw".into());
    t.db = Some(1);
    let exp = Exporter::start(config(vec![t], 50));
    let m = exp.wait_for("down as maxclients", WAIT, |m| {
        up(m, "full") == Some(0.0) && error_kind(m, "full", "maxclients") >= 1.0
    });
    assert_eq!(error_kind(&m, "full", "connect"), 0.0, "{}", m.text);
    assert_eq!(error_kind(&m, "full", "auth"), 0.0, "{}", m.text);
    held.pop();
    exp.wait_for("up once a slot is free", WAIT, |m| {
        up(m, "full") == Some(1.0)
    });
}

fn vm_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Sends raw bytes, then reads whatever comes back until EOF or `timeout`. Returns the status
/// code if a response started (0 if none), and whether the write side failed (the server
/// hung up on us mid-request, which is an acceptable refusal).
fn raw_request(addr: std::net::SocketAddr, head: &[u8], body: &[u8]) -> (u16, bool) {
    let mut s = TcpStream::connect(addr).expect("connect exporter");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.set_write_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let write_failed = s.write_all(head).is_err() || s.write_all(body).is_err();
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut resp = Vec::new();
    let _ = s.read_to_end(&mut resp);
    let text = String::from_utf8_lossy(&resp);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, write_failed)
}

#[test]
fn many_concurrent_scrapers_and_oversized_requests_do_not_hurt_the_server() {
    let r = Redis::start(&[]);
    let exp = Exporter::start(config(vec![r.target("main")], 50));
    exp.wait_for("up", WAIT, |m| up(m, "main") == Some(1.0));

    let addr = exp.addr;
    let ok = Arc::new(AtomicUsize::new(0));
    let bad = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let threads: Vec<_> = (0..50)
        .map(|_| {
            let (ok, bad) = (Arc::clone(&ok), Arc::clone(&bad));
            std::thread::spawn(move || {
                for _ in 0..20 {
                    let (status, body) = http_get(addr, "/metrics");
                    if status == 200 && body.contains("redis_up{") {
                        ok.fetch_add(1, Ordering::SeqCst);
                    } else {
                        bad.lock()
                            .unwrap()
                            .push(format!("{status}: {}", &body[..body.len().min(200)]));
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("scraper thread");
    }
    let bad = bad.lock().unwrap();
    assert!(
        bad.is_empty(),
        "{} bad scrapes, e.g. {:?}",
        bad.len(),
        &bad[..bad.len().min(3)]
    );
    assert_eq!(ok.load(Ordering::SeqCst), 1000);
    // Polling went on during the crowd.
    assert_eq!(up(&exp.scrape(), "main"), Some(1.0));

    // A 1 MiB header: refused (431 or 400) or the connection dropped, never served.
    let mut head = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: ".to_vec();
    head.extend(std::iter::repeat_n(b'a', 1 << 20));
    head.extend_from_slice(b"\r\n\r\n");
    let (status, write_failed) = raw_request(addr, &head, b"");
    eprintln!("1 MiB header: status {status}, write failed: {write_failed}");
    assert!(
        status == 0 || (400..500).contains(&status),
        "1 MiB header answered {status} (write failed: {write_failed})"
    );
    let (status, _) = http_get(addr, "/metrics");
    assert_eq!(status, 200, "scrape after the huge header");

    // A body announced as 100 GB, of which a little is sent before we hang up: answered
    // (GET /metrics ignores bodies) or refused, but the server neither waits forever nor dies.
    let head = b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000000\r\n\r\n";
    let (status, _) = raw_request(addr, head, &[b'x'; 64 * 1024]);
    eprintln!("POST with Content-Length 1e11: status {status}");
    assert!(status == 0 || status < 600, "{status}");
    let head = b"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000000\r\n\r\n";
    let (status, _) = raw_request(addr, head, &[b'x'; 64 * 1024]);
    eprintln!("GET with Content-Length 1e11: status {status}");
    assert!(status == 0 || status < 600, "{status}");
    let (status, body) = http_get(addr, "/metrics");
    assert_eq!(status, 200, "scrape after the huge bodies");
    assert!(body.contains("redis_up{"));

    // Memory: 500 more scrapes must not grow this process (exporter included) by 50 MB. A page
    // is ~10 KB; if every scrape leaked its whole rendered page plus the families behind it
    // (~100 KB), 500 scrapes would leak ~50 MB. Allocator noise (arenas, caches) after the warm
    // crowd above is a few MB, well under the bound.
    if let Some(rss0) = vm_rss_kib() {
        for _ in 0..500 {
            let (status, _) = http_get(addr, "/metrics");
            assert_eq!(status, 200);
        }
        let rss1 = vm_rss_kib().expect("VmRSS");
        let grown_mb = (rss1.saturating_sub(rss0)) as f64 / 1024.0;
        eprintln!("VmRSS {rss0} kB -> {rss1} kB over 500 scrapes");
        assert!(
            grown_mb < 50.0,
            "VmRSS grew by {grown_mb:.1} MB over 500 scrapes"
        );
    }
    assert_eq!(up(&exp.scrape(), "main"), Some(1.0));
}

#[test]
fn never_more_than_one_connection_per_target_across_drops_and_restarts() {
    let mut r = Redis::start(&[]);
    let proxy = Proxy::start(r.port);
    let exp = Exporter::start(config(vec![via_proxy(&r, &proxy, "a")], 50));
    exp.wait_for("up", WAIT, |m| up(m, "a") == Some(1.0));

    // Watch the real server the whole time: the most connections named ours ever seen at once.
    let stop = Arc::new(AtomicBool::new(false));
    let port = r.port;
    let watcher = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let (mut max, mut samples) = (0usize, 0usize);
            let mut conn: Option<RespConn> = None;
            while !stop.load(Ordering::SeqCst) {
                if conn.is_none() {
                    conn = RespConn::try_connect(port, "127.0.0.1").ok();
                }
                if let Some(c) = conn.as_mut() {
                    c.send(&["CLIENT", "LIST"]);
                    match c.read() {
                        Ok(Reply::Bulk(Some(list))) => {
                            let n = list
                                .lines()
                                .filter(|l| l.contains(&format!(" name={OUR_NAME} ")))
                                .count();
                            max = max.max(n);
                            samples += 1;
                        }
                        _ => conn = None, // the server restarted
                    }
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            (max, samples)
        })
    };

    let cycle = |what: &str, break_it: &mut dyn FnMut()| {
        let before = exp.scrape();
        let (e0, p0) = (errors(&before, "a"), before.get(POLLS, &[("target", "a")]));
        break_it();
        exp.wait_for(what, WAIT, |m| {
            errors(m, "a") > e0 && m.get(POLLS, &[("target", "a")]) > p0 && up(m, "a") == Some(1.0)
        });
    };
    for i in 0..5 {
        cycle(&format!("reconnect after drop-all #{i}"), &mut || {
            proxy.drop_all()
        });
    }
    // The server itself killed and restarted behind the proxy, twice.
    for i in 0..2 {
        cycle(&format!("reconnect after restart #{i}"), &mut || {
            r.kill();
            proxy.drop_all();
            std::thread::sleep(Duration::from_millis(500));
            r.restart();
        });
    }
    // And a drop while the exporter is mid-reconnect.
    proxy.drop_all();
    std::thread::sleep(Duration::from_millis(150));
    proxy.drop_all();
    exp.wait_for("up after a double drop", WAIT, |m| up(m, "a") == Some(1.0));

    exp.wait_for("one exporter connection in the snapshot", WAIT, |m| {
        our_connections_metric(m, "a") == Some(1.0)
    });
    eventually("one proxied connection", WAIT, || {
        match proxy.open_connections() {
            1 => Ok(()),
            n => Err(format!("{n} proxied connections")),
        }
    });

    stop.store(true, Ordering::SeqCst);
    let (max, samples) = watcher.join().expect("watcher");
    assert!(samples > 20, "only {samples} CLIENT LIST samples");
    assert!(
        max <= 1,
        "{max} connections named {OUR_NAME} at once on the server"
    );
    // With the watcher gone: exactly one connection left on the server, the exporter's.
    exactly_one_exporter_connection(&r, Duration::from_secs(1));
}

/// A client that sends half a request header and then nothing must be dropped after a while:
/// otherwise anyone who can reach the port holds file descriptors open for free until the
/// exporter can neither accept scrapes nor reconnect to Redis (basic auth cannot help: it runs
/// after the headers). hyper has a 30 s header read timeout, but it needs a timer, which
/// `axum::serve` does not set.
#[test]
fn a_client_that_never_finishes_its_header_is_dropped() {
    let r = Redis::start(&[]);
    let exp = Exporter::start(config(vec![r.target("main")], 50));
    let mut s = TcpStream::connect(exp.addr).expect("connect exporter");
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        .expect("partial header");
    s.set_read_timeout(Some(Duration::from_secs(45)))
        .expect("timeout");
    let mut buf = [0u8; 256];
    let started = Instant::now();
    match s.read(&mut buf) {
        // EOF, a 408, or a reset: dropped.
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!(
            "connection with a half-sent header still open after {:?}: {e}",
            started.elapsed()
        ),
    }
    assert_eq!(http_get(exp.addr, "/metrics").0, 200);
}
