//! What a hostile (or merely careless) Redis client can do to the exporter through the server
//! they share, and what the exporter's own connection must survive (issue 13, items 5, 6, 7, 9):
//! - a 4 MiB client name must not become a 4 MiB label on every scrape;
//! - an ACL user name (or an INFO line) with bytes that are not UTF-8 must not take the target
//!   down;
//! - a server whose `timeout` is shorter than the poll interval must not close the exporter's
//!   connection between polls, where a leaking client takes the freed slot;
//! - a target that is down logs one line per state change, not a warning per reconnect.
//!
//! Every wait is a generous bound (the machine may be small and busy); nothing measures speed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{config, http_get, Exporter, Metrics, Redis};
use redis_clients_exporter::redis::label::{bound, MAX_LABEL_BYTES};

const WAIT: Duration = Duration::from_secs(20);
const OUR_NAME: &str = "redis-clients-exporter";
const ERRORS: &str = "redis_clients_exporter_poll_errors_total";
const POLLS: &str = "redis_clients_exporter_polls_total";
const TRUNCATED: &str = "redis_clients_exporter_label_values_truncated_total";
const INVALID_UTF8: &str = "redis_clients_exporter_invalid_utf8_lines_total";

fn up(m: &Metrics, t: &str) -> Option<f64> {
    m.get("redis_up", &[("target", t)])
}

/// Failed polls of every kind but `config_unavailable` (a stage, not a failed poll).
fn failures(m: &Metrics, t: &str) -> f64 {
    m.all(ERRORS, &[("target", t)])
        .into_iter()
        .filter(|(l, _)| l.get("kind").map(String::as_str) != Some("config_unavailable"))
        .map(|(_, v)| v)
        .sum()
}

