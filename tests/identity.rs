//! The identity layer (issue 29) against real processes: a redis-server with clients from
//! "pod" addresses (127.0.x.y), a real Prometheus scraping a kube-state-metrics exposition this
//! test serves (metric names and labels as kube-state-metrics 2.x writes them: its
//! docs/metrics/workload/pod-metrics.md and replicaset-metrics.md), and the exporter, in-process,
//! configured through a TOML file like an operator's.
//!
//! - a fleet leak over pods of one Deployment on two "nodes" (127.0.1.x, 127.0.2.x), with
//!   another Deployment's pod on the first node: the diagnosis names the Deployment;
//! - a pod address reused by a new pod: the old pod's connections stay an address;
//! - Prometheus stopped: the exporter keeps polling (`redis_up 1`), says the source is down
//!   (metric and report) and falls back to addresses;
//! - the static map: names a VM's connections, a bad line fails the configuration (exit 2)
//!   naming the file and the line, and a reload brings a changed file.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{http_get, Metrics, Prometheus, Redis, RespConn};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_redis-clients-exporter");

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A kube-state-metrics stand-in: serves `body` at any path, over HTTP/1.0-style responses.
struct Ksm {
    port: u16,
    stop: Arc<AtomicBool>,
}

impl Ksm {
    fn start(body: Arc<Mutex<String>>) -> Ksm {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let s = Arc::clone(&stop);
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                let Ok((mut c, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                };
                let _ = c.set_nonblocking(false);
                let _ = c.set_read_timeout(Some(Duration::from_secs(2)));
                let mut req = Vec::new();
                let mut buf = [0u8; 1024];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match c.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                let text = body.lock().unwrap().clone();
                let _ = write!(
                    c,
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
                    text.len()
                );
            }
        });
        Ksm { port, stop }
    }
}

impl Drop for Ksm {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// One pod as kube-state-metrics 2.x exposes it.
struct Pod<'a> {
    namespace: &'a str,
    name: &'a str,
    ip: &'a str,
    node: &'a str,
    created_by: (&'a str, &'a str),
    start: u64,
}

fn exposition(pods: &[Pod<'_>], replicasets: &[(&str, &str, &str)]) -> String {
    let mut s = String::from(
        "# HELP kube_pod_info [STABLE] Information about pod.\n# TYPE kube_pod_info gauge\n",
    );
    for p in pods {
        s += &format!(
            "kube_pod_info{{namespace=\"{}\",pod=\"{}\",uid=\"uid-{}\",host_ip=\"10.0.0.{}\",pod_ip=\"{}\",node=\"{}\",created_by_kind=\"{}\",created_by_name=\"{}\",priority_class=\"\",host_network=\"false\"}} 1\n",
            p.namespace, p.name, p.name, p.node.len(), p.ip, p.node, p.created_by.0, p.created_by.1
        );
    }
    s += "# HELP kube_replicaset_owner [STABLE] Information about the ReplicaSet's owner.\n# TYPE kube_replicaset_owner gauge\n";
    for (ns, rs, deployment) in replicasets {
        s += &format!(
            "kube_replicaset_owner{{namespace=\"{ns}\",replicaset=\"{rs}\",owner_kind=\"Deployment\",owner_name=\"{deployment}\",owner_is_controller=\"true\"}} 1\n"
        );
    }
    s += "# HELP kube_pod_start_time [STABLE] Start time in unix timestamp for a pod.\n# TYPE kube_pod_start_time gauge\n";
    for p in pods {
        s += &format!(
            "kube_pod_start_time{{namespace=\"{}\",pod=\"{}\",uid=\"uid-{}\"}} {}\n",
            p.namespace, p.name, p.name, p.start
        );
    }
    s
}

/// Client connections per source address now (unix sockets, ours and this check's left out).
fn by_source(r: &Redis) -> std::collections::BTreeMap<String, usize> {
    let mut c = RespConn::connect_unix(&r.socket_path());
    let list = c.cmd(&["CLIENT", "LIST"]);
    let mut out = std::collections::BTreeMap::new();
    for line in list.as_bulk().unwrap_or_default().lines() {
        let addr = line
            .split(' ')
            .find_map(|f| f.strip_prefix("addr="))
            .unwrap_or("");
        if addr.starts_with('/') || line.contains("name=redis-clients-exporter ") {
            continue;
        }
        if let Some((ip, _)) = addr.rsplit_once(':') {
            *out.entry(ip.to_string()).or_default() += 1;
        }
    }
    out
}

fn conns(r: &Redis, ip: &str, n: usize) -> Vec<RespConn> {
    (0..n).map(|_| r.conn_from(ip)).collect()
}

/// Pings every connection every 300 ms (busy pools), until dropped.
struct Busy(Arc<AtomicBool>);

impl Busy {
    fn start(mut c: Vec<RespConn>) -> Busy {
        let stop = Arc::new(AtomicBool::new(false));
        let s = Arc::clone(&stop);
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                for x in &mut c {
                    x.send(&["PING"]);
                }
                for x in &mut c {
                    let _ = x.read();
                }
                std::thread::sleep(Duration::from_millis(300));
            }
        });
        Busy(stop)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// The exporter in-process, from a configuration file.
