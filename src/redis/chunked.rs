//! CLIENT LIST without stalling Redis: the listing read in chunks of client ids.
//!
//! Redis builds a whole CLIENT LIST reply on its main thread while every other command waits
//! (~43 ms at 19,900 clients here, linear in the count). Redis 6.2+ and Valkey answer
//! `CLIENT LIST ID id [id ...]` for just those ids, about a microsecond per listed client, so a
//! poll here asks for at most [`CHUNK_IDS`] ids per command (~0.6 ms of Redis' time for 500
//! live clients): the ids the last poll saw, then ids above them that the last poll did not.
//! Each chunk is parsed into the aggregator as it arrives while the next one is already on its
//! way (one command in flight ahead), so the exporter's own work overlaps the round trips.
//!
//! # Finding the clients a poll has not seen
//! Redis gives every connection the next value of one increasing counter (`next_client_id`,
//! never reused while the process lives). Kept between polls:
//! - `known`: the ids the last listing returned;
//! - `floor`: a lower bound of the counter when this poll's INFO ran: the last floor plus the
//!   connections Redis accepted since (`total_connections_received`, INFO: each took an id
//!   above every older one), or the highest id ever seen, whichever is higher. Every id at or
//!   below it had been handed out, so one that is neither known nor returned when asked for is
//!   closed, for good;
//! - `ceiling`: the same counter estimated from above (the last ceiling plus the same count);
//! - `frontier`: every id below it is either in `known` or closed for good.
//!
//! A walk lists the `known` ids, then probes the ids from `frontier` up that are not known, in
//! chunks, in increasing order. A probed id above `floor` and above every id returned so far
//! (Redis runs one connection's commands in order) that is not returned may simply not have
//! been handed out yet, so the frontier stops before it and the next poll asks again. Probing
//! goes on through empty chunks (gaps: connections that came and went between polls) up to the
//! ceiling plus one chunk, and past it while chunks keep returning clients; it stops at the
//! first empty chunk past it.
//!
//! So a client alive through a whole walk is listed: either the last poll saw it (a known id),
//! or its id is at or above the frontier and at most the ceiling (ids are handed out in order,
//! one per accepted connection) or just above a returned one. Not counted by
//! `total_connections_received` are ids Redis hands out without counting a connection (a
//! connection refused by protected mode, a failed TLS handshake, module and Lua clients): a run
//! of more than a chunk of those right past the ceiling could hide the clients above it until
//! one of the resynchronisations below:
//! - a *sweep*: every id from 1 up, in chunks, with nothing known; its floor is the held
//!   connection's own id (`CLIENT ID`: every id below it was handed out before it), so on a new
//!   connection a burst of more than a chunk of closed ids between its connect and its first
//!   INFO, a few milliseconds, could hide the clients above it until the mismatch check. On every
//!   new connection, when the server restarted (`run_id` changed or uptime went back: ids start
//!   again from 1) and every `client_list_resync_seconds` (default 900). A sweep costs one
//!   command per 500 ids ever handed out; above [`MAX_PROBES`] chunks it is a full listing.
//! - a full CLIENT LIST (the stall, once) when two walks in a row listed clearly fewer clients
//!   than INFO's `connected_clients + connected_slaves` said just before each (at most once a
//!   minute), and when `total_connections_received` went back (`CONFIG RESETSTAT`: nothing
//!   bounds the ids handed out since the last poll).
//!
//! Servers before 6.2 (by INFO's `redis_version`, or by an error reply to `CLIENT LIST ID`) get
//! the full CLIENT LIST, as do servers with at most [`CHUNK_IDS`] clients (one command either
//! way, and it costs no more than a chunk).

use std::time::{Duration, Instant};

use crate::redis::client_list::raw_lines;
use crate::redis::commands::Command;
use crate::redis::connection::{protocol, Conn, ErrorKind, PollError, Stage, Text};
use crate::redis::info::Info;
use crate::redis::resp::{Charge, Value};

