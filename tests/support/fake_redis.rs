//! A hostile peer that speaks just enough RESP to look like Redis to the exporter: it reads
//! every command (recording each byte), answers the handshake, PING and the commands of a poll
//! as a small healthy Redis 7 would, and answers the commands its [`Hostile`] mode names with
//! what a hostile server, or anything on a plain TCP path, could send instead. One thread per
//! connection, blocking I/O: the peer must never be the slow side of a test.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the peer sends instead of an honest reply.
#[derive(Clone, Debug)]
pub enum Hostile {
    /// INFO: a bulk string announcing `announced` bytes, then as many as the exporter reads.
    HugeInfo { announced: usize },
    /// CONFIG GET: a `[name, value]` pair whose value announces `announced` bytes.
    HugeConfig { announced: usize },
    /// CLIENT LIST (full or by id): a bulk string of `bytes` bytes, sent at once.
    HugeClientList { bytes: usize },
    /// INFO: `announced` bytes, `drip` bytes every 20 ms.
    SlowDrip { announced: usize, drip: usize },
    /// CONFIG GET: an array announcing `count` elements, then `count` integers.
    ManyElements { count: usize },
    /// INFO: these bytes, verbatim (junk, absurd lengths, deep nesting, a wrong type).
    RawInfo(Arc<Vec<u8>>),
    /// CLUSTER SHARDS: this reply, verbatim. CLUSTER NODES: `nodes`, verbatim, as a bulk string.
    Cluster {
        shards: Arc<Vec<u8>>,
        nodes: Arc<Vec<u8>>,
    },
    /// Every command but the handshake's: an error reply with this text.
    ErrorText(String),
    /// The commands whose words start with `command` (`"CONFIG"`, `"CLIENT NO-EVICT"`): an
    /// error reply with this text; the rest as a healthy server.
    ErrorOn { command: &'static str, text: String },
    /// The handshake itself (AUTH, CLIENT SETNAME): an error reply with this text.
    RefuseHandshake(String),
}

pub struct FakeRedis {
    pub port: u16,
    pub received: Arc<Mutex<Vec<u8>>>,
    pub accepted: Arc<AtomicUsize>,
}

const INFO: &str = "# Server\r\nredis_version:7.0.15\r\nredis_mode:standalone\r\nrun_id:0123456789abcdef0123456789abcdef01234567\r\nuptime_in_seconds:100\r\n\
# Clients\r\nconnected_clients:1\r\nmaxclients:10000\r\nblocked_clients:0\r\n\
# Stats\r\ntotal_connections_received:10\r\nrejected_connections:0\r\n\
# Replication\r\nrole:master\r\nconnected_slaves:0\r\n";

const CLIENT_LINE: &str = "id=5 addr=127.0.0.1:50000 laddr=127.0.0.1:6379 fd=8 name=redis-clients-exporter age=1 idle=0 flags=N db=0 sub=0 psub=0 ssub=0 multi=-1 qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=1024 rbp=0 obl=0 oll=0 omem=0 tot-mem=1024 events=r cmd=client|list user=default redir=-1 resp=2\n";

impl FakeRedis {
    pub fn start(mode: Hostile) -> FakeRedis {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind fake redis");
        let port = listener.local_addr().expect("addr").port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let accepted = Arc::new(AtomicUsize::new(0));
        let (r, a) = (Arc::clone(&received), Arc::clone(&accepted));
        std::thread::spawn(move || {
            for sock in listener.incoming() {
                let Ok(sock) = sock else { return };
                a.fetch_add(1, Ordering::SeqCst);
                let (mode, r) = (mode.clone(), Arc::clone(&r));
                std::thread::spawn(move || {
                    let _ = serve(sock, &mode, &r);
                });
            }
        });
        FakeRedis {
            port,
            received,
            accepted,
        }
    }

