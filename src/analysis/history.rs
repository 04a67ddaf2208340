//! A short, bounded per-target history of what the polls saw: enough to tell growth (a leak, a
//! scale-out) and rates (connection churn, refusals) from a single snapshot's shape.
//!
//! The history refines what one snapshot shows but is never its only baseline: the daemon's
//! first sample is not "before the incident" (the exporter may have started in the middle of
//! it). Growth that happened before the first sample is read from connection ages instead
//! (see `aggregate::Fleet`).
//!
//! Memory is bounded twice: samples are kept at least `retention / MAX_SAMPLES` apart (the
//! newest is always kept, so rates between the last two entries stay fresh), and each sample
//! holds only the top [`TOP_GROUPS`] sources, client names and sources opening connections,
//! and the top [`TOP_SERVICES`] libraries and /24 prefixes. It is kept small for the many
//! small targets of a fleet (issues 20 and 31): a sample is 48 bytes inline (its time and four
//! u32 counts); everything else it saw (INFO's counters, maxclients, each group's counts, the
//! young tally) is packed in one byte block (varints, a key named by a one-byte index), the
//! previous sample's very block when nothing changed, and the keys sit once in a key table that
//! the samples share while they name no other key (a table is dropped with the last sample
//! that holds it). Measured by tests/memory.rs (`cargo test --test memory -- --nocapture`:
//! counting allocator, 60 samples of 11 connections: 6 client names, 3 sources, one /24):
//! 3.6 kB when the counts do not change, 7.4 kB when they change every minute; it was 5.7 and
//! 24.6 kB with one shared block of `Arc<str>` keys and u32 counts (80-byte samples), and
//! 44.3 kB either way before that.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use crate::analysis::aggregate::{ClientListSummary, Dimension, GroupStats, OTHER};
use crate::redis::info::Info;

/// How far back the daemon's history reaches.
pub const RETENTION: Duration = Duration::from_secs(3600);
/// Samples kept over the retention window (plus the newest).
pub const MAX_SAMPLES: usize = 60;
/// The newest samples kept whatever their spacing: a fast leak shows poll by poll within the
/// first minute, before the spaced samples could.
pub const RECENT: usize = 6;
/// Sources and names kept per sample.
pub const TOP_GROUPS: usize = 10;
/// Client libraries and /24 prefixes kept per sample.
pub const TOP_SERVICES: usize = 5;
/// Half-life of the tally of young connections per source, in seconds: long enough to span
/// several polls (one snapshot may catch a per-request client between two connections), short
/// enough to follow who churns now.
pub const YOUNG_HALF_LIFE_SECONDS: f64 = 30.0;

/// One group's counts at one time, as a sample's readers get it (decoded from its bytes). `u32`:
/// a Redis server holds far fewer than 2^32 clients, and the counts of 60 samples of every
/// target add up (saturating, never wrapping).
#[derive(Debug, Clone, PartialEq)]
pub struct GroupCount {
    pub key: Arc<str>,
    pub connections: u32,
    /// Leak candidates ([`GroupStats::unused`]): idle at least the threshold (not pub/sub, not
    /// blocked), or younger and untouched since they connected.
    pub idle: u32,
}

/// A decayed count per source of young connections (see [`YOUNG_HALF_LIFE_SECONDS`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Tally {
    pub key: Arc<str>,
    pub value: f64,
}

/// The keys a sample's bytes name by a one-byte index: shared by the samples that follow
/// while they name no other key (most do: a population's sources and names come and go
/// slowly), and dropped with the last sample that holds them.
#[derive(Debug, PartialEq)]
struct Keys(Box<[Arc<str>]>);

/// Keys in one table at most: the keys one sample names (at most 2 × [`TOP_GROUPS`] +
/// 2 × [`TOP_SERVICES`] + [`TOP_GROUPS`] young sources, 40) and, while there is room, the
/// previous table's, so that a key which comes and goes does not make a new table each time.
const MAX_KEYS: usize = 64;