struct Daemon {
    rt: tokio::runtime::Runtime,
    running: Option<redis_clients_exporter::Running>,
    addr: std::net::SocketAddr,
}

impl Daemon {
    fn start(file: &Path) -> Daemon {
        let cfg = load(file);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let running = rt.block_on(redis_clients_exporter::start(cfg)).unwrap();
        let addr = running.addr;
        Daemon {
            rt,
            running: Some(running),
            addr,
        }
    }

    fn reload(&self, file: &Path) {
        let cfg = load(file);
        let r = self.running.as_ref().unwrap();
        self.rt.block_on(r.reload(cfg));
    }

    fn scrape(&self) -> Metrics {
        let (status, body) = http_get(self.addr, "/metrics");
        assert_eq!(status, 200, "{body}");
        Metrics::parse(&body)
    }

    fn report(&self) -> Value {
        let (_, body) = http_get(self.addr, "/diagnose?target=t");
        serde_json::from_str(&body).unwrap_or(Value::Null)
    }

    fn wait(
        &self,
        what: &str,
        secs: u64,
        cond: impl Fn(&Metrics, &Value) -> bool,
    ) -> (Metrics, Value) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let (m, r) = (self.scrape(), self.report());
            if cond(&m, &r) {
                return (m, r);
            }
            if Instant::now() > deadline {
                panic!(
                    "timed out waiting for {what}\n{}\n{}",
                    m.text,
                    serde_json::to_string_pretty(&r).unwrap()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(r) = self.running.take() {
            self.rt.block_on(r.stop());
        }
    }
}

fn load(file: &Path) -> redis_clients_exporter::config::Config {
    redis_clients_exporter::config::load_checked_with_env(
        Some(file),
        &Default::default(),
        Vec::<(String, String)>::new(),
    )
    .unwrap()
}

fn toml(dir: &Path, redis: &Redis, identity: &str) -> std::path::PathBuf {
    let path = dir.join("config.toml");
    std::fs::write(
        &path,
        format!(
            "listen = \"127.0.0.1:0\"\nidle_threshold_seconds = 2\ntop_k = 20\n\n[[targets]]\naddress = \"redis://127.0.0.1:{}\"\nalias = \"t\"\npoll_interval_seconds = 0.3\n\n{identity}",
            redis.port
        ),
    )
    .unwrap();
    path
}

fn workload(m: &Metrics, w: &str) -> Option<f64> {
    m.get(
        "redis_client_connections_by_workload",
        &[("target", "t"), ("workload", w)],
    )
}

#[test]
fn kubernetes_workloads_name_the_culprit_and_fall_back_to_addresses() {
    let r = Redis::start(&["--maxclients", "150"]);
    let t0 = unix_now();
    // The earlier pod of 127.0.9.9 (gone from the cluster): its busy pool is still connected.
    let old = Busy::start(conns(&r, "127.0.9.9", 8));
    let hour_ago = t0 - 3600;
    let rs = "report-worker-7d4b9c";
    let fleet_ips = [
        ("127.0.1.1", "node-a"),
        ("127.0.1.2", "node-a"),
        ("127.0.1.3", "node-a"),
        ("127.0.2.1", "node-b"),
        ("127.0.2.2", "node-b"),
        ("127.0.2.3", "node-b"),
    ];
    let names: Vec<String> = (0..fleet_ips.len())
        .map(|i| format!("{rs}-pod{i}"))
        .collect();
    let mut pods: Vec<Pod<'_>> = fleet_ips
        .iter()
        .zip(&names)
        .map(|(&(ip, node), name)| Pod {
            namespace: "billing",
            name,
            ip,
            node,
            created_by: ("ReplicaSet", rs),
            start: hour_ago,
        })
        .collect();
    pods.push(Pod {
        namespace: "shop",
        name: "api-6c8f-xk2p9",
        ip: "127.0.1.10",
        node: "node-a",
        created_by: ("ReplicaSet", "api-6c8f"),
        start: hour_ago,
    });
    // The new owner of 127.0.9.9, started after the old pod's connections opened.
    let new_start = t0 + 7;
    pods.push(Pod {
        namespace: "shop",
        name: "cart-5f6d-q8w2e",
        ip: "127.0.9.9",
        node: "node-b",
        created_by: ("ReplicaSet", "cart-5f6d"),
        start: new_start,
    });
    let body = Arc::new(Mutex::new(exposition(
        &pods,
        &[
            ("billing", rs, "report-worker"),
            ("shop", "api-6c8f", "api"),
            ("shop", "cart-5f6d", "cart"),
        ],
    )));
    let ksm = Ksm::start(Arc::clone(&body));
    let ksm_port = ksm.port;
    let prom = Prometheus::start(move |_| {
        format!("global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: kube-state-metrics\n    static_configs:\n      - targets: ['127.0.0.1:{ksm_port}']\n")
    });

    // The fleet: each pod 5 busy connections and 13 opened and never used; another
    // Deployment's pod on node-a, busy.
    let mut busy = Vec::new();
    let mut leaked = Vec::new();
    for (ip, _) in fleet_ips {
        busy.extend(conns(&r, ip, 5));
        leaked.extend(conns(&r, ip, 13));
    }
    busy.extend(conns(&r, "127.0.1.10", 10));
    let _busy = Busy::start(busy);
    while unix_now() < new_start + 1 {
        std::thread::sleep(Duration::from_millis(100));
    }
    let _cart = Busy::start(conns(&r, "127.0.9.9", 3));

    let dir = tempfile::tempdir().unwrap();
    let cfg = toml(
        dir.path(),
        &r,
        &format!(
            "[identity.kubernetes]\nprometheus_url = \"http://127.0.0.1:{}\"\ninterval_seconds = 1\ntimeout_seconds = 2\n",
            prom.port
        ),
    );
    let d = Daemon::start(&cfg);
    let deployment = "Deployment billing/report-worker";
    let (m, rep) = d.wait("the Deployment named as the culprit", 40, |m, r| {
        workload(m, deployment) == Some(108.0)
            && r["findings"][0]["culprit"] == format!("workload {deployment}")
    });
    let f = &rep["findings"][0];
    assert_eq!(f["cause"], "connection_leak", "{f}");
    let title = f["title"].as_str().unwrap();
    assert!(
        title.contains(
            "Deployment billing/report-worker (6 pods: 127.0.1.1, 127.0.1.2, 127.0.1.3, ...)"
        ),
        "{title}"
    );
    let summary = f["summary"].as_str().unwrap();
    assert!(
        summary.contains("spread over 6 addresses of the workload"),
        "{summary}"
    );
    // The selector closes the Deployment's connections, on both nodes, and nobody else's.
    assert_eq!(
        f["selector"]["sources"],
        "127.0.1.1 127.0.1.2 127.0.1.3 127.0.2.1 127.0.2.2 127.0.2.3"
    );
    // The other Deployment on node-a is its own workload.
    assert_eq!(workload(&m, "Deployment shop/api"), Some(10.0));
    // The reused address: the new pod has its 3, the old pod's 8 stay an address.
    assert_eq!(
        workload(&m, "Deployment shop/cart"),
        Some(3.0),
        "{}",
        m.text
    );
    assert_eq!(workload(&m, "127.0.9.9"), Some(8.0), "{}", m.text);
    assert_eq!(
        m.get(
            "redis_clients_exporter_identity_source_up",
            &[("source", "kubernetes")]
        ),
        Some(1.0)
    );

    // The report's close step, run as printed: the Deployment's 78 unused connections on both
    // nodes go; its busy ones, the other Deployment's and the reused address' stay.
    let cmds: Vec<&str> = f["remediation"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["command"].as_str())
        .filter(|c| c.contains("CLIENT KILL"))
        .collect();
    assert!(!cmds.is_empty(), "{f}");
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(cmds[0])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}\n{:?}", cmds[0], out);
    let left = by_source(&r);
    for (ip, _) in fleet_ips {
        assert_eq!(left.get(ip), Some(&5), "{left:?}");
    }
    assert_eq!(left.get("127.0.1.10"), Some(&10), "{left:?}");
    assert_eq!(left.get("127.0.9.9"), Some(&11), "{left:?}");

