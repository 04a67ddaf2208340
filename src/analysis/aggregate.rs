//! Folds a CLIENT LIST snapshot into the bounded aggregates that answer "who holds the
//! connections".
//!
//! An [`Aggregator`] is reused from poll to poll: its maps keep their keys and capacity, so once
//! the set of sources, names, users and commands has been seen, a snapshot costs no heap
//! allocation per line (a key is copied only the first time it appears). Keys that vanish from
//! one snapshot are dropped at its end, so memory follows the live population.
//! [`Aggregator::finish`] then folds each dimension to its top K plus `other`.
//!
//! One job per file below `aggregate/`: `counts` (the interning maps and the top-K fold),
//! `group` (the evidence per group), `distribution` (idle and age distributions), `fleet`
//! (fleet detection), `summary` (what a snapshot says), `details` (libraries, ports, buffers).

use crate::redis::client_list::CLIENT_NAME;
use crate::redis::client_list::{ClientEntry, ClientType, Flag, Parser};
use crate::redis::label::{bound_into, MAX_LABEL_BYTES};
use std::sync::Arc;

mod counts;
pub mod details;
mod distribution;
mod fleet;
mod group;
mod summary;
pub mod workload;

use counts::NO_SLOT;
pub(crate) use counts::{fold, Count, Counts};
pub use distribution::{Distribution, BUCKETS};
pub use fleet::ipv4_prefix;
use fleet::InstanceRow;
use group::LineFacts;
pub use group::{untouched, GroupStats, NO_COMMAND, TOP_YOUNG, YOUNG_SECONDS};
pub use summary::{AgeStep, ClientListSummary, Dimension, Fleet, FleetKind};
pub use workload::{Identified, SourceIdentity, WorkloadMembers};

/// The label value for everything folded out of the top K.
pub const OTHER: &str = "other";
/// The label value for connections without a name.
pub const UNNAMED: &str = "unnamed";
/// Servers before 6.0 have no ACL users: every connection is the default user.
pub const DEFAULT_USER: &str = "default";

/// A source's stats plus the service it belongs to: the name and library slots of its first
/// line that is not our own, in this snapshot.
#[derive(Debug, Clone, Copy)]
struct SourceStats {
    g: GroupStats,
    name: u32,
    lib: u32,
}

impl Default for SourceStats {
    fn default() -> Self {
        Self {
            g: GroupStats::default(),
            name: NO_SLOT,
            lib: NO_SLOT,
        }
    }
}

impl Count for SourceStats {
    fn weight(&self) -> u64 {
        self.g.connections
    }
    // Slots of another aggregator mean nothing here: `Aggregator::absorb` maps them.
    fn absorb(&mut self, o: &Self) {
        self.g.merge(&o.g);
    }
}

/// The CLIENT LIST listing (src/redis/chunked.rs), whole or in chunks of ids, between `begin` and
/// `finish`.
impl crate::redis::chunked::ChunkSink for Aggregator {
    fn begin(&mut self) {
        Aggregator::begin(self);
    }

    fn add_reply(&mut self, reply: &str) {
        // The workload dimension is aggregated on one thread (its maps are not merged).
        let halves = split_in_half(reply).filter(|_| self.parallel && self.workloads.is_none());
        match halves.filter(|_| reply.len() >= PARALLEL_MIN_BYTES) {
            Some((first, second)) => self.add_halves(first, second),
            None => self.add_lines(reply),
        }
    }

    fn add_chunk(&mut self, reply: &str, ids: &mut Vec<u64>) {
        self.add_lines_with_ids(reply, ids);
    }
}

/// Replies at least this long (about 30,000 Redis 7 lines) are parsed in two halves on two
/// threads: one core parses and aggregates ~2.9 million lines a second, so 50,000 clients take
/// ~17 ms on one, most of the poll's 20 ms budget. Not lower: on the 2-vCPU test machine the
/// second thread made the same work cost ~35% more CPU time (see docs/performance.md), a price
/// worth paying only where one thread comes near the budget.
pub const PARALLEL_MIN_BYTES: usize = 8 << 20;

