//! The Prometheus text format (0.0.4), written once: every series goes straight into its
//! family's own buffer as text (no protobuf `MetricFamily` per series first, no encoder pass
//! copying it all into one more buffer), and the families' buffers are served as the chunks
//! of one HTTP body ([`Chunks`]). With 1,000 targets `/metrics` is ~6 MB of text; before, a
//! scrape held the protobuf structures of ~95,000 series *and* the text, in a buffer grown by
//! doubling. The output is byte for byte what `prometheus::TextEncoder` writes (tests/golden.rs).
//!
//! `/metrics` writes no series itself (issue 31): each target's series are written as a
//! [`Block`] when its state is published ([`Exposition::block`], [`Exposition::into_block`]),
//! and a scrape copies the blocks family by family ([`Assembly`]) into chunks as they are sent:
//! the same bytes, each family still one group.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::fmt::Write as _;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use hashbrown::HashMap;

use crate::targets::state::Block;

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
    /// `# HELP`/`# TYPE` lines (not in a target's block), then every series, as text.
    text: String,
    series: usize,
    /// Its [`Registry`] id and name, in a block.
    id: u32,
    name: String,
}

/// Families by name in first-use order, each written as text as its series arrive.
#[derive(Default)]
pub struct Exposition {
    format: Format,
    /// A target's block ([`Exposition::block`]): series only, the headers written at assembly.
    block: bool,
    /// A value written differs between the formats (an infinity): a block for OpenMetrics
    /// must then be written apart.
    format_sensitive: bool,
    families: Vec<Family>,
    index: HashMap<String, usize>,
    /// In a block: families by the address and length of the name they were last asked by (the
    /// callers' literals: nothing allocated per family), and by registry id.
    by_address: HashMap<(usize, usize), usize>,
    by_id: Vec<u32>,
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
        // Most values are whole counts: an integer's digits are what `Display` writes for the
        // f64, at a fraction of the shortest-float search (-0.0 is written "-0", so not here).
        _ if v.fract() == 0.0 && v.abs() < 1e15 && (v != 0.0 || v.is_sign_positive()) => {
            let _ = write!(out, "{}", v as i64);
        }
        _ => {
            let _ = write!(out, "{v}");
        }
    }
}

/// The `# HELP`/`# TYPE` lines of a family in `format`.
fn header_into(text: &mut String, name: &str, help: &str, kind: Kind, format: Format) {
    let om = format == Format::OpenMetrics;
    // OpenMetrics names a counter family without the samples' `_total`.
    let family = match kind {
        Kind::Counter if om => name.strip_suffix("_total").unwrap_or(name),
        _ => name,
    };
    if !help.is_empty() {
        text.push_str("# HELP ");
        text.push_str(family);
        text.push(' ');
        escape_into(text, help, om);
        text.push('\n');
    }
    let _ = writeln!(text, "# TYPE {family} {}", kind.as_str());
}

impl Exposition {
    pub fn new(format: Format) -> Self {
        Self {
            format,
            ..Self::default()
        }
    }

    /// One target's series without the families' headers, to be kept as a [`Block`] and
    /// assembled with the other targets' ([`assemble`]).
    pub fn block(format: Format) -> Self {
        Self {
            format,
            block: true,
            ..Self::default()
        }
    }

