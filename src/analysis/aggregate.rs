//! Folds a CLIENT LIST snapshot into the bounded aggregates that answer "who holds the
//! connections".
//!
//! An [`Aggregator`] is reused from poll to poll: its maps keep their keys and capacity, so once
//! the set of sources, names, users and commands has been seen, a snapshot costs no heap
//! allocation per line (a key is copied only the first time it appears). Keys that vanish from
//! one snapshot are dropped at its end, so memory follows the live population.
//! [`Aggregator::finish`] then folds each dimension to its top K plus `other`.

// hashbrown for `entry_ref`: one hash per lookup, and the key is copied only on first sight.
// Its hasher is seeded per map, so client-chosen names cannot be tuned to collide.
use hashbrown::HashMap;

use crate::redis::client_list::CLIENT_NAME;
use crate::redis::client_list::{ClientEntry, ClientType, Flag, Parser, PerFlag, PerType};
use crate::redis::label::{bound_into, MAX_LABEL_BYTES};

pub mod details;

/// Upper bounds of the idle-age and connection-age distributions, in seconds.
pub const BUCKETS: [u64; 9] = [1, 10, 60, 300, 600, 1800, 3600, 21600, 86400];

/// The label value for everything folded out of the top K.
pub const OTHER: &str = "other";
/// The label value for connections without a name.
pub const UNNAMED: &str = "unnamed";
/// Servers before 6.0 have no ACL users: every connection is the default user.
pub const DEFAULT_USER: &str = "default";
/// `cmd` is absent before Redis 2.8.?; count those connections under this value.
pub const NO_COMMAND: &str = "NULL";

/// A snapshot distribution: cumulative counts per bucket of [`BUCKETS`] plus the sum and count.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Distribution {
    /// Non-cumulative counts; index `BUCKETS.len()` holds the observations above the last bound.
    counts: [u64; BUCKETS.len() + 1],
    pub sum: u64,
    pub count: u64,
}

impl Distribution {
    fn observe(&mut self, v: u64) {
        let i = BUCKETS
            .iter()
            .position(|&b| v <= b)
            .unwrap_or(BUCKETS.len());
        self.counts[i] += 1;
        // Values come from the network: a hostile or broken reply must not overflow a sum.
        self.sum = self.sum.saturating_add(v);
        self.count += 1;
    }

    fn merge(&mut self, o: &Distribution) {
        for (a, b) in self.counts.iter_mut().zip(o.counts) {
            *a = a.saturating_add(b);
        }
        self.sum = self.sum.saturating_add(o.sum);
        self.count = self.count.saturating_add(o.count);
    }

    /// `(upper bound, cumulative count)` for every finite bucket, as Prometheus wants them.
    pub fn cumulative(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        BUCKETS
            .iter()
            .zip(self.counts.iter())
            .scan(0u64, |acc, (&b, &c)| {
                *acc = acc.saturating_add(c);
                Some((b, *acc))
            })
    }
}

/// Sources listed in [`ClientListSummary::young_sources`].
pub const TOP_YOUNG: usize = 10;

/// Connections at most this old (seconds) count as `young`: a service that does not pool
/// shows up as a source whose connections are always brand new.
pub const YOUNG_SECONDS: u64 = 1;

/// What is known about one group of connections (one source IP, or one client name): the
/// evidence the diagnosis needs to say which group leaks, churns, blocks or hogs buffers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GroupStats {
    pub connections: u64,
    /// Connections idle for at least the idle threshold.
    pub idle_connections: u64,
    pub oldest_idle_seconds: u64,
    pub memory_bytes: u64,
    /// Connections that never ran a command (`cmd=NULL`): opened and forgotten.
    pub no_command: u64,
    /// Pub/sub connections (flag P, or any subscription), and those of them idle at least the
    /// threshold: a subscriber that receives messages is not idle, a stale one is.
    pub pubsub: u64,
    pub idle_pubsub: u64,
    /// Subscriptions (channels + patterns + shard channels) held by the group.
    pub subscriptions: u64,
    /// Connections blocked in a blocking command (flag b), and those of them idle at least
    /// the threshold (a blocked call is idle while it waits: it is not a leak).
    pub blocked: u64,
    pub idle_blocked: u64,
    /// Output buffer memory (`omem`), and the largest single one.
    pub output_bytes: u64,
    pub max_output_bytes: u64,
    /// Connections whose replies wait for a socket that does not drain
    /// ([`crate::analysis::aggregate::details::output_stalled`]), and those of them idle at least the threshold
    /// (left out of the idle pub/sub, blocked and unused counts: they are stuck readers).
    pub output_stalled: u64,
    pub idle_stalled: u64,
    /// Connections at most [`YOUNG_SECONDS`] old (our own left out).
    pub young: u64,
    /// The exporter's own connections (named [`CLIENT_NAME`]), and those of them idle at least
    /// the threshold: counted in the fields above like any other connection (the metrics show
    /// them), left out of [`idle_unused`](Self::idle_unused), `young`, `oldest_age_seconds` and
    /// the instance counts, which are evidence about the clients.
    pub own: u64,
    pub own_idle: u64,
    /// Age of the oldest connection (our own left out): when the group appeared, as far as the
    /// connections that are still open can tell.
    pub oldest_age_seconds: u64,
}

