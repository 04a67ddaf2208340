//! Properties of the RESP decoder (src/redis/frame.rs) and the reader that feeds it from a
//! socket (src/redis/resp.rs), issue 26 item 3: any split of any valid reply decodes to the
//! same values as the whole; any bytes at all never panic, and what a reply keeps allocated
//! stays within its command's limits (counted by a global allocator, so this binary has its
//! own); the decoder fed by hand and the reader fed by a stream say the same of any bytes.
//! proptest (already a dev-dependency) generates the replies and the cuts, with a fixed seed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/counting.rs"]
mod counting;

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use redis_clients_exporter::redis::frame::Decoder;
use redis_clients_exporter::redis::resp::{Limits, Reader, RespError, Value, MAX_LINE};
use tokio::io::{AsyncRead, ReadBuf};

/// A stream that hands out `data` in pieces of the given sizes (then the rest at once), one
/// piece per read: every split of the reply reaches the reader as its own read.
struct Pieces {
    data: Vec<u8>,
    cuts: Vec<usize>,
    pos: usize,
    next: usize,
}

impl AsyncRead for Pieces {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let left = self.data.len() - self.pos;
        let piece = self.cuts.get(self.next).copied().unwrap_or(left).max(1);
        let n = piece.min(left).min(buf.remaining());
        let start = self.pos;
        buf.put_slice(&self.data[start..start + n]);
        self.pos += n;
        self.next += 1;
        Poll::Ready(Ok(()))
    }
}

/// Every reply of the stream, until it ends (`Err(reason)` for the one that stopped it).
fn decode(data: Vec<u8>, cuts: Vec<usize>, limits: Limits) -> Vec<Result<Value, String>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut stream = Pieces {
            data,
            cuts,
            pos: 0,
            next: 0,
        };
        let mut reader = Reader::default();
        let mut out = Vec::new();
        loop {
            match reader.reply(&mut stream, limits).await {
                Ok((v, _charge)) => out.push(Ok(v)),
                Err(RespError::Server(e)) => out.push(Err(format!("server: {e}"))),
                Err(RespError::Closed) => return out,
                Err(e) => {
                    out.push(Err(e.to_string()));
                    return out;
                }
            }
        }
    })
}

/// The same through the synchronous decoder, no runtime: `data` arrives in pieces of the given
/// sizes (then the rest at once) at the end of a buffer, and each decoded reply's bytes leave
/// its front.
fn decode_sync(data: &[u8], cuts: &[usize], limits: Limits) -> Vec<Result<Value, String>> {
    let mut out = Vec::new();
    feed_sync(data, cuts, limits, |got, _| match got {
        None => true,
        Some(Ok(Value::Error(e))) => {
            out.push(Err(format!("server: {e}")));
            true
        }
        Some(Ok(v)) => {
            out.push(Ok(v));
            true
        }
        Some(Err(e)) => {
            out.push(Err(e.to_string()));
            false
        }
    });
    out
}

/// Feeds `data` to a decoder in pieces; `each` gets every reply, or the error that stops the
/// stream, (and returns false to stop), or `None` once a piece is decoded as far as it goes;
/// with the caller's buffer. Returns the most bytes the buffer kept between pieces.
fn feed_sync(
    data: &[u8],
    cuts: &[usize],
    limits: Limits,
    mut each: impl FnMut(Option<Result<Value, RespError>>, &Vec<u8>) -> bool,
) -> usize {
    let mut decoder = Decoder::default();
    let mut buf = Vec::new();
    let mut rest = data;
    let mut cuts = cuts.iter();
    let mut held = 0;
    while !rest.is_empty() {
        let n = cuts
            .next()
            .copied()
            .unwrap_or(rest.len())
            .clamp(1, rest.len());
        buf.extend_from_slice(&rest[..n]);
        rest = &rest[n..];
        loop {
            match decoder.decode(&buf, limits) {
                Ok(p) => {
                    buf.drain(..p.consumed);
                    let Some((v, _charge)) = p.reply else {
                        break;
                    };
                    if !each(Some(Ok(v)), &buf) {
                        return held;
                    }
                }
                Err(e) => {
                    each(Some(Err(e)), &buf);
                    return held;
                }
            }
        }
        held = held.max(buf.len());
        each(None, &buf);
    }
    held
}

/// A reply as the generator builds it, and its wire form.
#[derive(Debug, Clone)]
enum Reply {
    Simple(String),
    Bulk(Vec<u8>),
    Integer(i64),
    Null,
    Error(String),
    Array(Vec<Reply>),
}

