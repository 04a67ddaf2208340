//! The shared store between pollers and scrapes: per target, the last published
//! [`TargetState`], an immutable value swapped whole. A scrape copies the `Arc`s under a short
//! read lock and never waits on Redis.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use crate::analysis::aggregate::ClientListSummary;
use crate::redis::info::Info;

pub use crate::redis::connection::{ConfigValues, ErrorKind};

/// Seconds spent by the last poll, per stage.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StageDurations {
    pub info: f64,
    pub config: f64,
    pub client_list: f64,
    pub aggregate: f64,
    pub total: f64,
}

/// Counters that live as long as the target does.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Counters {
    pub polls: u64,
    pub errors: [u64; ErrorKind::ALL.len()],
    pub client_list_lines: u64,
    pub parse_errors: u64,
    /// Lines holding bytes that are not UTF-8 (decoded lossily), in INFO and CLIENT LIST.
    pub info_invalid_utf8_lines: u64,
    pub client_list_invalid_utf8_lines: u64,
    /// Values from Redis cut to `label::MAX_LABEL_BYTES` (one per value per poll).
    pub label_values_truncated: u64,
    /// CLIENT LIST commands sent (chunks of a walk, src/redis/chunked.rs), and those of the last listing.
    pub client_list_commands: u64,
    pub client_list_last_commands: u64,
    /// Full CLIENT LIST listings and sweeps (every id from 1, in chunks), by `chunked::FullReason`.
    pub client_list_full: [u64; crate::redis::chunked::FullReason::ALL.len()],
    pub client_list_sweeps: [u64; crate::redis::chunked::FullReason::ALL.len()],
}

/// Everything a scrape shows about one target: the last completed poll plus counters.
#[derive(Debug, Clone, Default)]
pub struct TargetState {
    pub up: bool,
    pub info: Option<Info>,
    pub config: ConfigValues,
    pub clients: Option<Arc<ClientListSummary>>,
    pub durations: StageDurations,
    /// Unix time (seconds) of the last completed poll.
    pub last_success: Option<f64>,
    /// Unix time of the CLIENT LIST behind `clients` (it may be older than the last poll).
    pub client_list_timestamp: Option<f64>,
    pub counters: Counters,
    /// The kind of the last failed poll (meaningful while `up` is false): what `/scrape` and
    /// `/diagnose` say of a dynamic target instead of the error's text (src/targets/dynamic.rs).
    pub last_error: Option<ErrorKind>,
    /// The diagnosis of the last poll (or why there is none).
    pub diagnosis: Option<Arc<crate::diagnose::Report>>,
    /// The poller's history (the one copy, shared): what `/diagnose` draws. Kept while the
    /// target is down, so the page still shows the hour before.
    pub history: Option<Arc<crate::analysis::history::History>>,
    /// The target's poll interval: how often the HTML report reloads itself.
    pub poll_interval: std::time::Duration,
    /// Set for the nodes of a cluster or Sentinel set: labels added to every series.
    pub topology: Option<Arc<Topology>>,
    /// This state's series as a scrape serves them: written by [`Store::publish`] when the store
    /// has a [`Prerender`], else by the first scrape that reads it. Emptied by every publish,
    /// so it is never a copy of an earlier state's.
    pub rendered: std::sync::OnceLock<Rendered>,
}

/// A target's series as text, written once per published state (web/metrics.rs,
/// `render_block`) so that a scrape copies them ([`Rendered`]). Plain data: the families are
/// named by the web layer's ids.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Block {
    /// Every family's lines of this target, family after family.
    pub text: Box<[u8]>,
    /// Per family, in the target's first-use order: its id and where its lines end in `text`.
    pub families: Box<[(u32, u32)]>,
}

/// A target's [`Block`] in the 0.0.4 text format and, only when some value is spelled
/// differently there (an infinity), in OpenMetrics: otherwise the lines are the same bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rendered {
    pub text: Arc<Block>,
    pub openmetrics: Option<Arc<Block>>,
}

/// How a published state is rendered into its [`Rendered`] (web/metrics.rs, set by lib.rs):
/// called by [`Store::publish`], on the poller's task.
pub type Prerender = fn(&str, &TargetState) -> Rendered;

/// Where a node sits: the `cluster` and `node` labels, and the role seen at discovery (the
/// node's own INFO `role` wins once it has been polled, so a failover shows at the next poll).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    pub group: String,
    pub node: String,
    pub discovered_role: Role,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Primary,
    Replica,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Primary => "primary",
            Role::Replica => "replica",
        }
    }

    /// INFO's `role` (`master`, `slave`); anything else is not a data node's role.
    pub fn from_info(role: &str) -> Option<Role> {
        match role {
            "master" => Some(Role::Primary),
            "slave" => Some(Role::Replica),
            _ => None,
        }
    }
}

