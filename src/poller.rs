//! One background poller per target, on one held connection.
//!
//! The connection is opened once and kept: when Redis is full it refuses every new
//! connection, and this is exactly when the exporter must keep seeing it. fred's own reconnect
//! is left off (it is off by default, and its disconnect detection is not trusted, fred #307):
//! any failed or timed-out poll closes the connection, marks the target down, and the next
//! attempt reconnects after a capped, jittered exponential backoff. Polls run one after the
//! other, so a slow Redis never has two polls in flight.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fred::bytes_utils::Str;
use fred::prelude::{Builder, Client, ClientInterface, Config as FredConfig};
use fred::prelude::{ClientLike, ConfigInterface, ErrorKind as FredKind, ServerConfig};
use fred::types::{ClusterHash, CustomCommand, Value};
use tokio_util::sync::CancellationToken;

use crate::aggregate::Aggregator;
use crate::config::{Endpoint, Target};
use crate::diagnose::{self, Observation, Report};
use crate::history::{History, Sample};
use crate::info::Info;
use crate::state::{ConfigValues, ErrorKind, StageDurations, Store, TargetState};

pub use crate::client_list::CLIENT_NAME;

/// A failure of one poll or connection attempt. The message never holds a secret: fred's
/// errors do not echo credentials, and ours are built from the target label only.
#[derive(Debug, thiserror::Error)]
#[error("{stage}: {message}")]
pub struct PollError {
    pub kind: ErrorKind,
    pub stage: &'static str,
    pub message: String,
}

impl PollError {
    pub(crate) fn new(kind: ErrorKind, stage: &'static str, message: impl Into<String>) -> Self {
        Self {
            kind,
            stage,
            message: message.into(),
        }
    }
}

fn classify(stage: &'static str, e: &fred::error::Error) -> PollError {
    let msg = e.details().to_string();
    let lower = msg.to_ascii_lowercase();
    let kind = if lower.contains("max number of clients") {
        ErrorKind::Maxclients
    } else if matches!(e.kind(), FredKind::Auth)
        || lower.contains("wrongpass")
        || lower.contains("noauth")
        || lower.contains("invalid password")
        || lower.contains("invalid username-password")
    {
        ErrorKind::Auth
    } else if matches!(e.kind(), FredKind::Timeout) {
        ErrorKind::Timeout
    } else if matches!(e.kind(), FredKind::IO | FredKind::Canceled) || stage == "connect" {
        ErrorKind::Connect
    } else if matches!(e.kind(), FredKind::Protocol | FredKind::Parse) {
        ErrorKind::Protocol
    } else {
        ErrorKind::Other
    };
    PollError::new(kind, stage, format!("{:?}: {msg}", e.kind()))
}

fn protocol(stage: &'static str, message: &str) -> PollError {
    PollError::new(ErrorKind::Protocol, stage, message)
}

fn timeout_error(stage: &'static str, after: Duration) -> PollError {
    PollError::new(
        ErrorKind::Timeout,
        stage,
        format!("no reply within {after:?}"),
    )
}

/// Runs `fut` with the target's command timeout on top of fred's own, because a hung server
/// (SIGSTOP) or a proxy that stops forwarding must not stall the poller.
pub(crate) async fn bounded<T>(
    stage: &'static str,
    after: Duration,
    fut: impl std::future::Future<Output = Result<T, fred::error::Error>>,
) -> Result<T, PollError> {
    match tokio::time::timeout(after, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(classify(stage, &e)),
        Err(_) => Err(timeout_error(stage, after)),
    }
}

/// Capped exponential backoff with jitter, so that many exporters (or many targets) do not
/// reconnect to a recovering server in lock-step.
struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    const MIN: Duration = Duration::from_millis(250);

    fn new(max: Duration) -> Self {
        Self {
            next: Self::MIN,
            max: max.max(Self::MIN),
        }
    }
    fn reset(&mut self) {
        self.next = Self::MIN;
    }
    fn step(&mut self) -> Duration {
        let base = self.next;
        self.next = (self.next * 2).min(self.max);
        // Jitter in [50%, 100%] of the base, from the clock's sub-second noise: enough to
        // spread reconnects without pulling in a random number generator.
        let noise = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let frac = 0.5 + f64::from(noise % 1000) / 2000.0;
        base.mul_f64(frac)
    }
}

