//! RESP2, the Redis protocol, on one byte stream: commands encoded into a reused buffer,
//! replies read with a small buffer that is given back when it holds nothing.
//!
//! Why our own and not a client library's: the exporter holds one connection per target for
//! good, thousands of them, and sends a handful of commands one after the other (at most one
//! ahead, see src/redis/chunked.rs). fred 10 kept about 140 kB per connection whatever it
//! carried (a 64 kB read buffer, a 64-command queue, channels and a routing task, none of it
//! configurable), which made an idle target cost ~210 kB (issue 20). Here an idle connection
//! holds its socket and nothing else: the read buffer is freed once it is drained, and a large
//! bulk reply (INFO, CLIENT LIST) is read straight into one allocation of its exact size.
//!
//! Everything read is untrusted (a hostile server, or anything in the middle of a plain TCP
//! connection): lengths are bounded before anything is allocated for them, by what a real
//! server can answer to the command asked ([`Limits`]) and by [`MAX_LINE`] and [`MAX_DEPTH`];
//! memory grows only as bytes actually arrive; and large bulk strings are charged to one
//! process-wide budget ([`REPLY_BUDGET`]), so that many hostile ports cannot add up.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use bytes::BufMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

/// The longest bulk string any reply may be: Redis' own `proto-max-bulk-len` default. Each
/// command's replies have a much smaller bound ([`Limits`]), and every large one is charged to
/// the process-wide [`REPLY_BUDGET`].
pub const MAX_BULK: usize = 512 << 20;
/// The longest simple string, error or length line.
pub const MAX_LINE: usize = 64 << 10;
/// Elements of all arrays of one reply, together, whatever the command.
pub const MAX_ELEMENTS: usize = 1 << 20;
/// Arrays inside arrays (CLUSTER SHARDS nests four deep).
pub const MAX_DEPTH: usize = 16;
/// Bytes of large bulk strings (each over [`CHARGED_FROM`]) being read or still held by the
/// code that asked for them, across every connection of the process: N hostile ports cannot add
/// up past it. 48 MiB holds the largest real reply the exporter asks for (a full CLIENT LIST of
/// 100,000 clients is ~40 MB; a chunk of 500 clients ~200 kB) and keeps the exporter under the
/// shipped container limit (128 MiB) with its own ~50 MiB of 1,000 targets.
pub const REPLY_BUDGET: usize = 48 << 20;
/// Bulk strings up to this size are not charged to the budget: every connection may hold one
/// (a small INFO, a CONFIG value), and they are bounded by the number of targets.
pub const CHARGED_FROM: usize = 64 << 10;
/// A bulk string longer than this gets an allocation of at least [`ALWAYS_MAPPED`] bytes of
/// capacity: glibc's malloc serves that with its own mapping and unmaps it when freed, whatever
/// its adaptive threshold says. A smaller large allocation comes from a heap arena, which keeps
/// freed memory for the next one: with several worker threads (each its own arena), freed
/// replies of 16 MiB added up to 10 times the memory budget (tests/hostile_peers.rs). The pages
/// past the reply's length are never touched, so never resident.
const MAPPED_FROM: usize = 1 << 20;
/// Above glibc's largest adaptive mmap threshold (32 MiB on 64-bit systems).
const ALWAYS_MAPPED: usize = (32 << 20) + 4096;
/// Array elements of one reply up to this many are not charged to the budget; past it each
/// costs [`ELEMENT_COST`].
const CHARGED_ELEMENTS_FROM: usize = 1024;
/// What an element of a reply holds: a [`Value`] (32 bytes) and a short string's allocation.
const ELEMENT_COST: usize = 64;
/// What one read asks the socket for.
const READ_CHUNK: usize = 4096;
/// Longest error text kept from a reply: it ends up in logs and in poll errors.
const MAX_ERROR_TEXT: usize = 512;

/// The largest reply a real server can send to one command: the longest bulk string and the
/// array elements of the whole reply. A reply past them is a protocol error, found before
/// anything is allocated for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub bulk: usize,
    pub elements: usize,
}

