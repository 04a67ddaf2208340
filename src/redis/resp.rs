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
//! connection): lengths are bounded before anything is allocated for them ([`MAX_BULK`],
//! [`MAX_LINE`], [`MAX_ELEMENTS`], [`MAX_DEPTH`]) and memory grows only as bytes actually
//! arrive, so a header that announces 512 MB costs nothing until 512 MB are sent.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::BufMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

/// The longest bulk string accepted: Redis' own `proto-max-bulk-len` default. A CLIENT LIST of
/// 100,000 clients is ~40 MB.
pub const MAX_BULK: usize = 512 << 20;
/// The longest simple string, error or length line.
pub const MAX_LINE: usize = 64 << 10;
/// Elements of all arrays of one reply, together (CLUSTER SHARDS of a large cluster is a few
/// thousand; a `*` header costs 4 bytes on the wire and a [`Value`] 32 in memory).
pub const MAX_ELEMENTS: usize = 1 << 20;
/// Arrays inside arrays (CLUSTER SHARDS nests four deep).
pub const MAX_DEPTH: usize = 16;
/// What one read asks the socket for.
const READ_CHUNK: usize = 4096;
/// A bulk string announcing more than this is allocated as its bytes arrive (by doubling, at
/// least this much at a time) instead of at once.
const TRUSTED_BULK: usize = 1 << 20;
/// Longest error text kept from a reply: it ends up in logs and in poll errors.
const MAX_ERROR_TEXT: usize = 512;

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

/// The text of an error reply, bounded and without control characters.
fn error_text(line: &[u8]) -> String {
    let text = String::from_utf8_lossy(line);
    let mut out = String::with_capacity(text.len().min(MAX_ERROR_TEXT + 3));
    for c in text.chars() {
        if out.len() + c.len_utf8() > MAX_ERROR_TEXT {
            out.push('…');
            break;
        }
        out.push(if c.is_control() { '\u{fffd}' } else { c });
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

    /// A bulk string of `n` bytes and its CRLF.
    async fn bulk<R: AsyncRead + Unpin>(
        &mut self,
        r: &mut R,
        n: usize,
    ) -> Result<Vec<u8>, RespError> {
        let have = (self.buf.len() - self.pos).min(n);
        let mut out = Vec::with_capacity(if n <= TRUSTED_BULK { n } else { have });
        out.extend_from_slice(&self.buf[self.pos..self.pos + have]);
        self.pos += have;
        while out.len() < n {
            let left = n - out.len();
            if out.capacity() == out.len() {
                out.reserve_exact(left.min(out.len().max(TRUSTED_BULK)));
            }
            // Straight into the reply's own allocation, never past its end: what follows it
            // belongs to the next reply and goes through `buf`.
            let room = (out.capacity() - out.len()).min(left);
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

    /// Reads one whole reply. An error reply is `Err(RespError::Server)`, and leaves the
    /// stream in step.
    pub async fn reply<R: AsyncRead + Unpin>(&mut self, r: &mut R) -> Result<Value, RespError> {
        let v = self.value(r).await;
        if !self.buffered() {
            // Drained: an idle connection keeps no buffer.
            self.buf = Vec::new();
            self.pos = 0;
        }
        match v? {
            Value::Error(e) => Err(RespError::Server(e)),
            v => Ok(v),
        }
    }

    async fn value<R: AsyncRead + Unpin>(&mut self, r: &mut R) -> Result<Value, RespError> {
        // Arrays being filled, innermost last, each with the elements it still expects.
        let mut open: Vec<(Vec<Value>, usize)> = Vec::new();
        let mut elements = 0usize;
        loop {
            let (start, end) = self.line(r).await?;
            let (kind, rest) = (self.buf[start], &self.buf[start + 1..end]);
            let mut v = match kind {
                b'+' => Value::String(String::from_utf8_lossy(rest).into_owned()),
                b'-' => Value::Error(error_text(rest)),
                b':' => Value::Integer(integer(rest)?),
                b'$' => match integer(rest)? {
                    -1 => Value::Null,
                    n if n < 0 => return Err(RespError::Protocol("a negative length")),
                    n if n as u64 > MAX_BULK as u64 => {
                        return Err(RespError::Protocol("a bulk string longer than 512 MB"))
                    }
                    n => match String::from_utf8(self.bulk(r, n as usize).await?) {
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
                        elements = elements.saturating_add(n.min(usize::MAX as u64) as usize);
                        if elements > MAX_ELEMENTS {
                            return Err(RespError::Protocol("more than 2^20 array elements"));
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

    /// Reads every reply of `wire`, fed `step` bytes at a time.
    fn replies(wire: &[u8], step: usize) -> Vec<Result<Value, String>> {
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
                match reader.reply(&mut client).await {
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
            (&b"$536870913\r\n"[..], "longer than 512 MB"),
            (b"*1048577\r\n", "2^20"),
            (b"$-2\r\n", "negative"),
            (b"$abc\r\n", "not a number"),
            (b"!3\r\nabc\r\n", "unknown reply type"),
            (b"+OK\n", "CRLF"),
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
        let got = replies(b"-ERR a\x1b[31mb\r\n", 100);
        assert_eq!(got, vec![Err("ERR a\u{fffd}[31mb".to_string())]);
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
            let v = reader.reply(&mut r).await.expect("bulk");
            assert_eq!(v.as_bytes().map(<[u8]>::len), Some(6000));
            assert_eq!(
                reader.reply(&mut r).await.ok(),
                Some(Value::String("PONG".into()))
            );
            assert_eq!(reader.buf.capacity(), 0);
        });
    }
}
