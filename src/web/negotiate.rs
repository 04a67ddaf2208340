//! Content negotiation of `/metrics` and `/scrape`: the text format by `Accept` (Prometheus
//! 0.0.4, or OpenMetrics 1.0 when the client ranks it higher, as Prometheus does by default) and
//! gzip by `Accept-Encoding`. Without either header the answer is what it always was: 0.0.4,
//! uncompressed, its chunks sent as they are with an exact `Content-Length`.

use std::io::Write as _;

use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use crate::web::exposition::{Chunks, Format, OPENMETRICS_EOF};

pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Identity,
    Gzip,
}

/// One comma-separated item of `Accept` or `Accept-Encoding`.
struct Item {
    /// The media range or coding, lower-cased.
    token: String,
    /// 1 when absent; an unreadable `q` is 0: not acceptable.
    q: f32,
    /// `version`, for a media range.
    version: Option<String>,
}

/// The items of a header, every occurrence of it.
fn items(headers: &HeaderMap, name: header::HeaderName) -> Vec<Item> {
    let mut out = Vec::new();
    for value in headers.get_all(name) {
        let Ok(value) = value.to_str() else { continue };
        for item in value.split(',') {
            let mut parts = item.split(';').map(str::trim);
            let token = parts.next().unwrap_or("").to_ascii_lowercase();
            if token.is_empty() {
                continue;
            }
            let mut it = Item {
                token,
                q: 1.0,
                version: None,
            };
            for p in parts {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                let (k, v) = (k.trim().to_ascii_lowercase(), v.trim().trim_matches('"'));
                match k.as_str() {
                    "q" => {
                        it.q = v
                            .parse::<f32>()
                            .ok()
                            .filter(|q| (0.0..=1.0).contains(q))
                            .unwrap_or(0.0)
                    }
                    "version" => it.version = Some(v.to_string()),
                    _ => {}
                }
            }
            out.push(it);
        }
    }
    out
}

/// The format `Accept` ranks highest among those served; 0.0.4 on a tie, for anything else and
/// without the header.
pub fn format(headers: &HeaderMap) -> Format {
    let (mut om_q, mut text_q) = (0.0f32, 0.0f32);
    for it in items(headers, header::ACCEPT) {
        match it.token.as_str() {
            "application/openmetrics-text"
                if matches!(it.version.as_deref(), None | Some("1.0.0")) =>
            {
                om_q = om_q.max(it.q)
            }
            "text/plain" | "*/*" | "text/*" => text_q = text_q.max(it.q),
            _ => {}
        }
    }
    if om_q > text_q {
        Format::OpenMetrics
    } else {
        Format::Text
    }
}

/// gzip when `Accept-Encoding` accepts it (by name or `*`) with a `q` above 0.
pub fn encoding(headers: &HeaderMap) -> Encoding {
    let items = items(headers, header::ACCEPT_ENCODING);
    let gzip = items
        .iter()
        .find(|it| it.token == "gzip" || it.token == "x-gzip");
    let star = items.iter().find(|it| it.token == "*");
    match gzip.or(star) {
        Some(it) if it.q > 0.0 => Encoding::Gzip,
        _ => Encoding::Identity,
    }
}

