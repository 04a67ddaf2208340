//! Targets that stand for several nodes: Redis Cluster, Sentinel master sets, and the watched
//! targets file. Each is one task that finds the current nodes, runs one ordinary poller per
//! node (each on its own held connection, through [`crate::targets::reconcile`]) and removes the series
//! of a node that leaves. Discovery runs on an interval, and earlier when a node's INFO role
//! disagrees with what discovery said (a failover) or a node goes down or comes back.
//!
//! Discovery uses a short-lived connection per round (the held connections belong to the
//! pollers); when no node or sentinel answers, the known node set is kept, not dropped.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::config::shard::Shard;
use crate::config::topology::{Group, GroupKind, Resolver, TargetsFile};
use crate::config::{Config, Endpoint, Target};
use crate::redis::commands::Command;
use crate::redis::connection::{Conn, PollError, Stage};
use crate::redis::resp::Value;
use crate::targets::reconcile::{reconcile_pollers, PollerSpec, ReloadSummary, TaskSet};
use crate::targets::state::{Role, Store, Topology};

/// One source of node pollers, started from the configuration.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceSpec {
    Group {
        // Boxed: a group's node template `Target` makes this variant far larger than `File`.
        group: Box<Group>,
        top_k: usize,
        idle_threshold_seconds: u64,
        interval: Duration,
        shard: Shard,
        max_nodes: usize,
    },
    File {
        file: TargetsFile,
        resolver: Resolver,
        top_k: usize,
        idle_threshold_seconds: u64,
        shard: Shard,
    },
}

impl SourceSpec {
    /// The `source` label of `redis_clients_exporter_shard_targets`.
    fn ledger_key(&self) -> String {
        match self {
            SourceSpec::Group { group, .. } => format!("group:{}", group.name),
            SourceSpec::File { .. } => "targets_file".to_string(),
        }
    }
}

/// The configuration's groups and targets file, by a key unique among sources.
pub fn source_specs(cfg: &Config) -> BTreeMap<String, SourceSpec> {
    let mut out = BTreeMap::new();
    for g in &cfg.topology.groups {
        out.insert(
            format!("group:{}", g.name),
            SourceSpec::Group {
                group: Box::new(g.clone()),
                top_k: cfg.top_k,
                idle_threshold_seconds: cfg.idle_threshold_seconds,
                interval: cfg.topology.discovery_interval,
                shard: cfg.shard,
                max_nodes: cfg.topology.discovery_max_nodes,
            },
        );
    }
    if let Some(f) = &cfg.topology.targets_file {
        out.insert(
            format!("file:{}", f.path.display()),
            SourceSpec::File {
                file: f.clone(),
                resolver: cfg.topology.resolver.clone(),
                top_k: cfg.top_k,
                idle_threshold_seconds: cfg.idle_threshold_seconds,
                shard: cfg.shard,
            },
        );
    }
    out
}

/// Starts, stops and restarts sources to match `cfg`; a stopped source removes its nodes' series.
pub async fn reconcile_sources(
    set: &mut TaskSet<SourceSpec>,
    cfg: &Config,
    store: &Arc<Store>,
) -> ReloadSummary {
    set.reconcile(
        source_specs(cfg),
        |spec, stop| tokio::spawn(run(spec.clone(), Arc::clone(store), stop)),
        |_| {},
    )
    .await
}