impl Reply {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Reply::Simple(s) => out.extend_from_slice(format!("+{s}\r\n").as_bytes()),
            Reply::Bulk(b) => {
                out.extend_from_slice(format!("${}\r\n", b.len()).as_bytes());
                out.extend_from_slice(b);
                out.extend_from_slice(b"\r\n");
            }
            Reply::Integer(i) => out.extend_from_slice(format!(":{i}\r\n").as_bytes()),
            Reply::Null => out.extend_from_slice(b"$-1\r\n"),
            Reply::Error(e) => out.extend_from_slice(format!("-{e}\r\n").as_bytes()),
            Reply::Array(items) => {
                out.extend_from_slice(format!("*{}\r\n", items.len()).as_bytes());
                for i in items {
                    i.encode(out);
                }
            }
        }
    }

    /// What the reader makes of it: UTF-8 bulk strings are strings, others bytes.
    fn value(&self) -> Value {
        match self {
            Reply::Simple(s) => Value::String(s.clone()),
            Reply::Bulk(b) => match String::from_utf8(b.clone()) {
                Ok(s) => Value::String(s),
                Err(e) => Value::Bytes(e.into_bytes()),
            },
            Reply::Integer(i) => Value::Integer(*i),
            Reply::Null => Value::Null,
            Reply::Error(e) => Value::Error(e.clone()),
            Reply::Array(items) => Value::Array(items.iter().map(Reply::value).collect()),
        }
    }

    fn expected(&self) -> Result<Value, String> {
        match self {
            Reply::Error(e) => Err(format!("server: {e}")),
            r => Ok(r.value()),
        }
    }
}

fn reply() -> impl Strategy<Value = Reply> {
    // Line text: printable ASCII without CR/LF (what a real simple string or error holds).
    let line = "[ -~]{0,40}";
    let leaf = prop_oneof![
        line.prop_map(Reply::Simple),
        prop::collection::vec(any::<u8>(), 0..300).prop_map(Reply::Bulk),
        "[a-z=\n ]{0,2000}".prop_map(|s| Reply::Bulk(s.into_bytes())),
        any::<i64>().prop_map(Reply::Integer),
        Just(Reply::Null),
        "ERR [ -~]{0,40}".prop_map(Reply::Error),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop::collection::vec(inner, 0..8).prop_map(Reply::Array)
    })
}

const LOOSE: Limits = Limits {
    bulk: 1 << 20,
    elements: 1 << 16,
};

fn runner(cases: u32) -> TestRunner {
    TestRunner::new_with_rng(
        Config {
            cases,
            failure_persistence: None,
            ..Config::default()
        },
        TestRng::from_seed(RngAlgorithm::ChaCha, &[25; 32]),
    )
}

#[test]
fn any_split_of_any_valid_reply_decodes_as_the_whole() {
    let _serial = counting::SERIAL.lock();
    let strategy = (
        prop::collection::vec(reply(), 1..6),
        prop::collection::vec(1usize..64, 0..200),
    );
    runner(300)
        .run(&strategy, |(replies, cuts)| {
            let mut wire = Vec::new();
            for r in &replies {
                r.encode(&mut wire);
            }
            let want: Vec<Result<Value, String>> = replies.iter().map(Reply::expected).collect();
            prop_assert_eq!(&decode(wire.clone(), Vec::new(), LOOSE), &want);
            prop_assert_eq!(&decode(wire.clone(), vec![1; wire.len()], LOOSE), &want);
            prop_assert_eq!(&decode(wire, cuts, LOOSE), &want);
            Ok(())
        })
        .unwrap();
}

#[test]
fn any_split_of_any_valid_reply_decodes_as_the_whole_without_a_runtime() {
    let _serial = counting::SERIAL.lock();
    let strategy = (
        prop::collection::vec(reply(), 1..6),
        prop::collection::vec(1usize..64, 0..200),
    );
    runner(500)
        .run(&strategy, |(replies, cuts)| {
            let mut wire = Vec::new();
            for r in &replies {
                r.encode(&mut wire);
            }
            let want: Vec<Result<Value, String>> = replies.iter().map(Reply::expected).collect();
            prop_assert_eq!(&decode_sync(&wire, &[], LOOSE), &want);
            prop_assert_eq!(&decode_sync(&wire, &vec![1; wire.len()], LOOSE), &want);
            prop_assert_eq!(&decode_sync(&wire, &cuts, LOOSE), &want);
            // And every single cut of the wire in two.
            for cut in (1..wire.len()).step_by(1 + wire.len() / 64) {
                prop_assert_eq!(&decode_sync(&wire, &[cut], LOOSE), &want, "cut at {}", cut);
            }
            Ok(())
        })
        .unwrap();
}

