//! Test harness: real redis-server processes on free loopback ports, raw RESP client
//! connections from chosen source addresses, the exporter run in-process, and a /metrics reader.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]
pub mod proxy;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use redis_clients_exporter::config::{Config, Endpoint, LogFormat, Secret, Target};

/// A redis-server child process, killed on drop.
pub struct Redis {
    pub port: u16,
    pub dir: tempfile::TempDir,
    args: Vec<String>,
    child: Option<Child>,
    /// A `ulimit -n` to start the server under (the maxclients clamp).
    nofile: Option<u64>,
}

/// The server binary the tests run: `REDIS_SERVER_BIN` when set (the version matrix points it
/// at a wrapper written by scripts/fetch-servers.sh), else `redis-server` from PATH.
pub fn redis_server_bin() -> String {
    std::env::var("REDIS_SERVER_BIN").unwrap_or_else(|_| "redis-server".into())
}

/// The `redis-cli` the tests run (cluster creation): `REDIS_CLI` when set, else from PATH.
/// Debian's redis-cli creates clusters of every server version in the matrix.
pub fn redis_cli_bin() -> String {
    std::env::var("REDIS_CLI").unwrap_or_else(|_| "redis-cli".into())
}

/// (major, minor) of the server binary, from `--version` ("... v=7.2.4 ..."): a few tests
/// differ by version (Redis 6.2 has no `--cluster-port`, for one).
pub fn server_version() -> (u32, u32) {
    static V: std::sync::OnceLock<(u32, u32)> = std::sync::OnceLock::new();
    *V.get_or_init(|| {
        let bin = redis_server_bin();
        let out = Command::new(&bin)
            .arg("--version")
            .output()
            .unwrap_or_else(|e| panic!("{bin} --version: {e}"));
        let text = String::from_utf8_lossy(&out.stdout);
        let v = text
            .split_whitespace()
            .find_map(|w| w.strip_prefix("v="))
            .unwrap_or_else(|| panic!("no v= in {bin} --version: {text}"));
        let mut parts = v.split('.').map(|p| p.parse::<u32>().ok());
        match (parts.next().flatten(), parts.next().flatten()) {
            (Some(major), Some(minor)) => (major, minor),
            _ => panic!("bad version {v} from {bin} --version"),
        }
    })
}

pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind :0");
    l.local_addr().expect("local addr").port()
}

/// Whether the tests run under CI (`CI` set, and not to `false` or `0`; GitHub Actions and
/// GitLab set `CI=true`): there every tool is installed, so a missing one is a failure.
pub fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !matches!(v.trim(), "" | "0" | "false" | "FALSE" | "False"))
}