async fn run(spec: SourceSpec, store: Arc<Store>, stop: CancellationToken) {
    let mut nodes = TaskSet::new(stop.clone());
    let ledger_key = spec.ledger_key();
    match spec {
        SourceSpec::Group {
            group,
            top_k,
            idle_threshold_seconds,
            interval,
            shard,
            max_nodes,
        } => {
            let mut g = GroupRunner {
                group: *group,
                top_k,
                idle_threshold_seconds,
                interval,
                shard,
                max_nodes,
                logged_dropped: false,
                discovered: BTreeMap::new(),
                observed: BTreeMap::new(),
                logged_ok: None,
            };
            g.run(&mut nodes, &store, &stop).await;
        }
        SourceSpec::File {
            file,
            resolver,
            top_k,
            idle_threshold_seconds,
            shard,
        } => {
            watch_file(
                &file,
                &resolver,
                (top_k, idle_threshold_seconds, shard),
                &mut nodes,
                &store,
                &stop,
            )
            .await
        }
    }
    nodes.stop_all(|label| store.remove(label)).await;
    store.shard.forget(&ledger_key);
    store.dropped_nodes.forget(&ledger_key);
}

/// A node as discovery reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub endpoint: Endpoint,
    pub role: Role,
}

impl Node {
    /// IPv6 hosts may come bracketed; `Endpoint` holds them bare.
    fn tcp(host: &str, port: u16, role: Role) -> Node {
        Node {
            endpoint: Endpoint::Tcp {
                host: host
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_string(),
                port,
            },
            role,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    #[error("{0}")]
    Poll(#[from] PollError),
    #[error("unexpected reply to {command}: {message}")]
    Reply {
        command: &'static str,
        message: String,
    },
    #[error("no node or sentinel answered (last error: {0})")]
    NoneAnswered(Box<DiscoveryError>),
    #[error("the sentinels do not know master set `{0}`")]
    UnknownMaster(String),
}

fn reply_error(command: &'static str, message: impl Into<String>) -> DiscoveryError {
    DiscoveryError::Reply {
        command,
        message: message.into(),
    }
}

struct GroupRunner {
    group: Group,
    top_k: usize,
    idle_threshold_seconds: u64,
    interval: Duration,
    /// Only the nodes whose label this replica's shard owns get a poller.
    shard: Shard,
    /// `discovery_max_nodes`: past it, a reply's other nodes are dropped.
    max_nodes: usize,
    /// Whether the last round dropped nodes (logged once per change).
    logged_dropped: bool,
    /// Node target label -> what discovery said (every node, owned or not: all are candidates
    /// to ask at the next discovery).
    discovered: BTreeMap<String, Node>,
    /// Node target label -> (up, INFO role) at the last look, to notice changes.
    observed: BTreeMap<String, (bool, Option<Role>)>,
    logged_ok: Option<bool>,
}

impl GroupRunner {
    async fn run(
        &mut self,
        nodes: &mut TaskSet<PollerSpec>,
        store: &Arc<Store>,
        stop: &CancellationToken,
    ) {
        // Early re-discovery is limited to once per node poll interval, so a flapping node
        // cannot turn discovery into a connection storm.
        let min_gap = self.group.node.poll_interval.min(self.interval);
        let tick = min_gap.clamp(Duration::from_millis(100), Duration::from_secs(5));
        let mut last: Option<Instant> = None;
        loop {
            let since = last.map(|t| t.elapsed());
            let due = since.is_none_or(|s| s >= self.interval)
                || (since.is_some_and(|s| s >= min_gap) && self.changed(store));
            if due {
                last = Some(Instant::now());
                let found = tokio::select! {
                    _ = stop.cancelled() => return,
                    r = discover(&self.group, self.discovered.values().map(|n| &n.endpoint)) => r,
                };
                self.apply(found, nodes, store).await;
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(tick) => {}
            }
        }
    }

    /// True when a node's reachability changed since the last look, or its own INFO role
    /// disagrees with discovery (a failover discovery has not seen yet).
    fn changed(&mut self, store: &Store) -> bool {
        let mut changed = false;
        for (label, node) in &self.discovered {
            let Some(s) = store.get(label) else { continue };
            if s.counters.polls == 0 {
                continue;
            }
            let role = s
                .info
                .as_ref()
                .and_then(|i| i.role.as_deref())
                .and_then(Role::from_info);
            let now = (s.up, role);
            // The first look at a node is a baseline, not a change.
            if self
                .observed
                .insert(label.clone(), now)
                .is_some_and(|before| before != now)
            {
                changed = true;
            }
            if role.is_some_and(|r| r != node.role) {
                changed = true;
            }
        }
        changed
    }

    async fn apply(
        &mut self,
        found: Result<Vec<Node>, DiscoveryError>,
        nodes: &mut TaskSet<PollerSpec>,
        store: &Arc<Store>,
    ) {
        let found = match found {
            Ok(f) => f,
            Err(e) => {
                if self.logged_ok != Some(false) {
                    tracing::warn!(cluster = %self.group.name, error = %e, "discovery failed; keeping the known nodes");
                    self.logged_ok = Some(false);
                }
                return;
            }
        };
        let source = format!("group:{}", self.group.name);
        let named = found.len();
        let (found, bad_address, over_limit) = admit(found, self.max_nodes);
        store
            .dropped_nodes
            .add(&source, "address", bad_address as u64);
        store.dropped_nodes.add(&source, "limit", over_limit as u64);
        let dropping = bad_address + over_limit > 0;
        if dropping != self.logged_dropped {
            if dropping {
                tracing::warn!(cluster = %self.group.name, named, bad_address, over_limit, max_nodes = self.max_nodes, "discovery named nodes the exporter will not poll (not a host:port, or past discovery_max_nodes)");
            } else {
                tracing::info!(cluster = %self.group.name, nodes = named, "discovery names only nodes the exporter polls again");
            }
            self.logged_dropped = dropping;
        }
        if self.logged_ok != Some(true) {
            tracing::info!(cluster = %self.group.name, nodes = found.len(), "discovery succeeded");
            self.logged_ok = Some(true);
        }
        let mut wanted = BTreeMap::new();
        let mut discovered = BTreeMap::new();
        let mut skipped = 0;
        for n in found {
            let mut target = self.group.node_target(n.endpoint.clone());
            // Bounded like every value from the network that becomes a label.
            target.label = crate::redis::label::bound(&target.label).into_owned();
            if !self.shard.owns(&target.label) {
                skipped += 1;
                discovered.insert(target.label.clone(), n);
                continue;
            }
            let topology = Topology {
                group: self.group.name.clone(),
                node: crate::redis::label::bound(&n.endpoint.label()).into_owned(),
                discovered_role: n.role,
            };
            discovered.insert(target.label.clone(), n);
            wanted.insert(
                target.label.clone(),
                PollerSpec {
                    target,
                    top_k: self.top_k,
                    idle_threshold_seconds: self.idle_threshold_seconds,
                    topology: Some(Arc::new(topology)),
                },
            );
        }
        store.shard.record(&source, wanted.len(), skipped);
        let summary = reconcile_pollers(nodes, wanted, store).await;
        if summary.is_change() {
            tracing::info!(cluster = %self.group.name, added = ?summary.added, removed = ?summary.removed, "node set changed");
        }
        self.observed.retain(|l, _| discovered.contains_key(l));
        self.discovered = discovered;
    }
}

/// The nodes of a discovery reply the exporter polls: those whose address is a host:port it
/// would connect to ([`checked_address`]), primaries first, at most `max`; and how many were
/// dropped for their address and for the bound.
fn admit(found: Vec<Node>, max: usize) -> (Vec<Node>, usize, usize) {
    let named = found.len();
    let mut ok: Vec<Node> = found
        .into_iter()
        .filter(|n| match &n.endpoint {
            Endpoint::Tcp { host, port } => checked_address(host, *port).is_ok(),
            Endpoint::Unix(_) => false,
        })
        .collect();
    let bad_address = named - ok.len();
    ok.sort_by_key(|n| n.role != Role::Primary);
    let over_limit = ok.len().saturating_sub(max);
    ok.truncate(max);
    (ok, bad_address, over_limit)
}

/// A discovered address is checked as a configured one would be: an IP address (not the
/// unspecified one) or a DNS host name (labels of letters, digits, `-` and `_`, at most 63
/// bytes each and 253 in all), and a port that is not 0. So no userinfo, path, percent
/// escape, whitespace or control character, and nothing longer than a name can be.
pub fn checked_address(host: &str, port: u16) -> Result<(), &'static str> {
    if port == 0 {
        return Err("port 0");
    }
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        return if ip.is_unspecified() {
            Err("the unspecified address")
        } else {
            Ok(())
        };
    }
    if host.is_empty() || host.len() > 253 {
        return Err("not a host name's length");
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if host.trim_end_matches('.').split('.').all(label_ok) {
        Ok(())
    } else {
        Err("not a host name")
    }
}

/// Asks the group where its nodes are: a cluster's seed first, then every known node; a
/// Sentinel set's sentinels in order. The first answer wins.
pub async fn discover(
    group: &Group,
    known: impl Iterator<Item = &Endpoint>,
) -> Result<Vec<Node>, DiscoveryError> {
    let candidates: Vec<Target> = match &group.kind {
        GroupKind::Cluster => {
            let mut eps = vec![group.node.endpoint.clone()];
            for e in known {
                if !eps.contains(e) {
                    eps.push(e.clone());
                }
            }
            eps.into_iter().map(|e| group.node_target(e)).collect()
        }
        GroupKind::Sentinel { sentinels, .. } => sentinels.clone(),
    };
    let mut last = None;
    for t in &candidates {
        let mut conn = match Conn::open(t).await {
            Ok(c) => c,
            Err(e) => {
                last = Some(DiscoveryError::Poll(e));
                continue;
            }
        };
        let r = match &group.kind {
            GroupKind::Cluster => ask_cluster(&mut conn, t).await,
            GroupKind::Sentinel { master, .. } => ask_sentinel(&mut conn, master).await,
        };
        conn.close().await;
        match r {
            Ok(nodes) => return Ok(nodes),
            // A sentinel that does not know the master may be new; another may.
            Err(e) => last = Some(e),
        }
    }
    Err(DiscoveryError::NoneAnswered(Box::new(last.unwrap_or(
        reply_error("discovery", "no candidate to ask"),
    ))))
}

/// One discovery command (`CLUSTER ...`, `SENTINEL ...`) under the target's command timeout.
async fn command(conn: &mut Conn, command: Command<'_>) -> Result<Value, PollError> {
    conn.run(Stage::Discovery, command).await
}

async fn ask_cluster(conn: &mut Conn, t: &Target) -> Result<Vec<Node>, DiscoveryError> {
    let tls = t.tls.is_some();
    match command(conn, Command::ClusterShards).await {
        Ok(v) => parse_cluster_shards(&v, tls),
        // CLUSTER SHARDS is 7.0+; older servers answer "unknown subcommand".
        Err(e) if e.message.to_ascii_lowercase().contains("unknown") => {
            let v = command(conn, Command::ClusterNodes).await?;
            let text = as_string(&v).ok_or_else(|| reply_error("CLUSTER NODES", "not text"))?;
            parse_cluster_nodes(&text)
        }
        Err(e) => Err(e.into()),
    }
}

async fn ask_sentinel(conn: &mut Conn, master: &str) -> Result<Vec<Node>, DiscoveryError> {
    let m = match command(conn, Command::SentinelMaster(master)).await {
        Ok(v) => v,
        Err(e) if e.message.to_ascii_lowercase().contains("no such master") => {
            return Err(DiscoveryError::UnknownMaster(master.to_string()))
        }
        Err(e) => return Err(e.into()),
    };
    let mut nodes = vec![sentinel_node(&m, Role::Primary, "SENTINEL MASTER")?];
    let replicas = match command(conn, Command::SentinelReplicas(master)).await {
        Ok(v) => v,
        // SENTINEL REPLICAS is 5.0+; before, SLAVES.
        Err(e) if e.message.to_ascii_lowercase().contains("unknown") => {
            command(conn, Command::SentinelSlaves(master)).await?
        }
        Err(e) => return Err(e.into()),
    };
    let Value::Array(list) = replicas else {
        return Err(reply_error("SENTINEL REPLICAS", "not an array"));
    };
    for r in &list {
        let n = sentinel_node(r, Role::Replica, "SENTINEL REPLICAS")?;
        if !nodes.iter().any(|x| x.endpoint == n.endpoint) {
            nodes.push(n);
        }
    }
    Ok(nodes)
}

fn sentinel_node(v: &Value, role: Role, command: &'static str) -> Result<Node, DiscoveryError> {
    let fields = pairs(v).ok_or_else(|| reply_error(command, "not a field list"))?;
    let get = |k: &str| {
        fields
            .iter()
            .find(|(n, _)| n == k)
            .and_then(|(_, v)| as_string(v))
    };
    let ip = get("ip").ok_or_else(|| reply_error(command, "no ip"))?;
    let port = get("port")
        .and_then(|p| p.parse::<u16>().ok())
        .ok_or_else(|| reply_error(command, "no port"))?;
    Ok(Node::tcp(&ip, port, role))
}

fn as_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.to_string()),
        Value::Bytes(b) => std::str::from_utf8(b).ok().map(str::to_string),
        Value::Integer(i) => Some(i.to_string()),
        _ => None,
    }
}

