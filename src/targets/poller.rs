//! One background poller per target: the session on one held connection (reconnecting with a
//! capped, jittered backoff after any failed or timed-out poll, PINGing between polls) and the
//! per-poll pipeline (INFO, CONFIG, CLIENT LIST when due, aggregation, diagnosis, publish).
//! Polls run one after the other, so a slow Redis never has two polls in flight. How to talk
//! to Redis is src/redis/connection.rs; this file decides when and what to do with the answers.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio_util::sync::CancellationToken;

use crate::analysis::aggregate::Aggregator;
use crate::analysis::history::{History, Sample};
use crate::config::Target;
use crate::diagnose::{self, Observation, Report};
use crate::redis::commands::Command;
use crate::redis::connection::{
    no_client_in_client_list, observe_config, observe_info, recv_config, recv_info,
    send_info_and_config, Backoff, ConfigValues, Conn, ErrorKind, PollError, Stage,
};
use crate::redis::info::Info;
use crate::targets::state::{StageDurations, Store, TargetState};
use crate::targets::Logged;

/// What one successful poll produced (public for [`Poller::fold_poll`]).
pub struct PollResult {
    pub info: Info,
    pub config: ConfigValues,
    pub config_error: Option<PollError>,
    /// `None` when CLIENT LIST was not due in this poll (see `ClientListSchedule`).
    pub clients: Option<crate::analysis::aggregate::ClientListSummary>,
    /// Lines that were not UTF-8, in INFO and in CLIENT LIST.
    pub invalid_utf8: [u64; 2],
    pub durations: StageDurations,
}

pub struct Poller {
    target: Target,
    store: Arc<Store>,
    top_k: usize,
    idle_threshold_seconds: u64,
    aggregator: Aggregator,
    /// Shared with the published state (`/diagnose` draws it): one copy while nothing changes,
    /// copied on write at the next poll while the store still serves the last one.
    history: Arc<History>,
    redis_cli: String,
    state: TargetState,
    conn: Option<Conn>,
    last_client_list: Option<Instant>,
    /// The chunked CLIENT LIST walk's state (src/redis/chunked.rs).
    listing: crate::redis::chunked::ChunkedLister,
    /// What was last logged, so that logs say each state change once, not once per poll.
    logged_up: Logged<bool>,
    logged_config_unavailable: Logged<bool>,
    /// A refused CLIENT NO-EVICT/NO-TOUCH is said once for the poller's life.
    logged_protect_error: Logged<bool>,
    /// Jobs (relief's, src/relief), run on the held connection between polls.
    relief: Option<tokio::sync::mpsc::Receiver<crate::targets::jobs::Job>>,
    /// Whether a poll ever succeeded: a full server that refuses the first connection did not
    /// take a held one away.
    ever_up: bool,
    /// maxclients as the last successful poll saw it (the refusal of a full server says none).
    last_maxclients: Option<f64>,
}

/// The shortest wait between two connection attempts while Redis refuses them as full: each
/// attempt is one more `rejected_connections` on a server that has no slot to give.
pub const FULL_RETRY_MIN: Duration = Duration::from_secs(5);

impl Poller {
    pub fn new(
        target: Target,
        store: Arc<Store>,
        top_k: usize,
        idle_threshold_seconds: u64,
    ) -> Self {
        let poll_interval = target.poll_interval;
        Self {
            redis_cli: diagnose::redis_cli_for(&target),
            listing: crate::redis::chunked::ChunkedLister::new(target.client_list.resync),
            target,
            store,
            top_k,
            idle_threshold_seconds,
            aggregator: Aggregator::new(idle_threshold_seconds),
            history: Arc::new(History::new(crate::analysis::history::RETENTION)),
            state: TargetState {
                poll_interval,
                ..TargetState::default()
            },
            conn: None,
            last_client_list: None,
            logged_up: Logged::default(),
            logged_config_unavailable: Logged::assuming(false),
            logged_protect_error: Logged::assuming(false),
            relief: None,
            ever_up: false,
            last_maxclients: None,
        }
    }

