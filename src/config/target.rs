//! One Redis target: its address (`redis://`, `rediss://`, `unix://`), credentials, timeouts
//! and TLS options, resolved from a raw target and the layers above it.

use std::path::PathBuf;
use std::time::Duration;

use crate::config::poll::{
    ClientListSchedule, DEFAULT_BACKOFF_CLIENTS, DEFAULT_FULL_BACKOFF_CLIENTS,
    DEFAULT_RESYNC_SECONDS,
};
use crate::config::raw::{RawConfig, RawTarget};
use crate::config::secret::{PasswordSources, Secret};
use crate::config::{invalid, seconds, ConfigError, Overrides};

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

/// Parses `redis://[user[:pass]@]host[:port][/db]`, `rediss://...` or `unix:///path`;
/// `valkey://` and `valkeys://` are the same as `redis://` and `rediss://` (as for the Go
/// redis_exporter).
/// Error messages never repeat the address (it may hold a password).
pub(crate) fn parse_address(address: &str) -> Result<ParsedAddress, String> {
    let url = url::Url::parse(address).map_err(|e| {
        format!(
            "not a valid URL ({e}); expected redis://host:port, rediss://host:port (valkey://, valkeys://) or unix:///path"
        )
    })?;
    let username = Some(url.username())
        .filter(|u| !u.is_empty())
        .map(percent_decode);
    let password = url.password().map(percent_decode);
    match url.scheme() {
        "redis" | "rediss" | "valkey" | "valkeys" => {
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
                tls: matches!(url.scheme(), "rediss" | "valkeys"),
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
            "unsupported scheme `{other}`; use redis://, rediss://, valkey://, valkeys:// or unix://"
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