/// Ids per `CLIENT LIST ID` command. Redis 7.0.15 here spent 0.62 ms on 500 listed clients
/// (INFO commandstats), so one command stays under a millisecond of Redis' main thread.
pub const CHUNK_IDS: usize = 500;

/// The first Redis version with `CLIENT LIST ID`.
pub const CHUNKED_SINCE: (u32, u32) = (6, 2);

/// The shortest time between two full listings triggered by a count mismatch: under heavy
/// churn the counts differ now and then without anything being missed, and a full listing is
/// the stall this module avoids.
const MISMATCH_RESYNC_MIN: Duration = Duration::from_secs(60);

/// Probe chunks allowed beyond the bound while they keep returning clients.
const EXTRA_PROBES: u64 = 64;

/// At most this many probe chunks per walk (1,000,000 ids), whatever INFO claims: a hostile or
/// broken `total_connections_received` must not keep a poll busy. What is left is probed at the
/// next poll (the frontier only moves over what was asked). A sweep that would need more is a
/// full listing instead.
pub const MAX_PROBES: u64 = 2000;

/// A reply at least this long (about 3,500 lines) takes milliseconds to aggregate: long enough
/// that this worker's other tasks (other targets' polls, scrapes) should move to another worker
/// meanwhile.
const OFF_RUNTIME_MIN_BYTES: usize = 1 << 20;

/// Where the listing goes: the per-target aggregator (src/analysis/aggregate.rs), between its `begin`
/// and `finish`.
pub trait ChunkSink {
    /// Starts a snapshot (again, when a walk falls back to a full listing half-way).
    fn begin(&mut self);
    /// Adds every line of a full CLIENT LIST reply.
    fn add_reply(&mut self, reply: &str);
    /// Adds every line of one chunk's reply and pushes the id of each parsed line onto `ids`.
    /// Allocation-free per line once warm (`ids` keeps its capacity between polls).
    fn add_chunk(&mut self, reply: &str, ids: &mut Vec<u64>);
}

/// Why a poll read the full CLIENT LIST, or swept every id, instead of walking from what it knew.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FullReason {
    /// The server has no `CLIENT LIST ID` (before 6.2, or it refused it).
    Unsupported,
    /// The first listing on a (new) connection: nothing known yet.
    Connected,
    /// The server restarted (`run_id` changed, uptime went back): ids start from 1 again.
    Restart,
    /// `total_connections_received` went back (`CONFIG RESETSTAT`).
    Resetstat,
    /// At most [`CHUNK_IDS`] clients: one command either way.
    Small,
    /// Two walks in a row listed clearly fewer clients than INFO counted.
    Mismatch,
    /// `client_list_resync_seconds` since the last full listing.
    Periodic,
}

impl FullReason {
    pub const ALL: [FullReason; 7] = [
        FullReason::Unsupported,
        FullReason::Connected,
        FullReason::Restart,
        FullReason::Resetstat,
        FullReason::Small,
        FullReason::Mismatch,
        FullReason::Periodic,
    ];

    /// The reasons for a sweep (when it is cheap enough): a new connection, a restart, the
    /// periodic resync.
    pub const SWEEPS: [FullReason; 3] = [
        FullReason::Connected,
        FullReason::Restart,
        FullReason::Periodic,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FullReason::Unsupported => "unsupported",
            FullReason::Connected => "connected",
            FullReason::Restart => "restart",
            FullReason::Resetstat => "resetstat",
            FullReason::Small => "small",
            FullReason::Mismatch => "mismatch",
            FullReason::Periodic => "periodic",
        }
    }
}

/// What one listing did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Listing {
    /// Set for a full CLIENT LIST (one command for every client).
    pub full: Option<FullReason>,
    /// Set for a sweep: every id from 1, in chunks.
    pub sweep: Option<FullReason>,
    /// CLIENT LIST commands sent (1 for a full listing).
    pub commands: u64,
    /// Lines holding bytes that are not UTF-8 (decoded lossily).
    pub invalid_utf8_lines: u64,
    /// Clients listed (lines with an id).
    pub listed: u64,
}

