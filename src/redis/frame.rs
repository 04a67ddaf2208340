//! The RESP2 reply decoder, with no I/O: bytes in, replies out. [`Decoder::decode`] takes what
//! has arrived so far, consumes what it can and keeps the reply's partial state (open arrays, a
//! bulk string being filled, its share of the memory budget), so a reply may come in any pieces
//! and decodes the same; src/redis/resp.rs's `Reader` only reads from the socket and feeds it.
//! The split follows tokio-rs/mini-redis (frame.rs parses, connection.rs does I/O), except that
//! nothing here trusts a length from the wire and nothing is parsed twice: a partial reply is
//! carried over, not checked again from its start.
//!
//! Everything read is untrusted (a hostile server, or anything in the middle of a plain TCP
//! connection): lengths are bounded before anything is allocated for them, by what a real
//! server can answer to the command asked ([`Limits`]) and by [`MAX_LINE`] and [`MAX_DEPTH`];
//! memory grows only as bytes actually arrive; and large bulk strings are charged to one
//! process-wide budget ([`REPLY_BUDGET`]), so that many hostile ports cannot add up.

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::buf::Limit;
use bytes::BufMut;

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
/// Longest error text kept from a reply: it ends up in logs and in poll errors.
pub(crate) const MAX_ERROR_TEXT: usize = 512;

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
    pub(crate) fn take(&mut self, n: usize) -> Result<(), RespError> {
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

/// What one [`Decoder::decode`] call did: the bytes it consumed from the front of the buffer,
/// and the reply it completed, if one. An error reply on its own is a [`Value::Error`] here
/// (`Reader::reply` makes it [`RespError::Server`]).
#[derive(Debug)]
pub struct Progress {
    pub consumed: usize,
    pub reply: Option<(Value, Charge)>,
}

/// A bulk string being filled: its one allocation, and the length announced.
#[derive(Debug)]
struct PendingBulk {
    bytes: Vec<u8>,
    len: usize,
}

/// The state of one reply between pieces of it. Empty (and holding no allocation) between
/// replies, and after an error.
#[derive(Debug, Default)]
pub struct Decoder {
    /// Arrays being filled, innermost last, each with the elements it still expects.
    open: Vec<(Vec<Value>, usize)>,
    /// Array elements announced so far in this reply, against `Limits::elements`.
    elements: usize,
    /// This reply's share of the budget: its large bulk strings and its many elements.
    charge: Charge,
    bulk: Option<PendingBulk>,
    /// Bytes at the front of the buffer already searched for the end of the line they begin:
    /// a long line that comes in pieces is searched once, not again from its start.
    searched: usize,
}

impl Decoder {
    /// Consumes what it can of `buf`, the bytes received and not yet consumed, up to the end of
    /// one reply. Call again with the bytes not consumed and those that arrived since: a line
    /// cut short is left in `buf` (consumed once whole), a bulk string is consumed into its own
    /// allocation as it comes. No reply means more bytes are needed (all of `buf` may have been
    /// consumed, into a bulk string). An error leaves the decoder empty; the stream is out of
    /// step.
    pub fn decode(&mut self, buf: &[u8], limits: Limits) -> Result<Progress, RespError> {
        let got = self.step(buf, limits);
        if got.is_err() {
            self.reset();
        }
        got
    }

    /// Whether a reply is under way (some of it consumed).
    pub fn is_partial(&self) -> bool {
        !self.open.is_empty() || self.bulk.is_some()
    }

    /// Forgets the partial reply (and gives back its share of the budget).
    pub fn reset(&mut self) {
        *self = Decoder::default();
    }

    /// Room left in the bulk string being filled, for a reader to read the socket straight into
    /// it (no copy through a buffer): never past its announced length, since what follows
    /// belongs to the next element. `None` when no bulk string is waiting for bytes.
    pub fn bulk_room(&mut self) -> Option<Limit<&mut Vec<u8>>> {
        let bulk = self.bulk.as_mut()?;
        let room = bulk.len.saturating_sub(bulk.bytes.len());
        (room > 0).then(|| (&mut bulk.bytes).limit(room))
    }

    fn step(&mut self, buf: &[u8], limits: Limits) -> Result<Progress, RespError> {
        let mut at = 0;
        loop {
            let value = if let Some(bulk) = &mut self.bulk {
                let take = bulk
                    .len
                    .saturating_sub(bulk.bytes.len())
                    .min(buf.len() - at);
                bulk.bytes.extend_from_slice(&buf[at..at + take]);
                at += take;
                if bulk.bytes.len() < bulk.len || buf.len() - at < 2 {
                    return Ok(Progress {
                        consumed: at,
                        reply: None,
                    });
                }
                if &buf[at..at + 2] != b"\r\n" {
                    return Err(RespError::Protocol("a bulk string longer than announced"));
                }
                at += 2;
                let Some(bulk) = self.bulk.take() else {
                    continue;
                };
                match String::from_utf8(bulk.bytes) {
                    Ok(s) => Value::String(s),
                    Err(e) => Value::Bytes(e.into_bytes()),
                }
            } else {
                let Some(len) = self.line(&buf[at..])? else {
                    return Ok(Progress {
                        consumed: at,
                        reply: None,
                    });
                };
                let line = &buf[at..at + len];
                at += len + 2;
                match self.header(line, limits)? {
                    Some(v) => v,
                    None => continue,
                }
            };
            if let Some(reply) = self.complete(value) {
                return Ok(Progress {
                    consumed: at,
                    reply: Some(reply),
                });
            }
        }
    }

    /// The length of the line `buf` begins with, without its CRLF; `None` until it is whole.
    fn line(&mut self, buf: &[u8]) -> Result<Option<usize>, RespError> {
        let from = self.searched.min(buf.len());
        let Some(i) = memchr::memchr(b'\n', &buf[from..]) else {
            if buf.len() > MAX_LINE {
                return Err(RespError::Protocol("a line longer than 64 KiB"));
            }
            self.searched = buf.len();
            return Ok(None);
        };
        self.searched = 0;
        let end = from + i;
        if end == 0 || buf[end - 1] != b'\r' {
            return Err(RespError::Protocol("a line that does not end in CRLF"));
        }
        Ok(Some(end - 1))
    }

    /// A line's value, or `None` for a header whose value follows (an array's elements, a bulk
    /// string's bytes).
    fn header(&mut self, line: &[u8], limits: Limits) -> Result<Option<Value>, RespError> {
        // An empty line has no type byte (found by tests/resp_properties.rs: it panicked).
        let Some((&kind, rest)) = line.split_first() else {
            return Err(RespError::Protocol("an empty line"));
        };
        Ok(Some(match kind {
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
                n => {
                    self.open_bulk(n as usize)?;
                    return Ok(None);
                }
            },
            b'*' => match integer(rest)? {
                -1 => Value::Null,
                n if n < 0 => return Err(RespError::Protocol("a negative length")),
                0 => Value::Array(Vec::new()),
                n => {
                    self.open_array(n as u64, limits)?;
                    return Ok(None);
                }
            },
            _ => return Err(RespError::Protocol("an unknown reply type")),
        }))
    }

    /// A bulk string of `n` bytes gets one allocation of its size (no copy as it grows). One
    /// over [`CHARGED_FROM`] is charged whole before it is allocated; its pages become resident
    /// only as its bytes arrive.
    fn open_bulk(&mut self, n: usize) -> Result<(), RespError> {
        if n > CHARGED_FROM {
            self.charge.take(n)?;
        }
        let bytes = Vec::with_capacity(if n > MAPPED_FROM {
            n.max(ALWAYS_MAPPED)
        } else {
            n
        });
        self.bulk = Some(PendingBulk { bytes, len: n });
        Ok(())
    }

    fn open_array(&mut self, n: u64, limits: Limits) -> Result<(), RespError> {
        let before = self.elements;
        self.elements = before.saturating_add(n.min(usize::MAX as u64) as usize);
        if self.elements > limits.elements.min(MAX_ELEMENTS) {
            return Err(RespError::Protocol(
                "more array elements than any reply to this command",
            ));
        }
        // A large array's elements are memory too (a `Value` and a small string each): charged
        // like a large bulk string.
        let over = |e: usize| e.saturating_sub(CHARGED_ELEMENTS_FROM);
        let new = over(self.elements) - over(before);
        if new > 0 {
            self.charge.take(new * ELEMENT_COST)?;
        }
        if self.open.len() >= MAX_DEPTH {
            return Err(RespError::Protocol("arrays nested too deep"));
        }
        let n = n as usize;
        self.open.push((Vec::with_capacity(n.min(64)), n));
        Ok(())
    }

    /// Hands a value to the array it completes, and closes every array it completes: the whole
    /// reply (with its charge) once nothing is left open.
    fn complete(&mut self, mut value: Value) -> Option<(Value, Charge)> {
        while let Some((items, left)) = self.open.last_mut() {
            items.push(value);
            *left -= 1;
            if *left > 0 {
                return None;
            }
            let (items, _) = self.open.pop()?;
            value = Value::Array(items);
        }
        // Between replies the decoder holds nothing (an idle connection's state is its socket);
        // `bulk` was taken and `searched` is 0 after the line that ended the reply.
        self.elements = 0;
        if self.open.capacity() > 0 {
            self.open = Vec::new();
        }
        Some((value, std::mem::take(&mut self.charge)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOOSE: Limits = Limits {
        bulk: MAX_BULK,
        elements: MAX_ELEMENTS,
    };

    /// Every reply of `wire`, the bytes arriving in `pieces` (the rest at once): what a caller
    /// of the decoder does, with no runtime and no socket. `Err` for an error reply, and for
    /// the error that stopped the stream (the last).
    fn feed(wire: &[u8], pieces: &[usize], limits: Limits) -> Vec<Result<Value, String>> {
        let mut decoder = Decoder::default();
        let mut pending: Vec<u8> = Vec::new();
        let mut out = Vec::new();
        let mut rest = wire;
        let mut cuts = pieces.iter();
        while !rest.is_empty() {
            let n = cuts
                .next()
                .copied()
                .unwrap_or(rest.len())
                .clamp(1, rest.len());
            pending.extend_from_slice(&rest[..n]);
            rest = &rest[n..];
            loop {
                match decoder.decode(&pending, limits) {
                    Ok(p) => {
                        pending.drain(..p.consumed);
                        match p.reply {
                            Some((Value::Error(e), _)) => out.push(Err(e)),
                            Some((v, _)) => out.push(Ok(v)),
                            None => break,
                        }
                    }
                    Err(e) => {
                        out.push(Err(e.to_string()));
                        return out;
                    }
                }
            }
        }
        out
    }

    fn whole(wire: &[u8]) -> Vec<Result<Value, String>> {
        feed(wire, &[], LOOSE)
    }

    /// A few pseudo-random piece sizes (xorshift; no dependency, a fixed seed).
    fn random_pieces(seed: u64, count: usize, max: usize) -> Vec<usize> {
        let mut x = seed | 1;
        (0..count)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                1 + (x % max as u64) as usize
            })
            .collect()
    }

    const EVERY_TYPE: &[u8] =
        b"+OK\r\n-ERR no\r\n:42\r\n:-7\r\n$5\r\nhe\r\nl\r\n$-1\r\n*-1\r\n*0\r\n\
        *2\r\n*2\r\n:1\r\n$1\r\na\r\n+x\r\n$2\r\n\xff\xfe\r\n$0\r\n\r\n+\r\n\
        *3\r\n-WRONGTYPE x\r\n$-1\r\n*1\r\n*0\r\n";

    fn every_type() -> Vec<Result<Value, String>> {
        vec![
            Ok(Value::String("OK".into())),
            Err("ERR no".to_string()),
            Ok(Value::Integer(42)),
            Ok(Value::Integer(-7)),
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
            Ok(Value::String(String::new())),
            Ok(Value::Array(vec![
                Value::Error("WRONGTYPE x".into()),
                Value::Null,
                Value::Array(vec![Value::Array(vec![])]),
            ])),
        ]
    }

    #[test]
    fn every_reply_type_decodes_from_one_buffer() {
        assert_eq!(whole(EVERY_TYPE), every_type());
    }

    #[test]
    fn every_split_point_decodes_the_same() {
        let want = every_type();
        for cut in 1..EVERY_TYPE.len() {
            assert_eq!(feed(EVERY_TYPE, &[cut], LOOSE), want, "cut at {cut}");
        }
        for a in 1..EVERY_TYPE.len() {
            for b in 1..EVERY_TYPE.len() - a {
                assert_eq!(feed(EVERY_TYPE, &[a, b], LOOSE), want, "cuts {a}, {b}");
            }
        }
    }

    #[test]
    fn byte_by_byte_and_random_pieces_decode_the_same() {
        let want = every_type();
        assert_eq!(feed(EVERY_TYPE, &vec![1; EVERY_TYPE.len()], LOOSE), want);
        for seed in 1..200 {
            let pieces = random_pieces(seed, 64, 9);
            assert_eq!(feed(EVERY_TYPE, &pieces, LOOSE), want, "pieces {pieces:?}");
        }
        // A large bulk string among small replies, in pieces around the read size.
        let big = vec![b'x'; 100_000];
        let wire = [
            b"*2\r\n$100000\r\n".to_vec(),
            big.clone(),
            b"\r\n:1\r\n+PONG\r\n".to_vec(),
        ]
        .concat();
        let want = vec![
            Ok(Value::Array(vec![
                Value::String(String::from_utf8(big).expect("ascii")),
                Value::Integer(1),
            ])),
            Ok(Value::String("PONG".into())),
        ];
        for seed in 1..20 {
            assert_eq!(feed(&wire, &random_pieces(seed, 200, 5000), LOOSE), want);
        }
    }

    #[test]
    fn a_reply_is_consumed_up_to_its_end_and_no_further() {
        let mut d = Decoder::default();
        let wire = b"*2\r\n:1\r\n:2\r\n+next\r\n";
        let p = d.decode(wire, LOOSE).expect("decodes");
        assert_eq!(p.consumed, 12);
        assert!(!d.is_partial());
        // A line cut short is left in the buffer, not consumed.
        let p = d.decode(b"+nex", LOOSE).expect("waits");
        assert_eq!((p.consumed, p.reply.is_none()), (0, true));
        let p = d.decode(b"+next\r\n", LOOSE).expect("ends");
        assert_eq!(p.consumed, 7);
        assert_eq!(p.reply.map(|(v, _)| v), Some(Value::String("next".into())));
        // A header is consumed once whole; the array waits for its elements.
        let p = d.decode(b"*2\r\n:1\r\n:", LOOSE).expect("waits");
        assert_eq!(
            (p.consumed, p.reply.is_none(), d.is_partial()),
            (8, true, true)
        );
        let p = d.decode(b":2\r\n", LOOSE).expect("ends");
        assert_eq!(p.consumed, 4);
        assert_eq!(
            p.reply.map(|(v, _)| v),
            Some(Value::Array(vec![Value::Integer(1), Value::Integer(2)]))
        );
        assert!(!d.is_partial());
    }

    #[test]
    fn a_bulk_string_fills_one_allocation_of_its_size_and_offers_its_room() {
        let mut d = Decoder::default();
        let p = d.decode(b"$10\r\nabc", LOOSE).expect("waits");
        assert_eq!(p.consumed, 8, "its bytes so far are taken into the string");
        {
            let mut room = d.bulk_room().expect("room");
            assert_eq!(room.remaining_mut(), 7);
            room.put_slice(b"defghij");
        }
        assert!(d.bulk_room().is_none(), "full: only its CRLF is missing");
        let p = d.decode(b"\r", LOOSE).expect("waits for both bytes");
        assert_eq!(p.consumed, 0);
        let p = d.decode(b"\r\n", LOOSE).expect("ends");
        let (v, _) = p.reply.expect("reply");
        let Value::String(s) = v else { panic!("{v:?}") };
        assert_eq!((s.as_str(), s.capacity()), ("abcdefghij", 10));
        assert!(
            d.bulk.is_none() && d.open.capacity() == 0,
            "holds nothing after"
        );
    }

    #[test]
    fn hostile_headers_are_refused_before_anything_is_allocated() {
        for (wire, what) in [
            (&b"$536870913\r\n"[..], "longer than any reply"),
            (b"*1048577\r\n", "more array elements"),
            (b"$-2\r\n", "negative"),
            (b"*-2\r\n", "negative"),
            (b"$abc\r\n", "not a number"),
            (b":1.5\r\n", "not a number"),
            (b"!3\r\nabc\r\n", "unknown reply type"),
            (b"+OK\n", "CRLF"),
            (b"\n", "CRLF"),
            (b"\r\n", "empty line"),
            (b"*2\r\n:1\r\n\r\n", "empty line"),
            (b"$3\r\nabcd\r\n", "longer than announced"),
            (
                &[b"*1\r\n".repeat(17), b":1\r\n".to_vec()].concat(),
                "too deep",
            ),
        ] {
            for pieces in [&[][..], &[1; 64], &[3; 64]] {
                let got = feed(wire, pieces, LOOSE);
                assert!(
                    matches!(got.last(), Some(Err(e)) if e.contains(what)),
                    "{:?} in {pieces:?}: {got:?}",
                    String::from_utf8_lossy(wire)
                );
            }
        }
        // Sixteen levels are allowed.
        let deep = [b"*1\r\n".repeat(16), b":1\r\n".to_vec()].concat();
        assert!(matches!(whole(&deep).as_slice(), [Ok(Value::Array(_))]));
        // A line with no end is refused once it passes the bound, not kept for ever.
        let long = [b"+".to_vec(), vec![b'a'; MAX_LINE + 10]].concat();
        assert!(
            matches!(feed(&long, &[4096; 20], LOOSE).last(), Some(Err(e)) if e.contains("64 KiB"))
        );
        // Until then it waits, and is searched once: a piece at a time, found whole.
        let mut line = [b"+".to_vec(), vec![b'a'; MAX_LINE - 10]].concat();
        line.extend_from_slice(b"\r\n");
        assert_eq!(feed(&line, &[1000; 100], LOOSE).len(), 1);
        // A bulk string cut short is no value.
        assert_eq!(feed(b"$10\r\nabc", &[2; 10], LOOSE), vec![]);
    }

    #[test]
    fn an_error_leaves_the_decoder_empty() {
        let mut d = Decoder::default();
        let p = d.decode(b"*3\r\n$100000\r\nab", LOOSE).expect("waits");
        assert_eq!(p.consumed, 15);
        assert!(d.is_partial() && in_flight() >= 100_000);
        assert!(d.decode(b"\r\n", LOOSE).is_ok());
        let mut d = Decoder::default();
        let got = d.decode(b"*2\r\n:1\r\n!\r\n", LOOSE);
        assert!(matches!(got, Err(RespError::Protocol(m)) if m.contains("unknown")));
        assert!(!d.is_partial() && d.open.capacity() == 0 && d.charge.0 == 0);
        // Fresh again: the next reply decodes.
        let p = d.decode(b":5\r\n", LOOSE).expect("decodes");
        assert_eq!(p.reply.map(|(v, _)| v), Some(Value::Integer(5)));
    }

    #[test]
    fn each_command_s_limits_and_the_budget_are_kept() {
        let small = Limits {
            bulk: 10,
            elements: 2,
        };
        let got = feed(b"$11\r\n", &[], small);
        assert!(matches!(got.last(), Some(Err(e)) if e.contains("longer than any reply")));
        let got = feed(b"*2\r\n*1\r\n", &[], small);
        assert!(matches!(got.last(), Some(Err(e)) if e.contains("more array elements")));
        // Limits are per reply: two replies of two elements each are fine.
        let got = feed(
            b"$10\r\n0123456789\r\n*2\r\n:1\r\n:2\r\n*1\r\n:3\r\n",
            &[3; 20],
            small,
        );
        assert_eq!(got.len(), 3, "{got:?}");
        assert!(got.iter().all(Result::is_ok), "{got:?}");

        // A large bulk string is charged while it is held, with its reply.
        let n = 200 << 10;
        let wire = [
            format!("${n}\r\n").into_bytes(),
            vec![b'a'; n],
            b"\r\n".to_vec(),
        ]
        .concat();
        let before = in_flight();
        let mut d = Decoder::default();
        let p = d.decode(&wire, LOOSE).expect("decodes");
        let (v, charge) = p.reply.expect("reply");
        assert_eq!(v.as_bytes().map(<[u8]>::len), Some(n));
        assert!(charge.0 >= n && in_flight() >= before + n);
        drop((v, charge));
        // Many elements are charged too, past the first 1024.
        let mut wire = b"*3000\r\n".to_vec();
        wire.extend(b":1\r\n".repeat(3000));
        let (v, charge) = Decoder::default()
            .decode(&wire, LOOSE)
            .expect("decodes")
            .reply
            .expect("reply");
        assert_eq!(charge.0, (3000 - 1024) * ELEMENT_COST);
        assert!(matches!(v, Value::Array(items) if items.len() == 3000));
    }
}
