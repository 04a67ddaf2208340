//! The Prometheus text format (0.0.4), written once: every series goes straight into its
//! family's own buffer as text (no protobuf `MetricFamily` per series first, no encoder pass
//! copying it all into one more buffer), and the families' buffers are served as the chunks
//! of one HTTP body ([`Chunks`]). With 1,000 targets `/metrics` is ~6 MB of text; before, a
//! scrape held the protobuf structures of ~95,000 series *and* the text, in a buffer grown by
//! doubling. The output is byte for byte what `prometheus::TextEncoder` writes (tests/golden.rs).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::fmt::Write as _;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hashbrown::HashMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// The text format written: Prometheus' 0.0.4 (the default, byte for byte the prometheus
/// crate's), or OpenMetrics 1.0 (counter families named without `_total`, `+Inf`/`-Inf`, `"`
/// escaped in help; the caller ends the exposition with [`OPENMETRICS_EOF`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    #[default]
    Text,
    OpenMetrics,
}

/// The last line of an OpenMetrics exposition.
pub const OPENMETRICS_EOF: &str = "# EOF\n";

struct Family {
    /// `# HELP`/`# TYPE` lines, then every series, as text.
    text: String,
    series: usize,
}

/// Families by name in first-use order, each written as text as its series arrive.
#[derive(Default)]
pub struct Exposition {
    format: Format,
    families: Vec<Family>,
    index: HashMap<String, usize>,
    /// The family of the last series (name's address and length, position): consecutive
    /// series of one family skip the lookup.
    last: Option<((usize, usize), usize)>,
}

/// `v` escaped as the text format wants it: `\` and newline always, `"` in label values.
fn escape_into(out: &mut String, v: &str, quote: bool) {
    let special = |c: char| c == '\\' || c == '\n' || (quote && c == '"');
    if !v.contains(special) {
        out.push_str(v);
        return;
    }
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if quote => out.push_str("\\\""),
            c => out.push(c),
        }
    }
}

/// A sample value: Rust's `Display` (what the prometheus crate writes) for 0.0.4; OpenMetrics
/// spells infinities `+Inf`/`-Inf`.
fn value_into(out: &mut String, v: f64, format: Format) {
    match format {
        Format::OpenMetrics if v.is_infinite() => {
            out.push_str(if v > 0.0 { "+Inf" } else { "-Inf" })
        }
        _ => {
            let _ = write!(out, "{v}");
        }
    }
}

impl Exposition {
    pub fn new(format: Format) -> Self {
        Self {
            format,
            ..Self::default()
        }
    }

    fn family(&mut self, name: &str, help: &str, kind: Kind) -> &mut Family {
        let pos = match self.last {
            // Compare by address first: callers pass the same `&'static str` series after series.
            Some((key, pos)) if key == (name.as_ptr() as usize, name.len()) => pos,
            _ => {
                let pos = match self.index.get(name) {
                    Some(&p) => p,
                    None => {
                        let mut text = String::with_capacity(256);
                        let om = self.format == Format::OpenMetrics;
                        // OpenMetrics names a counter family without the samples' `_total`.
                        let family = match kind {
                            Kind::Counter if om => name.strip_suffix("_total").unwrap_or(name),
                            _ => name,
                        };
                        if !help.is_empty() {
                            text.push_str("# HELP ");
                            text.push_str(family);
                            text.push(' ');
                            escape_into(&mut text, help, om);
                            text.push('\n');
                        }
                        let _ = writeln!(text, "# TYPE {family} {}", kind.as_str());
                        self.families.push(Family { text, series: 0 });
                        self.index.insert(name.to_string(), self.families.len() - 1);
                        self.families.len() - 1
                    }
                };
                self.last = Some(((name.as_ptr() as usize, name.len()), pos));
                pos
            }
        };
        &mut self.families[pos]
    }