    /// Serves relief jobs from `queue` between polls.
    pub fn with_relief(
        mut self,
        queue: tokio::sync::mpsc::Receiver<crate::targets::jobs::Job>,
    ) -> Self {
        self.relief = Some(queue);
        self
    }

    /// Starts from `history` instead of an empty one: tests/memory.rs fills an hour of it to
    /// measure what a target holds after an hour, without waiting an hour.
    #[doc(hidden)]
    pub fn with_history(mut self, history: History) -> Self {
        self.history = Arc::new(history);
        self
    }

    /// Labels every series of this target with its place in a cluster or Sentinel set.
    pub fn with_topology(mut self, topology: Arc<crate::targets::state::Topology>) -> Self {
        self.state.topology = Some(topology);
        self
    }

    /// Polls until `shutdown` is cancelled, then closes the connection.
    pub fn run(self, shutdown: CancellationToken) -> impl std::future::Future<Output = ()> + Send {
        // The poller on the heap and the task holding a pointer: an `async fn` taking `self`
        // keeps two copies of it in its future (the argument and the local, ~3.6 kB each).
        Box::new(self).run_boxed(shutdown)
    }

    async fn run_boxed(mut self: Box<Self>, shutdown: CancellationToken) {
        let mut backoff = Backoff::new(self.target.poll_interval.min(Duration::from_secs(30)));
        self.store.publish(&self.target.label, self.state.clone());
        loop {
            let started = Instant::now();
            // The poll and the wait between polls are boxed, each for as long as it runs: inline,
            // the task would hold the largest of them (the poll's) for good, also while it
            // only waits (issue 20).
            let ok = tokio::select! {
                _ = shutdown.cancelled() => break,
                ok = Box::pin(self.cycle()) => ok,
            };
            if ok {
                backoff.reset();
                let next = started + self.target.poll_interval;
                if !Box::pin(self.keep_alive_until(next, &shutdown)).await {
                    break;
                }
            } else {
                let mut wait = backoff.step();
                if self.state.last_error == Some(ErrorKind::Maxclients) {
                    wait = wait.max(FULL_RETRY_MIN);
                }
                let held = self.conn.as_mut();
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = Box::pin(crate::targets::jobs::idle(wait, &mut self.relief, held)) => {}
                }
            }
        }
        if let Some(conn) = self.conn.take() {
            Box::pin(conn.close()).await;
        }
    }

    /// Waits for the next poll at `next`, PINGing the held connection meanwhile so that the
    /// server's idle `timeout` never closes it: a slot given up between polls goes to whoever
    /// connects next, and on a full server that is a leaking client, not us. Returns early,
    /// for the next poll to find out what happened, when a PING fails; returns false on
    /// shutdown.
    async fn keep_alive_until(&mut self, next: Instant, shutdown: &CancellationToken) -> bool {
        let every = keepalive_interval(&self.state.config);
        loop {
            let left = next.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return true;
            }
            let ping = every.filter(|e| *e < left && self.conn.is_some());
            tokio::select! {
                _ = shutdown.cancelled() => return false,
                // Relief jobs (src/relief) run on the held connection while we wait.
                _ = Box::pin(crate::targets::jobs::idle(
                    ping.unwrap_or(left),
                    &mut self.relief,
                    self.conn.as_mut(),
                )) => {}
            }
            let Some(conn) = self.conn.as_mut().filter(|_| ping.is_some()) else {
                continue;
            };
            let pong = tokio::select! {
                _ = shutdown.cancelled() => return false,
                r = conn.run(Stage::Ping, Command::Ping) => r,
            };
            match pong {
                Ok(_) => {}
                // Broken or hung: the next poll finds out which, and says so.
                Err(e) if matches!(e.kind, ErrorKind::Timeout | ErrorKind::Connect) => {
                    tracing::debug!(target_label = %self.target.label, error = %e, "keepalive PING failed; polling now");
                    return true;
                }
                // An error reply (an ACL without +ping) still reached the server, and a command
                // Redis read, refused or not, resets its idle clock: the connection is kept.
                Err(_) => {}
            }
        }
    }

    /// Exempts the held connection from client eviction (`CLIENT NO-EVICT on`, Redis 7.0+) and
    /// from updating the LRU/LFU clock of keys (`CLIENT NO-TOUCH on`, 7.2+), and names its
    /// library (`CLIENT SETINFO LIB-NAME/LIB-VER`, 7.2+), where the server
    /// (by INFO's redis_version; Valkey reports 7.2.4 there and has both) knows them: under
    /// memory pressure `maxmemory-clients` must not evict the one connection that shows what
    /// is going on. A refusal (an ACL without `client`, a renamed CLIENT, a proxy) is logged
    /// once and otherwise ignored; only a broken connection fails the poll.
    async fn protect(&mut self, c: &mut Conn, info: &Info) -> Result<(), PollError> {
        let Some(version) = info.version() else {
            return Ok(());
        };
        // The exporter names its library too (CLIENT SETINFO, 7.2+): it shows under its own
        // name in redis_client_connections_by_library, not as `unset`. Sent only where the
        // version has it, so older servers see no error and nothing is logged there.
        let commands: [(Command, (u32, u32), Stage); 4] = [
            (Command::ClientNoEvict, (7, 0), Stage::ClientNoEvict),
            (Command::ClientNoTouch, (7, 2), Stage::ClientNoTouch),
            (
                Command::ClientSetinfo {
                    attribute: "LIB-NAME",
                    value: crate::redis::client_list::CLIENT_NAME,
                },
                (7, 2),
                Stage::ClientSetinfo,
            ),
            (
                Command::ClientSetinfo {
                    attribute: "LIB-VER",
                    value: env!("CARGO_PKG_VERSION"),
                },
                (7, 2),
                Stage::ClientSetinfo,
            ),
        ];
        for (cmd, since, stage) in commands {
            if version < since {
                continue;
            }
            match c.run(stage, cmd).await {
                Ok(_) => {}
                Err(e) if matches!(e.kind, ErrorKind::Timeout | ErrorKind::Connect) => {
                    return Err(e)
                }
                Err(e) => {
                    if self.logged_protect_error.changed(true) {
                        let command = cmd.spelled();
                        if matches!(cmd, Command::ClientSetinfo { .. }) {
                            tracing::info!(target_label = %self.target.label, command = %command, error = %e, "the server refused CLIENT SETINFO; the exporter's connection shows as library unset");
                        } else {
                            tracing::warn!(target_label = %self.target.label, command = %command, error = %e, "the server refused to exempt the exporter's connection; it may be evicted under memory pressure");
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// One poll: connect if needed, run the commands, publish. Returns whether it succeeded.
    async fn cycle(&mut self) -> bool {
        self.state.counters.polls += 1;
        let result = match self.conn.take() {
            // A keepalive PING or a relief job found the connection closed by the server
            // (CLIENT KILL, a restart, the idle `timeout`) or out of step. Call it what it is.
            Some(c) if c.broken() => {
                c.close().await;
                Err(PollError::new(
                    ErrorKind::Connect,
                    Stage::Connect,
                    "the server closed the connection",
                ))
            }
            Some(c) => Ok(c),
            None => Conn::open(&self.target).await,
        };
        let result = match result {
            Ok(mut conn) => {
                let r = self.poll(&mut conn).await;
                match r {
                    Ok(v) => {
                        self.conn = Some(conn);
                        Ok(v)
                    }
                    Err(e) => {
                        conn.close().await;
                        Err(e)
                    }
                }
            }
            Err(e) => Err(e),
        };
        match result {
            Ok(r) => {
                self.publish_success(r);
                self.ever_up = true;
                self.last_maxclients = self
                    .state
                    .config
                    .effective_maxclients(self.state.info.as_ref())
                    .map(|(m, _)| m);
                true
            }
            Err(e) => {
                self.publish_failure(e);
                false
            }
        }
    }

    async fn poll(&mut self, conn: &mut Conn) -> Result<PollResult, PollError> {
        let t0 = Instant::now();
        // On a connection already set up, INFO and CONFIG go in one write; a new one is set up
        // (CLIENT NO-EVICT, ...) from its INFO first.
        let pipelined = conn.protected;
        let (info, info_invalid_utf8) = if pipelined {
            send_info_and_config(conn).await?;
            recv_info(conn).await?
        } else {
            observe_info(conn).await?
        };
        if !conn.protected {
            // A new connection: what the chunked walk knew may describe another server.
            self.listing.reset();
            self.protect(conn, &info).await?;
            conn.protected = true;
        }
        let c = conn;
        let t1 = Instant::now();

        let (config, config_error) = if pipelined {
            recv_config(c).await?
        } else {
            observe_config(c).await?
        };
        let t2 = Instant::now();

        let every = self.target.client_list.interval(
            self.target.poll_interval,
            info.connected_clients.unwrap_or(0.0),
            self.listing.chunked_for(&info),
        );
        // Half a poll interval of slack, so that a poll arriving a few ms early still counts.
        let due = self
            .last_client_list
            .is_none_or(|at| at.elapsed() + self.target.poll_interval / 2 >= every);
        let mut client_list_invalid_utf8 = 0;
        let (clients, t3) = if due {
            // In chunks of ids where the server allows (src/redis/chunked.rs), each parsed into the
            // aggregator as it arrives; so `client_list` includes that parse, `aggregate` the fold.
            // Who each source is, from the identity layer's last published snapshot (src/identity;
            // none unless configured): a read of an `Arc`, never a wait on its sources.
            let now_unix = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            self.aggregator
                .set_identity(self.store.identity.current(), now_unix);
            let listed = self.listing.list(c, &info, &mut self.aggregator).await?;
            client_list_invalid_utf8 = listed.invalid_utf8_lines;
            let counters = &mut self.state.counters;
            counters.client_list_commands += listed.commands;
            counters.client_list_last_commands = listed.commands;
            if let Some(r) = listed.full {
                counters.client_list_full[r as usize] += 1;
            }
            if let Some(r) = listed.sweep {
                counters.client_list_sweeps[r as usize] += 1;
            }
            let t3 = Instant::now();
            self.last_client_list = Some(t2);
            let summary = self.aggregator.finish(self.top_k);
            // Addresses no source named, for reverse DNS (kept only when it is configured).
            if !summary.by_workload.is_empty() {
                let keys = summary.by_workload.iter().map(|(k, _)| k.as_str());
                self.store.identity.want_names(keys);
            }
            // Our own connection is always listed: no parseable line means this is not a
            // CLIENT LIST reply.
            if summary.connections == 0 {
                return Err(no_client_in_client_list());
            }
            (Some(summary), t3)
        } else {
            (None, t2)
        };
        let t4 = Instant::now();
        Ok(PollResult {
            info,
            config,
            config_error,
            clients,
            invalid_utf8: [info_invalid_utf8, client_list_invalid_utf8],
            durations: StageDurations {
                info: (t1 - t0).as_secs_f64(),
                config: (t2 - t1).as_secs_f64(),
                client_list: (t3 - t2).as_secs_f64(),
                aggregate: (t4 - t3).as_secs_f64(),
                total: (t4 - t0).as_secs_f64(),
            },
        })
    }

    fn publish_success(&mut self, r: PollResult) {
        if let Some(e) = &r.config_error {
            if self.logged_config_unavailable.changed(true) {
                tracing::warn!(target_label = %self.target.label, error = %e, "CONFIG GET unavailable; using INFO's maxclients where the server reports it");
            }
        } else if self.logged_config_unavailable.changed(false) {
            tracing::info!(target_label = %self.target.label, "CONFIG GET available again");
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .ok()
            .map(|d| d.as_secs_f64());
        let before = self.state.diagnosis.as_ref().map(Arc::as_ptr);
        // Our state's reference dropped first, so that only the store's can force a copy.
        self.state.history = None;
        let history = Arc::make_mut(&mut self.history);
        Self::fold_poll(
            &mut self.state,
            history,
            r,
            now,
            &self.target.label,
            self.idle_threshold_seconds,
            &self.redis_cli,
        );
        // The relieve command for each finding, where relief is enabled for this target: only
        // on a report this poll built (a poll without CLIENT LIST keeps the last one, whose
        // steps are there already), which nothing else holds yet.
        let rebuilt = self.state.diagnosis.as_ref().map(Arc::as_ptr) != before;
        if let Some(report) = self
            .state
            .diagnosis
            .as_mut()
            .filter(|_| rebuilt)
            .and_then(Arc::get_mut)
        {
            self.store.actions.add_steps(&self.target.label, report);
            // A source of names that is down: the report says why culprits are addresses.
            if let Some(note) = self.store.identity.degraded() {
                report.headline.push(' ');
                report.headline.push_str(&note);
            }
        }
        self.state.history = Some(Arc::clone(&self.history));
        if self.logged_up.changed(true) {
            // The product and its own version (Valkey's redis_version says 7.2.4 whatever it is).
            let (server, version) = self
                .state
                .info
                .as_ref()
                .and_then(|i| i.server())
                .unwrap_or(("?", "?"));
            tracing::info!(target_label = %self.target.label, server, version, "target is up");
        }
        self.store.publish(&self.target.label, self.state.clone());
    }

    /// Folds one successful poll into a target's state and history and runs the diagnosis: all
    /// a poll changes in what `/metrics` and `/diagnose` serve. Pure (no I/O, no clock: `now`
    /// is the poll's Unix time, no log), so tests/golden.rs builds the daemon's exact outputs
    /// from captured replies through it.
    pub fn fold_poll(
        s: &mut TargetState,
        history: &mut History,
        r: PollResult,
        now: Option<f64>,
        target_label: &str,
        idle_threshold_seconds: u64,
        redis_cli: &str,
    ) {
        s.up = true;
        s.counters.info_invalid_utf8_lines += r.invalid_utf8[0];
        s.counters.client_list_invalid_utf8_lines += r.invalid_utf8[1];
        s.counters.label_values_truncated += r.info.truncated_values;
        if let Some(clients) = r.clients {
            s.counters.client_list_lines += clients.connections + clients.parse_errors;
            s.counters.parse_errors += clients.parse_errors;
            s.counters.label_values_truncated += clients.truncated_values;
            let maxclients = r.config.effective_maxclients(Some(&r.info)).map(|(m, _)| m);
            let sample = Sample::observe(
                now.unwrap_or(0.0),
                &r.info,
                maxclients,
                &clients,
                history.last(),
            );
            history.push(sample);
            s.clients = Some(Arc::new(clients));
            s.client_list_timestamp = now;
            s.durations.client_list = r.durations.client_list;
            s.durations.aggregate = r.durations.aggregate;
        }
        if r.config_error.is_some() {
            s.counters.errors[ErrorKind::ConfigUnavailable as usize] += 1;
        }
        s.info = Some(r.info);
        s.config = r.config;
        s.durations.info = r.durations.info;
        s.durations.config = r.durations.config;
        s.durations.total = r.durations.total;
        s.last_success = now;
        if let (Some(info), Some(clients)) = (&s.info, &s.clients) {
            let obs = Observation {
                info,
                config: &s.config,
                clients,
                idle_threshold_seconds,
            };
            let report = diagnose::diagnose(
                target_label,
                &obs,
                history.samples(),
                now.unwrap_or(0.0),
                redis_cli,
            );
            s.diagnosis = Some(Arc::new(report));
        }
    }

    fn publish_failure(&mut self, e: PollError) {
        let s = &mut self.state;
        s.up = false;
        s.counters.errors[e.kind as usize] += 1;
        s.last_error = Some(e.kind);
        // The last snapshot would be served as if current; drop it (counters stay).
        s.info = None;
        s.clients = None;
        self.last_client_list = None;
        s.config = ConfigValues::default();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let why = if e.kind == ErrorKind::Maxclients {
            let limit = self.last_maxclients.map_or(
                "maxclients not known yet: no connection has read it".to_string(),
                |m| format!("maxclients {m:.0}"),
            );
            let retry = FULL_RETRY_MIN.as_secs();
            if self.ever_up {
                format!("Redis is full ({limit}): it refused the exporter's new connection (ERR max number of clients reached) after the held one was closed. The exporter retries at most once every {retry} s (each attempt is one more rejected_connections) until a slot frees.")
            } else {
                format!("Redis refused the exporter's first connection: it is full ({limit}; ERR max number of clients reached). The exporter retries at most once every {retry} s (each attempt is one more rejected_connections) until a slot frees.")
            }
        } else {
            format!("{} error: {e}", e.kind.as_str())
        };
        s.diagnosis = Some(Arc::new(Report::unreachable(
            &self.target.label,
            now,
            &why,
            &self.redis_cli,
        )));
        if self.logged_up.changed(false) {
            tracing::warn!(target_label = %self.target.label, kind = e.kind.as_str(), error = %e, "target is down");
        }
        self.store.publish(&self.target.label, s.clone());
    }
}

/// The shortest keepalive interval, whatever `timeout` a server reports.
const KEEPALIVE_MIN: Duration = Duration::from_millis(250);
/// The keepalive interval when the server's `timeout` is unknown (CONFIG unavailable): short
/// enough for any `timeout` of 2 s or more (Redis closes a client idle for more than
/// `timeout` whole seconds), and a PING a second costs the server next to nothing.
pub const KEEPALIVE_UNKNOWN_TIMEOUT: Duration = Duration::from_secs(1);

/// How often the held connection must show activity so that the server's idle `timeout`
/// never closes it: half the timeout (Redis measures idleness in whole seconds), none when
/// the server never closes idle connections (`timeout 0`).
fn keepalive_interval(config: &ConfigValues) -> Option<Duration> {
    match config.timeout {
        Some(0.0) => None,
        Some(t) if t > 0.0 => Some(
            Duration::try_from_secs_f64(t / 2.0)
                .map_or(KEEPALIVE_UNKNOWN_TIMEOUT, |d| d.max(KEEPALIVE_MIN)),
        ),
        // Unknown (CONFIG forbidden or renamed, the parameter hidden) or nonsense.
        _ => Some(KEEPALIVE_UNKNOWN_TIMEOUT),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_timeout(timeout: Option<f64>) -> ConfigValues {
        ConfigValues {
            available: timeout.is_some(),
            timeout,
            ..ConfigValues::default()
        }
    }

    #[test]
    fn keepalive_stays_under_the_servers_timeout() {
        let every = |t| keepalive_interval(&with_timeout(t));
        assert_eq!(every(Some(0.0)), None);
        assert_eq!(every(Some(1.0)), Some(Duration::from_millis(500)));
        assert_eq!(every(Some(300.0)), Some(Duration::from_secs(150)));
        assert_eq!(every(Some(0.1)), Some(KEEPALIVE_MIN));
        // Unknown or nonsense: the conservative interval, never a panic.
        for t in [
            None,
            Some(f64::NAN),
            Some(-1.0),
            Some(f64::INFINITY),
            Some(1e300),
        ] {
            assert_eq!(every(t), Some(KEEPALIVE_UNKNOWN_TIMEOUT), "{t:?}");
        }
    }
}
