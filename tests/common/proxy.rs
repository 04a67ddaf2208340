//! A fault-injecting TCP proxy for the reliability tests: listens on 127.0.0.1:0, opens one
//! upstream connection to a real redis-server per accepted client, and either forwards bytes,
//! hangs (keeps every socket open but moves nothing, like a SIGSTOPped server or a dead
//! middlebox), or answers every server reply with junk. All threads poll a stop flag with short
//! read timeouts, so they all end (and are joined) when the proxy is dropped.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// What a client gets instead of the server's reply in [`Mode::Garbage`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Garbage {
    /// Random binary bytes (a fresh batch for every reply chunk).
    RandomBytes,
    /// A bulk string that announces 100 bytes and delivers 3: `$100\r\nabc`.
    TruncatedBulk,
    /// An integer where the command returns a bulk string (INFO, CLIENT LIST): `:42\r\n`.
    WrongType,
    /// An array header with an absurd element count: `*99999999999\r\n`.
    AbsurdLength,
}

impl Garbage {
    pub const ALL: [Garbage; 4] = [
        Garbage::RandomBytes,
        Garbage::TruncatedBulk,
        Garbage::WrongType,
        Garbage::AbsurdLength,
    ];
}

/// The proxy's behaviour, switchable at any time from the test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Forward,
    Hang,
    Garbage(Garbage),
}

impl Mode {
    fn encode(self) -> u8 {
        match self {
            Mode::Forward => 0,
            Mode::Hang => 1,
            Mode::Garbage(Garbage::RandomBytes) => 2,
            Mode::Garbage(Garbage::TruncatedBulk) => 3,
            Mode::Garbage(Garbage::WrongType) => 4,
            Mode::Garbage(Garbage::AbsurdLength) => 5,
        }
    }
    fn decode(v: u8) -> Mode {
        match v {
            1 => Mode::Hang,
            2 => Mode::Garbage(Garbage::RandomBytes),
            3 => Mode::Garbage(Garbage::TruncatedBulk),
            4 => Mode::Garbage(Garbage::WrongType),
            5 => Mode::Garbage(Garbage::AbsurdLength),
            _ => Mode::Forward,
        }
    }
}

/// One proxied connection: both sockets (clones, to shut them down from outside) and a flag
/// that tells its two pump threads to stop.
struct Pair {
    client: TcpStream,
    server: TcpStream,
    closed: Arc<AtomicBool>,
}

impl Pair {
    fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        let _ = self.client.shutdown(Shutdown::Both);
        let _ = self.server.shutdown(Shutdown::Both);
    }
}

struct Shared {
    upstream: SocketAddr,
    mode: AtomicU8,
    stop: AtomicBool,
    pairs: Mutex<Vec<Pair>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    accepted: AtomicU64,
    /// xorshift state for the random garbage.
    rng: AtomicU64,
}

impl Shared {
    fn mode(&self) -> Mode {
        Mode::decode(self.mode.load(Ordering::SeqCst))
    }
    fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }
    fn random_bytes(&self, n: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(n);
        let mut x = self.rng.load(Ordering::Relaxed);
        while out.len() < n {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            out.extend_from_slice(&x.to_le_bytes());
        }
        self.rng.store(x, Ordering::Relaxed);
        out.truncate(n);
        out
    }
    fn junk(&self, g: Garbage) -> Vec<u8> {
        match g {
            Garbage::RandomBytes => self.random_bytes(64),
            Garbage::TruncatedBulk => b"$100\r\nabc".to_vec(),
            Garbage::WrongType => b":42\r\n".to_vec(),
            Garbage::AbsurdLength => b"*99999999999\r\n".to_vec(),
        }
    }
}

/// How long a pump waits in `read` before it looks at the flags again.
const TICK: Duration = Duration::from_millis(20);