/// What one poll saw, reduced to what trends need. 48 bytes inline; all the rest (INFO's
/// counters, maxclients, the groups' counts and the young tally) is packed in one shared byte
/// block, the same `Arc` as the previous sample's when nothing changed, with its keys in a
/// [`Keys`] table shared the same way. Layout of the block, each number a LEB128 varint:
/// `limit_connections`, `total_connections_received`, `rejected_connections` (0: unknown,
/// 1: an 8-byte f64 follows, n ≥ 2: the whole number n - 2), maxclients (0: unknown), then for
/// sources, names, libraries and prefixes in turn a count and as many (key index byte,
/// connections, idle), then a count of young sources and as many (key index byte, 8-byte f64).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sample {
    /// Unix time, seconds.
    pub at: f64,
    pub connections: u32,
    pub distinct_sources: u32,
    /// Client instances (distinct sources but the exporter's own).
    pub instances: u32,
    /// Idle connections, not pub/sub, not blocked, not ours: leak candidates, server-wide.
    pub idle_unused: u32,
    /// `None` when the sample names no key.
    keys: Option<Arc<Keys>>,
    /// `None` when the poll saw nothing to keep (nothing allocated).
    data: Option<Arc<[u8]>>,
}

fn small(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// The key `k` as an `Arc` shared with the previous sample's, when it had it.
fn shared<'a>(k: &str, prev: impl IntoIterator<Item = &'a Arc<str>>) -> Arc<str> {
    prev.into_iter()
        .find(|p| &***p == k)
        .map_or_else(|| Arc::from(k), Arc::clone)
}

fn put(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

/// A counter: 0 unknown, 1 and its f64 bits, or a whole number n as n + 2.
fn put_num(out: &mut Vec<u8>, v: Option<f64>) {
    match v {
        None => put(out, 0),
        Some(x) if x.is_sign_positive() && x.fract() == 0.0 && x < 9.0e15 => put(out, x as u64 + 2),
        Some(x) => {
            put(out, 1);
            out.extend_from_slice(&x.to_le_bytes());
        }
    }
}

/// Reads a sample's bytes; past their end it reads zeros (an empty block is all unknown).
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }

    fn u(&mut self) -> u64 {
        let mut v = 0u64;
        let mut shift = 0u32;
        while let Some(b) = self.byte() {
            if shift < 64 {
                v |= u64::from(b & 0x7f) << shift;
            }
            shift += 7;
            if b & 0x80 == 0 {
                break;
            }
        }
        v
    }

    fn f64(&mut self) -> f64 {
        let (head, rest) = self.0.split_at(self.0.len().min(8));
        self.0 = rest;
        <[u8; 8]>::try_from(head).map_or(0.0, f64::from_le_bytes)
    }

    fn num(&mut self) -> Option<f64> {
        match self.u() {
            0 => None,
            1 => Some(self.f64()),
            n => Some((n - 2) as f64),
        }
    }

    /// Past one varint, without decoding it.
    fn skip(&mut self) {
        while let Some(b) = self.byte() {
            if b & 0x80 == 0 {
                break;
            }
        }
    }

    /// Past one counter (see [`put_num`]).
    fn skip_num(&mut self) {
        match self.byte() {
            Some(1) => self.0 = self.0.get(8..).unwrap_or(&[]),
            Some(b) if b & 0x80 != 0 => self.skip(),
            _ => {}
        }
    }

    /// Past the counters and maxclients, at the first kind's count.
    fn groups(mut self) -> Self {
        for _ in 0..3 {
            self.skip_num();
        }
        self.skip();
        self
    }

    /// Past `n` kinds of groups.
    fn skip_kinds(&mut self, n: usize) {
        for _ in 0..n {
            for _ in 0..self.u() {
                if self.byte().is_none() {
                    return;
                }
                self.skip();
                self.skip();
            }
        }
    }
}

/// The groups of one kind in a sample, largest first.
struct Entries<'a> {
    keys: &'a [Arc<str>],
    r: Reader<'a>,
    left: u64,
}