/// The per-target state of the chunked walk, kept between polls on one connection.
#[derive(Debug)]
pub struct ChunkedLister {
    resync: Option<Duration>,
    /// Sorted ids the last listing returned.
    known: Vec<u64>,
    /// Ids returned by this listing (becomes `known`).
    seen: Vec<u64>,
    /// Ids of the request being built (reused).
    request: Vec<u64>,
    frontier: u64,
    /// The highest id ever seen alive.
    high: u64,
    /// A lower bound of Redis' id counter when this poll's INFO ran: the last one plus the
    /// connections accepted since (each took an id above every older one), or `high`.
    floor: u64,
    /// The same counter as estimated from above: where probing may stop.
    ceiling: u64,
    /// Whether `known`, `frontier` and `high` describe this server (a full listing happened on
    /// this connection).
    synced: bool,
    unsupported: bool,
    /// Consecutive walks that listed clearly fewer clients than INFO counted.
    mismatches: u32,
    last_tcr: Option<f64>,
    last_run_id: Option<String>,
    last_uptime: Option<f64>,
    last_list: Option<Instant>,
    /// The last full listing or sweep.
    last_resync: Option<Instant>,
    /// The last full listing.
    last_full: Option<Instant>,
}

impl ChunkedLister {
    /// `resync`: the interval of the full listings that re-synchronise (`None`: never).
    pub fn new(resync: Option<Duration>) -> Self {
        Self {
            resync,
            known: Vec::new(),
            seen: Vec::new(),
            request: Vec::with_capacity(CHUNK_IDS),
            frontier: 0,
            high: 0,
            floor: 0,
            ceiling: 0,
            synced: false,
            unsupported: false,
            mismatches: 0,
            last_tcr: None,
            last_run_id: None,
            last_uptime: None,
            last_list: None,
            last_resync: None,
            last_full: None,
        }
    }

    /// Forgets what the last connection learnt: the next listing is a full one.
    pub fn reset(&mut self) {
        let resync = self.resync;
        let (known, seen, request) = (
            std::mem::take(&mut self.known),
            std::mem::take(&mut self.seen),
            std::mem::take(&mut self.request),
        );
        *self = Self::new(resync);
        // Keep the allocations: a reconnect should not cost them again.
        (self.known, self.seen, self.request) = (known, seen, request);
        self.known.clear();
        self.seen.clear();
    }

    /// Whether this server is listed in chunks (so the client count is no longer what makes
    /// CLIENT LIST costly to it: see `ClientListSchedule`).
    pub fn chunked_for(&self, info: &Info) -> bool {
        !self.unsupported && info.version().is_some_and(|v| v >= CHUNKED_SINCE)
    }