/// A reply shorter than this (about 200 connections) lets the aggregator give back capacity
/// a larger population left; a longer one keeps everything warm (the 0-allocation hot path).
pub const SHRINK_BELOW_BYTES: usize = 64 << 10;
/// The same for a snapshot fed line by line (`add`, no reply to measure): at most this many.
pub const SHRINK_BELOW_LINES: u64 = 200;

/// Reusable aggregation state for one target. See the module docs.
pub struct Aggregator {
    idle_threshold: u64,
    sources: Counts<SourceStats>,
    names: Counts<GroupStats>,
    libs: Counts<GroupStats>,
    /// Built from `sources` at the end of each snapshot (no cost per line).
    prefixes: Counts<GroupStats>,
    users: Counts<u64>,
    commands: Counts<u64>,
    scalars: ClientListSummary,
    /// Scratch space of the fleet evidence, kept so that it stops allocating once warm.
    rows: Vec<InstanceRow>,
    pools: Vec<u64>,
    /// Kept between polls: it has learned the server's field order. Boxed and dropped after
    /// a small snapshot (2.3 kB that a small population relearns in one line).
    parser: Option<Box<Parser>>,
    /// Bytes of CLIENT LIST replies in this snapshot: whether it was small (see `finish`).
    listed_bytes: usize,
    /// Whether a second core exists (read once: the check reads cgroup files).
    parallel: bool,
    /// Aggregates the second half of a large reply; kept, like the maps, so that it too stops
    /// allocating once warm.
    helper: Option<Box<Aggregator>>,
    /// Where a value too long for a label is bounded before it is looked up: reused, so a
    /// long value costs no allocation per line either, and only its bounded form is stored.
    scratch: String,
    details: crate::analysis::aggregate::details::Details,
    /// The `workload` dimension, only while an identity layer is configured (src/identity).
    workloads: Option<Box<workload::WorkloadState>>,
}

impl Aggregator {
    pub fn new(idle_threshold_seconds: u64) -> Self {
        Self {
            idle_threshold: idle_threshold_seconds,
            sources: Counts::default(),
            names: Counts::default(),
            libs: Counts::default(),
            prefixes: Counts::default(),
            users: Counts::default(),
            commands: Counts::default(),
            scalars: ClientListSummary::default(),
            rows: Vec::new(),
            pools: Vec::new(),
            parser: None,
            listed_bytes: 0,
            parallel: std::thread::available_parallelism().is_ok_and(|n| n.get() > 1),
            helper: None,
            scratch: String::new(),
            details: crate::analysis::aggregate::details::Details::default(),
            workloads: None,
        }
    }

    /// Sets (or, with `None`, drops) the identity the next snapshots ask who a source is, and
    /// the clock they compare connection ages with (unix seconds). See [`workload`].
    pub fn set_identity(&mut self, identity: Option<Arc<dyn SourceIdentity>>, now_unix: u64) {
        match (identity, &mut self.workloads) {
            (None, w) => *w = None,
            (Some(id), Some(w)) => w.set(id, now_unix),
            (Some(id), w) => *w = Some(Box::new(workload::WorkloadState::new(id, now_unix))),
        }
    }

    /// Turns the two-thread path off (on by default where a second core exists): the benchmark
    /// measures one core with it.
    pub fn set_parallel(&mut self, on: bool) {
        self.parallel = on && std::thread::available_parallelism().is_ok_and(|n| n.get() > 1);
    }

    /// Adds every line of a CLIENT LIST reply to a fresh snapshot; returns it folded to `top_k`.
    /// A reply of [`PARALLEL_MIN_BYTES`] or more is split at a line break near its middle and
    /// the halves are aggregated on two threads, then merged: the result is the same.
    pub fn summarize(&mut self, reply: &str, top_k: usize) -> ClientListSummary {
        self.begin();
        let halves = split_in_half(reply).filter(|_| self.parallel && self.workloads.is_none());
        match halves.filter(|_| reply.len() >= PARALLEL_MIN_BYTES) {
            Some((first, second)) => self.add_halves(first, second),
            None => self.add_lines(reply),
        }
        // `finish` gives back what a larger population left when this reply was small.
        self.finish(top_k)
    }

