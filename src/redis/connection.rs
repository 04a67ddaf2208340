//! The connection to one Redis: opening it (TLS, AUTH, our client name), bounding every command
//! by the target's timeout, classifying failures, the reconnect backoff, and reading the replies
//! every observation needs (INFO, CONFIG GET, CLIENT LIST) with their protocol checks. Used by
//! the pollers, discovery, the one-shot `diagnose` command and relief alike: there is one way to
//! talk to Redis.
//!
//! The connection is opened once and kept by its owner: when Redis is full it refuses every new
//! connection, and this is exactly when the exporter must keep seeing it. So a command that
//! times out before its reply begins does not cost the connection (the late reply is dropped
//! when it comes), and nothing here reconnects by itself: the owner decides, and says so.
//! RESP itself is src/redis/resp.rs (encoding, the reader, the socket kinds) and
//! src/redis/frame.rs (the bounded decoder the reader feeds).

use std::collections::VecDeque;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::config::{Endpoint, Target};
use crate::redis::client_list::CLIENT_NAME;
use crate::redis::commands::{limits_of, Command};
use crate::redis::info::extra::ClientMemoryLimit;
use crate::redis::info::Info;
use crate::redis::resp::{encode, Arg, Charge, Limits, Reader, RespError, Stream, Value};

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

/// A failure of one poll or connection attempt. The message never holds a secret: error
/// replies are the server's (and an AUTH reply that repeats the password is redacted), ours are
/// built from the target label only.
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

/// The kind of an error reply, by what Redis and Valkey say in it.
fn reply_kind(message: &str) -> ErrorKind {
    let lower = message.to_ascii_lowercase();
    if lower.contains("max number of clients") {
        ErrorKind::Maxclients
    } else if lower.starts_with("wrongpass")
        || lower.starts_with("noauth")
        || lower.contains("invalid password")
        || lower.contains("invalid username-password")
    {
        ErrorKind::Auth
    } else {
        ErrorKind::Other
    }
}