    /// Lists the clients into `sink` (begun here; the caller finishes it), chunked where the
    /// server allows, each command under the connection's timeout. `info` is this poll's INFO, read before.
    pub async fn list(
        &mut self,
        c: &mut Conn,
        info: &Info,
        sink: &mut impl ChunkSink,
    ) -> Result<Listing, PollError> {
        let now = Instant::now();
        let reason = self.full_reason(info, now);
        let since_last = self.last_list.map(|at| now.duration_since(at));
        let delta = match (self.last_tcr, info.total_connections_received) {
            // `as` saturates: NaN and negatives become 0, a huge value u64::MAX.
            (Some(a), Some(b)) if b >= a => (b - a) as u64,
            _ => 0,
        };
        if reason == Some(FullReason::Restart) {
            self.synced = false;
        }
        self.last_tcr = info.total_connections_received;
        self.last_uptime = info.uptime_in_seconds;
        if self.last_run_id != info.run_id {
            self.last_run_id.clone_from(&info.run_id);
        }
        self.last_list = Some(now);
        // Room in the reply budget for what this listing holds at once (src/redis/admission.rs):
        // a full listing (any reason but a sweep's) its every client, a walk or a sweep two
        // chunks (one parsed, one on its way).
        let clients = connected(info).map_or(0, |n| n as usize);
        let held = if reason.is_some_and(|r| !FullReason::SWEEPS.contains(&r)) {
            clients
        } else {
            clients.min(2 * CHUNK_IDS)
        };
        let _room = crate::redis::admission::admit(
            held.saturating_add(1)
                .saturating_mul(crate::redis::admission::LINE_BYTES),
        )
        .await;
        let listing = match reason {
            Some(
                r @ (FullReason::Unsupported
                | FullReason::Small
                | FullReason::Resetstat
                | FullReason::Mismatch),
            ) => self.full(c, sink, r).await?,
            // Connected, Restart, Periodic: FullReason::SWEEPS.
            Some(r) => self.sweep(c, sink, delta, r).await?,
            None => match self.chunked(c, sink, delta).await {
                Ok(l) => l,
                // An error reply to `CLIENT LIST ID` (a server or proxy without it): this
                // connection lists in full from now on.
                Err(e) if refused(&e) => {
                    self.unsupported = true;
                    let mut l = self.full(c, sink, FullReason::Unsupported).await?;
                    l.commands += 1;
                    l
                }
                Err(e) => return Err(e),
            },
        };
        if listing.full.is_none() {
            self.check_count(info, &listing, now, since_last, delta);
        }
        Ok(listing)
    }

    /// Every id from 1 up, in chunks, as if nothing were known; a full listing if that would
    /// take more than [`MAX_PROBES`] commands (or the server refuses `CLIENT ID`).
    async fn sweep(
        &mut self,
        c: &mut Conn,
        sink: &mut impl ChunkSink,
        delta: u64,
        reason: FullReason,
    ) -> Result<Listing, PollError> {
        let own = match c.run(Stage::ClientList, Command::ClientId).await {
            Ok(Value::Integer(id)) => u64::try_from(id).ok(),
            Ok(_) => None,
            Err(e) if refused(&e) => None,
            Err(e) => return Err(e),
        };
        let Some(own) = own else {
            return self.full(c, sink, reason).await;
        };
        // Our own connection is alive, and every id below its own was handed out before it.
        // After a restart (or on a new connection) the old ids say nothing about this server,
        // nor does the counter's growth since the last poll.
        let delta = if self.synced && reason == FullReason::Periodic {
            self.high = self.high.max(own);
            delta
        } else {
            (self.high, self.floor, self.ceiling) = (own, own, own);
            0
        };
        if self.ceiling.max(self.high) / CHUNK_IDS as u64 + EXTRA_PROBES >= MAX_PROBES {
            return self.full(c, sink, reason).await;
        }
        self.known.clear();
        self.frontier = 1;
        let mut listing = self.chunked(c, sink, delta).await?;
        listing.commands += 1;
        listing.sweep = Some(reason);
        self.synced = true;
        self.mismatches = 0;
        self.last_resync = Some(Instant::now());
        Ok(listing)
    }

    fn full_reason(&self, info: &Info, now: Instant) -> Option<FullReason> {
        if !self.chunked_for(info) {
            return Some(FullReason::Unsupported);
        }
        // Before the resyncs: one command of at most a chunk's clients, whatever happened.
        if connected(info).is_some_and(|n| n <= CHUNK_IDS as f64) {
            return Some(FullReason::Small);
        }
        if !self.synced {
            return Some(FullReason::Connected);
        }
        let run_id_changed =
            matches!((&self.last_run_id, &info.run_id), (Some(a), Some(b)) if a != b);
        let uptime_back =
            matches!((self.last_uptime, info.uptime_in_seconds), (Some(a), Some(b)) if b < a);
        if run_id_changed || uptime_back {
            return Some(FullReason::Restart);
        }
        if matches!((self.last_tcr, info.total_connections_received), (Some(a), Some(b)) if b < a) {
            return Some(FullReason::Resetstat);
        }
        // Twice in a row: one mass disconnect between INFO and the walk is not a miss.
        if self.mismatches >= 2 {
            return Some(FullReason::Mismatch);
        }
        let due = |every: Duration| {
            self.last_resync
                .is_none_or(|at| now.duration_since(at) >= every)
        };
        if self.resync.is_some_and(due) {
            return Some(FullReason::Periodic);
        }
        None
    }