/// One RESP2 command with binary-safe arguments (the harness' `RespConn` takes `&str`).
fn resp(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Sends `args` and reads the first line of the reply (enough for +OK, -ERR, :n).
fn raw_cmd(s: &mut TcpStream, args: &[&[u8]]) -> std::io::Result<String> {
    s.write_all(&resp(args))?;
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while !line.ends_with(b"\r\n") {
        if s.read(&mut byte)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        line.push(byte[0]);
    }
    Ok(String::from_utf8_lossy(&line).trim_end().to_string())
}

fn raw_conn(port: u16) -> std::io::Result<TcpStream> {
    let s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    Ok(s)
}

// ---------------------------------------------------------------------------------------------
// Item 5: label values are bounded.

#[test]
fn a_4_mib_client_name_becomes_a_bounded_label_and_distinct_long_names_stay_distinct() {
    let r = Redis::start(&[]);
    // Two names of 4 MiB that differ only in their last byte: the hash must cover all of it.
    let body = "n".repeat(4 << 20);
    let name_a = format!("{body}a");
    let name_b = format!("{body}b");
    let _a = r.conn().named(&name_a);
    let _b = r.conn().named(&name_b);
    let mut t = r.target("long");
    t.poll_interval = Duration::from_secs(1);
    let exp = Exporter::start(config(vec![t], 10));

    let (cut_a, cut_b) = (bound(&name_a).into_owned(), bound(&name_b).into_owned());
    assert_ne!(cut_a, cut_b);
    let m = exp.wait_for("both long names counted", WAIT, |m| {
        let names = m.by("redis_client_connections_by_name", "long", "name");
        names.get(&cut_a) == Some(&1.0) && names.get(&cut_b) == Some(&1.0)
    });
    for (name, labels, _) in &m.series {
        for (k, v) in labels {
            assert!(
                v.len() <= MAX_LABEL_BYTES,
                "{name}{{{k}}} has a {}-byte value",
                v.len()
            );
        }
    }
    assert!(
        m.text.len() < 256 << 10,
        "/metrics is {} bytes long",
        m.text.len()
    );
    assert!(
        cut_a.starts_with(&body[..64]),
        "the cut value keeps the start of the name: {cut_a}"
    );
    assert!(m.get(TRUNCATED, &[("target", "long")]).unwrap_or(0.0) >= 2.0);

    // The diagnosis carries the bounded value too, in every format.
    for format in ["json", "html", "text", "markdown"] {
        let (status, page) = exp.get(&format!("/diagnose?target=long&format={format}"));
        assert_eq!(status, 200, "{format}: {page}");
        assert!(
            page.len() < 256 << 10,
            "/diagnose?format={format} is {} bytes long",
            page.len()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Item 6: bytes that are not UTF-8 are decoded lossily and counted.

#[test]
fn an_acl_user_name_that_is_not_utf8_keeps_the_target_up_and_is_counted() {
    let r = Redis::start(&[]);
    let mut admin = raw_conn(r.port).expect("connect");
    let user: &[u8] = b"bad\xffuser";
    assert_eq!(
        raw_cmd(
            &mut admin,
            &[b"ACL", b"SETUSER", user, b"on", b"nopass", b"+@all", b"~*"]
        )
        .expect("ACL SETUSER"),
        "+OK"
    );
    // A connection of that user, held: CLIENT LIST shows `user=bad\xffuser` on its line.
    let mut held = raw_conn(r.port).expect("connect");
    assert_eq!(
        raw_cmd(&mut held, &[b"AUTH", user, b"any"]).expect("AUTH"),
        "+OK"
    );
    // An error reply starting with that byte: INFO's errorstats then has `errorstat_\xff...`.
    let reply = raw_cmd(
        &mut admin,
        &[b"EVAL", b"return redis.error_reply('\\255BAD oops')", b"0"],
    )
    .expect("EVAL");
    assert!(reply.starts_with('-'), "{reply}");

    let exp = Exporter::start(config(vec![r.target("bytes")], 10));
    let lossy = "bad\u{fffd}user";
    let m = exp.wait_for("up with the user counted", WAIT, |m| {
        up(m, "bytes") == Some(1.0)
            && m.get(POLLS, &[("target", "bytes")]).unwrap_or(0.0) >= 3.0
            && m.by("redis_client_connections_by_user", "bytes", "user")
                .get(lossy)
                == Some(&1.0)
    });
    assert_eq!(failures(&m, "bytes"), 0.0, "{}", m.text);
    let invalid = |reply: &str| {
        m.get(INVALID_UTF8, &[("target", "bytes"), ("reply", reply)])
            .unwrap_or(0.0)
    };
    assert!(invalid("client_list") >= 1.0, "{}", m.text);
    assert!(invalid("info") >= 1.0, "{}", m.text);
}

// ---------------------------------------------------------------------------------------------
// Item 7: the exporter keeps its slot on a full server whose `timeout` is short.

/// Grabs every free slot of a server as soon as one frees, and keeps what it holds alive.
struct Leaker {
    stop: Arc<AtomicBool>,
    held: Arc<AtomicUsize>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Leaker {
    fn start(port: u16) -> Leaker {
        let stop = Arc::new(AtomicBool::new(false));
        let held = Arc::new(AtomicUsize::new(0));
        let (s, h) = (stop.clone(), held.clone());
        let thread = std::thread::spawn(move || {
            let mut conns: Vec<TcpStream> = Vec::new();
            let mut last_ping = Instant::now();
            while !s.load(Ordering::Relaxed) {
                // A full server accepts, answers -ERR max number of clients reached and closes.
                if let Ok(mut c) = raw_conn(port) {
                    if raw_cmd(&mut c, &[b"PING"]).is_ok_and(|r| r == "+PONG") {
                        conns.push(c);
                    }
                }
                if last_ping.elapsed() > Duration::from_millis(200) {
                    conns.retain_mut(|c| raw_cmd(c, &[b"PING"]).is_ok_and(|r| r == "+PONG"));
                    last_ping = Instant::now();
                }
                h.store(conns.len(), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        Leaker {
            stop,
            held,
            thread: Some(thread),
        }
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

/// The exporter's line in CLIENT LIST, read on a fresh connection.
fn our_line(r: &Redis) -> String {
    let list = r.conn().cmd(&["CLIENT", "LIST"]);
    let list = list.as_bulk().expect("CLIENT LIST").to_string();
    list.lines()
        .find(|l| l.contains(&format!(" name={OUR_NAME} ")))
        .expect("the exporter's connection")
        .to_string()
}

fn redis_version(r: &Redis) -> (u32, u32) {
    let info = r.conn().cmd(&["INFO", "server"]);
    let v = info
        .as_bulk()
        .and_then(|i| i.lines().find_map(|l| l.strip_prefix("redis_version:")))
        .expect("redis_version")
        .trim()
        .to_string();
    let mut parts = v.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

#[test]
fn a_short_server_timeout_and_a_leaker_on_a_full_server_do_not_take_the_exporters_slot() {
    let r = Redis::start(&["--timeout", "1", "--maxclients", "20"]);
    let mut t = r.target("full");
    // Three times the server's idle timeout: without keepalive the connection is closed
    // between every two polls.
    t.poll_interval = Duration::from_secs(3);
    let exp = Exporter::start(config(vec![t], 10));
    exp.wait_for("up", WAIT, |m| up(m, "full") == Some(1.0));

    // Once connected (and INFO has told the version), the connection is exempt from client
    // eviction (7.0+, flag e) and from LRU/LFU touches (7.2+, flag T).
    let version = redis_version(&r);
    let deadline = Instant::now() + WAIT;
    loop {
        let line = our_line(&r);
        let flags = line
            .split(' ')
            .find_map(|f| f.strip_prefix("flags="))
            .unwrap_or_default()
            .to_string();
        let want_e = version >= (7, 0);
        let want_t = version >= (7, 2);
        if flags.contains('e') == want_e && flags.contains('T') == want_t {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "version {version:?}: flags {flags:?} on {line}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let leaker = Leaker::start(r.port);
    let start = exp.scrape();
    let polls_before = start.get(POLLS, &[("target", "full")]).unwrap_or(0.0);
    let failures_before = failures(&start, "full");
    // Five polls' worth, sampled: the exporter must be up in every sample.
    let until = Instant::now() + Duration::from_secs(15);
    let mut full_seen = false;
    let mut samples = 0;
    while Instant::now() < until {
        let m = exp.scrape();
        assert_eq!(
            up(&m, "full"),
            Some(1.0),
            "lost the slot after {samples} samples (the leaker holds {}):\n{}",
            leaker.held.load(Ordering::Relaxed),
            m.text
        );
        full_seen |= m.get("redis_connected_clients", &[("target", "full")]) == Some(20.0);
        samples += 1;
        std::thread::sleep(Duration::from_millis(250));
    }
    let end = exp.scrape();
    assert!(
        full_seen,
        "the leaker never filled the server (it holds {})",
        leaker.held.load(Ordering::Relaxed)
    );
    assert_eq!(failures(&end, "full"), failures_before, "{}", end.text);
    let polls = end.get(POLLS, &[("target", "full")]).unwrap_or(0.0) - polls_before;
    assert!(polls >= 4.0, "only {polls} polls in 15 s");
    drop(leaker);
}

/// The id of the exporter's connection, from its CLIENT LIST line.
fn our_id(r: &Redis) -> String {
    let line = our_line(r);
    line.split(' ')
        .find_map(|f| f.strip_prefix("id="))
        .expect("id")
        .to_string()
}

#[test]
fn without_config_and_ping_rights_the_connection_is_still_kept_and_polls_keep_their_pace() {
    // CONFIG forbidden: the server's timeout is unknown, so the keepalive falls back to one
    // PING a second; PING forbidden too: the refusal still resets the server's idle clock, and
    // must not be taken for a broken connection (a poll per PING).
    let r = Redis::start(&["--timeout", "2"]);
    let setuser = [
        "ACL",
        "SETUSER",
        "watcher",
        "on",
        ">w4tch-pw",
        "+info",
        "+client|list",
        "+client|setname",
        "+client|id",
    ];
    assert_eq!(r.conn().cmd(&setuser).as_simple(), Some("OK"));
    let mut t = r.target("acl");
    t.username = Some("watcher".into());
    t.password = redis_clients_exporter::config::Secret::Value("w4tch-pw".into());
    // Twice the server's timeout: without keepalive the connection is closed between polls.
    t.poll_interval = Duration::from_secs(4);
    let exp = Exporter::start(config(vec![t], 10));
    let first = exp.wait_for("up", WAIT, |m| up(m, "acl") == Some(1.0));
    assert_eq!(
        first.get("redis_client_config_available", &[("target", "acl")]),
        Some(0.0)
    );
    let id = our_id(&r);
    let polls_before = first.get(POLLS, &[("target", "acl")]).unwrap_or(0.0);
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(10) {
        let m = exp.scrape();
        assert_eq!(up(&m, "acl"), Some(1.0), "{}", m.text);
        std::thread::sleep(Duration::from_millis(250));
    }
    let end = exp.scrape();
    assert_eq!(failures(&end, "acl"), 0.0, "{}", end.text);
    assert_eq!(our_id(&r), id, "the exporter's connection was replaced");
    let polls = end.get(POLLS, &[("target", "acl")]).unwrap_or(0.0) - polls_before;
    let bound = started.elapsed().as_secs_f64() / 4.0 + 2.0;
    assert!(
        polls >= 2.0 && polls <= bound,
        "{polls} polls in {:?} at one per 4 s",
        started.elapsed()
    );
}

// ---------------------------------------------------------------------------------------------
// Item 9: a down target logs once per state change.

#[test]
fn a_closed_port_logs_one_line_per_state_change_not_a_warning_per_reconnect() {
    let closed = common::free_port();
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        format!(
            "[[targets]]\naddress = \"redis://127.0.0.1:{closed}\"\nalias = \"closed\"\npoll_interval_seconds = 1\n"
        ),
    )
    .expect("write config");
    let mut child = Command::new(env!("CARGO_BIN_EXE_redis-clients-exporter"))
        .arg("--config")
        .arg(&cfg)
        .args(["--listen", "127.0.0.1:0", "--log-format", "json"])
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn exporter");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut logs = Vec::new();
    let mut addr: Option<std::net::SocketAddr> = None;
    let mut attempts = 0.0;
    // Backoff 250 ms, 500 ms, then 1 s (the poll interval caps it): several attempts.
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline && attempts < 5.0 {
        while let Ok(line) = rx.recv_timeout(Duration::from_millis(100)) {
            if line.contains("\"listening\"") {
                addr = line
                    .split("\"addr\":\"")
                    .nth(1)
                    .and_then(|r| r.split('"').next())
                    .and_then(|a| a.parse().ok());
            }
            logs.push(line);
        }
        if let Some(addr) = addr {
            let (_, body) = http_get(addr, "/metrics");
            attempts = Metrics::parse(&body)
                .get(ERRORS, &[("target", "closed"), ("kind", "connect")])
                .unwrap_or(0.0);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    while let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
        logs.push(line);
    }
    let all = logs.join("\n");
    assert!(attempts >= 5.0, "only {attempts} attempts:\n{all}");
    let down = logs.iter().filter(|l| l.contains("target is down")).count();
    assert_eq!(down, 1, "{all}");
    let warnings: Vec<&String> = logs
        .iter()
        .filter(|l| l.contains("\"level\":\"WARN\"") || l.contains("\"level\":\"ERROR\""))
        .collect();
    assert_eq!(
        warnings.len(),
        1,
        "one warning (target is down) expected:\n{all}"
    );
    assert!(!all.contains("already stopped"), "{all}");
}