impl GroupStats {
    fn merge(&mut self, o: &GroupStats) {
        let add = |a: &mut u64, b: u64| *a = a.saturating_add(b);
        add(&mut self.connections, o.connections);
        add(&mut self.idle_connections, o.idle_connections);
        self.oldest_idle_seconds = self.oldest_idle_seconds.max(o.oldest_idle_seconds);
        add(&mut self.memory_bytes, o.memory_bytes);
        add(&mut self.no_command, o.no_command);
        add(&mut self.pubsub, o.pubsub);
        add(&mut self.idle_pubsub, o.idle_pubsub);
        add(&mut self.subscriptions, o.subscriptions);
        add(&mut self.blocked, o.blocked);
        add(&mut self.idle_blocked, o.idle_blocked);
        add(&mut self.output_bytes, o.output_bytes);
        self.max_output_bytes = self.max_output_bytes.max(o.max_output_bytes);
        add(&mut self.output_stalled, o.output_stalled);
        add(&mut self.idle_stalled, o.idle_stalled);
        add(&mut self.young, o.young);
        add(&mut self.own, o.own);
        add(&mut self.own_idle, o.own_idle);
        self.oldest_age_seconds = self.oldest_age_seconds.max(o.oldest_age_seconds);
    }

    /// Idle connections that neither listen (pub/sub) nor wait (blocked), our own left out:
    /// the leak candidates.
    pub fn idle_unused(&self) -> u64 {
        self.idle_connections
            .saturating_sub(self.idle_pubsub)
            .saturating_sub(self.idle_blocked)
            .saturating_sub(self.idle_stalled)
            .saturating_sub(self.own_idle)
    }

    /// Connections other than the exporter's own.
    pub fn clients(&self) -> u64 {
        self.connections.saturating_sub(self.own)
    }

    fn add(&mut self, l: &LineFacts) {
        self.connections += 1;
        self.idle_connections += u64::from(l.is_idle);
        self.oldest_idle_seconds = self.oldest_idle_seconds.max(l.idle);
        self.memory_bytes = self.memory_bytes.saturating_add(l.memory);
        self.no_command += u64::from(l.no_command);
        self.pubsub += u64::from(l.pubsub);
        // A stuck reader's idle clock runs too (nothing is read or written): it is counted
        // as stalled, not as a stale subscriber or an idle blocked call.
        let idle_live = l.is_idle && !l.stalled;
        self.idle_pubsub += u64::from(l.pubsub && idle_live);
        self.subscriptions = self.subscriptions.saturating_add(l.subscriptions);
        self.blocked += u64::from(l.blocked);
        self.idle_blocked += u64::from(l.blocked && idle_live);
        self.output_bytes = self.output_bytes.saturating_add(l.output);
        self.max_output_bytes = self.max_output_bytes.max(l.output);
        self.output_stalled += u64::from(l.stalled);
        self.idle_stalled += u64::from(l.stalled && l.is_idle);
        if l.own {
            self.own += 1;
            self.own_idle += u64::from(l.is_idle);
        } else {
            self.young += u64::from(l.young);
            self.oldest_age_seconds = self.oldest_age_seconds.max(l.age);
        }
    }
}

/// The facts of one line that every group it belongs to adds up.
struct LineFacts {
    /// The exporter's own connection.
    own: bool,
    age: u64,
    is_idle: bool,
    idle: u64,
    memory: u64,
    no_command: bool,
    pubsub: bool,
    subscriptions: u64,
    blocked: bool,
    output: u64,
    stalled: bool,
    young: bool,
}

