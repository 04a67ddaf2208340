//! The INFO reply parser: picks the fields about clients, limits and identity out of
//! `key:value` lines. A field the server does not report stays `None` (older servers lack
//! `maxclients`, `cluster_connections`, `tracking_clients`), so nothing is exported as a false 0.

use std::borrow::Cow;

use crate::redis::label::bound;

pub mod extra;

/// The INFO fields the exporter uses.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Info {
    pub redis_version: Option<String>,
    /// Valkey reports its own version beside a frozen `redis_version` (7.2.4).
    pub valkey_version: Option<String>,
    /// `server_name:valkey` on Valkey; Redis has no such field.
    pub server_name: Option<String>,
    pub redis_mode: Option<String>,
    pub role: Option<String>,
    /// Changes when the server restarts (its client ids start again from 1: src/redis/chunked.rs).
    pub run_id: Option<String>,
    pub uptime_in_seconds: Option<f64>,
    pub connected_clients: Option<f64>,
    pub blocked_clients: Option<f64>,
    pub tracking_clients: Option<f64>,
    pub cluster_connections: Option<f64>,
    pub maxclients: Option<f64>,
    pub connected_slaves: Option<f64>,
    pub total_connections_received: Option<f64>,
    pub rejected_connections: Option<f64>,
    pub used_memory: Option<f64>,
    /// The other client fields (src/info_extra.rs).
    pub extra: crate::redis::info::extra::InfoExtra,
    /// String values longer than `label::MAX_LABEL_BYTES`, cut (they become labels).
    pub truncated_values: u64,
}

impl Info {
    /// Parses an INFO reply. Unknown keys, section headers and lines that are not `key:value`
    /// are ignored; a known numeric key with a non-numeric value is left absent.
    pub fn parse(reply: &str) -> Info {
        let mut info = Info::default();
        for line in reply.lines() {
            let line = line.trim_end_matches('\r');
            if line.starts_with('#') {
                continue;
            }
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            let num = || value.trim().parse::<f64>().ok().filter(|v| v.is_finite());
            // These become label values (redis_instance_info): bounded like every other.
            let mut text = || {
                let v = bound(value);
                info.truncated_values += u64::from(matches!(v, Cow::Owned(_)));
                Some(v.into_owned())
            };
            match key {
                "redis_version" => info.redis_version = text(),
                "valkey_version" => info.valkey_version = text(),
                "server_name" => info.server_name = text(),
                "redis_mode" => info.redis_mode = text(),
                // Valkey 8 reports its own mode under `server_mode` as well; keep redis_mode first.
                "server_mode" if info.redis_mode.is_none() => info.redis_mode = text(),
                "role" => info.role = text(),
                "run_id" => info.run_id = text(),
                "uptime_in_seconds" => info.uptime_in_seconds = num(),
                "connected_clients" => info.connected_clients = num(),
                "blocked_clients" => info.blocked_clients = num(),
                "tracking_clients" => info.tracking_clients = num(),
                "cluster_connections" => info.cluster_connections = num(),
                "maxclients" => info.maxclients = num(),
                "connected_slaves" => info.connected_slaves = num(),
                "total_connections_received" => info.total_connections_received = num(),
                "rejected_connections" => info.rejected_connections = num(),
                "used_memory" => info.used_memory = num(),
                _ => {
                    info.extra.field(key, value);
                }
            }
        }
        info
    }

    /// The server's product and its own version: `("valkey", valkey_version)` on Valkey, whose
    /// `redis_version` stays 7.2.4 for compatibility whatever its release; else
    /// `(server_name or "redis", redis_version)`. None without a version.
    pub fn server(&self) -> Option<(&str, &str)> {
        if let Some(v) = &self.valkey_version {
            return Some(("valkey", v));
        }
        let name = self.server_name.as_deref().unwrap_or("redis");
        self.redis_version.as_deref().map(|v| (name, v))
    }

    /// `(major, minor)` of `redis_version`, for the commands a server knows. Valkey keeps
    /// reporting 7.2.4 there (it forked from Redis 7.2.4), which is right for what it has.
    pub fn version(&self) -> Option<(u32, u32)> {
        let mut parts = self.redis_version.as_deref()?.trim().split('.');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        Some((major, minor))
    }

    /// Everything Redis counts against maxclients (networking.c, acceptCommonHandler):
    /// client connections, replica links and cluster bus links.
    pub fn limit_connections(&self) -> Option<f64> {
        let clients = self.connected_clients?;
        Some(
            clients
                + self.connected_slaves.unwrap_or(0.0)
                + self.cluster_connections.unwrap_or(0.0),
        )
    }
}

/// True when `maxclients + 32` is a typical open-files limit (a power of two: 1024, 4096,
/// 65536; or a round thousand: `LimitNOFILE=20000`): Redis sets maxclients to the limit minus 32
/// when the limit is too low for the configured value (992, 4064, 19968, 65504, ...).
pub fn looks_fd_clamped(maxclients: f64) -> bool {
    if maxclients < 1.0 || maxclients.fract() != 0.0 || maxclients > 1e12 {
        return false;
    }
    let fds = maxclients as u64 + 32;
    (fds >= 256 && fds.is_power_of_two()) || (fds >= 1000 && fds % 1000 == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clamp_values() {
        for v in [992.0, 4064.0, 65504.0, 224.0, 19968.0, 968.0] {
            assert!(looks_fd_clamped(v), "{v}");
        }
        for v in [10000.0, 64.0, 1000.0, 4096.0, 0.0, 250.0] {
            assert!(!looks_fd_clamped(v), "{v}");
        }
    }

    #[test]
    fn server_names_valkey_by_its_own_version() {
        let valkey = "redis_version:7.2.4\r\nserver_name:valkey\r\nvalkey_version:9.1.2\r\n";
        assert_eq!(Info::parse(valkey).server(), Some(("valkey", "9.1.2")));
        assert_eq!(Info::parse(valkey).redis_version.as_deref(), Some("7.2.4"));
        let redis = "# Server\r\nredis_version:6.2.14\r\n";
        assert_eq!(Info::parse(redis).server(), Some(("redis", "6.2.14")));
        assert_eq!(Info::parse("connected_clients:1\r\n").server(), None);
    }

    #[test]
    fn versions_and_bounded_strings() {
        let long = "7".repeat(5000);
        let i = Info::parse(&format!("redis_version:7.0.15\r\nrole:{long}\r\n"));
        assert_eq!(i.version(), Some((7, 0)));
        assert_eq!(i.truncated_values, 1);
        assert_eq!(i.role.as_deref(), Some(&*crate::redis::label::bound(&long)));
        assert_eq!(Info::parse("redis_version:7.2.4\n").version(), Some((7, 2)));
        assert_eq!(Info::parse("redis_version:junk\n").version(), None);
        assert_eq!(Info::default().version(), None);
    }

    #[test]
    fn absent_fields_stay_absent() {
        let i = Info::parse("# Clients\r\nconnected_clients:3\r\nblocked_clients:x\r\n");
        assert_eq!(i.connected_clients, Some(3.0));
        assert_eq!(i.blocked_clients, None);
        assert_eq!(i.maxclients, None);
        assert_eq!(i.limit_connections(), Some(3.0));
    }
}