impl<'a> Iterator for Entries<'a> {
    type Item = (&'a Arc<str>, u32, u32);

    fn next(&mut self) -> Option<Self::Item> {
        self.left = self.left.checked_sub(1)?;
        let i = self.r.byte()?;
        let (connections, idle) = (self.r.u(), self.r.u());
        Some((
            self.keys.get(usize::from(i))?,
            small(connections),
            small(idle),
        ))
    }
}

/// Index of `k` in `table` (it is there: the table was made of the keys to encode).
fn index(table: &[Arc<str>], k: &str) -> u8 {
    let i = table.iter().position(|x| &**x == k).unwrap_or(0);
    u8::try_from(i).unwrap_or(u8::MAX)
}

/// A sample's block of bytes (see [`Sample`]).
fn encode(
    counters: [Option<f64>; 3],
    maxclients: u32,
    kinds: &[Vec<(&str, u32, u32)>; 4],
    young: &[Tally],
    table: &[Arc<str>],
) -> Vec<u8> {
    let mut b = Vec::with_capacity(64);
    for c in counters {
        put_num(&mut b, c);
    }
    put(&mut b, u64::from(maxclients));
    for kind in kinds {
        put(&mut b, kind.len() as u64);
        for &(k, connections, idle) in kind {
            b.push(index(table, k));
            put(&mut b, u64::from(connections));
            put(&mut b, u64::from(idle));
        }
    }
    put(&mut b, young.len() as u64);
    for t in young {
        b.push(index(table, &t.key));
        b.extend_from_slice(&t.value.to_le_bytes());
    }
    b
}

fn top(groups: &[(String, GroupStats)], n: usize) -> Vec<(&str, u32, u32)> {
    groups
        .iter()
        .filter(|(k, _)| k != OTHER)
        .take(n)
        .map(|(k, v)| (k.as_str(), small(v.clients()), small(v.unused())))
        .collect()
}

/// The previous tally decayed to `at`, plus this snapshot's young connections per source.
fn young_tally(at: f64, clients: &ClientListSummary, prev: Option<&Sample>) -> Vec<Tally> {
    let mut tally: Vec<Tally> = match prev {
        Some(p) => {
            let decay = 0.5f64.powf((at - p.at).max(0.0) / YOUNG_HALF_LIFE_SECONDS);
            p.young()
                .into_iter()
                .map(|t| Tally {
                    key: t.key,
                    value: t.value * decay,
                })
                .filter(|t| t.value >= 0.05)
                .collect()
        }
        None => Vec::new(),
    };
    for (k, g) in clients
        .by_source
        .iter()
        .filter(|(k, g)| k != OTHER && g.young > 0)
    {
        match tally.iter_mut().find(|t| &*t.key == k.as_str()) {
            Some(t) => t.value += g.young as f64,
            None => tally.push(Tally {
                key: Arc::from(k.as_str()),
                value: g.young as f64,
            }),
        }
    }
    tally.sort_by(|a, b| b.value.total_cmp(&a.value));
    tally.truncate(TOP_GROUPS);
    tally
}

/// The key table for `needed`: the previous one when it holds them all, else a new one (of
/// `needed`, then the previous table's other keys while there is room), its keys shared with
/// the previous table's. `None` when nothing is needed.
fn table_for(needed: &[&str], prev: Option<&Arc<Keys>>) -> Option<Arc<Keys>> {
    if needed.is_empty() {
        return None;
    }
    let old: &[Arc<str>] = prev.map_or(&[], |k| &k.0);
    if let Some(p) = prev.filter(|_| needed.iter().all(|n| old.iter().any(|k| &**k == *n))) {
        return Some(Arc::clone(p));
    }
    let mut table: Vec<Arc<str>> = Vec::with_capacity(MAX_KEYS.min(needed.len() + old.len()));
    for n in needed {
        if !table.iter().any(|k| &**k == *n) {
            table.push(shared(n, old));
        }
    }
    for k in old {
        if table.len() >= MAX_KEYS {
            break;
        }
        if !table.iter().any(|t| t == k) {
            table.push(Arc::clone(k));
        }
    }
    Some(Arc::new(Keys(table.into_boxed_slice())))
}

impl Sample {
    /// `prev` is the sample before this one, whose keys (and block, when it is the same) are
    /// reused. maxclients is INFO's (Redis 7.0+); [`Sample::observe`] takes the effective one.
    pub fn new(at: f64, info: &Info, clients: &ClientListSummary, prev: Option<&Sample>) -> Sample {
        Self::observe(at, info, info.maxclients, clients, prev)
    }