/// A RESP2 field list (`[k1, v1, k2, v2, ...]`) as name/value pairs (the exporter speaks RESP2).
fn pairs(v: &Value) -> Option<Vec<(String, &Value)>> {
    match v {
        Value::Array(items) if items.len() % 2 == 0 => items
            .chunks(2)
            .map(|kv| as_string(&kv[0]).map(|k| (k, &kv[1])))
            .collect(),
        _ => None,
    }
}

/// CLUSTER SHARDS (7.0+): per shard, `slots` and `nodes`, each node a field list with
/// `ip`, `endpoint`, `port`/`tls-port`, `role`.
pub fn parse_cluster_shards(v: &Value, tls: bool) -> Result<Vec<Node>, DiscoveryError> {
    const CMD: &str = "CLUSTER SHARDS";
    let Value::Array(shards) = v else {
        return Err(reply_error(CMD, "not an array"));
    };
    let mut out = Vec::new();
    let mut serving = false;
    for shard in shards {
        let fields = pairs(shard).ok_or_else(|| reply_error(CMD, "shard is not a field list"))?;
        let Some((_, Value::Array(nodes))) = fields.iter().find(|(k, _)| k == "nodes") else {
            return Err(reply_error(CMD, "shard without nodes"));
        };
        serving |= matches!(fields.iter().find(|(k, _)| k == "slots"), Some((_, Value::Array(s))) if !s.is_empty());
        for n in nodes {
            let f = pairs(n).ok_or_else(|| reply_error(CMD, "node is not a field list"))?;
            let get = |k: &str| {
                f.iter()
                    .find(|(n, _)| n == k)
                    .and_then(|(_, v)| as_string(v))
            };
            // `endpoint` is what the cluster tells clients to use; "?" or empty means unknown.
            let host = get("endpoint")
                .filter(|e| !e.is_empty() && e != "?")
                .or_else(|| get("ip"))
                .ok_or_else(|| reply_error(CMD, "node without address"))?;
            let port = if tls { get("tls-port") } else { None }
                .or_else(|| get("port"))
                .and_then(|p| p.parse::<u16>().ok())
                .ok_or_else(|| reply_error(CMD, "node without port"))?;
            let role = match get("role").as_deref() {
                Some("master") => Role::Primary,
                Some("replica") | Some("slave") => Role::Replica,
                _ => return Err(reply_error(CMD, "node with an unknown role")),
            };
            out.push(Node::tcp(&host, port, role));
        }
    }
    non_empty(out, serving, CMD)
}

