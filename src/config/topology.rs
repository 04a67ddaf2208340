//! Configuration of everything that turns into more than one poller or into pollers decided at
//! run time: auth profiles, cluster and Sentinel groups, `/scrape` dynamic targets and the
//! watched targets file. The parsing of one target stays in `config.rs`; this module resolves
//! the new keys with the same rules (errors name the key and the file, secrets stay `Secret`s).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::config::{
    deserialize, invalid, resolve_target, seconds, ConfigError, Endpoint, Overrides,
    PasswordSources, RawConfig, RawTarget, Secret, Target,
};

/// Named credentials: a username and a password source, never printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthProfile {
    pub username: Option<String>,
    pub password: Secret,
    /// The `/scrape` targets these credentials may be sent to; empty (the default): none, so a
    /// profile is usable by `/scrape` only once it says where. Configured targets, clusters,
    /// Sentinel sets and the targets file are written by the operator and are not limited.
    pub scrape_targets: Allowlist,
}

pub type AuthProfiles = BTreeMap<String, AuthProfile>;

pub(crate) fn auth_profiles(raw: &RawConfig, origin: &str) -> Result<AuthProfiles, ConfigError> {
    let mut out = AuthProfiles::new();
    for (name, p) in raw.auth_profiles.iter().flatten() {
        let key = format!("auth_profiles.{name}");
        let sources = PasswordSources {
            password: &p.password,
            file: &p.password_file,
            env: &p.password_env,
        };
        if sources.count() > 1 {
            return Err(invalid(
                origin,
                format!("{key}.password"),
                "set only one of password, password_file, password_env",
            ));
        }
        let password = sources.secret().unwrap_or(Secret::None);
        let scrape_targets =
            Allowlist::resolve(p.targets.as_ref(), origin, &format!("{key}.targets"))?;
        out.insert(
            name.clone(),
            AuthProfile {
                username: p.username.clone(),
                password,
                scrape_targets,
            },
        );
    }
    Ok(out)
}

/// `scrape_allow` or a profile's `targets` as written: a list, or (from the environment, where
/// config-rs cannot build lists) one comma-separated string.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub(crate) enum RawAllowlist {
    List(Vec<String>),
    Joined(String),
}

impl RawAllowlist {
    fn entries(&self) -> Vec<(usize, &str)> {
        let all: Vec<&str> = match self {
            RawAllowlist::List(v) => v.iter().map(String::as_str).collect(),
            RawAllowlist::Joined(s) => s.split(',').collect(),
        };
        all.into_iter()
            .map(str::trim)
            .enumerate()
            .filter(|(_, e)| !e.is_empty())
            .collect()
    }
}

/// Which `host:port`s a dynamic target may be: `scrape_allow`, and each auth profile's
/// `targets`. Entries are `HOST:PORT` or `HOST:LOW-HIGH`, HOST an IPv4 address, an IPv4 CIDR
/// (`10.0.0.0/8`), `[IPv6]`, `[IPv6/len]` or a host name. Names are compared with the name in
/// the target as written, never resolved: `redis.internal` allows `redis://redis.internal`
/// only, not the address it resolves to, and an address is never allowed by a name entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Allowlist(Vec<AllowEntry>);

#[derive(Debug, Clone, PartialEq, Eq)]
struct AllowEntry {
    host: AllowHost,
    ports: (u16, u16),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum AllowHost {
    /// Lowercase.
    Name(String),
    /// The network address (host bits zero) and the prefix length.
    Net(IpAddr, u8),
}

impl Allowlist {
    /// Parses entries (see the type); the error says which entry and why.
    pub fn parse<'a>(entries: impl IntoIterator<Item = &'a str>) -> Result<Allowlist, String> {
        entries
            .into_iter()
            .enumerate()
            .map(|(i, e)| parse_allow_entry(e).map_err(|m| format!("[{i}] `{e}`: {m}")))
            .collect::<Result<Vec<_>, _>>()
            .map(Allowlist)
    }