/// A held connection: the client and its routing task.
pub(crate) struct Conn {
    pub(crate) client: Client,
    task: tokio::task::JoinHandle<Result<(), fred::error::Error>>,
    /// Whether CLIENT NO-EVICT / NO-TOUCH were tried on this connection (see `Poller::protect`).
    protected: bool,
}

impl Conn {
    pub(crate) async fn open(target: &Target) -> Result<Conn, PollError> {
        let password = target
            .password
            .resolve()
            .map_err(|e| PollError::new(ErrorKind::Auth, "connect", e.to_string()))?;
        let mut cfg = FredConfig {
            username: target.username.clone(),
            password,
            database: target.db,
            fail_fast: true,
            ..FredConfig::default()
        };
        match &target.endpoint {
            Endpoint::Tcp { host, port, .. } => {
                let mut server = fred::prelude::Server::new(host.as_str(), *port);
                if let Some(tls) = &target.tls {
                    let rustls_cfg = crate::tls::client_config(tls).map_err(|e| {
                        PollError::new(ErrorKind::Connect, "connect", e.to_string())
                    })?;
                    cfg.tls = Some(fred::prelude::TlsConnector::from(rustls_cfg).into());
                    server.tls_server_name = tls.server_name.as_deref().map(Into::into);
                }
                cfg.server = ServerConfig::Centralized { server };
            }
            Endpoint::Unix(path) => cfg.server = ServerConfig::new_unix_socket(path.clone()),
        }
        let connect_timeout = target.connect_timeout;
        let command_timeout = target.command_timeout;
        let client = Builder::from_config(cfg)
            .with_connection_config(|c| {
                c.connection_timeout = connect_timeout;
                c.internal_command_timeout = command_timeout;
                c.max_command_attempts = 1;
            })
            .with_performance_config(|p| p.default_command_timeout = command_timeout)
            .build()
            .map_err(|e| classify("connect", &e))?;
        let task =
            match tokio::time::timeout(connect_timeout + command_timeout, client.init()).await {
                Ok(Ok(task)) => task,
                // No QUIT: fred has already stopped this client (QUIT on it would only log a
                // warning, once per reconnect attempt), and there is no connection to close.
                Ok(Err(e)) => return Err(classify("connect", &e)),
                Err(_) => {
                    close(&client, None).await;
                    return Err(timeout_error("connect", connect_timeout));
                }
            };
        let conn = Conn {
            client,
            task,
            protected: false,
        };
        // fred names its connection fred-XXXX; ours must be recognisable in CLIENT LIST. A full
        // server answers the first command with "max number of clients reached": this is
        // where that surfaces for a new connection.
        if let Err(e) = bounded(
            "connect",
            command_timeout,
            conn.client.client_setname(CLIENT_NAME),
        )
        .await
        {
            conn.close().await;
            return Err(e);
        }
        Ok(conn)
    }

    pub(crate) async fn close(mut self) {
        close(&self.client, Some(&mut self.task)).await;
    }
}