/// CLUSTER NODES (every version): `<id> <ip:port@cport[,hostname]> <flags> ...` per line. Nodes
/// still in handshake or without an address are skipped: there is nothing to connect to yet.
pub fn parse_cluster_nodes(text: &str) -> Result<Vec<Node>, DiscoveryError> {
    const CMD: &str = "CLUSTER NODES";
    let mut out = Vec::new();
    let mut serving = false;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut f = line.split_ascii_whitespace();
        let (Some(_id), Some(addr), Some(flags)) = (f.next(), f.next(), f.next()) else {
            return Err(reply_error(CMD, "short line"));
        };
        // master, ping-sent, pong-recv, config-epoch, link-state, then the slot ranges.
        serving |= f.nth(5).is_some();
        let flags: Vec<&str> = flags.split(',').collect();
        if flags.contains(&"noaddr") || flags.contains(&"handshake") {
            continue;
        }
        let addr = addr.split(['@', ',']).next().unwrap_or(addr);
        let (host, port) = addr
            .rsplit_once(':')
            .ok_or_else(|| reply_error(CMD, "address without port"))?;
        let port: u16 = port
            .parse()
            .map_err(|_| reply_error(CMD, "address with a bad port"))?;
        if host.is_empty() {
            continue;
        }
        let role = if flags.contains(&"master") {
            Role::Primary
        } else if flags.contains(&"slave") {
            Role::Replica
        } else {
            return Err(reply_error(CMD, "node neither master nor slave"));
        };
        out.push(Node::tcp(host, port, role));
    }
    non_empty(out, serving, CMD)
}

