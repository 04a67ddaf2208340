//! Relief (issue 16): acting on a full Redis through the exporter's held connection.
//!
//! Real redis-server processes: a primary at `maxclients 40` with a replica attached, healthy
//! clients (named, active) and a leaking client from 127.0.0.2 that takes every slot it can and
//! then re-grabs a freed slot within 0.2 s. The exporter runs as the binary (its JSON log holds
//! the audit lines); requests are plain HTTP/1.0 POSTs and the `relieve` subcommand.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use base64::Engine;
use common::{Busy, Metrics, Redis, RespConn};
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_redis-clients-exporter");
/// Redis' requirepass, the ops user's and the scrape-only user's passwords: none may leak.
const REDIS_PW: &str = "r3dis-S3cret-pw";
const OPS_PW: &str = "0ps-S3cret-pw";
const PROM_PW: &str = "pr0m-S3cret-pw";
const WAIT: Duration = Duration::from_secs(20);

/// The exporter binary, its log lines collected as they come.
struct Daemon {
    child: Child,
    logs: Arc<Mutex<Vec<String>>>,
    addr: SocketAddr,
}

impl Daemon {
    fn start(config: &Path) -> Daemon {
        let mut child = Command::new(BIN)
            .args([
                "--listen",
                "127.0.0.1:0",
                "--log-format",
                "json",
                "--config",
            ])
            .arg(config)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn exporter");
        let logs = Arc::new(Mutex::new(Vec::new()));
        for stream in [
            Box::new(child.stderr.take().expect("stderr")) as Box<dyn Read + Send>,
            Box::new(child.stdout.take().expect("stdout")),
        ] {
            let logs = Arc::clone(&logs);
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    logs.lock().expect("logs").push(line);
                }
            });
        }
        let mut d = Daemon {
            child,
            logs,
            addr: "127.0.0.1:0".parse().expect("addr"),
        };
        let line = d.wait_log("listening");
        d.addr = line
            .split("\"addr\":\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .expect("addr")
            .parse()
            .expect("addr");
        d
    }

    fn log(&self) -> Vec<String> {
        self.logs.lock().expect("logs").clone()
    }

    fn wait_log(&self, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(l) = self.log().into_iter().find(|l| l.contains(needle)) {
                return l;
            }
            assert!(
                Instant::now() < deadline,
                "no log line with {needle:?}:\n{}",
                self.log().join("\n")
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The audit lines, parsed.
    fn audit(&self) -> Vec<Value> {
        self.log()
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["target"] == "audit")
            .collect()
    }

    /// GET as the scrape-only user (everything but the probes needs basic auth here).
    fn get(&self, path: &str) -> (u16, String) {
        get(self.addr, path)
    }

    fn metrics(&self) -> Metrics {
        let (status, body) = self.get("/metrics");
        assert_eq!(status, 200, "{body}");
        Metrics::parse(&body)
    }

    fn wait_metrics(&self, what: &str, f: impl Fn(&Metrics) -> bool) -> Metrics {
        let deadline = Instant::now() + WAIT;
        loop {
            let m = self.metrics();
            if f(&m) {
                return m;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}:\n{}",
                m.text
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn post(&self, path: &str, user: Option<(&str, &str)>, body: &Value) -> (u16, Value) {
        post(self.addr, path, user, body)
    }

    fn actions(&self, action: &str, result: &str) -> f64 {
        self.metrics().sum(
            "redis_clients_exporter_actions_total",
            &[("target", "main"), ("action", action), ("result", result)],
        )
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let (status, body) = request(addr, "GET", path, Some(("prom", PROM_PW)), "");
    (status, body)
}

fn post(addr: SocketAddr, path: &str, user: Option<(&str, &str)>, body: &Value) -> (u16, Value) {
    let (status, body) = request(addr, "POST", path, user, &body.to_string());
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    user: Option<(&str, &str)>,
    body: &str,
) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect exporter");
    s.set_read_timeout(Some(Duration::from_secs(40)))
        .expect("timeout");
    let auth = user.map_or(String::new(), |(u, p)| {
        format!(
            "Authorization: Basic {}\r\n",
            base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
        )
    });
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: x\r\nContent-Type: application/json\r\n{auth}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .expect("write request");
    let mut resp = String::new();
    s.read_to_string(&mut resp).expect("read response");
    let status = resp
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = resp.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, body.to_string())
}

const OPS: Option<(&str, &str)> = Some(("ops", OPS_PW));

/// A directory with the Redis password file, the web config (ops and prom) and a config file
/// for one target `main` with `relief` as given.
struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    fn new(redis_port: u16, relief: &str) -> Files {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = |f: &str| dir.path().join(f).display().to_string();
        std::fs::write(dir.path().join("redis-pw"), format!("{REDIS_PW}\n")).expect("pw");
        std::fs::write(dir.path().join("ops-pw"), format!("{OPS_PW}\n")).expect("pw");
        std::fs::write(
            dir.path().join("web.yml"),
            format!(
                "basic_auth_users:\n  ops: \"{}\"\n  prom: \"{}\"\n",
                bcrypt::hash(OPS_PW, 4).expect("bcrypt"),
                bcrypt::hash(PROM_PW, 4).expect("bcrypt")
            ),
        )
        .expect("web");
        std::fs::write(
            dir.path().join("exporter.toml"),
            format!(
                "poll_interval_seconds = 0.5\nidle_threshold_seconds = 1\npassword_file = \"{}\"\nweb_config_file = \"{}\"\n\
                 [[targets]]\naddress = \"redis://127.0.0.1:{redis_port}\"\nalias = \"main\"\n{relief}\n",
                p("redis-pw"),
                p("web.yml")
            ),
        )
        .expect("config");
        Files { dir }
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("exporter.toml")
    }

    fn ops_password_file(&self) -> PathBuf {
        self.dir.path().join("ops-pw")
    }
}

