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
//! small targets of a fleet (issue 20): a sample is 80 bytes inline, its groups sit in one
//! block (boxed slices, no spare capacity) shared with the previous sample's when nothing
//! changed (an idle population's groups do not change from one minute to the next), and keys
//! are shared with the previous sample's. Measured by tests/memory.rs (counting allocator, 60
//! samples of 11 connections: 6 client names, 3 sources, one /24): 5.7 kB when the counts do
//! not change, 24.6 kB when they change every minute; it was 44.3 kB either way.

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

/// One group's counts at one time. `u32`: a Redis server holds far fewer than 2^32 clients,
/// and the counts of 60 samples of every target add up (saturating, never wrapping).
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

/// The groups of one sample, in one block (boxed slices: no spare capacity) that the next
/// sample shares when it saw the same.
#[derive(Debug, Default, PartialEq)]
struct Groups {
    /// Sources, names, libraries and prefixes, one kind after the other.
    counts: Box<[GroupCount]>,
    /// Where each kind ends in `counts`, in that order.
    ends: [u8; 4],
    /// The effective maxclients at this sample (0: unknown), for the report's chart: here, in
    /// the block's padding, it costs no byte, and the block is still shared while it does not
    /// change (it changes only with `CONFIG SET maxclients` or a restart).
    maxclients: u32,
    young: Box<[Tally]>,
}

impl Groups {
    fn kind(&self, i: usize) -> &[GroupCount] {
        let start = if i == 0 {
            0
        } else {
            usize::from(self.ends[i - 1])
        };
        self.counts
            .get(start..usize::from(self.ends[i]))
            .unwrap_or(&[])
    }

    fn is_empty(&self) -> bool {
        self.counts.is_empty() && self.young.is_empty() && self.maxclients == 0
    }
}

/// What one poll saw, reduced to what trends need.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sample {
    /// Unix time, seconds.
    pub at: f64,
    pub limit_connections: Option<f64>,
    pub total_connections_received: Option<f64>,
    pub rejected_connections: Option<f64>,
    pub connections: u32,
    pub distinct_sources: u32,
    /// Client instances (distinct sources but the exporter's own).
    pub instances: u32,
    /// Idle connections, not pub/sub, not blocked, not ours: leak candidates, server-wide.
    pub idle_unused: u32,
    /// `None` when the poll saw no group (nothing allocated).
    groups: Option<Arc<Groups>>,
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

fn top(
    into: &mut Vec<GroupCount>,
    groups: &[(String, GroupStats)],
    prev: &[GroupCount],
    n: usize,
) -> u8 {
    into.extend(
        groups
            .iter()
            .filter(|(k, _)| k != OTHER)
            .take(n)
            .map(|(k, v)| GroupCount {
                key: shared(k, prev.iter().map(|g| &g.key)),
                connections: small(v.clients()),
                idle: small(v.unused()),
            }),
    );
    // At most 2 × TOP_GROUPS + 2 × TOP_SERVICES entries in all.
    u8::try_from(into.len()).unwrap_or(u8::MAX)
}