    async fn full(
        &mut self,
        c: &mut Conn,
        sink: &mut impl ChunkSink,
        reason: FullReason,
    ) -> Result<Listing, PollError> {
        let (reply, charge) = c
            .run_charged(Stage::ClientList, Command::ClientList)
            .await?;
        let (text, invalid) = chunk_text(reply, charge)?;
        sink.begin();
        off_runtime(text.len(), || sink.add_reply(&text));
        self.seen.clear();
        ids_of(&text, &mut self.seen);
        self.seen.sort_unstable();
        self.seen.dedup();
        // One snapshot: every id up to the highest listed had been handed out, so every
        // other id below it is closed. (The listing ran after INFO: `floor` starts again.)
        self.high = self.seen.last().copied().unwrap_or(0);
        (self.floor, self.ceiling) = (0, self.high);
        self.frontier = self.high.saturating_add(1);
        std::mem::swap(&mut self.known, &mut self.seen);
        self.synced = true;
        self.mismatches = 0;
        self.last_full = Some(Instant::now());
        self.last_resync = self.last_full;
        Ok(Listing {
            full: Some(reason),
            sweep: None,
            commands: 1,
            invalid_utf8_lines: invalid,
            listed: self.known.len() as u64,
        })
    }

    async fn chunked(
        &mut self,
        c: &mut Conn,
        sink: &mut impl ChunkSink,
        delta: u64,
    ) -> Result<Listing, PollError> {
        sink.begin();
        self.seen.clear();
        // Every id seen before this poll's INFO, and `delta` more, had been handed out by then.
        self.floor = self.floor.saturating_add(delta).max(self.high);
        self.ceiling = self.ceiling.saturating_add(delta).max(self.floor);
        let bound = self
            .ceiling
            .max(self.frontier.saturating_sub(1))
            .saturating_add(CHUNK_IDS as u64);
        let probes = (bound.saturating_sub(self.frontier) / CHUNK_IDS as u64)
            .saturating_add(1 + EXTRA_PROBES)
            .min(MAX_PROBES);
        let mut plan = Plan::new(&self.known, self.frontier, probes);
        // Ids at or below `high` had been handed out before the command that asks for them.
        let mut high = self.floor;
        let mut frontier = self.frontier;
        let mut advancing = true;
        let mut listing = Listing::default();
        let Some(kind) = plan.next(&mut self.request) else {
            return Ok(listing);
        };
        // Replies a cancelled exchange left owed are not this walk's.
        c.settle();
        send_ids(c, &self.request).await?;
        let mut in_flight = Some(kind);
        while let Some(kind) = in_flight.take() {
            let (reply, charge) = c.recv_charged(Stage::ClientList).await?;
            let (text, invalid) = chunk_text(reply, charge)?;
            listing.commands += 1;
            listing.invalid_utf8_lines += invalid;
            // The next command goes out before this reply is parsed: Redis works on it while
            // we parse. Whether to send it needs no parse: an empty probe past the bound ends
            // the walk.
            let last_probe =
                matches!(kind, Kind::Probe { last, .. } if text.is_empty() && last >= bound);
            if !last_probe {
                if let Some(next) = plan.next(&mut self.request) {
                    send_ids(c, &self.request).await?;
                    in_flight = Some(next);
                }
            }
            let before = self.seen.len();
            sink.add_chunk(&text, &mut self.seen);
            let top = self.seen[before..].iter().copied().max().unwrap_or(0);
            high = high.max(top);
            if let Kind::Probe { first, last } = kind {
                if advancing {
                    if last <= high {
                        frontier = last.saturating_add(1);
                    } else {
                        // Ids of this chunk above `high` may not have been handed out yet.
                        frontier = frontier.max(first).max(high.saturating_add(1));
                        advancing = false;
                    }
                }
            }
        }
        self.seen.sort_unstable();
        self.seen.dedup();
        std::mem::swap(&mut self.known, &mut self.seen);
        self.high = self.high.max(high);
        self.ceiling = self.ceiling.max(self.high);
        self.frontier = frontier;
        listing.listed = self.known.len() as u64;
        Ok(listing)
    }

