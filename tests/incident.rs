//! The moments of an incident (issue 27), against real redis-server processes, each on a
//! timeline: the first seconds of a fast leak (named with its culprit and pace before the
//! server is full, in the daemon and in the one-shot command, and still the first cause once
//! full), the recovery after a leak is closed (FULL no longer within three polls, then
//! "recovered at"), unnamed spare connections on several hosts beside one leaking host (the
//! host is the culprit, its kill closes only its connections), and the exporter started on a
//! server that is already full (what it says, and how often it tries). Plus the `diagnose`
//! command's small defects: `host:port`, a closed stdout, the timeout's wording.
//!
//! Kept fast: small maxclients, polls 200 ms apart, leaks of a few connections a second.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::{config, Busy, Exporter, Redis, Reply, RespConn};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_redis-clients-exporter");

/// A client that opens a connection every `every` and never uses it (with a name: the
/// handshake's CLIENT SETNAME only), until stopped; refused connections are dropped.
struct Leaker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Vec<RespConn>>>,
}

impl Leaker {
    fn start(port: u16, ip: &'static str, name: Option<&'static str>, every: Duration) -> Leaker {
        let stop = Arc::new(AtomicBool::new(false));
        let s = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut held = Vec::new();
            while !s.load(Ordering::Relaxed) {
                if let Ok(mut c) = RespConn::try_connect(port, ip) {
                    let ok = match name {
                        Some(name) => matches!(
                            c.cmd(&["CLIENT", "SETNAME", name]),
                            Reply::Simple(ref s) if s == "OK"
                        ),
                        // Nothing sent: a refusal is the server's error and close, unread.
                        None => true,
                    };
                    if ok {
                        held.push(c);
                    }
                }
                std::thread::sleep(every);
            }
            held
        });
        Leaker {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops opening; returns the connections it holds (closed when dropped).
    fn stop(mut self) -> Vec<RespConn> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .take()
            .map(|t| t.join().expect("leaker"))
            .unwrap_or_default()
    }
}

impl Drop for Leaker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn exporter(r: &Redis, idle_threshold: u64) -> Exporter {
    let mut cfg = config(vec![r.target("t")], 20);
    cfg.idle_threshold_seconds = idle_threshold;
    Exporter::start(cfg)
}

fn report(e: &Exporter) -> Option<Value> {
    let (status, body) = e.get("/diagnose?target=t");
    (status == 200).then(|| serde_json::from_str(&body).ok())?
}

fn pretty(r: &Value) -> String {
    serde_json::to_string_pretty(r).unwrap_or_default()
}

