//! `[relief]`: off unless enabled, and then only for listed basic-auth users, within bounds.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::{invalid, ConfigError, WebConfig};

/// `[relief]` as written in the configuration file.
#[derive(Debug, Deserialize, Default, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawRelief {
    pub enabled: Option<bool>,
    pub users: Option<Vec<String>>,
    pub max_connections_per_action: Option<usize>,
    pub max_actions_per_target_per_minute: Option<u32>,
    pub max_previews_per_target_per_minute: Option<u32>,
    pub token_ttl_seconds: Option<f64>,
    pub config_set_bounds: Option<BTreeMap<String, Vec<i64>>>,
    pub allow_plain_http: Option<bool>,
}

/// A parameter relief may `CONFIG SET`. Ordered as an action runs them: `timeout` and
/// `tcp-keepalive` before the kills, `maxclients` after (see [`Param::before_kills`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Param {
    Timeout,
    TcpKeepalive,
    Maxclients,
}

impl Param {
    pub const ALL: [Param; 3] = [Param::Timeout, Param::TcpKeepalive, Param::Maxclients];

    /// The name in the configuration and the API (`tcp_keepalive`).
    pub fn key(self) -> &'static str {
        match self {
            Param::Timeout => "timeout",
            Param::TcpKeepalive => "tcp_keepalive",
            Param::Maxclients => "maxclients",
        }
    }

    /// The name Redis knows (`tcp-keepalive`).
    pub fn redis_name(self) -> &'static str {
        match self {
            Param::Timeout => "timeout",
            Param::TcpKeepalive => "tcp-keepalive",
            Param::Maxclients => "maxclients",
        }
    }

    /// Either spelling.
    pub fn parse(s: &str) -> Option<Param> {
        Param::ALL
            .into_iter()
            .find(|p| p.key() == s || p.redis_name() == s)
    }

    /// `timeout` (and `tcp-keepalive`) go first: from then on Redis itself closes any
    /// connection left idle longer, including those the leaking client opens again in the
    /// slots the kills free. `maxclients` goes last: a raise made before the kills would be
    /// taken by the leak at once, in connections the preview never listed.
    pub fn before_kills(self) -> bool {
        self != Param::Maxclients
    }
}

/// The resolved `[relief]` section.
#[derive(Debug, Clone, PartialEq)]
pub struct ReliefConfig {
    pub enabled: bool,
    /// Basic-auth users allowed to act (a user allowed to scrape is not, unless listed).
    pub users: Vec<String>,
    pub max_connections_per_action: usize,
    pub max_actions_per_target_per_minute: u32,
    pub max_previews_per_target_per_minute: u32,
    pub token_ttl: Duration,
    /// `[min, max]` per parameter; a parameter without bounds cannot be set.
    pub bounds: BTreeMap<Param, (i64, i64)>,
    /// Accept relief credentials over plain HTTP on a non-loopback address.
    pub allow_plain_http: bool,
}

impl Default for ReliefConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            users: Vec::new(),
            max_connections_per_action: 1000,
            max_actions_per_target_per_minute: 6,
            max_previews_per_target_per_minute: 30,
            token_ttl: Duration::from_secs(60),
            bounds: BTreeMap::new(),
            allow_plain_http: false,
        }
    }
}

/// How `relief.users` names a client certificate identity (src/web/auth.rs matches it).
pub const CERT_USER: &str = "cert:";