/// An authenticated connection from `source`, named `name`; its CLIENT ID. `None` when the
/// server refuses it (full).
fn client(port: u16, source: &str, name: &str) -> Option<(u64, RespConn)> {
    let mut c = RespConn::try_connect(port, source).ok()?;
    if c.cmd(&["AUTH", REDIS_PW]).is_error() {
        return None;
    }
    c.cmd(&["CLIENT", "SETNAME", name]);
    match c.cmd(&["CLIENT", "ID"]) {
        common::Reply::Int(id) => Some((id as u64, c)),
        _ => None,
    }
}

/// A short-lived look at the server (there must be a free slot): CLIENT LIST as (id, addr,
/// name, flags).
fn client_list(port: u16) -> Vec<(u64, String, String, String)> {
    let (_, mut c) = client(port, "127.0.0.1", "observer").expect("a free slot to look");
    let reply = c.cmd(&["CLIENT", "LIST"]);
    let text = reply.as_bulk().unwrap_or_default().to_string();
    text.lines()
        .map(|l| {
            let field = |k: &str| {
                l.split(' ')
                    .find_map(|f| f.strip_prefix(k))
                    .unwrap_or_default()
                    .to_string()
            };
            (
                field("id=").parse().unwrap_or(0),
                field("addr="),
                field("name="),
                field("flags="),
            )
        })
        .collect()
}

/// A leaking client from 127.0.0.2: takes every slot it can, then keeps trying every 0.2 s
/// and holds (never uses, never closes) every connection it gets.
struct Leaker {
    stop: Arc<AtomicBool>,
    held: Arc<Mutex<Vec<(u64, RespConn)>>>,
    thread: Option<JoinHandle<()>>,
}

