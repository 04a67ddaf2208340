//! The connection to one Redis: opening it (TLS, AUTH, our client name), bounding every command
//! by the target's timeout, classifying failures, the reconnect backoff, and reading the replies
//! every observation needs (INFO, CONFIG GET, CLIENT LIST) with their protocol checks. Used by
//! the pollers, discovery, the one-shot `diagnose` command and relief alike: there is one way to
//! talk to Redis.
//!
//! The connection is opened once and kept by its owner: when Redis is full it refuses every new
//! connection, and this is exactly when the exporter must keep seeing it. fred's own reconnect
//! is left off (it is off by default, and its disconnect detection is not trusted, fred #307).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fred::bytes_utils::Str;
use fred::prelude::{Builder, Client, ClientInterface, Config as FredConfig};
use fred::prelude::{ClientLike, ConfigInterface, ErrorKind as FredKind, ServerConfig};
use fred::types::Value;

use crate::config::{Endpoint, Target};
use crate::redis::client_list::CLIENT_NAME;
use crate::redis::info::extra::ClientMemoryLimit;
use crate::redis::info::Info;

/// Kinds of poll error, as the `kind` label of `redis_clients_exporter_poll_errors_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    Connect = 0,
    Timeout = 1,
    Auth = 2,
    Maxclients = 3,
    ConfigUnavailable = 4,
    Protocol = 5,
    Other = 6,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 7] = [
        Self::Connect,
        Self::Timeout,
        Self::Auth,
        Self::Maxclients,
        Self::ConfigUnavailable,
        Self::Protocol,
        Self::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::Timeout => "timeout",
            Self::Auth => "auth",
            Self::Maxclients => "maxclients",
            Self::ConfigUnavailable => "config_unavailable",
            Self::Protocol => "protocol",
            Self::Other => "other",
        }
    }
}

/// Values read with CONFIG GET; all `None` when CONFIG is renamed or forbidden.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConfigValues {
    pub available: bool,
    pub maxclients: Option<f64>,
    pub timeout: Option<f64>,
    pub tcp_keepalive: Option<f64>,
    /// `maxmemory-clients` (Redis 7.0+, Valkey); `None` before 7.0 or when unreadable.
    pub maxmemory_clients: Option<ClientMemoryLimit>,
}

/// Where the effective maxclients was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MaxclientsSource {
    Config,
    Info,
}

impl MaxclientsSource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Config => "config",
            Self::Info => "info",
        }
    }
}

impl ConfigValues {
    /// The effective maxclients and where it came from: CONFIG GET's value wins (it is what
    /// the server enforces now), INFO's `maxclients` stands in when CONFIG is unavailable
    /// (renamed, forbidden); `None` when neither says. The one place this rule is written.
    pub fn effective_maxclients(&self, info: Option<&Info>) -> Option<(f64, MaxclientsSource)> {
        match (self.maxclients, info.and_then(|i| i.maxclients)) {
            (Some(v), _) => Some((v, MaxclientsSource::Config)),
            (None, Some(v)) => Some((v, MaxclientsSource::Info)),
            (None, None) => None,
        }
    }
}

/// The step of a poll or connection attempt that failed: the prefix of a [`PollError`]'s text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Connect,
    Info,
    Config,
    ClientList,
    Ping,
    ClientNoEvict,
    ClientNoTouch,
    ClientSetinfo,
    ClientId,
    Discovery,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::Info => "info",
            Self::Config => "config",
            Self::ClientList => "client_list",
            Self::Ping => "ping",
            Self::ClientNoEvict => "client_no_evict",
            Self::ClientNoTouch => "client_no_touch",
            Self::ClientSetinfo => "client_setinfo",
            Self::ClientId => "client_id",
            Self::Discovery => "discovery",
        }
    }
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failure of one poll or connection attempt. The message never holds a secret: fred's
/// errors do not echo credentials, and ours are built from the target label only.
#[derive(Debug, thiserror::Error)]
#[error("{stage}: {message}")]
pub struct PollError {
    pub kind: ErrorKind,
    pub stage: Stage,
    pub message: String,
}

impl PollError {
    pub(crate) fn new(kind: ErrorKind, stage: Stage, message: impl Into<String>) -> Self {
        Self {
            kind,
            stage,
            message: message.into(),
        }
    }
}