    fn resolve(
        raw: Option<&RawAllowlist>,
        origin: &str,
        key: &str,
    ) -> Result<Allowlist, ConfigError> {
        let Some(raw) = raw else {
            return Ok(Allowlist::default());
        };
        let mut out = Vec::new();
        for (i, e) in raw.entries() {
            let entry = parse_allow_entry(e)
                .map_err(|m| invalid(origin, format!("{key}[{i}]"), format!("`{e}`: {m}")))?;
            out.push(entry);
        }
        Ok(Allowlist(out))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when `host` (as in the target URL, brackets removed) and `port` match an entry.
    pub fn allows(&self, host: &str, port: u16) -> bool {
        let ip = host.parse::<IpAddr>().ok().map(|ip| ip.to_canonical());
        self.0.iter().any(|e| {
            let host_ok = match (&e.host, ip) {
                (AllowHost::Net(net, len), Some(ip)) => in_net(ip, *net, *len),
                (AllowHost::Name(name), None) => name.eq_ignore_ascii_case(host),
                _ => false,
            };
            host_ok && (e.ports.0..=e.ports.1).contains(&port)
        })
    }
}

fn mask(ip: IpAddr, len: u8) -> IpAddr {
    match ip {
        IpAddr::V4(a) => {
            let m = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            IpAddr::V4((u32::from(a) & m).into())
        }
        IpAddr::V6(a) => {
            let m = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            IpAddr::V6((u128::from(a) & m).into())
        }
    }
}

fn in_net(ip: IpAddr, net: IpAddr, len: u8) -> bool {
    ip.is_ipv4() == net.is_ipv4() && mask(ip, len) == net
}

fn parse_allow_entry(e: &str) -> Result<AllowEntry, String> {
    let (host, ports) = if let Some(rest) = e.strip_prefix('[') {
        let (inside, after) = rest
            .split_once(']')
            .ok_or("an IPv6 address needs its closing `]`")?;
        let ports = after
            .strip_prefix(':')
            .ok_or("needs a port after the address: [IPv6]:6379")?;
        let (addr, len) = match inside.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (inside, None),
        };
        let addr: std::net::Ipv6Addr = addr
            .parse()
            .map_err(|_| "not an IPv6 address inside `[ ]`")?;
        (net(IpAddr::V6(addr), len)?, ports)
    } else {
        let (host, ports) = e
            .rsplit_once(':')
            .ok_or("needs a port: HOST:PORT or HOST:LOW-HIGH (e.g. 10.0.0.0/8:6379)")?;
        if host.contains(':') {
            return Err("write an IPv6 address in brackets: [fd00::/8]:6379".into());
        }
        let host = match host.split_once('/') {
            Some((a, l)) => {
                let addr: std::net::Ipv4Addr = a
                    .parse()
                    .map_err(|_| "a CIDR must be an IPv4 address/len or [IPv6/len]")?;
                net(IpAddr::V4(addr), Some(l))?
            }
            None => match host.parse::<std::net::Ipv4Addr>() {
                Ok(a) => AllowHost::Net(IpAddr::V4(a), 32),
                Err(_) => {
                    let ok = !host.is_empty()
                        && host
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
                    if !ok {
                        return Err("the host must be an IP address, a CIDR or a host name".into());
                    }
                    AllowHost::Name(host.to_ascii_lowercase())
                }
            },
        };
        (host, ports)
    };
    let port = |p: &str| -> Result<u16, String> {
        p.parse::<u16>()
            .ok()
            .filter(|&p| p > 0)
            .ok_or_else(|| format!("`{p}` is not a port (1-65535)"))
    };
    let ports = match ports.split_once('-') {
        Some((lo, hi)) => (port(lo)?, port(hi)?),
        None => (port(ports)?, port(ports)?),
    };
    if ports.0 > ports.1 {
        return Err("the port range is reversed (LOW-HIGH)".into());
    }
    Ok(AllowEntry { host, ports })
}

/// `addr/len` as a network; host bits set are an error (`10.0.0.5/8` is likely a typo).
fn net(addr: IpAddr, len: Option<&str>) -> Result<AllowHost, String> {
    let addr = addr.to_canonical();
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let len = match len {
        None => max,
        Some(l) => l
            .parse::<u8>()
            .ok()
            .filter(|&l| l <= max)
            .ok_or_else(|| format!("`/{l}` is not a prefix length (0-{max})"))?,
    };
    if mask(addr, len) != addr {
        return Err(format!(
            "host bits are set: the network is {}/{len}",
            mask(addr, len)
        ));
    }
    Ok(AllowHost::Net(addr, len))
}

/// A target that expands to several nodes.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    /// The `cluster` label, and the prefix of each node's `target` label.
    pub name: String,
    pub kind: GroupKind,
    /// What every node is polled with (credentials, timeouts, TLS); its endpoint is the seed.
    pub node: Target,
}