    /// [`Sample::new`] with the effective maxclients of this poll (CONFIG's, else INFO's).
    pub fn observe(
        at: f64,
        info: &Info,
        maxclients: Option<f64>,
        clients: &ClientListSummary,
        prev: Option<&Sample>,
    ) -> Sample {
        let kinds = [
            top(&clients.by_source, TOP_GROUPS),
            top(&clients.by_name, TOP_GROUPS),
            top(&clients.by_lib, TOP_SERVICES),
            top(&clients.by_prefix, TOP_SERVICES),
        ];
        let young = young_tally(at, clients, prev);
        let needed: Vec<&str> = kinds
            .iter()
            .flatten()
            .map(|e| e.0)
            .chain(young.iter().map(|t| &*t.key))
            .collect();
        let prev_keys = prev.and_then(|p| p.keys.as_ref());
        let keys = table_for(&needed, prev_keys);
        let table: &[Arc<str>] = keys.as_ref().map_or(&[], |k| &k.0);
        let bytes = encode(
            [
                info.limit_connections(),
                info.total_connections_received,
                info.rejected_connections,
            ],
            // Rounded into a u32 (a server's maxclients is far below 2^32); 0 stays "unknown".
            maxclients.map_or(0, |m| m.clamp(0.0, f64::from(u32::MAX)) as u32),
            &kinds,
            &young,
            table,
        );
        let same_keys = match (&keys, prev_keys) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (None, _) => true,
            _ => false,
        };
        let data = match prev.and_then(|p| p.data.as_ref()) {
            Some(d) if same_keys && **d == *bytes => Some(Arc::clone(d)),
            _ if bytes.iter().all(|&b| b == 0) => None,
            _ => Some(Arc::from(bytes.as_slice())),
        };
        Sample {
            at,
            connections: small(clients.connections),
            distinct_sources: small(clients.distinct_sources),
            instances: small(clients.instances),
            idle_unused: small(clients.by_source.iter().map(|(_, g)| g.idle_unused()).sum()),
            keys,
            data,
        }
    }

    /// This sample with other INFO counters (what a test builds).
    #[cfg(test)]
    pub(crate) fn with_counters(
        mut self,
        limit_connections: Option<f64>,
        total_connections_received: Option<f64>,
        rejected_connections: Option<f64>,
    ) -> Sample {
        let mut b = Vec::new();
        put_num(&mut b, limit_connections);
        put_num(&mut b, total_connections_received);
        put_num(&mut b, rejected_connections);
        let mut r = self.reader();
        for _ in 0..3 {
            r.num();
        }
        if r.0.is_empty() {
            b.extend_from_slice(&[0; 6]);
        } else {
            b.extend_from_slice(r.0);
        }
        self.data = Some(Arc::from(b.as_slice()));
        self
    }

