//! `[identity]`: how a source address becomes a workload (src/identity). Off unless a source is
//! configured: a static map file, kube-state-metrics through a Prometheus HTTP API, a DNS
//! resolver for PTR names. The static map is read and checked here, at load (and so at every
//! reload): a bad line names the file and the line.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::config::{invalid, seconds, ConfigError, Secret};

/// `[identity]` as written.
#[derive(Debug, Deserialize, Default, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawIdentity {
    pub static_map_file: Option<PathBuf>,
    pub max_entries: Option<usize>,
    pub kubernetes: Option<RawKubernetes>,
    pub dns: Option<RawDns>,
}

#[derive(Debug, Deserialize, Default, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawKubernetes {
    pub prometheus_url: Option<String>,
    pub bearer_token_file: Option<PathBuf>,
    pub basic_auth_username: Option<String>,
    pub basic_auth_password_file: Option<PathBuf>,
    pub tls_ca_file: Option<PathBuf>,
    pub interval_seconds: Option<f64>,
    pub timeout_seconds: Option<f64>,
}

#[derive(Debug, Deserialize, Default, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawDns {
    pub resolver: Option<String>,
    pub ttl_seconds: Option<f64>,
    pub max_lookups_per_minute: Option<u32>,
}

/// A network and its prefix length (`10.42.0.0/16`; an address alone is /32 or /128).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub net: IpAddr,
    pub len: u8,
}

impl Cidr {
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let (ip, len) = match s.split_once('/') {
            Some((ip, len)) => (ip, Some(len)),
            None => (s, None),
        };
        let net: IpAddr = ip
            .parse()
            .map_err(|_| format!("`{s}` is not an IP address or CIDR"))?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let len = match len {
            None => max,
            Some(l) => match l.parse::<u8>() {
                Ok(n) if n <= max => n,
                _ => return Err(format!("`{s}`: prefix length must be 0..={max}")),
            },
        };
        Ok(Cidr { net, len })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.len)).unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.len))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

/// `[identity.kubernetes]`, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct KubernetesSource {
    /// `http://` or `https://` host, port and an optional path prefix, without a trailing `/`.
    pub prometheus_url: url::Url,
    pub bearer_token: Option<Secret>,
    pub basic_auth: Option<(String, Secret)>,
    pub tls_ca_file: Option<PathBuf>,
    pub interval: Duration,
    pub timeout: Duration,
}

/// `[identity.dns]`, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct DnsSource {
    pub resolver: SocketAddr,
    pub ttl: Duration,
    pub max_lookups_per_minute: u32,
}

/// `[identity]`, validated: nothing configured is the default and costs nothing.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct IdentityConfig {
    /// The static map's entries in file order (the first match wins), and its path.
    pub static_map: Vec<(Cidr, String)>,
    pub static_map_file: Option<PathBuf>,
    pub max_entries: usize,
    pub kubernetes: Option<KubernetesSource>,
    pub dns: Option<DnsSource>,
}

/// Entries the identity layer holds at most (pods, DNS names): a cluster of 100,000 pods does
/// not grow the exporter without bound.
pub const DEFAULT_MAX_ENTRIES: usize = 50_000;

impl IdentityConfig {
    pub fn enabled(&self) -> bool {
        !self.static_map.is_empty() || self.kubernetes.is_some() || self.dns.is_some()
    }

    pub(crate) fn resolve(
        raw: Option<&RawIdentity>,
        origin: &str,
    ) -> Result<IdentityConfig, ConfigError> {
        let Some(raw) = raw else {
            return Ok(IdentityConfig {
                max_entries: DEFAULT_MAX_ENTRIES,
                ..Default::default()
            });
        };
        let max_entries = raw.max_entries.unwrap_or(DEFAULT_MAX_ENTRIES);
        if !(1..=1_000_000).contains(&max_entries) {
            return Err(invalid(
                origin,
                "identity.max_entries",
                "must be between 1 and 1000000",
            ));
        }
        let static_map = match &raw.static_map_file {
            Some(path) => read_static_map(path, origin)?,
            None => Vec::new(),
        };
        let kubernetes = raw
            .kubernetes
            .as_ref()
            .map(|k| kubernetes(k, origin))
            .transpose()?;
        let dns = raw.dns.as_ref().map(|d| dns(d, origin)).transpose()?;
        Ok(IdentityConfig {
            static_map,
            static_map_file: raw.static_map_file.clone(),
            max_entries,
            kubernetes,
            dns,
        })
    }
}

