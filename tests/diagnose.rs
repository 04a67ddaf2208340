//! Diagnosis scenarios against real redis-server processes (issue 15's acceptance): each
//! incident is scripted with real connections from several loopback source addresses, and
//! judged three times, each asserting the first cause, its culprit and the status: by the
//! daemon (`/diagnose` and `redis_client_diagnosis`) that watched the incident start where
//! that makes sense, by a daemon restarted in the middle of it (no history from before), and
//! by the one-shot `diagnose` command. The kill commands the command prints are then run with
//! bash and redis-cli against the scenario's server and must close exactly the culprit's
//! connections. Three healthy servers must read HEALTHY with nothing at or above the alert
//! threshold. Plus the command's own behaviour: a full server, waiting for a slot, a password.
//!
//! Many connections are cheap raw sockets; "busy" ones are kept busy by one thread per
//! group that pings them all; a "pod" is one loopback source address.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::{config, Exporter, Redis, Reply, RespConn};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_redis-clients-exporter");

/// Idle threshold of these tests, in seconds. Not 1: Redis computes `idle` from whole seconds,
/// so a connection pinged 0.1 s ago can show `idle=1` across a second boundary.
const IDLE: u64 = 2;
/// What the shipped alert fires at.
const ALERT: f64 = 0.7;

/// Keeps connections busy: one thread pings every one of them (pipelined) every 300 ms, and
/// counts the ones that fail (a kill step that closed a busy connection).
struct Busy {
    stop: Arc<AtomicBool>,
    errors: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
}