/// The response for an exposition written in `format`: its chunks as they are, or gzipped on a
/// blocking thread (megabytes at thousands of targets: not on the runtime's workers) and sent
/// as they are compressed, so a scrape holds a few compressed pieces, never the whole page.
/// `Vary` tells caches that both headers choose the answer.
pub async fn respond(mut chunks: Chunks, format: Format, encoding: Encoding) -> Response {
    let content_type = match format {
        Format::Text => prometheus::TEXT_FORMAT,
        Format::OpenMetrics => {
            chunks.push(Bytes::from_static(OPENMETRICS_EOF.as_bytes()));
            OPENMETRICS_CONTENT_TYPE
        }
    };
    let vary = (
        header::VARY,
        HeaderValue::from_static("Accept, Accept-Encoding"),
    );
    let content_type = (header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    match encoding {
        Encoding::Identity => ([content_type, vary], axum::body::Body::new(chunks)).into_response(),
        Encoding::Gzip => {
            let (tx, rx) = tokio::sync::mpsc::channel(GZIP_AHEAD);
            tokio::task::spawn_blocking(move || gzip_into(chunks, &tx));
            (
                [
                    content_type,
                    vary,
                    (header::CONTENT_ENCODING, HeaderValue::from_static("gzip")),
                ],
                axum::body::Body::new(Gzipped(rx)),
            )
                .into_response()
        }
    }
}

/// Compressed pieces waiting for the socket: the compressing thread stays this many ahead.
const GZIP_AHEAD: usize = 2;

/// One gzip member of all the chunks, at the fastest level (a scrape's text compresses ~10x
/// even so, docs/performance.md; the CPU is the exporter's), each chunk's output sent on as
/// soon as it is compressed. Stops when the receiver is gone (the scraper hung up).
fn gzip_into(chunks: Chunks, tx: &tokio::sync::mpsc::Sender<std::io::Result<Bytes>>) {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    for c in chunks {
        if let Err(e) = enc.write_all(&c) {
            let _ = tx.blocking_send(Err(e));
            return;
        }
        let out = std::mem::take(enc.get_mut());
        if !out.is_empty() && tx.blocking_send(Ok(Bytes::from(out))).is_err() {
            return;
        }
    }
    let last = enc.finish().map(Bytes::from);
    let _ = tx.blocking_send(last);
}

/// The body of a gzipped answer: the pieces [`gzip_into`] sends, in order. A compression
/// error ends it as an error (the connection is cut: the status was already sent).
struct Gzipped(tokio::sync::mpsc::Receiver<std::io::Result<Bytes>>);

impl http_body::Body for Gzipped {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|piece| piece.map(|r| r.map(http_body::Frame::data)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(k.clone(), HeaderValue::from_str(v).expect("value"));
        }
        m
    }

    #[test]
    fn the_format_is_the_highest_ranked_served_one() {
        assert_eq!(format(&h(&[])), Format::Text);
        // Prometheus 2.x and 3.x defaults.
        let prom2 = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        let prom3 = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.5,application/openmetrics-text;version=1.0.0;q=0.4,application/openmetrics-text;version=0.0.1;q=0.3,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.2,text/plain;version=0.0.4;q=0.1,*/*;q=0.05";
        assert_eq!(format(&h(&[(header::ACCEPT, prom2)])), Format::OpenMetrics);
        assert_eq!(format(&h(&[(header::ACCEPT, prom3)])), Format::OpenMetrics);
        // scrape_protocols: [PrometheusText0.0.4] and curl.
        let text = "text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(format(&h(&[(header::ACCEPT, text)])), Format::Text);
        assert_eq!(format(&h(&[(header::ACCEPT, "*/*")])), Format::Text);
        // A tie, an unknown version, a refusal: 0.0.4.
        let tie = "application/openmetrics-text, text/plain";
        assert_eq!(format(&h(&[(header::ACCEPT, tie)])), Format::Text);
        let v2 = "application/openmetrics-text;version=2.0.0";
        assert_eq!(format(&h(&[(header::ACCEPT, v2)])), Format::Text);
        let no = "application/openmetrics-text;q=0";
        assert_eq!(format(&h(&[(header::ACCEPT, no)])), Format::Text);
        let om = "Application/OpenMetrics-Text; version=\"1.0.0\"";
        assert_eq!(format(&h(&[(header::ACCEPT, om)])), Format::OpenMetrics);
    }

    #[test]
    fn gzip_when_accepted() {
        assert_eq!(encoding(&h(&[])), Encoding::Identity);
        for (v, want) in [
            ("gzip", Encoding::Gzip),
            ("br, gzip;q=0.8", Encoding::Gzip),
            ("GZIP", Encoding::Gzip),
            ("*", Encoding::Gzip),
            ("gzip;q=0", Encoding::Identity),
            ("gzip;q=0, *", Encoding::Identity),
            ("br", Encoding::Identity),
            ("identity", Encoding::Identity),
            ("gzip;q=nonsense", Encoding::Identity),
        ] {
            assert_eq!(encoding(&h(&[(header::ACCEPT_ENCODING, v)])), want, "{v}");
        }
    }

    /// What [`gzip_into`] sends for `chunks`, gunzipped, and how many pieces it came in.
    fn gunzipped(chunks: Chunks) -> (Vec<u8>, usize) {
        use std::io::Read as _;
        let (tx, mut rx) = tokio::sync::mpsc::channel(GZIP_AHEAD);
        let producer = std::thread::spawn(move || gzip_into(chunks, &tx));
        let mut z = Vec::new();
        let mut pieces = 0;
        while let Some(piece) = rx.blocking_recv() {
            z.extend_from_slice(&piece.expect("compressed"));
            pieces += 1;
        }
        producer.join().expect("the compressing thread");
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&z[..])
            .read_to_end(&mut out)
            .expect("gunzip");
        (out, pieces)
    }

    #[test]
    fn gzip_round_trips_the_chunks() {
        let chunks = Chunks::new([Bytes::from_static(b"a 1\n"), Bytes::from_static(b"b 2\n")]);
        assert_eq!(gunzipped(chunks).0, b"a 1\nb 2\n");
    }

    #[test]
    fn a_large_body_is_sent_in_pieces_as_it_is_compressed() {
        // 64 chunks of 256 KiB of varied lines (what an assembly sends at thousands of targets).
        let mut want = Vec::new();
        let chunks: Vec<Bytes> = (0..64u64)
            .map(|c| {
                let mut chunk = Vec::new();
                let mut i = 0u64;
                while chunk.len() < 256 << 10 {
                    let line =
                        format!("redis_x{{target=\"t{c}\",n=\"{i}\"}} {}\n", i * 7919 % 1013);
                    chunk.extend_from_slice(line.as_bytes());
                    i += 1;
                }
                want.extend_from_slice(&chunk);
                Bytes::from(chunk)
            })
            .collect();
        let (got, pieces) = gunzipped(Chunks::new(chunks));
        assert!(got == want, "the gunzipped body differs from the chunks");
        assert!(pieces >= 32, "sent in {pieces} pieces: held, not streamed");
    }
}