    fn reader(&self) -> Reader<'_> {
        Reader(self.data.as_deref().unwrap_or(&[]))
    }

    fn entries(&self, kind: usize) -> Entries<'_> {
        let mut r = self.reader().groups();
        r.skip_kinds(kind);
        let left = r.u();
        Entries {
            keys: self.keys.as_ref().map_or(&[], |k| &k.0),
            r,
            left,
        }
    }

    fn kind(&self, i: usize) -> Vec<GroupCount> {
        self.entries(i)
            .map(|(key, connections, idle)| GroupCount {
                key: Arc::clone(key),
                connections,
                idle,
            })
            .collect()
    }

    /// The top sources, largest first.
    pub fn sources(&self) -> Vec<GroupCount> {
        self.kind(0)
    }

    /// The top client names, largest first.
    pub fn names(&self) -> Vec<GroupCount> {
        self.kind(1)
    }

    /// The top client libraries, largest first.
    pub fn libs(&self) -> Vec<GroupCount> {
        self.kind(2)
    }

    /// The top /24 prefixes (keyed `a.b.c.0/24`), largest first.
    pub fn prefixes(&self) -> Vec<GroupCount> {
        self.kind(3)
    }

    /// INFO's `limit_connections` (see [`Info::limit_connections`]) at this sample.
    pub fn limit_connections(&self) -> Option<f64> {
        self.reader().num()
    }

    /// INFO's `total_connections_received` at this sample.
    pub fn total_connections_received(&self) -> Option<f64> {
        let mut r = self.reader();
        r.num();
        r.num()
    }

    /// INFO's `rejected_connections` at this sample.
    pub fn rejected_connections(&self) -> Option<f64> {
        let mut r = self.reader();
        r.num();
        r.num();
        r.num()
    }

    /// The effective maxclients when this sample was taken, when known.
    pub fn maxclients(&self) -> Option<u32> {
        let mut r = self.reader();
        for _ in 0..3 {
            r.num();
        }
        Some(small(r.u())).filter(|&m| m > 0)
    }

    /// Connections refused between `prev` and this sample (`rejected_connections` grew; after
    /// a `CONFIG RESETSTAT`, what the counter holds now). `None` when either count is unknown.
    pub fn refused_since(&self, prev: &Sample) -> Option<f64> {
        let (a, b) = (prev.rejected_connections()?, self.rejected_connections()?);
        Some(if b >= a { b - a } else { b })
    }

    /// Young connections per source over the recent polls, largest first.
    pub fn young(&self) -> Vec<Tally> {
        let keys: &[Arc<str>] = self.keys.as_ref().map_or(&[], |k| &k.0);
        let mut r = self.reader().groups();
        r.skip_kinds(4);
        let n = r.u();
        let mut out = Vec::new();
        for _ in 0..n {
            let Some(i) = r.byte() else { break };
            let value = r.f64();
            if let Some(k) = keys.get(usize::from(i)) {
                out.push(Tally {
                    key: Arc::clone(k),
                    value,
                });
            }
        }
        out
    }

    /// Whether this sample holds the very same block as `other` (not a copy).
    pub fn shares_groups_with(&self, other: &Sample) -> bool {
        match (&self.data, &other.data) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }

    /// This sample's counts of one group, by the culprit kind that names it (`source_ip`,
    /// `client_name`, `lib_name`, `address_prefix`); `None` when it was not among the top
    /// groups then (unknown, not zero).
    pub fn group(&self, kind: Dimension, key: &str) -> Option<GroupCount> {
        let (i, _) = Self::kind_of(kind)?;
        self.entries(i)
            .find(|(k, _, _)| &***k == key)
            .map(|(k, connections, idle)| GroupCount {
                key: Arc::clone(k),
                connections,
                idle,
            })
    }

    /// `(connections, idle)` of one group in this sample: its counts when it was among the
    /// top groups, 0 when the sample kept fewer groups than it could (so it had none), `None`
    /// when it may have been folded away.
    pub fn counts(&self, kind: Dimension, key: &str) -> Option<(u64, u64)> {
        let (i, cap) = Self::kind_of(kind)?;
        // Walked in place: the diagnosis asks this of every sample for every candidate.
        let keys: &[Arc<str>] = self.keys.as_ref().map_or(&[], |k| &k.0);
        let mut r = self.reader().groups();
        r.skip_kinds(i);
        let n = r.u();
        for _ in 0..n {
            let Some(b) = r.byte() else { break };
            if keys.get(usize::from(b)).is_some_and(|k| &**k == key) {
                let connections = u64::from(small(r.u()));
                return Some((connections, u64::from(small(r.u()))));
            }
            r.skip();
            r.skip();
        }
        (n < cap as u64).then_some((0, 0))
    }

    fn kind_of(kind: Dimension) -> Option<(usize, usize)> {
        Some(match kind {
            Dimension::SourceIp => (0, TOP_GROUPS),
            Dimension::ClientName => (1, TOP_GROUPS),
            Dimension::LibName => (2, TOP_SERVICES),
            Dimension::AddressPrefix => (3, TOP_SERVICES),
            // The whole population is not a group the history keeps.
            Dimension::AllSources | Dimension::Workload => return None,
        })
    }

    /// This sample's connection count of a source (`by_name == false`) or a name; 0 when it was
    /// not among the top groups then.
    pub fn count_of(&self, key: &str, by_name: bool) -> u64 {
        let kind = if by_name {
            Dimension::ClientName
        } else {
            Dimension::SourceIp
        };
        self.group(kind, key)
            .map_or(0, |g| u64::from(g.connections))
    }
}

/// The bounded history of one target. See the module docs.
#[derive(Debug, Clone)]
pub struct History {
    retention: f64,
    spacing: f64,
    samples: VecDeque<Sample>,
}

impl History {
    pub fn new(retention: Duration) -> Self {
        let retention = retention.as_secs_f64().max(1.0);
        Self {
            retention,
            spacing: retention / MAX_SAMPLES as f64,
            // Grown as samples come (one a minute) rather than reserved up front: a new
            // target does not hold an hour's worth of empty slots (~12 kB) from the start.
            samples: VecDeque::new(),
        }
    }

    pub fn push(&mut self, sample: Sample) {
        // Samples at least `spacing` apart (anchors) bound the count over the retention; the
        // [`RECENT`] newest are kept whatever their spacing, and one that leaves them without
        // being an anchor is dropped.
        let cutoff = sample.at - self.retention;
        self.samples.push_back(sample);
        let n = self.samples.len();
        if let Some(leaving) = n.checked_sub(RECENT + 1).filter(|&i| i >= 1) {
            if !self.is_anchor(leaving) {
                self.samples.remove(leaving);
            }
        }
        while self.samples.len() > 1 && self.samples.front().is_some_and(|s| s.at < cutoff) {
            self.samples.pop_front();
        }
    }