/// Heap bytes a value holds, counted as the reader builds it (a `Value` per element).
fn size(v: &Value) -> usize {
    std::mem::size_of::<Value>()
        + match v {
            Value::String(s) | Value::Error(s) => s.capacity(),
            Value::Bytes(b) => b.capacity(),
            Value::Array(items) => items.iter().map(size).sum::<usize>(),
            _ => 0,
        }
}

/// Bytes that are mostly RESP: headers with any length, lines, junk, cut anywhere.
fn soup() -> impl Strategy<Value = Vec<u8>> {
    let token = prop_oneof![
        (any::<i64>()).prop_map(|n| format!("${n}\r\n").into_bytes()),
        (any::<i64>()).prop_map(|n| format!("*{n}\r\n").into_bytes()),
        (0usize..5000).prop_map(|n| format!("${n}\r\n").into_bytes()),
        (0usize..100).prop_map(|n| format!("*{n}\r\n").into_bytes()),
        Just(b"*1\r\n".to_vec()),
        "[ -~]{0,20}".prop_map(|s| format!("+{s}\r\n").into_bytes()),
        "[ -~]{0,20}".prop_map(|s| format!("-{s}\r\n").into_bytes()),
        prop::collection::vec(any::<u8>(), 0..64),
        Just(b"\r\n".to_vec()),
    ];
    prop::collection::vec(token, 0..40).prop_map(|t| t.concat())
}

#[test]
fn any_bytes_never_panic_and_a_reply_holds_no_more_than_its_limits() {
    let _serial = counting::SERIAL.lock();
    let small = Limits {
        bulk: 4096,
        elements: 64,
    };
    // What a reply within `small` can hold: its elements and its bulk strings, each at most
    // `bulk` bytes, the last read buffer (a line of at most MAX_LINE) already given back.
    let bound = (small.elements + 1) * (std::mem::size_of::<Value>() + small.bulk);
    let strategy = (
        prop_oneof![soup(), prop::collection::vec(any::<u8>(), 0..4000)],
        prop::collection::vec(1usize..300, 0..50),
    );
    runner(1000)
        .run(&strategy, |(bytes, cuts)| {
            let before = counting::live();
            let decoded = decode(bytes, cuts, small);
            for v in decoded.iter().flatten() {
                prop_assert!(size(v) <= bound, "{} bytes: {v:?}", size(v));
            }
            drop(decoded);
            // Nothing of the replies, the reader or its buffer outlives them (the runtime is
            // dropped too).
            let after = counting::live();
            prop_assert!(
                after - before <= MAX_LINE as i64,
                "{} bytes still live",
                after - before
            );
            Ok(())
        })
        .unwrap();
}

#[test]
fn any_bytes_decode_the_same_by_hand_and_from_a_stream_within_the_limits() {
    let _serial = counting::SERIAL.lock();
    let small = Limits {
        bulk: 4096,
        elements: 64,
    };
    // A reply within `small` holds at most this (see the test above).
    let bound = ((small.elements + 1) * (std::mem::size_of::<Value>() + small.bulk)) as i64;
    let strategy = (
        prop_oneof![soup(), prop::collection::vec(any::<u8>(), 0..4000)],
        prop::collection::vec(1usize..300, 0..50),
    );
    runner(1000)
        .run(&strategy, |(bytes, cuts)| {
            // The reader is the decoder and I/O: the same replies and the same errors.
            let by_hand = decode_sync(&bytes, &cuts, small);
            prop_assert_eq!(&by_hand, &decode(bytes.clone(), cuts.clone(), small));
            drop(by_hand);

            // What the decoder holds between pieces (open arrays, a bulk string being filled)
            // stays within one reply's bound: each reply is dropped as it comes, the caller's
            // buffer is not the decoder's.
            let before = counting::live();
            let mut worst = 0i64;
            let held = feed_sync(&bytes, &cuts, small, |got, buf| {
                drop(got);
                let live = counting::live() - before - buf.capacity() as i64;
                worst = worst.max(live);
                true
            });
            prop_assert!(worst <= bound, "{} bytes held by the decoder", worst);
            // The caller never keeps more than a line cut short.
            prop_assert!(held <= MAX_LINE, "{} bytes left in the buffer", held);
            prop_assert!(
                counting::live() - before <= 0,
                "nothing outlives the decoder"
            );
            Ok(())
        })
        .unwrap();
}
