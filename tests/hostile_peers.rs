//! Issue 25: the exporter binary against hostile peers that look like Redis (tests/support/
//! fake_redis.rs records every byte and answers what a hostile server, or anything on a plain
//! TCP path, could): its memory stays under the shipped container limit whatever they send
//! (item 1, item 5), a cluster reply cannot flood it with nodes or long labels (item 3), and
//! nothing they send forges or colours a log line (item 4).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "support/fake_redis.rs"]
mod fake_redis;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{free_port, http_get, Metrics, Redis};
use fake_redis::{container_limit_kib, memory_kib, FakeRedis, Hostile};

const WAIT: Duration = Duration::from_secs(30);

/// The exporter binary (another build with `HOSTILE_PEERS_EXPORTER`, to show a test failing
/// on it), its HTTP address and every line it logs.
struct Exporter {
    child: Child,
    addr: SocketAddr,
    logs: Arc<Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
}

impl Exporter {
    fn start(config: &str) -> Exporter {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("config.toml");
        std::fs::write(&path, config).expect("write config");
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
        let bin = std::env::var("HOSTILE_PEERS_EXPORTER")
            .unwrap_or_else(|_| env!("CARGO_BIN_EXE_redis-clients-exporter").to_string());
        let mut child = Command::new(bin)
            .arg("--config")
            .arg(&path)
            .args(["--listen", &addr.to_string(), "--log-format", "text"])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn exporter");
        let stderr = child.stderr.take().expect("stderr");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&logs);
        std::thread::spawn(move || {
            // Split on '\n' only, bytes as they are: a forged line must show as a line.
            for line in BufReader::new(stderr).split(b'\n').map_while(Result::ok) {
                sink.lock()
                    .expect("lock")
                    .push(String::from_utf8_lossy(&line).into_owned());
            }
        });
        let deadline = Instant::now() + WAIT;
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(Instant::now() < deadline, "the exporter never listened");
            std::thread::sleep(Duration::from_millis(50));
        }
        Exporter {
            child,
            addr,
            logs,
            _dir: dir,
        }
    }

    fn get(&self, path: &str) -> (u16, String) {
        http_get(self.addr, path)
    }

    fn metrics(&self) -> Metrics {
        let (status, body) = self.get("/metrics");
        assert_eq!(status, 200, "{body}");
        Metrics::parse(&body)
    }

    fn wait_for(&self, what: &str, cond: impl Fn(&Metrics) -> bool) -> Metrics {
        let deadline = Instant::now() + WAIT;
        loop {
            let m = self.metrics();
            if cond(&m) {
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

    /// Peak and current RSS in KiB.
    fn memory(&self) -> (u64, u64) {
        memory_kib(self.child.id()).expect("/proc/PID/status")
    }

    fn logs(&self) -> Vec<String> {
        self.logs.lock().expect("lock").clone()
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn errors(m: &Metrics, target: &str) -> f64 {
    ["protocol", "timeout", "connect"]
        .iter()
        .filter_map(|k| {
            m.get(
                "redis_clients_exporter_poll_errors_total",
                &[("target", target), ("kind", k)],
            )
        })
        .sum()
}

/// Items 1 and 5: every hostile reply of the suite at once (this file's, tests/reliability.rs's
/// garbage, tests/hostile_clients.rs's 4 MiB names), on configured targets and `/scrape`
/// targets: the exporter's peak RSS (VmHWM) stays under the shipped container limit, the hostile
/// targets are down with errors, and real Redis servers beside them stay up.
#[test]
fn every_hostile_reply_at_once_stays_under_the_container_limit() {
    let real = Redis::start(&[]);
    let peers: Vec<(&str, FakeRedis)> = vec![
        (
            "info_300mb_a",
            FakeRedis::start(Hostile::HugeInfo {
                announced: 300 << 20,
            }),
        ),
        (
            "info_300mb_b",
            FakeRedis::start(Hostile::HugeInfo {
                announced: 300 << 20,
            }),
        ),
        (
            "info_2mb",
            FakeRedis::start(Hostile::HugeInfo { announced: 2 << 20 }),
        ),
        (
            "config_100mb",
            FakeRedis::start(Hostile::HugeConfig {
                announced: 100 << 20,
            }),
        ),
        (
            "elements_1m",
            FakeRedis::start(Hostile::ManyElements { count: 1 << 20 }),
        ),
        (
            "drip_a",
            FakeRedis::start(Hostile::SlowDrip {
                announced: 1000 << 10,
                drip: 4096,
            }),
        ),
        (
            "drip_b",
            FakeRedis::start(Hostile::SlowDrip {
                announced: 1000 << 10,
                drip: 4096,
            }),
        ),
        // Within a CLIENT LIST's own bound (one client reported, room for long names): only
        // the process-wide budget keeps six of them from adding up.
        (
            "list_16mb_a",
            FakeRedis::start(Hostile::HugeClientList { bytes: 16 << 20 }),
        ),
        (
            "list_16mb_b",
            FakeRedis::start(Hostile::HugeClientList { bytes: 16 << 20 }),
        ),
        (
            "list_16mb_c",
            FakeRedis::start(Hostile::HugeClientList { bytes: 16 << 20 }),
        ),
        (
            "list_16mb_d",
            FakeRedis::start(Hostile::HugeClientList { bytes: 16 << 20 }),
        ),
        (
            "list_16mb_e",
            FakeRedis::start(Hostile::HugeClientList { bytes: 16 << 20 }),
        ),
        (
            "list_16mb_f",
            FakeRedis::start(Hostile::HugeClientList { bytes: 16 << 20 }),
        ),
        (
            "list_300mb",
            FakeRedis::start(Hostile::HugeClientList { bytes: 300 << 20 }),
        ),
        // tests/reliability.rs's garbage, from a peer rather than through a proxy.
        ("junk", raw_info(junk(1 << 20))),
        (
            "absurd_length",
            raw_info(b"$9223372036854775807\r\n".to_vec()),
        ),
        ("array_2_31", raw_info(b"*2147483648\r\n".to_vec())),
        ("deep", raw_info(b"*1\r\n".repeat(200_000))),
        ("wrong_type", raw_info(b":1\r\n".to_vec())),
        // An empty line used to panic the poller's task (found by tests/resp_properties.rs).
        ("empty_line", raw_info(b"\r\n".to_vec())),
    ];
    // tests/hostile_clients.rs's clients named with 4 MiB each, on a real Redis.
    let named = Redis::start(&[]);
    let _long_names: Vec<_> = (0..3u8)
        .map(|i| named.conn().named(&format!("{}{i}", "n".repeat(4 << 20))))
        .collect();
    // Asked for through /scrape by whoever can reach the exporter.
    let scraped: Vec<FakeRedis> = (0..2)
        .map(|_| {
            FakeRedis::start(Hostile::HugeInfo {
                announced: 300 << 20,
            })
        })
        .collect();
    let mut config = format!(
        "poll_interval_seconds = 0.5\nconnect_timeout_seconds = 2\ncommand_timeout_seconds = 2\n\
         scrape_allow = [\"127.0.0.1:1-65535\"]\n\
         [[targets]]\naddress = \"redis://127.0.0.1:{}\"\nalias = \"real\"\n\
         [[targets]]\naddress = \"redis://127.0.0.1:{}\"\nalias = \"long_names\"\n",
        real.port, named.port
    );
    for (alias, p) in &peers {
        config.push_str(&format!(
            "[[targets]]\naddress = \"redis://127.0.0.1:{}\"\nalias = \"{alias}\"\n",
            p.port
        ));
    }
    let exp = Exporter::start(&config);
    let scrapers: Vec<_> = scraped
        .iter()
        .map(|p| {
            let (addr, port) = (exp.addr, p.port);
            std::thread::spawn(move || {
                for _ in 0..4 {
                    let _ = http_get(addr, &format!("/scrape?target=redis://127.0.0.1:{port}"));
                }
            })
        })
        .collect();
    // Every hostile target has been polled, refused, and polled again.
    let m = exp.wait_for("every hostile target failing twice, the real one up", |m| {
        m.get("redis_up", &[("target", "real")]) == Some(1.0)
            && m.get("redis_up", &[("target", "long_names")]) == Some(1.0)
            && peers.iter().all(|(alias, _)| errors(m, alias) >= 2.0)
    });
    for s in scrapers {
        s.join().expect("scraper");
    }
    for (alias, p) in &peers {
        assert_eq!(
            m.get("redis_up", &[("target", alias)]),
            Some(0.0),
            "{alias}"
        );
        assert!(p.accepted() >= 1, "{alias}");
    }
    for p in &scraped {
        assert!(p.accepted() >= 1);
    }
    // A few more rounds of everything, with the real target polled all along.
    std::thread::sleep(Duration::from_secs(3));
    exp.wait_for("the real target up", |m| {
        m.get("redis_up", &[("target", "real")]) == Some(1.0)
    });
    let (peak, now) = exp.memory();
    let limit = container_limit_kib();
    eprintln!("exporter VmHWM {peak} KiB, VmRSS {now} KiB, container limit {limit} KiB");
    assert!(
        peak < limit,
        "the exporter's peak RSS {peak} KiB passed the shipped container limit {limit} KiB"
    );
}

/// Deterministic bytes that are not RESP (a fixed xorshift sequence).
fn junk(n: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn raw_info(bytes: Vec<u8>) -> FakeRedis {
    FakeRedis::start(Hostile::RawInfo(Arc::new(bytes)))
}

/// A `CLUSTER SHARDS` reply (RESP2) of `masters` shards of one master each at `host(i)`.
fn cluster_shards(masters: usize, host: impl Fn(usize) -> (String, u16)) -> Vec<u8> {
    let bulk = |s: &str| format!("${}\r\n{s}\r\n", s.len());
    let mut out = format!("*{masters}\r\n");
    for i in 0..masters {
        let (endpoint, port) = host(i);
        let slot = (i % 16384).to_string();
        out.push_str("*4\r\n");
        out.push_str(&bulk("slots"));
        out.push_str(&format!("*2\r\n:{slot}\r\n:{slot}\r\n"));
        out.push_str(&bulk("nodes"));
        out.push_str("*1\r\n*12\r\n");
        for (k, v) in [
            ("id", format!("{i:040}")),
            ("port", port.to_string()),
            ("ip", "127.0.0.1".to_string()),
            ("endpoint", endpoint),
            ("role", "master".to_string()),
            ("health", "online".to_string()),
        ] {
            out.push_str(&bulk(k));
            out.push_str(&bulk(&v));
        }
    }
    out.into_bytes()
}

/// Item 3: a cluster seed naming 20,000 masters, 40 of them with 60 kB endpoints and a few
/// with endpoints that are not host names: the exporter polls at most `discovery_max_nodes`,
/// counts and logs the rest, never uses a bad address, and every label stays bounded.
#[test]
fn a_cluster_reply_naming_20000_masters_and_60_kb_endpoints_is_bounded() {
    let closed = free_port();
    let long_name = [
        "a".repeat(63),
        "b".repeat(63),
        "c".repeat(63),
        "d".repeat(50),
    ]
    .join(".");
    let hostile = [
        "127.0.0.1\n2026-01-01T00:00:00.000000Z  INFO forged: line".to_string(),
        "user:pw@127.0.0.1".to_string(),
        "127.0.0.1/x".to_string(),
        "0.0.0.0".to_string(),
    ];
    let shards = cluster_shards(20_000, |i| match i {
        0..40 => ("e".repeat(60_000), closed),
        40..44 => (hostile[i - 40].clone(), closed),
        44 => (long_name.clone(), closed),
        _ => ("127.0.0.1".to_string(), (10_000 + i % 50_000) as u16),
    });
    let seed = FakeRedis::start(Hostile::Cluster {
        shards: Arc::new(shards),
        nodes: Arc::new(Vec::new()),
    });
    let exp = Exporter::start(&format!(
        "poll_interval_seconds = 1\nconnect_timeout_seconds = 1\ncommand_timeout_seconds = 5\n\
         discovery_max_nodes = 50\n\
         [[targets]]\naddress = \"redis://127.0.0.1:{}\"\ncluster = true\nalias = \"flood\"\n",
        seed.port
    ));
    let m = exp.wait_for("the dropped nodes counted", |m| {
        m.get(
            "redis_clients_exporter_discovery_nodes_dropped_total",
            &[("source", "group:flood"), ("reason", "limit")],
        )
        .is_some()
    });
    let dropped = |reason: &str| {
        m.get(
            "redis_clients_exporter_discovery_nodes_dropped_total",
            &[("source", "group:flood"), ("reason", reason)],
        )
        .unwrap_or(0.0)
    };
    // 40 too long, 4 not host:port; the long but valid name is polled (with a bounded label).
    assert!(dropped("address") >= 44.0, "{}", m.text);
    assert!(dropped("limit") >= (20_000 - 44 - 50) as f64, "{}", m.text);
    let (status, body) = exp.get("/metrics");
    assert_eq!(status, 200);
    let up_series = body.lines().filter(|l| l.starts_with("redis_up{")).count();
    assert!(up_series <= 50, "{up_series} nodes polled");
    assert!(body.len() < 2 << 20, "/metrics is {} bytes", body.len());
    for line in body.lines().filter(|l| !l.starts_with('#')) {
        let labels = line.split_once('{').map_or("", |(_, r)| r);
        for value in labels.split("=\"").skip(1) {
            let value = value.split('"').next().unwrap_or("");
            assert!(
                value.len() <= 128,
                "a label of {} bytes: {line:.300}",
                value.len()
            );
        }
    }
    assert!(!body.contains("forged"), "a bad address became a target");
    let logs = exp.logs().join("\n");
    assert_eq!(
        logs.matches("discovery named nodes the exporter will not poll")
            .count(),
        1,
        "{logs:.4000}"
    );
    let (peak, _) = exp.memory();
    assert!(peak < container_limit_kib(), "VmHWM {peak} KiB");
}

/// What a hostile server puts in its error replies to forge or colour a log line: an OSC title,
/// a screen clear, a bidi override, a line separator, a carriage return and a fake line.
const HOSTILE_TEXT: &str = "ERR boom\u{1b}]0;pwned\u{7}\u{1b}[2J\u{202e}desrever\u{2066}\u{2028}\u{2029}\r2026-01-01T00:00:00.000000Z  INFO forged: line";

/// Item 4: every log site that carries a value from the network, in the binary's text log: an
/// error reply to INFO (target down), to the handshake (target down at connect), to CONFIG GET
/// (CONFIG unavailable), to CLIENT NO-EVICT (the exemption refused), to CLUSTER SHARDS
/// (discovery failed), and a discovered endpoint holding a newline and a fake line. No line is
/// forged, no terminal control or bidi character reaches the log, and each value is there,
/// escaped.
#[test]
fn values_from_the_network_cannot_forge_log_lines() {
    let closed = free_port();
    let info = FakeRedis::start(Hostile::ErrorText(HOSTILE_TEXT.to_string()));
    let handshake = FakeRedis::start(Hostile::RefuseHandshake(HOSTILE_TEXT.to_string()));
    let config = FakeRedis::start(Hostile::ErrorOn {
        command: "CONFIG",
        text: HOSTILE_TEXT.to_string(),
    });
    let no_evict = FakeRedis::start(Hostile::ErrorOn {
        command: "CLIENT NO-EVICT",
        text: HOSTILE_TEXT.to_string(),
    });
    let shards_error = FakeRedis::start(Hostile::ErrorOn {
        command: "CLUSTER",
        text: HOSTILE_TEXT.to_string(),
    });
    let forged_endpoint = format!(
        "127.0.0.1\n2026-01-01T00:00:00.000000Z  INFO forged: endpoint{}",
        "\u{1b}[31m"
    );
    let endpoint_seed = FakeRedis::start(Hostile::Cluster {
        shards: Arc::new(cluster_shards(2, |i| {
            if i == 0 {
                (forged_endpoint.clone(), closed)
            } else {
                ("127.0.0.1".to_string(), closed)
            }
        })),
        nodes: Arc::new(Vec::new()),
    });
    let mut cfg = String::from(
        "poll_interval_seconds = 0.5\nconnect_timeout_seconds = 1\ncommand_timeout_seconds = 1\n\
         discovery_interval_seconds = 1\n",
    );
    for (alias, p) in [
        ("info", &info),
        ("handshake", &handshake),
        ("config", &config),
        ("no_evict", &no_evict),
    ] {
        cfg.push_str(&format!(
            "[[targets]]\naddress = \"redis://127.0.0.1:{}\"\nalias = \"{alias}\"\n",
            p.port
        ));
    }
    for (alias, p) in [("shards", &shards_error), ("endpoint", &endpoint_seed)] {
        cfg.push_str(&format!(
            "[[targets]]\naddress = \"redis://127.0.0.1:{}\"\ncluster = true\nalias = \"{alias}\"\n",
            p.port
        ));
    }
    let exp = Exporter::start(&cfg);
    let sites = [
        "target is down",
        "CONFIG GET unavailable",
        "the server refused to exempt",
        "discovery failed",
    ];
    let deadline = Instant::now() + WAIT;
    let logs = loop {
        let logs = exp.logs();
        let hit = |site: &str| logs.iter().filter(|l| l.contains(site)).count();
        // Two targets go down (INFO, handshake), the discovered node at the closed port too.
        if sites.iter().all(|s| hit(s) >= 1) && hit("target is down") >= 3 {
            break logs;
        }
        assert!(
            Instant::now() < deadline,
            "not every log site was hit:\n{}",
            logs.join("\n")
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let all = logs.join("\n");
    for line in &logs {
        assert!(
            !line.starts_with("2026-01-01"),
            "a forged line: {line:?}\n{all}"
        );
        for c in line.chars() {
            assert!(
                !c.is_control()
                    && !matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{2028}' | '\u{2029}'),
                "{c:?} reached the log: {line:?}"
            );
        }
    }
    // Every site printed the value, escaped.
    for site in sites {
        assert!(
            logs.iter()
                .any(|l| l.contains(site) && l.contains("\\u{1b}]0;pwned\\u{7}")),
            "{site}: the value is missing or not escaped\n{all}"
        );
    }
}