fn kubernetes(k: &RawKubernetes, origin: &str) -> Result<KubernetesSource, ConfigError> {
    let key = |s: &str| format!("identity.kubernetes.{s}");
    let raw_url = k
        .prometheus_url
        .as_deref()
        .ok_or_else(|| invalid(origin, key("prometheus_url"), "is required"))?;
    let url = url::Url::parse(raw_url)
        .map_err(|e| invalid(origin, key("prometheus_url"), format!("not a URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(invalid(
            origin,
            key("prometheus_url"),
            "must be an http:// or https:// URL with a host",
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(
            origin,
            key("prometheus_url"),
            "must not carry credentials: use basic_auth_username and basic_auth_password_file",
        ));
    }
    if k.bearer_token_file.is_some() && k.basic_auth_password_file.is_some() {
        return Err(invalid(
            origin,
            key("bearer_token_file"),
            "set either a bearer token or basic auth, not both",
        ));
    }
    let basic_auth = match (&k.basic_auth_username, &k.basic_auth_password_file) {
        (Some(u), Some(p)) => Some((u.clone(), Secret::File(p.clone()))),
        (None, None) => None,
        _ => {
            return Err(invalid(
                origin,
                key("basic_auth_username"),
                "basic auth needs both basic_auth_username and basic_auth_password_file",
            ))
        }
    };
    for (name, file) in [
        ("bearer_token_file", &k.bearer_token_file),
        ("basic_auth_password_file", &k.basic_auth_password_file),
        ("tls_ca_file", &k.tls_ca_file),
    ] {
        if let Some(p) = file {
            if let Err(e) = std::fs::metadata(p) {
                return Err(invalid(
                    origin,
                    key(name),
                    format!("cannot read {}: {e}", p.display()),
                ));
            }
        }
    }
    Ok(KubernetesSource {
        prometheus_url: url,
        bearer_token: k.bearer_token_file.clone().map(Secret::File),
        basic_auth,
        tls_ca_file: k.tls_ca_file.clone(),
        interval: seconds(origin, &key("interval_seconds"), k.interval_seconds, 60.0)?,
        timeout: seconds(origin, &key("timeout_seconds"), k.timeout_seconds, 5.0)?,
    })
}

fn dns(d: &RawDns, origin: &str) -> Result<DnsSource, ConfigError> {
    let key = |s: &str| format!("identity.dns.{s}");
    let resolver = d
        .resolver
        .as_deref()
        .ok_or_else(|| invalid(origin, key("resolver"), "is required"))?
        .parse::<SocketAddr>()
        .map_err(|_| invalid(origin, key("resolver"), "must be IP:PORT"))?;
    let max = d.max_lookups_per_minute.unwrap_or(60);
    if !(1..=6000).contains(&max) {
        return Err(invalid(
            origin,
            key("max_lookups_per_minute"),
            "must be between 1 and 6000",
        ));
    }
    Ok(DnsSource {
        resolver,
        ttl: seconds(origin, &key("ttl_seconds"), d.ttl_seconds, 300.0)?,
        max_lookups_per_minute: max,
    })
}

/// The static map file: one `CIDR-or-IP NAME` a line (`#` comments and blank lines skipped).
fn read_static_map(path: &Path, origin: &str) -> Result<Vec<(Cidr, String)>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        invalid(
            origin,
            "identity.static_map_file",
            format!("cannot read {}: {e}", path.display()),
        )
    })?;
    parse_static_map(&text).map_err(|(line, message)| ConfigError::Load {
        origin: format!("{} line {line}", path.display()),
        message,
    })
}

/// The lines of a static map; an error is its line number (from 1) and what is wrong.
pub fn parse_static_map(text: &str) -> Result<Vec<(Cidr, String)>, (usize, String)> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let mut parts = line.split_whitespace();
        let (Some(net), Some(name)) = (parts.next(), parts.next()) else {
            return Err((i + 1, "expected `CIDR-or-IP NAME`".to_string()));
        };
        if parts.next().is_some() {
            return Err((
                i + 1,
                "expected `CIDR-or-IP NAME` (a name has no spaces)".into(),
            ));
        }
        let cidr = Cidr::parse(net).map_err(|m| (i + 1, m))?;
        // A label value: no longer than one may be (src/redis/label.rs's bound).
        if name.len() > 128 {
            return Err((i + 1, "a name is at most 128 bytes".into()));
        }
        out.push((cidr, name.to_string()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_map_lines() {
        let m = parse_static_map("# vms\n10.1.0.0/16 billing-vm\n\n192.168.1.7 nat-gw # gw\n")
            .expect("parse");
        assert_eq!(m.len(), 2);
        assert!(m[0].0.contains("10.1.200.3".parse().expect("ip")));
        assert!(!m[0].0.contains("10.2.0.1".parse().expect("ip")));
        assert!(m[1].0.contains("192.168.1.7".parse().expect("ip")));
        assert_eq!(m[1].1, "nat-gw");
        assert_eq!(parse_static_map("ok 1\n").map_err(|e| e.0), Err(1));
        assert_eq!(
            parse_static_map("10.0.0.0/8 a\n10.0.0.0/33 b\n").map_err(|e| e.0),
            Err(2)
        );
        assert_eq!(parse_static_map("10.0.0.1\n").map_err(|e| e.0), Err(1));
        let v6 = Cidr::parse("fd00::/8").expect("v6");
        assert!(v6.contains("fd12::1".parse().expect("ip")));
        assert!(Cidr::parse("0.0.0.0/0")
            .expect("all")
            .contains("1.2.3.4".parse().expect("ip")));
    }
}