    /// After a small reply: what an earlier, larger population left in the reused maps and
    /// scratch space is given back, so a fleet of small targets stays small (issue 20).
    /// Only capacity far beyond what this reply needed goes, so a steady small population
    /// reaches a fixed size and then allocates nothing either.
    fn shrink(&mut self) {
        self.sources.shrink();
        self.names.shrink();
        self.libs.shrink();
        self.prefixes.shrink();
        self.users.shrink();
        self.commands.shrink();
        for v in [&mut self.pools] {
            if v.capacity() > 2 * v.len() + 64 {
                v.shrink_to(v.len());
            }
        }
        if self.rows.capacity() > 2 * self.rows.len() + 64 {
            self.rows.shrink_to(self.rows.len());
        }
        if self.scratch.capacity() > 1024 {
            self.scratch.shrink_to(256);
        }
        self.helper = None;
        self.parser = None;
        if let Some(w) = &mut self.workloads {
            w.shrink();
        }
    }

    fn add_lines(&mut self, reply: &str) {
        self.listed_bytes += reply.len();
        let mut parser = self.parser.take().unwrap_or_default();
        let bad = parser.each_entry(reply, |e| self.add(e));
        self.scalars.parse_errors += bad;
        self.parser = Some(parser);
    }

    fn add_halves(&mut self, first: &str, second: &str) {
        let threshold = self.idle_threshold;
        let mut helper = self
            .helper
            .take()
            .unwrap_or_else(|| Box::new(Aggregator::new(threshold)));
        helper.begin();
        let spawned = std::thread::scope(|scope| {
            let handle = std::thread::Builder::new()
                .name("client-list-half".into())
                .spawn_scoped(scope, || helper.add_lines(second));
            self.add_lines(first);
            handle.map(|h| h.join())
        });
        match spawned {
            Ok(Ok(())) => {}
            // Parsing does not panic; if it ever did, that half is lost (and counted), not the
            // poll, and the helper starts afresh.
            Ok(Err(_)) => {
                self.scalars.parse_errors += 1;
                return;
            }
            // No thread to be had (limits): this thread does the second half too.
            Err(_) => helper.add_lines(second),
        }
        self.absorb(&mut helper);
        self.helper = Some(helper);
    }

    /// Adds the snapshot counts of `o` (a helper that aggregated another part of the reply).
    fn absorb(&mut self, o: &mut Aggregator) {
        // Destructured without `..`: a new field must be merged here too, or this fails to build.
        let ClientListSummary {
            connections,
            parse_errors,
            by_source: _,
            by_name: _,
            by_lib: _,
            by_prefix: _,
            fleets: _,
            instances: _,
            young_sources: _,
            by_user: _,
            by_command: _,
            by_type,
            idle_by_type,
            by_flag,
            subscriptions,
            output_buffer_bytes,
            distinct_sources: _,
            idle,
            age,
            details: _,
            truncated_values,
            by_workload: _,
            workloads: _,
        } = &o.scalars;
        let s = &mut self.scalars;
        let add_all = |a: &mut [u64], b: &[u64]| {
            for (a, b) in a.iter_mut().zip(b) {
                *a = a.saturating_add(*b);
            }
        };
        s.connections = s.connections.saturating_add(*connections);
        s.parse_errors = s.parse_errors.saturating_add(*parse_errors);
        add_all(s.by_type.counts_mut(), by_type.counts());
        add_all(s.idle_by_type.counts_mut(), idle_by_type.counts());
        add_all(s.by_flag.counts_mut(), by_flag.counts());
        add_all(&mut s.subscriptions, subscriptions);
        s.output_buffer_bytes = s.output_buffer_bytes.saturating_add(*output_buffer_bytes);
        s.idle.merge(idle);
        s.age.merge(age);
        s.truncated_values = s.truncated_values.saturating_add(*truncated_values);
        // A source's service is a slot of the helper's name and library maps: map it to ours.
        let names = self.names.absorb_mapped(&o.names);
        let libs = self.libs.absorb_mapped(&o.libs);
        let remap = |map: &[u32], slot: u32| map.get(slot as usize).copied().unwrap_or(NO_SLOT);
        for (k, &i) in &o.sources.index {
            let v = o.sources.slots[i];
            if v.weight() == 0 {
                continue;
            }
            let mine = self.sources.entry(k);
            mine.g.merge(&v.g);
            if mine.name == NO_SLOT {
                mine.name = remap(&names, v.name);
            }
            if mine.lib == NO_SLOT {
                mine.lib = remap(&libs, v.lib);
            }
        }
        // The helper forgets what vanished, like the main maps.
        o.sources.prune();
        o.names.prune();
        o.libs.prune();
        self.users.absorb(&mut o.users);
        self.commands.absorb(&mut o.commands);
        self.details.absorb(&mut o.details);
    }

