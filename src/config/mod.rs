//! Configuration: the layering (built-in defaults < file < environment < flags), validation
//! with errors that name the key and the file, and the resolved [`Target`]s.
//!
//! Secrets are held in [`Secret`], whose `Debug` never shows the value, and a password found
//! inside an address URL is moved out of it before the address is used for anything.

pub mod relief;
pub mod shard;
pub mod topology;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use thiserror::Error;

/// Default listen port: beside the Go redis_exporter's 9121, never on it.
pub const DEFAULT_PORT: u16 = 9816;
pub const DEFAULT_LISTEN: &str = "0.0.0.0:9816";
pub const DEFAULT_TARGET: &str = "redis://127.0.0.1:6379";
pub const ENV_PREFIX: &str = "REDIS_CLIENTS_EXPORTER";

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("{origin}: {message}")]
    Load { origin: String, message: String },
    #[error("{origin}: key `{key}`: {message}")]
    Invalid {
        origin: String,
        key: String,
        message: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// A password, from the config, a file, or an environment variable. Never printed.
#[derive(Clone, PartialEq, Eq, Default)]
pub enum Secret {
    #[default]
    None,
    Value(String),
    File(PathBuf),
    Env(String),
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Secret::None => f.write_str("None"),
            Secret::Value(_) => f.write_str("Value(<redacted>)"),
            Secret::File(p) => write!(f, "File({})", p.display()),
            Secret::Env(v) => write!(f, "Env({v})"),
        }
    }
}

#[derive(Debug, Error)]
pub enum SecretError {
    #[error("cannot read password file {path}: {source}")]
    File {
        path: String,
        source: std::io::Error,
    },
    #[error("environment variable {0} holding the password is not set")]
    Env(String),
}

impl Secret {
    /// Reads the secret now; a file or variable is read on every call, so a rotated password
    /// is picked up at the next (re)connect.
    pub fn resolve(&self) -> Result<Option<String>, SecretError> {
        match self {
            Secret::None => Ok(None),
            Secret::Value(v) => Ok(Some(v.clone())),
            Secret::File(p) => std::fs::read_to_string(p)
                .map(|s| Some(s.trim_end_matches(['\r', '\n']).to_string()))
                .map_err(|source| SecretError::File {
                    path: p.display().to_string(),
                    source,
                }),
            Secret::Env(name) => std::env::var(name)
                .map(Some)
                .map_err(|_| SecretError::Env(name.clone())),
        }
    }

    /// [`Secret::resolve`] for async code: a password file is read on a blocking thread, so
    /// that a hung mount stalls one connect, not the runtime's workers.
    pub async fn resolve_async(&self) -> Result<Option<String>, SecretError> {
        match self {
            Secret::File(p) => {
                let secret = self.clone();
                let path = p.display().to_string();
                tokio::task::spawn_blocking(move || secret.resolve())
                    .await
                    .unwrap_or_else(|e| {
                        Err(SecretError::File {
                            path,
                            source: std::io::Error::other(e.to_string()),
                        })
                    })
            }
            _ => self.resolve(),
        }
    }
}

/// Where a target lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// TLS or not is `Target::tls`, the one place the poller looks.
    Tcp {
        host: String,
        port: u16,
    },
    Unix(PathBuf),
}

impl Endpoint {
    /// `host:port` (`[v6]:port`) or `unix:/path`: the default `target` label and the `node` label.
    pub fn label(&self) -> String {
        match self {
            Endpoint::Tcp { host, port } if host.contains(':') => format!("[{host}]:{port}"),
            Endpoint::Tcp { host, port } => format!("{host}:{port}"),
            Endpoint::Unix(p) => format!("unix:{}", p.display()),
        }
    }
}

/// One Redis server to poll, resolved and validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// The `target` label: the alias, or `host:port`, or `unix:/path`.
    pub label: String,
    pub endpoint: Endpoint,
    pub db: Option<u8>,
    pub username: Option<String>,
    pub password: Secret,
    pub poll_interval: Duration,
    pub connect_timeout: Duration,
    pub command_timeout: Duration,
    pub client_list: ClientListSchedule,
    /// Set for `rediss://` targets only.
    pub tls: Option<TlsOptions>,
}

/// TLS to a `rediss://` target. With no CA file the system's roots are trusted.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TlsOptions {
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// Accept any server certificate. Only when asked for explicitly; logged at start.
    pub insecure_skip_verify: bool,
    /// SNI and the name the certificate must match, when it differs from the address' host.
    pub server_name: Option<String>,
}