/// The aggregates of one CLIENT LIST snapshot, already folded to top K + `other`.
/// Each `Vec` is sorted by connection count, largest first, `other` (if any) last.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClientListSummary {
    /// Lines parsed (connections seen).
    pub connections: u64,
    /// Lines that could not be parsed and were skipped.
    pub parse_errors: u64,
    pub by_source: Vec<(String, GroupStats)>,
    pub by_name: Vec<(String, GroupStats)>,
    /// Per client library (`lib-name`, Redis 7.2+ / Valkey 8.1+, when the client set it).
    pub by_lib: Vec<(String, GroupStats)>,
    /// Per IPv4 /24 of the source address, keyed `a.b.c.0/24`.
    pub by_prefix: Vec<(String, GroupStats)>,
    /// Instance evidence per service (client name, library, /24, and all sources together):
    /// how many source addresses, since when, each with how many connections. Top K per kind
    /// by connections, only services of at least two instances, plus the `All` fleet.
    pub fleets: Vec<Fleet>,
    /// Distinct sources other than the exporter's own connection: client instances.
    pub instances: u64,
    /// The sources with the most young connections (at most [`YOUNG_SECONDS`] old), largest
    /// first, [`TOP_YOUNG`] of them (or every source when there are fewer; counts may be 0):
    /// who connects per request, whether or not it is among the top sources by connections.
    pub young_sources: Vec<(String, u64)>,
    pub by_user: Vec<(String, u64)>,
    pub by_command: Vec<(String, u64)>,
    pub by_type: PerType,
    /// Connections idle at least the threshold, per type.
    pub idle_by_type: PerType,
    pub by_flag: PerFlag,
    /// Channel, pattern and shard subscriptions.
    pub subscriptions: [u64; 3],
    pub output_buffer_bytes: u64,
    pub distinct_sources: u64,
    pub idle: Distribution,
    pub age: Distribution,
    /// Libraries, local ports, buffers and totals (src/extras.rs).
    pub details: crate::analysis::aggregate::details::ClientDetails,
    /// Values (source, name, user, command) longer than [`MAX_LABEL_BYTES`] in this snapshot,
    /// counted under their bounded form (see [`crate::redis::label`]).
    pub truncated_values: u64,
}

/// A dimension connections are grouped by, as a finding names its culprit (`source_ip
/// 10.0.0.5`, `client_name orders-api`) and as the history keeps groups. Serialized as that
/// name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Dimension {
    SourceIp,
    ClientName,
    LibName,
    /// The IPv4 /24 of the source address.
    AddressPrefix,
    /// Every source address together (a fleet-wide leak).
    AllSources,
}

impl Dimension {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SourceIp => "source_ip",
            Self::ClientName => "client_name",
            Self::LibName => "lib_name",
            Self::AddressPrefix => "address_prefix",
            Self::AllSources => "all_sources",
        }
    }
}

impl std::fmt::Display for Dimension {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which attribute groups source addresses into one service's fleet of instances.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum FleetKind {
    /// Every source address: the server's whole population of clients.
    #[default]
    All,
    /// The client name of the instance's connections.
    Name,
    /// The client library (`lib-name`).
    Lib,
    /// The IPv4 /24 of the address (pods of one node, hosts of one subnet).
    Prefix,
}

impl FleetKind {
    /// The culprit kind a finding names (`client_name orders-api`, `address_prefix 10.0.3.0/24`).
    pub fn dimension(self) -> Dimension {
        match self {
            Self::All => Dimension::AllSources,
            Self::Name => Dimension::ClientName,
            Self::Lib => Dimension::LibName,
            Self::Prefix => Dimension::AddressPrefix,
        }
    }

    pub fn as_str(self) -> &'static str {
        self.dimension().as_str()
    }

    const ALL: [FleetKind; 4] = [Self::All, Self::Name, Self::Lib, Self::Prefix];
}

/// A jump in the instances' ages: the youngest instances appeared well after the others (the
/// oldest of them is at most half as old as the youngest of the rest, and at least 2 s
/// younger). What a scale-out leaves in CLIENT LIST whenever it happened: each instance's
/// oldest connection says since when it exists.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AgeStep {
    /// Instances on the young side of the step, their connections and idle (unused) ones.
    pub young_instances: u64,
    pub young_connections: u64,
    pub young_idle: u64,
    /// The oldest young instance's age, and the youngest old instance's age: the step
    /// happened between these many seconds ago.
    pub young_oldest_age: u64,
    pub old_youngest_age: u64,
}