/// The previous tally decayed to `at`, plus this snapshot's young connections per source.
fn young_tally(at: f64, clients: &ClientListSummary, prev: Option<&Sample>) -> Vec<Tally> {
    let mut tally: Vec<Tally> = match prev {
        Some(p) => {
            let decay = 0.5f64.powf((at - p.at).max(0.0) / YOUNG_HALF_LIFE_SECONDS);
            p.young()
                .iter()
                .map(|t| Tally {
                    key: Arc::clone(&t.key),
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

impl Sample {
    /// `prev` is the sample before this one, whose keys (and groups, when they are the same)
    /// are reused. maxclients is INFO's (Redis 7.0+); [`Sample::observe`] takes the effective one.
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
        let empty = Sample::default();
        let p = prev.unwrap_or(&empty);
        let mut counts = Vec::new();
        let ends = [
            top(&mut counts, &clients.by_source, p.sources(), TOP_GROUPS),
            top(&mut counts, &clients.by_name, p.names(), TOP_GROUPS),
            top(&mut counts, &clients.by_lib, p.libs(), TOP_SERVICES),
            top(&mut counts, &clients.by_prefix, p.prefixes(), TOP_SERVICES),
        ];
        let groups = Groups {
            counts: counts.into_boxed_slice(),
            ends,
            // Rounded into a u32 (a server's maxclients is far below 2^32); 0 stays "unknown".
            maxclients: maxclients.map_or(0, |m| m.clamp(0.0, f64::from(u32::MAX)) as u32),
            young: young_tally(at, clients, prev).into_boxed_slice(),
        };
        let groups = match &p.groups {
            Some(g) if **g == groups => Some(Arc::clone(g)),
            _ if groups.is_empty() => None,
            _ => Some(Arc::new(groups)),
        };
        Sample {
            at,
            connections: small(clients.connections),
            distinct_sources: small(clients.distinct_sources),
            limit_connections: info.limit_connections(),
            total_connections_received: info.total_connections_received,
            rejected_connections: info.rejected_connections,
            instances: small(clients.instances),
            idle_unused: small(clients.by_source.iter().map(|(_, g)| g.idle_unused()).sum()),
            groups,
        }
    }

    fn kind(&self, i: usize) -> &[GroupCount] {
        self.groups.as_ref().map_or(&[], |g| g.kind(i))
    }

    /// The top sources, largest first.
    pub fn sources(&self) -> &[GroupCount] {
        self.kind(0)
    }

    /// The top client names, largest first.
    pub fn names(&self) -> &[GroupCount] {
        self.kind(1)
    }

    /// The top client libraries, largest first.
    pub fn libs(&self) -> &[GroupCount] {
        self.kind(2)
    }

    /// The top /24 prefixes (keyed `a.b.c.0/24`), largest first.
    pub fn prefixes(&self) -> &[GroupCount] {
        self.kind(3)
    }

    /// The effective maxclients when this sample was taken, when known.
    pub fn maxclients(&self) -> Option<u32> {
        self.groups
            .as_ref()
            .map(|g| g.maxclients)
            .filter(|&m| m > 0)
    }

    /// Connections refused between `prev` and this sample (`rejected_connections` grew; after
    /// a `CONFIG RESETSTAT`, what the counter holds now). `None` when either count is unknown.
    pub fn refused_since(&self, prev: &Sample) -> Option<f64> {
        let (a, b) = (prev.rejected_connections?, self.rejected_connections?);
        Some(if b >= a { b - a } else { b })
    }

    /// Young connections per source over the recent polls, largest first.
    pub fn young(&self) -> &[Tally] {
        self.groups.as_ref().map_or(&[], |g| &g.young)
    }

    /// Whether this sample holds the very same groups block as `other` (not a copy).
    pub fn shares_groups_with(&self, other: &Sample) -> bool {
        match (&self.groups, &other.groups) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }

    /// This sample's counts of one group, by the culprit kind that names it (`source_ip`,
    /// `client_name`, `lib_name`, `address_prefix`); `None` when it was not among the top
    /// groups then (unknown, not zero).
    pub fn group(&self, kind: Dimension, key: &str) -> Option<&GroupCount> {
        self.groups(kind)?.0.iter().find(|g| &*g.key == key)
    }

    /// `(connections, idle)` of one group in this sample: its counts when it was among the
    /// top groups, 0 when the sample kept fewer groups than it could (so it had none), `None`
    /// when it may have been folded away.
    pub fn counts(&self, kind: Dimension, key: &str) -> Option<(u64, u64)> {
        let (groups, cap) = self.groups(kind)?;
        match groups.iter().find(|g| &*g.key == key) {
            Some(g) => Some((u64::from(g.connections), u64::from(g.idle))),
            None if groups.len() < cap => Some((0, 0)),
            None => None,
        }
    }

    fn groups(&self, kind: Dimension) -> Option<(&[GroupCount], usize)> {
        Some(match kind {
            Dimension::SourceIp => (self.sources(), TOP_GROUPS),
            Dimension::ClientName => (self.names(), TOP_GROUPS),
            Dimension::LibName => (self.libs(), TOP_SERVICES),
            Dimension::AddressPrefix => (self.prefixes(), TOP_SERVICES),
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
            std::mem::size_of::<Sample>() <= 80,
            "{}",
            std::mem::size_of::<Sample>()
        );
        assert!(std::mem::size_of::<GroupCount>() <= 24);
        // maxclients sits in what was the block's padding.
        assert!(
            std::mem::size_of::<Groups>() <= 40,
            "{}",
            std::mem::size_of::<Groups>()
        );
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
        // The same maxclients and groups: still one shared block.
        assert!(b.shares_groups_with(&a));
        assert_eq!(b.refused_since(&a), Some(5.0));
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
        assert!(d.groups.is_none());
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
        let n = u8::try_from(sources.len()).unwrap();
        Sample {
            groups: Some(Arc::new(Groups {
                counts: sources.into_boxed_slice(),
                ends: [n; 4],
                maxclients: 0,
                young: Box::new([]),
            })),
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
}