/// An executable `tool`: an absolute path, or a name looked up in `PATH`.
pub fn find_tool(tool: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &Path| {
        p.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if tool.contains('/') {
        return Some(PathBuf::from(tool)).filter(|p| executable(p));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(tool))
        .find(|p| executable(p))
}

/// For a test that needs an external program besides redis-server: true when `tool` is
/// installed. When it is not, the test should return at once: this prints
/// `SKIP: <tool> not found; apt-get install <package>` and returns false, so that `cargo test`
/// passes on a newcomer's machine; under CI ([`under_ci`]) it panics instead.
pub fn require_tool(tool: &str, package: &str) -> bool {
    if find_tool(tool).is_some() {
        return true;
    }
    let msg = format!("{tool} not found; apt-get install {package}");
    assert!(!under_ci(), "{msg} (a missing tool fails under CI)");
    eprintln!("SKIP: {msg}");
    false
}

impl Redis {
    pub fn start(extra: &[&str]) -> Redis {
        Self::start_limited(None, extra)
    }

    /// Starts the server under a real `ulimit -n`.
    pub fn start_with_nofile(nofile: u64, extra: &[&str]) -> Redis {
        Self::start_limited(Some(nofile), extra)
    }

    fn start_limited(nofile: Option<u64>, extra: &[&str]) -> Redis {
        Self::start_on(free_port, nofile, extra)
    }

    /// Starts the server on a port from `pick` (tried again with a new pick if it fails).
    fn start_on(pick: fn() -> u16, nofile: Option<u64>, extra: &[&str]) -> Redis {
        let args: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        // Binding :0 and releasing the port races with other tests: retry on a failed start.
        for _ in 0..10 {
            let mut r = Redis {
                port: pick(),
                dir: tempfile::tempdir().expect("tempdir"),
                args: args.clone(),
                child: None,
                nofile,
            };
            if r.spawn() {
                return r;
            }
        }
        panic!("redis-server did not start after 10 attempts (apt-get install redis-server)");
    }

    pub fn socket_path(&self) -> PathBuf {
        self.dir.path().join("redis.sock")
    }

    /// Client connections per source address now (the exporter's and this check's left out).
    pub fn clients_by_source(&self) -> BTreeMap<String, usize> {
        let mut c = RespConn::connect_unix(&self.socket_path());
        let list = c.cmd(&["CLIENT", "LIST"]);
        let mut out = BTreeMap::new();
        for line in list.as_bulk().unwrap_or_default().lines() {
            let field = |k: &str| {
                line.split(' ')
                    .find_map(|f| f.strip_prefix(k))
                    .unwrap_or("")
                    .to_string()
            };
            let addr = field("addr=");
            // Unix sockets: `/path:0`, or `[/path:0]:0` on Valkey 9.1 (flag U on both).
            if addr.starts_with('/')
                || field("flags=").contains('U')
                || field("name=") == "redis-clients-exporter"
            {
                continue;
            }
            let ip = addr.rsplit_once(':').map_or(addr.as_str(), |(ip, _)| ip);
            *out.entry(ip.to_string()).or_insert(0) += 1;
        }
        out
    }

    fn spawn(&mut self) -> bool {
        let bin = redis_server_bin();
        let mut cmd = match self.nofile {
            Some(n) => {
                let mut c = Command::new("sh");
                c.args([
                    "-c",
                    &format!("ulimit -n {n} && bin=$1 && shift && exec \"$bin\" \"$@\""),
                    "sh",
                    &bin,
                ]);
                c
            }
            None => Command::new(&bin),
        };
        cmd.args([
            "--port",
            &self.port.to_string(),
            "--bind",
            "127.0.0.1",
            "--protected-mode",
            "no",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .arg("--dir")
        .arg(self.dir.path())
        .arg("--unixsocket")
        .arg(self.socket_path())
        .args(["--unixsocketperm", "700"])
        .args(&self.args)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {bin} (apt-get install redis-server): {e}"));
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return false;
            }
            // Ask through the unix socket, which lives in our own directory: a TCP answer could
            // come from another test's server that won the race for the port.
            if let Ok(mut c) = RespConn::try_connect_unix(&self.socket_path()) {
                // Any reply will do: with --requirepass, PING answers NOAUTH.
                c.send(&["PING"]);
                if c.read().is_ok() {
                    // QUIT (allowed before AUTH) and wait for the server to close: until it
                    // has freed this probe, the probe holds one of maxclients' slots, and
                    // Redis 6.2 may accept a test's connections first and refuse the last.
                    c.send(&["QUIT"]);
                    while c.read().is_ok() {}
                    self.child = Some(child);
                    return true;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the server again on the same port (after [`kill`](Self::kill)).
    pub fn restart(&mut self) {
        self.kill();
        for _ in 0..50 {
            if self.spawn() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("redis-server did not restart on port {}", self.port);
    }

    pub fn conn(&self) -> RespConn {
        RespConn::connect(self.port, "127.0.0.1")
    }

    pub fn conn_from(&self, source_ip: &str) -> RespConn {
        RespConn::connect(self.port, source_ip)
    }

    pub fn target(&self, label: &str) -> Target {
        Target {
            label: label.to_string(),
            endpoint: Endpoint::Tcp {
                host: "127.0.0.1".into(),
                port: self.port,
            },
            db: None,
            username: None,
            password: Secret::None,
            poll_interval: Duration::from_millis(200),
            connect_timeout: Duration::from_secs(2),
            command_timeout: Duration::from_secs(2),
            client_list: Default::default(),
            tls: None,
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A cluster of real redis-server processes on loopback, created with `redis-cli --cluster
/// create` (each node with its own bus port, since port + 10000 may not be free). The node
/// timeout is long so that a loaded test machine never triggers a failover of its own.
pub struct Cluster {
    pub nodes: Vec<Redis>,
}

impl Cluster {
    pub fn start(primaries: usize, replicas_each: usize) -> Cluster {
        let n = primaries * (1 + replicas_each);
        let common = [
            "--cluster-enabled",
            "yes",
            "--cluster-node-timeout",
            "15000",
        ];
        let nodes: Vec<Redis> = (0..n)
            .map(|_| {
                if server_version() >= (7, 0) {
                    let bus = free_port().to_string();
                    Redis::start(&[&common[..], &["--cluster-port", &bus]].concat())
                } else {
                    // Before 7.0 the bus port is always port + 10000.
                    Redis::start_on(free_port_with_bus, None, &common)
                }
            })
            .collect();
        let mut cmd = Command::new(redis_cli_bin());
        cmd.arg("--cluster").arg("create");
        for r in &nodes {
            cmd.arg(format!("127.0.0.1:{}", r.port));
        }
        let out = cmd
            .args([
                "--cluster-replicas",
                &replicas_each.to_string(),
                "--cluster-yes",
            ])
            .output()
            .expect("redis-cli --cluster create (apt-get install redis-tools)");
        assert!(
            out.status.success(),
            "cluster create failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let c = Cluster { nodes };
        // Gossip takes a moment: wait until every node is ok and every node's view of the
        // roles matches what each node says of itself.
        c.wait_until("every node agrees on an ok cluster of all nodes", |c| {
            let roles = c.roles();
            roles.iter().filter(|(_, r)| r == "master").count() == primaries
                && (0..n).all(|i| {
                    let info = c.nodes[i].conn().cmd(&["CLUSTER", "INFO"]);
                    let mut view: Vec<(u16, String)> =
                        c.view(i).into_iter().map(|(_, p, r)| (p, r)).collect();
                    view.sort();
                    info.as_bulk()
                        .is_some_and(|i| i.contains("cluster_state:ok"))
                        && view == roles
                })
        });
        c
    }

    /// (port, "master"/"slave") of every node, from its own INFO, sorted by port.
    pub fn roles(&self) -> Vec<(u16, String)> {
        let mut out: Vec<(u16, String)> = self
            .nodes
            .iter()
            .filter_map(|r| {
                let mut c = RespConn::try_connect(r.port, "127.0.0.1").ok()?;
                let info = c.cmd(&["INFO", "replication"]);
                let role = info
                    .as_bulk()?
                    .lines()
                    .find_map(|l| l.strip_prefix("role:"))?
                    .trim()
                    .to_string();
                Some((r.port, role))
            })
            .collect();
        out.sort();
        out
    }

    /// CLUSTER NODES of node `i`: (id, port, role "master"/"slave") per node.
    pub fn view(&self, i: usize) -> Vec<(String, u16, String)> {
        let text = self.nodes[i].conn().cmd(&["CLUSTER", "NODES"]);
        let text = text.as_bulk().unwrap_or_default().to_string();
        text.lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split(' ').collect();
                let port = f
                    .get(1)?
                    .split('@')
                    .next()?
                    .rsplit_once(':')?
                    .1
                    .parse()
                    .ok()?;
                let role = if f.get(2)?.contains("master") {
                    "master"
                } else {
                    "slave"
                };
                Some((f[0].to_string(), port, role.to_string()))
            })
            .collect()
    }

    pub fn wait_until(&self, what: &str, cond: impl Fn(&Cluster) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !cond(self) {
            assert!(Instant::now() < deadline, "timed out waiting until {what}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// A free port p <= 55535 whose bus port p + 10000 is free too (for servers before 7.0).
fn free_port_with_bus() -> u16 {
    loop {
        let p = free_port();
        if p <= 55535 && std::net::TcpListener::bind(("127.0.0.1", p + 10000)).is_ok() {
            return p;
        }
    }
}

/// A redis-sentinel process watching one master set, killed on drop.
pub struct Sentinel {
    pub port: u16,
    pub dir: tempfile::TempDir,
    child: Child,
}

impl Sentinel {
    pub fn start(master: &str, master_port: u16) -> Sentinel {
        for _ in 0..10 {
            let dir = tempfile::tempdir().expect("tempdir");
            let conf = dir.path().join("sentinel.conf");
            std::fs::write(
                &conf,
                format!(
                    "sentinel monitor {master} 127.0.0.1 {master_port} 1\n\
                     sentinel down-after-milliseconds {master} 2000\n\
                     sentinel failover-timeout {master} 10000\n"
                ),
            )
            .expect("write sentinel.conf");
            let port = free_port();
            // Under the version matrix the sentinel is the same binary in sentinel mode.
            let mut cmd = match std::env::var("REDIS_SERVER_BIN") {
                Ok(bin) => {
                    let mut c = Command::new(bin);
                    c.arg(&conf).arg("--sentinel");
                    c
                }
                Err(_) => {
                    let mut c = Command::new("redis-sentinel");
                    c.arg(&conf);
                    c
                }
            };
            let mut child = cmd
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .arg("--dir")
                .arg(dir.path())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn redis-sentinel (apt-get install redis-sentinel)");
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                // Only a sentinel watching our master answers this with an array: a server
                // of another test that won the port race does not.
                if let Ok(mut c) = RespConn::try_connect(port, "127.0.0.1") {
                    c.send(&["SENTINEL", "MASTER", master]);
                    if matches!(c.read(), Ok(Reply::Array(_))) {
                        return Sentinel { port, dir, child };
                    }
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("redis-sentinel did not start");
    }

    pub fn conn(&self) -> RespConn {
        RespConn::connect(self.port, "127.0.0.1")
    }
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A reply in RESP2.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Option<String>),
    Array(Vec<Reply>),
}

impl Reply {
    pub fn as_simple(&self) -> Option<&str> {
        match self {
            Reply::Simple(s) => Some(s),
            _ => None,
        }
    }
    pub fn as_bulk(&self) -> Option<&str> {
        match self {
            Reply::Bulk(Some(s)) => Some(s),
            _ => None,
        }
    }
    pub fn is_error(&self) -> bool {
        matches!(self, Reply::Error(_))
    }
}

/// A raw client connection, speaking RESP2 over a socket bound to a chosen source address.
pub struct RespConn {
    reader: BufReader<Box<dyn ReadWrite>>,
}

pub trait ReadWrite: Read + Write + Send {
    fn writer(&mut self) -> &mut dyn Write;
}
impl ReadWrite for TcpStream {
    fn writer(&mut self) -> &mut dyn Write {
        self
    }
}
impl ReadWrite for std::os::unix::net::UnixStream {
    fn writer(&mut self) -> &mut dyn Write {
        self
    }
}

impl RespConn {
    pub fn try_connect(port: u16, source_ip: &str) -> std::io::Result<RespConn> {
        let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
        let src: SocketAddr = format!("{source_ip}:0").parse().expect("source ip");
        sock.bind(&src.into())?;
        let dst: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
        sock.connect_timeout(&dst.into(), Duration::from_secs(2))?;
        let s: TcpStream = sock.into();
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        Ok(RespConn {
            reader: BufReader::new(Box::new(s)),
        })
    }

    pub fn connect(port: u16, source_ip: &str) -> RespConn {
        Self::try_connect(port, source_ip).expect("connect to redis")
    }

    pub fn try_connect_unix(path: &Path) -> std::io::Result<RespConn> {
        let s = std::os::unix::net::UnixStream::connect(path)?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        Ok(RespConn {
            reader: BufReader::new(Box::new(s)),
        })
    }

    pub fn connect_unix(path: &Path) -> RespConn {
        Self::try_connect_unix(path).expect("connect unix socket")
    }

    pub fn send(&mut self, args: &[&str]) {
        let mut out = format!("*{}\r\n", args.len());
        for a in args {
            out.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        let w = self.reader.get_mut().writer();
        w.write_all(out.as_bytes()).expect("write command");
        w.flush().expect("flush");
    }

    pub fn read(&mut self) -> std::io::Result<Reply> {
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "connection closed",
            ));
        }
        let line = line.trim_end_matches("\r\n");
        let (t, rest) = line.split_at(1);
        let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, "bad RESP");
        Ok(match t {
            "+" => Reply::Simple(rest.to_string()),
            "-" => Reply::Error(rest.to_string()),
            ":" => Reply::Int(rest.parse().map_err(|_| bad())?),
            "$" => {
                let n: i64 = rest.parse().map_err(|_| bad())?;
                if n < 0 {
                    Reply::Bulk(None)
                } else {
                    let mut buf = vec![0u8; n as usize + 2];
                    self.reader.read_exact(&mut buf)?;
                    buf.truncate(n as usize);
                    Reply::Bulk(Some(String::from_utf8_lossy(&buf).into_owned()))
                }
            }
            "*" => {
                let n: i64 = rest.parse().map_err(|_| bad())?;
                let mut v = Vec::new();
                for _ in 0..n.max(0) {
                    v.push(self.read()?);
                }
                Reply::Array(v)
            }
            _ => return Err(bad()),
        })
    }

    pub fn cmd(&mut self, args: &[&str]) -> Reply {
        self.send(args);
        self.read().expect("read reply")
    }

    /// `CLIENT SETNAME` and check the reply.
    pub fn named(mut self, name: &str) -> RespConn {
        assert_eq!(
            self.cmd(&["CLIENT", "SETNAME", name]).as_simple(),
            Some("OK")
        );
        self
    }
}

/// The exporter, run in-process on its own runtime, listening on a free port.
pub struct Exporter {
    pub rt: tokio::runtime::Runtime,
    running: Option<redis_clients_exporter::Running>,
    pub addr: SocketAddr,
}

pub fn config(targets: Vec<Target>, top_k: usize) -> Config {
    Config {
        listen: "127.0.0.1:0".parse().expect("addr"),
        log_format: LogFormat::Text,
        top_k,
        idle_threshold_seconds: 60,
        targets,
        web: Default::default(),
        topology: Default::default(),
        relief: Default::default(),
        shard: Default::default(),
        identity: Default::default(),
    }
}

impl Exporter {
    pub fn start(cfg: Config) -> Exporter {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let running = rt
            .block_on(redis_clients_exporter::start(cfg))
            .expect("start exporter");
        let addr = running.addr;
        Exporter {
            rt,
            running: Some(running),
            addr,
        }
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        http_get(self.addr, path)
    }

    pub fn scrape(&self) -> Metrics {
        let (status, body) = self.get("/metrics");
        assert_eq!(status, 200, "{body}");
        Metrics::parse(&body)
    }

    /// Scrapes until `cond` holds, or panics with the last scrape after `timeout`.
    pub fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        cond: impl Fn(&Metrics) -> bool,
    ) -> Metrics {
        let deadline = Instant::now() + timeout;
        loop {
            let m = self.scrape();
            if cond(&m) {
                return m;
            }
            if Instant::now() > deadline {
                panic!("timed out waiting for {what}; last scrape:\n{}", m.text);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        if let Some(r) = self.running.take() {
            self.rt.block_on(r.stop());
        }
    }
}

pub fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect exporter");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").expect("write request");
    let mut resp = String::new();
    s.read_to_string(&mut resp).expect("read response");
    let status = resp
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = resp
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// A parsed /metrics page: series -> value.
pub struct Metrics {
    pub text: String,
    pub series: Vec<(String, BTreeMap<String, String>, f64)>,
}

impl Metrics {
    pub fn parse(text: &str) -> Metrics {
        let mut series = Vec::new();
        for line in text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            let (head, value) = line.rsplit_once(' ').expect("series line");
            let value: f64 = match value {
                "+Inf" => f64::INFINITY,
                v => v.parse().expect("value"),
            };
            let (name, labels) = match head.split_once('{') {
                Some((n, rest)) => (n.to_string(), parse_labels(rest.trim_end_matches('}'))),
                None => (head.to_string(), BTreeMap::new()),
            };
            series.push((name, labels, value));
        }
        Metrics {
            text: text.to_string(),
            series,
        }
    }

    /// Every series of `name` whose labels include all of `labels`.
    pub fn all(
        &self,
        name: &str,
        labels: &[(&str, &str)],
    ) -> Vec<(&BTreeMap<String, String>, f64)> {
        self.series
            .iter()
            .filter(|(n, l, _)| {
                n == name
                    && labels
                        .iter()
                        .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|(_, l, v)| (l, *v))
            .collect()
    }

    /// The one series of `name` matching `labels`, if there is exactly one.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        match self.all(name, labels).as_slice() {
            [(_, v)] => Some(*v),
            _ => None,
        }
    }

    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.all(name, labels).iter().map(|(_, v)| v).sum()
    }

    /// Label value -> value for one label dimension of a family.
    pub fn by(&self, name: &str, target: &str, label: &str) -> BTreeMap<String, f64> {
        self.all(name, &[("target", target)])
            .into_iter()
            .filter_map(|(l, v)| l.get(label).map(|k| (k.clone(), v)))
            .collect()
    }
}

fn parse_labels(s: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut rest = s;
    while let Some((k, r)) = rest.split_once("=\"") {
        let mut val = String::new();
        let mut chars = r.char_indices();
        let mut end = r.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, n)) = chars.next() {
                        val.push(if n == 'n' { '\n' } else { n });
                    }
                }
                '"' => {
                    end = i + 1;
                    break;
                }
                c => val.push(c),
            }
        }
        out.insert(k.trim_start_matches(',').to_string(), val);
        rest = &r[end..];
    }
    out
}

/// Keeps connections busy (a PING each every 100 ms) so that they are not idle; stopped on drop.
pub struct Busy {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Busy {
    pub fn start(mut conns: Vec<RespConn>) -> Busy {
        use std::sync::atomic::{AtomicBool, Ordering};
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let s = std::sync::Arc::clone(&stop);
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
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A real Prometheus (Debian package `prometheus`) on a free loopback port with a temporary data
/// directory, killed on drop.
pub struct Prometheus {
    pub child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    /// Starts Prometheus with the configuration `config` writes for its temporary directory
    /// (where it may put rule files), and waits until it is ready. A port taken between choosing
    /// and binding it is retried with another.
    pub fn start(config: impl Fn(&Path) -> String) -> Prometheus {
        for _ in 0..10 {
            let dir = tempfile::tempdir().expect("tempdir");
            let cfg = dir.path().join("prometheus.yml");
            std::fs::write(&cfg, config(dir.path())).expect("write config");
            let port = free_port();
            let child = Command::new("prometheus")
                .arg(format!("--config.file={}", cfg.display()))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.path().join("data").display()
                ))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn prometheus (apt-get install prometheus)");
            let mut p = Prometheus {
                child,
                port,
                _dir: dir,
            };
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = p.child.try_wait() {
                    break;
                }
                if TcpStream::connect(("127.0.0.1", port)).is_ok() && p.get("/-/ready").is_some() {
                    return p;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        panic!("prometheus did not start");
    }

    /// The body of a 200 answer to `path`, `None` for any other status.
    pub fn get(&self, path: &str) -> Option<String> {
        let (status, body) = http_get(
            format!("127.0.0.1:{}", self.port).parse().expect("addr"),
            path,
        );
        (status == 200).then_some(body)
    }
}

/// A query string value, percent-encoded (RFC 3986 unreserved characters kept).
pub fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