    /// Whether sample `i` is at least `spacing` after the anchor before it (the first sample
    /// is one): walked from the front, at most [`MAX_SAMPLES`] + [`RECENT`] steps.
    fn is_anchor(&self, i: usize) -> bool {
        let mut anchor = match self.samples.front() {
            Some(s) => s.at,
            None => return false,
        };
        for (j, s) in self.samples.iter().enumerate().skip(1).take(i) {
            if s.at - anchor >= self.spacing {
                anchor = s.at;
                if j == i {
                    return true;
                }
            }
        }
        false
    }

    /// Oldest first, without copying (the diagnosis reads it after every poll).
    pub fn samples(&mut self) -> &[Sample] {
        self.samples.make_contiguous()
    }

    pub fn last(&self) -> Option<&Sample> {
        self.samples.back()
    }

    /// Oldest first, through a shared reference (what `/diagnose` draws from).
    pub fn iter(&self) -> impl Iterator<Item = &Sample> {
        self.samples.iter()
    }

    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(t: f64) -> Sample {
        Sample {
            at: t,
            ..Sample::default()
        }
    }

    #[test]
    fn a_sample_is_small() {
        // 60 of them per target, thousands of targets (see the module docs).
        assert!(
            std::mem::size_of::<Sample>() <= 48,
            "{}",
            std::mem::size_of::<Sample>()
        );
    }

    #[test]
    fn counters_round_trip() {
        for v in [
            None,
            Some(0.0),
            Some(1.0),
            Some(300.0),
            Some(2.5),
            Some(-0.0),
            Some(-3.0),
            Some(1e300),
        ] {
            let s = Sample::default().with_counters(v, Some(7.0), v);
            assert_eq!(s.limit_connections().map(f64::to_bits), v.map(f64::to_bits));
            assert_eq!(s.total_connections_received(), Some(7.0));
            assert_eq!(
                s.rejected_connections().map(f64::to_bits),
                v.map(f64::to_bits)
            );
            assert_eq!(s.maxclients(), None);
            assert!(s.sources().is_empty() && s.young().is_empty());
        }
    }

    #[test]
    fn maxclients_and_refusals_per_sample() {
        use crate::analysis::aggregate::Aggregator;
        let reply = "id=1 addr=10.0.0.1:1 name=a age=500 idle=1 cmd=get\n";
        let summary = Aggregator::new(60).summarize(reply, 10);
        let mut info = Info {
            rejected_connections: Some(4.0),
            ..Info::default()
        };
        let a = Sample::observe(1.0, &info, Some(50.0), &summary, None);
        info.rejected_connections = Some(9.0);
        let b = Sample::observe(2.0, &info, Some(50.0), &summary, Some(&a));
        assert_eq!((a.maxclients(), b.maxclients()), (Some(50), Some(50)));
        // The counters are in the block: another count, another block (its keys shared).
        assert!(!b.shares_groups_with(&a));
        assert!(Arc::ptr_eq(&a.sources()[0].key, &b.sources()[0].key));
        assert_eq!(b.refused_since(&a), Some(5.0));
        // The same counters, maxclients and groups: still one shared block.
        let b2 = Sample::observe(2.5, &info, Some(50.0), &summary, Some(&b));
        assert!(b2.shares_groups_with(&b));
        let b = b2;
        // CONFIG RESETSTAT: the counter holds what came after it.
        info.rejected_connections = Some(2.0);
        let c = Sample::observe(3.0, &info, Some(60.0), &summary, Some(&b));
        assert_eq!(c.refused_since(&b), Some(2.0));
        assert_eq!(c.maxclients(), Some(60));
        assert!(!c.shares_groups_with(&b));
        // Unknown maxclients (no CONFIG, INFO before 7.0) and no group: nothing allocated.
        let empty = Aggregator::new(60).summarize("", 10);
        let d = Sample::observe(4.0, &Info::default(), None, &empty, None);
        assert_eq!(d.maxclients(), None);
        assert!(d.data.is_none() && d.keys.is_none());
        assert_eq!(d.refused_since(&c), None);
    }

    #[test]
    fn bounded_and_keeps_the_newest() {
        let mut h = History::new(Duration::from_secs(120)); // spacing 1 s
        for i in 0..10_000 {
            h.push(at(f64::from(i) * 0.25));
        }
        let s = h.samples().to_vec();
        assert!(s.len() <= MAX_SAMPLES + 2 + RECENT, "{}", s.len());
        assert_eq!(s.last().map(|s| s.at), Some(9999.0 * 0.25));
        assert!(s[0].at >= 9999.0 * 0.25 - 120.0);
        // The newest RECENT are every poll's...
        let tail: Vec<f64> = s[s.len() - RECENT..].iter().map(|s| s.at).collect();
        let want: Vec<f64> = (0..RECENT)
            .rev()
            .map(|k| (9999 - k) as f64 * 0.25)
            .collect();
        assert_eq!(tail, want);
        // ...and those before them are spaced.
        for w in s[..s.len() - RECENT].windows(2) {
            assert!(w[1].at - w[0].at >= 1.0, "{} {}", w[0].at, w[1].at);
        }
    }