impl ReliefConfig {
    /// Validates `[relief]` against the web configuration in force. `web_file` is where the
    /// basic-auth users come from, for the messages.
    pub fn resolve(
        raw: Option<&RawRelief>,
        web: &WebConfig,
        web_file: Option<&Path>,
        listen: SocketAddr,
        origin: &str,
    ) -> Result<ReliefConfig, ConfigError> {
        let d = ReliefConfig::default();
        let Some(raw) = raw else { return Ok(d) };
        let key = |k: &str| format!("relief.{k}");
        let max_connections_per_action = raw
            .max_connections_per_action
            .unwrap_or(d.max_connections_per_action);
        if !(1..=10_000).contains(&max_connections_per_action) {
            return Err(invalid(
                origin,
                key("max_connections_per_action"),
                "must be between 1 and 10000",
            ));
        }
        let per_minute = |k: &str, v: Option<u32>, default: u32| match v.unwrap_or(default) {
            n @ 1..=600 => Ok(n),
            _ => Err(invalid(origin, key(k), "must be between 1 and 600")),
        };
        let max_actions_per_target_per_minute = per_minute(
            "max_actions_per_target_per_minute",
            raw.max_actions_per_target_per_minute,
            d.max_actions_per_target_per_minute,
        )?;
        let max_previews_per_target_per_minute = per_minute(
            "max_previews_per_target_per_minute",
            raw.max_previews_per_target_per_minute,
            d.max_previews_per_target_per_minute,
        )?;
        let ttl = raw.token_ttl_seconds.unwrap_or(60.0);
        if !(ttl.is_finite() && ttl > 0.0 && ttl <= 600.0) {
            return Err(invalid(
                origin,
                key("token_ttl_seconds"),
                format!("must be a number of seconds in (0, 600], got {ttl}"),
            ));
        }
        let mut bounds = BTreeMap::new();
        for (name, b) in raw.config_set_bounds.iter().flatten() {
            let k = key(&format!("config_set_bounds.{name}"));
            let p = Param::parse(name).ok_or_else(|| {
                invalid(
                    origin,
                    k.clone(),
                    "unknown parameter: relief can set maxclients, timeout and tcp_keepalive",
                )
            })?;
            let (min, max) = match b.as_slice() {
                [min, max] if 0 <= *min && min <= max => (*min, *max),
                _ => {
                    return Err(invalid(
                        origin,
                        k,
                        "must be [min, max] with 0 <= min <= max",
                    ))
                }
            };
            if p == Param::Maxclients && min < 1 {
                return Err(invalid(origin, k, "maxclients cannot be set below 1"));
            }
            bounds.insert(p, (min, max));
        }
        let cfg = ReliefConfig {
            enabled: raw.enabled.unwrap_or(false),
            users: raw.users.clone().unwrap_or_default(),
            max_connections_per_action,
            max_actions_per_target_per_minute,
            max_previews_per_target_per_minute,
            token_ttl: Duration::from_secs_f64(ttl),
            bounds,
            allow_plain_http: raw.allow_plain_http.unwrap_or(false),
        };
        let web_file = web_file.map_or_else(
            || "(no web config file)".to_string(),
            |p| p.display().to_string(),
        );
        // `cert:NAME`: a client certificate verified against the web config's client CA that
        // carries NAME (a SAN, or `CN=` and its common name).
        let verified_certs = web
            .tls_server_config
            .as_ref()
            .is_some_and(|t| t.client_auth.verifies());
        for u in &cfg.users {
            if u.starts_with(CERT_USER) {
                if !verified_certs {
                    return Err(invalid(
                        origin,
                        key("users"),
                        format!("`{u}` names a client certificate, but the web config file {web_file} verifies none: set tls_server_config.client_auth_type RequireAndVerifyClientCert and client_ca_file"),
                    ));
                }
                continue;
            }
            if !web.basic_auth_users.contains_key(u) {
                return Err(invalid(
                    origin,
                    key("users"),
                    format!("`{u}` is not a basic-auth user of the web config file {web_file}: relief users must authenticate"),
                ));
            }
        }
        if !cfg.enabled {
            return Ok(cfg);
        }
        if web.basic_auth_users.is_empty() && !verified_certs {
            return Err(invalid(
                origin,
                key("enabled"),
                "relief actions need authentication on the HTTP side: set basic_auth_users in the web config file (web_config_file / --web-config-file), and list who may act in relief.users",
            ));
        }
        if cfg.users.is_empty() {
            return Err(invalid(
                origin,
                key("users"),
                "name the basic-auth users allowed to act: a user allowed to scrape is not allowed to act unless listed here",
            ));
        }
        if web.tls_server_config.is_none() && !listen.ip().is_loopback() && !cfg.allow_plain_http {
            return Err(invalid(
                origin,
                key("enabled"),
                format!("the exporter listens on {listen} without TLS: the credentials that allow acting on Redis would cross the network in clear. Set tls_server_config in the web config file, listen on a loopback address, or set relief.allow_plain_http = true"),
            ));
        }
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn web(users: &[&str]) -> WebConfig {
        WebConfig {
            tls_server_config: None,
            basic_auth_users: users
                .iter()
                .map(|u| (u.to_string(), "$2b$04$x".to_string()))
                .collect(),
            ..WebConfig::default()
        }
    }

    fn resolve(raw: &RawRelief, w: &WebConfig, listen: &str) -> Result<ReliefConfig, String> {
        ReliefConfig::resolve(
            Some(raw),
            w,
            Some(Path::new("/etc/web.yml")),
            listen.parse().expect("addr"),
            "/etc/x.toml",
        )
        .map_err(|e| e.to_string())
    }

    #[test]
    fn off_by_default_and_safe_defaults() {
        let c = ReliefConfig::resolve(
            None,
            &WebConfig::default(),
            None,
            "0.0.0.0:9816".parse().expect("addr"),
            "f",
        )
        .expect("no section");
        assert_eq!(c, ReliefConfig::default());
        assert!(!c.enabled && c.bounds.is_empty() && c.users.is_empty());
    }

    #[test]
    fn enabling_needs_authentication_listed_users_and_tls_off_loopback() {
        let on = RawRelief {
            enabled: Some(true),
            users: Some(vec!["ops".into()]),
            ..Default::default()
        };
        let e = resolve(&on, &web(&[]), "127.0.0.1:1").expect_err("no auth");
        assert!(
            e.contains("/etc/x.toml") && e.contains("key `relief.users`") && e.contains("ops"),
            "{e}"
        );
        let e = resolve(
            &RawRelief {
                users: None,
                ..on.clone()
            },
            &web(&[]),
            "127.0.0.1:1",
        )
        .expect_err("no auth");
        assert!(e.contains("key `relief.enabled`") && e.contains("basic_auth_users"));
        let e = resolve(
            &RawRelief {
                users: None,
                ..on.clone()
            },
            &web(&["ops"]),
            "127.0.0.1:1",
        )
        .expect_err("no relief users");
        assert!(e.contains("key `relief.users`"), "{e}");
        let e = resolve(&on, &web(&["prom"]), "127.0.0.1:1").expect_err("not a web user");
        assert!(e.contains("`ops` is not a basic-auth user") && e.contains("/etc/web.yml"));
        resolve(&on, &web(&["ops"]), "127.0.0.1:1").expect("loopback");
        let e = resolve(&on, &web(&["ops"]), "0.0.0.0:9816").expect_err("plain http");
        assert!(
            e.contains("key `relief.enabled`") && e.contains("in clear"),
            "{e}"
        );
        resolve(
            &RawRelief {
                allow_plain_http: Some(true),
                ..on
            },
            &web(&["ops"]),
            "0.0.0.0:9816",
        )
        .expect("explicitly allowed");
    }

    #[test]
    fn the_environment_sets_relief_scalars() {
        use crate::config::{load_with_env, ConfigError, Overrides};
        let env =
            |k: &str, v: &str| vec![(format!("REDIS_CLIENTS_EXPORTER_RELIEF__{k}"), v.to_string())];
        // `true` from a variable is read as enabled: refused without authentication.
        match load_with_env(None, &Overrides::default(), env("ENABLED", "true")) {
            Err(ConfigError::Invalid { key, .. }) => assert_eq!(key, "relief.enabled"),
            other => panic!("{other:?}"),
        }
        match load_with_env(
            None,
            &Overrides::default(),
            env("MAX_ACTIONS_PER_TARGET_PER_MINUTE", "0"),
        ) {
            Err(ConfigError::Invalid { key, .. }) => {
                assert_eq!(key, "relief.max_actions_per_target_per_minute")
            }
            other => panic!("{other:?}"),
        }
        let c = load_with_env(None, &Overrides::default(), env("TOKEN_TTL_SECONDS", "30"))
            .expect("valid");
        assert_eq!(c.relief.token_ttl, Duration::from_secs(30));
        assert!(!c.relief.enabled);
    }

    #[test]
    fn bounds_name_known_parameters_in_order() {
        let raw = |k: &str, b: Vec<i64>| RawRelief {
            config_set_bounds: Some([(k.to_string(), b)].into_iter().collect()),
            ..Default::default()
        };
        let w = web(&[]);
        let c = resolve(&raw("tcp-keepalive", vec![10, 300]), &w, "127.0.0.1:1").expect("ok");
        assert_eq!(c.bounds.get(&Param::TcpKeepalive), Some(&(10, 300)));
        for (k, b, want) in [
            (
                "databases",
                vec![1, 2],
                "relief.config_set_bounds.databases",
            ),
            ("timeout", vec![5], "relief.config_set_bounds.timeout"),
            ("timeout", vec![9, 5], "relief.config_set_bounds.timeout"),
            (
                "maxclients",
                vec![0, 5],
                "relief.config_set_bounds.maxclients",
            ),
        ] {
            let e = resolve(&raw(k, b), &w, "127.0.0.1:1").expect_err(k);
            assert!(e.contains(want), "{e}");
        }
        assert!(Param::Timeout < Param::TcpKeepalive && Param::TcpKeepalive < Param::Maxclients);
        assert!(Param::Timeout.before_kills() && !Param::Maxclients.before_kills());
    }
}