    // Prometheus goes away: polling goes on, the source is down, addresses come back.
    drop(prom);
    let (m, rep) = d.wait("the fallback to addresses", 20, |m, _| {
        m.get(
            "redis_clients_exporter_identity_source_up",
            &[("source", "kubernetes")],
        ) == Some(0.0)
            && workload(m, deployment).is_none()
            && workload(m, "127.0.1.1") == Some(5.0)
    });
    assert_eq!(m.get("redis_up", &[("target", "t")]), Some(1.0));
    let headline = rep["headline"].as_str().unwrap_or("");
    assert!(
        headline.contains("Identity source down: kubernetes"),
        "{headline}"
    );
    assert_ne!(
        rep["findings"][0]["culprit"],
        format!("workload {deployment}")
    );
    drop((old, leaked, ksm));
}

#[test]
fn a_static_map_names_hosts_is_checked_and_reloads() {
    let r = Redis::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let map = dir.path().join("hosts.map");
    std::fs::write(
        &map,
        "# VMs\n127.0.3.0/24 billing-vm\n127.0.4.7 nat-gateway\n",
    )
    .unwrap();
    let identity = format!("[identity]\nstatic_map_file = \"{}\"\n", map.display());
    let cfg = toml(dir.path(), &r, &identity);
    let _vm = conns(&r, "127.0.3.5", 4);
    let _nat = conns(&r, "127.0.4.7", 2);
    let _other = conns(&r, "127.0.5.1", 1);
    let d = Daemon::start(&cfg);
    let (m, _) = d.wait("the static map's names", 10, |m, _| {
        workload(m, "billing-vm") == Some(4.0)
    });
    assert_eq!(workload(&m, "nat-gateway"), Some(2.0));
    assert_eq!(workload(&m, "127.0.5.1"), Some(1.0));
    assert_eq!(
        m.get(
            "redis_clients_exporter_identity_source_up",
            &[("source", "static_map")]
        ),
        Some(1.0)
    );

    // A changed file comes with a reload.
    std::fs::write(&map, "127.0.3.0/24 billing-vm-2\n").unwrap();
    d.reload(&cfg);
    d.wait("the reloaded map", 10, |m, _| {
        workload(m, "billing-vm-2") == Some(4.0) && workload(m, "127.0.4.7") == Some(2.0)
    });

    // A bad line: the configuration does not load, naming the file and the line (exit 2).
    std::fs::write(&map, "127.0.3.0/24 billing-vm\n10.0.0.0/33 broken\n").unwrap();
    let out = std::process::Command::new(BIN)
        .arg("--config")
        .arg(&cfg)
        .arg("--check-config")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("{} line 2", map.display())),
        "{stderr}"
    );
}

