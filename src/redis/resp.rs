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
//! This file is the I/O half: the socket kinds, commands written out, and the `Reader` loop
//! (read, feed the decoder). Decoding a reply, with every bound on what a hostile server may
//! send, is src/redis/frame.rs, synchronous and tested without a socket; its types are
//! re-exported here, so callers name one module.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

pub use crate::redis::frame::{
    in_flight, Charge, Decoder, Limits, RespError, Value, CHARGED_FROM, MAX_BULK, MAX_DEPTH,
    MAX_ELEMENTS, MAX_LINE, REPLY_BUDGET,
};

/// What one read asks the socket for.
const READ_CHUNK: usize = 4096;

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

/// Reads replies from a stream: the I/O half, feeding [`Decoder`] (src/redis/frame.rs). A
/// reply's partial state lives in the decoder, not in the future, so a read cancelled at any
/// point consumes only bytes the decoder has kept; [`Reader::ready`] consumes nothing.
#[derive(Default)]
pub struct Reader {
    /// Bytes read and not yet consumed are `buf[pos..]`. Freed whenever it is drained, so that
    /// an idle connection holds no buffer.
    buf: Vec<u8>,
    pos: usize,
    decoder: Decoder,
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

    /// Reads one whole reply, within `limits`; its large bulk strings' share of the memory
    /// budget comes with it. An error reply is `Err(RespError::Server)`, and leaves the stream
    /// in step.
    pub async fn reply<R: AsyncRead + Unpin>(
        &mut self,
        r: &mut R,
        limits: Limits,
    ) -> Result<(Value, Charge), RespError> {
        let got = self.next(r, limits).await;
        if got.is_err() {
            self.decoder.reset();
        }
        if !self.buffered() {
            // Drained: an idle connection keeps no buffer.
            self.buf = Vec::new();
            self.pos = 0;
        }
        match got? {
            (Value::Error(e), _) => Err(RespError::Server(e)),
            reply => Ok(reply),
        }
    }

    async fn next<R: AsyncRead + Unpin>(
        &mut self,
        r: &mut R,
        limits: Limits,
    ) -> Result<(Value, Charge), RespError> {
        loop {
            let progress = self.decoder.decode(&self.buf[self.pos..], limits)?;
            self.pos += progress.consumed;
            if let Some(reply) = progress.reply {
                return Ok(reply);
            }
            // A bulk string still short of bytes has taken all of `buf`: read straight into its
            // own allocation, never past its end (what follows goes through `buf`).
            if let Some(mut room) = self.decoder.bulk_room() {
                if r.read_buf(&mut room).await? == 0 {
                    return Err(RespError::Closed);
                }
                continue;
            }
            self.fill(r).await?;
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
    use crate::redis::frame::MAX_ERROR_TEXT;

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
    fn a_reply_cancelled_half_way_is_taken_up_where_it_stopped() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime");
        rt.block_on(async {
            use tokio::io::AsyncWriteExt;
            let (mut client, mut server) = tokio::io::duplex(64);
            server.write_all(b"*2\r\n$10\r\nabc").await.expect("write");
            let mut reader = Reader::default();
            let wait = std::time::Duration::from_millis(50);
            let got = tokio::time::timeout(wait, reader.reply(&mut client, LOOSE)).await;
            assert!(got.is_err(), "no reply yet: {got:?}");
            server.write_all(b"defghij\r\n:1\r\n").await.expect("write");
            let (v, _) = reader.reply(&mut client, LOOSE).await.expect("reply");
            assert_eq!(
                v,
                Value::Array(vec![Value::String("abcdefghij".into()), Value::Integer(1)])
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