/// One service's instances (distinct source addresses; the exporter's own connection is not
/// one) and their connections: the evidence for scale-outs and fleet-wide leaks.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Fleet {
    pub kind: FleetKind,
    /// The name, library or `a.b.c.0/24`; empty for [`FleetKind::All`].
    pub key: String,
    pub instances: u64,
    /// Connections of these instances (all of each instance's connections: an instance is
    /// counted in the service of its first connection in the snapshot).
    pub connections: u64,
    pub idle_unused: u64,
    /// The oldest instance's age.
    pub oldest_age_seconds: u64,
    /// The median connections per instance, and how many instances hold within ±50% of it.
    pub pool_median: u64,
    pub similar_pools: u64,
    /// The most idle (unused) connections any one instance holds.
    pub max_idle_per_instance: u64,
    /// The latest step in the instances' ages, when there is one (see [`AgeStep`]).
    pub step: Option<AgeStep>,
}

/// Something counted per key, that can say whether the current snapshot saw it.
pub(crate) trait Count: Copy + Default {
    fn weight(&self) -> u64;
    /// Adds the counts of the same key from another part of the snapshot.
    fn absorb(&mut self, o: &Self);
}

impl Count for u64 {
    fn weight(&self) -> u64 {
        *self
    }
    fn absorb(&mut self, o: &Self) {
        *self = self.saturating_add(*o);
    }
}

impl Count for GroupStats {
    fn weight(&self) -> u64 {
        self.connections
    }
    fn absorb(&mut self, o: &Self) {
        self.merge(o);
    }
}

/// No slot: a source whose lines had no name or library yet.
const NO_SLOT: u32 = u32::MAX;

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

/// Values per key, in slots so that the last key's slot can be found again without hashing:
/// consecutive CLIENT LIST lines often share a user, a command or a pool's source.
pub(crate) struct Counts<V> {
    index: HashMap<Box<str>, usize>,
    slots: Vec<V>,
    last: Option<usize>,
    /// A copy of the last key; its capacity is reused, so it stops allocating once warm.
    last_key: String,
}

impl<V> Default for Counts<V> {
    fn default() -> Self {
        Self {
            index: HashMap::new(),
            slots: Vec::new(),
            last: None,
            last_key: String::new(),
        }
    }
}

impl<V: Count> Counts<V> {
    pub(crate) fn entry(&mut self, key: &str) -> &mut V {
        let i = self.slot(key);
        &mut self.slots[i]
    }

    /// The key's slot (created when new); valid until the next [`prune`](Self::prune).
    fn slot(&mut self, key: &str) -> usize {
        if let Some(i) = self.last.filter(|_| self.last_key == key) {
            return i;
        }
        let next = self.slots.len();
        let i = *self.index.entry_ref(key).or_insert(next);
        if i == next {
            self.slots.push(V::default());
        }
        self.last = Some(i);
        self.last_key.clear();
        self.last_key.push_str(key);
        i
    }

    pub(crate) fn reset(&mut self) {
        self.slots.iter_mut().for_each(|v| *v = V::default());
        self.last = None;
    }

    /// Forgets the keys the snapshot did not see and packs the slots of the others.
    pub(crate) fn prune(&mut self) {
        let Self {
            index, slots, last, ..
        } = self;
        let mut packed = Vec::with_capacity(index.len());
        index.retain(|_, i| {
            let v = slots[*i];
            let live = v.weight() > 0;
            if live {
                packed.push(v);
                *i = packed.len() - 1;
            }
            live
        });
        *slots = packed;
        *last = None;
    }

    fn len(&self) -> usize {
        self.index.len()
    }

    /// Gives back capacity far beyond the live keys (left by a larger earlier population).
    fn shrink(&mut self) {
        if self.index.capacity() > 2 * self.index.len() + 16 {
            self.index.shrink_to(self.index.len());
        }
        if self.slots.capacity() > 2 * self.slots.len() + 16 {
            self.slots.shrink_to(self.slots.len());
        }
        if self.last_key.capacity() > 256 {
            self.last_key.shrink_to(64);
        }
    }

    /// Adds the live keys of `other` (pruned first, so that it too forgets vanished keys).
    pub(crate) fn absorb(&mut self, other: &mut Counts<V>) {
        other.prune();
        for (k, v) in other.iter() {
            self.entry(k).absorb(v);
        }
    }