pub(crate) fn classify(stage: Stage, e: &fred::error::Error) -> PollError {
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
    } else if matches!(e.kind(), FredKind::IO | FredKind::Canceled) || stage == Stage::Connect {
        ErrorKind::Connect
    } else if matches!(e.kind(), FredKind::Protocol | FredKind::Parse) {
        ErrorKind::Protocol
    } else {
        ErrorKind::Other
    };
    PollError::new(kind, stage, format!("{:?}: {msg}", e.kind()))
}

pub(crate) fn protocol(stage: Stage, message: &str) -> PollError {
    PollError::new(ErrorKind::Protocol, stage, message)
}

pub(crate) fn timeout_error(stage: Stage, after: Duration) -> PollError {
    PollError::new(
        ErrorKind::Timeout,
        stage,
        format!("no reply within {after:?}"),
    )
}

/// Runs `fut` with the target's command timeout on top of fred's own, because a hung server
/// (SIGSTOP) or a proxy that stops forwarding must not stall the poller.
pub(crate) async fn bounded<T>(
    stage: Stage,
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
pub(crate) struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    const MIN: Duration = Duration::from_millis(250);

    pub(crate) fn new(max: Duration) -> Self {
        Self {
            next: Self::MIN,
            max: max.max(Self::MIN),
        }
    }
    pub(crate) fn reset(&mut self) {
        self.next = Self::MIN;
    }
    pub(crate) fn step(&mut self) -> Duration {
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
    pub(crate) task: tokio::task::JoinHandle<Result<(), fred::error::Error>>,
    /// Whether CLIENT NO-EVICT / NO-TOUCH were tried on this connection (see `Poller::protect`).
    pub(crate) protected: bool,
}

impl Conn {
    pub(crate) async fn open(target: &Target) -> Result<Conn, PollError> {
        let password = target
            .password
            .resolve_async()
            .await
            .map_err(|e| PollError::new(ErrorKind::Auth, Stage::Connect, e.to_string()))?;
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
                    let rustls_cfg = crate::redis::tls::client_config(tls).map_err(|e| {
                        PollError::new(ErrorKind::Connect, Stage::Connect, e.to_string())
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
            .map_err(|e| classify(Stage::Connect, &e))?;
        let task =
            match tokio::time::timeout(connect_timeout + command_timeout, client.init()).await {
                Ok(Ok(task)) => task,
                // No QUIT: fred has already stopped this client (QUIT on it would only log a
                // warning, once per reconnect attempt), and there is no connection to close.
                Ok(Err(e)) => return Err(classify(Stage::Connect, &e)),
                Err(_) => {
                    close(&client, None).await;
                    return Err(timeout_error(Stage::Connect, connect_timeout));
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
            Stage::Connect,
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

impl Text {
    /// The text of a string reply and how many of its lines held bytes that are not UTF-8
    /// (each replaced by U+FFFD); the value itself back when it is not a string.
    pub(crate) fn of(v: Value) -> Result<(Text, u64), Value> {
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
            other => Err(other),
        }
    }
}

/// The text of a string reply, and how many of its lines held bytes that are not UTF-8 (each
/// replaced by U+FFFD). Anything but a string is a protocol error.
pub(crate) fn text_reply(stage: Stage, v: Value) -> Result<(Text, u64), PollError> {
    Text::of(v).map_err(|_| protocol(stage, "the reply is not a string"))
}

/// INFO (the default sections) as text, with its count of lines that were not UTF-8.
pub(crate) async fn read_info(c: &Client, timeout: Duration) -> Result<(Text, u64), PollError> {
    text_reply(
        Stage::Info,
        bounded(Stage::Info, timeout, c.info::<Value>(None)).await?,
    )
}

/// CLIENT LIST as text, with its count of lines that were not UTF-8.
pub(crate) async fn read_client_list(
    c: &Client,
    timeout: Duration,
) -> Result<(Text, u64), PollError> {
    let reply = bounded(
        Stage::ClientList,
        timeout,
        c.client_list::<Value, ()>(None, None),
    )
    .await?;
    text_reply(Stage::ClientList, reply)
}

/// CONFIG GET, one parameter at a time (several in one call needs 7.0). A renamed or
/// forbidden CONFIG is not a failed poll: it is reported, and the rest goes on.
pub(crate) async fn read_config(c: &Client, timeout: Duration) -> Result<ConfigValues, PollError> {
    let timeout_d = timeout;
    let params = ["maxclients", "timeout", "tcp-keepalive"];
    let mut read = [None; 3];
    for (param, slot) in params.into_iter().zip(read.iter_mut()) {
        let reply: Result<Vec<String>, PollError> = bounded(
            Stage::Config,
            timeout,
            c.config_get::<Vec<String>, _>(param),
        )
        .await;

        let reply = match reply {
            Ok(r) => r,
            Err(e) if e.kind == ErrorKind::Other || e.kind == ErrorKind::Auth => {
                // NOPERM (ACL), "unknown command" (renamed), or a managed service's refusal.
                return Err(PollError::new(
                    ErrorKind::ConfigUnavailable,
                    Stage::Config,
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
                    Stage::Config,
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
        maxmemory_clients: read_maxmemory_clients(c, timeout_d).await?,
    })
}

/// `CONFIG GET maxmemory-clients` (Redis 7.0+, Valkey; an empty reply before): a value that is
/// not a size or a percentage, or a refusal of this one parameter, leaves it absent (the
/// three parameters above decided whether CONFIG is available at all).
async fn read_maxmemory_clients(
    c: &Client,
    timeout: Duration,
) -> Result<Option<ClientMemoryLimit>, PollError> {
    let param = "maxmemory-clients";
    match bounded(
        Stage::Config,
        timeout,
        c.config_get::<Vec<String>, _>(param),
    )
    .await
    {
        Ok(r) => Ok(match r.as_slice() {
            [name, value] if name.eq_ignore_ascii_case(param) => ClientMemoryLimit::parse(value),
            _ => None,
        }),
        Err(e) if matches!(e.kind, ErrorKind::Timeout | ErrorKind::Connect) => Err(e),
        Err(_) => Ok(None),
    }
}

/// INFO (the default sections), parsed, with its count of lines that were not UTF-8. Every
/// Redis and Valkey INFO carries `redis_version`; a reply without it is not INFO (a proxy
/// answering junk, a wrong type) and must not turn into "up, 0 clients".
pub(crate) async fn observe_info(c: &Client, timeout: Duration) -> Result<(Info, u64), PollError> {
    let (text, invalid_utf8) = read_info(c, timeout).await?;
    let info = Info::parse(&text);
    if info.redis_version.is_none() {
        return Err(protocol(
            Stage::Info,
            "the INFO reply has no redis_version field",
        ));
    }
    Ok((info, invalid_utf8))
}

/// CONFIG GET's values; when CONFIG is unavailable (renamed, forbidden), the empty values and
/// why, for the caller to report: the rest of the observation goes on without them.
pub(crate) async fn observe_config(
    c: &Client,
    timeout: Duration,
) -> Result<(ConfigValues, Option<PollError>), PollError> {
    match read_config(c, timeout).await {
        Ok(v) => Ok((v, None)),
        Err(e) if e.kind == ErrorKind::ConfigUnavailable => Ok((ConfigValues::default(), Some(e))),
        Err(e) => Err(e),
    }
}

/// A CLIENT LIST reply without one parseable line. The exporter's own connection is always
/// listed, so this is not a CLIENT LIST reply (a proxy, a wrong type).
pub(crate) fn no_client_in_client_list() -> PollError {
    protocol(
        Stage::ClientList,
        "the CLIENT LIST reply has no parseable line",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_replies_decode_lossily_and_count_bad_lines() {
        let (t, bad) = text_reply(Stage::Info, Value::String("a\nb".into())).expect("text");
        assert_eq!((&*t, bad), ("a\nb", 0));
        let bytes = fred::bytes::Bytes::from_static(b"user=ok\nuser=b\xffd\nx\xfe\xfd\n");
        let (t, bad) = text_reply(Stage::Info, Value::Bytes(bytes)).expect("text");
        assert_eq!(
            (&*t, bad),
            ("user=ok\nuser=b\u{fffd}d\nx\u{fffd}\u{fffd}\n", 2)
        );
        assert_eq!(
            text_reply(Stage::Info, Value::Integer(3))
                .map(|_| ())
                .map_err(|e| e.kind),
            Err(ErrorKind::Protocol)
        );
    }
}