    /// Starts a snapshot: zeroes every count but keeps the keys (and so their allocations).
    pub fn begin(&mut self) {
        self.sources.reset();
        self.names.reset();
        self.libs.reset();
        self.details.begin();
        if let Some(w) = &mut self.workloads {
            w.begin();
        }
        for c in [&mut self.users, &mut self.commands] {
            c.reset();
        }
        self.scalars = ClientListSummary::default();
        self.listed_bytes = 0;
    }

    /// Counts a parse error for the current snapshot.
    pub fn add_error(&mut self) {
        self.scalars.parse_errors += 1;
    }

    pub fn add(&mut self, e: &ClientEntry<'_>) {
        let s = &mut self.scalars;
        s.connections += 1;
        // One pass over the flags for the type and every counted flag.
        let flags = e.flag_set();
        let ty = e.client_type_with(flags);
        s.by_type[ty] += 1;
        for flag in Flag::ALL {
            if flags.contains(flag.letter()) {
                s.by_flag[flag] += 1;
            }
        }
        let idle = e.idle.unwrap_or(0);
        let is_idle = e.idle.is_some() && idle >= self.idle_threshold;
        if is_idle {
            s.idle_by_type[ty] += 1;
        }
        if let Some(i) = e.idle {
            s.idle.observe(i);
        }
        if let Some(a) = e.age {
            s.age.observe(a);
        }
        let mut subscriptions = 0u64;
        for (total, v) in s.subscriptions.iter_mut().zip([e.sub, e.psub, e.ssub]) {
            let v = v.unwrap_or(0);
            *total = total.saturating_add(v);
            subscriptions = subscriptions.saturating_add(v);
        }
        let output = e.omem.unwrap_or(0);
        s.output_buffer_bytes = s.output_buffer_bytes.saturating_add(output);

        let name = match e.name {
            Some(n) if !n.is_empty() => n,
            _ => UNNAMED,
        };
        let own = name == CLIENT_NAME;
        let facts = LineFacts {
            own,
            age: e.age.unwrap_or(0),
            is_idle,
            idle,
            memory: e.tot_mem.unwrap_or(0),
            no_command: matches!(e.cmd, Some(NO_COMMAND)),
            pubsub: ty == ClientType::Pubsub || subscriptions > 0,
            subscriptions,
            blocked: flags.contains(b'b'),
            output,
            stalled: crate::analysis::aggregate::details::output_stalled(e),
            young: e.age.is_some_and(|a| a <= YOUNG_SECONDS),
            untouched: untouched(
                e,
                ty == ClientType::Pubsub || subscriptions > 0,
                flags.contains(b'b'),
            ),
        };
        let cut = &mut s.truncated_values;
        let scratch = &mut self.scratch;
        self.details.add(e, flags, is_idle, scratch, cut);
        let name_slot = self.names.slot(bounded(name, scratch, cut));
        self.names.slots[name_slot].add(&facts);
        let lib_slot = match e.lib_name {
            Some(l) if !l.is_empty() => {
                let i = self.libs.slot(bounded(l, scratch, cut));
                self.libs.slots[i].add(&facts);
                i as u32
            }
            _ => NO_SLOT,
        };
        let ip = bounded(e.source_ip_with(flags), scratch, cut);
        if let Some(w) = &mut self.workloads {
            w.add(ip, e.age, &facts);
        }
        let src = self.sources.entry(ip);
        src.g.add(&facts);
        if !own {
            if src.name == NO_SLOT {
                src.name = name_slot as u32;
            }
            if src.lib == NO_SLOT {
                src.lib = lib_slot;
            }
        }
        *self
            .users
            .entry(bounded(e.user.unwrap_or(DEFAULT_USER), scratch, cut)) += 1;
        *self
            .commands
            .entry(bounded(e.cmd.unwrap_or(NO_COMMAND), scratch, cut)) += 1;
    }