#[test]
fn identity_off_exports_no_workload_series() {
    let r = Redis::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let cfg = toml(dir.path(), &r, "");
    let _c = conns(&r, "127.0.3.5", 2);
    let d = Daemon::start(&cfg);
    let (m, _) = d.wait("a poll", 10, |m, _| {
        m.get(
            "redis_client_connections",
            &[("target", "t"), ("source_ip", "127.0.3.5")],
        ) == Some(2.0)
    });
    assert!(!m.text.contains("workload"), "{}", m.text);
    assert!(!m.text.contains("exporter_identity_"), "{}", m.text);
}

/// A real dnsmasq on a loopback port, answering PTR from `--ptr-record`s only (no upstream, no
/// /etc/hosts), killed on drop.
struct Dnsmasq {
    child: std::process::Child,
    port: u16,
}

impl Dnsmasq {
    fn start(bin: &Path, records: &[(&str, &str)]) -> Dnsmasq {
        for _ in 0..10 {
            let port = common::free_port();
            let mut cmd = std::process::Command::new(bin);
            cmd.args([
                "--no-daemon",
                "--conf-file=/dev/null",
                "--no-resolv",
                "--no-hosts",
                "--pid-file=",
                "--listen-address=127.0.0.1",
                "--bind-interfaces",
            ])
            .arg(format!("--port={port}"));
            for (ptr, name) in records {
                cmd.arg(format!("--ptr-record={ptr},{name}"));
            }
            let mut child = cmd
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap();
            std::thread::sleep(Duration::from_millis(300));
            if child.try_wait().unwrap().is_none() {
                return Dnsmasq { child, port };
            }
        }
        panic!("dnsmasq did not start");
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn reverse_dns_names_hosts_through_a_real_dnsmasq() {
    if !common::require_tool("/usr/sbin/dnsmasq", "dnsmasq-base") {
        return;
    }
    let dns = Dnsmasq::start(
        Path::new("/usr/sbin/dnsmasq"),
        &[("5.6.0.127.in-addr.arpa", "orders-worker-3.prod")],
    );
    let r = Redis::start(&[]);
    let _named = conns(&r, "127.0.6.5", 3);
    let _unknown = conns(&r, "127.0.6.9", 2);
    let dir = tempfile::tempdir().unwrap();
    let cfg = toml(
        dir.path(),
        &r,
        &format!(
            "[identity.dns]\nresolver = \"127.0.0.1:{}\"\nttl_seconds = 300\nmax_lookups_per_minute = 10\n",
            dns.port
        ),
    );
    let d = Daemon::start(&cfg);
    let (m, _) = d.wait("the PTR name", 15, |m, _| {
        workload(m, "host orders-worker-3.prod") == Some(3.0)
    });
    // No PTR record (dnsmasq: REFUSED): the address stays an address.
    assert_eq!(workload(&m, "127.0.6.9"), Some(2.0), "{}", m.text);
    assert_eq!(
        m.get(
            "redis_clients_exporter_identity_source_up",
            &[("source", "dns")]
        ),
        Some(1.0)
    );
    // Cached: with the resolver gone, the name stays.
    drop(dns);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        workload(&d.scrape(), "host orders-worker-3.prod"),
        Some(3.0)
    );
}

#[test]
fn a_silent_prometheus_never_slows_a_poll() {
    // Accepts (the kernel's backlog) and never answers: the slow Prometheus.
    let hole = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = hole.local_addr().unwrap().port();
    let r = Redis::start(&[]);
    let _c = conns(&r, "127.0.1.1", 2);
    let dir = tempfile::tempdir().unwrap();
    let cfg = toml(
        dir.path(),
        &r,
        &format!(
            "[identity.kubernetes]\nprometheus_url = \"http://127.0.0.1:{port}\"\ninterval_seconds = 1\ntimeout_seconds = 1\n"
        ),
    );
    let d = Daemon::start(&cfg);
    let polls = |m: &Metrics| {
        m.get("redis_clients_exporter_polls_total", &[("target", "t")])
            .unwrap_or(0.0)
    };
    let (m, rep) = d.wait("the source down", 10, |m, r| {
        m.get(
            "redis_clients_exporter_identity_source_up",
            &[("source", "kubernetes")],
        ) == Some(0.0)
            && r["headline"]
                .as_str()
                .is_some_and(|h| h.contains("Identity source down: kubernetes"))
    });
    assert!(
        rep["headline"].as_str().unwrap().contains("timed out"),
        "{rep}"
    );
    let before = polls(&m);
    std::thread::sleep(Duration::from_secs(2));
    let m = d.scrape();
    // Poll interval 0.3 s: about 6 polls in 2 s while every query hangs for its full second.
    assert!(polls(&m) >= before + 4.0, "{} -> {}", before, polls(&m));
    assert_eq!(m.get("redis_up", &[("target", "t")]), Some(1.0));
    let total = m
        .get(
            "redis_clients_exporter_poll_duration_seconds",
            &[("target", "t"), ("stage", "total")],
        )
        .unwrap();
    assert!(total < 0.5, "a poll took {total} s");
    assert_eq!(workload(&m, "127.0.1.1"), Some(2.0));
    drop(hole);
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl (apt-get install openssl)");
    assert!(out.status.success(), "openssl {args:?}: {out:?}");
}

/// A Prometheus behind TLS (a certificate for 127.0.0.1 from a CA of the test's own) and basic
/// auth, scraping `ksm`; killed on drop.
struct TlsPrometheus {
    child: std::process::Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for TlsPrometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl TlsPrometheus {
    fn start(ksm_port: u16, user: &str, password: &str) -> TlsPrometheus {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        openssl(
            d,
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=test-ca",
            ],
        );
        std::fs::write(
            d.join("server.ext"),
            "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        openssl(
            d,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=prometheus",
            ],
        );
        openssl(
            d,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-out",
                "server.pem",
                "-extfile",
                "server.ext",
            ],
        );
        let hash = bcrypt::hash(password, 4).unwrap();
        std::fs::write(
            d.join("web.yml"),
            format!(
                "tls_server_config:\n  cert_file: {0}/server.pem\n  key_file: {0}/server.key\nbasic_auth_users:\n  {user}: '{hash}'\n",
                d.display()
            ),
        )
        .unwrap();
        std::fs::write(
            d.join("prometheus.yml"),
            format!("global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: kube-state-metrics\n    static_configs:\n      - targets: ['127.0.0.1:{ksm_port}']\n"),
        )
        .unwrap();
        let port = common::free_port();
        let child = std::process::Command::new("prometheus")
            .arg(format!("--config.file={}/prometheus.yml", d.display()))
            .arg(format!("--storage.tsdb.path={}/data", d.display()))
            .arg(format!("--web.config.file={}/web.yml", d.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn prometheus (apt-get install prometheus)");
        TlsPrometheus {
            child,
            port,
            _dir: dir,
        }
    }

    fn ca(&self) -> std::path::PathBuf {
        self._dir.path().join("ca.pem")
    }
}

#[test]
fn prometheus_over_tls_with_basic_auth_from_a_password_file() {
    let r = Redis::start(&[]);
    let _pod = conns(&r, "127.0.1.1", 2);
    let body = Arc::new(Mutex::new(exposition(
        &[Pod {
            namespace: "billing",
            name: "report-worker-7d4b9c-pod0",
            ip: "127.0.1.1",
            node: "node-a",
            created_by: ("ReplicaSet", "report-worker-7d4b9c"),
            start: unix_now() - 3600,
        }],
        &[("billing", "report-worker-7d4b9c", "report-worker")],
    )));
    let ksm = Ksm::start(body);
    let prom = TlsPrometheus::start(ksm.port, "exporter", "s3cret-pw");
    let dir = tempfile::tempdir().unwrap();
    let password = dir.path().join("prometheus.password");
    std::fs::write(&password, "wrong\n").unwrap();
    let identity = |password: &Path| {
        format!(
            "[identity.kubernetes]\nprometheus_url = \"https://127.0.0.1:{}\"\ntls_ca_file = \"{}\"\nbasic_auth_username = \"exporter\"\nbasic_auth_password_file = \"{}\"\ninterval_seconds = 1\ntimeout_seconds = 2\n",
            prom.port,
            prom.ca().display(),
            password.display()
        )
    };
    let cfg = toml(dir.path(), &r, &identity(&password));
    let d = Daemon::start(&cfg);
    // A wrong password: Prometheus answers 401, the source is down, the password is nowhere.
    let (m, rep) = d.wait("a 401", 20, |_, r| {
        r["headline"]
            .as_str()
            .is_some_and(|h| h.contains("HTTP status 401"))
    });
    assert!(!m.text.contains("wrong") && !rep.to_string().contains("wrong"));
    // The rotated password file is read at the next refresh.
    std::fs::write(&password, "s3cret-pw\n").unwrap();
    let (m, rep) = d.wait("the Deployment over TLS", 20, |m, _| {
        workload(m, "Deployment billing/report-worker") == Some(2.0)
    });
    assert_eq!(
        m.get(
            "redis_clients_exporter_identity_source_up",
            &[("source", "kubernetes")]
        ),
        Some(1.0)
    );
    assert!(!m.text.contains("s3cret") && !rep.to_string().contains("s3cret"));
    drop(ksm);
}

#[test]
fn a_workload_whose_autoscaler_maximum_would_exhaust_maxclients() {
    let r = Redis::start(&["--maxclients", "150"]);
    let ips = ["127.0.1.1", "127.0.2.1"];
    let names = ["api-6c8f-aaaaa", "api-6c8f-bbbbb"];
    let pods: Vec<Pod<'_>> = ips
        .iter()
        .zip(names)
        .map(|(ip, name)| Pod {
            namespace: "shop",
            name,
            ip,
            node: "node-a",
            created_by: ("ReplicaSet", "api-6c8f"),
            start: unix_now() - 3600,
        })
        .collect();
    let mut text = exposition(&pods, &[("shop", "api-6c8f", "api")]);
    // kube-state-metrics 2.x, docs/metrics/workload/horizontalpodautoscaler-metrics.md.
    text += "# HELP kube_horizontalpodautoscaler_spec_max_replicas Upper limit for the number of pods that can be set by the autoscaler; cannot be smaller than MinReplicas.\n# TYPE kube_horizontalpodautoscaler_spec_max_replicas gauge\nkube_horizontalpodautoscaler_spec_max_replicas{namespace=\"shop\",horizontalpodautoscaler=\"api\"} 20\n";
    text += "# HELP kube_horizontalpodautoscaler_info Information about this autoscaler.\n# TYPE kube_horizontalpodautoscaler_info gauge\nkube_horizontalpodautoscaler_info{namespace=\"shop\",horizontalpodautoscaler=\"api\",scaletargetref_api_version=\"apps/v1\",scaletargetref_kind=\"Deployment\",scaletargetref_name=\"api\"} 1\n";
    let ksm = Ksm::start(Arc::new(Mutex::new(text)));
    let ksm_port = ksm.port;
    let prom = Prometheus::start(move |_| {
        format!("global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: kube-state-metrics\n    static_configs:\n      - targets: ['127.0.0.1:{ksm_port}']\n")
    });
    let mut busy = Vec::new();
    for ip in ips {
        busy.extend(conns(&r, ip, 10));
    }
    let _busy = Busy::start(busy);
    let dir = tempfile::tempdir().unwrap();
    let cfg = toml(
        dir.path(),
        &r,
        &format!(
            "[identity.kubernetes]\nprometheus_url = \"http://127.0.0.1:{}\"\ninterval_seconds = 1\n",
            prom.port
        ),
    );
    let d = Daemon::start(&cfg);
    let (m, rep) = d.wait("the capacity finding", 30, |_, r| {
        r["findings"][0]["cause"] == "capacity_at_max_scale"
    });
    let f = &rep["findings"][0];
    assert_eq!(f["culprit"], "workload Deployment shop/api", "{f}");
    let title = f["title"].as_str().unwrap();
    // 2 pods × 10 connections now; at 20 pods 200, plus the exporter's own: 201 of 150.
    assert!(
        title.contains("Deployment shop/api at its autoscaler's maximum (20 pods) would need 201 of 150 connections"),
        "{title}"
    );
    assert!(
        f["summary"].as_str().unwrap().contains("10.0 × 20 = 200"),
        "{f}"
    );
    assert!(f["score"].as_f64().unwrap() >= 0.5, "{f}");
    assert!(
        m.get(
            "redis_client_diagnosis",
            &[
                ("target", "t"),
                ("cause", "capacity_at_max_scale"),
                ("culprit_kind", "workload"),
                ("culprit", "Deployment shop/api")
            ]
        )
        .is_some_and(|v| v >= 0.5),
        "{}",
        m.text
    );
    drop(ksm);
}