    /// One sample line: `name{labels[,extra]} value`.
    fn line<'a>(
        format: Format,
        text: &mut String,
        name: &str,
        suffix: &str,
        labels: impl Iterator<Item = (&'a str, &'a str)> + Clone,
        extra: Option<(&str, &str)>,
        value: f64,
    ) {
        text.push_str(name);
        text.push_str(suffix);
        let mut sep = '{';
        let mut pair = |text: &mut String, n: &str, v: &str| {
            text.push(sep);
            text.push_str(n);
            text.push_str("=\"");
            escape_into(text, v, true);
            text.push('"');
            sep = ',';
        };
        for (n, v) in labels {
            pair(text, n, v);
        }
        if let Some((n, v)) = extra {
            pair(text, n, v);
        }
        if sep == ',' {
            text.push('}');
        }
        text.push(' ');
        value_into(text, value, format);
        text.push('\n');
    }

    /// A gauge or counter series.
    pub fn sample<'a>(
        &mut self,
        name: &str,
        help: &str,
        kind: Kind,
        labels: impl Iterator<Item = (&'a str, &'a str)> + Clone,
        value: f64,
    ) {
        let format = self.format;
        let f = self.family(name, help, kind);
        f.series += 1;
        Self::line(format, &mut f.text, name, "", labels, None, value);
    }

    /// A histogram series from cumulative `(upper bound, count)` buckets, `+Inf` added when
    /// missing, then `_sum` and `_count`.
    pub fn histogram<'a>(
        &mut self,
        name: &str,
        help: &str,
        labels: impl Iterator<Item = (&'a str, &'a str)> + Clone,
        buckets: impl Iterator<Item = (f64, u64)>,
        sum: f64,
        count: u64,
    ) {
        let format = self.format;
        let f = self.family(name, help, Kind::Histogram);
        f.series += 1;
        let mut inf_seen = false;
        let mut le = String::new();
        for (ub, c) in buckets {
            le.clear();
            value_into(&mut le, ub, format);
            Self::line(
                format,
                &mut f.text,
                name,
                "_bucket",
                labels.clone(),
                Some(("le", &le)),
                c as f64,
            );
            inf_seen |= ub.is_sign_positive() && ub.is_infinite();
        }
        if !inf_seen {
            Self::line(
                format,
                &mut f.text,
                name,
                "_bucket",
                labels.clone(),
                Some(("le", "+Inf")),
                count as f64,
            );
        }
        Self::line(format, &mut f.text, name, "_sum", labels.clone(), None, sum);
        Self::line(
            format,
            &mut f.text,
            name,
            "_count",
            labels,
            None,
            count as f64,
        );
    }

    /// The families that have series, each one chunk of text, in first-use order.
    pub fn into_chunks(self) -> Vec<Bytes> {
        self.families
            .into_iter()
            .filter(|f| f.series > 0)
            .map(|f| Bytes::from(f.text))
            .collect()
    }

    /// All of it in one buffer (small outputs: one `/scrape` target, tests).
    pub fn into_bytes(self) -> Vec<u8> {
        let chunks = self.into_chunks();
        let mut out = Vec::with_capacity(chunks.iter().map(Bytes::len).sum());
        for c in &chunks {
            out.extend_from_slice(c);
        }
        out
    }
}

/// An HTTP body made of ready chunks, sent one after the other without joining them; its
/// exact length is known, so the response carries a `Content-Length`.
pub struct Chunks {
    chunks: VecDeque<Bytes>,
    left: u64,
}

impl Chunks {
    pub fn new(chunks: impl IntoIterator<Item = Bytes>) -> Self {
        let chunks: VecDeque<Bytes> = chunks.into_iter().filter(|c| !c.is_empty()).collect();
        let left = chunks.iter().map(|c| c.len() as u64).sum();
        Chunks { chunks, left }
    }
}