    fn family(&mut self, name: &str, help: &str, kind: Kind) -> &mut Family {
        let pos = match self.last {
            // Compare by address first: callers pass the same `&'static str` series after series.
            Some((key, pos)) if key == (name.as_ptr() as usize, name.len()) => pos,
            _ if self.block => {
                let key = (name.as_ptr() as usize, name.len());
                // The address is a hint: a caller's buffer may hold another name later.
                let hit = self.by_address.get(&key).copied();
                let pos = match hit.filter(|&p| self.families[p].name == name) {
                    Some(p) => p,
                    None => {
                        let id = registry().intern(name, help, kind);
                        let i = id as usize;
                        if i >= self.by_id.len() {
                            self.by_id.resize(i + 1, u32::MAX);
                        }
                        if self.by_id[i] == u32::MAX {
                            self.by_id[i] = self.families.len() as u32;
                            let mut f = spare_family();
                            f.id = id;
                            f.name.push_str(name);
                            self.families.push(f);
                        }
                        let p = self.by_id[i] as usize;
                        self.by_address.insert(key, p);
                        p
                    }
                };
                self.last = Some((key, pos));
                pos
            }
            _ => {
                let pos = match self.index.get(name) {
                    Some(&p) => p,
                    None => {
                        let mut text = String::with_capacity(256);
                        header_into(&mut text, name, help, kind, self.format);
                        self.families.push(Family {
                            text,
                            series: 0,
                            id: 0,
                            name: String::new(),
                        });
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
    fn line<'a, V: AsRef<str>>(
        format: Format,
        text: &mut String,
        name: &str,
        suffix: &str,
        labels: impl Iterator<Item = (&'a str, V)> + Clone,
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
            pair(text, n, v.as_ref());
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
    pub fn sample<'a, V: AsRef<str>>(
        &mut self,
        name: &str,
        help: &str,
        kind: Kind,
        labels: impl Iterator<Item = (&'a str, V)> + Clone,
        value: f64,
    ) {
        let format = self.format;
        self.format_sensitive |= value.is_infinite();
        let f = self.family(name, help, kind);
        f.series += 1;
        Self::line(format, &mut f.text, name, "", labels, None, value);
    }

    /// A histogram series from cumulative `(upper bound, count)` buckets, `+Inf` added when
    /// missing, then `_sum` and `_count`.
    pub fn histogram<'a, V: AsRef<str>>(
        &mut self,
        name: &str,
        help: &str,
        labels: impl Iterator<Item = (&'a str, V)> + Clone,
        buckets: impl Iterator<Item = (f64, u64)>,
        sum: f64,
        count: u64,
    ) {
        let format = self.format;
        self.format_sensitive |= sum.is_infinite();
        let f = self.family(name, help, Kind::Histogram);
        f.series += 1;
        let mut inf_seen = false;
        let mut sensitive = false;
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
            sensitive |= ub.is_infinite();
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
        self.format_sensitive |= sensitive;
    }

    /// The families that have series, each one chunk of text, in first-use order.
    pub fn into_chunks(self) -> Vec<Bytes> {
        self.families
            .into_iter()
            .filter(|f| f.series > 0)
            .map(|f| Bytes::from(f.text))
            .collect()
    }

    /// True when a value written is spelled differently in the other format (an infinity).
    pub fn format_sensitive(&self) -> bool {
        self.format_sensitive
    }

    /// The series of a [`Exposition::block`] as one buffer, with where each family's lines
    /// end, families by their [`Registry`] id.
    pub fn into_block(self) -> Block {
        let total = self.families.iter().map(|f| f.text.len()).sum();
        let mut text = Vec::with_capacity(total);
        let mut families = Vec::with_capacity(self.families.len());
        for f in self.families.iter().filter(|f| f.series > 0) {
            text.extend_from_slice(f.text.as_bytes());
            families.push((f.id, text.len() as u32));
        }
        give_back(self.families);
        Block {
            text: text.into_boxed_slice(),
            families: families.into_boxed_slice(),
        }
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

thread_local! {
    /// Family buffers of blocks written on this thread, emptied and kept for the next block: a
    /// poller's block is written without allocating a buffer per family once warm.
    static SPARE: std::cell::RefCell<Vec<Family>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Spare buffers kept per thread, and the largest kept (a larger one is dropped): at most
/// 512 KiB a thread, ~20 kB for the small targets of a fleet (a family's lines of one target
/// are a few hundred bytes).
const SPARE_FAMILIES: usize = 128;
const SPARE_BYTES: usize = 4 * 1024;

fn spare_family() -> Family {
    SPARE
        .with(|s| s.borrow_mut().pop())
        .unwrap_or_else(|| Family {
            text: String::with_capacity(128),
            series: 0,
            id: 0,
            name: String::new(),
        })
}

fn give_back(families: Vec<Family>) {
    SPARE.with(|s| {
        let mut spare = s.borrow_mut();
        for mut f in families {
            if spare.len() < SPARE_FAMILIES && f.text.capacity() <= SPARE_BYTES {
                f.text.clear();
                f.name.clear();
                f.series = 0;
                spare.push(f);
            }
        }
    });
}

/// Every family a block was written with, by a small id: a block names its families by id, so
/// that assembling thousands of blocks looks nothing up by name. Names are the code's own (a
/// fixed set), so it stays small; the first help and kind seen for a name are its header's, as
/// in an [`Exposition`].
#[derive(Default)]
struct Registry {
    index: HashMap<String, u32>,
    defs: Vec<(String, String, Kind)>,
}

impl Registry {
    fn intern(&mut self, name: &str, help: &str, kind: Kind) -> u32 {
        if let Some(&id) = self.index.get(name) {
            return id;
        }
        let id = self.defs.len() as u32;
        self.defs.push((name.to_string(), help.to_string(), kind));
        self.index.insert(name.to_string(), id);
        id
    }
}

static REGISTRY: std::sync::LazyLock<std::sync::Mutex<Registry>> =
    std::sync::LazyLock::new(Default::default);

fn registry() -> std::sync::MutexGuard<'static, Registry> {
    // A poisoned lock only means a writer panicked between two pushes of a name it then lacks.
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner())
}

/// The targets' blocks as an exposition: families in first-use order over the blocks, each
/// family's header once, then every block's lines of it in the blocks' order. Byte for byte
/// what one [`Exposition`] fed the same series target after target writes, by copying: no
/// value or label is formatted here. One chunk per family.
pub fn assemble(blocks: &[&Block], format: Format) -> Vec<Bytes> {
    let owned = blocks.iter().map(|b| Arc::new((*b).clone())).collect();
    Assembly::new(owned, format).collect()
}

/// The most an [`Assembly`] chunk holds beyond one block's lines of a family.
pub const ASSEMBLY_CHUNK: usize = 256 * 1024;

/// An exposition assembled from blocks as it is read, in chunks of about [`ASSEMBLY_CHUNK`]
/// bytes: what it holds is the blocks' `Arc`s, the families' headers and one chunk. Its
/// length is known before the first byte (an exact `Content-Length`).
pub struct Assembly {
    blocks: Vec<Arc<Block>>,
    /// The output's families (ids) and their headers.
    order: Vec<u32>,
    headers: Vec<String>,
    /// Per block: its families come in the output's order (every block, in practice: they are
    /// written by one code path), so it is read with a cursor; any other by a search.
    in_order: Vec<bool>,
    cursors: Vec<usize>,
    /// Where the reading is: the family, and the next block within it (`None`: its header).
    family: usize,
    block: Option<usize>,
    len: u64,
}

impl Assembly {
    pub fn new(blocks: Vec<Arc<Block>>, format: Format) -> Self {
        const UNSEEN: u32 = u32::MAX;
        // Family id -> its place in the output.
        let mut place: Vec<u32> = Vec::new();
        let mut order: Vec<u32> = Vec::new();
        let mut len = 0u64;
        let mut in_order = Vec::with_capacity(blocks.len());
        for b in &blocks {
            let (mut last, mut ordered) = (None, true);
            for &(id, _) in b.families.iter() {
                let i = id as usize;
                if i >= place.len() {
                    place.resize(i + 1, UNSEEN);
                }
                if place[i] == UNSEEN {
                    place[i] = order.len() as u32;
                    order.push(id);
                }
                let p = place[i];
                ordered &= last.is_none_or(|l| l < p);
                last = Some(p);
            }
            len += b.text.len() as u64;
            in_order.push(ordered);
        }
        let headers: Vec<String> = {
            let registry = registry();
            order
                .iter()
                .map(|&id| {
                    let mut h = String::new();
                    if let Some((name, help, kind)) = registry.defs.get(id as usize) {
                        header_into(&mut h, name, help, *kind, format);
                    }
                    h
                })
                .collect()
        };
        len += headers.iter().map(|h| h.len() as u64).sum::<u64>();
        Assembly {
            cursors: vec![0; blocks.len()],
            blocks,
            order,
            headers,
            in_order,
            family: 0,
            block: None,
            len,
        }
    }

    /// The bytes left to read.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Where block `i`'s lines of family `id` are, if it has any (a cursor moves past them).
    fn lines(&mut self, i: usize, id: u32) -> std::ops::Range<usize> {
        let b = &self.blocks[i];
        let at = if self.in_order[i] {
            let c = self.cursors[i];
            (b.families.get(c).is_some_and(|f| f.0 == id)).then(|| {
                self.cursors[i] += 1;
                c
            })
        } else {
            b.families.iter().position(|f| f.0 == id)
        };
        let Some(j) = at else { return 0..0 };
        let start = if j == 0 { 0 } else { b.families[j - 1].1 } as usize;
        start..b.families[j].1 as usize
    }
}

impl Iterator for Assembly {
    type Item = Bytes;

    /// The next chunk: a family's header and lines, as many as fit in [`ASSEMBLY_CHUNK`].
    fn next(&mut self) -> Option<Bytes> {
        let mut chunk: Vec<u8> = Vec::new();
        while self.family < self.order.len() {
            let id = self.order[self.family];
            match self.block {
                None => {
                    let header = self.headers[self.family].as_bytes();
                    if !chunk.is_empty() && chunk.len() + header.len() > ASSEMBLY_CHUNK {
                        break;
                    }
                    if chunk.capacity() == 0 {
                        chunk.reserve(ASSEMBLY_CHUNK.min(self.len as usize));
                    }
                    chunk.extend_from_slice(header);
                    self.block = Some(0);
                }
                Some(i) if i < self.blocks.len() => {
                    let range = self.lines(i, id);
                    let lines = self.blocks[i].text.get(range).unwrap_or_default();
                    if !chunk.is_empty() && chunk.len() + lines.len() > ASSEMBLY_CHUNK {
                        // Read again at the next chunk (the cursor steps back).
                        if self.in_order[i] {
                            self.cursors[i] -= 1;
                        }
                        break;
                    }
                    if chunk.capacity() == 0 {
                        chunk.reserve(ASSEMBLY_CHUNK.min(self.len as usize).max(lines.len()));
                    }
                    chunk.extend_from_slice(lines);
                    self.block = Some(i + 1);
                }
                Some(_) => {
                    self.family += 1;
                    self.block = None;
                }
            }
        }
        if chunk.is_empty() {
            return None;
        }
        self.len -= chunk.len() as u64;
        Some(Bytes::from(chunk))
    }
}

/// An HTTP body made of chunks, ready or written as they are sent (an [`Assembly`]), sent one
/// after the other without joining them; its exact length is known, so the response carries
/// a `Content-Length`.
pub struct Chunks {
    parts: VecDeque<Part>,
    left: u64,
}

enum Part {
    Ready(Bytes),
    Assembly(Box<Assembly>),
}

impl Chunks {
    pub fn new(chunks: impl IntoIterator<Item = Bytes>) -> Self {
        let mut c = Chunks {
            parts: VecDeque::new(),
            left: 0,
        };
        for b in chunks {
            c.push(b);
        }
        c
    }

    /// `b` after what is there.
    pub fn push(&mut self, b: Bytes) {
        if !b.is_empty() {
            self.left += b.len() as u64;
            self.parts.push_back(Part::Ready(b));
        }
    }

    /// An assembly's chunks after what is there.
    pub fn append(&mut self, a: Assembly) {
        if !a.is_empty() {
            self.left += a.len();
            self.parts.push_back(Part::Assembly(Box::new(a)));
        }
    }

    /// The exact length of what is left.
    pub fn len(&self) -> u64 {
        self.left
    }

    pub fn is_empty(&self) -> bool {
        self.left == 0
    }
}

impl Iterator for Chunks {
    type Item = Bytes;

    fn next(&mut self) -> Option<Bytes> {
        loop {
            let next = match self.parts.front_mut()? {
                Part::Ready(_) => match self.parts.pop_front() {
                    Some(Part::Ready(b)) => Some(b),
                    _ => None,
                },
                Part::Assembly(a) => a.next(),
            };
            match next {
                Some(b) => {
                    self.left = self.left.saturating_sub(b.len() as u64);
                    return Some(b);
                }
                None => {
                    self.parts.pop_front();
                }
            }
        }
    }
}

impl http_body::Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.next().map(|c| Ok(http_body::Frame::data(c))))
    }

    fn is_end_stream(&self) -> bool {
        self.left == 0
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.left)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_values_are_written_as_display_writes_them() {
        let values = [
            0.0,
            -0.0,
            1.0,
            -1.0,
            42.0,
            1e15 - 1.0,
            -(1e15 - 1.0),
            1e15,
            1e16,
            0.5,
            -2.5,
            1e-7,
            123456.0,
            9.007_199_254_740_993e15,
            f64::MAX,
            f64::MIN_POSITIVE,
        ];
        for v in values {
            for format in [Format::Text, Format::OpenMetrics] {
                let mut out = String::new();
                value_into(&mut out, v, format);
                assert_eq!(out, format!("{v}"), "{v:?} in {format:?}");
            }
        }
    }
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
        mine.sample(
            "x_never",
            "",
            Kind::Counter,
            std::iter::empty::<(&str, &str)>(),
            1.0,
        );
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
            std::iter::empty::<(&str, &str)>(),
            f64::NEG_INFINITY,
        );
        om.histogram(
            "x_seconds",
            "H.",
            std::iter::empty::<(&str, &str)>(),
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

    /// Series of one target: `(family, kind, label value, value)`.
    type Series<'a> = &'a [(&'a str, Kind, &'a str, f64)];

    fn feed(e: &mut Exposition, target: &str, series: Series<'_>) {
        for &(name, kind, v, value) in series {
            let help = if name.ends_with("_total") {
                "Count."
            } else {
                ""
            };
            if kind == Kind::Histogram {
                e.histogram(
                    name,
                    "A histogram.",
                    [("target", target), ("v", v)].into_iter(),
                    [(1.0, 1u64), (value, 2)].into_iter(),
                    value,
                    2,
                );
            } else {
                e.sample(
                    name,
                    help,
                    kind,
                    [("target", target), ("v", v)].into_iter(),
                    value,
                );
            }
        }
    }

    /// Blocks assembled are the exposition of the same series written target after target, in
    /// both formats: families the first target lacks, a target with no series, a target whose
    /// families come in another order than the first one's, infinities.
    #[test]
    fn assembled_blocks_are_the_exposition_written_at_once() {
        let targets: [(&str, Series<'_>); 4] = [
            (
                "a",
                &[
                    ("up", Kind::Gauge, "x", 1.0),
                    ("conn", Kind::Gauge, "p", 3.0),
                    ("idle", Kind::Gauge, "p", 1.0),
                    ("conn", Kind::Gauge, "q", 4.0),
                    ("idle", Kind::Gauge, "q", 0.0),
                ],
            ),
            ("empty", &[]),
            (
                "b",
                &[
                    ("up", Kind::Gauge, "x", 0.0),
                    ("polls_total", Kind::Counter, "x", 7.0),
                    ("conn", Kind::Gauge, "p", f64::INFINITY),
                    ("age_seconds", Kind::Histogram, "x", 5.0),
                ],
            ),
            (
                "reversed",
                &[
                    ("age_seconds", Kind::Histogram, "x", f64::INFINITY),
                    ("idle", Kind::Gauge, "z", 2.0),
                    ("up", Kind::Gauge, "x", 1.0),
                    ("new_one", Kind::Gauge, "n", -1.5),
                ],
            ),
        ];
        for format in [Format::Text, Format::OpenMetrics] {
            let mut whole = Exposition::new(format);
            let mut blocks = Vec::new();
            for (target, series) in &targets {
                feed(&mut whole, target, series);
                let mut b = Exposition::block(format);
                feed(&mut b, target, series);
                blocks.push(b.into_block());
            }
            let refs: Vec<&Block> = blocks.iter().collect();
            let assembled: Vec<u8> = assemble(&refs, format).concat();
            assert_eq!(
                String::from_utf8(assembled).expect("utf8"),
                String::from_utf8(whole.into_bytes()).expect("utf8"),
                "{format:?}"
            );
        }
    }

    #[test]
    fn a_block_knows_when_the_formats_differ() {
        let mut b = Exposition::block(Format::Text);
        feed(&mut b, "t", &[("up", Kind::Gauge, "x", 1.0)]);
        assert!(!b.format_sensitive());
        feed(&mut b, "t", &[("v", Kind::Gauge, "x", f64::NEG_INFINITY)]);
        assert!(b.format_sensitive());
        let mut h = Exposition::block(Format::Text);
        feed(&mut h, "t", &[("h", Kind::Histogram, "x", f64::INFINITY)]);
        assert!(h.format_sensitive());
    }

    /// A page larger than a chunk: read in chunks no larger than [`ASSEMBLY_CHUNK`], whose
    /// length was known before the first, together the exposition written at once.
    #[test]
    fn an_assembly_is_read_in_bounded_chunks_of_exact_length() {
        let long = "v".repeat(200);
        let mut whole = Exposition::new(Format::Text);
        let mut blocks = Vec::new();
        for i in 0..1500 {
            let target = format!("target-{i}");
            let series: Series<'_> = &[
                ("up", Kind::Gauge, &long, 1.0),
                ("conn", Kind::Gauge, &long, i as f64),
            ];
            feed(&mut whole, &target, series);
            let mut b = Exposition::block(Format::Text);
            feed(&mut b, &target, series);
            blocks.push(Arc::new(b.into_block()));
        }
        let expected = whole.into_bytes();
        assert!(expected.len() > 2 * ASSEMBLY_CHUNK);
        let mut body = Chunks::new([Bytes::from_static(b"# first\n")]);
        body.append(Assembly::new(blocks, Format::Text));
        body.push(Bytes::from_static(b"# last\n"));
        let len = body.len();
        let chunks: Vec<Bytes> = body.collect();
        assert!(chunks.len() > 3, "{}", chunks.len());
        assert!(chunks.iter().all(|c| c.len() <= ASSEMBLY_CHUNK));
        let joined = chunks.concat();
        assert_eq!(joined.len() as u64, len);
        let mut want = b"# first\n".to_vec();
        want.extend_from_slice(&expected);
        want.extend_from_slice(b"# last\n");
        assert_eq!(joined, want);
    }
}