    /// Adds the live keys of `other` and returns, for each of its slots, the slot the key has
    /// here ([`NO_SLOT`] for dead ones). `other` is not pruned: its slots stay valid.
    fn absorb_mapped(&mut self, other: &Counts<V>) -> Vec<u32> {
        let mut map = vec![NO_SLOT; other.slots.len()];
        for (k, &i) in &other.index {
            let v = other.slots[i];
            if v.weight() > 0 {
                let j = self.slot(k);
                self.slots[j].absorb(&v);
                map[i] = j as u32;
            }
        }
        map
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &V)> {
        self.index.iter().map(|(k, &i)| (&**k, &self.slots[i]))
    }
}

/// The `a.b.c` of an IPv4 source address (four parts of one to three digits; `None` for IPv6,
/// unix sockets and anything else): its /24. One pass over the bytes (it runs once per source
/// per snapshot).
pub fn ipv4_prefix(ip: &str) -> Option<&str> {
    let (mut dots, mut run, mut last_dot) = (0, 0, 0);
    for (i, b) in ip.bytes().enumerate() {
        match b {
            b'0'..=b'9' if run < 3 => run += 1,
            b'.' if run > 0 && dots < 3 => {
                dots += 1;
                run = 0;
                last_dot = i;
            }
            _ => return None,
        }
    }
    (dots == 3 && run > 0).then(|| &ip[..last_dot])
}

/// One instance (source) as a member of one fleet, for the fleet evidence.
#[derive(Debug, Clone, Copy)]
struct InstanceRow {
    /// Kind, slot and age packed so that rows sort by one integer compare: kind in the top
    /// byte, the slot below it, the age (seconds, capped at 2^48) in the low 48 bits.
    order: u128,
    kind: FleetKind,
    slot: u32,
    age: u64,
    connections: u64,
    idle: u64,
}

/// The CLIENT LIST listing (src/redis/chunked.rs), whole or in chunks of ids, between `begin` and
/// `finish`.
impl crate::redis::chunked::ChunkSink for Aggregator {
    fn begin(&mut self) {
        Aggregator::begin(self);
    }