/// Target label -> its last published state.
pub struct Store {
    targets: RwLock<BTreeMap<String, Arc<TargetState>>>,
    /// Who acts through the pollers' held connections (relief's hub, src/relief), told of
    /// pollers starting and stopping.
    pub actions: Arc<dyn crate::targets::jobs::Actions>,
    /// Woken at every publish: `/scrape` waits on it for a new target's first poll.
    published: tokio::sync::Notify,
    /// This replica's shard and its owned/skipped targets per source (src/config/shard.rs).
    pub shard: crate::config::shard::Ledger,
    /// Nodes discovery named and the exporter does not poll (src/targets/discovery.rs).
    pub dropped_nodes: DroppedNodes,
    /// Who source addresses are (src/identity): the snapshot pollers read, its sources' status.
    pub identity: Arc<crate::identity::IdentityHub>,
    /// Renders each published state's series on the publisher's task (set once, by lib.rs).
    prerender: std::sync::OnceLock<Prerender>,
}

/// Per discovery source (`group:NAME`) and reason (`limit`: past `discovery_max_nodes`;
/// `address`: not a host:port the exporter connects to), the nodes a discovery reply named and
/// the exporter did not poll, summed over discovery rounds:
/// `redis_clients_exporter_discovery_nodes_dropped_total`.
#[derive(Debug, Default)]
pub struct DroppedNodes(std::sync::Mutex<BTreeMap<(String, &'static str), u64>>);

impl DroppedNodes {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<(String, &'static str), u64>> {
        // A poisoned lock only means a writer panicked between two plain stores.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn add(&self, source: &str, reason: &'static str, n: u64) {
        *self.lock().entry((source.to_string(), reason)).or_default() += n;
    }

    pub fn forget(&self, source: &str) {
        self.lock().retain(|(s, _), _| s != source);
    }

    pub fn snapshot(&self) -> Vec<(String, &'static str, u64)> {
        self.lock()
            .iter()
            .map(|((s, r), n)| (s.clone(), *r, *n))
            .collect()
    }
}

impl Default for Store {
    fn default() -> Self {
        Self::new(Arc::new(crate::targets::jobs::NoActions))
    }
}

impl Store {
    pub fn new(actions: Arc<dyn crate::targets::jobs::Actions>) -> Self {
        Self {
            targets: RwLock::default(),
            actions,
            published: tokio::sync::Notify::new(),
            shard: Default::default(),
            dropped_nodes: Default::default(),
            identity: Default::default(),
            prerender: std::sync::OnceLock::new(),
        }
    }

    /// Every state published from now on is rendered as it is published (a scrape then only
    /// assembles); a second call changes nothing.
    pub fn set_prerender(&self, render: Prerender) {
        let _ = self.prerender.set(render);
    }

    pub fn publish(&self, target: &str, mut state: TargetState) {
        state.rendered = std::sync::OnceLock::new();
        if let Some(render) = self.prerender.get() {
            let _ = state.rendered.set(render(target, &state));
        }
        let state = Arc::new(state);
        // A poisoned lock only means a writer panicked mid-insert; the map itself is still
        // consistent (insert is atomic from our side), so keep serving.
        let mut map = self.targets.write().unwrap_or_else(|e| e.into_inner());
        // A target publishes every poll: its key is allocated once, at its first.
        match map.get_mut(target) {
            Some(slot) => *slot = state,
            None => {
                map.insert(target.to_string(), state);
            }
        }
        drop(map);
        self.published.notify_waiters();
    }

    /// Waits until some target's state is published (the caller re-reads what it waits for),
    /// or until `deadline`. Register interest before checking, with [`Store::published`].
    pub fn published(&self) -> tokio::sync::futures::Notified<'_> {
        self.published.notified()
    }

    /// One target's state.
    pub fn get(&self, target: &str) -> Option<Arc<TargetState>> {
        let map = self.targets.read().unwrap_or_else(|e| e.into_inner());
        map.get(target).cloned()
    }

    pub fn remove(&self, target: &str) {
        let mut map = self.targets.write().unwrap_or_else(|e| e.into_inner());
        map.remove(target);
        self.actions.forget(target);
    }

    /// A consistent copy of every target's state, sorted by label.
    pub fn snapshot(&self) -> Vec<(String, Arc<TargetState>)> {
        let map = self.targets.read().unwrap_or_else(|e| e.into_inner());
        map.iter()
            .map(|(k, v)| (k.clone(), Arc::clone(v)))
            .collect()
    }

    /// True once any target has completed a poll.
    pub fn any_success(&self) -> bool {
        let map = self.targets.read().unwrap_or_else(|e| e.into_inner());
        map.values().any(|s| s.last_success.is_some())
    }
}