    /// Adds a chunk of a CLIENT LIST reply (src/redis/chunked.rs) and pushes each parsed line's id.
    fn add_lines_with_ids(&mut self, reply: &str, ids: &mut Vec<u64>) {
        self.listed_bytes += reply.len();
        let mut parser = self.parser.take().unwrap_or_default();
        let bad = parser.each_entry(reply, |e| {
            ids.extend(e.id);
            self.add(e);
        });
        self.scalars.parse_errors += bad;
        self.parser = Some(parser);
    }

    /// Ends the snapshot: builds the /24 and fleet evidence, forgets keys that did not appear
    /// in it, and folds each dimension.
    pub fn finish(&mut self, top_k: usize) -> ClientListSummary {
        let fleets = self.fleets(top_k);
        self.sources.prune();
        self.names.prune();
        self.libs.prune();
        self.prefixes.prune();
        for c in [&mut self.users, &mut self.commands] {
            c.prune();
        }
        let mut out = std::mem::take(&mut self.scalars);
        out.distinct_sources = self.sources.len() as u64;
        out.instances = fleets
            .iter()
            .find(|f| f.kind == FleetKind::All)
            .map_or(0, |f| f.instances);
        out.fleets = fleets;
        // The top sources by young connections, those without any included: as many entries
        // (and allocations) as the population allows, however many lines are young.
        let mut young: Vec<(&str, u64)> =
            self.sources.iter().map(|(k, v)| (k, v.g.young)).collect();
        let order = |a: &(&str, u64), b: &(&str, u64)| b.1.cmp(&a.1).then(a.0.cmp(b.0));
        if young.len() > TOP_YOUNG {
            young.select_nth_unstable_by(TOP_YOUNG, order);
            young.truncate(TOP_YOUNG);
        }
        young.sort_unstable_by(order);
        out.young_sources = young.into_iter().map(|(k, n)| (k.to_string(), n)).collect();
        out.by_source = fold(
            self.sources.iter().map(|(k, v)| (k, &v.g)),
            top_k,
            GroupStats::merge,
        );
        let add = |a: &mut u64, b: &u64| *a = a.saturating_add(*b);
        out.by_name = fold(self.names.iter(), top_k, GroupStats::merge);
        out.by_lib = fold(self.libs.iter(), top_k, GroupStats::merge);
        out.by_prefix = fold(self.prefixes.iter(), top_k, GroupStats::merge);
        for (k, _) in &mut out.by_prefix {
            if k != OTHER {
                k.push_str(".0/24");
            }
        }
        out.by_user = fold(self.users.iter(), top_k, add);
        out.by_command = fold(self.commands.iter(), top_k, add);
        out.details = self.details.finish(top_k);
        if let Some(w) = &mut self.workloads {
            (out.by_workload, out.workloads) = w.finish(top_k);
        }
        let small = match self.listed_bytes {
            // Fed line by line (`add`): no reply to measure.
            0 => out.connections + out.parse_errors <= SHRINK_BELOW_LINES,
            bytes => bytes < SHRINK_BELOW_BYTES,
        };
        if small {
            self.shrink();
            // The summary is kept until the next poll (the state a scrape serves): a clone
            // (String and Vec clones are exact) drops the spare capacity it grew with, a third
            // of a small one (issue 20, tests/memory.rs).
            return out.clone();
        }
        out
    }
}

/// `value`, or (when it is longer than a label may be) its bounded form, written into
/// `scratch`. Cut here, before the lookup, the maps never hold more than the bounded form:
/// a 4 MiB client name costs 128 bytes of memory, not 4 MiB per poll.
#[inline]
pub(crate) fn bounded<'a>(value: &'a str, scratch: &'a mut String, cut: &mut u64) -> &'a str {
    if value.len() <= MAX_LABEL_BYTES {
        return value;
    }
    *cut += 1;
    bound_into(value, scratch);
    scratch
}