/// Reads `/diagnose` every 50 ms until `cond` holds (it sees every report read on the way);
/// panics with the last report after `within`.
fn wait_report(
    e: &Exporter,
    what: &str,
    within: Duration,
    mut cond: impl FnMut(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let r = report(e);
        if let Some(r) = &r {
            if cond(r) {
                return r.clone();
            }
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; last report:\n{}",
            r.map(|r| pretty(&r)).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn first_cause(r: &Value) -> (&str, &str, f64) {
    let f = &r["findings"][0];
    (
        f["cause"].as_str().unwrap_or("-"),
        f["culprit"].as_str().unwrap_or("-"),
        f["score"].as_f64().unwrap_or(0.0),
    )
}

/// The first finding is a leak from `culprit`, scored as a cause.
fn names_leak(r: &Value, culprit: &str) -> bool {
    let (cause, who, score) = first_cause(r);
    cause == "connection_leak" && who == culprit && score >= 0.5
}

fn diagnose_cmd(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .arg("diagnose")
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("spawn the exporter binary");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn command_json(port: u16, sample: &str, idle: &str) -> Value {
    let url = format!("127.0.0.1:{port}");
    let (code, out, err) = diagnose_cmd(&[
        &url,
        "--format",
        "json",
        "--sample-seconds",
        sample,
        "--idle-threshold-seconds",
        idle,
        "--timeout-seconds",
        "10",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    serde_json::from_str(&out).expect("a JSON report")
}

/// INFO stats' `rejected_connections`, over `c`.
fn rejected(c: &mut RespConn) -> u64 {
    let info = c.cmd(&["INFO", "stats"]);
    info.as_bulk()
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("rejected_connections:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("rejected_connections")
}

/// A leak of three connections a second on a server with 53 free slots: full in about 18 s.
/// The idle threshold is the default 60 s, so no leaked connection is ever "idle": what names
/// the leak is its connections being young, untouched since they connected, and growing poll
/// by poll. The daemon must name it (culprit, pace, time to full) while the server still has
/// room, and keep it first once full (not `maxclients set low`); the one-shot command,
/// sampling for 3 s in the middle of it, must name it too.
#[test]
fn a_fast_leak_is_named_before_the_server_is_full() {
    let r = Redis::start(&["--maxclients", "64"]);
    let _busy = Busy::start((0..10).map(|_| r.conn_from("127.0.1.2")).collect());
    let e = exporter(&r, 60);
    wait_report(&e, "a healthy first report", Duration::from_secs(20), |r| {
        r["status"] == "healthy"
    });
    let leak = Leaker::start(r.port, "127.0.1.5", None, Duration::from_millis(333));
    let started = Instant::now();
    let port = r.port;
    let command = std::thread::spawn(move || {
        // In the middle of the leak's first seconds, before the server fills.
        std::thread::sleep(Duration::from_secs(2));
        command_json(port, "3", "60")
    });
    let culprit = "source_ip 127.0.1.5";
    let named = wait_report(&e, "the leak named", Duration::from_secs(15), |r| {
        names_leak(r, culprit)
    });
    let named_after = started.elapsed();
    assert_ne!(named["status"], "full", "{}", pretty(&named));
    let u = named["server"]["utilisation_ratio"].as_f64().unwrap_or(1.0);
    assert!(u < 0.9, "named only at {u}:\n{}", pretty(&named));
    let title = named["findings"][0]["title"].as_str().unwrap_or("");
    assert!(
        title.contains("/s, full in about"),
        "pace and time to full in the title: {title}"
    );
    assert!(
        named["headline"]
            .as_str()
            .unwrap_or("")
            .contains("connection leak from (unnamed) @ 127.0.1.5"),
        "{}",
        named["headline"]
    );
    // From then on, through the moment it fills and for 3 s of being full, the leak stays
    // the first cause and the status never claims FULL while there is room.
    let mut full_since: Option<Instant> = None;
    wait_report(&e, "3 s of a full server", Duration::from_secs(40), |r| {
        assert!(
            names_leak(r, culprit),
            "the leak lost first place:\n{}",
            pretty(r)
        );
        let at_limit =
            r["server"]["limit_connections"].as_f64() >= r["server"]["maxclients"].as_f64();
        if r["status"] == "full" {
            assert!(
                at_limit || r["server"]["rejecting"] == true,
                "FULL with room and no refusal:\n{}",
                pretty(r)
            );
            full_since.get_or_insert_with(Instant::now);
        }
        full_since.is_some_and(|t| t.elapsed() > Duration::from_secs(3))
    });
    let rep = command.join().expect("the command");
    assert!(names_leak(&rep, culprit), "command:\n{}", pretty(&rep));
    assert_ne!(rep["status"], "full", "{}", pretty(&rep));
    let title = rep["findings"][0]["title"].as_str().unwrap_or("");
    assert!(title.contains("/s"), "the command says the pace: {title}");
    eprintln!(
        "named after {named_after:?}; full after {:?}",
        started.elapsed()
    );
    drop(leak);
}

/// A leak with a name (CLIENT SETNAME at connect, then nothing: `cmd=client|setname`, idle
/// since it connected) is named the same way, by name and address in the headline.
#[test]
fn a_named_leak_is_named_by_name_and_address() {
    let r = Redis::start(&["--maxclients", "80"]);
    let _busy = Busy::start(
        (0..8)
            .map(|_| r.conn_from("127.0.4.2").named("api"))
            .collect(),
    );
    let e = exporter(&r, 60);
    wait_report(&e, "a first report", Duration::from_secs(20), |r| {
        r["status"] == "healthy"
    });
    let _leak = Leaker::start(
        r.port,
        "127.0.4.7",
        Some("checkout-svc"),
        Duration::from_millis(250),
    );
    let named = wait_report(&e, "the named leak", Duration::from_secs(15), |r| {
        let (cause, _, score) = first_cause(r);
        cause == "connection_leak" && score >= 0.5
    });
    assert_ne!(named["status"], "full", "{}", pretty(&named));
    let headline = named["headline"].as_str().unwrap_or("");
    assert!(
        headline.contains("checkout-svc @ 127.0.4.7"),
        "{}",
        pretty(&named)
    );
}

/// A full server (a leaker re-grabbing every freed slot, so refusals rise) whose leak is then
/// closed: FULL no longer from the third poll after, and the report says when it recovered
/// and how many were refused, at a score that does not page.
#[test]
fn a_full_server_whose_leak_is_closed_is_not_full_within_three_polls() {
    let r = Redis::start(&["--maxclients", "30"]);
    let e = exporter(&r, 60);
    wait_report(&e, "a first report", Duration::from_secs(20), |r| {
        r["status"] == "healthy"
    });
    let leak = Leaker::start(r.port, "127.0.5.5", None, Duration::from_millis(100));
    wait_report(&e, "FULL with refusals", Duration::from_secs(20), |r| {
        r["status"] == "full" && r["server"]["rejecting"] == true
    });
    // Refused for a while, then the leaking service is stopped: its connections close.
    std::thread::sleep(Duration::from_secs(1));
    drop(leak.stop());
    let closed_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    let mut polls: Vec<(f64, String)> = Vec::new();
    let after = wait_report(
        &e,
        "three polls after the close",
        Duration::from_secs(10),
        |r| {
            let at = r["generated_at"].as_f64().unwrap_or(0.0);
            if at > closed_at && polls.last().is_none_or(|(p, _)| *p < at) {
                polls.push((at, r["status"].as_str().unwrap_or("").to_string()));
            }
            polls.len() >= 3
        },
    );
    assert_ne!(polls[2].1, "full", "{polls:?}\n{}", pretty(&after));
    let headline = after["headline"].as_str().unwrap_or("");
    assert!(
        headline.contains("Recovered at") && headline.contains("connections were refused between"),
        "{headline}"
    );
    let refused = after["server"]["refusals"]["count"].as_f64().unwrap_or(0.0);
    assert!(refused >= 1.0, "{}", pretty(&after));
    // It does not page: nothing scores at the alert's threshold.
    let m = e.scrape();
    for (labels, v) in m.all("redis_client_diagnosis", &[("target", "t")]) {
        assert!(v < 0.7, "{labels:?} = {v}\n{}", pretty(&after));
    }
    // And it stays so.
    std::thread::sleep(Duration::from_millis(600));
    let later = report(&e).expect("a report");
    assert_ne!(later["status"], "full", "{}", pretty(&later));
}

/// Unnamed spare connections on four hosts (a pool's warm spares, each checked once) and one
/// unnamed host leaking: the culprit is that host, not `client_name ''` (which would close
/// the healthy hosts' spares), in the daemon and in the command, and the command's kill
/// steps close only its connections.
#[test]
fn unnamed_spares_on_several_hosts_and_one_unnamed_leaking_host() {
    let r = Redis::start(&["--maxclients", "300"]);
    let spares: Vec<RespConn> = ["127.0.2.2", "127.0.2.3", "127.0.2.4", "127.0.2.5"]
        .iter()
        .flat_map(|ip| {
            (0..15).map(|_| {
                let mut c = r.conn_from(ip);
                assert_eq!(c.cmd(&["PING"]).as_simple(), Some("PONG"));
                c
            })
        })
        .collect();
    let e = exporter(&r, 2);
    wait_report(&e, "a first report", Duration::from_secs(20), |_| true);
    // The leaking host had 30 before anyone looked, and keeps opening.
    let early: Vec<RespConn> = (0..30).map(|_| r.conn_from("127.0.2.9")).collect();
    let leak = Leaker::start(r.port, "127.0.2.9", None, Duration::from_millis(250));
    let culprit = "source_ip 127.0.2.9";
    wait_report(&e, "the leaking host named", Duration::from_secs(20), |r| {
        names_leak(r, culprit)
    });
    // Stays so while spares age past the idle threshold too.
    std::thread::sleep(Duration::from_secs(3));
    let rep = report(&e).expect("a report");
    assert!(names_leak(&rep, culprit), "daemon:\n{}", pretty(&rep));
    let rep = command_json(r.port, "2", "2");
    assert!(names_leak(&rep, culprit), "command:\n{}", pretty(&rep));
    let sel = &rep["findings"][0]["selector"];
    assert_eq!(sel["group"], "source_ip", "{}", pretty(&rep));
    // The kill steps close only the leaking host's connections.
    let held = leak.stop();
    std::thread::sleep(Duration::from_millis(2100));
    // Each close step as printed: the exporter's `close` subcommand (this build's binary), and
    // its redis-cli-only fallback (which then finds nothing more: safe to rerun).
    let kills: Vec<String> = rep["findings"][0]["remediation"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| [s["command"].as_str(), s["fallback_command"].as_str()])
        .flatten()
        .filter(|c| c.contains("CLIENT KILL") || c.starts_with("redis-clients-exporter close "))
        .map(|c| c.replacen("redis-clients-exporter close ", &format!("{BIN} close "), 1))
        .collect();
    assert!(!kills.is_empty(), "{}", pretty(&rep));
    for k in &kills {
        let out = Command::new("bash")
            .arg("-c")
            .arg(k)
            .output()
            .expect("bash");
        assert!(out.status.success(), "{k}\n{:?}", out);
    }
    let left = r.clients_by_source();
    assert_eq!(left.get("127.0.2.9"), None, "{left:?}");
    for ip in ["127.0.2.2", "127.0.2.3", "127.0.2.4", "127.0.2.5"] {
        assert_eq!(left.get(ip), Some(&15), "{ip}: {left:?}");
    }
    drop((spares, early, held));
}

/// The exporter started while every slot is taken: it says so as what it is (it never had a
/// connection), and tries at most once every 5 s (measured by the server's
/// `rejected_connections`, each try one more); once a slot frees, it connects.
#[test]
fn the_exporter_started_on_a_full_server() {
    let r = Redis::start(&["--maxclients", "12"]);
    // One of the slots is this test's observer (on the unix socket).
    let mut observer = RespConn::connect_unix(&r.socket_path());
    let mut fill = Vec::new();
    while let Ok(mut c) = RespConn::try_connect(r.port, "127.0.3.2") {
        match c.cmd(&["PING"]) {
            Reply::Simple(_) => fill.push(c),
            _ => break,
        }
    }
    assert_eq!(fill.len(), 11);
    let e = exporter(&r, 60);
    let rep = wait_report(
        &e,
        "the first connection refused",
        Duration::from_secs(10),
        |r| r["status"] == "unreachable",
    );
    let headline = rep["headline"].as_str().unwrap_or("");
    assert!(
        headline.contains("Redis refused the exporter's first connection: it is full"),
        "{headline}"
    );
    assert!(!headline.contains("held connection was lost"), "{headline}");
    assert!(headline.contains("at most once every 5 s"), "{headline}");
    let window = Duration::from_secs(15);
    let before = rejected(&mut observer);
    std::thread::sleep(window);
    let attempts = rejected(&mut observer) - before;
    let per_minute = attempts as f64 * 60.0 / window.as_secs_f64();
    eprintln!(
        "connection attempts on a full server: {attempts} in {window:?} ({per_minute:.0}/min)"
    );
    assert!(
        (2..=4).contains(&attempts),
        "{attempts} attempts in {window:?}"
    );
    // A slot frees: the exporter connects at its next try.
    drop(fill.pop());
    wait_report(&e, "connected", Duration::from_secs(15), |r| {
        r["status"] != "unreachable"
    });
}

/// `diagnose host:port` is `redis://host:port`; a closed stdout (`| head`) ends it quietly;
/// a full server's give-up message says whole seconds.
#[test]
fn the_command_takes_host_port_survives_a_closed_stdout_and_says_whole_seconds() {
    let r = Redis::start(&["--maxclients", "3"]);
    let addr = format!("127.0.0.1:{}", r.port);
    let (code, out, err) = diagnose_cmd(&[&addr, "--sample-seconds", "0"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("HEALTHY"), "{out}");
    // stdout closed before anything is written.
    let mut child = Command::new(BIN)
        .args(["diagnose", &addr, "--sample-seconds", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("wait");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    // Full: gives up after the time it was given, said in whole seconds.
    let _held: Vec<RespConn> = (0..3).map(|_| r.conn_from("127.0.0.1")).collect();
    let (code, _, err) = diagnose_cmd(&[&addr, "--timeout-seconds", "2"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("no slot freed within 2 s"), "{err}");
}