    pub fn received(&self) -> String {
        String::from_utf8_lossy(&self.received.lock().expect("lock")).into_owned()
    }

    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

/// One command: a RESP array of bulk strings.
fn command(r: &mut BufReader<TcpStream>, seen: &Mutex<Vec<u8>>) -> std::io::Result<Vec<String>> {
    let mut line = String::new();
    let header = |r: &mut BufReader<TcpStream>, line: &mut String| -> std::io::Result<i64> {
        line.clear();
        if r.read_line(line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        seen.lock()
            .expect("lock")
            .extend_from_slice(line.as_bytes());
        line.trim_end()[1..]
            .parse()
            .map_err(|_| std::io::ErrorKind::InvalidData.into())
    };
    let n = header(r, &mut line)?;
    let mut args = Vec::new();
    for _ in 0..n {
        let len = header(r, &mut line)? as usize;
        let mut buf = vec![0u8; len + 2];
        r.read_exact(&mut buf)?;
        seen.lock().expect("lock").extend_from_slice(&buf);
        buf.truncate(len);
        args.push(String::from_utf8_lossy(&buf).into_owned());
    }
    Ok(args)
}

fn bulk(s: &str) -> Vec<u8> {
    format!("${}\r\n{s}\r\n", s.len()).into_bytes()
}

/// Writes `n` bytes of filler, `chunk` at a time with `pause` between chunks.
fn stream(w: &mut TcpStream, n: usize, chunk: usize, pause: Duration) -> std::io::Result<()> {
    let block = vec![b'a'; chunk.max(1)];
    let mut left = n;
    while left > 0 {
        let k = left.min(block.len());
        w.write_all(&block[..k])?;
        left -= k;
        if !pause.is_zero() {
            std::thread::sleep(pause);
        }
    }
    w.write_all(b"\r\n")
}

fn serve(sock: TcpStream, mode: &Hostile, seen: &Mutex<Vec<u8>>) -> std::io::Result<()> {
    sock.set_nodelay(true)?;
    let mut w = sock.try_clone()?;
    let mut r = BufReader::new(sock);
    loop {
        let args = command(&mut r, seen)?;
        let upper: Vec<String> = args.iter().map(|a| a.to_ascii_uppercase()).collect();
        let words: Vec<&str> = upper.iter().map(String::as_str).collect();
        let handshake = matches!(
            words.as_slice(),
            ["AUTH", ..] | ["SELECT", ..] | ["CLIENT", "SETNAME", ..] | ["QUIT"]
        );
        if let (Hostile::RefuseHandshake(text), true) = (mode, handshake) {
            w.write_all(format!("-{text}\r\n").as_bytes())?;
            continue;
        }
        if let (Hostile::ErrorText(text), false) = (mode, handshake) {
            w.write_all(format!("-{text}\r\n").as_bytes())?;
            continue;
        }
        if let Hostile::ErrorOn { command, text } = mode {
            if words.join(" ").starts_with(command) {
                w.write_all(format!("-{text}\r\n").as_bytes())?;
                continue;
            }
        }
        match (words.as_slice(), mode) {
            (["QUIT"], _) => {
                w.write_all(b"+OK\r\n")?;
                return Ok(());
            }
            (["INFO", ..], Hostile::HugeInfo { announced }) => {
                w.write_all(format!("${announced}\r\n").as_bytes())?;
                stream(&mut w, *announced, 1 << 16, Duration::ZERO)?;
            }
            (["INFO", ..], Hostile::RawInfo(bytes)) => w.write_all(bytes)?,
            (["INFO", ..], Hostile::SlowDrip { announced, drip }) => {
                w.write_all(format!("${announced}\r\n").as_bytes())?;
                stream(&mut w, *announced, *drip, Duration::from_millis(20))?;
            }
            (["CONFIG", "GET", p], Hostile::HugeConfig { announced }) => {
                w.write_all(format!("*2\r\n${}\r\n{p}\r\n${announced}\r\n", p.len()).as_bytes())?;
                stream(&mut w, *announced, 1 << 16, Duration::ZERO)?;
            }
            (["CONFIG", "GET", _], Hostile::ManyElements { count }) => {
                let mut out = format!("*{count}\r\n").into_bytes();
                for _ in 0..*count {
                    out.extend_from_slice(b":1\r\n");
                }
                w.write_all(&out)?;
            }
            (["CLIENT", "LIST", ..], Hostile::HugeClientList { bytes }) => {
                w.write_all(format!("${bytes}\r\n").as_bytes())?;
                stream(&mut w, *bytes, 1 << 16, Duration::ZERO)?;
            }
            (["CLUSTER", "SHARDS"], Hostile::Cluster { shards, .. }) => w.write_all(shards)?,
            (["CLUSTER", "NODES"], Hostile::Cluster { nodes, .. }) => {
                w.write_all(format!("${}\r\n", nodes.len()).as_bytes())?;
                w.write_all(nodes)?;
                w.write_all(b"\r\n")?;
            }
            (["INFO", ..], _) => w.write_all(&bulk(INFO))?,
            (["PING"], _) => w.write_all(b"+PONG\r\n")?,
            (["CONFIG", "GET", p], _) => {
                let v = match *p {
                    "MAXCLIENTS" => "10000",
                    "TIMEOUT" => "0",
                    "TCP-KEEPALIVE" => "300",
                    _ => "0",
                };
                let p = p.to_ascii_lowercase();
                w.write_all(
                    format!(
                        "*2\r\n{}{}",
                        String::from_utf8_lossy(&bulk(&p)),
                        String::from_utf8_lossy(&bulk(v))
                    )
                    .as_bytes(),
                )?;
            }
            (["CLIENT", "ID"], _) => w.write_all(b":5\r\n")?,
            (["CLIENT", "LIST", ..], _) => w.write_all(&bulk(CLIENT_LINE))?,
            (["CLIENT", ..], _) | (["AUTH", ..], _) | (["SELECT", ..], _) => {
                w.write_all(b"+OK\r\n")?
            }
            _ => w.write_all(b"-ERR unknown command\r\n")?,
        }
    }
}

/// The peak and current resident memory of process `pid`, in KiB (VmHWM, VmRSS).
pub fn memory_kib(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    };
    Some((field("VmHWM:")?, field("VmRSS:")?))
}

/// The shipped container memory limit, in KiB: `limits: memory:` of
/// deploy/kubernetes/deployment.yaml (128Mi; systemd's `MemoryMax=256M` is looser), read from
/// the file so that the tests follow it.
pub fn container_limit_kib() -> u64 {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/kubernetes/deployment.yaml"
    );
    let text = std::fs::read_to_string(path).expect("deployment.yaml");
    let limits = text.split_once("limits:").expect("a limits: block").1;
    let value = limits
        .lines()
        .find_map(|l| l.trim().strip_prefix("memory:"))
        .expect("a memory limit")
        .trim();
    let mib: u64 = value
        .strip_suffix("Mi")
        .and_then(|v| v.parse().ok())
        .expect("a limit in Mi");
    mib * 1024
}