/// A reply that names no node, or in which no node serves a slot, is not a working cluster's
/// answer: a node removed from its cluster (`del-node` resets it) or one not yet joined knows
/// only itself. The caller then asks another node, or keeps the known nodes.
fn non_empty(
    nodes: Vec<Node>,
    serving: bool,
    command: &'static str,
) -> Result<Vec<Node>, DiscoveryError> {
    if nodes.is_empty() {
        return Err(reply_error(command, "no nodes"));
    }
    if !serving {
        return Err(reply_error(
            command,
            "no node serves any slot: not a working cluster",
        ));
    }
    Ok(nodes)
}

/// Re-reads the targets file every interval and reconciles its targets; a file that does not
/// parse leaves the running set alone (logged once per state change, naming file and key).
async fn watch_file(
    file: &TargetsFile,
    resolver: &Resolver,
    (top_k, idle_threshold_seconds, shard): (usize, u64, Shard),
    nodes: &mut TaskSet<PollerSpec>,
    store: &Arc<Store>,
    stop: &CancellationToken,
) {
    let mut last_error: Option<String> = None;
    loop {
        // Read and parsed on a blocking thread: a file on a slow or hung mount (NFS, a
        // ConfigMap volume being swapped) must not stall the runtime's workers.
        let (r, path) = (resolver.clone(), file.path.clone());
        let read = tokio::task::spawn_blocking(move || r.targets_file(&path))
            .await
            .unwrap_or_else(|e| {
                Err(crate::config::ConfigError::Load {
                    origin: file.path.display().to_string(),
                    message: format!("reading the targets file failed: {e}"),
                })
            });
        match read {
            Ok(targets) => {
                if last_error.take().is_some() {
                    tracing::info!(file = %file.path.display(), "targets file valid again");
                }
                let (owned, skipped): (Vec<_>, Vec<_>) =
                    targets.into_iter().partition(|t| shard.owns(&t.label));
                store
                    .shard
                    .record("targets_file", owned.len(), skipped.len());
                let wanted = owned
                    .into_iter()
                    .map(|target| {
                        (
                            target.label.clone(),
                            PollerSpec {
                                target,
                                top_k,
                                idle_threshold_seconds,
                                topology: None,
                            },
                        )
                    })
                    .collect();
                let s = reconcile_pollers(nodes, wanted, store).await;
                if s.is_change() {
                    tracing::info!(file = %file.path.display(), added = ?s.added, removed = ?s.removed, restarted = ?s.restarted, "targets file applied");
                }
            }
            Err(e) => {
                let msg = e.to_string();
                if last_error.as_deref() != Some(msg.as_str()) {
                    tracing::error!(error = %msg, "targets file rejected; its running targets stay");
                    last_error = Some(msg);
                }
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(file.interval) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_nodes_lines_of_several_versions() {
        let text = "\
07c37dfeb235213a872192d90877d0cd55635b91 127.0.0.1:30004@31004,host-d slave e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 0 1426238317239 4 connected
67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1 127.0.0.1:30002@31002 master - 0 1426238316232 2 connected 5461-10922
e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 127.0.0.1:30001 myself,master - 0 0 1 connected 0-5460
6ec23923021cf3ffec47632106199cb7f496ce01 :0@0 noaddr,slave - 0 0 0 disconnected
824fe116063bc5fcf9f4ffd895bc17aee7731ac3 [::1]:30006@31006 slave,fail 67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1 0 1426238317741 6 connected
";
        let n = parse_cluster_nodes(text).expect("parses");
        assert_eq!(n.len(), 4);
        assert_eq!(n[0].endpoint.label(), "127.0.0.1:30004");
        assert_eq!(n[0].role, Role::Replica);
        assert_eq!(n[2].role, Role::Primary);
        assert_eq!(n[3].endpoint.label(), "[::1]:30006");
        assert!(parse_cluster_nodes("junk").is_err());
        // A node reset out of its cluster knows only itself and serves no slot.
        let reset = "e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 127.0.0.1:30001@31001 myself,master - 0 0 0 connected\n";
        assert!(parse_cluster_nodes(reset).is_err());
        assert!(parse_cluster_nodes("").is_err());
    }

    fn s(v: &str) -> Value {
        Value::String(v.into())
    }

    #[test]
    fn cluster_shards_reply() {
        let node = |ip: &str, port: i64, role: &str| {
            Value::Array(vec![
                s("id"),
                s("abc"),
                s("port"),
                Value::Integer(port),
                s("tls-port"),
                Value::Integer(port + 100),
                s("ip"),
                s(ip),
                s("endpoint"),
                s("?"),
                s("role"),
                s(role),
                s("health"),
                s("online"),
            ])
        };
        let shard = Value::Array(vec![
            s("slots"),
            Value::Array(vec![Value::Integer(0), Value::Integer(5460)]),
            s("nodes"),
            Value::Array(vec![
                node("10.0.0.1", 7000, "master"),
                node("10.0.0.2", 7001, "replica"),
            ]),
        ]);
        let v = Value::Array(vec![shard]);
        let n = parse_cluster_shards(&v, false).expect("parses");
        assert_eq!(
            n,
            vec![
                Node {
                    endpoint: Endpoint::Tcp {
                        host: "10.0.0.1".into(),
                        port: 7000
                    },
                    role: Role::Primary
                },
                Node {
                    endpoint: Endpoint::Tcp {
                        host: "10.0.0.2".into(),
                        port: 7001
                    },
                    role: Role::Replica
                },
            ]
        );
        let n = parse_cluster_shards(&v, true).expect("parses");
        assert_eq!(n[0].endpoint.label(), "10.0.0.1:7100");
        assert!(parse_cluster_shards(&s("x"), false).is_err());
        assert!(parse_cluster_shards(&Value::Array(vec![]), false).is_err());
        let unserved = Value::Array(vec![Value::Array(vec![
            s("slots"),
            Value::Array(vec![]),
            s("nodes"),
            Value::Array(vec![node("10.0.0.1", 7000, "master")]),
        ])]);
        assert!(parse_cluster_shards(&unserved, false).is_err());
    }
}