impl Drop for Conn {
    // A poll cancelled mid-flight (its target stopped by a reload, a discovery or /scrape
    // expiry) drops the connection it had taken without `close`; a dropped JoinHandle would
    // leave the routing task, and so the socket, running for good. Aborting it closes the socket.
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Closes a client without waiting on a hung server: QUIT gets a second, then the routing task
/// is aborted, which drops the socket. A routing task that has already ended (the server
/// closed the connection) gets no QUIT: there is no one to say it to, and fred would log a
/// warning for it.
async fn close(
    client: &Client,
    task: Option<&mut tokio::task::JoinHandle<Result<(), fred::error::Error>>>,
) {
    let stopped = task.as_ref().is_some_and(|t| t.is_finished());
    if !stopped {
        let _ = tokio::time::timeout(Duration::from_secs(1), client.quit()).await;
    }
    if let Some(task) = task {
        task.abort();
        let _ = task.await;
    }
}

/// A text reply (INFO, CLIENT LIST): fred's own buffer when it is valid UTF-8 (fred checked it
/// already: no copy), a lossy copy when it is not. Redis allows any byte in ACL user names and
/// error prefixes (INFO errorstats), so one such byte must not make the whole reply unreadable.
pub(crate) enum Text {
    Shared(Str),
    Lossy(String),
}

impl std::ops::Deref for Text {
    type Target = str;
    fn deref(&self) -> &str {
        match self {
            Text::Shared(s) => s,
            Text::Lossy(s) => s,
        }
    }
}

impl Text {
    pub(crate) fn into_string(self) -> String {
        match self {
            Text::Shared(s) => s.to_string(),
            Text::Lossy(s) => s,
        }
    }
}

/// The text of a string reply, and how many of its lines held bytes that are not UTF-8 (each
/// replaced by U+FFFD). Anything but a string is a protocol error.
pub(crate) fn text_reply(stage: &'static str, v: Value) -> Result<(Text, u64), PollError> {
    match v {
        Value::String(s) => Ok((Text::Shared(s), 0)),
        // fred hands over bytes exactly when they are not valid UTF-8.
        Value::Bytes(b) => {
            let invalid = b
                .split(|&c| c == b'\n')
                .filter(|line| std::str::from_utf8(line).is_err())
                .count() as u64;
            Ok((
                Text::Lossy(String::from_utf8_lossy(&b).into_owned()),
                invalid,
            ))
        }
        _ => Err(protocol(stage, "the reply is not a string")),
    }
}

/// INFO (the default sections) as text, with its count of lines that were not UTF-8.
pub(crate) async fn read_info(c: &Client, timeout: Duration) -> Result<(Text, u64), PollError> {
    text_reply(
        "info",
        bounded("info", timeout, c.info::<Value>(None)).await?,
    )
}

/// CLIENT LIST as text, with its count of lines that were not UTF-8.
pub(crate) async fn read_client_list(
    c: &Client,
    timeout: Duration,
) -> Result<(Text, u64), PollError> {
    let reply = bounded(
        "client_list",
        timeout,
        c.client_list::<Value, ()>(None, None),
    )
    .await?;
    text_reply("client_list", reply)
}

/// What one successful poll produced.
/// What one successful poll produced (public for [`Poller::fold_poll`]).
pub struct PollResult {
    pub info: Info,
    pub config: ConfigValues,
    pub config_error: Option<PollError>,
    /// `None` when CLIENT LIST was not due in this poll (see `ClientListSchedule`).
    pub clients: Option<crate::aggregate::ClientListSummary>,
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
    history: History,
    redis_cli: String,
    state: TargetState,
    conn: Option<Conn>,
    last_client_list: Option<Instant>,
    /// The chunked CLIENT LIST walk's state (src/chunked.rs).
    listing: crate::chunked::ChunkedLister,
    /// What was last logged, so that logs say each state change once, not once per poll.
    logged_up: Option<bool>,
    logged_config_unavailable: bool,
    logged_protect_error: bool,
    /// Relief jobs (src/relief), run on the held connection between polls.
    relief: Option<tokio::sync::mpsc::Receiver<crate::relief::Job>>,
}

impl Poller {
    pub fn new(
        target: Target,
        store: Arc<Store>,
        top_k: usize,
        idle_threshold_seconds: u64,
    ) -> Self {
        Self {
            redis_cli: diagnose::redis_cli_for(&target),
            listing: crate::chunked::ChunkedLister::new(target.client_list.resync),
            target,
            store,
            top_k,
            idle_threshold_seconds,
            aggregator: Aggregator::new(idle_threshold_seconds),
            history: History::new(crate::history::RETENTION),
            state: TargetState::default(),
            conn: None,
            last_client_list: None,
            logged_up: None,
            logged_config_unavailable: false,
            logged_protect_error: false,
            relief: None,
        }
    }

    /// Serves relief jobs from `queue` between polls.
    pub fn with_relief(mut self, queue: tokio::sync::mpsc::Receiver<crate::relief::Job>) -> Self {
        self.relief = Some(queue);
        self
    }

    /// Labels every series of this target with its place in a cluster or Sentinel set.
    pub fn with_topology(mut self, topology: Arc<crate::state::Topology>) -> Self {
        self.state.topology = Some(topology);
        self
    }