pub struct Proxy {
    pub port: u16,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl Proxy {
    /// Starts a proxy in [`Mode::Forward`] in front of `127.0.0.1:upstream_port`.
    pub fn start(upstream_port: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("addr").port();
        let shared = Arc::new(Shared {
            upstream: SocketAddr::from(([127, 0, 0, 1], upstream_port)),
            mode: AtomicU8::new(Mode::Forward.encode()),
            stop: AtomicBool::new(false),
            pairs: Mutex::new(Vec::new()),
            threads: Mutex::new(Vec::new()),
            accepted: AtomicU64::new(0),
            rng: AtomicU64::new(0x9e37_79b9_7f4a_7c15),
        });
        let s = Arc::clone(&shared);
        let acceptor = std::thread::Builder::new()
            .name("proxy-accept".into())
            .spawn(move || accept_loop(listener, s))
            .expect("spawn acceptor");
        Proxy {
            port,
            shared,
            acceptor: Some(acceptor),
        }
    }

    pub fn set_mode(&self, mode: Mode) {
        self.shared.mode.store(mode.encode(), Ordering::SeqCst);
    }

    pub fn mode(&self) -> Mode {
        self.shared.mode()
    }

    /// Closes every current connection, both sides (the client sees EOF/RST, the server sees
    /// its client go away), as a killed server or a network blip would. New connections are
    /// still accepted.
    pub fn drop_all(&self) {
        let pairs = std::mem::take(&mut *self.shared.pairs.lock().unwrap());
        for p in &pairs {
            p.close();
        }
    }

    /// Connections currently proxied (not yet closed by either side).
    pub fn open_connections(&self) -> usize {
        let mut pairs = self.shared.pairs.lock().unwrap();
        pairs.retain(|p| !p.closed.load(Ordering::SeqCst));
        pairs.len()
    }

    /// Connections accepted since the start.
    pub fn accepted(&self) -> u64 {
        self.shared.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(a) = self.acceptor.take() {
            let _ = a.join();
        }
        self.drop_all();
        let threads = std::mem::take(&mut *self.shared.threads.lock().unwrap());
        for t in threads {
            let _ = t.join();
        }
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    while !shared.stopping() {
        let client = match listener.accept() {
            Ok((c, _)) => c,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            }
            Err(_) => {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            }
        };
        shared.accepted.fetch_add(1, Ordering::SeqCst);
        // A server that is down is a refused (here: immediately closed) connection.
        let Ok(server) = TcpStream::connect_timeout(&shared.upstream, Duration::from_secs(2))
        else {
            let _ = client.shutdown(Shutdown::Both);
            continue;
        };
        if client.set_nonblocking(false).is_err() {
            continue;
        }
        let _ = client.set_nodelay(true);
        let _ = server.set_nodelay(true);
        let (Ok(c2), Ok(s2), Ok(c3), Ok(s3)) = (
            client.try_clone(),
            server.try_clone(),
            client.try_clone(),
            server.try_clone(),
        ) else {
            continue;
        };
        let closed = Arc::new(AtomicBool::new(false));
        {
            let mut pairs = shared.pairs.lock().unwrap();
            pairs.retain(|p| !p.closed.load(Ordering::SeqCst));
            pairs.push(Pair {
                client: c3,
                server: s3,
                closed: Arc::clone(&closed),
            });
        }
        let up = {
            let (shared, closed) = (Arc::clone(&shared), Arc::clone(&closed));
            std::thread::spawn(move || pump(client, s2, false, &shared, &closed))
        };
        let down = {
            let (shared, closed) = (Arc::clone(&shared), Arc::clone(&closed));
            std::thread::spawn(move || pump(server, c2, true, &shared, &closed))
        };
        let mut threads = shared.threads.lock().unwrap();
        threads.retain(|t| !t.is_finished());
        threads.push(up);
        threads.push(down);
    }
}

/// Moves bytes from `src` to `dst` until either side closes, the pair is closed, or the proxy
/// stops. `to_client` is the server-to-client direction, where garbage replaces replies.
fn pump(
    mut src: TcpStream,
    mut dst: TcpStream,
    to_client: bool,
    shared: &Shared,
    closed: &AtomicBool,
) {
    if src.set_read_timeout(Some(TICK)).is_err() {
        closed.store(true, Ordering::SeqCst);
        return;
    }
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if shared.stopping() || closed.load(Ordering::SeqCst) {
            break;
        }
        if shared.mode() == Mode::Hang {
            // Read nothing: the bytes wait in the kernel, as with a stopped process.
            std::thread::sleep(TICK);
            continue;
        }
        let n = match src.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(_) => break,
        };
        // The mode may have changed while we were reading: the latest one wins.
        let out: Vec<u8> = match shared.mode() {
            Mode::Garbage(g) if to_client => shared.junk(g),
            // Data read just before a switch to Hang is still delivered; Hang stops what follows.
            _ => buf[..n].to_vec(),
        };
        if dst.write_all(&out).is_err() {
            break;
        }
    }
    closed.store(true, Ordering::SeqCst);
    let _ = src.shutdown(Shutdown::Both);
    let _ = dst.shutdown(Shutdown::Both);
}
