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

/// The response for an exposition written in `format`: its chunks as they are, or gzipped
/// into one buffer on a blocking thread (megabytes at thousands of targets: not on the
/// runtime's workers). `Vary` tells caches that both headers choose the answer.
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
            let gzipped = tokio::task::spawn_blocking(move || gzip(chunks)).await;
            match gzipped {
                Ok(Ok(body)) => (
                    [
                        content_type,
                        vary,
                        (header::CONTENT_ENCODING, HeaderValue::from_static("gzip")),
                    ],
                    body,
                )
                    .into_response(),
                _ => (
                    axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                    "compression failed\n",
                )
                    .into_response(),
            }
        }
    }
}

/// One gzip member of all the chunks, at the fastest level: a scrape's text compresses ~10x
/// even so (numbers in docs/performance.md), and the CPU is the exporter's. The chunks are
/// compressed as they are assembled: only the compressed body is held whole.
fn gzip(chunks: Chunks) -> std::io::Result<Vec<u8>> {
    let total = chunks.len() as usize;
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(total / 8 + 64),
        flate2::Compression::fast(),
    );
    for c in chunks {
        enc.write_all(&c)?;
    }
    enc.finish()
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

    #[test]
    fn gzip_round_trips_the_chunks() {
        use std::io::Read as _;
        let chunks = Chunks::new([Bytes::from_static(b"a 1\n"), Bytes::from_static(b"b 2\n")]);
        let z = gzip(chunks).expect("gzip");
        let mut out = String::new();
        flate2::read::GzDecoder::new(&z[..])
            .read_to_string(&mut out)
            .expect("gunzip");
        assert_eq!(out, "a 1\nb 2\n");
    }
}