#[derive(Debug, Clone, PartialEq)]
pub enum GroupKind {
    /// Redis Cluster: nodes from CLUSTER SHARDS (7.0+) or CLUSTER NODES, asked of the seed and
    /// then of any known node.
    Cluster,
    /// Sentinel: the current primary of `master` and its replicas, asked of the sentinels.
    Sentinel {
        master: String,
        sentinels: Vec<Target>,
    },
}

impl Group {
    /// The poller target of one node of this group: the template with the node's endpoint.
    pub fn node_target(&self, endpoint: Endpoint) -> Target {
        let mut t = self.node.clone();
        t.label = format!("{}/{}", self.name, endpoint.label());
        t.endpoint = endpoint;
        t
    }
}

/// Resolves a `cluster`/`sentinel_master` target into a [`Group`]; `None` for a plain target.
pub(crate) fn group(
    key: &str,
    t: &RawTarget,
    d: &RawConfig,
    o: &Overrides,
    origin: &str,
    profiles: &AuthProfiles,
) -> Result<Option<Group>, ConfigError> {
    let cluster = t.cluster.unwrap_or(false);
    let sentinel = t.sentinel_master.is_some() || t.sentinels.is_some();
    if !cluster && !sentinel {
        if t.sentinel_auth.is_some() {
            return Err(invalid(
                origin,
                format!("{key}.sentinel_auth"),
                "needs sentinel_master and sentinels",
            ));
        }
        return Ok(None);
    }
    if cluster && sentinel {
        return Err(invalid(
            origin,
            format!("{key}.cluster"),
            "a target is either a cluster or a Sentinel master set, not both",
        ));
    }
    let strip = |t: &RawTarget| RawTarget {
        cluster: None,
        sentinel_master: None,
        sentinels: None,
        sentinel_auth: None,
        ..t.clone()
    };
    if cluster {
        let node = resolve_target(key, strip(t), d, o, origin, profiles)?;
        if matches!(node.endpoint, Endpoint::Unix(_)) {
            return Err(invalid(
                origin,
                format!("{key}.address"),
                "a cluster seed must be a redis://, rediss://, valkey:// or valkeys:// address",
            ));
        }
        return Ok(Some(Group {
            name: node.label.clone(),
            kind: GroupKind::Cluster,
            node,
        }));
    }
    let master = t
        .sentinel_master
        .clone()
        .filter(|m| !m.is_empty())
        .ok_or_else(|| invalid(origin, format!("{key}.sentinel_master"), "is missing"))?;
    let addrs = t.sentinels.clone().unwrap_or_default();
    if addrs.is_empty() {
        return Err(invalid(
            origin,
            format!("{key}.sentinels"),
            "name at least one sentinel address (redis://host:26379)",
        ));
    }
    if t.address.is_some() {
        return Err(invalid(
            origin,
            format!("{key}.address"),
            "a Sentinel target has no address: the sentinels say where the nodes are",
        ));
    }
    let mut sentinels = Vec::with_capacity(addrs.len());
    for (i, a) in addrs.iter().enumerate() {
        let skey = format!("{key}.sentinels[{i}]");
        let s = resolve_target(
            &skey,
            RawTarget {
                address: Some(a.clone()),
                auth: t.sentinel_auth.clone(),
                ..Default::default()
            },
            // The sentinels' credentials come only from `sentinel_auth`, never from the data
            // nodes' defaults.
            &RawConfig {
                username: None,
                password: None,
                password_file: None,
                password_env: None,
                ..d.clone()
            },
            &Overrides {
                password_file: None,
                ..o.clone()
            },
            origin,
            profiles,
        )?;
        sentinels.push(s);
    }
    // The template: the data nodes' credentials and timeouts; the endpoint is replaced per node.
    // Its address is a placeholder with the sentinels' scheme (TLS sentinels, TLS nodes), so
    // that credentials written in a sentinel's URL never reach the data nodes.
    let scheme = if sentinels.first().is_some_and(|s| s.tls.is_some()) {
        "rediss"
    } else {
        "redis"
    };
    let node = resolve_target(
        key,
        RawTarget {
            address: Some(format!("{scheme}://sentinel-discovered:6379")),
            ..strip(t)
        },
        d,
        o,
        origin,
        profiles,
    )?;
    let name = t.alias.clone().unwrap_or_else(|| master.clone());
    Ok(Some(Group {
        name,
        kind: GroupKind::Sentinel { master, sentinels },
        node,
    }))
}