/// Protection of the exporter's own endpoint, in the style of Prometheus' web config file
/// (`tls_server_config` and `basic_auth_users` with bcrypt hashes).
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebConfig {
    pub tls_server_config: Option<WebTls>,
    #[serde(default)]
    pub basic_auth_users: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebTls {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

/// How often CLIENT LIST runs. It runs on Redis' main thread and costs O(clients), so above
/// a number of connected clients its interval grows in proportion, up to `max_interval`; INFO
/// and CONFIG keep the target's poll interval. Read in chunks of ids (src/redis/chunked.rs, Redis
/// 6.2+) it no longer stalls Redis, and only its total CPU limits it: `backoff_clients`; read
/// whole (older servers), one command holds Redis for all clients at once:
/// `full_backoff_clients`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClientListSchedule {
    pub backoff_clients: u64,
    pub full_backoff_clients: u64,
    pub max_interval: Duration,
    /// A full CLIENT LIST this often re-synchronises the chunked walk (`None`: never).
    pub resync: Option<Duration>,
}

/// `client_list_backoff_clients`: a chunked walk costs Redis ~1.3 µs of CPU per client, so at
/// 50,000 clients and a 15 s poll ~65 ms per poll, 0.4 % of its main thread.
pub const DEFAULT_BACKOFF_CLIENTS: u64 = 50_000;
/// `client_list_full_backoff_clients`: a full CLIENT LIST of 5,000 clients holds Redis ~10 ms.
pub const DEFAULT_FULL_BACKOFF_CLIENTS: u64 = 5000;
/// `client_list_resync_seconds`: a sweep (src/redis/chunked.rs) at most every 15 minutes bounds how
/// long a client the walk could not see stays uncounted.
pub const DEFAULT_RESYNC_SECONDS: f64 = 900.0;

impl Default for ClientListSchedule {
    fn default() -> Self {
        Self {
            backoff_clients: DEFAULT_BACKOFF_CLIENTS,
            full_backoff_clients: DEFAULT_FULL_BACKOFF_CLIENTS,
            max_interval: Duration::from_secs(60),
            resync: Some(Duration::from_secs_f64(DEFAULT_RESYNC_SECONDS)),
        }
    }
}

impl ClientListSchedule {
    /// The CLIENT LIST interval for a server with `clients` connections, listed in chunks
    /// (`chunked`) or whole.
    pub fn interval(&self, poll_interval: Duration, clients: f64, chunked: bool) -> Duration {
        let threshold = if chunked {
            self.backoff_clients
        } else {
            self.full_backoff_clients
        };
        let threshold = threshold.max(1) as f64;
        // NaN (no INFO value) compares false: treated like a small server.
        if clients.partial_cmp(&threshold) != Some(std::cmp::Ordering::Greater) {
            return poll_interval;
        }
        poll_interval
            .mul_f64(clients / threshold)
            .min(self.max_interval.max(poll_interval))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub listen: SocketAddr,
    pub log_format: LogFormat,
    pub top_k: usize,
    pub idle_threshold_seconds: u64,
    pub targets: Vec<Target>,
    pub web: WebConfig,
    /// Clusters, Sentinel sets, `/scrape` targets and the targets file (src/config/topology.rs).
    pub topology: crate::config::topology::TopologyConfig,
    /// `[relief]`: acting on a full Redis through the held connection (src/relief).
    pub relief: crate::config::relief::ReliefConfig,
    /// `shard`: this replica's share of the targets (src/config/shard.rs); the whole by default.
    pub shard: crate::config::shard::Shard,
}

/// Overrides given on the command line; `None` leaves the lower layers in force.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Overrides {
    pub listen: Option<String>,
    pub targets: Vec<String>,
    pub password_file: Option<PathBuf>,
    pub top_k: Option<usize>,
    pub log_format: Option<LogFormat>,
    pub web_config_file: Option<PathBuf>,
    /// `--shard i/N`.
    pub shard: Option<String>,
}

#[derive(Debug, Deserialize, Default, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    pub(crate) listen: Option<String>,
    pub(crate) log_format: Option<LogFormat>,
    pub(crate) top_k: Option<usize>,
    pub(crate) idle_threshold_seconds: Option<u64>,
    /// Comma-separated addresses; the environment's way to name targets.
    pub(crate) target: Option<String>,
    /// Defaults for every target that does not set its own.
    pub(crate) username: Option<String>,
    pub(crate) password: Option<String>,
    pub(crate) password_file: Option<PathBuf>,
    pub(crate) password_env: Option<String>,
    pub(crate) poll_interval_seconds: Option<f64>,
    pub(crate) connect_timeout_seconds: Option<f64>,
    pub(crate) command_timeout_seconds: Option<f64>,
    pub(crate) client_list_backoff_clients: Option<u64>,
    pub(crate) client_list_max_interval_seconds: Option<f64>,
    pub(crate) client_list_full_backoff_clients: Option<u64>,
    pub(crate) client_list_resync_seconds: Option<f64>,
    pub(crate) tls_ca_file: Option<PathBuf>,
    pub(crate) tls_cert_file: Option<PathBuf>,
    pub(crate) tls_key_file: Option<PathBuf>,
    pub(crate) tls_insecure_skip_verify: Option<bool>,
    pub(crate) web_config_file: Option<PathBuf>,
    pub(crate) targets: Option<Vec<RawTarget>>,
    // Topology, dynamic targets and the targets file: src/config/topology.rs.
    pub(crate) auth_profiles: Option<std::collections::BTreeMap<String, RawAuth>>,
    pub(crate) discovery_interval_seconds: Option<f64>,
    pub(crate) discovery_max_nodes: Option<usize>,
    pub(crate) scrape_allow: Option<crate::config::topology::RawAllowlist>,
    pub(crate) scrape_max_targets: Option<usize>,
    pub(crate) scrape_never_up_timeout_seconds: Option<f64>,
    pub(crate) scrape_idle_timeout_seconds: Option<f64>,
    pub(crate) scrape_first_poll_wait_seconds: Option<f64>,
    pub(crate) targets_file: Option<PathBuf>,
    pub(crate) targets_file_interval_seconds: Option<f64>,
    pub(crate) relief: Option<crate::config::relief::RawRelief>,
    /// `i/N` or `ordinal/N` (src/config/shard.rs).
    pub(crate) shard: Option<String>,
}

/// A named set of credentials (`[auth_profiles.NAME]`), used by `auth = "NAME"` on a target and
/// by `/scrape?auth=NAME`.
#[derive(Debug, Deserialize, Default, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAuth {
    pub(crate) username: Option<String>,
    pub(crate) password: Option<String>,
    pub(crate) password_file: Option<PathBuf>,
    pub(crate) password_env: Option<String>,
    /// Where `/scrape` may send these credentials (`host-or-CIDR:port[-port]`); none: nowhere.
    pub(crate) targets: Option<crate::config::topology::RawAllowlist>,
}

#[derive(Debug, Deserialize, Default, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTarget {
    pub(crate) address: Option<String>,
    pub(crate) alias: Option<String>,
    pub(crate) username: Option<String>,
    pub(crate) password: Option<String>,
    pub(crate) password_file: Option<PathBuf>,
    pub(crate) password_env: Option<String>,
    pub(crate) poll_interval_seconds: Option<f64>,
    pub(crate) connect_timeout_seconds: Option<f64>,
    pub(crate) command_timeout_seconds: Option<f64>,
    pub(crate) tls_ca_file: Option<PathBuf>,
    pub(crate) tls_cert_file: Option<PathBuf>,
    pub(crate) tls_key_file: Option<PathBuf>,
    pub(crate) tls_insecure_skip_verify: Option<bool>,
    pub(crate) tls_server_name: Option<String>,
    /// Name of an auth profile holding this target's credentials.
    pub(crate) auth: Option<String>,
    /// Expand to every node of the cluster this address belongs to.
    pub(crate) cluster: Option<bool>,
    /// Follow this Sentinel master set (with `sentinels`).
    pub(crate) sentinel_master: Option<String>,
    pub(crate) sentinels: Option<Vec<String>>,
    /// Auth profile for the sentinels themselves (they often have no password, or another).
    pub(crate) sentinel_auth: Option<String>,
}

/// Loads and validates the configuration from all layers, and checks that every password file
/// and password variable it names can be read now. Used at start, by `--check-config`, on a
/// reload and by `diagnose`: a missing password file is an operator error found before the
/// first poll. (The pollers read the file again at every connect, so that a rotated password
/// is picked up; a file that disappears later is that target's poll error.)
pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Config, ConfigError> {
    load_checked_with_env(file, overrides, process_env())
}

/// The process' environment. `std::env::vars()` panics on a variable that is not UTF-8,
/// anyone's; ours must be text anyway.
pub fn process_env() -> Vec<(String, String)> {
    std::env::vars_os()
        .map(|(k, v)| {
            (
                k.to_string_lossy().into_owned(),
                v.to_string_lossy().into_owned(),
            )
        })
        .collect()
}