impl Limits {
    /// Status replies, integers, `CONFIG GET` pairs, `CLIENT ID`: a value is a few bytes to
    /// a few kB (a `save` schedule, `client-output-buffer-limit`).
    pub const SMALL: Limits = Limits {
        bulk: 64 << 10,
        elements: 1024,
    };
    /// `INFO`: ~7 kB for `INFO everything` on Redis 7 (tests/fixtures), a few 100 kB with
    /// thousands of commandstats, errorstats and keyspace lines: 1 MiB.
    pub const INFO: Limits = Limits {
        bulk: 1 << 20,
        elements: 0,
    };
    /// `CLUSTER SHARDS` / `CLUSTER NODES`: ~22 elements a node in SHARDS (2^19 is ~20,000
    /// nodes, twenty times Redis Cluster's design limit; `discovery_max_nodes` keeps the first
    /// of them), ~1 kB a node in NODES, slot ranges at most 16,384 in all.
    pub const CLUSTER: Limits = Limits {
        bulk: 4 << 20,
        elements: 1 << 19,
    };
    /// `SENTINEL MASTER` / `REPLICAS`: ~40 fields per replica.
    pub const SENTINEL: Limits = Limits {
        bulk: 64 << 10,
        elements: 1 << 16,
    };
    /// A CLIENT LIST line is ~300-400 bytes of fields plus the connection's name, user and
    /// library: 2 KiB per line, and room for a few names of several MiB (CLIENT SETNAME takes
    /// them) in the whole reply.
    pub const CLIENT_LINE: usize = 2 << 10;
    pub const CLIENT_LIST_OUTLIERS: usize = 16 << 20;

    /// CLIENT LIST of at most `lines` connections (a chunk's ids, or the count INFO reported
    /// with a margin for those that connected since).
    pub fn client_list(lines: usize) -> Limits {
        Limits {
            bulk: lines
                .saturating_mul(Self::CLIENT_LINE)
                .saturating_add(Self::CLIENT_LIST_OUTLIERS)
                .min(MAX_BULK),
            elements: 0,
        }
    }
}

/// Bytes of large bulk strings read or being read, process-wide (see [`REPLY_BUDGET`]).
static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

/// The budget's bytes in use now.
pub fn in_flight() -> usize {
    IN_FLIGHT.load(Ordering::Relaxed)
}

/// A reply's share of [`REPLY_BUDGET`], given back when dropped: whoever keeps the reply's
/// bytes keeps this with them.
#[derive(Debug, Default)]
pub struct Charge(usize);

impl Charge {
    fn take(&mut self, n: usize) -> Result<(), RespError> {
        let before = IN_FLIGHT.fetch_add(n, Ordering::Relaxed);
        if before.saturating_add(n) > REPLY_BUDGET {
            IN_FLIGHT.fetch_sub(n, Ordering::Relaxed);
            return Err(RespError::Protocol(
                "a reply past the exporter's memory budget for replies in flight",
            ));
        }
        self.0 += n;
        Ok(())
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        if self.0 > 0 {
            IN_FLIGHT.fetch_sub(self.0, Ordering::Relaxed);
        }
    }
}

/// A reply, or an element of one.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A null bulk string or array.
    Null,
    Integer(i64),
    /// A simple string, or a bulk string that is UTF-8.
    String(String),
    /// A bulk string that is not UTF-8, as sent (Redis allows any byte in names and users).
    Bytes(Vec<u8>),
    Array(Vec<Value>),
    /// An error reply inside an array; one on its own is [`RespError::Server`].
    Error(String),
}

impl Value {
    /// An integer reply, or a string that holds one.
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Value::Integer(i) => u64::try_from(*i).ok(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    /// The bytes of a string reply.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::String(s) => Some(s.as_bytes()),
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// An array of strings (CONFIG GET's pairs), lossily decoded; `None` for anything else.
    pub fn into_strings(self) -> Option<Vec<String>> {
        match self {
            Value::Array(items) => items
                .into_iter()
                .map(|v| match v {
                    Value::String(s) => Some(s),
                    Value::Bytes(b) => Some(String::from_utf8_lossy(&b).into_owned()),
                    _ => None,
                })
                .collect(),
            _ => None,
        }
    }
}

/// Why a reply could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RespError {
    /// An error reply (`-ERR ...`), its text cut to a few hundred bytes, control characters
    /// replaced: it comes from the server and ends up in logs.
    #[error("{0}")]
    Server(String),
    #[error("the server closed the connection")]
    Closed,
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("not a RESP reply: {0}")]
    Protocol(&'static str),
}

/// A command's arguments, written without an intermediate string per argument.
#[derive(Debug, Clone, Copy)]
pub enum Arg<'a> {
    Str(&'a str),
    Int(u64),
}