    /// Marks the next listing as a full one when this walk listed clearly fewer clients than
    /// INFO counted just before it (beyond what closed meanwhile could explain).
    fn check_count(
        &mut self,
        info: &Info,
        listing: &Listing,
        now: Instant,
        since_last: Option<Duration>,
        delta: u64,
    ) {
        let Some(expected) = connected(info) else {
            return;
        };
        let walk = now.elapsed().as_secs_f64();
        // Connections opened since the last poll, spread over it, stand for those that
        // closed during this walk (a steady population opens as many as it closes).
        let churn = match since_last {
            Some(d) if d.as_secs_f64() > 0.0 => delta as f64 * (walk / d.as_secs_f64()) * 2.0,
            _ => 0.0,
        };
        let tolerance = 2.0 + expected / 64.0 + churn;
        let recent_full = self
            .last_full
            .is_some_and(|at| now.duration_since(at) < MISMATCH_RESYNC_MIN);
        if (listing.listed as f64) + tolerance < expected && !recent_full {
            self.mismatches += 1;
        } else {
            self.mismatches = 0;
        }
    }
}

/// Clients Redis holds, as CLIENT LIST shows them: `connected_clients` leaves replica links
/// out, CLIENT LIST does not.
fn connected(info: &Info) -> Option<f64> {
    let n = info.connected_clients? + info.connected_slaves.unwrap_or(0.0);
    n.is_finite().then_some(n)
}

/// An error reply, not a broken or hung connection.
fn refused(e: &PollError) -> bool {
    matches!(e.kind, ErrorKind::Other | ErrorKind::Auth)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Known,
    /// The first and last id asked for.
    Probe {
        first: u64,
        last: u64,
    },
}

/// The order of a walk's requests: the known ids in chunks, then the unknown ids from the
/// frontier up, in chunks, at most `probes` of them.
struct Plan<'a> {
    known: &'a [u64],
    next_known: usize,
    next_probe: u64,
    /// Index of the first known id at or above `next_probe` (skipped while probing).
    skip: usize,
    probes: u64,
}

impl<'a> Plan<'a> {
    fn new(known: &'a [u64], frontier: u64, probes: u64) -> Self {
        Self {
            known,
            next_known: 0,
            next_probe: frontier.max(1),
            skip: known.partition_point(|&id| id < frontier),
            probes,
        }
    }

    /// Fills `out` with the next request's ids.
    fn next(&mut self, out: &mut Vec<u64>) -> Option<Kind> {
        out.clear();
        if self.next_known < self.known.len() {
            let end = (self.next_known + CHUNK_IDS).min(self.known.len());
            out.extend_from_slice(&self.known[self.next_known..end]);
            self.next_known = end;
            return Some(Kind::Known);
        }
        if self.probes == 0 {
            return None;
        }
        self.probes -= 1;
        while out.len() < CHUNK_IDS && self.next_probe < u64::MAX {
            let id = self.next_probe;
            self.next_probe += 1;
            while self.known.get(self.skip).is_some_and(|&k| k < id) {
                self.skip += 1;
            }
            if self.known.get(self.skip) != Some(&id) {
                out.push(id);
            }
        }
        match (out.first(), out.last()) {
            (Some(&first), Some(&last)) => Some(Kind::Probe { first, last }),
            _ => None,
        }
    }
}