/// A failed read or write as a poll error of `stage`.
pub(crate) fn classify(stage: Stage, e: RespError) -> PollError {
    let kind = match &e {
        RespError::Server(m) => reply_kind(m),
        RespError::Closed | RespError::Io(_) => ErrorKind::Connect,
        RespError::Protocol(_) => ErrorKind::Protocol,
    };
    PollError::new(kind, stage, e.to_string())
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

/// A held connection (RESP2, src/redis/resp.rs), its commands one after the other, at most
/// one sent ahead of its reply being read ([`Conn::send`], [`Conn::recv`]).
///
/// Every command is bounded by the target's command timeout, because a hung server (SIGSTOP)
/// or a proxy that stops forwarding must not stall the poller. A command whose reply has not
/// begun when its time is up stays owed: its reply is read and dropped before the next one,
/// so the connection (and the slot it holds on a full server) survives a slow moment. A reply
/// cut off half-way, a broken socket or a reply that is not RESP leave the connection out of
/// step: [`Conn::broken`], and its owner closes it.
pub struct Conn {
    stream: Stream,
    reader: Reader,
    /// Commands encoded and not written yet; freed once written, so that an idle connection
    /// keeps no buffer.
    out: Vec<u8>,
    /// Commands in `out`.
    queued: usize,
    /// Replies of written commands not read yet, in order.
    owed: usize,
    /// The bounds of the replies of the commands queued and owed, oldest first: each reply is
    /// read within what a real server can answer to its command ([`limits_of`]).
    limits: VecDeque<Limits>,
    /// Connections the last INFO reported: a full CLIENT LIST is bounded by it.
    clients_hint: Option<usize>,
    /// The oldest `skip` of those are dropped when they arrive: their caller gave up on them
    /// (a timeout, a cancelled job).
    skip: usize,
    broken: bool,
    timeout: Duration,
    /// Whether CLIENT NO-EVICT / NO-TOUCH were tried on this connection (see `Poller::protect`).
    pub(crate) protected: bool,
}

impl Conn {
    /// Connects (TCP, TLS or a Unix socket, under the connect timeout), authenticates,
    /// selects the database and names the connection, under the command timeout.
    pub async fn open(target: &Target) -> Result<Conn, PollError> {
        let password = target
            .password
            .resolve_async()
            .await
            .map_err(|e| PollError::new(ErrorKind::Auth, Stage::Connect, e.to_string()))?;
        let stream = match tokio::time::timeout(target.connect_timeout, connect(target)).await {
            Ok(r) => r?,
            Err(_) => return Err(timeout_error(Stage::Connect, target.connect_timeout)),
        };
        let mut conn = Conn {
            stream,
            reader: Reader::default(),
            out: Vec::new(),
            queued: 0,
            owed: 0,
            limits: VecDeque::new(),
            clients_hint: None,
            skip: 0,
            broken: false,
            timeout: target.command_timeout,
            protected: false,
        };
        // AUTH, SELECT and CLIENT SETNAME in one write; every reply read, the first error wins
        // (a wrong password turns the next two into NOAUTH). Our name must be recognisable in
        // CLIENT LIST. A full server answers the first command with "max number of clients
        // reached": this is where that surfaces for a new connection.
        let auth = password.is_some();
        if let Some(pw) = password.as_deref() {
            conn.queue_command(Command::Auth {
                user: target.username.as_deref(),
                password: pw,
            });
        }
        if let Some(db) = target.db.map(u64::from).filter(|&d| d != 0) {
            conn.queue_command(Command::Select(db));
        }
        conn.queue_command(Command::ClientSetname(CLIENT_NAME));
        let steps = conn.queued;
        let handshake = async {
            conn.flush().await?;
            let mut first_error = None;
            for step in 0..steps {
                match conn.read_one().await {
                    Ok(_) => {}
                    Err(RespError::Server(m)) => {
                        first_error.get_or_insert((m, auth && step == 0));
                    }
                    // A full server, or one refusing us, says why and closes: its reason
                    // is the error, not the close.
                    Err(_) if first_error.is_some() => break,
                    Err(e) => return Err(e),
                }
            }
            Ok(first_error)
        };
        let r = tokio::time::timeout(target.command_timeout, handshake).await;
        // The password was in this buffer.
        conn.out.fill(0);
        conn.out = Vec::new();
        match r {
            Ok(Ok(None)) => Ok(conn),
            Ok(Ok(Some((message, to_auth)))) => {
                let mut message = message;
                if let Some(pw) = password.as_deref().filter(|p| !p.is_empty()) {
                    // A server (or whatever answers in its place) that repeats the password.
                    message = message.replace(pw, "<redacted>");
                }
                let kind = match reply_kind(&message) {
                    ErrorKind::Other if to_auth => ErrorKind::Auth,
                    k => k,
                };
                Err(PollError::new(kind, Stage::Connect, message))
            }
            Ok(Err(e)) => Err(classify(Stage::Connect, e)),
            Err(_) => Err(timeout_error(Stage::Connect, target.command_timeout)),
        }
    }

    /// The connection is out of step (a reply or a write cut off, a broken socket, not RESP)
    /// or was closed by the server: it can carry no more commands.
    pub fn broken(&self) -> bool {
        self.broken
    }

    /// Sends one command and reads its reply; the replies of earlier commands nobody reads
    /// any more are dropped first. An error reply is `Err` with the connection still usable.
    pub async fn call<'a>(
        &mut self,
        stage: Stage,
        args: impl IntoIterator<Item = Arg<'a>>,
    ) -> Result<Value, PollError> {
        self.settle();
        self.send(stage, args).await?;
        self.recv(stage).await
    }

    /// [`Conn::call`] with string arguments.
    pub async fn command(&mut self, stage: Stage, args: &[&str]) -> Result<Value, PollError> {
        self.call(stage, args.iter().map(|a| Arg::Str(a))).await
    }

    /// Marks every reply still owed as unwanted: the start of a new exchange, whose caller
    /// knows nothing of earlier ones (a job cancelled between a command and its reply).
    pub fn settle(&mut self) {
        self.skip = self.owed;
    }

    fn queue_command(&mut self, command: Command<'_>) {
        command.encode(&mut self.out);
        self.limits.push_back(command.limits(self.clients_hint));
        self.queued += 1;
    }

    /// Sends one of the exporter's commands and reads its reply ([`Conn::call`]).
    pub async fn run(&mut self, stage: Stage, command: Command<'_>) -> Result<Value, PollError> {
        self.run_charged(stage, command).await.map(|(v, _)| v)
    }

    /// [`Conn::run`] with the reply's share of the memory budget, for a reply that may be
    /// large and is kept while it is parsed (INFO, CLIENT LIST).
    pub async fn run_charged(
        &mut self,
        stage: Stage,
        command: Command<'_>,
    ) -> Result<(Value, Charge), PollError> {
        self.settle();
        self.send_command(stage, command).await?;
        self.recv_charged(stage).await
    }

    /// Starts a new exchange ([`Conn::settle`]) and writes `commands` in one go; their replies
    /// are read in order with [`Conn::recv`].
    pub async fn pipeline<'a>(
        &mut self,
        stage: Stage,
        commands: impl IntoIterator<Item = Command<'a>>,
    ) -> Result<(), PollError> {
        self.settle();
        self.write_commands(stage, commands).await
    }

    /// Writes one of the exporter's commands without reading its reply ([`Conn::send`]).
    pub async fn send_command(
        &mut self,
        stage: Stage,
        command: Command<'_>,
    ) -> Result<(), PollError> {
        self.write_commands(stage, std::iter::once(command)).await
    }

    async fn write_commands<'a>(
        &mut self,
        stage: Stage,
        commands: impl IntoIterator<Item = Command<'a>>,
    ) -> Result<(), PollError> {
        if self.broken {
            return Err(out_of_step(stage));
        }
        for command in commands {
            self.queue_command(command);
        }
        self.write_queued(stage).await
    }

    fn queue<'a>(&mut self, args: impl IntoIterator<Item = Arg<'a>>) {
        let mut words: [Option<Arg<'a>>; 2] = [None, None];
        let mut count = 0usize;
        let args = args.into_iter().inspect(|a| {
            if let Some(w) = words.get_mut(count) {
                *w = Some(*a);
            }
            count += 1;
        });
        encode(&mut self.out, args);
        self.limits
            .push_back(limits_of(words, count, self.clients_hint));
        self.queued += 1;
    }

    /// Writes one command without reading its reply (pipelining: [`Conn::recv`] reads it).
    pub async fn send<'a>(
        &mut self,
        stage: Stage,
        args: impl IntoIterator<Item = Arg<'a>>,
    ) -> Result<(), PollError> {
        if self.broken {
            return Err(out_of_step(stage));
        }
        self.queue(args);
        self.write_queued(stage).await
    }

    /// Writes the queued commands under the command timeout.
    async fn write_queued(&mut self, stage: Stage) -> Result<(), PollError> {
        let t = self.timeout;
        match tokio::time::timeout(t, self.flush()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(classify(stage, e)),
            Err(_) => Err(timeout_error(stage, t)),
        }
    }

    /// Writes the queued commands. A write cut off (an error, a timeout) leaves the
    /// connection broken.
    async fn flush(&mut self) -> Result<(), RespError> {
        use tokio::io::AsyncWriteExt;
        self.broken = true;
        self.stream.write_all(&self.out).await?;
        self.stream.flush().await?;
        self.broken = false;
        self.owed += std::mem::take(&mut self.queued);
        // Given back once written: an idle connection keeps no buffer (one small allocation
        // per write, never per CLIENT LIST line).
        self.out = Vec::new();
        Ok(())
    }

    /// Reads the next reply, within its command's limits. Until its first byte arrives, giving
    /// up leaves the connection in step; after that, a reply cut off leaves it broken.
    async fn read_one(&mut self) -> Result<(Value, Charge), RespError> {
        self.reader.ready(&mut self.stream).await?;
        self.broken = true;
        let limits = self.limits.pop_front().unwrap_or(Limits::SMALL);
        let r = self.reader.reply(&mut self.stream, limits).await;
        match &r {
            Ok(_) | Err(RespError::Server(_)) => self.broken = false,
            Err(_) => {}
        }
        self.owed = self.owed.saturating_sub(1);
        r
    }

    /// Reads the reply of the oldest command whose reply is wanted (see [`Conn::settle`]).
    pub async fn recv(&mut self, stage: Stage) -> Result<Value, PollError> {
        self.recv_charged(stage).await.map(|(v, _)| v)
    }

    /// [`Conn::call`] with the reply's share of the memory budget, for a reply that may be
    /// large and is kept while it is parsed (INFO, CLIENT LIST).
    pub async fn call_charged<'a>(
        &mut self,
        stage: Stage,
        args: impl IntoIterator<Item = Arg<'a>>,
    ) -> Result<(Value, Charge), PollError> {
        self.settle();
        self.send(stage, args).await?;
        self.recv_charged(stage).await
    }

    /// [`Conn::recv`] with the reply's share of the memory budget ([`Conn::call_charged`]).
    pub async fn recv_charged(&mut self, stage: Stage) -> Result<(Value, Charge), PollError> {
        if self.broken {
            return Err(out_of_step(stage));
        }
        if self.owed <= self.skip {
            return Err(protocol(stage, "no command is waiting for a reply"));
        }
        let t = self.timeout;
        let read = async {
            loop {
                let r = self.read_one().await;
                if self.skip == 0
                    || r.as_ref()
                        .is_err_and(|e| !matches!(e, RespError::Server(_)))
                {
                    return r;
                }
                self.skip -= 1;
            }
        };
        match tokio::time::timeout(t, read).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                if !matches!(e, RespError::Server(_)) {
                    self.broken = true;
                }
                Err(classify(stage, e))
            }
            Err(_) => {
                // The reply we waited for is now one nobody reads: dropped when it comes.
                self.skip += 1;
                Err(timeout_error(stage, t))
            }
        }
    }

    /// QUIT (a second at most, only when the connection is in step), then the socket is
    /// closed.
    pub async fn close(mut self) {
        if self.broken {
            return;
        }
        let _ = tokio::time::timeout(
            Duration::from_secs(1),
            self.run(Stage::Connect, Command::Quit),
        )
        .await;
    }
}