/// Appends one command, as a RESP array of bulk strings, to `out`.
pub fn encode<'a>(out: &mut Vec<u8>, args: impl IntoIterator<Item = Arg<'a>>) {
    let start = out.len();
    let mut count = 0u64;
    let mut digits = [0u8; 20];
    for a in args {
        count += 1;
        let bytes = match a {
            Arg::Str(s) => s.as_bytes(),
            Arg::Int(n) => decimal(n, &mut digits),
        };
        out.push(b'$');
        push_decimal(out, bytes.len() as u64);
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(bytes);
        out.extend_from_slice(b"\r\n");
    }
    // The count goes first; counted while writing, it cannot disagree with the arguments.
    let mut head = [0u8; 23];
    head[0] = b'*';
    let n = decimal(count, &mut digits).len();
    head[1..1 + n].copy_from_slice(decimal(count, &mut digits));
    head[1 + n..3 + n].copy_from_slice(b"\r\n");
    out.splice(start..start, head[..3 + n].iter().copied());
}

/// `n` in decimal, in the tail of `buf`.
fn decimal(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[i..];
        }
    }
}

fn push_decimal(out: &mut Vec<u8>, n: u64) {
    let mut digits = [0u8; 20];
    out.extend_from_slice(decimal(n, &mut digits));
}

/// The text of an error reply, bounded, every character that could forge a log line escaped
/// (`redis::untrusted`, the one rule).
fn error_text(line: &[u8]) -> String {
    let text = String::from_utf8_lossy(line);
    let mut out = String::with_capacity(text.len().min(MAX_ERROR_TEXT + 3));
    let mut one = [0u8; 4];
    for c in text.chars() {
        let piece = crate::redis::untrusted::escape(c.encode_utf8(&mut one), 1);
        if out.len() + piece.len() > MAX_ERROR_TEXT {
            out.push('…');
            break;
        }
        out.push_str(&piece);
    }
    out
}

/// Parses a length or integer line.
fn integer(line: &[u8]) -> Result<i64, RespError> {
    std::str::from_utf8(line)
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or(RespError::Protocol(
            "a length or integer that is not a number",
        ))
}

/// Reads replies from a stream. Cancel-safe while it waits for the first byte of a reply (see
/// [`Reader::ready`]); a read cancelled after that leaves the stream out of step.
#[derive(Default)]
pub struct Reader {
    /// Bytes read and not yet consumed are `buf[pos..]`. Freed whenever it is drained, so that
    /// an idle connection holds no buffer.
    buf: Vec<u8>,
    pos: usize,
}

impl Reader {
    /// Whether bytes of a next reply are already here (read along with the last one).
    pub fn buffered(&self) -> bool {
        self.pos < self.buf.len()
    }

    /// Waits until at least one byte of the next reply is buffered. Cancel-safe: a read that
    /// does not complete consumes nothing.
    pub async fn ready<R: AsyncRead + Unpin>(&mut self, r: &mut R) -> Result<(), RespError> {
        if self.buffered() {
            return Ok(());
        }
        self.fill(r).await
    }

    /// Reads one more chunk from `r` into the buffer.
    async fn fill<R: AsyncRead + Unpin>(&mut self, r: &mut R) -> Result<(), RespError> {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        if self.buf.capacity() - self.buf.len() < READ_CHUNK / 2 {
            self.buf.reserve(READ_CHUNK);
        }
        match r.read_buf(&mut self.buf).await? {
            0 => Err(RespError::Closed),
            _ => Ok(()),
        }
    }

    /// The next line, without its CRLF: its start and end in `buf`.
    async fn line<R: AsyncRead + Unpin>(&mut self, r: &mut R) -> Result<(usize, usize), RespError> {
        let mut searched = self.pos;
        loop {
            if let Some(i) = memchr::memchr(b'\n', &self.buf[searched..]) {
                let end = searched + i;
                if end == self.pos || self.buf[end - 1] != b'\r' {
                    return Err(RespError::Protocol("a line that does not end in CRLF"));
                }
                let start = self.pos;
                self.pos = end + 1;
                return Ok((start, end - 1));
            }
            if self.buf.len() - self.pos > MAX_LINE {
                return Err(RespError::Protocol("a line longer than 64 KiB"));
            }
            let consumed = self.pos;
            searched = self.buf.len();
            self.fill(r).await?;
            // `fill` moved the unread bytes to the front.
            searched -= consumed;
        }
    }