    #[test]
    fn keys_are_shared_with_the_previous_sample() {
        use crate::analysis::aggregate::Aggregator;
        let reply = "id=1 addr=10.0.0.1:1 name=a age=500 idle=1 cmd=get\nid=2 addr=10.0.0.2:1 name=b age=500 idle=1 cmd=get\n";
        let summary = Aggregator::new(60).summarize(reply, 10);
        let info = Info::default();
        let a = Sample::new(1.0, &info, &summary, None);
        let b = Sample::new(2.0, &info, &summary, Some(&a));
        assert_eq!(a.sources().len(), 2);
        for (x, y) in a.sources().iter().zip(b.sources()) {
            assert!(Arc::ptr_eq(&x.key, &y.key), "{}", x.key);
        }
        assert_eq!(b.count_of("10.0.0.2", false), 1);
        assert_eq!(
            b.group(Dimension::AddressPrefix, "10.0.0.0/24")
                .map(|g| g.connections),
            Some(2)
        );
        assert!(Arc::ptr_eq(&a.prefixes()[0].key, &b.prefixes()[0].key));
        // Nothing changed (no young connections either): the whole block of groups is the
        // previous sample's.
        assert!(b.shares_groups_with(&a));
        let other = Aggregator::new(60).summarize(&reply.replace("name=b", "name=c"), 10);
        let c = Sample::new(3.0, &info, &other, Some(&b));
        assert!(!c.shares_groups_with(&b));
        assert_eq!(c.count_of("c", true), 1);
        assert_eq!(c.count_of("b", true), 0);
        // The unchanged keys are still shared.
        assert!(Arc::ptr_eq(&b.names()[0].key, &c.names()[0].key));
    }

    #[test]
    fn young_connections_add_up_over_polls_and_fade() {
        use crate::analysis::aggregate::Aggregator;
        let churner = "id=1 addr=10.0.0.9:1 name= age=0 idle=0 cmd=ping\n";
        let steady = "id=2 addr=10.0.0.1:1 name=a age=500 idle=0 cmd=get\n";
        let mut agg = Aggregator::new(60);
        let info = Info::default();
        let with = agg.summarize(&format!("{churner}{steady}"), 10);
        let without = agg.summarize(steady, 10);
        let a = Sample::new(0.0, &info, &with, None);
        // The next snapshot caught the churner between two connections: it is still named.
        let b = Sample::new(1.0, &info, &without, Some(&a));
        let c = Sample::new(2.0, &info, &with, Some(&b));
        assert_eq!(b.young().len(), 1);
        assert_eq!(&*c.young()[0].key, "10.0.0.9");
        assert!(
            c.young()[0].value > 1.9 && c.young()[0].value < 2.0,
            "{:?}",
            c.young()
        );
        // Five minutes later it has faded away.
        let d = Sample::new(300.0, &info, &without, Some(&c));
        assert!(d.young().is_empty(), "{:?}", d.young());
    }