fn out_of_step(stage: Stage) -> PollError {
    PollError::new(
        ErrorKind::Connect,
        stage,
        "the connection was closed or is out of step",
    )
}

/// The socket (and TLS session) to the target's endpoint.
async fn connect(target: &Target) -> Result<Stream, PollError> {
    let failed =
        |e: std::io::Error| PollError::new(ErrorKind::Connect, Stage::Connect, e.to_string());
    match &target.endpoint {
        Endpoint::Tcp { host, port, .. } => {
            let tcp = tokio::net::TcpStream::connect((host.as_str(), *port))
                .await
                .map_err(failed)?;
            // Commands are small and each waits for its reply: no Nagle delay.
            let _ = tcp.set_nodelay(true);
            let Some(tls) = &target.tls else {
                return Ok(Stream::Tcp(tcp));
            };
            let config = crate::redis::tls::shared_client_config(tls)
                .map_err(|e| PollError::new(ErrorKind::Connect, Stage::Connect, e.to_string()))?;
            let name = tls.server_name.as_deref().unwrap_or(host);
            let name = rustls::pki_types::ServerName::try_from(name.to_string()).map_err(|e| {
                PollError::new(
                    ErrorKind::Connect,
                    Stage::Connect,
                    format!("TLS server name: {e}"),
                )
            })?;
            let tls = tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await
                .map_err(failed)?;
            Ok(Stream::Tls(Box::new(tls)))
        }
        Endpoint::Unix(path) => Ok(Stream::Unix(
            tokio::net::UnixStream::connect(path)
                .await
                .map_err(failed)?,
        )),
    }
}