/// Builds targets named at run time (`/scrape?target=`, the targets file) with the same rules
/// and defaults as the configuration's own targets.
#[derive(Clone, PartialEq)]
pub struct Resolver {
    raw: Arc<RawConfig>,
    overrides: Overrides,
    profiles: AuthProfiles,
}

impl std::fmt::Debug for Resolver {
    // RawConfig may hold a top-level password: never print it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolver")
            .field("profiles", &self.profiles.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScrapeTargetError {
    #[error("{0}")]
    Invalid(String),
    /// The same words whatever the list holds: a caller learns nothing about it.
    #[error("this target is not allowed by scrape_allow")]
    NotAllowed,
    /// Unknown, or not allowed for this target: one answer, so that callers cannot list the
    /// profiles or their targets.
    #[error("auth profile `{0}` is unknown or may not be sent to this target")]
    Profile(String),
}

impl Resolver {
    /// A `/scrape` target: `redis://` or `rediss://` only (a network caller must not make the
    /// exporter open local sockets), no credentials in the URL, its `host:port` in `allow`. It
    /// gets credentials only from the profile named by `auth`, and only if that profile lists
    /// the target: never the top-level `username`/`password*` nor `--password-file`, which the
    /// operator meant for the configured targets. The database number is dropped: INFO and
    /// CLIENT LIST are server-wide, and `/0` and `/1` of one server must be one poller.
    pub fn scrape_target(
        &self,
        address: &str,
        auth: Option<&str>,
        allow: &Allowlist,
    ) -> Result<Target, ScrapeTargetError> {
        // Service discovery lists `host:port` (file_sd, Kubernetes endpoints): without a scheme
        // it is `redis://host:port`, as for the Go redis_exporter. Every check below still
        // applies to what it spells.
        let with_scheme;
        let address = if address.contains("://") {
            address
        } else {
            with_scheme = format!("redis://{address}");
            &with_scheme
        };
        let parsed = crate::config::parse_address(address).map_err(ScrapeTargetError::Invalid)?;
        if parsed.username.is_some() || parsed.password.is_some() {
            return Err(ScrapeTargetError::Invalid(
                "credentials are not accepted in the target URL; name an auth profile with &auth=NAME"
                    .into(),
            ));
        }
        let Endpoint::Tcp { host, port } = &parsed.endpoint else {
            return Err(ScrapeTargetError::Invalid(
                "only redis://, rediss://, valkey:// and valkeys:// targets can be scraped dynamically"
                    .into(),
            ));
        };
        if !allow.allows(host, *port) {
            return Err(ScrapeTargetError::NotAllowed);
        }
        if let Some(name) = auth {
            if !self
                .profiles
                .get(name)
                .is_some_and(|p| p.scrape_targets.allows(host, *port))
            {
                return Err(ScrapeTargetError::Profile(name.to_string()));
            }
        }
        // One spelling per server, so that `REDIS.internal` and `redis.internal`, or `::1` and
        // `0::1`, are one poller (one connection) and not two.
        let host = match host.parse::<IpAddr>() {
            Ok(ip) => ip.to_canonical().to_string(),
            Err(_) => host.to_ascii_lowercase(),
        };
        let endpoint = Endpoint::Tcp { host, port: *port };
        let raw = RawTarget {
            address: Some(address.to_string()),
            auth: auth.map(str::to_string),
            ..Default::default()
        };
        let defaults = RawConfig {
            username: None,
            password: None,
            password_file: None,
            password_env: None,
            ..(*self.raw).clone()
        };
        let overrides = Overrides {
            password_file: None,
            ..self.overrides.clone()
        };
        let mut target = resolve_target(
            "target",
            raw,
            &defaults,
            &overrides,
            "/scrape",
            &self.profiles,
        )
        .map_err(|e| ScrapeTargetError::Invalid(e.to_string()))?;
        target.label = endpoint.label();
        target.endpoint = endpoint;
        target.db = None;
        Ok(target)
    }

    /// Reads the targets file: `targets:` with entries like the configuration's `targets`
    /// (plain targets only). Errors name the file and the key.
    pub fn targets_file(&self, path: &Path) -> Result<Vec<Target>, ConfigError> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct File {
            #[serde(default)]
            targets: Vec<RawTarget>,
        }
        let origin = path.display().to_string();
        // YAML reads JSON too, so one parser serves both extensions.
        let format = match path.extension().and_then(|e| e.to_str()) {
            Some("toml") => config::FileFormat::Toml,
            _ => config::FileFormat::Yaml,
        };
        let file: File = deserialize(
            config::Config::builder().add_source(config::File::from(path).format(format)),
            &origin,
        )?;
        let mut out: Vec<Target> = Vec::with_capacity(file.targets.len());
        for (i, t) in file.targets.into_iter().enumerate() {
            let key = format!("targets[{i}]");
            if t.cluster.is_some() || t.sentinel_master.is_some() || t.sentinels.is_some() {
                return Err(invalid(
                    &origin,
                    format!("{key}.cluster"),
                    "clusters and Sentinel sets belong in the main configuration",
                ));
            }
            let target =
                resolve_target(&key, t, &self.raw, &self.overrides, &origin, &self.profiles)?;
            if out.iter().any(|x| x.label == target.label) {
                return Err(invalid(
                    &origin,
                    format!("{key}.alias"),
                    format!("target label `{}` is used twice", target.label),
                ));
            }
            out.push(target);
        }
        Ok(out)
    }
}

/// `/scrape?target=` settings.
#[derive(Debug, Clone, PartialEq)]
pub struct DynamicConfig {
    /// The `host:port`s `/scrape` may connect to; empty (the default) turns `/scrape` off.
    pub allow: Allowlist,
    /// New targets beyond this many are refused (503) unless one that has never been up can
    /// make room.
    pub max_targets: usize,
    /// A dynamic target not scraped for this long is stopped and forgotten.
    pub idle_timeout: Duration,
    /// The same for a target that has never been up: junk should not hold a slot for long.
    pub never_up_timeout: Duration,
    /// How long the first scrape of a new target waits for its first poll.
    pub first_poll_wait: Duration,
}

impl DynamicConfig {
    /// `/scrape` answers only with an allowlist and room for at least one target.
    pub fn enabled(&self) -> bool {
        !self.allow.is_empty() && self.max_targets > 0
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct TargetsFile {
    pub path: PathBuf,
    pub interval: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TopologyConfig {
    pub groups: Vec<Group>,
    /// How often clusters and Sentinel sets are asked again (earlier when a node's role or
    /// reachability changes).
    pub discovery_interval: Duration,
    pub dynamic: DynamicConfig,
    pub targets_file: Option<TargetsFile>,
    pub resolver: Resolver,
}

impl Default for TopologyConfig {
    fn default() -> Self {
        Self {
            groups: Vec::new(),
            discovery_interval: Duration::from_secs(30),
            dynamic: DynamicConfig {
                allow: Allowlist::default(),
                max_targets: 256,
                idle_timeout: Duration::from_secs(600),
                never_up_timeout: Duration::from_secs(60),
                first_poll_wait: Duration::from_secs(5),
            },
            targets_file: None,
            resolver: Resolver {
                raw: Arc::new(RawConfig::default()),
                overrides: Overrides::default(),
                profiles: AuthProfiles::new(),
            },
        }
    }
}

impl TopologyConfig {
    /// Resolves the topology keys; the auth profiles given here are available to `/scrape` and
    /// the targets file as well.
    pub(crate) fn resolve(
        raw: &RawConfig,
        o: &Overrides,
        origin: &str,
        groups: Vec<Group>,
        profiles: AuthProfiles,
    ) -> Result<Self, ConfigError> {
        let max_targets = raw.scrape_max_targets.unwrap_or(256);
        if max_targets > 100_000 {
            return Err(invalid(
                origin,
                "scrape_max_targets",
                "must be at most 100000 (0 turns /scrape off)",
            ));
        }
        let allow = Allowlist::resolve(raw.scrape_allow.as_ref(), origin, "scrape_allow")?;
        let targets_file = match &raw.targets_file {
            Some(path) => Some(TargetsFile {
                path: path.clone(),
                interval: seconds(
                    origin,
                    "targets_file_interval_seconds",
                    raw.targets_file_interval_seconds,
                    30.0,
                )?,
            }),
            None => None,
        };
        // Without the configuration's own target list, so that editing a target does not
        // count as a change of the targets file's source (which would restart its pollers).
        let resolver = Resolver {
            raw: Arc::new(RawConfig {
                targets: None,
                target: None,
                ..raw.clone()
            }),
            overrides: o.clone(),
            profiles,
        };
        if let Some(f) = &targets_file {
            // A file that exists must be valid at start; one that does not yet exist is waited for.
            if f.path.exists() {
                resolver.targets_file(&f.path)?;
            }
        }
        Ok(Self {
            groups,
            discovery_interval: seconds(
                origin,
                "discovery_interval_seconds",
                raw.discovery_interval_seconds,
                30.0,
            )?,
            dynamic: DynamicConfig {
                allow,
                max_targets,
                idle_timeout: seconds(
                    origin,
                    "scrape_idle_timeout_seconds",
                    raw.scrape_idle_timeout_seconds,
                    600.0,
                )?,
                never_up_timeout: seconds(
                    origin,
                    "scrape_never_up_timeout_seconds",
                    raw.scrape_never_up_timeout_seconds,
                    60.0,
                )?,
                first_poll_wait: seconds(
                    origin,
                    "scrape_first_poll_wait_seconds",
                    raw.scrape_first_poll_wait_seconds,
                    5.0,
                )?,
            },
            targets_file,
            resolver,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load_with_env;

    fn load(body: &str) -> Result<crate::config::Config, ConfigError> {
        let f = tempfile::Builder::new()
            .suffix(".toml")
            .tempfile()
            .expect("tempfile");
        std::fs::write(f.path(), body).expect("write");
        load_with_env(Some(f.path()), &Overrides::default(), Vec::new())
    }

    #[test]
    fn one_password_source_per_layer_and_the_target_layer_wins() {
        for (body, key) in [
            (
                "[auth_profiles.app]\npassword = \"a\"\npassword_env = \"PW\"\n",
                "auth_profiles.app.password",
            ),
            (
                "[[targets]]\naddress = \"redis://h:6379\"\npassword_file = \"/pw\"\npassword_env = \"PW\"\n",
                "targets[0].password",
            ),
            (
                "[[targets]]\naddress = \"redis://:x@h:6379\"\npassword_env = \"PW\"\n",
                "targets[0].password",
            ),
        ] {
            match load(body) {
                Err(ConfigError::Invalid { key: k, message, .. }) => {
                    assert_eq!(k, key, "{body}");
                    assert!(message.contains("only one of"), "{message}");
                }
                other => panic!("{body}: {other:?}"),
            }
        }
        let c = load(
            "password_env = \"TOP\"\n\
             [[targets]]\naddress = \"redis://a:6379\"\npassword_file = \"/own\"\n\
             [[targets]]\naddress = \"redis://b:6379\"\n",
        )
        .expect("valid");
        assert_eq!(c.targets[0].password, Secret::File("/own".into()));
        assert_eq!(c.targets[1].password, Secret::Env("TOP".into()));
    }

    #[test]
    fn cluster_and_sentinel_targets_become_groups() {
        let c = load(
            "[auth_profiles.app]\nusername = \"exp\"\npassword_env = \"PW\"\n\
             [[targets]]\naddress = \"redis://10.0.0.1:7000\"\ncluster = true\nalias = \"orders\"\nauth = \"app\"\n\
             [[targets]]\nsentinel_master = \"mymaster\"\nsentinels = [\"redis://s1:26379\", \"redis://s2:26379\"]\n\
             [[targets]]\naddress = \"redis://plain:6379\"\n",
        )
        .expect("valid");
        assert_eq!(c.targets.len(), 1);
        let g = &c.topology.groups;
        assert_eq!(g.len(), 2);
        assert_eq!(g[0].name, "orders");
        assert_eq!(g[0].kind, GroupKind::Cluster);
        assert_eq!(g[0].node.username.as_deref(), Some("exp"));
        assert_eq!(g[0].node.password, Secret::Env("PW".into()));
        let n = g[0].node_target(Endpoint::Tcp {
            host: "10.0.0.2".into(),
            port: 7001,
        });
        assert_eq!(n.label, "orders/10.0.0.2:7001");
        assert_eq!(g[1].name, "mymaster");
        match &g[1].kind {
            GroupKind::Sentinel { master, sentinels } => {
                assert_eq!(master, "mymaster");
                assert_eq!(sentinels.len(), 2);
                assert_eq!(sentinels[1].label, "s2:26379");
            }
            k => panic!("{k:?}"),
        }
    }

    #[test]
    fn topology_errors_name_the_key() {
        let cases = [
            (
                "[[targets]]\nsentinel_master = \"m\"\n",
                "targets[0].sentinels",
            ),
            (
                "[[targets]]\naddress = \"redis://h:1\"\nauth = \"nope\"\n",
                "targets[0].auth",
            ),
            (
                "[[targets]]\naddress = \"redis://h:1\"\ncluster = true\nsentinels = [\"redis://s:1\"]\nsentinel_master = \"m\"\n",
                "targets[0].cluster",
            ),
            (
                "[auth_profiles.a]\npassword = \"x\"\npassword_file = \"/f\"\n",
                "auth_profiles.a.password",
            ),
            (
                "[auth_profiles.a]\npassword = \"x\"\n[[targets]]\naddress = \"redis://h:1\"\nauth = \"a\"\npassword = \"y\"\n",
                "targets[0].auth",
            ),
        ];
        for (body, key) in cases {
            let e = load(body).expect_err(body).to_string();
            assert!(e.contains(key), "{body}: {e}");
            assert!(!e.contains("\"x\""), "{e}");
        }
    }

    #[test]
    fn scrape_targets_take_credentials_from_listing_profiles_only() {
        let c = load(
            "password = \"top-secret\"\nusername = \"topuser\"\n\
             scrape_allow = [\"10.0.0.0/8:6379-6380\", \"redis.internal:6379\"]\n\
             [auth_profiles.ops]\nusername = \"u\"\npassword = \"s3cret\"\ntargets = [\"10.1.0.0/16:6380\"]\n\
             [auth_profiles.plain]\npassword = \"other\"\n\
             [[targets]]\naddress = \"redis://h:1\"\n",
        )
        .expect("valid");
        let r = &c.topology.resolver;
        let allow = &c.topology.dynamic.allow;
        assert!(c.topology.dynamic.enabled());
        let t = r
            .scrape_target("redis://10.1.1.1:6380/3", Some("ops"), allow)
            .expect("ok");
        assert_eq!(t.label, "10.1.1.1:6380");
        assert_eq!(t.password, Secret::Value("s3cret".into()));
        assert_eq!(t.username.as_deref(), Some("u"));
        // The database does not matter to INFO and CLIENT LIST: /3 and /0 are one poller.
        assert_eq!(t.db, None);
        // Without a profile: nothing, never the top-level defaults.
        let t = r
            .scrape_target("redis://10.9.9.9:6379", None, allow)
            .expect("ok");
        assert_eq!(t.password, Secret::None);
        assert_eq!(t.username, None);
        // One spelling per server.
        let t = r
            .scrape_target("redis://REDIS.Internal:6379", None, allow)
            .expect("ok");
        assert_eq!(t.label, "redis.internal:6379");
        // valkey:// and valkeys:// are redis:// and rediss://: the same allowlist and profiles.
        let t = r
            .scrape_target("valkeys://10.1.1.1:6380", Some("ops"), allow)
            .expect("ok");
        assert!(t.tls.is_some());
        assert_eq!(t.password, Secret::Value("s3cret".into()));
        assert_eq!(
            r.scrape_target("valkey://11.0.0.1:6379", None, allow)
                .err()
                .map(|e| e.to_string()),
            r.scrape_target("redis://11.0.0.1:6379", None, allow)
                .err()
                .map(|e| e.to_string())
        );
        // A profile goes only where it says; an unknown one gets the same answer.
        for (addr, profile) in [
            ("redis://10.9.9.9:6380", "ops"),
            ("redis://10.1.1.1:6379", "ops"),
            ("redis://10.1.1.1:6380", "plain"),
            ("redis://10.1.1.1:6380", "nope"),
        ] {
            assert_eq!(
                r.scrape_target(addr, Some(profile), allow),
                Err(ScrapeTargetError::Profile(profile.into())),
                "{addr} {profile}"
            );
        }
        for addr in [
            "redis://11.0.0.1:6379",
            "redis://10.0.0.1:6381",
            "redis://redis.internal:6380",
            "redis://other.internal:6379",
            // Spellings a resolver might read as 10.0.0.1 are names, and not listed.
            "redis://0x0a.0.0.1:6379",
            "redis://167772161:6379",
            "redis://10.1:6379",
            "rediss://[::1]:6379",
        ] {
            assert_eq!(
                r.scrape_target(addr, None, allow),
                Err(ScrapeTargetError::NotAllowed),
                "{addr}"
            );
        }
        let e = r
            .scrape_target("redis://u:pw@10.1.1.1:6380", None, allow)
            .expect_err("credentials in URL");
        assert!(e.to_string().contains("auth profile"), "{e}");
        assert!(!e.to_string().contains("pw@"), "{e}");
        assert!(r.scrape_target("unix:///tmp/r.sock", None, allow).is_err());
        // `host:port` as service discovery lists it is `redis://host:port`, checked the same.
        assert_eq!(
            r.scrape_target("10.1.1.1:6380", Some("ops"), allow)
                .map(|t| t.label),
            r.scrape_target("redis://10.1.1.1:6380", Some("ops"), allow)
                .map(|t| t.label)
        );
        assert_eq!(
            r.scrape_target("other.internal:6379", None, allow)
                .map(|t| t.label),
            Err(ScrapeTargetError::NotAllowed)
        );
        assert!(r.scrape_target("u:pw@10.1.1.1:6380", None, allow).is_err());
        assert!(!format!("{c:?}").contains("s3cret"));
    }

    #[test]
    fn scrape_is_off_without_an_allowlist() {
        let c = load("[[targets]]\naddress = \"redis://h:1\"\n").expect("valid");
        assert!(!c.topology.dynamic.enabled());
        let c = load("scrape_allow = []\n").expect("valid");
        assert!(!c.topology.dynamic.enabled());
        let c =
            load("scrape_allow = [\"127.0.0.1:6379\"]\nscrape_max_targets = 0\n").expect("valid");
        assert!(!c.topology.dynamic.enabled());
        // From the environment, a comma-separated string.
        let c = load_with_env(
            None,
            &Overrides::default(),
            vec![(
                "REDIS_CLIENTS_EXPORTER_SCRAPE_ALLOW".to_string(),
                "10.0.0.0/8:6379, redis.internal:7000-7005".to_string(),
            )],
        )
        .expect("valid");
        assert_eq!(c.topology.dynamic.allow.len(), 2);
        assert!(c.topology.dynamic.allow.allows("redis.internal", 7003));
    }

    #[test]
    fn allowlist_entries_match_host_or_network_and_port() {
        let a = Allowlist::parse([
            "10.0.0.0/8:6379",
            "192.168.1.7:7000-7002",
            "[fd00::/8]:6379",
            "[::1]:6379",
            "cache-1.internal:6379",
        ])
        .expect("valid");
        for (host, port, want) in [
            ("10.255.0.1", 6379, true),
            ("10.255.0.1", 6380, false),
            ("11.0.0.1", 6379, false),
            ("192.168.1.7", 7001, true),
            ("192.168.1.7", 7003, false),
            ("192.168.1.8", 7001, false),
            ("fd12::5", 6379, true),
            ("fe80::1", 6379, false),
            ("::1", 6379, true),
            // An IPv4-mapped address is the IPv4 address it reaches.
            ("::ffff:10.0.0.1", 6379, true),
            ("CACHE-1.internal", 6379, true),
            ("cache-1.internal.", 6379, false),
            ("cache-2.internal", 6379, false),
        ] {
            assert_eq!(a.allows(host, port), want, "{host}:{port}");
        }
        for (entry, why) in [
            ("10.0.0.0/8", "port"),
            ("10.0.0.5/8:6379", "host bits"),
            ("10.0.0.0/33:6379", "prefix"),
            ("fd00::1:6379", "brackets"),
            ("[fd00::1]6379", "port"),
            ("host:0", "port"),
            ("host:7000-6000", "reversed"),
            ("host:http", "port"),
            ("ho st:6379", "host"),
            (":6379", "host"),
        ] {
            let e = Allowlist::parse([entry]).expect_err(entry);
            assert!(e.contains(why), "{entry}: {e}");
        }
        // At load the error names the key (with the index) and the file.
        let e = load("scrape_allow = [\"10.0.0.0/8:6379\", \"10.0.0.0/8\"]\n")
            .expect_err("no port")
            .to_string();
        assert!(e.contains("scrape_allow[1]"), "{e}");
        assert!(e.contains(".toml"), "{e}");
        let e = load("[auth_profiles.ops]\npassword = \"x\"\ntargets = [\"nope\"]\n")
            .expect_err("no port")
            .to_string();
        assert!(e.contains("auth_profiles.ops.targets[0]"), "{e}");
        assert!(!e.contains("\"x\""), "{e}");
    }
}