    /// A bulk string of `n` bytes and its CRLF, read into one allocation of its size (no
    /// copy as it grows). One over [`CHARGED_FROM`] is charged to `charge` whole before it is
    /// allocated; its pages become resident only as its bytes arrive.
    async fn bulk<R: AsyncRead + Unpin>(
        &mut self,
        r: &mut R,
        n: usize,
        charge: &mut Charge,
    ) -> Result<Vec<u8>, RespError> {
        if n > CHARGED_FROM {
            charge.take(n)?;
        }
        let have = (self.buf.len() - self.pos).min(n);
        let mut out = Vec::with_capacity(if n > MAPPED_FROM {
            n.max(ALWAYS_MAPPED)
        } else {
            n
        });
        out.extend_from_slice(&self.buf[self.pos..self.pos + have]);
        self.pos += have;
        while out.len() < n {
            // Straight into the reply's own allocation, never past its end: what follows it
            // belongs to the next reply and goes through `buf`.
            let room = n - out.len();
            if r.read_buf(&mut (&mut out).limit(room)).await? == 0 {
                return Err(RespError::Closed);
            }
        }
        while self.buf.len() - self.pos < 2 {
            self.fill(r).await?;
        }
        if &self.buf[self.pos..self.pos + 2] != b"\r\n" {
            return Err(RespError::Protocol("a bulk string longer than announced"));
        }
        self.pos += 2;
        Ok(out)
    }

    /// Reads one whole reply, within `limits`; its large bulk strings' share of the memory
    /// budget comes with it. An error reply is `Err(RespError::Server)`, and leaves the stream
    /// in step.
    pub async fn reply<R: AsyncRead + Unpin>(
        &mut self,
        r: &mut R,
        limits: Limits,
    ) -> Result<(Value, Charge), RespError> {
        let mut charge = Charge::default();
        let v = self.value(r, limits, &mut charge).await;
        if !self.buffered() {
            // Drained: an idle connection keeps no buffer.
            self.buf = Vec::new();
            self.pos = 0;
        }
        match v? {
            Value::Error(e) => Err(RespError::Server(e)),
            v => Ok((v, charge)),
        }
    }

    async fn value<R: AsyncRead + Unpin>(
        &mut self,
        r: &mut R,
        limits: Limits,
        charge: &mut Charge,
    ) -> Result<Value, RespError> {
        // Arrays being filled, innermost last, each with the elements it still expects.
        let mut open: Vec<(Vec<Value>, usize)> = Vec::new();
        let mut elements = 0usize;
        loop {
            let (start, end) = self.line(r).await?;
            // An empty line has no type byte (found by tests/resp_properties.rs: it panicked).
            let Some((&kind, rest)) = self.buf[start..end].split_first() else {
                return Err(RespError::Protocol("an empty line"));
            };
            let mut v = match kind {
                b'+' => Value::String(String::from_utf8_lossy(rest).into_owned()),
                b'-' => Value::Error(error_text(rest)),
                b':' => Value::Integer(integer(rest)?),
                b'$' => match integer(rest)? {
                    -1 => Value::Null,
                    n if n < 0 => return Err(RespError::Protocol("a negative length")),
                    n if n as u64 > limits.bulk.min(MAX_BULK) as u64 => {
                        return Err(RespError::Protocol(
                            "a bulk string longer than any reply to this command",
                        ))
                    }
                    n => match String::from_utf8(self.bulk(r, n as usize, charge).await?) {
                        Ok(s) => Value::String(s),
                        Err(e) => Value::Bytes(e.into_bytes()),
                    },
                },
                b'*' => match integer(rest)? {
                    -1 => Value::Null,
                    n if n < 0 => return Err(RespError::Protocol("a negative length")),
                    0 => Value::Array(Vec::new()),
                    n => {
                        let n = n as u64;
                        let before = elements;
                        elements = elements.saturating_add(n.min(usize::MAX as u64) as usize);
                        if elements > limits.elements.min(MAX_ELEMENTS) {
                            return Err(RespError::Protocol(
                                "more array elements than any reply to this command",
                            ));
                        }
                        // A large array's elements are memory too (a `Value` and a small
                        // string each): charged like a large bulk string.
                        let over = |e: usize| e.saturating_sub(CHARGED_ELEMENTS_FROM);
                        let new = over(elements) - over(before);
                        if new > 0 {
                            charge.take(new * ELEMENT_COST)?;
                        }
                        if open.len() >= MAX_DEPTH {
                            return Err(RespError::Protocol("arrays nested too deep"));
                        }
                        let n = n as usize;
                        open.push((Vec::with_capacity(n.min(64)), n));
                        continue;
                    }
                },
                _ => return Err(RespError::Protocol("an unknown reply type")),
            };
            // Hand the value to the array it completes, and close every array it completes.
            loop {
                let Some((items, left)) = open.last_mut() else {
                    return Ok(v);
                };
                items.push(v);
                *left -= 1;
                if *left > 0 {
                    break;
                }
                let Some((items, _)) = open.pop() else {
                    return Err(RespError::Protocol("unbalanced arrays"));
                };
                v = Value::Array(items);
            }
        }
    }
}