    fn with_sources(sources: Vec<GroupCount>) -> Sample {
        let table: Vec<Arc<str>> = sources.iter().map(|g| Arc::clone(&g.key)).collect();
        let kinds = [
            sources
                .iter()
                .map(|g| (&*g.key, g.connections, g.idle))
                .collect(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
        ];
        let bytes = encode([None; 3], 0, &kinds, &[], &table);
        Sample {
            keys: Some(Arc::new(Keys(table.into_boxed_slice()))),
            data: Some(Arc::from(bytes.as_slice())),
            ..at(0.0)
        }
    }

    #[test]
    fn count_of_absent_group_is_zero() {
        let mut sources = vec![GroupCount {
            key: "10.0.0.1".into(),
            connections: 5,
            idle: 1,
        }];
        let s = with_sources(sources.clone());
        assert_eq!(s.count_of("10.0.0.1", false), 5);
        assert_eq!(s.count_of("10.0.0.2", false), 0);
        assert_eq!(s.count_of("10.0.0.1", true), 0);
        // Fewer groups than kept: an absent one had none.
        assert_eq!(s.counts(Dimension::SourceIp, "10.0.0.2"), Some((0, 0)));
        for i in 0..TOP_GROUPS {
            sources.push(GroupCount {
                key: format!("10.1.0.{i}").into(),
                connections: 1,
                idle: 0,
            });
        }
        let s = with_sources(sources);
        // A full list: an absent group may have been folded away.
        assert_eq!(s.counts(Dimension::SourceIp, "10.0.0.2"), None);
        assert_eq!(s.counts(Dimension::SourceIp, "10.0.0.1"), Some((5, 1)));
    }

    #[test]
    fn a_sample_reads_back_what_it_was_given() {
        use crate::analysis::aggregate::Aggregator;
        let reply: String = (0..40)
            .map(|i| {
                format!(
                    "id={i} addr=10.0.{}.{}:1 name=n{} lib-name=l{} age={} idle={} cmd=get\n",
                    i % 7,
                    i % 13,
                    i % 12,
                    i % 6,
                    if i % 5 == 0 { 0 } else { 500 },
                    if i % 2 == 0 { 400 } else { 1 }
                )
            })
            .collect();
        let summary = Aggregator::new(60).summarize(&reply, 50);
        let info = Info::parse("maxclients:70000\r\nconnected_clients:40\r\ntotal_connections_received:123456789012\r\nrejected_connections:3\r\n");
        let s = Sample::new(5.0, &info, &summary, None);
        let want = |g: &[(String, GroupStats)], n: usize| -> Vec<(String, u32, u32)> {
            g.iter()
                .filter(|(k, _)| k != OTHER)
                .take(n)
                .map(|(k, v)| (k.clone(), small(v.clients()), small(v.unused())))
                .collect()
        };
        let got = |g: Vec<GroupCount>| -> Vec<(String, u32, u32)> {
            g.into_iter()
                .map(|g| (g.key.to_string(), g.connections, g.idle))
                .collect()
        };
        assert_eq!(got(s.sources()), want(&summary.by_source, TOP_GROUPS));
        assert_eq!(got(s.names()), want(&summary.by_name, TOP_GROUPS));
        assert_eq!(got(s.libs()), want(&summary.by_lib, TOP_SERVICES));
        assert_eq!(got(s.prefixes()), want(&summary.by_prefix, TOP_SERVICES));
        assert_eq!(s.sources().len(), TOP_GROUPS);
        assert_eq!(s.maxclients(), info.maxclients.map(|m| m as u32));
        assert_eq!(s.limit_connections(), info.limit_connections());
        assert_eq!(s.total_connections_received(), Some(123_456_789_012.0));
        assert_eq!(s.rejected_connections(), Some(3.0));
        let young: Vec<(String, f64)> = summary
            .by_source
            .iter()
            .filter(|(k, g)| k != OTHER && g.young > 0)
            .map(|(k, g)| (k.clone(), g.young as f64))
            .collect();
        assert!(!young.is_empty());
        let got_young = s.young();
        assert_eq!(got_young.len(), young.len().min(TOP_GROUPS));
        for t in &got_young {
            assert!(young.contains(&(t.key.to_string(), t.value)), "{t:?}");
        }
    }

    #[test]
    fn key_tables_are_bounded_and_dropped_with_their_samples() {
        use crate::analysis::aggregate::Aggregator;
        let info = Info::default();
        let mut h = History::new(Duration::from_secs(600)); // spacing 10 s
        let mut first_key = None;
        for i in 0..200u32 {
            // Every poll another name: each a new key.
            let reply = format!("id=1 addr=10.0.0.1:1 name=churn-{i} age=500 idle=1 cmd=get\n");
            let summary = Aggregator::new(60).summarize(&reply, 10);
            let s = Sample::new(f64::from(i) * 10.0, &info, &summary, h.last());
            assert!(s.keys.as_ref().is_some_and(|k| k.0.len() <= MAX_KEYS));
            assert_eq!(s.count_of(&format!("churn-{i}"), true), 1);
            if i == 0 {
                first_key = s.names().first().map(|g| Arc::downgrade(&g.key));
            }
            h.push(s);
        }
        // The first sample left the history long ago, and no table still holds its key.
        let first_key = first_key.expect("a name");
        assert!(first_key.upgrade().is_none());
        // An old sample's key is still read right from its own table.
        let old = &h.samples()[0];
        let at = old.at as u32 / 10;
        assert_eq!(old.count_of(&format!("churn-{at}"), true), 1);
    }
}