/// Like [`load`], with the environment given explicitly (tests must not mutate the process').
pub fn load_checked_with_env(
    file: Option<&Path>,
    overrides: &Overrides,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Config, ConfigError> {
    let env: Vec<(String, String)> = env.into_iter().collect();
    let (raw, origin) = read_layers(file, env.iter().cloned())?;
    let cfg = resolve(raw.clone(), overrides, &origin, hostname(&env))?;
    check_secrets(&raw, overrides, &origin, &env)?;
    Ok(cfg)
}

/// Loads and validates the configuration with the environment given explicitly, without
/// touching the password files and variables it names (see [`load_checked_with_env`]).
pub fn load_with_env(
    file: Option<&Path>,
    overrides: &Overrides,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Config, ConfigError> {
    let env: Vec<(String, String)> = env.into_iter().collect();
    let (raw, origin) = read_layers(file, env.iter().cloned())?;
    resolve(raw, overrides, &origin, hostname(&env))
}

/// `HOSTNAME` from `env`, for `shard = "ordinal/N"`.
fn hostname(env: &[(String, String)]) -> Option<String> {
    env.iter()
        .find(|(k, _)| k == crate::config::shard::HOSTNAME_VAR)
        .map(|(_, v)| v.clone())
}

/// The file and environment layers, merged; the origin that errors name.
fn read_layers(
    file: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<(RawConfig, String), ConfigError> {
    let origin = file
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "environment".to_string());
    let mut builder = config::Config::builder();
    if let Some(path) = file {
        if !path.exists() {
            return Err(ConfigError::Load {
                origin,
                message: "file not found".to_string(),
            });
        }
        builder = builder.add_source(config::File::from(path));
    }
    let env_map = config_env(env)?;
    builder = builder.add_source(
        config::Environment::with_prefix(ENV_PREFIX)
            .prefix_separator("_")
            .separator("__")
            .source(Some(env_map)),
    );
    let raw: RawConfig = deserialize(builder, &origin)?;
    Ok((raw, origin))
}

/// Where the variables that are not configuration are reported from.
const ENV_ORIGIN: &str = "environment";

/// The `REDIS_CLIENTS_EXPORTER_*` variables that are configuration, for config-rs. Kubernetes
/// service links are left out ([`is_service_link`]); any other variable must name a
/// configuration key, else the error names the variable (config-rs would blame the file).
fn config_env(
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<config::Map<String, String>, ConfigError> {
    let keys = config_keys();
    let mut out = config::Map::new();
    for (name, value) in env {
        let Some(rest) = name
            .strip_prefix(ENV_PREFIX)
            .and_then(|r| r.strip_prefix('_'))
            .filter(|r| !r.is_empty())
        else {
            continue;
        };
        if is_service_link(&name, &value) {
            continue;
        }
        // `AUTH_PROFILES__APP__PASSWORD_FILE`: config-rs nests at `__`; the first part must be
        // a key (config-rs checks the rest).
        let top = rest.split("__").next().unwrap_or(rest).to_ascii_lowercase();
        if !keys.contains(&top.as_str()) {
            return Err(invalid(
                ENV_ORIGIN,
                name.clone(),
                format!(
                    "unknown variable: there is no configuration key `{top}` (keys: {})",
                    keys.join(", ")
                ),
            ));
        }
        out.insert(name, value);
    }
    Ok(out)
}

/// The top-level configuration keys, as serde knows them (so a key added to [`RawConfig`] is
/// known here without a second list).
pub(crate) fn config_keys() -> &'static [&'static str] {
    struct_fields::<RawConfig>()
}

/// The field names of a `#[derive(Deserialize)]` struct: serde hands them to
/// `deserialize_struct`, which this deserializer records and then stops.
pub(crate) fn struct_fields<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    struct Fields<'a>(&'a mut &'static [&'static str]);
    impl<'de> serde::Deserializer<'de> for Fields<'_> {
        type Error = serde::de::value::Error;
        fn deserialize_any<V: serde::de::Visitor<'de>>(
            self,
            _: V,
        ) -> Result<V::Value, Self::Error> {
            Err(serde::de::Error::custom("not a struct"))
        }
        fn deserialize_struct<V: serde::de::Visitor<'de>>(
            self,
            _name: &'static str,
            fields: &'static [&'static str],
            _visitor: V,
        ) -> Result<V::Value, Self::Error> {
            *self.0 = fields;
            Err(serde::de::Error::custom("fields recorded"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
            option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
            ignored_any
        }
    }
    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(Fields(&mut fields));
    fields
}

/// Whether `name=value` is a variable Kubernetes injects into every pod for a Service in the
/// namespace ("service links", on unless the pod sets `enableServiceLinks: false`). A Service
/// named `redis-clients-exporter` (or `redis-clients-exporter-<anything>`) gives
///
/// ```text
/// REDIS_CLIENTS_EXPORTER[_X]_SERVICE_HOST=10.96.0.7          cluster IP
/// REDIS_CLIENTS_EXPORTER[_X]_SERVICE_PORT=9816               first port
/// REDIS_CLIENTS_EXPORTER[_X]_SERVICE_PORT_<NAME>=9816        each named port
/// REDIS_CLIENTS_EXPORTER[_X]_PORT=tcp://10.96.0.7:9816       Docker-link style, first port
/// REDIS_CLIENTS_EXPORTER[_X]_PORT_9816_TCP=tcp://10.96.0.7:9816      each port (TCP/UDP/SCTP)
/// REDIS_CLIENTS_EXPORTER[_X]_PORT_9816_TCP_PROTO=tcp
/// REDIS_CLIENTS_EXPORTER[_X]_PORT_9816_TCP_PORT=9816
/// REDIS_CLIENTS_EXPORTER[_X]_PORT_9816_TCP_ADDR=10.96.0.7
/// ```
///
/// Both the name and the value must have the shape, so that a mistyped configuration variable
/// is still an error. No configuration key ends in `service_host`, `service_port` or `port`,
/// contains `service_port_` or `port_<digits>_` (a unit test checks every key), so none of them
/// is ever taken for a link.
pub fn is_service_link(name: &str, value: &str) -> bool {
    let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
        return false;
    };
    // `rest` is `_`, the rest of the Service's name (`_X`, possibly empty), `_`, then the
    // shape: try every `_` as the start of the shape.
    rest.char_indices()
        .filter(|&(_, c)| c == '_')
        .any(|(i, _)| {
            let (service, shape) = (&rest[..i], &rest[i + 1..]);
            service
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
                && link_shape(shape, value)
        })
}

fn link_shape(shape: &str, value: &str) -> bool {
    let is_ip = |v: &str| v.parse::<std::net::IpAddr>().is_ok();
    let is_port = |v: &str| v.parse::<u16>().is_ok_and(|p| p > 0);
    match shape {
        "SERVICE_HOST" => return is_ip(value),
        "SERVICE_PORT" => return is_port(value),
        "PORT" => return link_url(value, None).is_some(),
        _ => {}
    }
    if let Some(name) = shape.strip_prefix("SERVICE_PORT_") {
        // A port name (IANA_SVC_NAME, upper-cased, `-` to `_`): at most 15 characters, at
        // least one letter, no leading, trailing or doubled `-`.
        return is_port(value)
            && !name.is_empty()
            && name.len() <= 15
            && name.bytes().any(|b| b.is_ascii_uppercase())
            && name
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
            && !name.starts_with('_')
            && !name.ends_with('_')
            && !name.contains("__");
    }
    let Some(port_proto) = shape.strip_prefix("PORT_") else {
        return false;
    };
    let Some((port, proto_field)) = port_proto.split_once('_') else {
        return false;
    };
    if !is_port(port) {
        return false;
    }
    let (proto, field) = match proto_field.split_once('_') {
        Some((p, f)) => (p, Some(f)),
        None => (proto_field, None),
    };
    if !matches!(proto, "TCP" | "UDP" | "SCTP") {
        return false;
    }
    match field {
        None => link_url(value, Some((proto, port))).is_some(),
        Some("PROTO") => value.eq_ignore_ascii_case(proto),
        Some("PORT") => value == port,
        Some("ADDR") => is_ip(value),
        Some(_) => false,
    }
}

