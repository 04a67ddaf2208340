//! Configuration: the layering (built-in defaults < file < environment < flags), validation
//! with errors that name the key and the file, and the resolved [`Target`]s.
//!
//! Secrets are held in [`Secret`], whose `Debug` never shows the value, and a password found
//! inside an address URL is moved out of it before the address is used for anything.

//!
//! One job per file: `raw.rs` the keys as read, `layers.rs` reading the file and environment
//! layers, `service_link.rs` Kubernetes' injected variables, `secret.rs` passwords,
//! `target.rs` one target's address and settings, `poll.rs` the CLIENT LIST schedule, `web.rs`
//! the web configuration file; this file joins them into a [`Config`].

pub mod identity;
mod layers;
pub mod poll;
mod raw;
pub mod relief;
pub mod secret;
mod service_link;
pub mod shard;
pub mod target;
pub mod topology;
pub mod web;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use thiserror::Error;

pub(crate) use layers::deserialize;
use layers::read_layers;
pub use poll::{
    ClientListSchedule, DEFAULT_BACKOFF_CLIENTS, DEFAULT_FULL_BACKOFF_CLIENTS,
    DEFAULT_RESYNC_SECONDS,
};
pub(crate) use raw::{RawConfig, RawTarget};
use secret::check_secrets;
pub(crate) use secret::PasswordSources;
pub use secret::{Secret, SecretError};
pub use service_link::is_service_link;
pub(crate) use target::{parse_address, resolve_target};
pub use target::{Endpoint, Target, TlsOptions};
pub use web::{
    load_web_config, CipherSuite, ClientAuth, Curve, HttpServerConfig, Pem, TlsVersion, WebConfig,
    WebTls,
};

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
    /// A command-line flag's value; `nth` counts from 1 among repeated uses of the flag.
    #[error("flag `{flag}`{}: {message}", nth.map(|n| format!(" ({})", ordinal(n))).unwrap_or_default())]
    Flag {
        flag: &'static str,
        nth: Option<usize>,
        message: String,
    },
}

/// `1st`, `2nd`, `3rd`, `4th`, … `11th`, `12th`, `13th`, `21st`.
fn ordinal(n: usize) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
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
    /// `[identity]`: source addresses to workloads (src/identity); off by default.
    pub identity: crate::config::identity::IdentityConfig,
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
        .map_err(|e| ConfigError::Flag {
            flag: "--shard",
            nth: None,
            message: e.0,
        })?,
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
        // A flag's address is checked here, so that its error names the flag, not a key.
        for (i, a) in o.targets.iter().enumerate() {
            parse_address(a).map_err(|message| ConfigError::Flag {
                flag: "--target",
                nth: Some(i + 1),
                message,
            })?;
        }
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
        if uses > 1 && !o.targets.is_empty() {
            return Err(ConfigError::Flag {
                flag: "--target",
                nth: Some(targets.len() + groups.len()),
                message: format!("target label `{label}` is used twice"),
            });
        }
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
    let identity = crate::config::identity::IdentityConfig::resolve(raw.identity.as_ref(), origin)?;
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
        identity,
    })
}

#[cfg(test)]
mod tests {
    use super::layers::struct_fields;
    use super::raw::RawAuth;
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
    fn a_bad_target_flag_is_a_flag_error() {
        let o = Overrides {
            targets: vec!["redis://ok:6379".into(), "http://x:1".into()],
            ..Overrides::default()
        };
        let e = load_with_env(None, &o, env(&[])).expect_err("bad flag");
        assert_eq!(
            e.to_string(),
            "flag `--target` (2nd): unsupported scheme `http`; use redis://, rediss://, valkey://, valkeys:// or unix://"
        );
        let o = Overrides {
            targets: vec!["not a url".into()],
            ..Overrides::default()
        };
        let e = load_with_env(None, &o, env(&[]))
            .expect_err("bad flag")
            .to_string();
        assert!(
            e.starts_with("flag `--target` (1st): not a valid URL"),
            "{e}"
        );
        let o = Overrides {
            targets: vec![
                "redis://a:1".into(),
                "redis://b:1".into(),
                "redis://a:1".into(),
            ],
            ..Overrides::default()
        };
        let e = load_with_env(None, &o, env(&[]))
            .expect_err("twice")
            .to_string();
        assert_eq!(e, "flag `--target` (3rd): target label `a:1` is used twice");
        assert_eq!(
            [1, 2, 3, 4, 11, 12, 13, 21, 22, 111].map(ordinal),
            ["1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "111th"]
        );
    }

    #[test]
    fn valkey_schemes_are_redis_schemes() {
        for (address, tls) in [
            ("valkey://v:6379/2", false),
            ("valkeys://v:6379", true),
            ("VALKEYS://v:6379", true),
        ] {
            let p = parse_address(address).unwrap_or_else(|e| panic!("{address}: {e}"));
            assert_eq!(p.tls, tls, "{address}");
            assert_eq!(
                p.endpoint,
                Endpoint::Tcp {
                    host: "v".into(),
                    port: 6379
                }
            );
        }
        let f = write(
            ".toml",
            "[[targets]]\naddress = \"valkeys://v:6380\"\ntls_server_name = \"v.internal\"\n",
        );
        let c = load_with_env(Some(f.path()), &Overrides::default(), env(&[])).expect("valid");
        assert!(c.targets[0].tls.is_some());
        assert_eq!(c.targets[0].label, "v:6380");
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