impl Busy {
    fn start(mut conns: Vec<RespConn>) -> Busy {
        let stop = Arc::new(AtomicBool::new(false));
        let errors = Arc::new(AtomicUsize::new(0));
        let (s, e) = (Arc::clone(&stop), Arc::clone(&errors));
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                for c in &mut conns {
                    c.send(&["PING"]);
                }
                conns.retain_mut(|c| match c.read() {
                    Ok(r) if !r.is_error() => true,
                    _ => {
                        e.fetch_add(1, Ordering::Relaxed);
                        false
                    }
                });
                std::thread::sleep(Duration::from_millis(300));
            }
        });
        Busy {
            stop,
            errors,
            thread: Some(thread),
        }
    }

    fn errors(&self) -> usize {
        self.errors.load(Ordering::Relaxed)
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

/// Connections a pool opened and checked once (a PING), then kept idle.
fn warm(r: &Redis, ip: &str, n: usize) -> Vec<RespConn> {
    (0..n)
        .map(|_| {
            let mut c = r.conn_from(ip);
            assert_eq!(c.cmd(&["PING"]).as_simple(), Some("PONG"));
            c
        })
        .collect()
}

fn exporter(r: &Redis) -> Exporter {
    let mut cfg = config(vec![r.target("t")], 20);
    cfg.idle_threshold_seconds = IDLE;
    Exporter::start(cfg)
}

fn report(e: &Exporter) -> Option<Value> {
    let (status, body) = e.get("/diagnose?target=t");
    if status != 200 {
        return None;
    }
    serde_json::from_str(&body).ok()
}

/// Reads `/diagnose` until `cond` holds; panics with the last report after 30 s.
fn wait_report(e: &Exporter, what: &str, cond: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
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
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn pretty(r: &Value) -> String {
    serde_json::to_string_pretty(r).unwrap_or_default()
}

/// What a scenario must read: the first finding's cause and culprit, and the status.
#[derive(Debug, Clone)]
struct Want {
    cause: &'static str,
    culprit: Option<String>,
    status: &'static str,
}

impl Want {
    fn new(cause: &'static str, culprit: Option<&str>, status: &'static str) -> Want {
        Want {
            cause,
            culprit: culprit.map(String::from),
            status,
        }
    }

    /// The first finding is the cause, with its culprit and a score that makes it a cause,
    /// and the status is the expected one.
    fn holds(&self, r: &Value) -> bool {
        let f = &r["findings"][0];
        f["cause"] == self.cause
            && f["culprit"].as_str() == self.culprit.as_deref()
            && f["score"].as_f64().unwrap_or(0.0) >= 0.5
            && r["status"] == self.status
    }
}

/// A healthy server's report: HEALTHY, nothing at or above the alert threshold.
fn healthy(r: &Value) -> bool {
    r["status"] == "healthy"
        && r["findings"]
            .as_array()
            .is_some_and(|a| a.iter().all(|f| f["score"].as_f64().unwrap_or(1.0) < ALERT))
}

/// The daemon's verdict: `/diagnose` until it holds, then `redis_client_diagnosis` carries
/// the same cause with that score.
fn daemon_says(e: &Exporter, want: &Want, when: &str) -> Value {
    let rep = wait_report(e, &format!("{want:?} ({when})"), |r| want.holds(r));
    e.wait_for(
        &format!("redis_client_diagnosis of {} ({when})", want.cause),
        Duration::from_secs(10),
        |m| {
            m.get(
                "redis_client_diagnosis",
                &[("target", "t"), ("cause", want.cause)],
            )
            .is_some_and(|v| v >= 0.5)
        },
    );
    rep
}

/// A healthy daemon: once its report has settled (`settled`), every report and scrape for
/// two more seconds is HEALTHY with nothing at or above the alert threshold.
fn daemon_healthy(e: &Exporter, settled: impl Fn(&Value) -> bool, when: &str) {
    wait_report(e, &format!("a settled report ({when})"), settled);
    let until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < until {
        let r = report(e).expect("a report");
        assert!(healthy(&r), "not healthy ({when}):\n{}", pretty(&r));
        let m = e.scrape();
        for (labels, v) in m.all("redis_client_diagnosis", &[("target", "t")]) {
            assert!(v < ALERT, "{labels:?} = {v} ({when})\n{}", m.text);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
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

/// Whether a report lists a finding of `cause` (as a cause or as a note).
fn has_finding(r: &Value, cause: &str) -> bool {
    r["findings"]
        .as_array()
        .is_some_and(|a| a.iter().any(|f| f["cause"] == cause))
}

/// A healthy scenario judged three ways: by the daemon that watched it (`e`), by a daemon
/// restarted in the middle of it, and by the one-shot command; returns the command's report.
fn judged_healthy(r: &Redis, e: Exporter, settled: impl Fn(&Value) -> bool) -> Value {
    daemon_healthy(&e, &settled, "watching");
    drop(e);
    let e = exporter(r);
    daemon_healthy(&e, &settled, "restarted");
    drop(e);
    let rep = command_report(r);
    assert!(healthy(&rep), "{}", pretty(&rep));
    rep
}

/// The one-shot command's JSON report (one second between its snapshots).
fn command_report(r: &Redis) -> Value {
    let url = format!("redis://127.0.0.1:{}", r.port);
    let idle = IDLE.to_string();
    let (code, out, err) = diagnose_cmd(&[
        &url,
        "--format",
        "json",
        "--sample-seconds",
        "1",
        "--idle-threshold-seconds",
        &idle,
        "--timeout-seconds",
        "20",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    serde_json::from_str(&out).expect("a JSON report")
}

fn command_says(r: &Redis, want: &Want) -> Value {
    let rep = command_report(r);
    assert!(want.holds(&rep), "command, {want:?}:\n{}", pretty(&rep));
    rep
}

/// The kill commands of the first finding (by id, then the live re-selection), in order.
fn kill_commands(rep: &Value) -> Vec<String> {
    rep["findings"][0]["remediation"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["command"].as_str())
        .filter(|c| c.contains("CLIENT KILL"))
        .map(String::from)
        .collect()
}

struct Ran {
    code: i32,
    stdout: String,
    stderr: String,
}

fn bash(cmd: &str) -> Ran {
    let out = Command::new("bash")
        .arg("-c")
        .arg(cmd)
        .output()
        .expect("bash");
    Ran {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs the command's kill steps and returns how many connections they closed (each checked
/// to succeed).
fn run_kills(rep: &Value) -> usize {
    let cmds = kill_commands(rep);
    assert!(!cmds.is_empty(), "no kill command:\n{}", pretty(rep));
    assert!(
        cmds[0].starts_with("printf 'CLIENT KILL ID %s\\n' "),
        "the exact ids come first: {cmds:?}"
    );
    let mut closed = 0;
    for c in &cmds {
        let r = bash(c);
        assert_eq!(r.code, 0, "{c}\n{}{}", r.stdout, r.stderr);
        closed += r
            .stdout
            .split_whitespace()
            .next()
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap_or(0);
    }
    closed
}

fn the_daemon_restarts(r: &Redis, first: Exporter, want: &Want) {
    drop(first);
    let e = exporter(r);
    daemon_says(&e, want, "restarted in the middle of it");
}

#[test]
fn leak_from_one_service() {
    let r = Redis::start(&["--maxclients", "100"]);
    let busy = Busy::start(conns(&r, "127.0.0.2", 10));
    let e = exporter(&r);
    wait_report(&e, "a first report", |_| true);
    // The leak grows while the daemon watches: 20, then 50 more, never used.
    let mut leak = conns(&r, "127.0.0.5", 20);
    std::thread::sleep(Duration::from_millis(500));
    leak.extend(conns(&r, "127.0.0.5", 50));
    let want = Want::new("connection_leak", Some("source_ip 127.0.0.5"), "warning");
    let rep = daemon_says(&e, &want, "watching");
    let evidence = rep["findings"][0]["evidence"].to_string();
    assert!(evidence.contains("\"70\""), "{}", pretty(&rep));
    assert!(
        evidence.contains("(+"),
        "growth over the history: {evidence}"
    );
    // The busy source is blamed for nothing.
    assert!(!rep.to_string().contains("127.0.0.2\""), "{}", pretty(&rep));
    the_daemon_restarts(&r, e, &want);
    let rep = command_says(&r, &want);
    // Every fix of a leak sets Redis to heal: timeout (0 here) and tcp-keepalive (300 here).
    let steps = rep["findings"][0]["remediation"].to_string();
    assert!(steps.contains("CONFIG SET timeout 300"), "{steps}");
    assert!(steps.contains("tcp-keepalive is 300 s"), "{steps}");
    // The ids listed are exactly the leak's, and running the steps closes exactly them.
    let mut ids: Vec<String> = leak
        .iter_mut()
        .map(|c| match c.cmd(&["CLIENT", "ID"]) {
            common::Reply::Int(i) => i.to_string(),
            other => panic!("CLIENT ID: {other:?}"),
        })
        .collect();
    let cmd = &kill_commands(&rep)[0];
    let mut listed: Vec<String> = cmd
        .strip_prefix("printf 'CLIENT KILL ID %s\\n' ")
        .and_then(|s| s.split(" | ").next())
        .unwrap_or("")
        .split_whitespace()
        .map(String::from)
        .collect();
    listed.sort();
    ids.sort();
    assert_eq!(listed, ids, "{cmd}");
    assert_eq!(run_kills(&rep), 70);
    let left = r.clients_by_source();
    assert_eq!(left.get("127.0.0.5"), None, "{left:?}");
    assert_eq!(left.get("127.0.0.2"), Some(&10), "{left:?}");
    assert_eq!(busy.errors(), 0);
}

#[test]
fn scale_out_before_anyone_looked() {
    // 5 pods, then (10 s later, before any exporter or command ran) 15 more: 20 × 48 at
    // maxclients 1000. Only the connections' ages tell that there were 5 before (a jump in
    // ages counts while the newer instances are at most half as old as the older ones).
    let r = Redis::start(&["--maxclients", "1000"]);
    let pods = |from: usize, to: usize| {
        let mut all = Vec::new();
        for i in from..to {
            all.extend(conns(&r, &format!("127.0.1.{}", i + 1), 48));
        }
        Busy::start(all)
    };
    let _old = pods(0, 5);
    std::thread::sleep(Duration::from_secs(10));
    let _new = pods(5, 20);
    let want = Want::new("scale_out", Some("address_prefix 127.0.1.0/24"), "critical");
    let rep = command_says(&r, &want);
    let f = rep["findings"][0].to_string();
    // 20 instances (the command's own address is not one): 20 × 48 = 960, and 80% of 1000
    // spread over them is 40 each.
    assert!(f.contains("20 × 48.0 = 960"), "{}", pretty(&rep));
    assert!(f.contains("pool at 40 connections"), "{}", pretty(&rep));
    assert_eq!(rep["server"]["instances"], 20, "{}", pretty(&rep));
    assert_eq!(rep["server"]["distinct_sources"], 21, "{}", pretty(&rep));
    assert!(
        rep["findings"][0]["evidence"]
            .to_string()
            .contains("read from connection ages"),
        "{}",
        pretty(&rep)
    );
    let e = exporter(&r);
    daemon_says(&e, &want, "started after the scale-out");
    the_daemon_restarts(&r, e, &want);
}

#[test]
fn maxclients_set_low() {
    let r = Redis::start(&["--maxclients", "64"]);
    let e = exporter(&r);
    wait_report(&e, "a first report", |_| true);
    // Three pods of 20 busy connections each, all starting together: demand, not a scale-out.
    let mut all = Vec::new();
    for i in 1..=3 {
        all.extend(conns(&r, &format!("127.0.2.{i}"), 20));
    }
    let busy = Busy::start(all);
    let want = Want::new("maxclients_too_low", None, "critical");
    daemon_says(&e, &want, "watching");
    the_daemon_restarts(&r, e, &want);
    let rep = command_says(&r, &want);
    // Its fix works here (the fd limit allows it), as the report says.
    let steps = rep["findings"][0]["remediation"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let set = steps
        .iter()
        .find_map(|s| {
            s["command"]
                .as_str()
                .filter(|c| c.contains("CONFIG SET maxclients"))
        })
        .expect("a CONFIG SET maxclients step");
    assert!(steps
        .iter()
        .any(|s| s["why"].to_string().contains("works at runtime when")));
    let ran = bash(set);
    assert_eq!(ran.code, 0, "{set}\n{}{}", ran.stdout, ran.stderr);
    let mut c = RespConn::connect_unix(&r.socket_path());
    let got = c.cmd(&["CONFIG", "GET", "maxclients"]);
    assert!(format!("{got:?}").contains("10000"), "{got:?}");
    assert_eq!(busy.errors(), 0);
}

#[test]
fn maxclients_clamped_by_the_fd_limit() {
    // A real ulimit: Redis asks for 10000 + 32 descriptors, gets 1024, sets maxclients 992.
    let r = Redis::start_with_nofile(1024, &["--maxclients", "10000"]);
    let e = exporter(&r);
    wait_report(&e, "a first report", |_| true);
    let mut all = Vec::new();
    for i in 1..=20 {
        all.extend(conns(&r, &format!("127.0.3.{i}"), 45));
    }
    let _busy = Busy::start(all);
    let want = Want::new("maxclients_too_low", None, "critical");
    let rep = daemon_says(&e, &want, "watching");
    assert_eq!(rep["server"]["maxclients"].as_f64(), Some(992.0));
    let f = &rep["findings"][0];
    assert!(
        f["title"].as_str().unwrap_or("").contains("clamped to 992"),
        "{}",
        pretty(&rep)
    );
    let steps = f["remediation"].to_string();
    assert!(steps.contains("LimitNOFILE=10032"), "{steps}");
    assert!(steps.contains("fails now"), "{steps}");
    the_daemon_restarts(&r, e, &want);
    let rep = command_says(&r, &want);
    // As the report says: CONFIG SET maxclients cannot work under this limit, and the
    // printed command says so instead of exiting 0.
    let set = rep["findings"][0]["remediation"]
        .as_array()
        .into_iter()
        .flatten()
        .find_map(|s| {
            s["command"]
                .as_str()
                .filter(|c| c.contains("CONFIG SET maxclients"))
        })
        .expect("a CONFIG SET maxclients step")
        .to_string();
    let ran = bash(&set);
    assert_eq!(ran.code, 1, "{set}\n{}{}", ran.stdout, ran.stderr);
    assert!(
        ran.stderr.contains("not able to handle") && ran.stderr.contains("FAILED"),
        "{}",
        ran.stderr
    );
}

#[test]
fn stale_subscribers() {
    let r = Redis::start(&["--maxclients", "50"]);
    let e = exporter(&r);
    wait_report(&e, "a first report", |_| true);
    let mut stale = conns(&r, "127.0.4.7", 30);
    for c in &mut stale {
        c.send(&["SUBSCRIBE", "nobody-publishes-here"]);
        assert!(c.read().is_ok());
    }
    // Live subscribers get a message every 100 ms: not idle, not stale.
    let mut live = conns(&r, "127.0.4.8", 10);
    for c in &mut live {
        c.send(&["SUBSCRIBE", "news"]);
        assert!(c.read().is_ok());
    }
    let mut publisher = r.conn_from("127.0.4.9");
    let stop = Arc::new(AtomicBool::new(false));
    let s = Arc::clone(&stop);
    let pubber = std::thread::spawn(move || {
        while !s.load(Ordering::Relaxed) {
            publisher.cmd(&["PUBLISH", "news", "hello"]);
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    let want = Want::new("stale_pubsub", Some("source_ip 127.0.4.7"), "warning");
    let rep = daemon_says(&e, &want, "watching");
    assert!(!rep.to_string().contains("127.0.4.8"), "{}", pretty(&rep));
    the_daemon_restarts(&r, e, &want);
    let rep = command_says(&r, &want);
    assert_eq!(run_kills(&rep), 30);
    let left = r.clients_by_source();
    assert_eq!(left.get("127.0.4.7"), None, "{left:?}");
    assert_eq!(left.get("127.0.4.8"), Some(&10), "{left:?}");
    assert_eq!(left.get("127.0.4.9"), Some(&1), "{left:?}");
    stop.store(true, Ordering::Relaxed);
    let _ = pubber.join();
    drop((stale, live));
}

#[test]
fn churn_from_one_source() {
    let r = Redis::start(&[]);
    let _busy = Busy::start(conns(&r, "127.0.5.2", 10));
    // The steady connections must be older than "young" before anyone looks.
    std::thread::sleep(Duration::from_millis(2100));
    let e = exporter(&r);
    wait_report(&e, "a first report", |_| true);
    let stop = Arc::new(AtomicBool::new(false));
    // Four threads that connect per request: connect, PING, hold 10 ms, close.
    let churners: Vec<_> = (0..4)
        .map(|_| {
            let s = Arc::clone(&stop);
            let port = r.port;
            std::thread::spawn(move || {
                while !s.load(Ordering::Relaxed) {
                    if let Ok(mut c) = RespConn::try_connect(port, "127.0.5.9") {
                        c.send(&["PING"]);
                        let _ = c.read();
                        std::thread::sleep(Duration::from_millis(10));
                    }
                }
            })
        })
        .collect();
    let want = Want::new("connection_churn", Some("source_ip 127.0.5.9"), "warning");
    let rep = daemon_says(&e, &want, "watching");
    let rate = rep["server"]["new_connections_per_second"]
        .as_f64()
        .unwrap_or(0.0);
    assert!(rate > 100.0, "{}", pretty(&rep));
    the_daemon_restarts(&r, e, &want);
    command_says(&r, &want);
    stop.store(true, Ordering::Relaxed);
    for c in churners {
        let _ = c.join();
    }
}

#[test]
fn blocked_clients() {
    let r = Redis::start(&["--maxclients", "60"]);
    let busy = Busy::start(conns(&r, "127.0.6.2", 10));
    let e = exporter(&r);
    wait_report(&e, "a first report", |_| true);
    let mut blocked = conns(&r, "127.0.6.10", 40);
    for c in &mut blocked {
        c.send(&["BLPOP", "never-pushed", "0"]);
    }
    let want = Want::new("blocked_clients", Some("source_ip 127.0.6.10"), "warning");
    let rep = daemon_says(&e, &want, "watching");
    // Waiting blocked calls are idle but are not a leak.
    assert!(
        !rep["findings"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|f| f["cause"] == "connection_leak" && f["score"].as_f64() >= Some(0.5)),
        "{}",
        pretty(&rep)
    );
    the_daemon_restarts(&r, e, &want);
    let rep = command_says(&r, &want);
    assert_eq!(run_kills(&rep), 40);
    let left = r.clients_by_source();
    assert_eq!(left.get("127.0.6.10"), None, "{left:?}");
    assert_eq!(left.get("127.0.6.2"), Some(&10), "{left:?}");
    assert_eq!(busy.errors(), 0);
}

/// One pod of the fleet-wide leak: 5 busy connections and 13 opened and never used.
fn leaky_pod(r: &Redis, ip: &str) -> (Vec<RespConn>, Vec<RespConn>) {
    (conns(r, ip, 5), conns(r, ip, 13))
}

#[test]
fn fleet_wide_leak_with_scale_out() {
    // The runbooks' example: 8 -> 32 unnamed pods (127.0.0.2..33), each with 5 busy and 13
    // leaked connections, maxclients 600. No single pod stands out; the fleet does.
    let r = Redis::start(&["--maxclients", "600"]);
    let (mut busy, mut leaked) = (Vec::new(), Vec::new());
    for i in 2..10 {
        let (b, l) = leaky_pod(&r, &format!("127.0.0.{i}"));
        busy.extend(b);
        leaked.extend(l);
    }
    let busy_old = Busy::start(std::mem::take(&mut busy));
    let e = exporter(&r);
    wait_report(&e, "the 8 pods seen", |r| r["server"]["instances"] == 8);
    std::thread::sleep(Duration::from_secs(3));
    for i in 10..34 {
        let (b, l) = leaky_pod(&r, &format!("127.0.0.{i}"));
        busy.extend(b);
        leaked.extend(l);
    }
    let busy_new = Busy::start(busy);
    let want = Want::new(
        "connection_leak",
        Some("address_prefix 127.0.0.0/24"),
        "critical",
    );
    daemon_says(&e, &want, "watching");
    the_daemon_restarts(&r, e, &want);
    let rep = command_says(&r, &want);
    assert!(
        rep["findings"][0]["summary"]
            .to_string()
            .contains("spread over 32 instances"),
        "{}",
        pretty(&rep)
    );
    assert_eq!(run_kills(&rep), 32 * 13);
    let left = r.clients_by_source();
    assert_eq!(left.len(), 32, "{left:?}");
    assert!(left.values().all(|&n| n == 5), "{left:?}");
    assert_eq!(busy_old.errors() + busy_new.errors(), 0);
    drop(leaked);
}

/// A client that takes every free slot (checking each with a PING) every 100 ms, unless paused.
struct Grabber {
    paused: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    held: Arc<Mutex<Vec<RespConn>>>,
    thread: Option<JoinHandle<()>>,
}

impl Grabber {
    fn start(port: u16, ip: &'static str) -> Grabber {
        let paused = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let held = Arc::new(Mutex::new(Vec::new()));
        let (p, s, h) = (Arc::clone(&paused), Arc::clone(&stop), Arc::clone(&held));
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                while !p.load(Ordering::Relaxed) {
                    let Ok(mut c) = RespConn::try_connect(port, ip) else {
                        break;
                    };
                    c.send(&["PING"]);
                    match c.read() {
                        Ok(common::Reply::Simple(_)) => h.lock().expect("lock").push(c),
                        // "max number of clients reached": every slot is ours or taken.
                        _ => break,
                    }
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        Grabber {
            paused,
            stop,
            held,
            thread: Some(thread),
        }
    }

    fn pause(&self, on: bool) {
        self.paused.store(on, Ordering::Relaxed);
        // Let a grab in progress finish.
        std::thread::sleep(Duration::from_millis(300));
    }

    fn count(&self) -> usize {
        self.held.lock().expect("lock").len()
    }
}

impl Drop for Grabber {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.paused.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[test]
fn a_leak_holds_every_slot_and_regrabs_freed_ones() {
    let r = Redis::start(&["--maxclients", "100"]);
    let busy = Busy::start(conns(&r, "127.0.7.2", 10));
    let e = exporter(&r);
    wait_report(&e, "a first report", |_| true);
    let grabber = Grabber::start(r.port, "127.0.7.5");
    let want = Want::new("connection_leak", Some("source_ip 127.0.7.5"), "full");
    let rep = daemon_says(&e, &want, "watching");
    // Plainly: while full, no printed command can run; what works is named.
    let first = rep["findings"][0]["remediation"][0]["why"].to_string();
    assert!(first.contains("no new connection can be opened"), "{first}");
    assert!(first.contains("source_ip 127.0.7.5"), "{first}");
    // The restarted daemon gets the slot the old one frees before the grabber does.
    grabber.pause(true);
    drop(e);
    let e = exporter(&r);
    wait_report(&e, "the restarted daemon connected", |r| {
        r["status"] != "unreachable"
    });
    grabber.pause(false);
    daemon_says(&e, &want, "restarted in the middle of it");
    // So does the command.
    grabber.pause(true);
    drop(e);
    let url = format!("redis://127.0.0.1:{}", r.port);
    let idle = IDLE.to_string();
    let cmd = std::thread::spawn(move || {
        diagnose_cmd(&[
            &url,
            "--format",
            "json",
            "--sample-seconds",
            "1",
            "--idle-threshold-seconds",
            &idle,
            "--timeout-seconds",
            "20",
        ])
    });
    std::thread::sleep(Duration::from_millis(400));
    grabber.pause(false);
    let (code, out, err) = cmd.join().expect("the command");
    assert_eq!(code, 0, "{out}{err}");
    let rep: Value = serde_json::from_str(&out).expect("json");
    assert!(want.holds(&rep), "command:\n{}", pretty(&rep));
    // While full, its by-id step fails loudly.
    std::thread::sleep(Duration::from_millis(300));
    let kills = kill_commands(&rep);
    let ran = bash(&kills[0]);
    assert_eq!(ran.code, 1, "{}{}", ran.stdout, ran.stderr);
    assert!(
        ran.stderr.contains("max number of clients"),
        "{}",
        ran.stderr
    );
    // Once a slot is free (the grabber stopped and one of its connections closed), the steps
    // close exactly the grabber's connections: by id those of the snapshot, then by live
    // re-selection any it grabbed since (idle long enough by then).
    grabber.pause(true);
    drop(grabber.held.lock().expect("lock").pop());
    std::thread::sleep(Duration::from_millis(2100));
    let held = grabber.count();
    assert!(held >= 85, "{held}");
    assert_eq!(run_kills(&rep), held);
    let left = r.clients_by_source();
    assert_eq!(left.get("127.0.7.5"), None, "{left:?}");
    assert_eq!(left.get("127.0.7.2"), Some(&10), "{left:?}");
    assert_eq!(busy.errors(), 0);
}

#[test]
fn healthy_busy_pools_with_warm_spares() {
    // 20 pods, each a pool of 15: 5 busy, 10 warm spares (minIdle) checked once; 3% in use.
    let r = Redis::start(&[]);
    let e = exporter(&r);
    wait_report(&e, "a first report", |_| true);
    let (mut busy, mut spares) = (Vec::new(), Vec::new());
    for i in 1..=20 {
        let ip = format!("127.0.8.{i}");
        busy.extend(conns(&r, &ip, 5));
        spares.extend(warm(&r, &ip, 10));
    }
    let _busy = Busy::start(busy);
    judged_healthy(&r, e, |r| {
        r["server"]["instances"] == 20 && has_finding(r, "connection_leak")
    });
    drop(spares);
}

#[test]
fn healthy_autoscale() {
    // 5 -> 20 pods of 10 busy connections at 2%: a scale-out, and no threat.
    let r = Redis::start(&[]);
    let pods = |from: usize, to: usize| {
        let mut all = Vec::new();
        for i in from..to {
            all.extend(conns(&r, &format!("127.0.9.{}", i + 1), 10));
        }
        Busy::start(all)
    };
    let _old = pods(0, 5);
    let e = exporter(&r);
    wait_report(&e, "a first report", |_| true);
    std::thread::sleep(Duration::from_secs(10));
    let _new = pods(5, 20);
    let rep = judged_healthy(&r, e, |r| {
        r["server"]["instances"] == 20 && has_finding(r, "scale_out")
    });
    assert!(
        rep["findings"].to_string().contains("scale_out"),
        "the pattern is named, as a note: {}",
        pretty(&rep)
    );
}

#[test]
fn healthy_shared_host_with_a_mostly_idle_pool() {
    // One host: a 60-connection pool, 40 idle by design; another host with 30 busy; 1%.
    let r = Redis::start(&[]);
    let e = exporter(&r);
    wait_report(&e, "a first report", |_| true);
    let mut busy = conns(&r, "127.0.10.2", 20);
    busy.extend(conns(&r, "127.0.10.3", 30));
    let _busy = Busy::start(busy);
    let spares = warm(&r, "127.0.10.2", 40);
    judged_healthy(&r, e, |r| has_finding(r, "connection_leak"));
    drop(spares);
}

#[test]
fn output_buffer_hogs_are_ranked_first() {
    let r = Redis::start(&["--client-output-buffer-limit", "normal", "0", "0", "0"]);
    let mut setup = r.conn();
    let big = "x".repeat(1 << 20);
    setup.cmd(&["SET", "big", &big]);
    let _busy = Busy::start(conns(&r, "127.0.11.2", 10));
    // Readers that never read: each asks for 1 MiB 20 times and leaves the replies in Redis.
    let mut hogs = conns(&r, "127.0.11.3", 4);
    for c in &mut hogs {
        for _ in 0..20 {
            c.send(&["GET", "big"]);
        }
    }
    let e = exporter(&r);
    let rep = wait_report(&e, "output-buffer hogs ranked first", |r| {
        r["findings"][0]["cause"] == "output_buffer_hogs"
    });
    assert_eq!(
        rep["findings"][0]["culprit"],
        "source_ip 127.0.11.3",
        "{}",
        pretty(&rep)
    );
}

/// A subscriber that does not read large messages: on Valkey 9 `omem` charges the 64 KiB
/// messages (sent by reference, reply copy avoidance) only by their headers, so the finding
/// rests on the socket that does not drain; elsewhere on the megabytes of omem. Every version
/// of the matrix must name the subscriber.
#[test]
fn a_subscriber_that_does_not_read_large_messages_is_an_output_buffer_hog() {
    let r = Redis::start(&["--client-output-buffer-limit", "pubsub", "0", "0", "0"]);
    let _busy = Busy::start(conns(&r, "127.0.11.5", 5));
    let mut sub = r.conn_from("127.0.11.6");
    sub.send(&["SUBSCRIBE", "feed"]);
    let mut publisher = r.conn_from("127.0.11.7");
    // Until the subscription is there (PUBLISH answers the number of receivers).
    let deadline = Instant::now() + Duration::from_secs(10);
    while publisher.cmd(&["PUBLISH", "feed", "x"]) != Reply::Int(1) {
        assert!(Instant::now() < deadline, "the subscription never showed");
        std::thread::sleep(Duration::from_millis(20));
    }
    let message = "m".repeat(64 << 10);
    for _ in 0..400 {
        publisher.cmd(&["PUBLISH", "feed", &message]);
    }
    let e = exporter(&r);
    let rep = wait_report(&e, "the subscriber named as an output-buffer hog", |r| {
        r["findings"].as_array().is_some_and(|fs| {
            fs.iter().any(|f| {
                f["cause"] == "output_buffer_hogs" && f["culprit"] == "source_ip 127.0.11.6"
            })
        })
    });
    assert!(
        !has_finding(&rep, "stale_pubsub"),
        "a stuck reader is no stale subscriber: {}",
        pretty(&rep)
    );
    let m = e.scrape();
    assert!(
        m.get(
            "redis_client_output_stalled_connections",
            &[("target", "t")]
        ) >= Some(1.0),
        "the socket that does not drain is counted"
    );
    drop(sub);
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

#[test]
fn cli_says_healthy_on_a_healthy_server() {
    let r = Redis::start(&[]);
    let _busy = Busy::start(conns(&r, "127.0.12.2", 5));
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
fn cli_on_a_full_server_gives_up_after_the_timeout_it_was_given() {
    let r = Redis::start(&["--maxclients", "5"]);
    let hold: Vec<RespConn> = (0..5).map(|_| r.conn()).collect();
    let url = format!("redis://127.0.0.1:{}", r.port);
    let started = Instant::now();
    let (code, out, err) = diagnose_cmd(&[&url, "--timeout-seconds", "3"]);
    // Not before the 3 s it was told to wait (it used to give up after 2).
    assert!(started.elapsed() >= Duration::from_secs(3), "{err}");
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