/// The reply cut at the first line break after its middle: the two halves hold the same lines.
fn split_in_half(reply: &str) -> Option<(&str, &str)> {
    let mid = reply.len() / 2;
    let nl = mid + memchr::memchr(b'\n', reply.as_bytes().get(mid..)?)?;
    // Cutting at an ASCII '\n' lands on char boundaries.
    Some((&reply[..nl], &reply[nl + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(id: u32, ip: &str, name: &str, idle: u64, extra: &str) -> String {
        format!("id={id} addr={ip}:{} fd=8 name={name} age=100 idle={idle} flags=N db=0 sub=0 psub=0 omem=0 tot-mem=1000 cmd=get user=default {extra}\n", 40000 + id)
    }

    #[test]
    fn folds_to_top_k_and_keeps_the_sum() {
        let mut reply = String::new();
        let mut id = 0;
        for (ip, n) in [
            ("10.0.0.1", 5),
            ("10.0.0.2", 4),
            ("10.0.0.3", 3),
            ("10.0.0.4", 2),
            ("10.0.0.5", 1),
        ] {
            for _ in 0..n {
                id += 1;
                reply.push_str(&line(id, ip, &format!("svc-{ip}"), 700, ""));
            }
        }
        let mut agg = Aggregator::new(600);
        let s = agg.summarize(&reply, 2);
        assert_eq!(s.connections, 15);
        assert_eq!(s.distinct_sources, 5);
        let keys: Vec<_> = s
            .by_source
            .iter()
            .map(|(k, v)| (k.as_str(), v.connections))
            .collect();
        assert_eq!(keys, vec![("10.0.0.1", 5), ("10.0.0.2", 4), (OTHER, 6)]);
        assert_eq!(
            s.by_source.iter().map(|(_, v)| v.connections).sum::<u64>(),
            15
        );
        assert_eq!(
            s.by_name.iter().map(|(_, v)| v.connections).sum::<u64>(),
            15
        );
        assert_eq!(s.by_source[0].1.idle_connections, 5);
        assert_eq!(s.by_source[2].1.memory_bytes, 6000);
        assert_eq!(s.idle_by_type[ClientType::Normal], 15);
    }

    #[test]
    fn real_key_named_other_is_merged_not_duplicated() {
        let reply = format!(
            "{}{}",
            line(1, "1.1.1.1", "other", 0, ""),
            line(2, "1.1.1.2", "a", 0, "")
        );
        let s = Aggregator::new(60).summarize(&reply, 5);
        let names: Vec<_> = s
            .by_name
            .iter()
            .map(|(k, v)| (k.as_str(), v.connections))
            .collect();
        assert_eq!(names, vec![("a", 1), (OTHER, 1)]);
    }

    #[test]
    fn group_stats_carry_the_diagnosis_evidence() {
        let reply = [
            // A stale subscriber, idle long.
            "id=1 addr=10.0.0.1:1 name=sub age=900 idle=900 flags=P sub=2 psub=1 omem=0 tot-mem=10 cmd=subscribe",
            // A live subscriber.
            "id=2 addr=10.0.0.1:2 name=sub age=900 idle=0 flags=P sub=1 psub=0 omem=0 tot-mem=10 cmd=subscribe",
            // Opened, never used, idle long.
            "id=3 addr=10.0.0.2:3 name=leaky age=800 idle=800 flags=N omem=0 tot-mem=10 cmd=NULL",
            // Blocked, with an output buffer.
            "id=4 addr=10.0.0.2:4 name=leaky age=0 idle=0 flags=b omem=5000 tot-mem=10 cmd=blpop",
        ]
        .join("\n");
        let s = Aggregator::new(600).summarize(&reply, 10);
        let src = |ip: &str| s.by_source.iter().find(|(k, _)| k == ip).map(|(_, v)| *v);
        let a = src("10.0.0.1").unwrap_or_default();
        assert_eq!((a.connections, a.pubsub, a.idle_pubsub), (2, 2, 1));
        assert_eq!((a.subscriptions, a.idle_unused()), (4, 0));
        let b = src("10.0.0.2").unwrap_or_default();
        assert_eq!((b.no_command, b.blocked, b.young), (1, 1, 1));
        assert_eq!((b.output_bytes, b.max_output_bytes), (5000, 5000));
        assert_eq!((b.idle_unused(), b.oldest_idle_seconds), (1, 800));
        let leaky = s
            .by_name
            .iter()
            .find(|(k, _)| k == "leaky")
            .map(|(_, v)| *v);
        assert_eq!(leaky, Some(b));
    }

    #[test]
    fn the_exporters_own_connection_is_counted_but_is_no_evidence() {
        let reply = [
            "id=1 addr=10.0.0.1:1 name=redis-clients-exporter age=0 idle=700 flags=N cmd=info",
            "id=2 addr=10.0.0.2:1 name=api age=900 idle=700 flags=N cmd=get",
        ]
        .join("\n");
        let s = Aggregator::new(600).summarize(&reply, 10);
        let own = s
            .by_source
            .iter()
            .find(|(k, _)| k == "10.0.0.1")
            .map(|(_, v)| *v);
        let own = own.unwrap_or_default();
        // The metrics see it like any other connection...
        assert_eq!((own.connections, own.idle_connections), (1, 1));
        // ...the diagnosis does not: not idle evidence, not young, not an instance.
        assert_eq!((own.clients(), own.idle_unused(), own.young), (0, 0, 0));
        assert_eq!((s.distinct_sources, s.instances), (2, 1));
    }

    /// `pods` sources on 10.0.0.x with `per` connections each, the first `old` of them 3600 s
    /// old, the rest 100 s.
    fn pods(pods: u32, old: u32, per: u32) -> String {
        let mut r = String::new();
        for p in 0..pods {
            let age = if p < old { 3600 } else { 100 };
            for i in 0..per {
                r += &format!(
                    "id={} addr=10.0.0.{}:{i} name=svc age={age} idle=0 flags=N cmd=get lib-name=jedis\n",
                    p * 100 + i,
                    p + 2
                );
            }
        }
        r
    }

    #[test]
    fn fleets_tell_when_instances_appeared() {
        let s = Aggregator::new(60).summarize(&pods(20, 5, 4), 10);
        let kinds: Vec<(FleetKind, &str, u64)> = s
            .fleets
            .iter()
            .map(|f| (f.kind, f.key.as_str(), f.instances))
            .collect();
        assert_eq!(
            kinds,
            vec![
                (FleetKind::All, "", 20),
                (FleetKind::Name, "svc", 20),
                (FleetKind::Lib, "jedis", 20),
                (FleetKind::Prefix, "10.0.0.0/24", 20)
            ]
        );
        let f = &s.fleets[1];
        assert_eq!((f.connections, f.pool_median, f.similar_pools), (80, 4, 20));
        let step = f.step.expect("a jump in ages");
        assert_eq!((step.young_instances, step.young_connections), (15, 60));
        assert_eq!((step.young_oldest_age, step.old_youngest_age), (100, 3600));
        assert_eq!(s.by_prefix[0].0, "10.0.0.0/24");
        // All started together: no jump.
        let s = Aggregator::new(60).summarize(&pods(20, 20, 4), 10);
        assert!(s.fleets.iter().all(|f| f.step.is_none()), "{:?}", s.fleets);
    }

    #[test]
    fn ipv4_prefixes_only() {
        assert_eq!(ipv4_prefix("10.1.2.3"), Some("10.1.2"));
        for bad in [
            "::1",
            "unix",
            "10.1.2",
            "1..2.3",
            "10.1.2.3.4",
            "::ffff:10.1.2.3",
            "1000.1.2.3",
        ] {
            assert_eq!(ipv4_prefix(bad), None, "{bad}");
        }
    }

    #[test]
    fn distribution_is_cumulative() {
        let mut d = Distribution::default();
        for v in [0, 1, 2, 59, 61, 100_000] {
            d.observe(v);
        }
        let c: Vec<_> = d.cumulative().collect();
        assert_eq!(c[0], (1, 2));
        assert_eq!(c[1], (10, 3));
        assert_eq!(c[2], (60, 4));
        assert_eq!(c[3], (300, 5));
        assert_eq!(c.last(), Some(&(86400, 5)));
        assert_eq!(d.count, 6);
        assert_eq!(d.sum, 100_123);
    }

    #[test]
    fn vanished_sources_are_forgotten() {
        let mut agg = Aggregator::new(60);
        agg.summarize(&line(1, "9.9.9.9", "x", 0, ""), 10);
        let s = agg.summarize(&line(2, "8.8.8.8", "y", 0, ""), 10);
        assert_eq!(s.by_source.len(), 1);
        assert_eq!(s.by_source[0].0, "8.8.8.8");
        assert_eq!(agg.sources.len(), 1);
    }

    #[test]
    fn two_halves_on_two_threads_give_the_one_thread_summary() {
        let mut reply = crate::analysis::synthetic::client_list(32_000, 300, 40);
        reply.push_str("garbage\nid=1 addr=9.9.9.9:1 idle=x\n");
        reply.push_str(&line(1, "7.7.7.7", "other", 5000, "flags=bx sub=3 omem=99"));
        assert!(reply.len() >= PARALLEL_MIN_BYTES);
        let mut one = Aggregator::new(60);
        one.parallel = false;
        let mut two = Aggregator::new(60);
        two.parallel = true;
        for _ in 0..2 {
            let expected = one.summarize(&reply, 7);
            let got = two.summarize(&reply, 7);
            assert!(two.helper.is_some(), "the reply was not split");
            assert_eq!(got, expected);
            assert_eq!(got.connections, 32_001);
            assert_eq!(got.parse_errors, 2);
        }
        // The helper forgets what vanished, like the main maps.
        let small = line(1, "1.2.3.4", "x", 0, "");
        two.summarize(&small.repeat(PARALLEL_MIN_BYTES / small.len() + 1), 7);
        let helper = two.helper.as_ref().map(|h| h.sources.len());
        assert_eq!(helper, Some(1));
    }

    #[test]
    fn split_in_half_keeps_every_line() {
        assert_eq!(split_in_half("a\nb\nc\n"), Some(("a\nb", "c\n")));
        assert_eq!(split_in_half("abc"), None);
        assert_eq!(split_in_half(""), None);
    }

    #[test]
    fn long_values_are_stored_and_folded_bounded_and_stay_distinct() {
        let long = |tail: &str| format!("{}{tail}", "n".repeat(300_000));
        let (a, b) = (long("a"), long("b"));
        let user = format!("u{}", "\u{e9}".repeat(200));
        let reply = [
            line(1, "1.1.1.1", &a, 0, &format!("user={user}")),
            line(2, "1.1.1.1", &b, 0, ""),
            line(3, "1.1.1.1", &b, 0, ""),
            line(4, "1.1.1.1", "short", 0, ""),
        ]
        .concat();
        let mut agg = Aggregator::new(60);
        for _ in 0..2 {
            let s = agg.summarize(&reply, 10);
            // Counted per value per line: names a, b, b, and the user of line 1 (its second
            // `user=` field, the one the parser keeps).
            assert_eq!(s.truncated_values, 4);
            let names: Vec<_> = s
                .by_name
                .iter()
                .map(|(k, v)| (k.clone(), v.connections))
                .collect();
            let (ba, bb) = (
                crate::redis::label::bound(&a),
                crate::redis::label::bound(&b),
            );
            assert_eq!(
                names,
                vec![
                    (bb.into_owned(), 2),
                    (ba.into_owned(), 1),
                    ("short".to_string(), 1)
                ]
            );
            assert!(s.by_user.iter().all(|(k, _)| k.len() <= MAX_LABEL_BYTES));
            assert!(s.by_user.iter().any(|(k, _)| k.starts_with("u\u{e9}")));
            // Only bounded keys are held between polls.
            assert!(agg.names.iter().all(|(k, _)| k.len() <= MAX_LABEL_BYTES));
        }
    }

    #[test]
    fn malformed_lines_are_counted_and_skipped() {
        let reply = format!(
            "{}garbage line here\nid=2 addr=1.1.1.1:2 idle=abc\n",
            line(1, "1.1.1.1", "x", 0, "")
        );
        let s = Aggregator::new(60).summarize(&reply, 10);
        assert_eq!(s.connections, 1);
        assert_eq!(s.parse_errors, 2);
    }
}
