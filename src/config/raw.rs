//! The configuration as read (file and environment), before validation.

use std::path::PathBuf;

use serde::Deserialize;

use crate::config::LogFormat;

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
    /// `[identity]` (src/config/identity.rs).
    pub(crate) identity: Option<crate::config::identity::RawIdentity>,
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