impl Leaker {
    fn start(port: u16) -> Leaker {
        let stop = Arc::new(AtomicBool::new(false));
        let held = Arc::new(Mutex::new(Vec::new()));
        let (s, h) = (Arc::clone(&stop), Arc::clone(&held));
        let thread = std::thread::spawn(move || {
            let mut greedy = true;
            while !s.load(Ordering::Relaxed) {
                // A full server may close the socket before our AUTH is written: the helper
                // panics on that, the leak must go on.
                let got = std::panic::catch_unwind(|| client(port, "127.0.0.2", "leaker"));
                match got.ok().flatten() {
                    Some(c) => h.lock().expect("held").push(c),
                    None => greedy = false,
                }
                if !greedy {
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        });
        Leaker {
            stop,
            held,
            thread: Some(thread),
        }
    }

    fn ids(&self) -> Vec<u64> {
        let mut ids: Vec<u64> = self
            .held
            .lock()
            .expect("held")
            .iter()
            .map(|(id, _)| *id)
            .collect();
        ids.sort();
        ids
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

fn ids(v: &Value) -> Vec<u64> {
    let mut ids: Vec<u64> = v
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c.get("id").unwrap_or(c).as_u64())
        .collect();
    ids.sort();
    ids
}

fn headroom(m: &Metrics) -> Option<f64> {
    m.get("redis_client_headroom_connections", &[("target", "main")])
}

fn limit(m: &Metrics) -> Option<f64> {
    m.get("redis_client_limit_connections", &[("target", "main")])
}

/// No password and no whole token anywhere in what the exporter printed or serves.
fn assert_no_secret(d: &Daemon, tokens: &[String]) {
    let log = d.log().join("\n");
    let metrics = d.metrics().text;
    for secret in [REDIS_PW, OPS_PW, PROM_PW]
        .into_iter()
        .chain(tokens.iter().map(String::as_str))
    {
        assert!(
            !log.contains(secret),
            "a secret in the log: {secret}\n{log}"
        );
        assert!(!metrics.contains(secret), "a secret in /metrics: {secret}");
    }
}

#[test]
fn relief_closes_exactly_the_leak_and_with_timeout_headroom_comes_back_and_stays() {
    let primary = Redis::start(&["--maxclients", "40", "--requirepass", REDIS_PW]);
    let port = primary.port.to_string();
    let _replica = Redis::start(&["--replicaof", "127.0.0.1", &port, "--masterauth", REDIS_PW]);
    let files = Files::new(
        primary.port,
        "[relief]\nenabled = true\nusers = [\"ops\"]\nmax_connections_per_action = 50\n\
         config_set_bounds = { timeout = [2, 3600], maxclients = [40, 100] }\n",
    );
    let d = Daemon::start(&files.config());
    d.wait_metrics("the target up with its replica", |m| {
        m.get("redis_up", &[("target", "main")]) == Some(1.0)
            && m.get("redis_connected_slaves", &[("target", "main")]) == Some(1.0)
    });
    // Who is there before the flood: the replica's link and the exporter's own connection.
    let before = client_list(primary.port);
    let replica_link = before
        .iter()
        .find(|c| c.3.contains('S'))
        .map(|c| c.0)
        .expect("the replica's link");
    let exporter_conn = before
        .iter()
        .find(|c| c.2 == "redis-clients-exporter")
        .map(|c| c.0)
        .expect("the exporter's connection");

    let healthy: Vec<(u64, RespConn)> = (0..8)
        .map(|_| client(primary.port, "127.0.0.3", "api").expect("healthy client"))
        .collect();
    let mut healthy_ids: Vec<u64> = healthy.iter().map(|(id, _)| *id).collect();
    healthy_ids.sort();
    let _busy = Busy::start(healthy.into_iter().map(|(_, c)| c).collect());
    let leaker = Leaker::start(primary.port);

    // Full: 1 exporter + 1 replica + 8 healthy + 30 leaked, and the leak is the diagnosis.
    d.wait_metrics("the server full", |m| {
        limit(m) == Some(40.0) && headroom(m) == Some(0.0)
    });
    let deadline = Instant::now() + WAIT;
    let diagnosis = loop {
        let (_, body) = d.get("/diagnose?target=main");
        let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        let leak = v["findings"].as_array().into_iter().flatten().any(|f| {
            f["cause"] == "connection_leak"
                && f["culprit"] == "source_ip 127.0.0.2"
                && f["confidence"].as_f64().unwrap_or(0.0) >= 0.5
        });
        if v["status"] == "full" && leak {
            break v;
        }
        assert!(Instant::now() < deadline, "no full/leak diagnosis: {body}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let leaked = leaker.ids();
    assert_eq!(leaked.len(), 30, "the leak holds every free slot");

    // The diagnosis names the exact relieve command beside the redis-cli ones, in every format.
    let url = format!("http://{}", d.addr);
    let leak = diagnosis["findings"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|f| f["cause"] == "connection_leak")
        .cloned()
        .unwrap_or_default();
    let steps = leak["remediation"].as_array().cloned().unwrap_or_default();
    // The timeout it asks for comes from the leak's pace (it tries every 0.2 s while the
    // server refuses it) and the 30 slots its connections hold: they last about 6 s, so a
    // few seconds (issue 27).
    let prefix = format!(
        "redis-clients-exporter relieve --exporter {url} --target main --finding connection_leak --set timeout="
    );
    let timeout: i64 = steps
        .iter()
        .find_map(|s| {
            s["command"]
                .as_str()?
                .strip_prefix(prefix.as_str())?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no relieve step {prefix}N: {leak:#}"));
    assert!((2..=6).contains(&timeout), "{timeout}: {leak:#}");
    let relieve = format!("{prefix}{timeout}");
    let at = steps
        .iter()
        .position(|s| s["command"] == relieve.as_str())
        .unwrap_or_else(|| panic!("no relieve step {relieve}: {leak:#}"));
    assert!(
        steps[at]["why"]
            .as_str()
            .is_some_and(|w| w.contains("Works while the server is full")),
        "{leak:#}"
    );
    assert!(
        steps[..at].iter().any(|s| s["command"]
            .as_str()
            .is_some_and(|c| c.contains("redis-cli"))),
        "right after the redis-cli command: {leak:#}"
    );
    for (format, shown) in [
        ("text", format!("$ {relieve}")),
        ("markdown", format!("  {relieve}\n")),
        ("html", format!("<pre>{relieve}</pre>")),
    ] {
        // Each format is one poll's report: the leak is a cause (its commands shown, not a
        // note) once its connections have been idle a second; wait for a report that says so.
        let deadline = Instant::now() + WAIT;
        loop {
            let (_, body) = d.get(&format!("/diagnose?target=main&format={format}"));
            if body.contains(&shown) {
                break;
            }
            assert!(Instant::now() < deadline, "{format}:\n{body}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    // Preview: exactly the leaker's connections, by address and by the diagnosis' finding.
    let (status, by_addr) = d.post(
        "/relief/preview",
        OPS,
        &json!({"target": "main", "select": {"addr": "127.0.0.2"}, "set": {"timeout": 2}}),
    );
    assert_eq!(status, 200, "{by_addr:#}");
    assert_eq!(ids(&by_addr["connections"]), leaked, "{by_addr:#}");
    assert_eq!(by_addr["set"][0]["current"], 0, "{by_addr:#}");
    let token = by_addr["token"].as_str().expect("a token").to_string();
    let (status, by_finding) = d.post(
        "/relief/preview",
        OPS,
        &json!({"target": "main", "select": {"finding": "connection_leak"}}),
    );
    assert_eq!(status, 200, "{by_finding:#}");
    assert_eq!(ids(&by_finding["connections"]), leaked, "{by_finding:#}");
    // The printed command, run as printed (a preview): the same connections, nothing changed.
    let bin_dir = Path::new(BIN).parent().expect("bin dir");
    let out = Command::new("bash")
        .arg("-c")
        .arg(&relieve)
        .env(
            "PATH",
            format!(
                "{}:{}",
                bin_dir.display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .env("RELIEVE_USER", "ops")
        .env("RELIEVE_PASSWORD_FILE", files.ops_password_file())
        .output()
        .expect("bash");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("30 connection(s) would be closed"),
        "{stdout}"
    );
    for id in &leaked {
        assert!(stdout.contains(&format!("\n    {id} ")), "{id} in {stdout}");
    }
    assert!(
        stdout.contains(&format!("CONFIG SET timeout {timeout} (now 0)")),
        "{stdout}"
    );
    // Three previews changed nothing: still full, the same leak, timeout still 0.
    std::thread::sleep(Duration::from_millis(1200));
    let m = d.metrics();
    assert_eq!(
        (limit(&m), headroom(&m)),
        (Some(40.0), Some(0.0)),
        "{}",
        m.text
    );
    assert_eq!(
        m.get("redis_client_config_timeout_seconds", &[("target", "main")]),
        Some(0.0)
    );
    assert_eq!(leaker.ids(), leaked);

    // Execute: timeout 2 first, then exactly the previewed connections.
    let (status, done) = d.post(
        "/relief/execute",
        OPS,
        &json!({"target": "main", "token": token}),
    );
    assert_eq!(status, 200, "{done:#}");
    assert_eq!(done["result"], "ok", "{done:#}");
    assert_eq!(ids(&done["closed"]), leaked, "{done:#}");
    assert_eq!(done["set"][0]["parameter"], "timeout");
    assert_eq!(done["set"][0]["previous"], 0);
    let after = client_list(primary.port);
    let alive: Vec<u64> = after.iter().map(|c| c.0).collect();
    for id in &leaked {
        assert!(!alive.contains(id), "leaked {id} still open: {after:?}");
    }
    for id in healthy_ids.iter().chain([&replica_link, &exporter_conn]) {
        assert!(alive.contains(id), "{id} was closed: {after:?}");
    }
    d.wait_metrics("the replica still attached, the target up", |m| {
        m.get("redis_connected_slaves", &[("target", "main")]) == Some(1.0)
            && m.get("redis_up", &[("target", "main")]) == Some(1.0)
            && m.get("redis_client_config_timeout_seconds", &[("target", "main")]) == Some(2.0)
    });

    // Never the replica's link or the exporter's own connection, even when a selector names
    // them: they are listed as left out.
    let (status, v) = d.post(
        "/relief/preview",
        OPS,
        &json!({"target": "main", "select": {"addr": "127.0.0.1"}}),
    );
    assert_eq!(status, 200, "{v:#}");
    let listed = ids(&v["connections"]);
    assert!(
        !listed.contains(&replica_link) && !listed.contains(&exporter_conn),
        "{v:#}"
    );
    assert_eq!(
        (
            v["left_out"]["replica"].as_u64(),
            v["left_out"]["exporter"].as_u64()
        ),
        (Some(1), Some(1)),
        "{v:#}"
    );

    // The leak keeps re-grabbing; with timeout 2 Redis closes what it re-grabbed once idle.
    std::thread::sleep(Duration::from_millis(1000));
    let regrabbed: Vec<u64> = leaker
        .ids()
        .into_iter()
        .filter(|id| !leaked.contains(id))
        .collect();
    assert!(!regrabbed.is_empty(), "the leak re-grabbed nothing");
    std::thread::sleep(Duration::from_millis(3500));
    let alive: Vec<u64> = client_list(primary.port).iter().map(|c| c.0).collect();
    for id in &regrabbed {
        assert!(!alive.contains(id), "re-grabbed {id} not closed by timeout");
    }
    for id in healthy_ids.iter().chain([&replica_link, &exporter_conn]) {
        assert!(alive.contains(id), "{id} was closed by the timeout");
    }
    // Headroom came back and stays while the leak goes on: every scrape for 8 s.
    let until = Instant::now() + Duration::from_secs(8);
    let mut samples = Vec::new();
    while Instant::now() < until {
        let m = d.metrics();
        samples.push(headroom(&m).unwrap_or(-1.0));
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(
        samples.len() >= 20 && samples.iter().all(|h| *h >= 5.0),
        "headroom did not stay: {samples:?}"
    );
    assert!(
        leaker.ids().len() > leaked.len() + 10,
        "the leak kept trying throughout"
    );

    // Audit: one line per request, who and what, and the counter.
    let audit = d.audit();
    let exec = audit
        .iter()
        .find(|a| a["fields"]["action"] == "execute")
        .expect("an execute audit line");
    let f = &exec["fields"];
    assert_eq!(f["result"], "ok", "{exec}");
    assert_eq!(f["user"], "ops");
    assert!(
        f["peer"]
            .as_str()
            .is_some_and(|p| p.starts_with("127.0.0.1:")),
        "{exec}"
    );
    assert_eq!(f["target_label"], "main");
    let closed: Vec<u64> = f["closed"]
        .as_str()
        .unwrap_or("")
        .split(',')
        .filter_map(|i| i.parse().ok())
        .collect();
    let mut closed_sorted = closed.clone();
    closed_sorted.sort();
    assert_eq!(closed_sorted, leaked, "{exec}");
    assert_eq!(f["set"], "timeout=2 (was 0)", "{exec}");
    assert!(
        f["token"]
            .as_str()
            .is_some_and(|t| t.len() < 12 && token.starts_with(t.trim_end_matches('…'))),
        "{exec}"
    );
    assert_eq!(
        audit
            .iter()
            .filter(|a| a["fields"]["action"] == "preview")
            .count(),
        4,
        "{audit:#?}"
    );
    assert_eq!(d.actions("execute", "ok"), 1.0);
    assert_eq!(d.actions("preview", "ok"), 4.0);
    assert_no_secret(&d, &[token]);
    drop(leaker);
}

#[test]
fn relief_refuses_what_it_must_and_says_so_in_the_audit_log_and_the_counter() {
    let r = Redis::start(&["--requirepass", REDIS_PW]);
    let files = Files::new(
        r.port,
        "[relief]\nenabled = true\nusers = [\"ops\"]\nmax_connections_per_action = 5\n\
         max_actions_per_target_per_minute = 2\ntoken_ttl_seconds = 1.5\n\
         config_set_bounds = { timeout = [30, 3600] }\n",
    );
    let d = Daemon::start(&files.config());
    d.wait_metrics("up", |m| {
        m.get("redis_up", &[("target", "main")]) == Some(1.0)
    });
    let many: Vec<_> = (0..6)
        .map(|_| client(r.port, "127.0.0.4", "many").expect("client"))
        .collect();
    let mut victims: Vec<_> = (0..2)
        .map(|_| client(r.port, "127.0.0.5", "victim").expect("client"))
        .collect();
    let name = |n: &str| json!({"target": "main", "select": {"name": n}});
    let mut tokens = Vec::new();

    // No credentials, wrong ones: the HTTP side's basic auth refuses before relief.
    assert_eq!(d.post("/relief/preview", None, &name("victim")).0, 401);
    assert_eq!(
        d.post("/relief/preview", Some(("ops", "wrong")), &name("victim"))
            .0,
        401
    );
    // A user allowed to scrape is not allowed to act.
    let (status, v) = d.post("/relief/preview", Some(("prom", PROM_PW)), &name("victim"));
    assert_eq!((status, v["result"].as_str()), (403, Some("denied")), "{v}");
    // Values outside the bounds, and a parameter without bounds.
    let (status, v) = d.post(
        "/relief/preview",
        OPS,
        &json!({"target": "main", "set": {"timeout": 5}}),
    );
    assert_eq!(
        (status, v["result"].as_str()),
        (422, Some("out_of_bounds")),
        "{v}"
    );
    assert!(
        v["error"]
            .as_str()
            .is_some_and(|e| e.contains("[30, 3600]")),
        "{v}"
    );
    let (status, v) = d.post(
        "/relief/preview",
        OPS,
        &json!({"target": "main", "select": {"name": "victim"}, "set": {"maxclients": 100}}),
    );
    assert_eq!(
        (status, v["result"].as_str()),
        (422, Some("out_of_bounds")),
        "{v}"
    );
    // More connections than an action may close.
    let (status, v) = d.post("/relief/preview", OPS, &name("many"));
    assert_eq!(
        (status, v["result"].as_str()),
        (422, Some("too_many")),
        "{v}"
    );
    assert!(v["token"].is_null());
    // A stale token.
    let (status, v) = d.post("/relief/preview", OPS, &name("victim"));
    assert_eq!(status, 200, "{v}");
    let stale = v["token"].as_str().expect("token").to_string();
    std::thread::sleep(Duration::from_millis(1700));
    let (status, v) = d.post(
        "/relief/execute",
        OPS,
        &json!({"target": "main", "token": stale}),
    );
    assert_eq!(
        (status, v["result"].as_str()),
        (410, Some("stale_token")),
        "{v}"
    );
    tokens.push(stale);
    for (_, c) in &mut victims {
        assert!(!c.cmd(&["PING"]).is_error(), "a stale token closed nothing");
    }
    // A token is used once.
    let (_, v) = d.post("/relief/preview", OPS, &name("victim"));
    let token = v["token"].as_str().expect("token").to_string();
    let exec = json!({"target": "main", "token": token});
    let (status, v) = d.post("/relief/execute", OPS, &exec);
    assert_eq!((status, v["closed_count"].as_u64()), (200, Some(2)), "{v}");
    let (status, v) = d.post("/relief/execute", OPS, &exec);
    assert_eq!(
        (status, v["result"].as_str()),
        (409, Some("reused_token")),
        "{v}"
    );
    tokens.push(token);
    for (_, c) in &mut victims {
        c.send(&["PING"]);
        assert!(c.read().is_err(), "the victims were closed");
    }
    // Unknown token; a token of another user is not theirs (prom cannot act at all anyway).
    let (status, v) = d.post(
        "/relief/execute",
        OPS,
        &json!({"target": "main", "token": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}),
    );
    assert_eq!(
        (status, v["result"].as_str()),
        (404, Some("unknown_token")),
        "{v}"
    );
    // Rate: 2 actions a minute on this target; the third is refused and its token kept.
    let _v2 = client(r.port, "127.0.0.6", "v2").expect("client");
    let _v3 = client(r.port, "127.0.0.6", "v3").expect("client");
    let (_, v) = d.post("/relief/preview", OPS, &name("v2"));
    let t2 = v["token"].as_str().expect("token").to_string();
    let (status, v) = d.post(
        "/relief/execute",
        OPS,
        &json!({"target": "main", "token": t2}),
    );
    assert_eq!(status, 200, "{v}");
    let (_, v) = d.post("/relief/preview", OPS, &name("v3"));
    let t3 = v["token"].as_str().expect("token").to_string();
    let (status, v) = d.post(
        "/relief/execute",
        OPS,
        &json!({"target": "main", "token": t3}),
    );
    assert_eq!(
        (status, v["result"].as_str()),
        (429, Some("rate_limited")),
        "{v}"
    );
    tokens.extend([t2, t3]);
    // A target relief does not know; a malformed request.
    let (status, v) = d.post(
        "/relief/preview",
        OPS,
        &json!({"target": "elsewhere", "select": {"name": "x"}}),
    );
    assert_eq!(
        (status, v["result"].as_str()),
        (404, Some("unknown_target")),
        "{v}"
    );
    let (status, v) = d.post(
        "/relief/preview",
        OPS,
        &json!({"target": "main", "select": {"nmae": "x"}}),
    );
    assert_eq!(
        (status, v["result"].as_str()),
        (400, Some("invalid")),
        "{v}"
    );
    // The six connections of `many` were never touched.
    for (_, mut c) in many {
        assert!(!c.cmd(&["PING"]).is_error());
    }

    // The counter, by result; the audit line of each refusal, without secrets.
    for (action, result, n) in [
        ("preview", "denied", 1.0),
        ("preview", "out_of_bounds", 2.0),
        ("preview", "too_many", 1.0),
        ("preview", "ok", 4.0),
        ("preview", "invalid", 1.0),
        ("execute", "stale_token", 1.0),
        ("execute", "ok", 2.0),
        ("execute", "reused_token", 1.0),
        ("execute", "unknown_token", 1.0),
        ("execute", "rate_limited", 1.0),
    ] {
        assert_eq!(d.actions(action, result), n, "{action} {result}");
    }
    let m = d.metrics();
    assert!(
        m.all(
            "redis_clients_exporter_actions_total",
            &[("target", "elsewhere")]
        )
        .is_empty(),
        "an unknown target must not become a label"
    );
    let audit = d.audit();
    let line = |result: &str| {
        audit
            .iter()
            .find(|a| a["fields"]["result"] == result)
            .unwrap_or_else(|| panic!("no {result} audit line: {audit:#?}"))
            .clone()
    };
    let denied = line("denied");
    assert_eq!(denied["fields"]["user"], "prom", "{denied}");
    assert_eq!(denied["level"], "INFO");
    assert!(denied["fields"]["reason"]
        .as_str()
        .is_some_and(|m| m.contains("relief.users")));
    assert!(line("rate_limited")["fields"]["reason"]
        .as_str()
        .is_some_and(|m| m.contains("max_actions_per_target_per_minute")));
    assert!(line("unknown_target")["fields"]["target_label"] == "elsewhere");
    // The two 401s never reached relief, but a password being guessed must show: each left an
    // audit line (the claimed user, never the password) and a count.
    let refused: Vec<_> = audit
        .iter()
        .filter(|a| a["fields"]["reason"] == "basic-auth credentials refused")
        .collect();
    assert_eq!(refused.len(), 2, "{audit:#?}");
    assert_eq!(refused[0]["fields"]["user"], "-", "{audit:#?}");
    assert_eq!(refused[1]["fields"]["user"], "ops", "{audit:#?}");
    assert!(refused.iter().all(|a| a["level"] == "WARN"));
    let failures = m.all(
        "redis_clients_exporter_relief_auth_failures_total",
        &[("action", "preview")],
    );
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!(failures[0].1, 2.0, "{failures:?}");
    assert_eq!(
        audit.len(),
        18,
        "one line per request that reached relief, and one per refused credentials: {audit:#?}"
    );
    assert_no_secret(&d, &tokens);
}

#[test]
fn relief_is_off_by_default_and_refuses_to_start_without_authentication() {
    let r = Redis::start(&["--requirepass", REDIS_PW]);
    // Off: with basic auth but no [relief], an authenticated request is told so.
    let files = Files::new(r.port, "");
    let d = Daemon::start(&files.config());
    d.wait_metrics("up", |m| {
        m.get("redis_up", &[("target", "main")]) == Some(1.0)
    });
    let mut c = client(r.port, "127.0.0.7", "victim").expect("client").1;
    let (status, v) = d.post(
        "/relief/preview",
        OPS,
        &json!({"target": "main", "select": {"name": "victim"}}),
    );
    assert_eq!(
        (status, v["result"].as_str()),
        (403, Some("disabled")),
        "{v}"
    );
    assert!(v["error"]
        .as_str()
        .is_some_and(|e| e.contains("enabled = false")));
    assert!(!c.cmd(&["PING"]).is_error());
    // Off, the diagnosis prints no relieve command.
    let (_, text) = d.get("/diagnose?target=main&format=text");
    assert!(!text.contains("relieve"), "{text}");
    drop(d);

    // Enabled without basic auth, or with a relief user the web config does not have: exit 2,
    // naming the key and the file.
    let dir = tempfile::tempdir().expect("tempdir");
    for (relief, web, key) in [
        ("enabled = true", false, "relief.enabled"),
        ("enabled = true\nusers = [\"ops\"]", false, "relief.users"),
        ("enabled = true\nusers = [\"root\"]", true, "relief.users"),
        ("enabled = true", true, "relief.users"),
    ] {
        let files = Files::new(r.port, &format!("[relief]\n{relief}\n"));
        let body = std::fs::read_to_string(files.config()).expect("config");
        let body = if web {
            body
        } else {
            body.lines()
                .filter(|l| !l.starts_with("web_config_file"))
                .collect::<Vec<_>>()
                .join("\n")
        };
        let cfg = dir.path().join("c.toml");
        std::fs::write(&cfg, body).expect("write");
        let out = Command::new(BIN)
            .args(["--listen", "127.0.0.1:0", "--config"])
            .arg(&cfg)
            .output()
            .expect("run");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{relief}: {err}");
        assert!(
            err.contains(&format!("key `{key}`")) && err.contains(&cfg.display().to_string()),
            "{relief}: {err}"
        );
    }
}

#[test]
fn the_relieve_subcommand_previews_then_executes_against_a_running_exporter() {
    let r = Redis::start(&["--requirepass", REDIS_PW]);
    let files = Files::new(r.port, "[relief]\nenabled = true\nusers = [\"ops\"]\n");
    let d = Daemon::start(&files.config());
    d.wait_metrics("up", |m| {
        m.get("redis_up", &[("target", "main")]) == Some(1.0)
    });
    let mut victims: Vec<(u64, RespConn)> = (0..3)
        .map(|_| client(r.port, "127.0.0.8", "victim").expect("client"))
        .collect();
    let mut keep: Vec<(u64, RespConn)> = (0..2)
        .map(|_| client(r.port, "127.0.0.8", "keep").expect("client"))
        .collect();
    let relieve = |extra: &[&str]| {
        let out = Command::new(BIN)
            .args(["relieve", "--exporter", &format!("http://{}", d.addr)])
            .args(["--target", "main", "--auth-user", "ops", "--password-file"])
            .arg(files.ops_password_file())
            .args(extra)
            .env_remove("RELIEVE_EXPORTER")
            .output()
            .expect("run relieve");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, err) = relieve(&["--name", "victim", "--addr", "127.0.0.8"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("3 connection(s) would be closed"), "{out}");
    for (id, _) in &victims {
        assert!(out.contains(&format!("\n    {id} ")), "{id}: {out}");
    }
    assert!(out.contains("Nothing was changed"), "{out}");
    for (_, c) in victims.iter_mut().chain(keep.iter_mut()) {
        assert!(!c.cmd(&["PING"]).is_error(), "a preview closed nothing");
    }
    let (code, out, err) = relieve(&["--name", "victim", "--execute"]);
    assert_eq!(code, 0, "{out}{err}");
    // In the order Redis listed them (its client list, not always by id): compared as sets.
    let mut victim_ids: Vec<u64> = victims.iter().map(|(id, _)| *id).collect();
    victim_ids.sort_unstable();
    let mut closed: Vec<u64> = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("closed 3 connection(s): ids "))
        .unwrap_or_else(|| panic!("no closed line: {out}"))
        .split(' ')
        .map(|id| id.parse().expect("id"))
        .collect();
    closed.sort_unstable();
    assert_eq!(closed, victim_ids, "{out}");
    for (_, c) in &mut victims {
        c.send(&["PING"]);
        assert!(c.read().is_err(), "closed");
    }
    for (_, c) in &mut keep {
        assert!(!c.cmd(&["PING"]).is_error(), "kept");
    }
    // Execute re-checks: a previewed connection that ran a command since is left alone.
    let mut idlers: Vec<(u64, RespConn)> = (0..2)
        .map(|_| client(r.port, "127.0.0.9", "idler").expect("client"))
        .collect();
    std::thread::sleep(Duration::from_millis(1100));
    let (status, v) = d.post(
        "/relief/preview",
        OPS,
        &json!({"target": "main", "select": {"name": "idler", "min_idle_seconds": 1}}),
    );
    assert_eq!((status, v["count"].as_u64()), (200, Some(2)), "{v:#}");
    assert!(!idlers[1].1.cmd(&["PING"]).is_error());
    let token = v["token"].as_str().expect("token");
    let (status, v) = d.post(
        "/relief/execute",
        OPS,
        &json!({"target": "main", "token": token}),
    );
    assert_eq!(status, 200, "{v:#}");
    assert_eq!(ids(&v["closed"]), vec![idlers[0].0], "{v:#}");
    assert_eq!(v["skipped"][0]["id"].as_u64(), Some(idlers[1].0), "{v:#}");
    assert_eq!(v["skipped"][0]["reason"], "no longer matches", "{v:#}");
    assert!(!idlers[1].1.cmd(&["PING"]).is_error(), "the busy one stays");

    // Refused by the exporter: exit 1 with its reason. Bad arguments: exit 2.
    let (code, _, err) = relieve(&["--set", "maxclients=100"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("relief.config_set_bounds.maxclients is not configured"),
        "{err}"
    );
    let (code, _, err) = relieve(&["--set", "maxclients"]);
    assert_eq!(code, 2, "{err}");
    let out = Command::new(BIN)
        .args([
            "relieve",
            "--exporter",
            &format!("http://{}", d.addr),
            "--target",
            "main",
            "--name",
            "keep",
        ])
        .env_remove("RELIEVE_USER")
        .env_remove("RELIEVE_PASSWORD_FILE")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1), "no credentials: refused");
    assert!(String::from_utf8_lossy(&out.stderr).contains("401"));
    assert_no_secret(&d, &[]);
}

/// The diagnosis' printed relieve command, run as printed with `--execute`, against a leak
/// that re-grabs every freed slot (a try every 0.2 s): the timeout it sets comes from the
/// leak's pace, so Redis closes what is re-grabbed before the freed slots run out, and new
/// clients still connect 30 s later (issue 27; with the old fixed `timeout 300` the leak
/// filled the server again within seconds).
#[test]
fn the_printed_relief_holds_against_a_leak_that_regrabs() {
    let primary = Redis::start(&["--maxclients", "40", "--requirepass", REDIS_PW]);
    let files = Files::new(
        primary.port,
        "[relief]\nenabled = true\nusers = [\"ops\"]\nmax_connections_per_action = 50\n\
         config_set_bounds = { timeout = [2, 3600] }\n",
    );
    let d = Daemon::start(&files.config());
    d.wait_metrics("the target up", |m| {
        m.get("redis_up", &[("target", "main")]) == Some(1.0)
    });
    let healthy: Vec<(u64, RespConn)> = (0..6)
        .map(|_| client(primary.port, "127.0.0.3", "api").expect("healthy client"))
        .collect();
    let _busy = Busy::start(healthy.into_iter().map(|(_, c)| c).collect());
    let leaker = Leaker::start(primary.port);
    let url = format!("http://{}", d.addr);
    let prefix = format!("redis-clients-exporter relieve --exporter {url} --target main --finding connection_leak --set timeout=");
    let deadline = Instant::now() + WAIT;
    let relieve = loop {
        let (_, body) = d.get("/diagnose?target=main");
        let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        let printed = v["findings"][0]["remediation"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s["command"].as_str())
            .find(|c| c.starts_with(&prefix))
            .map(String::from);
        match printed {
            Some(c) if v["status"] == "full" && v["findings"][0]["cause"] == "connection_leak" => {
                break c
            }
            _ => {}
        }
        assert!(
            Instant::now() < deadline,
            "no relieve step on a full server: {body}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let bin_dir = Path::new(BIN).parent().expect("bin dir");
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!("{relieve} --execute"))
        .env(
            "PATH",
            format!(
                "{}:{}",
                bin_dir.display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .env("RELIEVE_USER", "ops")
        .env("RELIEVE_PASSWORD_FILE", files.ops_password_file())
        .output()
        .expect("bash");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{relieve}\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The leak keeps trying; every 10 s for 30 s a new client still gets a slot.
    let started = Instant::now();
    for at in [10, 20, 30] {
        let wake = Duration::from_secs(at);
        std::thread::sleep(wake.saturating_sub(started.elapsed()));
        let newcomer = client(primary.port, "127.0.0.6", "newcomer");
        assert!(
            newcomer.is_some(),
            "{at} s after `{relieve} --execute` a new client is refused; the leak holds {}",
            leaker.ids().len()
        );
    }
    assert!(leaker.ids().len() > 30, "the leak kept re-grabbing");
}

/// Relief as an operator lives it (issue 27 item 7): a failed basic-auth attempt on a relief
/// route leaves an audit line and a count; the preview's table starts with a summary per
/// client and lists them in order; `--execute --token` executes exactly the reviewed preview
/// (not a new one: a connection opened after the review is left alone) and only once.
#[test]
fn failed_credentials_are_audited_and_the_reviewed_preview_is_what_executes() {
    let r = Redis::start(&["--requirepass", REDIS_PW]);
    let files = Files::new(r.port, "[relief]\nenabled = true\nusers = [\"ops\"]\n");
    let d = Daemon::start(&files.config());
    d.wait_metrics("up", |m| {
        m.get("redis_up", &[("target", "main")]) == Some(1.0)
    });
    let body = json!({"target": "main", "select": {"name": "report-worker"}});
    for path in ["/relief/preview", "/relief/preview", "/relief/execute"] {
        let (status, _) = d.post(path, Some(("ops", "guess")), &body);
        assert_eq!(status, 401);
    }
    let m = d.wait_metrics("the failures counted", |m| {
        m.get(
            "redis_clients_exporter_relief_auth_failures_total",
            &[("action", "preview")],
        ) == Some(2.0)
    });
    assert_eq!(
        m.get(
            "redis_clients_exporter_relief_auth_failures_total",
            &[("action", "execute")]
        ),
        Some(1.0),
        "{}",
        m.text
    );
    let refused: Vec<Value> = d
        .audit()
        .into_iter()
        .filter(|a| a["fields"]["result"] == "unauthenticated" || a["result"] == "unauthenticated")
        .collect();
    assert_eq!(refused.len(), 3, "{:?}", d.audit());
    let line = refused[0].to_string();
    assert!(line.contains("ops") && !line.contains("guess"), "{line}");

    let mut workers: Vec<(u64, RespConn)> = (0..4)
        .map(|_| client(r.port, "127.0.0.3", "report-worker").expect("client"))
        .collect();
    let relieve = |extra: &[&str]| {
        let out = Command::new(BIN)
            .args(["relieve", "--exporter", &format!("http://{}", d.addr)])
            .args(["--target", "main", "--auth-user", "ops", "--password-file"])
            .arg(files.ops_password_file())
            .args(extra)
            .env_remove("RELIEVE_EXPORTER")
            .output()
            .expect("run relieve");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, err) = relieve(&["--name", "report-worker"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("4 connections of report-worker @ 127.0.0.3, idle "),
        "{out}"
    );
    let token = out
        .split("--execute --token ")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .and_then(|t| t.strip_suffix(';'))
        .unwrap_or_else(|| panic!("no token to execute: {out}"))
        .to_string();
    // Opened after the review: a new preview would include it; the reviewed one does not.
    let late = client(r.port, "127.0.0.3", "report-worker").expect("client");
    let (code, out, err) = relieve(&["--name", "report-worker", "--execute", "--token", &token]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("closed 4 connection(s)"), "{out}");
    for (_, c) in &mut workers {
        c.send(&["PING"]);
        assert!(c.read().is_err(), "closed");
    }
    let (_, mut late) = late;
    assert!(
        !late.cmd(&["PING"]).is_error(),
        "not in the reviewed preview"
    );
    // Once only.
    let (code, out, err) = relieve(&["--execute", "--token", &token]);
    assert_ne!(code, 0, "{out}{err}");
    // --token without --execute is a usage error.
    let (code, _, err) = relieve(&["--token", &token]);
    assert_eq!(code, 2, "{err}");
}