    /// Polls until `shutdown` is cancelled, then closes the connection.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut backoff = Backoff::new(self.target.poll_interval.min(Duration::from_secs(30)));
        self.store.publish(&self.target.label, self.state.clone());
        loop {
            let started = Instant::now();
            let ok = tokio::select! {
                _ = shutdown.cancelled() => break,
                ok = self.cycle() => ok,
            };
            if ok {
                backoff.reset();
                let next = started + self.target.poll_interval;
                if !self.keep_alive_until(next, &shutdown).await {
                    break;
                }
            } else {
                let wait = backoff.step();
                let held = self.conn.as_ref().map(|c| &c.client);
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = crate::relief::idle(wait, &mut self.relief, held) => {}
                }
            }
        }
        if let Some(conn) = self.conn.take() {
            conn.close().await;
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
                _ = crate::relief::idle(
                    ping.unwrap_or(left),
                    &mut self.relief,
                    self.conn.as_ref().map(|c| &c.client),
                ) => {}
            }
            let Some(conn) = self.conn.as_ref().filter(|_| ping.is_some()) else {
                continue;
            };
            let pong = tokio::select! {
                _ = shutdown.cancelled() => return false,
                r = bounded("ping", self.target.command_timeout, conn.client.ping::<Value>(None)) => r,
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
    /// from updating the LRU/LFU clock of keys (`CLIENT NO-TOUCH on`, 7.2+), where the server
    /// (by INFO's redis_version; Valkey reports 7.2.4 there and has both) knows them: under
    /// memory pressure `maxmemory-clients` must not evict the one connection that shows what
    /// is going on. A refusal (an ACL without `client`, a renamed CLIENT, a proxy) is logged
    /// once and otherwise ignored; only a broken connection fails the poll.
    async fn protect(&mut self, c: &Client, info: &Info) -> Result<(), PollError> {
        let Some(version) = info.version() else {
            return Ok(());
        };
        let commands = [
            ("NO-EVICT", (7, 0), "client_no_evict"),
            ("NO-TOUCH", (7, 2), "client_no_touch"),
        ];
        for (sub, since, stage) in commands {
            if version < since {
                continue;
            }
            let cmd = CustomCommand::new_static("CLIENT", ClusterHash::FirstKey, false);
            let t = self.target.command_timeout;
            match bounded(stage, t, c.custom::<Value, _>(cmd, vec![sub, "on"])).await {
                Ok(_) => {}
                Err(e) if matches!(e.kind, ErrorKind::Timeout | ErrorKind::Connect) => {
                    return Err(e)
                }
                Err(e) => {
                    if !self.logged_protect_error {
                        tracing::warn!(target_label = %self.target.label, command = %format!("CLIENT {sub} on"), error = %e, "the server refused to exempt the exporter's connection; it may be evicted under memory pressure");
                        self.logged_protect_error = true;
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
            // fred ends its routing task when the server closes the socket (CLIENT KILL, a
            // restart, the idle `timeout`); a command sent then would wait out the whole
            // command timeout and look like a hung server. Call it what it is.
            Some(c) if c.task.is_finished() || !c.client.is_connected() => {
                c.close().await;
                Err(PollError::new(
                    ErrorKind::Connect,
                    "connect",
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
                true
            }
            Err(e) => {
                self.publish_failure(e);
                false
            }
        }
    }

    async fn poll(&mut self, conn: &mut Conn) -> Result<PollResult, PollError> {
        let t = self.target.command_timeout;
        let t0 = Instant::now();
        let (info_text, info_invalid_utf8) = read_info(&conn.client, t).await?;
        let info = Info::parse(&info_text);
        drop(info_text);
        // Every Redis and Valkey INFO carries redis_version; a reply without it is not INFO
        // (a proxy answering junk, a wrong type) and must not turn into "up, 0 clients".
        if info.redis_version.is_none() {
            return Err(protocol(
                "info",
                "the INFO reply has no redis_version field",
            ));
        }
        if !conn.protected {
            // A new connection: what the chunked walk knew may describe another server.
            self.listing.reset();
            self.protect(&conn.client, &info).await?;
            conn.protected = true;
        }
        let c = &conn.client;
        let t1 = Instant::now();

        let (config, config_error) = match read_config(c, t).await {
            Ok(v) => (v, None),
            Err(e) if e.kind == ErrorKind::ConfigUnavailable => (ConfigValues::default(), Some(e)),
            Err(e) => return Err(e),
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
            // In chunks of ids where the server allows (src/chunked.rs), each parsed into the
            // aggregator as it arrives; so `client_list` includes that parse, `aggregate` the fold.
            let listed = self
                .listing
                .list(c, t, &info, &mut self.aggregator)
                .await
                .map_err(list_error)?;
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
            // Our own connection is always listed: no parseable line means this is not a
            // CLIENT LIST reply.
            if summary.connections == 0 {
                return Err(protocol(
                    "client_list",
                    "the CLIENT LIST reply has no parseable line",
                ));
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
            if !self.logged_config_unavailable {
                tracing::warn!(target_label = %self.target.label, error = %e, "CONFIG GET unavailable; using INFO's maxclients where the server reports it");
                self.logged_config_unavailable = true;
            }
        } else if self.logged_config_unavailable {
            tracing::info!(target_label = %self.target.label, "CONFIG GET available again");
            self.logged_config_unavailable = false;
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .ok()
            .map(|d| d.as_secs_f64());
        let before = self.state.diagnosis.as_ref().map(Arc::as_ptr);
        Self::fold_poll(
            &mut self.state,
            &mut self.history,
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
            self.store.relief.add_steps(&self.target.label, report);
        }
        if self.logged_up != Some(true) {
            tracing::info!(target_label = %self.target.label, "target is up");
            self.logged_up = Some(true);
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
            let sample = Sample::new(now.unwrap_or(0.0), &r.info, &clients, history.last());
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
            "Redis is full: it refused the exporter's connection (ERR max number of clients reached). The held connection was lost; the exporter retries until a slot frees.".to_string()
        } else {
            format!("{} error: {e}", e.kind.as_str())
        };
        s.diagnosis = Some(Arc::new(Report::unreachable(
            &self.target.label,
            now,
            &why,
            &self.redis_cli,
        )));
        if self.logged_up != Some(false) {
            tracing::warn!(target_label = %self.target.label, kind = e.kind.as_str(), error = %e, "target is down");
            self.logged_up = Some(false);
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

/// CONFIG GET, one parameter at a time (several in one call needs 7.0). A renamed or
/// forbidden CONFIG is not a failed poll: it is reported, and the rest goes on.
pub(crate) async fn read_config(c: &Client, timeout: Duration) -> Result<ConfigValues, PollError> {
    let params = ["maxclients", "timeout", "tcp-keepalive"];
    let mut read = [None; 3];
    for (param, slot) in params.into_iter().zip(read.iter_mut()) {
        let reply: Result<Vec<String>, PollError> =
            bounded("config", timeout, c.config_get::<Vec<String>, _>(param)).await;

        let reply = match reply {
            Ok(r) => r,
            Err(e) if e.kind == ErrorKind::Other || e.kind == ErrorKind::Auth => {
                // NOPERM (ACL), "unknown command" (renamed), or a managed service's refusal.
                return Err(PollError::new(
                    ErrorKind::ConfigUnavailable,
                    "config",
                    e.message,
                ));
            }
            Err(e) => return Err(e),
        };
        let v = match reply.as_slice() {
            // An unknown or hidden parameter is an empty reply: absent, not an error.
            [] => None,
            [name, value] if name.eq_ignore_ascii_case(param) => value.trim().parse::<f64>().ok(),
            _ => {
                return Err(protocol(
                    "config",
                    "CONFIG GET did not answer a [name, value] pair",
                ))
            }
        };
        *slot = v;
    }
    let [maxclients, timeout, tcp_keepalive] = read;
    Ok(ConfigValues {
        available: true,
        maxclients,
        timeout,
        tcp_keepalive,
    })
}

fn list_error(e: crate::chunked::ListError) -> PollError {
    use crate::chunked::ListError;
    match e {
        ListError::Redis(e) => classify("client_list", &e),
        ListError::Timeout(after) => timeout_error("client_list", after),
        ListError::NotText => protocol("client_list", "the reply is not a string"),
        ListError::Aborted => PollError::new(ErrorKind::Other, "client_list", e.to_string()),
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

    #[test]
    fn text_replies_decode_lossily_and_count_bad_lines() {
        let (t, bad) = text_reply("x", Value::String("a\nb".into())).expect("text");
        assert_eq!((&*t, bad), ("a\nb", 0));
        let bytes = fred::bytes::Bytes::from_static(b"user=ok\nuser=b\xffd\nx\xfe\xfd\n");
        let (t, bad) = text_reply("x", Value::Bytes(bytes)).expect("text");
        assert_eq!(
            (&*t, bad),
            ("user=ok\nuser=b\u{fffd}d\nx\u{fffd}\u{fffd}\n", 2)
        );
        assert_eq!(
            text_reply("x", Value::Integer(3))
                .map(|_| ())
                .map_err(|e| e.kind),
            Err(ErrorKind::Protocol)
        );
    }
}