/// The byte stream of a connection: TCP, TLS over TCP, or a Unix socket.
pub enum Stream {
    Tcp(tokio::net::TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>),
    Unix(tokio::net::UnixStream),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Stream::Unix(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Stream::Unix(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Stream::Unix(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Stream::Unix(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOOSE: Limits = Limits {
        bulk: MAX_BULK,
        elements: MAX_ELEMENTS,
    };

    /// Reads every reply of `wire`, fed `step` bytes at a time.
    fn replies(wire: &[u8], step: usize) -> Vec<Result<Value, String>> {
        replies_within(wire, step, LOOSE)
    }

    fn replies_within(wire: &[u8], step: usize, limits: Limits) -> Vec<Result<Value, String>> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let (mut client, mut server) = tokio::io::duplex(64);
            let data = wire.to_vec();
            let writer = tokio::spawn(async move {
                use tokio::io::AsyncWriteExt;
                for c in data.chunks(step) {
                    if server.write_all(c).await.is_err() {
                        return;
                    }
                }
            });
            let mut reader = Reader::default();
            let mut out = Vec::new();
            loop {
                match reader.reply(&mut client, limits).await.map(|(v, _)| v) {
                    Err(RespError::Closed) => break,
                    Err(e @ (RespError::Protocol(_) | RespError::Io(_))) => {
                        out.push(Err(e.to_string()));
                        break;
                    }
                    r => out.push(r.map_err(|e| e.to_string())),
                }
            }
            let _ = writer.await;
            out
        })
    }

    #[test]
    fn every_reply_type_in_any_split() {
        let wire = b"+OK\r\n-ERR no\r\n:42\r\n$5\r\nhe\r\nl\r\n$-1\r\n*-1\r\n*0\r\n\
            *2\r\n*2\r\n:1\r\n$1\r\na\r\n+x\r\n$2\r\n\xff\xfe\r\n$0\r\n\r\n";
        let want = vec![
            Ok(Value::String("OK".into())),
            Err("ERR no".to_string()),
            Ok(Value::Integer(42)),
            Ok(Value::String("he\r\nl".into())),
            Ok(Value::Null),
            Ok(Value::Null),
            Ok(Value::Array(vec![])),
            Ok(Value::Array(vec![
                Value::Array(vec![Value::Integer(1), Value::String("a".into())]),
                Value::String("x".into()),
            ])),
            Ok(Value::Bytes(vec![0xff, 0xfe])),
            Ok(Value::String(String::new())),
        ];
        for step in [1, 2, 3, 7, 64, wire.len()] {
            assert_eq!(replies(wire, step), want, "fed {step} bytes at a time");
        }
    }

    #[test]
    fn hostile_headers_are_refused_before_anything_is_allocated() {
        for (wire, what) in [
            (&b"$536870913\r\n"[..], "longer than any reply"),
            (b"*1048577\r\n", "more array elements"),
            (b"$-2\r\n", "negative"),
            (b"$abc\r\n", "not a number"),
            (b"!3\r\nabc\r\n", "unknown reply type"),
            (b"+OK\n", "CRLF"),
            (b"\r\n", "empty line"),
            (b"*2\r\n:1\r\n\r\n", "empty line"),
            (b"$3\r\nabcd\r\n", "longer than announced"),
            (
                &[b"*1\r\n".repeat(17), b":1\r\n".to_vec()].concat(),
                "too deep",
            ),
        ] {
            let got = replies(wire, 3);
            assert!(
                matches!(got.last(), Some(Err(e)) if e.contains(what)),
                "{:?}: {got:?}",
                String::from_utf8_lossy(wire)
            );
        }
        // A line with no end is refused once it passes the bound, not buffered for ever.
        let long = [b"+".to_vec(), vec![b'a'; MAX_LINE + 10]].concat();
        assert!(matches!(replies(&long, 4096).last(), Some(Err(e)) if e.contains("64 KiB")));
        // A bulk string cut short is a closed connection, not a value.
        assert_eq!(replies(b"$10\r\nabc", 2), vec![]);
    }

    #[test]
    fn error_text_is_bounded_and_has_no_control_characters() {
        let long = format!("-ERR {}\x1b[31m\r\n", "x".repeat(2000));
        let got = replies(long.as_bytes(), 100);
        let Some(Err(e)) = got.first() else {
            panic!("{got:?}")
        };
        assert!(e.len() <= MAX_ERROR_TEXT + 3 && e.ends_with('…'), "{e}");
        let got = replies("-ERR a\x1b[31mb\u{202e}c\u{2028}d\r\n".as_bytes(), 100);
        assert_eq!(
            got,
            vec![Err("ERR a\\u{1b}[31mb\\u{202e}c\\u{2028}d".to_string())]
        );
    }

    #[test]
    fn commands_are_arrays_of_bulk_strings() {
        let mut out = Vec::new();
        encode(
            &mut out,
            [
                Arg::Str("CLIENT"),
                Arg::Str("LIST"),
                Arg::Int(0),
                Arg::Int(u64::MAX),
            ],
        );
        assert_eq!(
            out,
            b"*4\r\n$6\r\nCLIENT\r\n$4\r\nLIST\r\n$1\r\n0\r\n$20\r\n18446744073709551615\r\n"
        );
    }

    #[test]
    fn a_drained_reader_holds_no_buffer() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let wire = b"$6000\r\n"
                .iter()
                .copied()
                .chain(std::iter::repeat_n(b'a', 6000));
            let wire: Vec<u8> = wire.chain(*b"\r\n+PONG\r\n").collect();
            let mut r = &wire[..];
            let mut reader = Reader::default();
            let (v, _) = reader.reply(&mut r, LOOSE).await.expect("bulk");
            assert_eq!(v.as_bytes().map(<[u8]>::len), Some(6000));
            assert_eq!(
                reader.reply(&mut r, LOOSE).await.ok().map(|(v, _)| v),
                Some(Value::String("PONG".into()))
            );
            assert_eq!(reader.buf.capacity(), 0);
        });
    }

    #[test]
    fn each_command_s_limits_refuse_a_larger_reply_before_it_is_read() {
        let small = Limits {
            bulk: 10,
            elements: 2,
        };
        let got = replies_within(b"$11\r\n", 3, small);
        assert!(matches!(got.last(), Some(Err(e)) if e.contains("longer than any reply")));
        let got = replies_within(b"*2\r\n*1\r\n", 3, small);
        assert!(matches!(got.last(), Some(Err(e)) if e.contains("more array elements")));
        let got = replies_within(b"$10\r\n0123456789\r\n*2\r\n:1\r\n:2\r\n", 3, small);
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(Limits::client_list(500).bulk < 20 << 20);
    }

    #[test]
    fn large_replies_are_charged_to_the_budget_until_dropped_and_refused_past_it() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let n = 300 << 10;
            let wire: Vec<u8> = [
                format!("${n}\r\n").into_bytes(),
                vec![b'a'; n],
                b"\r\n".to_vec(),
            ]
            .concat();
            let before = in_flight();
            let mut reader = Reader::default();
            let mut r = &wire[..];
            let (v, charge) = reader.reply(&mut r, LOOSE).await.expect("bulk");
            assert_eq!(v.as_bytes().map(<[u8]>::len), Some(n));
            assert!(in_flight() >= before + n, "charged while held");
            drop((v, charge));
            // Other tests of this process may hold some; ours is given back.
            assert!(in_flight() < before + n);

            // Past the budget: refused (the header alone announces less than MAX_BULK).
            let held: Vec<Charge> = (0..REPLY_BUDGET / (8 << 20))
                .map(|_| {
                    let mut c = Charge::default();
                    c.take(8 << 20).expect("room");
                    c
                })
                .collect();
            let mut r = &wire[..];
            let got = reader.reply(&mut r, LOOSE).await;
            assert!(
                matches!(&got, Err(RespError::Protocol(m)) if m.contains("memory budget")),
                "{got:?}"
            );
            drop(held);
        });
    }
}