/// A text reply (INFO, CLIENT LIST): the reply's own string when it is UTF-8 (no copy), a
/// lossy copy when it is not. Redis allows any byte in ACL user names and error prefixes (INFO
/// errorstats), so one such byte must not make the whole reply unreadable.
/// Its share of the memory budget (src/redis/frame.rs) is held as long as the text lives.
pub struct Text(String, #[allow(dead_code)] Charge);

impl std::ops::Deref for Text {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl Text {
    pub(crate) fn into_string(self) -> String {
        self.0
    }

    pub(crate) fn empty() -> Text {
        Text(String::new(), Charge::default())
    }

    /// The text of a string reply and how many of its lines held bytes that are not UTF-8
    /// (each replaced by U+FFFD), the reply's share of the memory budget kept with the text;
    /// the value itself back when it is not a string.
    pub(crate) fn charged(v: Value, charge: Charge) -> Result<(Text, u64), Value> {
        match v {
            Value::String(s) => Ok((Text(s, charge), 0)),
            // The reader hands over bytes exactly when they are not valid UTF-8.
            Value::Bytes(b) => {
                let invalid = b
                    .split(|&c| c == b'\n')
                    .filter(|line| std::str::from_utf8(line).is_err())
                    .count() as u64;
                Ok((
                    Text(String::from_utf8_lossy(&b).into_owned(), charge),
                    invalid,
                ))
            }
            other => Err(other),
        }
    }
}

/// The text of a string reply, and how many of its lines held bytes that are not UTF-8 (each
/// replaced by U+FFFD). Anything but a string is a protocol error.
pub(crate) fn text_reply(
    stage: Stage,
    (v, charge): (Value, Charge),
) -> Result<(Text, u64), PollError> {
    Text::charged(v, charge).map_err(|_| protocol(stage, "the reply is not a string"))
}

/// INFO (the default sections) as text, with its count of lines that were not UTF-8.
pub(crate) async fn read_info(c: &mut Conn) -> Result<(Text, u64), PollError> {
    text_reply(
        Stage::Info,
        c.run_charged(Stage::Info, Command::Info).await?,
    )
}

/// CLIENT LIST as text, with its count of lines that were not UTF-8.
pub(crate) async fn read_client_list(c: &mut Conn) -> Result<(Text, u64), PollError> {
    let reply = c
        .run_charged(Stage::ClientList, Command::ClientList)
        .await?;
    text_reply(Stage::ClientList, reply)
}

/// One `CONFIG GET` pair: the value when the reply is `[name, value]`, `None` when empty
/// (an unknown or hidden parameter).
fn config_pair(v: Value, param: &str) -> Result<Option<String>, ()> {
    let Some(pair) = v.into_strings() else {
        return Err(());
    };
    match pair.as_slice() {
        [] => Ok(None),
        [name, value] if name.eq_ignore_ascii_case(param) => Ok(Some(value.clone())),
        _ => Err(()),
    }
}

/// What the poll reads with CONFIG GET, one parameter per command (several in one call needs
/// 7.0); the last, `maxmemory-clients` (Redis 7.0+, Valkey), may be refused on its own.
const CONFIG_PARAMS: [&str; 4] = [
    "maxclients",
    "timeout",
    "tcp-keepalive",
    "maxmemory-clients",
];

async fn read_config_replies(c: &mut Conn) -> Result<ConfigValues, PollError> {
    let mut read = [None; 3];
    for (param, slot) in CONFIG_PARAMS.into_iter().zip(read.iter_mut()) {
        let reply = match c.recv(Stage::Config).await {
            Ok(v) => config_pair(v, param),
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
        *slot = match reply {
            Ok(v) => v.and_then(|v| v.trim().parse::<f64>().ok()),
            Err(()) => {
                return Err(protocol(
                    Stage::Config,
                    "CONFIG GET did not answer a [name, value] pair",
                ))
            }
        };
    }
    let [maxclients, timeout, tcp_keepalive] = read;
    Ok(ConfigValues {
        available: true,
        maxclients,
        timeout,
        tcp_keepalive,
        maxmemory_clients: read_maxmemory_clients(c).await?,
    })
}

/// The reply to `CONFIG GET maxmemory-clients` (an empty reply before 7.0): a value that is
/// not a size or a percentage, or a refusal of this one parameter, leaves it absent (the
/// three parameters before it decided whether CONFIG is available at all).
async fn read_maxmemory_clients(c: &mut Conn) -> Result<Option<ClientMemoryLimit>, PollError> {
    match c
        .recv(Stage::Config)
        .await
        .map(|v| config_pair(v, CONFIG_PARAMS[3]))
    {
        Ok(Ok(Some(v))) => Ok(ClientMemoryLimit::parse(&v)),
        Ok(_) => Ok(None),
        Err(e) if matches!(e.kind, ErrorKind::Timeout | ErrorKind::Connect) => Err(e),
        Err(_) => Ok(None),
    }
}

/// INFO (the default sections), parsed, with its count of lines that were not UTF-8. Every
/// Redis and Valkey INFO carries `redis_version`; a reply without it is not INFO (a proxy
/// answering junk, a wrong type) and must not turn into "up, 0 clients".
pub(crate) async fn observe_info(c: &mut Conn) -> Result<(Info, u64), PollError> {
    let reply = read_info(c).await?;
    parse_info(c, reply)
}

/// A poll's INFO and its CONFIG GETs written in one go, on a connection already set up (one
/// write instead of five): then [`recv_info`] and [`recv_config`] read the replies in order.
pub(crate) async fn send_info_and_config(c: &mut Conn) -> Result<(), PollError> {
    let config = CONFIG_PARAMS.map(Command::ConfigGet);
    c.pipeline(Stage::Info, std::iter::once(Command::Info).chain(config))
        .await
}

/// The reply to the INFO of [`send_info_and_config`], as [`observe_info`] reads it.
pub(crate) async fn recv_info(c: &mut Conn) -> Result<(Info, u64), PollError> {
    let reply = text_reply(Stage::Info, c.recv_charged(Stage::Info).await?)?;
    parse_info(c, reply)
}

/// The replies to the CONFIG GETs of [`send_info_and_config`] or [`observe_config`], in order.
pub(crate) async fn recv_config(
    c: &mut Conn,
) -> Result<(ConfigValues, Option<PollError>), PollError> {
    let read = read_config_replies(c).await;
    // Replies left unread after an early return are dropped when they come, not taken for
    // the next command's.
    c.settle();
    match read {
        Ok(v) => Ok((v, None)),
        Err(e) if e.kind == ErrorKind::ConfigUnavailable => Ok((ConfigValues::default(), Some(e))),
        Err(e) => Err(e),
    }
}

fn parse_info(c: &mut Conn, (text, invalid_utf8): (Text, u64)) -> Result<(Info, u64), PollError> {
    let info = Info::parse(&text);
    c.clients_hint = info
        .connected_clients
        .filter(|n| n.is_finite() && *n >= 0.0)
        .map(|n| n.min(1e7) as usize);
    if info.redis_version.is_none() {
        return Err(protocol(
            Stage::Info,
            "the INFO reply has no redis_version field",
        ));
    }
    Ok((info, invalid_utf8))
}

/// CONFIG GET of [`CONFIG_PARAMS`], written in one go and read in order: one write and
/// usually one read instead of four round trips (at 10,000 targets the kernel's send path was
/// a fifth of the exporter's CPU, docs/performance.md). When CONFIG is unavailable (renamed,
/// forbidden), the empty values and why, for the caller to report: the rest of the observation
/// goes on without them.
pub(crate) async fn observe_config(
    c: &mut Conn,
) -> Result<(ConfigValues, Option<PollError>), PollError> {
    c.pipeline(Stage::Config, CONFIG_PARAMS.map(Command::ConfigGet))
        .await?;
    recv_config(c).await
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
        let (t, bad) = text_reply(
            Stage::Info,
            (Value::String("a\nb".into()), Charge::default()),
        )
        .expect("text");
        assert_eq!((&*t, bad), ("a\nb", 0));
        let bytes = b"user=ok\nuser=b\xffd\nx\xfe\xfd\n".to_vec();
        let (t, bad) =
            text_reply(Stage::Info, (Value::Bytes(bytes), Charge::default())).expect("text");
        assert_eq!(
            (&*t, bad),
            ("user=ok\nuser=b\u{fffd}d\nx\u{fffd}\u{fffd}\n", 2)
        );
        assert_eq!(
            text_reply(Stage::Info, (Value::Integer(3), Charge::default()))
                .map(|_| ())
                .map_err(|e| e.kind),
            Err(ErrorKind::Protocol)
        );
    }

    #[test]
    fn error_replies_are_classified_by_what_they_say() {
        for (reply, kind) in [
            ("ERR max number of clients reached", ErrorKind::Maxclients),
            (
                "WRONGPASS invalid username-password pair or user is disabled.",
                ErrorKind::Auth,
            ),
            ("NOAUTH Authentication required.", ErrorKind::Auth),
            ("ERR invalid password", ErrorKind::Auth),
            (
                "NOPERM User u has no permissions to run the 'config|get' command",
                ErrorKind::Other,
            ),
            ("ERR unknown command 'CONFIG'", ErrorKind::Other),
        ] {
            let e = classify(Stage::Config, RespError::Server(reply.into()));
            assert_eq!((e.kind, e.message.as_str()), (kind, reply));
        }
        assert_eq!(
            classify(Stage::Info, RespError::Closed).kind,
            ErrorKind::Connect
        );
        assert_eq!(
            classify(Stage::Info, RespError::Protocol("x")).kind,
            ErrorKind::Protocol
        );
    }
}