/// Sends `CLIENT LIST ID id ...` without waiting for its reply, so that Redis works on it
/// while the previous reply is parsed. Each id is its own argument, written straight into the
/// connection's buffer.
async fn send_ids(c: &mut Conn, ids: &[u64]) -> Result<(), PollError> {
    c.send_command(Stage::ClientList, Command::ClientListIds(ids))
        .await
}

/// A chunk's text and its count of lines that were not UTF-8 (connection's decoding); an
/// empty bulk reply (no id matched) may come as Null.
fn chunk_text(v: Value, charge: Charge) -> Result<(Text, u64), PollError> {
    match Text::charged(v, charge) {
        Ok(t) => Ok(t),
        Err(Value::Null) => Ok((Text::empty(), 0)),
        Err(_) => Err(protocol(Stage::ClientList, "the reply is not a string")),
    }
}

/// Runs the aggregation of a large reply under `block_in_place`, so that the runtime's other
/// tasks move to another worker meanwhile (inline on a current-thread runtime, where
/// `block_in_place` would panic).
fn off_runtime(len: usize, f: impl FnOnce()) {
    let multi_thread = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if multi_thread && len >= OFF_RUNTIME_MIN_BYTES {
        tokio::task::block_in_place(f)
    } else {
        f()
    }
}

/// Pushes the `id=` of every line (the first field since Redis 2.8.12) onto `out`.
pub fn ids_of(reply: &str, out: &mut Vec<u64>) {
    for line in raw_lines(reply) {
        let Some(rest) = line.strip_prefix("id=") else {
            continue;
        };
        let mut digits = rest.bytes().take_while(u8::is_ascii_digit);
        let id = digits.try_fold(0u64, |n, d| {
            n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        });
        if let Some(id) = id.filter(|_| rest.as_bytes().first().is_some_and(u8::is_ascii_digit)) {
            out.push(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(plan: &mut Plan<'_>) -> Vec<(Kind, Vec<u64>)> {
        let mut out = Vec::new();
        let mut buf = Vec::new();
        while let Some(k) = plan.next(&mut buf) {
            out.push((k, buf.clone()));
        }
        out
    }

    #[test]
    fn plan_lists_known_ids_then_probes_the_unknown_ones_above_the_frontier() {
        let known: Vec<u64> = (1..=1200).filter(|i| i % 2 == 0).collect(); // 600 ids
        let mut plan = Plan::new(&known, 1000, 2);
        let reqs = all(&mut plan);
        assert_eq!(reqs.len(), 4);
        assert_eq!(reqs[0].0, Kind::Known);
        assert_eq!(reqs[0].1.len(), CHUNK_IDS);
        assert_eq!(reqs[1].1.len(), 100);
        // Probes skip the known even ids between 1000 and 1200.
        let p1 = &reqs[2].1;
        assert_eq!(p1.len(), CHUNK_IDS);
        assert_eq!(p1[..3], [1001, 1003, 1005]);
        assert!(p1.iter().all(|id| known.binary_search(id).is_err()));
        assert_eq!(
            reqs[2].0,
            Kind::Probe {
                first: 1001,
                last: *p1.last().unwrap_or(&0)
            }
        );
        let p2 = &reqs[3].1;
        assert_eq!(p2[0], p1.last().map_or(0, |l| l + 1).max(1201));
        assert!(p2.windows(2).all(|w| w[1] == w[0] + 1));
    }

    #[test]
    fn ids_are_read_from_every_line_and_junk_is_skipped() {
        let mut ids = Vec::new();
        ids_of(
            "id=7 addr=a\nid=18446744073709551615 x\nid= addr\nid=99999999999999999999 x\nfoo=1\nid=12\r\n",
            &mut ids,
        );
        assert_eq!(ids, [7, u64::MAX, 12]);
    }

    #[test]
    fn reasons_have_distinct_names() {
        let mut names: Vec<_> = FullReason::ALL.iter().map(|r| r.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), FullReason::ALL.len());
    }
}