impl http_body::Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        match self.chunks.pop_front() {
            Some(c) => {
                self.left -= c.len() as u64;
                Poll::Ready(Some(Ok(http_body::Frame::data(c))))
            }
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.chunks.is_empty()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.left)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus::proto::{Bucket, Gauge, Histogram, LabelPair, Metric, MetricFamily};
    use prometheus::{Encoder, TextEncoder};

    fn pair(n: &str, v: &str) -> LabelPair {
        let mut l = LabelPair::default();
        l.set_name(n.to_string());
        l.set_value(v.to_string());
        l
    }

    /// The same series through the prometheus crate's encoder and through ours.
    #[test]
    fn writes_what_the_prometheus_encoder_writes() {
        let nasty = "a\"b\\c\nd é";
        let values = [
            0.0,
            1.0,
            -2.5,
            1e21,
            1.5e-7,
            f64::NAN,
            f64::INFINITY,
            12345.0,
        ];
        let mut mine = Exposition::default();
        let mut g = MetricFamily::default();
        g.set_name("x_gauge".into());
        g.set_help("Help with \\ and \n and \"quotes\".".into());
        g.set_field_type(prometheus::proto::MetricType::GAUGE);
        for (i, v) in values.iter().enumerate() {
            let idx = i.to_string();
            let labels = [("target", nasty), ("i", idx.as_str())];
            mine.sample("x_gauge", g.help(), Kind::Gauge, labels.iter().copied(), *v);
            let mut m = Metric::default();
            m.set_label(labels.iter().map(|(n, v)| pair(n, v)).collect());
            let mut gv = Gauge::default();
            gv.set_value(*v);
            m.set_gauge(gv);
            g.mut_metric().push(m);
        }
        let mut h = MetricFamily::default();
        h.set_name("x_seconds".into());
        h.set_help("A histogram.".into());
        h.set_field_type(prometheus::proto::MetricType::HISTOGRAM);
        let buckets = [(0.5, 1u64), (10.0, 4), (3600.0, 9)];
        mine.histogram(
            "x_seconds",
            "A histogram.",
            [("target", "t")].into_iter(),
            buckets.into_iter(),
            123.0,
            11,
        );
        let mut hv = Histogram::default();
        hv.set_sample_count(11);
        hv.set_sample_sum(123.0);
        hv.set_bucket(
            buckets
                .iter()
                .map(|(ub, c)| {
                    let mut b = Bucket::default();
                    b.set_upper_bound(*ub);
                    b.set_cumulative_count(*c);
                    b
                })
                .collect(),
        );
        let mut m = Metric::default();
        m.set_label(vec![pair("target", "t")]);
        m.set_histogram(hv);
        h.mut_metric().push(m);
        // A family without help has no HELP line.
        mine.sample("x_never", "", Kind::Counter, std::iter::empty(), 1.0);
        let mut theirs = Vec::new();
        TextEncoder::new()
            .encode(&[g, h], &mut theirs)
            .expect("encode");
        let mut expected = String::from_utf8(theirs).expect("utf8");
        expected.push_str("# TYPE x_never counter\nx_never 1\n");
        assert_eq!(
            String::from_utf8(mine.into_bytes()).expect("utf8"),
            expected
        );
    }

    #[test]
    fn openmetrics_names_counter_families_without_total_and_spells_infinities() {
        let mut om = Exposition::new(Format::OpenMetrics);
        om.sample(
            "x_events_total",
            "Events \"quoted\".",
            Kind::Counter,
            [("target", "t")].into_iter(),
            3.0,
        );
        om.sample(
            "x_gauge",
            "",
            Kind::Gauge,
            std::iter::empty(),
            f64::NEG_INFINITY,
        );
        om.histogram(
            "x_seconds",
            "H.",
            std::iter::empty(),
            [(1.0, 1u64), (f64::INFINITY, 2)].into_iter(),
            f64::INFINITY,
            2,
        );
        assert_eq!(
            String::from_utf8(om.into_bytes()).expect("utf8"),
            "# HELP x_events Events \\\"quoted\\\".\n# TYPE x_events counter\n\
             x_events_total{target=\"t\"} 3\n# TYPE x_gauge gauge\nx_gauge -Inf\n\
             # HELP x_seconds H.\n# TYPE x_seconds histogram\nx_seconds_bucket{le=\"1\"} 1\n\
             x_seconds_bucket{le=\"+Inf\"} 2\nx_seconds_sum +Inf\nx_seconds_count 2\n"
        );
    }
}
