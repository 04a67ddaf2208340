//! Diagnosis scenarios against real redis-server processes: each cause is scripted with real
//! connections from several loopback source addresses, and the daemon's `/diagnose` report must
//! rank it first and name the right culprit. Plus the one-shot `diagnose` command: a healthy
//! server, a full one, and the exact connection ids it lists for a leak.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::{config, Exporter, Redis, RespConn};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_redis-clients-exporter");

/// Keeps connections busy (a PING each every 100 ms) so that they are not idle.
struct Busy {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Busy {
    fn start(mut conns: Vec<RespConn>) -> Busy {
        let stop = Arc::new(AtomicBool::new(false));
        let s = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                for c in &mut conns {
                    c.send(&["PING"]);
                    let _ = c.read();
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        Busy {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn conns(r: &Redis, ip: &str, n: usize) -> Vec<RespConn> {
    (0..n).map(|_| r.conn_from(ip)).collect()
}

fn exporter(r: &Redis) -> Exporter {
    let mut cfg = config(vec![r.target("t")], 20);
    cfg.idle_threshold_seconds = 1;
    Exporter::start(cfg)
}

fn report(e: &Exporter) -> Option<Value> {
    let (status, body) = e.get("/diagnose?target=t");
    if status != 200 {
        return None;
    }
    serde_json::from_str(&body).ok()
}

/// Reads `/diagnose` until `cond` holds; panics with the last report after 20 s.
fn wait_report(e: &Exporter, what: &str, cond: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
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
            r.map(|r| serde_json::to_string_pretty(&r).unwrap_or_default())
                .unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// (cause, confidence, culprit) in rank order.
fn causes(r: &Value) -> Vec<(String, f64, String)> {
    r["findings"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|f| {
                    (
                        f["cause"].as_str().unwrap_or("").to_string(),
                        f["confidence"].as_f64().unwrap_or(0.0),
                        f["culprit"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn first_is(r: &Value, cause: &str) -> bool {
    causes(r)
        .first()
        .is_some_and(|(c, conf, _)| c == cause && *conf >= 0.5)
}

fn pretty(r: &Value) -> String {
    serde_json::to_string_pretty(r).unwrap_or_default()
}

#[test]
fn leak_is_ranked_first_and_names_the_source() {
    let r = Redis::start(&[]);
    let _busy = Busy::start(conns(&r, "127.0.0.2", 10));
    let e = exporter(&r);
    let mut leak = conns(&r, "127.0.0.5", 20);
    // Growth: the first polls see 20, later ones 60.
    wait_report(&e, "a first report", |_| true);
    leak.extend(conns(&r, "127.0.0.5", 40));
    let rep = wait_report(&e, "the leak ranked first", |r| {
        first_is(r, "connection_leak") && r["server"]["client_list_connections"] == 71
    });
    let (_, conf, culprit) = &causes(&rep)[0];
    assert_eq!(culprit, "source_ip 127.0.0.5", "{}", pretty(&rep));
    assert!(*conf >= 0.8, "{}", pretty(&rep));
    let evidence = rep["findings"][0]["evidence"].to_string();
    assert!(
        evidence.contains("\"60\""),
        "the 60 connections: {evidence}"
    );
    assert!(
        evidence.contains("+40"),
        "the growth since the first poll: {evidence}"
    );
    // The busy source is not blamed for anything.
    assert!(!rep.to_string().contains("127.0.0.2\""), "{}", pretty(&rep));
    // The metric carries the top cause.
    let m = e.scrape();
    assert!(
        m.get(
            "redis_client_diagnosis",
            &[("target", "t"), ("cause", "connection_leak")]
        )
        .is_some_and(|v| v >= 0.8),
        "{}",
        m.text
    );
    drop(leak);
}

#[test]
fn scale_out_is_ranked_first() {
    let r = Redis::start(&["--maxclients", "300"]);
    let mut all = Vec::new();
    for i in 0..4 {
        all.extend(conns(&r, &format!("127.0.1.{}", i + 1), 12));
    }
    let busy = Busy::start(all);
    let e = exporter(&r);
    wait_report(&e, "a first report", |r| {
        r["server"]["distinct_sources"].as_u64() == Some(5)
    });
    let mut more = Vec::new();
    for i in 4..20 {
        more.extend(conns(&r, &format!("127.0.1.{}", i + 1), 12));
    }
    let _busy2 = Busy::start(more);
    let rep = wait_report(&e, "scale-out ranked first", |r| {
        first_is(r, "scale_out") && r["server"]["distinct_sources"].as_u64() == Some(21)
    });
    let f = &rep["findings"][0];
    let evidence = f["evidence"].to_string();
    // 20 pods × 12 = 240 (+ the exporter's own connection from 127.0.0.1).
    assert!(evidence.contains("× 11.5 = 241"), "{}", pretty(&rep));
    assert!(evidence.contains("(+16)"), "{}", pretty(&rep));
    // 80% of 300 over 21 sources: a pool of 11 fits.
    assert!(
        f["remediation"]
            .to_string()
            .contains("pool at 11 connections"),
        "{}",
        pretty(&rep)
    );
    assert!(matches!(
        rep["status"].as_str(),
        Some("warning" | "critical")
    ));
    drop(busy);
}

#[test]
fn clamped_maxclients_is_ranked_first() {
    // A real ulimit: Redis asks for 10000 + 32 descriptors, gets 1024, sets maxclients 992.
    let r = Redis::start_with_nofile(1024, &["--maxclients", "10000"]);
    let _busy = Busy::start(conns(&r, "127.0.2.1", 20));
    let e = exporter(&r);
    let rep = wait_report(&e, "the clamp ranked first", |r| {
        first_is(r, "maxclients_too_low")
    });
    let f = &rep["findings"][0];
    assert_eq!(rep["server"]["maxclients"].as_f64(), Some(992.0));
    assert!(
        f["title"].as_str().unwrap_or("").contains("clamped to 992"),
        "{}",
        pretty(&rep)
    );
    assert!(
        f["remediation"].to_string().contains("LimitNOFILE=10032"),
        "{}",
        pretty(&rep)
    );
}

#[test]
fn stale_subscribers_are_ranked_first() {
    let r = Redis::start(&[]);
    let mut stale = conns(&r, "127.0.3.7", 30);
    for c in &mut stale {
        c.send(&["SUBSCRIBE", "nobody-publishes-here"]);
        assert!(c.read().is_ok());
    }
    // Live subscribers get a message every 100 ms: not idle, not stale.
    let mut live = conns(&r, "127.0.3.8", 10);
    for c in &mut live {
        c.send(&["SUBSCRIBE", "news"]);
        assert!(c.read().is_ok());
    }
    let mut publisher = r.conn_from("127.0.3.9");
    let stop = Arc::new(AtomicBool::new(false));
    let s = Arc::clone(&stop);
    let pubber = std::thread::spawn(move || {
        while !s.load(Ordering::Relaxed) {
            publisher.cmd(&["PUBLISH", "news", "hello"]);
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    let e = exporter(&r);
    let rep = wait_report(&e, "stale pub/sub ranked first", |r| {
        first_is(r, "stale_pubsub")
    });
    stop.store(true, Ordering::Relaxed);
    let _ = pubber.join();
    assert_eq!(causes(&rep)[0].2, "source_ip 127.0.3.7", "{}", pretty(&rep));
    // The live subscribers' source is never a culprit.
    assert!(!rep.to_string().contains("127.0.3.8"), "{}", pretty(&rep));
    drop((stale, live));
}

#[test]
fn churn_is_ranked_first_and_names_the_source() {
    let r = Redis::start(&[]);
    let _busy = Busy::start(conns(&r, "127.0.4.2", 10));
    let stop = Arc::new(AtomicBool::new(false));
    // Four threads that connect per request: connect, PING, hold 20 ms, close.
    let churners: Vec<_> = (0..4)
        .map(|_| {
            let s = Arc::clone(&stop);
            let port = r.port;
            std::thread::spawn(move || {
                while !s.load(Ordering::Relaxed) {
                    if let Ok(mut c) = RespConn::try_connect(port, "127.0.4.9") {
                        c.send(&["PING"]);
                        let _ = c.read();
                        std::thread::sleep(Duration::from_millis(20));
                    }
                }
            })
        })
        .collect();
    // The steady connections must be older than "young" before the verdict counts.
    std::thread::sleep(Duration::from_millis(2100));
    let e = exporter(&r);
    let rep = wait_report(&e, "churn ranked first with its source", |r| {
        first_is(r, "connection_churn") && causes(r)[0].2 == "source_ip 127.0.4.9"
    });
    stop.store(true, Ordering::Relaxed);
    for c in churners {
        let _ = c.join();
    }
    let rate = rep["server"]["new_connections_per_second"]
        .as_f64()
        .unwrap_or(0.0);
    assert!(rate > 100.0, "{}", pretty(&rep));
}

#[test]
fn blocked_clients_are_ranked_first() {
    let r = Redis::start(&[]);
    let _busy = Busy::start(conns(&r, "127.0.5.2", 10));
    let mut blocked = conns(&r, "127.0.5.10", 40);
    for c in &mut blocked {
        c.send(&["BLPOP", "never-pushed", "0"]);
    }
    let e = exporter(&r);
    let rep = wait_report(&e, "blocked clients ranked first", |r| {
        first_is(r, "blocked_clients")
    });
    assert_eq!(
        causes(&rep)[0].2,
        "source_ip 127.0.5.10",
        "{}",
        pretty(&rep)
    );
    // Waiting blocked calls are idle but are not a leak.
    assert!(
        !causes(&rep)
            .iter()
            .any(|(c, conf, _)| c == "connection_leak" && *conf >= 0.5),
        "{}",
        pretty(&rep)
    );
}

#[test]
fn output_buffer_hogs_are_ranked_first() {
    // One class in separate words: Redis 6.2 takes exactly that form on its command line.
    let r = Redis::start(&["--client-output-buffer-limit", "normal", "0", "0", "0"]);
    let mut setup = r.conn();
    let big = "x".repeat(1 << 20);
    setup.cmd(&["SET", "big", &big]);
    let _busy = Busy::start(conns(&r, "127.0.6.2", 10));
    // Readers that never read: each asks for 1 MiB 20 times and leaves the replies in Redis.
    let mut hogs = conns(&r, "127.0.6.3", 4);
    for c in &mut hogs {
        for _ in 0..20 {
            c.send(&["GET", "big"]);
        }
    }
    let e = exporter(&r);
    let rep = wait_report(&e, "output-buffer hogs ranked first", |r| {
        first_is(r, "output_buffer_hogs")
    });
    assert_eq!(causes(&rep)[0].2, "source_ip 127.0.6.3", "{}", pretty(&rep));
}

#[test]
fn leak_and_scale_out_together_rank_above_the_rest() {
    let r = Redis::start(&["--maxclients", "400"]);
    let mut pods = Vec::new();
    for i in 0..4 {
        pods.extend(conns(&r, &format!("127.0.7.{}", i + 1), 12));
    }
    let busy = Busy::start(pods);
    let mut leak = conns(&r, "127.0.8.5", 20);
    let e = exporter(&r);
    wait_report(&e, "a first report", |r| {
        r["server"]["distinct_sources"].as_u64() == Some(6)
    });
    let mut more = Vec::new();
    for i in 4..16 {
        more.extend(conns(&r, &format!("127.0.7.{}", i + 1), 12));
    }
    let _busy2 = Busy::start(more);
    leak.extend(conns(&r, "127.0.8.5", 40));
    let rep = wait_report(&e, "leak and scale-out on top", |r| {
        let c = causes(r);
        c.len() >= 2 && {
            let top: Vec<&str> = c[..2].iter().map(|x| x.0.as_str()).collect();
            top.contains(&"connection_leak") && top.contains(&"scale_out") && c[1].1 >= 0.5
        }
    });
    let c = causes(&rep);
    let leak_culprit = c.iter().find(|x| x.0 == "connection_leak").map(|x| &x.2);
    assert_eq!(
        leak_culprit.map(String::as_str),
        Some("source_ip 127.0.8.5"),
        "{}",
        pretty(&rep)
    );
    for rest in &c[2..] {
        assert!(rest.1 < c[1].1, "{}", pretty(&rep));
    }
    drop(busy);
}

#[test]
fn html_and_text_views_and_errors() {
    let r = Redis::start(&[]);
    let e = exporter(&r);
    wait_report(&e, "a first report", |_| true);
    let (status, html) = e.get("/diagnose?target=t&format=html");
    assert_eq!(status, 200);
    assert!(html.starts_with("<!doctype html>") && html.contains("id=\"status\""));
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no external asset"
    );
    let (status, text) = e.get("/diagnose?format=text");
    assert_eq!(status, 200, "a single target needs no name");
    assert!(text.contains("Diagnosis of t"), "{text}");
    let (status, body) = e.get("/diagnose?target=nope");
    assert_eq!(status, 404);
    assert!(body.contains("\"t\""), "lists the known targets: {body}");
    let (status, _) = e.get("/diagnose?target=t&format=pdf");
    assert_eq!(status, 400);
}

fn diagnose_cmd(args: &[&str]) -> (i32, String, String) {
    let mut child = Command::new(BIN)
        .arg("diagnose")
        .args(args)
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn the exporter binary");
    // A hang would be the bug: give up (and fail) long after any timeout the test passes.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("diagnose {args:?} did not exit");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("output");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn cli_says_healthy_on_a_healthy_server() {
    let r = Redis::start(&[]);
    let _busy = Busy::start(conns(&r, "127.0.9.2", 5));
    let url = format!("redis://127.0.0.1:{}", r.port);
    let (code, out, err) = diagnose_cmd(&[&url, "--sample-seconds", "1"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("HEALTHY"), "{out}");
    assert!(
        out.contains("No cause of connection exhaustion found"),
        "{out}"
    );
}

#[test]
fn cli_on_a_full_server_exits_nonzero_with_a_clear_message() {
    let r = Redis::start(&["--maxclients", "5"]);
    let hold: Vec<RespConn> = (0..5).map(|_| r.conn()).collect();
    let url = format!("redis://127.0.0.1:{}", r.port);
    let (code, out, err) = diagnose_cmd(&[&url, "--timeout-seconds", "3"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("is full"), "says it waits: {err}");
    assert!(
        err.contains("FULL: every connection slot is taken"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    drop(hold);
}

#[test]
fn cli_waits_for_a_slot_then_diagnoses() {
    let r = Redis::start(&["--maxclients", "6"]);
    let mut hold: Vec<RespConn> = (0..6).map(|_| r.conn()).collect();
    let url = format!("redis://127.0.0.1:{}", r.port);
    let freer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(2));
        hold.pop();
        hold
    });
    let (code, out, err) =
        diagnose_cmd(&[&url, "--timeout-seconds", "20", "--sample-seconds", "0"]);
    let _hold = freer.join();
    assert_eq!(code, 0, "{out}{err}");
    assert!(err.contains("is full"), "{err}");
    assert!(out.contains("6 of 6 connection slots"), "{out}");
}

#[test]
fn cli_lists_exactly_the_leaking_connection_ids() {
    let r = Redis::start(&[]);
    let _busy = Busy::start(conns(&r, "127.0.10.2", 5));
    let mut leak = conns(&r, "127.0.10.5", 25);
    let mut ids: Vec<String> = leak
        .iter_mut()
        .map(|c| match c.cmd(&["CLIENT", "ID"]) {
            common::Reply::Int(i) => i.to_string(),
            other => panic!("CLIENT ID: {other:?}"),
        })
        .collect();
    std::thread::sleep(Duration::from_millis(2100));
    let url = format!("redis://127.0.0.1:{}", r.port);
    let (code, out, err) = diagnose_cmd(&[
        &url,
        "--format",
        "json",
        "--sample-seconds",
        "1",
        "--idle-threshold-seconds",
        "1",
    ]);
    assert_eq!(code, 0, "{err}");
    let rep: Value = serde_json::from_str(&out).expect("json report");
    assert!(first_is(&rep, "connection_leak"), "{}", pretty(&rep));
    let cmd = rep["findings"][0]["remediation"][0]["command"]
        .as_str()
        .unwrap_or("");
    // `printf 'CLIENT KILL ID %s\n' 12 13 ... | redis-cli ... | awk '<check>'`: the ids are
    // the words between the format and the first pipe.
    let listed = cmd
        .strip_prefix("printf 'CLIENT KILL ID %s\\n' ")
        .and_then(|s| s.split(" | ").next())
        .unwrap_or("");
    let mut listed: Vec<String> = listed.split_whitespace().map(String::from).collect();
    listed.sort();
    ids.sort();
    assert_eq!(listed, ids, "{cmd}");
    // Run as printed: it closes exactly those 25 and says so.
    let out = Command::new("bash")
        .arg("-c")
        .arg(cmd)
        .output()
        .expect("bash");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "25 connection(s) closed"
    );
    for c in &mut leak {
        c.send(&["PING"]);
        assert!(c.read().is_err(), "a listed connection is still open");
    }
}

#[test]
fn cli_uses_the_url_password_and_never_prints_it() {
    let secret = "s3cr3t-Pa55-diag";
    let r = Redis::start(&["--requirepass", secret]);
    let good = format!("redis://:{secret}@127.0.0.1:{}", r.port);
    let (code, out, err) = diagnose_cmd(&[&good, "--sample-seconds", "0", "--format", "markdown"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("# Diagnosis of `127.0.0.1:"), "{out}");
    assert!(!out.contains(secret) && !err.contains(secret), "{out}{err}");
    let bad = format!("redis://:wrong-{secret}@127.0.0.1:{}", r.port);
    let (code, out, err) = diagnose_cmd(&[&bad, "--sample-seconds", "0"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("auth"), "names the problem: {err}");
    assert!(!out.contains(secret) && !err.contains(secret), "{out}{err}");
}