/// `tcp://10.96.0.7:9816` (`udp`, `sctp`; IPv6 in brackets), of the given protocol and port.
fn link_url(value: &str, expect: Option<(&str, &str)>) -> Option<()> {
    let (proto, addr) = value.split_once("://")?;
    if !matches!(proto, "tcp" | "udp" | "sctp") {
        return None;
    }
    let addr: SocketAddr = addr.parse().ok()?;
    match expect {
        Some((p, port)) if !p.eq_ignore_ascii_case(proto) || addr.port().to_string() != port => {
            None
        }
        _ => Some(()),
    }
}

/// Every password file and password variable the configuration names (and that is in force)
/// must be readable now. Errors name the key and the file or variable, never the content.
fn check_secrets(
    raw: &RawConfig,
    o: &Overrides,
    origin: &str,
    env: &[(String, String)],
) -> Result<(), ConfigError> {
    // (origin, key, secret)
    let mut sources: Vec<(&str, String, Secret)> = Vec::new();
    if let Some(f) = &o.password_file {
        sources.push((
            "command line",
            "--password-file".into(),
            Secret::File(f.clone()),
        ));
    }
    let mut layer = |origin, prefix: &str, file: &Option<PathBuf>, var: &Option<String>| {
        if let Some(f) = file {
            sources.push((
                origin,
                format!("{prefix}password_file"),
                Secret::File(f.clone()),
            ));
        }
        if let Some(v) = var {
            sources.push((
                origin,
                format!("{prefix}password_env"),
                Secret::Env(v.clone()),
            ));
        }
    };
    // The flag replaces the top-level password for every target that sets none.
    if o.password_file.is_none() {
        layer(origin, "", &raw.password_file, &raw.password_env);
    }
    // `--target` replaces the configuration's targets: theirs are not in force.
    if o.targets.is_empty() {
        for (i, t) in raw.targets.iter().flatten().enumerate() {
            layer(
                origin,
                &format!("targets[{i}]."),
                &t.password_file,
                &t.password_env,
            );
        }
    }
    for (name, p) in raw.auth_profiles.iter().flatten() {
        layer(
            origin,
            &format!("auth_profiles.{name}."),
            &p.password_file,
            &p.password_env,
        );
    }
    for (origin, key, secret) in sources {
        match &secret {
            Secret::Env(var) if !env.iter().any(|(k, _)| k == var) => {
                return Err(invalid(
                    origin,
                    key,
                    format!("environment variable {var} holding the password is not set"),
                ));
            }
            // Read it as the poller will (the value is dropped at once, never shown).
            Secret::File(_) => {
                if let Err(e) = secret.resolve() {
                    return Err(invalid(origin, key, e.to_string()));
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Builds the sources and deserializes them; an error is a `Load` error of `origin`, redacted.
pub(crate) fn deserialize<T: serde::de::DeserializeOwned>(
    builder: config::ConfigBuilder<config::builder::DefaultState>,
    origin: &str,
) -> Result<T, ConfigError> {
    builder
        .build()
        .and_then(|c| c.try_deserialize())
        .map_err(|e| ConfigError::Load {
            origin: origin.to_string(),
            message: redact_config_error(&e.to_string()),
        })
}

/// config-rs quotes offending values in its messages; a password could be one of them.
fn redact_config_error(msg: &str) -> String {
    if msg.to_ascii_lowercase().contains("password") {
        // Keep the key path, drop anything quoted that could be the value.
        let mut out = String::new();
        let mut in_quote = false;
        for ch in msg.chars() {
            if ch == '"' {
                in_quote = !in_quote;
                out.push_str(if in_quote { "\"<redacted>" } else { "\"" });
            } else if !in_quote {
                out.push(ch);
            }
        }
        out
    } else {
        msg.to_string()
    }
}

pub(crate) fn invalid(
    origin: &str,
    key: impl Into<String>,
    message: impl Into<String>,
) -> ConfigError {
    ConfigError::Invalid {
        origin: origin.to_string(),
        key: key.into(),
        message: message.into(),
    }
}

pub(crate) fn seconds(
    origin: &str,
    key: &str,
    v: Option<f64>,
    default: f64,
) -> Result<Duration, ConfigError> {
    let v = v.unwrap_or(default);
    if !(v.is_finite() && v > 0.0 && v <= 86_400.0) {
        return Err(invalid(
            origin,
            key,
            format!("must be a number of seconds in (0, 86400], got {v}"),
        ));
    }
    Ok(Duration::from_secs_f64(v))
}

fn resolve(
    raw: RawConfig,
    o: &Overrides,
    origin: &str,
    hostname: Option<String>,
) -> Result<Config, ConfigError> {
    let shard = match (&o.shard, &raw.shard) {
        (Some(s), _) => crate::config::shard::Shard::parse(s, || {
            hostname.or_else(crate::config::shard::kernel_hostname)
        })
        .map_err(|e| invalid("command line", "--shard", e.0))?,
        (None, Some(s)) => crate::config::shard::Shard::parse(s, || {
            hostname.or_else(crate::config::shard::kernel_hostname)
        })
        .map_err(|e| invalid(origin, "shard", e.0))?,
        (None, None) => crate::config::shard::Shard::default(),
    };
    let listen_s = o
        .listen
        .clone()
        .or(raw.listen.clone())
        .unwrap_or_else(|| DEFAULT_LISTEN.to_string());
    let listen: SocketAddr = listen_s.parse().map_err(|_| {
        invalid(
            origin,
            "listen",
            format!("`{listen_s}` is not an address like 0.0.0.0:{DEFAULT_PORT}"),
        )
    })?;
    let top_k = o.top_k.or(raw.top_k).unwrap_or(50);
    if top_k == 0 || top_k > 10_000 {
        return Err(invalid(origin, "top_k", "must be between 1 and 10000"));
    }

    let raw_targets: Vec<(String, RawTarget)> = if !o.targets.is_empty() {
        o.targets
            .iter()
            .enumerate()
            .map(|(i, a)| {
                (
                    format!("--target[{i}]"),
                    RawTarget {
                        address: Some(a.clone()),
                        ..Default::default()
                    },
                )
            })
            .collect()
    } else if let Some(t) = raw.targets.clone() {
        if t.is_empty() {
            return Err(invalid(
                origin,
                "targets",
                "the list is empty: name at least one target",
            ));
        }
        t.into_iter()
            .enumerate()
            .map(|(i, t)| (format!("targets[{i}]"), t))
            .collect()
    } else if let Some(list) = raw.target.as_deref() {
        let list: Vec<(String, RawTarget)> = list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|a| {
                (
                    "target".to_string(),
                    RawTarget {
                        address: Some(a.to_string()),
                        ..Default::default()
                    },
                )
            })
            .collect();
        // `","` or `" "` would otherwise start an exporter that polls nothing.
        if list.is_empty() {
            return Err(invalid(
                origin,
                "target",
                "names no address: give at least one, comma-separated",
            ));
        }
        list
    } else if raw.targets_file.is_some() {
        // The file names the targets (a sharded StatefulSet's replicas share one): no
        // default 127.0.0.1:6379 beside them, which one replica would poll and report down.
        Vec::new()
    } else {
        vec![(
            "default target".to_string(),
            RawTarget {
                address: Some(DEFAULT_TARGET.to_string()),
                ..Default::default()
            },
        )]
    };

    let profiles = crate::config::topology::auth_profiles(&raw, origin)?;
    let mut targets = Vec::with_capacity(raw_targets.len());
    let mut groups = Vec::new();
    for (key, t) in raw_targets {
        let label = match crate::config::topology::group(&key, &t, &raw, o, origin, &profiles)? {
            Some(g) => {
                let label = g.name.clone();
                groups.push(g);
                label
            }
            None => {
                let target = resolve_target(&key, t, &raw, o, origin, &profiles)?;
                let label = target.label.clone();
                targets.push(target);
                label
            }
        };
        let uses = targets
            .iter()
            .filter(|x: &&Target| x.label == label)
            .count()
            + groups
                .iter()
                .filter(|g: &&crate::config::topology::Group| g.name == label)
                .count();
        if uses > 1 {
            return Err(invalid(
                origin,
                format!("{key}.alias"),
                format!("target label `{label}` is used twice"),
            ));
        }
    }
    let topology =
        crate::config::topology::TopologyConfig::resolve(&raw, o, origin, groups, profiles)?;
    let web_file = o.web_config_file.as_ref().or(raw.web_config_file.as_ref());
    let web = match web_file {
        Some(path) => load_web_config(path)?,
        None => WebConfig::default(),
    };
    let relief = crate::config::relief::ReliefConfig::resolve(
        raw.relief.as_ref(),
        &web,
        web_file.map(PathBuf::as_path),
        listen,
        origin,
    )?;
    Ok(Config {
        listen,
        log_format: o.log_format.or(raw.log_format).unwrap_or_default(),
        top_k,
        idle_threshold_seconds: raw.idle_threshold_seconds.unwrap_or(60),
        targets,
        web,
        topology,
        relief,
        shard,
    })
}

/// Reads and checks the web config file: certificate files readable, every user's hash a
/// bcrypt hash. Errors name the file and the key, never a hash.
pub fn load_web_config(path: &Path) -> Result<WebConfig, ConfigError> {
    let origin = path.display().to_string();
    if !path.exists() {
        return Err(ConfigError::Load {
            origin,
            message: "web config file not found".to_string(),
        });
    }
    let web: WebConfig = deserialize(
        config::Config::builder()
            .add_source(config::File::from(path).format(config::FileFormat::Yaml)),
        &origin,
    )?;
    if let Some(tls) = &web.tls_server_config {
        for (key, file) in [
            ("tls_server_config.cert_file", &tls.cert_file),
            ("tls_server_config.key_file", &tls.key_file),
        ] {
            if std::fs::metadata(file).is_err() {
                return Err(invalid(
                    &origin,
                    key,
                    format!("cannot read {}", file.display()),
                ));
            }
        }
    }
    for (user, hash) in &web.basic_auth_users {
        if hash.parse::<bcrypt::HashParts>().is_err() {
            return Err(invalid(
                &origin,
                format!("basic_auth_users.{user}"),
                "is not a bcrypt hash (htpasswd -nBC 10 USER)",
            ));
        }
    }
    Ok(web)
}

/// The `password`, `password_file` and `password_env` of one configuration layer (the top
/// level, a target, an auth profile).
pub(crate) struct PasswordSources<'a> {
    pub(crate) password: &'a Option<String>,
    pub(crate) file: &'a Option<PathBuf>,
    pub(crate) env: &'a Option<String>,
}

impl PasswordSources<'_> {
    /// How many of the three are set: more than one in a layer is ambiguous.
    pub(crate) fn count(&self) -> usize {
        usize::from(self.password.is_some())
            + usize::from(self.file.is_some())
            + usize::from(self.env.is_some())
    }

    /// The layer's secret, if it names one.
    pub(crate) fn secret(&self) -> Option<Secret> {
        if let Some(v) = self.password {
            Some(Secret::Value(v.clone()))
        } else if let Some(f) = self.file {
            Some(Secret::File(f.clone()))
        } else {
            self.env.as_ref().map(|v| Secret::Env(v.clone()))
        }
    }
}

pub(crate) fn resolve_target(
    key: &str,
    t: RawTarget,
    d: &RawConfig,
    o: &Overrides,
    origin: &str,
    profiles: &crate::config::topology::AuthProfiles,
) -> Result<Target, ConfigError> {
    let address = t
        .address
        .clone()
        .ok_or_else(|| invalid(origin, format!("{key}.address"), "is missing"))?;
    let parsed =
        parse_address(&address).map_err(|m| invalid(origin, format!("{key}.address"), m))?;

    // A target's own password settings win over the top-level defaults and the flag; within one
    // layer, more than one source is ambiguous.
    let own = PasswordSources {
        password: &t.password,
        file: &t.password_file,
        env: &t.password_env,
    };
    let own_count = own.count() + usize::from(parsed.password.is_some());
    if own_count > 1 {
        return Err(invalid(
            origin,
            format!("{key}.password"),
            "set only one of password, password_file, password_env, or a password in the address",
        ));
    }
    let profile = match &t.auth {
        Some(name) => {
            if own_count > 0 || t.username.is_some() || parsed.username.is_some() {
                return Err(invalid(
                    origin,
                    format!("{key}.auth"),
                    "an auth profile replaces username and password: set one or the other",
                ));
            }
            Some(profiles.get(name).ok_or_else(|| {
                invalid(
                    origin,
                    format!("{key}.auth"),
                    format!("no auth profile named `{name}` in `auth_profiles`"),
                )
            })?)
        }
        None => None,
    };
    let password = if let Some(p) = profile {
        p.password.clone()
    } else if let Some(p) = parsed.password {
        Secret::Value(p)
    } else if let Some(s) = own.secret() {
        s
    } else if let Some(p) = &o.password_file {
        Secret::File(p.clone())
    } else {
        PasswordSources {
            password: &d.password,
            file: &d.password_file,
            env: &d.password_env,
        }
        .secret()
        .unwrap_or(Secret::None)
    };
    if let Some(alias) = &t.alias {
        if alias.is_empty() {
            return Err(invalid(origin, format!("{key}.alias"), "must not be empty"));
        }
    }
    let label = t.alias.clone().unwrap_or_else(|| parsed.endpoint.label());
    let secs = |name: &str, own: Option<f64>, shared: Option<f64>, default: f64| {
        seconds(origin, &format!("{key}.{name}"), own.or(shared), default)
    };
    let poll_interval = secs(
        "poll_interval_seconds",
        t.poll_interval_seconds,
        d.poll_interval_seconds,
        15.0,
    )?;
    let connect_timeout = secs(
        "connect_timeout_seconds",
        t.connect_timeout_seconds,
        d.connect_timeout_seconds,
        5.0,
    )?;
    let command_timeout = secs(
        "command_timeout_seconds",
        t.command_timeout_seconds,
        d.command_timeout_seconds,
        5.0,
    )?;
    let tls_requested = t.tls_ca_file.is_some()
        || t.tls_cert_file.is_some()
        || t.tls_key_file.is_some()
        || t.tls_insecure_skip_verify.is_some()
        || t.tls_server_name.is_some();
    let tls = if parsed.tls {
        let opts = TlsOptions {
            ca_file: t.tls_ca_file.or(d.tls_ca_file.clone()),
            cert_file: t.tls_cert_file.or(d.tls_cert_file.clone()),
            key_file: t.tls_key_file.or(d.tls_key_file.clone()),
            insecure_skip_verify: t
                .tls_insecure_skip_verify
                .or(d.tls_insecure_skip_verify)
                .unwrap_or(false),
            server_name: t.tls_server_name,
        };
        if opts.cert_file.is_some() != opts.key_file.is_some() {
            return Err(invalid(
                origin,
                format!("{key}.tls_cert_file"),
                "tls_cert_file and tls_key_file go together",
            ));
        }
        Some(opts)
    } else if tls_requested {
        return Err(invalid(
            origin,
            format!("{key}.address"),
            "tls_* options need a rediss:// address",
        ));
    } else {
        None
    };
    Ok(Target {
        tls,
        label,
        endpoint: parsed.endpoint,
        db: parsed.db,
        username: match profile {
            Some(p) => p.username.clone(),
            None => parsed.username.or(t.username).or(d.username.clone()),
        },
        password,
        poll_interval,
        connect_timeout,
        command_timeout,
        client_list: ClientListSchedule {
            backoff_clients: d
                .client_list_backoff_clients
                .unwrap_or(DEFAULT_BACKOFF_CLIENTS)
                .max(1),
            full_backoff_clients: d
                .client_list_full_backoff_clients
                .unwrap_or(DEFAULT_FULL_BACKOFF_CLIENTS)
                .max(1),
            max_interval: seconds(
                origin,
                "client_list_max_interval_seconds",
                d.client_list_max_interval_seconds,
                60.0,
            )?,
            // 0 turns the periodic resync off.
            resync: match d.client_list_resync_seconds {
                Some(0.0) => None,
                v => Some(seconds(
                    origin,
                    "client_list_resync_seconds",
                    v,
                    DEFAULT_RESYNC_SECONDS,
                )?),
            },
        },
    })
}

pub(crate) struct ParsedAddress {
    pub(crate) endpoint: Endpoint,
    /// `rediss://`
    pub(crate) tls: bool,
    pub(crate) db: Option<u8>,
    pub(crate) username: Option<String>,
    pub(crate) password: Option<String>,
}

/// Parses `redis://[user[:pass]@]host[:port][/db]`, `rediss://...` or `unix:///path`.
/// Error messages never repeat the address (it may hold a password).
pub(crate) fn parse_address(address: &str) -> Result<ParsedAddress, String> {
    let url = url::Url::parse(address).map_err(|e| {
        format!(
            "not a valid URL ({e}); expected redis://host:port, rediss://host:port or unix:///path"
        )
    })?;
    let username = Some(url.username())
        .filter(|u| !u.is_empty())
        .map(percent_decode);
    let password = url.password().map(percent_decode);
    match url.scheme() {
        "redis" | "rediss" => {
            let host = url
                .host_str()
                .filter(|h| !h.is_empty())
                .ok_or("has no host")?;
            let host = host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string();
            let port = url.port().unwrap_or(6379);
            let db = match url.path().trim_start_matches('/') {
                "" => None,
                p => Some(
                    p.parse::<u8>()
                        .map_err(|_| "path must be a database number, like /0".to_string())?,
                ),
            };
            Ok(ParsedAddress {
                endpoint: Endpoint::Tcp { host, port },
                tls: url.scheme() == "rediss",
                db,
                username,
                password,
            })
        }
        "unix" => {
            let path = url.path();
            if path.is_empty() || path == "/" {
                return Err(
                    "unix:// address has no socket path (unix:///run/redis/redis.sock)".to_string(),
                );
            }
            Ok(ParsedAddress {
                endpoint: Endpoint::Unix(PathBuf::from(path)),
                tls: false,
                db: None,
                username,
                password,
            })
        }
        other => Err(format!(
            "unsupported scheme `{other}`; use redis://, rediss:// or unix://"
        )),
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = |b: u8| (b as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn write(ext: &str, body: &str) -> tempfile::NamedTempFile {
        let f = tempfile::Builder::new()
            .suffix(ext)
            .tempfile()
            .expect("tempfile");
        std::fs::write(f.path(), body).expect("write");
        f
    }

    #[test]
    fn defaults_without_any_configuration() {
        let c = load_with_env(None, &Overrides::default(), env(&[])).expect("defaults are valid");
        assert_eq!(c.listen.port(), DEFAULT_PORT);
        assert_eq!(c.targets.len(), 1);
        assert_eq!(c.targets[0].label, "127.0.0.1:6379");
        assert_eq!(c.targets[0].poll_interval, Duration::from_secs(15));
        assert_eq!(c.top_k, 50);
        assert_eq!(c.targets[0].client_list, ClientListSchedule::default());
    }

    #[test]
    fn client_list_backs_off_with_the_client_count() {
        let s = ClientListSchedule::default();
        let base = Duration::from_secs(15);
        // Read whole (servers before 6.2): the stall limits it.
        assert_eq!(s.interval(base, 100.0, false), base);
        assert_eq!(s.interval(base, 5000.0, false), base);
        assert_eq!(s.interval(base, 10_000.0, false), Duration::from_secs(30));
        assert_eq!(s.interval(base, 50_000.0, false), Duration::from_secs(60));
        assert_eq!(s.interval(base, f64::NAN, false), base);
        // Read in chunks: every poll up to 50,000 clients, then in proportion.
        assert_eq!(s.interval(base, 50_000.0, true), base);
        assert_eq!(s.interval(base, 100_000.0, true), Duration::from_secs(30));
        assert_eq!(s.interval(base, 1e6, true), Duration::from_secs(60));
        assert_eq!(s.resync, Some(Duration::from_secs(900)));
    }

    #[test]
    fn client_list_keys_are_read_and_checked() {
        let f = write(
            ".toml",
            "client_list_resync_seconds = 0\nclient_list_full_backoff_clients = 700\n",
        );
        let c = load_with_env(
            Some(f.path()),
            &Overrides::default(),
            env(&[("REDIS_CLIENTS_EXPORTER_CLIENT_LIST_BACKOFF_CLIENTS", "9000")]),
        )
        .expect("valid");
        let s = c.targets[0].client_list;
        assert_eq!(
            (s.resync, s.full_backoff_clients, s.backoff_clients),
            (None, 700, 9000)
        );
        let f = write(".toml", "client_list_resync_seconds = -5\n");
        let e = load_with_env(Some(f.path()), &Overrides::default(), env(&[]))
            .expect_err("negative resync")
            .to_string();
        assert!(e.contains("client_list_resync_seconds"), "{e}");
    }

    #[test]
    fn layers_file_then_env_then_flags() {
        let f = write(".toml", "top_k = 7\nlisten = \"127.0.0.1:1\"\n[[targets]]\naddress = \"redis://h:1\"\nalias = \"a\"\npassword = \"0123\"\n");
        let c = load_with_env(
            Some(f.path()),
            &Overrides::default(),
            env(&[("REDIS_CLIENTS_EXPORTER_TOP_K", "9")]),
        )
        .expect("valid");
        assert_eq!(c.top_k, 9);
        assert_eq!(c.listen.port(), 1);
        assert_eq!(c.targets[0].label, "a");
        // Secrets are never parsed as numbers.
        assert_eq!(c.targets[0].password, Secret::Value("0123".into()));
        let o = Overrides {
            top_k: Some(3),
            listen: Some("127.0.0.1:2".into()),
            ..Default::default()
        };
        let c = load_with_env(
            Some(f.path()),
            &o,
            env(&[("REDIS_CLIENTS_EXPORTER_TOP_K", "9")]),
        )
        .expect("valid");
        assert_eq!(c.top_k, 3);
        assert_eq!(c.listen.port(), 2);
    }

    #[test]
    fn yaml_and_env_targets() {
        let f = write(".yaml", "targets:\n  - address: unix:///tmp/r.sock\n  - address: rediss://[::1]:7000/2\n    poll_interval_seconds: 1.5\n");
        let c = load_with_env(Some(f.path()), &Overrides::default(), env(&[])).expect("valid");
        assert_eq!(c.targets[0].label, "unix:/tmp/r.sock");
        assert_eq!(c.targets[1].label, "[::1]:7000");
        assert_eq!(
            c.targets[1].endpoint,
            Endpoint::Tcp {
                host: "::1".into(),
                port: 7000,
            }
        );
        assert!(c.targets[1].tls.is_some(), "rediss:// must be TLS");
        assert!(c.targets[0].tls.is_none());
        assert_eq!(c.targets[1].db, Some(2));
        assert_eq!(c.targets[1].poll_interval, Duration::from_millis(1500));
        let c = load_with_env(
            None,
            &Overrides::default(),
            env(&[
                ("REDIS_CLIENTS_EXPORTER_TARGET", "redis://a:1, redis://b:2"),
                ("REDIS_CLIENTS_EXPORTER_PASSWORD", "s3cret"),
            ]),
        )
        .expect("valid");
        assert_eq!(c.targets.len(), 2);
        assert_eq!(c.targets[1].password, Secret::Value("s3cret".into()));
    }

    #[test]
    fn errors_name_the_key_and_the_file() {
        let f = write(".toml", "[[targets]]\naddress = \"http://h:1\"\n");
        let e = load_with_env(Some(f.path()), &Overrides::default(), env(&[]))
            .expect_err("bad scheme")
            .to_string();
        assert!(e.contains("targets[0].address"), "{e}");
        assert!(e.contains(&f.path().display().to_string()), "{e}");
        let f = write(".toml", "top_k = \"many\"\n");
        let e = load_with_env(Some(f.path()), &Overrides::default(), env(&[]))
            .expect_err("bad type")
            .to_string();
        assert!(e.contains("top_k"), "{e}");
        assert!(e.contains(&f.path().display().to_string()), "{e}");
        let f = write(
            ".toml",
            "[[targets]]\naddress = \"redis://h:1\"\npoll_interval_seconds = 0\n",
        );
        let e = load_with_env(Some(f.path()), &Overrides::default(), env(&[]))
            .expect_err("zero interval")
            .to_string();
        assert!(e.contains("targets[0].poll_interval_seconds"), "{e}");
        let f = write(".toml", "bogus = 1\n");
        let e = load_with_env(Some(f.path()), &Overrides::default(), env(&[]))
            .expect_err("unknown key")
            .to_string();
        assert!(e.contains("bogus"), "{e}");
    }

    /// What Kubernetes injects for a Service `redis-clients-exporter` (9816, port name
    /// `metrics`) and one `redis-clients-exporter-canary` on IPv6 with a UDP port too.
    const SERVICE_LINKS: &[(&str, &str)] = &[
        ("REDIS_CLIENTS_EXPORTER_SERVICE_HOST", "10.96.0.7"),
        ("REDIS_CLIENTS_EXPORTER_SERVICE_PORT", "9816"),
        ("REDIS_CLIENTS_EXPORTER_SERVICE_PORT_METRICS", "9816"),
        ("REDIS_CLIENTS_EXPORTER_PORT", "tcp://10.96.0.7:9816"),
        (
            "REDIS_CLIENTS_EXPORTER_PORT_9816_TCP",
            "tcp://10.96.0.7:9816",
        ),
        ("REDIS_CLIENTS_EXPORTER_PORT_9816_TCP_PROTO", "tcp"),
        ("REDIS_CLIENTS_EXPORTER_PORT_9816_TCP_PORT", "9816"),
        ("REDIS_CLIENTS_EXPORTER_PORT_9816_TCP_ADDR", "10.96.0.7"),
        ("REDIS_CLIENTS_EXPORTER_CANARY_SERVICE_HOST", "fd00::7"),
        ("REDIS_CLIENTS_EXPORTER_CANARY_SERVICE_PORT", "9816"),
        (
            "REDIS_CLIENTS_EXPORTER_CANARY_SERVICE_PORT_HTTP_METRICS",
            "9816",
        ),
        ("REDIS_CLIENTS_EXPORTER_CANARY_PORT", "tcp://[fd00::7]:9816"),
        (
            "REDIS_CLIENTS_EXPORTER_CANARY_PORT_9816_TCP",
            "tcp://[fd00::7]:9816",
        ),
        (
            "REDIS_CLIENTS_EXPORTER_CANARY_PORT_53_UDP",
            "udp://[fd00::7]:53",
        ),
        ("REDIS_CLIENTS_EXPORTER_CANARY_PORT_53_UDP_PROTO", "udp"),
        ("REDIS_CLIENTS_EXPORTER_CANARY_PORT_53_UDP_PORT", "53"),
        ("REDIS_CLIENTS_EXPORTER_CANARY_PORT_53_UDP_ADDR", "fd00::7"),
        ("REDIS_CLIENTS_EXPORTER_CANARY_PORT_9_SCTP_PROTO", "sctp"),
    ];

    #[test]
    fn kubernetes_service_links_are_not_configuration() {
        for (k, v) in SERVICE_LINKS {
            assert!(is_service_link(k, v), "{k}={v}");
        }
        let mut vars = env(SERVICE_LINKS);
        vars.push(("REDIS_CLIENTS_EXPORTER_TOP_K".into(), "9".into()));
        let c = load_with_env(None, &Overrides::default(), vars).expect("links are ignored");
        assert_eq!(c.top_k, 9, "the real configuration variable still counts");
    }

    #[test]
    fn other_variables_of_ours_are_errors_that_name_the_variable() {
        // Link names with values Kubernetes never gives, and names of no shape at all.
        for (k, v) in [
            ("REDIS_CLIENTS_EXPORTER_SERVICE_HOST", "redis.example"),
            ("REDIS_CLIENTS_EXPORTER_SERVICE_PORT", "http"),
            ("REDIS_CLIENTS_EXPORTER_SERVICE_PORT_METRICS", "0"),
            ("REDIS_CLIENTS_EXPORTER_SERVICE_PORT__X", "9816"),
            ("REDIS_CLIENTS_EXPORTER_PORT", "9816"),
            ("REDIS_CLIENTS_EXPORTER_PORT", "http://10.96.0.7:9816"),
            (
                "REDIS_CLIENTS_EXPORTER_PORT_9816_TCP",
                "tcp://10.96.0.7:9817",
            ),
            ("REDIS_CLIENTS_EXPORTER_PORT_9816_TCP_PROTO", "udp"),
            ("REDIS_CLIENTS_EXPORTER_PORT_9816_TCP_PORT", "9817"),
            ("REDIS_CLIENTS_EXPORTER_PORT_9816_HTTP_PORT", "9816"),
            ("REDIS_CLIENTS_EXPORTER_PORT_9816_TCP_HOST", "10.96.0.7"),
            ("REDIS_CLIENTS_EXPORTER_TOPK", "9"),
            ("REDIS_CLIENTS_EXPORTER_SERVICE", "x"),
        ] {
            assert!(!is_service_link(k, v), "{k}={v}");
            let f = write(".toml", "top_k = 5\n");
            match load_with_env(Some(f.path()), &Overrides::default(), env(&[(k, v)])) {
                Err(ConfigError::Invalid { origin, key, .. }) => {
                    assert_eq!((origin.as_str(), key.as_str()), ("environment", k))
                }
                other => panic!("{k}={v}: {other:?}"),
            }
        }
        // Nested variables are checked by their first part.
        load_with_env(
            None,
            &Overrides::default(),
            env(&[("REDIS_CLIENTS_EXPORTER_AUTH_PROFILES__APP__USERNAME", "u")]),
        )
        .expect("nested key");
    }

    /// The service-link shapes can be ignored only because no configuration key has one: a new
    /// key named like `port`, `*_port`, `*_service_host`... fails here, not in a customer's pod.
    #[test]
    fn no_configuration_key_looks_like_a_service_link() {
        let keys: Vec<(&str, &str)> = struct_fields::<RawConfig>()
            .iter()
            .map(|k| ("", *k))
            .chain(
                struct_fields::<RawTarget>()
                    .iter()
                    .map(|k| ("TARGETS__0__", *k)),
            )
            .chain(
                struct_fields::<RawAuth>()
                    .iter()
                    .map(|k| ("AUTH_PROFILES__A__", *k)),
            )
            .collect();
        assert!(keys.len() > 40, "introspection found {} keys", keys.len());
        assert!(keys.contains(&("", "targets_file")), "{keys:?}");
        for (nest, key) in keys {
            let name = format!("{ENV_PREFIX}_{nest}{}", key.to_ascii_uppercase());
            for value in [
                "10.96.0.7",
                "9816",
                "tcp://10.96.0.7:9816",
                "tcp",
                "fd00::7",
            ] {
                assert!(!is_service_link(&name, value), "{name}={value}");
            }
        }
    }

    #[test]
    fn a_target_variable_naming_no_address_is_an_error() {
        for list in [",", " , ", ""] {
            let e = load_with_env(
                None,
                &Overrides::default(),
                env(&[("REDIS_CLIENTS_EXPORTER_TARGET", list)]),
            )
            .expect_err(list)
            .to_string();
            assert!(
                e.contains("key `target`") && e.contains("no address"),
                "{e}"
            );
        }
    }

    #[test]
    fn password_files_and_variables_must_be_readable_when_loaded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("missing-pw");
        let good = dir.path().join("pw");
        std::fs::write(&good, "hunter2\n").expect("write");
        let binary = dir.path().join("binary-pw");
        std::fs::write(&binary, b"hunter2\xff\n").expect("write");
        let checked = |body: &str, o: &Overrides, vars: &[(&str, &str)]| {
            let f = write(".toml", body);
            load_checked_with_env(Some(f.path()), o, env(vars)).map_err(|e| e.to_string())
        };
        let none = Overrides::default();
        let m = missing.display().to_string();
        for (body, key) in [
            (format!("password_file = \"{m}\"\n"), "key `password_file`"),
            (
                format!("[[targets]]\naddress = \"redis://h:1\"\npassword_file = \"{m}\"\n"),
                "key `targets[0].password_file`",
            ),
            (
                format!("[auth_profiles.ops]\npassword_file = \"{m}\"\n"),
                "key `auth_profiles.ops.password_file`",
            ),
            (
                format!("password_file = \"{}\"\n", dir.path().display()),
                "key `password_file`",
            ),
        ] {
            let e = checked(&body, &none, &[]).expect_err(&body);
            assert!(e.contains(key), "{e}");
            assert!(e.contains("cannot read password file"), "{e}");
        }
        let e = checked(
            "top_k = 5\n",
            &Overrides {
                password_file: Some(missing.clone()),
                ..none.clone()
            },
            &[],
        )
        .expect_err("flag");
        assert!(
            e.contains("command line: key `--password-file`") && e.contains(&m),
            "{e}"
        );
        // Not UTF-8: every connect would fail; the message never shows the bytes.
        let e = checked(
            &format!("password_file = \"{}\"\n", binary.display()),
            &none,
            &[],
        )
        .expect_err("binary");
        assert!(
            e.contains("key `password_file`") && !e.contains("hunter2"),
            "{e}"
        );
        let e = checked("password_env = \"RCE_TEST_PW\"\n", &none, &[]).expect_err("env");
        assert!(
            e.contains("key `password_env`") && e.contains("RCE_TEST_PW"),
            "{e}"
        );
        // Readable ones pass, and none of this is read by the unchecked loader.
        let ok = format!(
            "password_file = \"{}\"\npassword_env = \"RCE_TEST_PW\"\n",
            good.display()
        );
        checked(&ok, &none, &[("RCE_TEST_PW", "x")]).expect("readable");
        let f = write(".toml", &format!("password_file = \"{m}\"\n"));
        load_with_env(Some(f.path()), &none, env(&[])).expect("unchecked");
        // A file target replaced by --target is not in force.
        checked(
            &format!("[[targets]]\naddress = \"redis://h:1\"\npassword_file = \"{m}\"\n"),
            &Overrides {
                targets: vec!["redis://h:2".into()],
                ..none.clone()
            },
            &[],
        )
        .expect("replaced target");
    }

    #[test]
    fn passwords_in_urls_are_moved_out_and_never_echoed() {
        let c = load_with_env(
            None,
            &Overrides {
                targets: vec!["redis://app:p%40ss@h:6380".into()],
                ..Default::default()
            },
            env(&[]),
        )
        .expect("valid");
        assert_eq!(c.targets[0].label, "h:6380");
        assert_eq!(c.targets[0].username.as_deref(), Some("app"));
        assert_eq!(c.targets[0].password, Secret::Value("p@ss".into()));
        assert!(!format!("{c:?}").contains("p@ss"));
        let e = load_with_env(
            None,
            &Overrides {
                targets: vec!["ftp://u:hunter2@h".into()],
                ..Default::default()
            },
            env(&[]),
        )
        .expect_err("bad scheme");
        assert!(!e.to_string().contains("hunter2"), "{e}");
        let f = write(".toml", "password = [1]\n");
        let e = load_with_env(
            Some(f.path()),
            &Overrides::default(),
            env(&[("REDIS_CLIENTS_EXPORTER_PASSWORD", "hunter2")]),
        )
        .map(|_| ())
        .map_err(|e| e.to_string());
        assert!(!format!("{e:?}").contains("hunter2"));
    }
}
