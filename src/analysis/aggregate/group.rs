//! What the aggregator knows about one group of connections (a source, a client name, a
//! library, a /24): the evidence a diagnosis needs, added up line by line.

use crate::redis::client_list::ClientEntry;

/// `cmd` is absent before Redis 2.8.?; count those connections under this value. A
/// connection that never ran a command shows it too (`cmd=NULL`).
pub const NO_COMMAND: &str = "NULL";

/// Sources listed in [`ClientListSummary::young_sources`](super::ClientListSummary::young_sources).
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
    /// Connections not idle for the threshold yet but untouched since they connected (see
    /// [`untouched`]): a leak in its first minute, before idle time can show it.
    pub fresh_unused: u64,
    /// The exporter's own connections (named [`CLIENT_NAME`](crate::redis::client_list::CLIENT_NAME)), and those of them idle at least
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
    pub(super) fn merge(&mut self, o: &GroupStats) {
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
        add(&mut self.fresh_unused, o.fresh_unused);
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

    /// The leak candidates, idle ones and fresh ones: idle at least the threshold, or younger
    /// and untouched since they connected.
    pub fn unused(&self) -> u64 {
        self.idle_unused().saturating_add(self.fresh_unused)
    }

    /// Connections other than the exporter's own.
    pub fn clients(&self) -> u64 {
        self.connections.saturating_sub(self.own)
    }

    pub(super) fn add(&mut self, l: &LineFacts) {
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
            self.fresh_unused += u64::from(l.untouched && !l.is_idle && !l.stalled);
            self.oldest_age_seconds = self.oldest_age_seconds.max(l.age);
        }
    }
}

/// The facts of one line that every group it belongs to adds up.
pub(super) struct LineFacts {
    /// The exporter's own connection.
    pub(super) own: bool,
    pub(super) age: u64,
    pub(super) is_idle: bool,
    pub(super) idle: u64,
    pub(super) memory: u64,
    pub(super) no_command: bool,
    pub(super) pubsub: bool,
    pub(super) subscriptions: u64,
    pub(super) blocked: bool,
    pub(super) output: u64,
    pub(super) stalled: bool,
    pub(super) young: bool,
    /// See [`untouched`].
    pub(super) untouched: bool,
}

/// Whether a connection has done nothing since it connected: at least 2 s old (a per-request
/// client is younger), neither pub/sub nor blocked, and it never ran a command (`cmd=NULL`),
/// or its last command came within a second of connecting (the handshake: AUTH, HELLO,
/// SETNAME, SETINFO) and it ran few (`tot-cmds` at most 8, where the server reports it).
pub fn untouched(e: &ClientEntry<'_>, pubsub: bool, blocked: bool) -> bool {
    let (Some(age), Some(idle)) = (e.age, e.idle) else {
        return false;
    };
    if age < 2 || pubsub || blocked {
        return false;
    }
    matches!(e.cmd, Some(NO_COMMAND)) || (idle + 1 >= age && e.tot_cmds.is_none_or(|n| n <= 8))
}