    fn add_reply(&mut self, reply: &str) {
        let halves = split_in_half(reply).filter(|_| self.parallel);
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
        let halves = split_in_half(reply).filter(|_| self.parallel);
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
        let src = self
            .sources
            .entry(bounded(e.source_ip_with(flags), scratch, cut));
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

    /// The /24 groups and the fleets of this snapshot. Runs before the maps are pruned: the
    /// sources' name and library slots are valid until then. Costs one sort of the sources
    /// (not of the lines); the scratch vectors keep their capacity.
    fn fleets(&mut self, top_k: usize) -> Vec<Fleet> {
        let Self {
            sources,
            names,
            libs,
            prefixes,
            rows,
            pools,
            ..
        } = self;
        prefixes.reset();
        rows.clear();
        for (ip, &i) in &sources.index {
            let s = sources.slots[i];
            if s.g.connections == 0 {
                continue;
            }
            let prefix = ipv4_prefix(ip).map(|p| {
                let slot = prefixes.slot(p);
                prefixes.slots[slot].merge(&s.g);
                slot as u32
            });
            if s.g.clients() == 0 {
                // Only our own connection: not a client instance.
                continue;
            }
            let row = |kind: FleetKind, slot: u32| InstanceRow {
                order: (u128::from(kind as u8) << 96)
                    | (u128::from(slot) << 48)
                    | u128::from(s.g.oldest_age_seconds.min((1 << 48) - 1)),
                kind,
                slot,
                age: s.g.oldest_age_seconds,
                connections: s.g.clients(),
                idle: s.g.idle_unused(),
            };
            rows.push(row(FleetKind::All, 0));
            if s.name != NO_SLOT {
                rows.push(row(FleetKind::Name, s.name));
            }
            if s.lib != NO_SLOT {
                rows.push(row(FleetKind::Lib, s.lib));
            }
            if let Some(p) = prefix {
                rows.push(row(FleetKind::Prefix, p));
            }
        }
        rows.sort_unstable_by_key(|r| r.order);
        // Each run of rows is one fleet: its stats, then the top K per kind get their keys.
        let mut stats: Vec<(FleetKind, u32, Fleet)> = Vec::new();
        let mut at = 0;
        while at < rows.len() {
            let (kind, slot) = (rows[at].kind, rows[at].slot);
            let end = at
                + rows[at..]
                    .iter()
                    .take_while(|r| r.kind == kind && r.slot == slot)
                    .count();
            let run = &rows[at..end];
            if run.len() >= 2 || kind == FleetKind::All {
                stats.push((kind, slot, fleet_of(kind, run, pools)));
            }
            at = end;
        }
        let mut out = Vec::new();
        for kind in FleetKind::ALL {
            let map = match kind {
                FleetKind::All => None,
                FleetKind::Name => Some(&*names),
                FleetKind::Lib => Some(&*libs),
                FleetKind::Prefix => Some(&*prefixes),
            };
            let mut keys: Vec<&str> = vec![""; map.map_or(1, |m| m.slots.len())];
            for (k, &i) in map.iter().flat_map(|m| m.index.iter()) {
                keys[i] = k;
            }
            let mut of_kind: Vec<(&str, &Fleet)> = stats
                .iter()
                .filter(|(k, _, _)| *k == kind)
                .map(|(_, s, f)| (keys.get(*s as usize).copied().unwrap_or(""), f))
                .collect();
            // Ties broken by key: the same fleets whichever order the slots were made in.
            of_kind.sort_by(|a, b| b.1.connections.cmp(&a.1.connections).then(a.0.cmp(b.0)));
            of_kind.truncate(top_k.max(1));
            out.extend(of_kind.into_iter().map(|(k, f)| Fleet {
                key: match kind {
                    FleetKind::Prefix => format!("{k}.0/24"),
                    _ => k.to_string(),
                },
                ..f.clone()
            }));
        }
        out
    }
}

/// One fleet's evidence from its instances, sorted by age (youngest first).
fn fleet_of(kind: FleetKind, run: &[InstanceRow], pools: &mut Vec<u64>) -> Fleet {
    let mut f = Fleet {
        kind,
        instances: run.len() as u64,
        oldest_age_seconds: run.last().map_or(0, |r| r.age),
        ..Fleet::default()
    };
    let (mut young_conns, mut young_idle) = (0u64, 0u64);
    for (i, r) in run.iter().enumerate() {
        f.connections = f.connections.saturating_add(r.connections);
        f.idle_unused = f.idle_unused.saturating_add(r.idle);
        f.max_idle_per_instance = f.max_idle_per_instance.max(r.idle);
        young_conns = young_conns.saturating_add(r.connections);
        young_idle = young_idle.saturating_add(r.idle);
        // The latest step wins: the largest set of instances that appeared after the others.
        if let Some(next) = run.get(i + 1) {
            if next.age + 1 >= 2 * (r.age + 1) && next.age >= r.age + 2 {
                f.step = Some(AgeStep {
                    young_instances: i as u64 + 1,
                    young_connections: young_conns,
                    young_idle,
                    young_oldest_age: r.age,
                    old_youngest_age: next.age,
                });
            }
        }
    }
    pools.clear();
    pools.extend(run.iter().map(|r| r.connections));
    let mid = pools.len() / 2;
    if !pools.is_empty() {
        let (_, m, _) = pools.select_nth_unstable(mid);
        f.pool_median = *m;
    }
    let m = f.pool_median;
    f.similar_pools = run
        .iter()
        .filter(|r| 2 * r.connections >= m && 2 * r.connections <= 3 * m)
        .count() as u64;
    f
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

/// Keeps the `k` largest entries (ties broken by key, so the output is stable from one poll
/// to the next) and merges the rest, and any real key spelled `other`, into one `other` entry.
/// Sorts references, not values: a `GroupStats` is ~150 bytes, and there may be thousands.
pub(crate) fn fold<'a, V: Count + 'a>(
    counts: impl Iterator<Item = (&'a str, &'a V)>,
    k: usize,
    merge: impl Fn(&mut V, &V),
) -> Vec<(String, V)> {
    let mut all: Vec<(&str, &V)> = counts.collect();
    all.sort_unstable_by(|a, b| b.1.weight().cmp(&a.1.weight()).then_with(|| a.0.cmp(b.0)));
    let mut out = Vec::with_capacity(k.min(all.len()) + 1);
    let mut other: Option<V> = None;
    for (key, v) in all {
        if out.len() < k && key != OTHER {
            out.push((key.to_string(), *v));
        } else {
            merge(other.get_or_insert_with(V::default), v);
        }
    }
    if let Some(o) = other {
        out.push((OTHER.to_string(), o));
    }
    out
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
