//! Turns the store's target states into Prometheus metric families and text.
//!
//! Families are written from the immutable states, never kept in a registry: a top-K label
//! value that drops out of a snapshot must disappear from `/metrics`, which long-lived `*Vec`
//! metrics would keep forever. Each state's series are written once, when it is published
//! ([`render_block`]), and a scrape assembles them ([`render_body_as`]; docs/performance.md,
//! "A scrape is assembly"). docs/metrics.md lists every family.

use std::borrow::Cow;

use bytes::Bytes;

use crate::web::exposition::{Exposition, Format, Kind};

use crate::analysis::aggregate::Distribution;
use crate::redis::client_list::{ClientType, Flag};
use crate::redis::info::looks_fd_clamped;
use crate::targets::state::{ErrorKind, Rendered, Role, TargetState};

mod extra;

/// Collects families by name, in first-use order, so each family is emitted once with all its
/// targets' series, written as text as they come (src/exposition.rs).
struct Families {
    out: Exposition,
    /// Labels added to every series of the current target (cluster/Sentinel nodes).
    extra: Vec<(&'static str, String)>,
}

// The help text of redis_clients_exporter_label_values_truncated_total names the bound.
const _: () = assert!(crate::redis::label::MAX_LABEL_BYTES == 128);

/// Values from Redis are bounded where they are read (and counted there); this bounds
/// whatever else reaches a label (topology names from CLUSTER NODES or Sentinel) the same way.
/// `target` is the operator's own label and is kept whole: it must match their configuration.
fn bounded<'a>(n: &'a str, v: &'a str) -> (&'a str, Cow<'a, str>) {
    if n == "target" {
        (n, Cow::Borrowed(v))
    } else {
        (n, crate::redis::label::bound(v))
    }
}

/// `l` plus the current target's topology labels `extra`, except those `l` names itself
/// (`redis_instance_info` has its own `role`, INFO's word). An iterator: nothing is allocated
/// per series unless a value is cut.
fn labels<'a>(
    extra: &'a [(&'static str, String)],
    l: &'a [(&'a str, &'a str)],
) -> impl Iterator<Item = (&'a str, Cow<'a, str>)> + Clone + 'a {
    let own = l.iter().map(|(n, v)| bounded(n, v));
    let topology = extra
        .iter()
        .filter(move |(n, _)| !l.iter().any(|(name, _)| name == n))
        .map(|(n, v)| bounded(n, v));
    own.chain(topology)
}

impl Families {
    fn new(format: Format) -> Self {
        Families {
            out: Exposition::new(format),
            extra: Vec::new(),
        }
    }

    /// One target's series, without headers (web/exposition.rs, `Exposition::block`).
    fn block(format: Format) -> Self {
        Families {
            out: Exposition::block(format),
            extra: Vec::new(),
        }
    }

    fn series(&mut self, name: &str, help: &str, kind: Kind, l: &[(&str, &str)], v: f64) {
        self.out.sample(name, help, kind, labels(&self.extra, l), v);
    }

    fn gauge(&mut self, name: &str, help: &str, l: &[(&str, &str)], v: f64) {
        self.series(name, help, Kind::Gauge, l, v);
    }

    fn gauge_opt(&mut self, name: &str, help: &str, l: &[(&str, &str)], v: Option<f64>) {
        if let Some(v) = v {
            self.gauge(name, help, l, v);
        }
    }

    fn counter(&mut self, name: &str, help: &str, l: &[(&str, &str)], v: f64) {
        self.series(name, help, Kind::Counter, l, v);
    }

    fn histogram(&mut self, name: &str, help: &str, l: &[(&str, &str)], d: &Distribution) {
        self.out.histogram(
            name,
            help,
            labels(&self.extra, l),
            d.cumulative().map(|(ub, c)| (ub as f64, c)),
            d.sum as f64,
            d.count,
        );
    }
}

/// Every target's state as Prometheus text (format 0.0.4), one chunk per family: what
/// `/metrics` serves without joining them (src/exposition.rs).
pub fn render_chunks(states: &[(String, std::sync::Arc<TargetState>)]) -> Vec<Bytes> {
    render_chunks_as(states, Format::Text)
}

fn build_info(f: &mut Families) {
    f.gauge(
        "redis_clients_exporter_build_info",
        "Version, git revision and branch, and compiler of redis-clients-exporter (always 1).",
        &crate::web::build_info::labels(),
        1.0,
    );
}

/// [`render_chunks`] in the given text format, assembled from each target's block (written
/// when its state was published, or now if it was not): the scrape copies text, it formats
/// nothing but `build_info` and the families' headers.
pub fn render_chunks_as(
    states: &[(String, std::sync::Arc<TargetState>)],
    format: Format,
) -> Vec<Bytes> {
    render_body_as(states, format).collect()
}

/// [`render_chunks_as`] as the body `/metrics` sends: the blocks are copied into chunks of a
/// bounded size as the body is sent, so a scrape never holds the whole page.
pub fn render_body_as(
    states: &[(String, std::sync::Arc<TargetState>)],
    format: Format,
) -> crate::web::exposition::Chunks {
    let mut f = Families::new(format);
    build_info(&mut f);
    let blocks: Vec<std::sync::Arc<crate::targets::state::Block>> = states
        .iter()
        .map(|(target, s)| {
            let r = s.rendered.get_or_init(|| render_block(target, s));
            match (format, &r.openmetrics) {
                (Format::OpenMetrics, Some(om)) => std::sync::Arc::clone(om),
                _ => std::sync::Arc::clone(&r.text),
            }
        })
        .collect();
    let mut body = crate::web::exposition::Chunks::new(f.out.into_chunks());
    body.append(crate::web::exposition::Assembly::new(blocks, format));
    body
}

/// One target's series, once for both formats unless a value is spelled differently in
/// OpenMetrics (an infinity): what [`Store::publish`](crate::targets::state::Store::publish)
/// keeps with the state.
pub fn render_block(target: &str, s: &TargetState) -> Rendered {
    let one = |format| {
        let mut f = Families::block(format);
        f.extra = topology_labels(s);
        add_target(&mut f, target, s);
        f.out
    };
    let text = one(Format::Text);
    let openmetrics = text
        .format_sensitive()
        .then(|| std::sync::Arc::new(one(Format::OpenMetrics).into_block()));
    Rendered {
        text: std::sync::Arc::new(text.into_block()),
        openmetrics,
    }
}

/// [`render_chunks_as`] the way every scrape did before blocks: every series formatted now,
/// into one exposition. The reference the assembly is tested against (and benches/scrape.rs's
/// "before").
pub fn render_chunks_direct(
    states: &[(String, std::sync::Arc<TargetState>)],
    format: Format,
) -> Vec<Bytes> {
    let mut f = Families::new(format);
    build_info(&mut f);
    for (target, s) in states {
        f.extra = topology_labels(s);
        add_target(&mut f, target, s);
    }
    f.out.into_chunks()
}

/// Renders every target's state as Prometheus text (format 0.0.4), in one buffer.
pub fn render(states: &[(String, std::sync::Arc<TargetState>)]) -> Vec<u8> {
    let chunks = render_chunks(states);
    let mut out = Vec::with_capacity(chunks.iter().map(Bytes::len).sum());
    for c in &chunks {
        out.extend_from_slice(c);
    }
    out
}

/// `redis_clients_exporter_actions_total` from the relief counts (src/relief), as text to
/// append to [`render`]'s; empty when there are none.
pub fn render_actions(
    counts: &[(String, &'static str, &'static str, u64)],
    auth_failures: &[(&'static str, u64)],
) -> Vec<u8> {
    render_actions_as(counts, auth_failures, Format::Text)
}

/// [`render_actions`] in the given text format.
pub fn render_actions_as(
    counts: &[(String, &'static str, &'static str, u64)],
    auth_failures: &[(&'static str, u64)],
    format: Format,
) -> Vec<u8> {
    let mut f = Families::new(format);
    for (action, n) in auth_failures {
        f.counter(
            "redis_clients_exporter_relief_auth_failures_total",
            "Requests to a relief route (preview, execute) refused because their basic-auth credentials failed; each also leaves an audit line.",
            &[("action", action)],
            *n as f64,
        );
    }
    for (target, action, result, n) in counts {
        f.counter(
            "redis_clients_exporter_actions_total",
            "Relief requests (preview, execute) per target, by result (ok, partial, failed, denied, rate_limited, ...).",
            &[("target", target), ("action", action), ("result", result)],
            *n as f64,
        );
    }
    f.out.into_bytes()
}

/// This replica's shard (src/shard.rs) and, per source of targets, how many it owns and how
/// many it leaves to the other replicas; text to append to [`render`]'s.
pub fn render_shard(ledger: &crate::config::shard::Ledger) -> Vec<u8> {
    render_shard_as(ledger, Format::Text)
}

/// [`render_shard`] in the given text format.
pub fn render_shard_as(ledger: &crate::config::shard::Ledger, format: Format) -> Vec<u8> {
    let (shard, sources) = ledger.snapshot();
    let mut f = Families::new(format);
    let (index, count) = (shard.index.to_string(), shard.count.to_string());
    f.gauge(
        "redis_clients_exporter_shard_info",
        "This replica's shard: it polls the targets whose label's FNV-1a hash modulo shards is shard (always 1).",
        &[("shard", &index), ("shards", &count)],
        1.0,
    );
    for (source, [owned, skipped]) in &sources {
        for (state, n) in [("owned", owned), ("skipped", skipped)] {
            f.gauge(
                "redis_clients_exporter_shard_targets",
                "Targets of a source (targets, targets_file, group:NAME) this replica polls (owned) or leaves to the others (skipped).",
                &[("source", source), ("state", state)],
                *n as f64,
            );
        }
    }
    f.out.into_bytes()
}

/// Per discovery source and reason, the nodes a discovery reply named that are not polled
/// (src/targets/discovery.rs); text to append to [`render`]'s, empty without clusters or
/// Sentinel sets.
pub fn render_discovery(dropped: &crate::targets::state::DroppedNodes) -> Vec<u8> {
    render_discovery_as(dropped, Format::Text)
}

/// [`render_discovery`] in the given text format.
pub fn render_discovery_as(
    dropped: &crate::targets::state::DroppedNodes,
    format: Format,
) -> Vec<u8> {
    let mut f = Families::new(format);
    for (source, reason, n) in dropped.snapshot() {
        f.counter(
            "redis_clients_exporter_discovery_nodes_dropped_total",
            "Nodes a cluster or Sentinel discovery reply named and the exporter does not poll, by reason (limit: past discovery_max_nodes; address: not a host:port it connects to), summed over discovery rounds.",
            &[("source", &source), ("reason", reason)],
            n as f64,
        );
    }
    f.out.into_bytes()
}

/// The identity layer's sources (src/identity): whether the last refresh of each worked and how
/// many addresses it names; empty when identity is off.
pub fn render_identity_as(hub: &crate::identity::IdentityHub, format: Format) -> Vec<u8> {
    let mut f = Families::new(format);
    for (source, s) in hub.statuses() {
        f.gauge(
            "redis_clients_exporter_identity_source_up",
            "Whether the identity source's last refresh worked (0: its addresses are shown as addresses).",
            &[("source", source)],
            if s.up { 1.0 } else { 0.0 },
        );
        f.gauge(
            "redis_clients_exporter_identity_entries",
            "Addresses or networks the identity source names.",
            &[("source", source)],
            s.entries as f64,
        );
    }
    f.out.into_bytes()
}

/// `cluster`, `node` and `role` for a node of a cluster or Sentinel set; nothing otherwise, so
/// plain targets keep their label set. The role is the node's own INFO `role` once polled.
fn topology_labels(s: &TargetState) -> Vec<(&'static str, String)> {
    let Some(t) = &s.topology else {
        return Vec::new();
    };
    let role = s
        .info
        .as_ref()
        .and_then(|i| i.role.as_deref())
        .and_then(Role::from_info)
        .unwrap_or(t.discovered_role);
    vec![
        ("cluster", t.group.clone()),
        ("node", t.node.clone()),
        ("role", role.as_str().to_string()),
    ]
}

fn add_target(f: &mut Families, target: &str, s: &TargetState) {
    let t = [("target", target)];
    let t: &[(&str, &str)] = &t;
    f.gauge(
        "redis_up",
        "1 if the last poll of the target succeeded on the held connection.",
        t,
        if s.up { 1.0 } else { 0.0 },
    );
    add_self_metrics(f, t, target, s);
    if !s.up {
        // Values of a server we cannot see would be presented as current: show only that it is down.
        return;
    }
    if let Some(d) = &s.diagnosis {
        add_diagnosis(f, target, d);
    }
    if let Some(i) = &s.info {
        add_info(f, t, target, i);
    }
    add_limits(f, t, target, s);
    extra::config(f, t, &s.config);
    if let Some(c) = &s.clients {
        add_client_list(f, t, target, c);
        extra::client_list(f, t, target, &c.details);
    }
}

/// `redis_client_diagnosis`: the most likely cause's score, with its culprit.
fn add_diagnosis(f: &mut Families, target: &str, d: &crate::diagnose::Report) {
    let (cause, score) = d.exported();
    // The culprit (`source_ip 10.0.3.7`, `client_name orders-api`) as two labels, so that
    // alerts and dashboards can quote who; still one series per target.
    let (culprit_kind, culprit) = d
        .findings
        .iter()
        .find(|f| f.cause.as_str() == cause)
        .and_then(|f| f.culprit.as_deref())
        .and_then(|c| c.split_once(' '))
        .unwrap_or(("none", ""));
    f.gauge(
        "redis_client_diagnosis",
        "Score (0-1, confidence x severity) of the most likely cause of connection exhaustion; cause=none when no finding has a threat; culprit_kind/culprit name who (source_ip or client_name). /diagnose explains it.",
        &[
            ("target", target),
            ("cause", cause),
            ("culprit_kind", culprit_kind),
            ("culprit", culprit),
        ],
        score,
    );
}

/// The INFO families: client counts, the limit, connection counters, uptime, memory, identity.
fn add_info(f: &mut Families, t: &[(&str, &str)], target: &str, i: &crate::redis::info::Info) {
    f.gauge_opt(
        "redis_connected_clients",
        "Client connections, replicas excluded (INFO connected_clients).",
        t,
        i.connected_clients,
    );
    f.gauge_opt(
        "redis_blocked_clients",
        "Clients blocked in a blocking command (INFO blocked_clients).",
        t,
        i.blocked_clients,
    );
    f.gauge_opt(
        "redis_tracking_clients",
        "Clients with CLIENT TRACKING on (INFO tracking_clients).",
        t,
        i.tracking_clients,
    );
    f.gauge_opt(
        "redis_connected_slaves",
        "Connected replicas (INFO connected_slaves); they count against maxclients.",
        t,
        i.connected_slaves,
    );
    f.gauge_opt(
        "redis_cluster_connections",
        "Cluster bus connections (INFO cluster_connections); they count against maxclients.",
        t,
        i.cluster_connections,
    );
    f.gauge_opt(
        "redis_max_clients",
        "maxclients as INFO reports it (Redis 6.2+, Valkey).",
        t,
        i.maxclients,
    );
    if let Some(v) = i.total_connections_received {
        f.counter(
            "redis_connections_received_total",
            "Connections accepted since the server started.",
            t,
            v,
        );
    }
    if let Some(v) = i.rejected_connections {
        f.counter(
            "redis_rejected_connections_total",
            "Connections refused because maxclients was reached.",
            t,
            v,
        );
    }
    f.gauge_opt(
        "redis_uptime_in_seconds",
        "Server uptime in seconds.",
        t,
        i.uptime_in_seconds,
    );
    f.gauge_opt(
        "redis_memory_used_bytes",
        "Memory used by the server (INFO used_memory).",
        t,
        i.used_memory,
    );
    extra::info(f, t, target, &i.extra);
    // `redis_version` stays INFO's word (Valkey keeps 7.2.4 there) for dashboards built on
    // the Go exporter; `server_name` and `server_version` say what the server is.
    let (server_name, server_version) = i.server().unwrap_or(("", ""));
    f.gauge(
        "redis_instance_info",
        "Server identity (always 1): server_name (redis, valkey) and server_version are the product's own; redis_version is INFO's (7.2.4 on every Valkey).",
        &[
            ("target", target),
            ("server_name", server_name),
            ("server_version", server_version),
            ("redis_version", i.redis_version.as_deref().unwrap_or("")),
            ("redis_mode", i.redis_mode.as_deref().unwrap_or("")),
            ("role", i.role.as_deref().unwrap_or("")),
        ],
        1.0,
    );
}

fn add_self_metrics(f: &mut Families, t: &[(&str, &str)], target: &str, s: &TargetState) {
    let d = &s.durations;
    for (stage, v) in [
        ("info", d.info),
        ("config", d.config),
        ("client_list", d.client_list),
        ("aggregate", d.aggregate),
        ("total", d.total),
    ] {
        f.gauge(
            "redis_clients_exporter_poll_duration_seconds",
            "Seconds the last poll of the target spent per stage.",
            &[("target", target), ("stage", stage)],
            v,
        );
    }
    f.gauge_opt(
        "redis_clients_exporter_last_success_timestamp_seconds",
        "Unix time of the last completed poll of the target.",
        t,
        s.last_success,
    );
    f.gauge_opt(
        "redis_clients_exporter_last_client_list_timestamp_seconds",
        "Unix time of the CLIENT LIST behind the redis_client_* families.",
        t,
        s.client_list_timestamp,
    );
    let c = &s.counters;
    f.counter(
        "redis_clients_exporter_polls_total",
        "Polls started for the target.",
        t,
        c.polls as f64,
    );
    for k in ErrorKind::ALL {
        f.counter(
            "redis_clients_exporter_poll_errors_total",
            "Failed polls or poll stages of the target, by kind.",
            &[("target", target), ("kind", k.as_str())],
            c.errors[k as usize] as f64,
        );
    }
    add_client_list_counters(f, t, target, c);
    for (reply, n) in [
        ("info", c.info_invalid_utf8_lines),
        ("client_list", c.client_list_invalid_utf8_lines),
    ] {
        f.counter(
            "redis_clients_exporter_invalid_utf8_lines_total",
            "Reply lines holding bytes that are not UTF-8, decoded with U+FFFD in their place, by reply (info, client_list).",
            &[("target", target), ("reply", reply)],
            n as f64,
        );
    }
    f.counter(
        "redis_clients_exporter_label_values_truncated_total",
        "Values from Redis longer than 128 bytes, cut (start, then a hash of the whole value) before becoming label values; counted once per value per poll.",
        t,
        c.label_values_truncated as f64,
    );
}

/// The exporter's own counts of its CLIENT LIST reads: lines, commands, full listings, sweeps,
/// parse errors.
fn add_client_list_counters(
    f: &mut Families,
    t: &[(&str, &str)],
    target: &str,
    c: &crate::targets::state::Counters,
) {
    f.counter(
        "redis_clients_exporter_client_list_lines_total",
        "CLIENT LIST lines seen for the target.",
        t,
        c.client_list_lines as f64,
    );
    f.counter(
        "redis_clients_exporter_client_list_commands_total",
        "CLIENT LIST commands sent for the target (a chunked listing sends one per chunk of ids).",
        t,
        c.client_list_commands as f64,
    );
    f.gauge_opt(
        "redis_clients_exporter_client_list_commands",
        "CLIENT LIST commands the last listing of the target took (1: a full listing).",
        t,
        (c.client_list_commands > 0).then_some(c.client_list_last_commands as f64),
    );
    for r in crate::redis::chunked::FullReason::ALL {
        f.counter(
            "redis_clients_exporter_client_list_full_listings_total",
            "Full CLIENT LIST listings of the target (one command for every client), by reason.",
            &[("target", target), ("reason", r.as_str())],
            c.client_list_full[r as usize] as f64,
        );
    }
    // Only the reasons a sweep can have: the others always list in full.
    for r in crate::redis::chunked::FullReason::SWEEPS {
        f.counter(
            "redis_clients_exporter_client_list_sweeps_total",
            "CLIENT LIST sweeps of the target (every id from 1, in chunks), by reason.",
            &[("target", target), ("reason", r.as_str())],
            c.client_list_sweeps[r as usize] as f64,
        );
    }
    f.counter(
        "redis_clients_exporter_client_list_parse_errors_total",
        "CLIENT LIST lines that could not be parsed and were skipped.",
        t,
        c.parse_errors as f64,
    );
}

fn add_limits(f: &mut Families, t: &[(&str, &str)], target: &str, s: &TargetState) {
    let effective = s.config.effective_maxclients(s.info.as_ref());
    let maxclients = effective.map(|(m, _)| m);
    f.gauge(
        "redis_client_config_available",
        "1 when CONFIG GET works on the target, 0 when renamed or forbidden.",
        t,
        if s.config.available { 1.0 } else { 0.0 },
    );
    if let Some((m, source)) = effective {
        f.gauge(
            "redis_config_maxclients",
            "Effective maxclients (CONFIG GET, or INFO when CONFIG is unavailable).",
            t,
            m,
        );
        f.gauge(
            "redis_client_maxclients_source",
            "Where maxclients was read: config or info (always 1).",
            &[("target", target), ("source", source.as_str())],
            1.0,
        );
        f.gauge(
            "redis_client_maxclients_clamped",
            "1 when maxclients + 32 is a typical open-files limit (a power of two or a round thousand): the value Redis sets when the fd limit clamps it.",
            t,
            if looks_fd_clamped(m) { 1.0 } else { 0.0 },
        );
    }
    let used = s.info.as_ref().and_then(|i| i.limit_connections());
    f.gauge_opt(
        "redis_client_limit_connections",
        "Connections Redis counts against maxclients: clients + replicas + cluster bus.",
        t,
        used,
    );
    if let (Some(m), Some(u)) = (maxclients, used) {
        f.gauge(
            "redis_client_headroom_connections",
            "New connections Redis can still accept: maxclients - limit connections.",
            t,
            m - u,
        );
    }
    f.gauge_opt(
        "redis_client_config_timeout_seconds",
        "Idle client timeout (0 = idle connections are never closed).",
        t,
        s.config.timeout,
    );
    f.gauge_opt(
        "redis_client_config_tcp_keepalive_seconds",
        "tcp-keepalive (0 = dead peers are never detected).",
        t,
        s.config.tcp_keepalive,
    );
}

fn add_client_list(
    f: &mut Families,
    t: &[(&str, &str)],
    target: &str,
    c: &crate::analysis::aggregate::ClientListSummary,
) {
    f.gauge(
        "redis_client_snapshot_connections",
        "Lines in the last CLIENT LIST snapshot.",
        t,
        c.connections as f64,
    );
    f.gauge(
        "redis_client_distinct_sources",
        "Distinct source IPs in the last CLIENT LIST snapshot.",
        t,
        c.distinct_sources as f64,
    );
    f.gauge(
        "redis_client_output_buffer_bytes",
        "Summed output buffer memory of all clients (omem).",
        t,
        c.output_buffer_bytes as f64,
    );
    for (ip, st) in &c.by_source {
        let l = [("target", target), ("source_ip", ip.as_str())];
        f.gauge(
            "redis_client_connections",
            "Connections per source IP (top K + other).",
            &l,
            st.connections as f64,
        );
        f.gauge(
            "redis_client_source_idle_connections",
            "Connections per source IP idle at least the idle threshold.",
            &l,
            st.idle_connections as f64,
        );
        f.gauge(
            "redis_client_source_oldest_idle_seconds",
            "Longest idle time of a connection per source IP.",
            &l,
            st.oldest_idle_seconds as f64,
        );
        f.gauge(
            "redis_client_source_memory_bytes",
            "Summed client memory (tot-mem) per source IP.",
            &l,
            st.memory_bytes as f64,
        );
    }
    for (name, st) in &c.by_name {
        f.gauge(
            "redis_client_connections_by_name",
            "Connections per client name (top K + other; unnamed for empty).",
            &[("target", target), ("name", name.as_str())],
            st.connections as f64,
        );
    }
    // Only with an identity layer (src/identity): empty otherwise, so no series.
    for (workload, st) in &c.by_workload {
        let l = [("target", target), ("workload", workload.as_str())];
        f.gauge(
            "redis_client_connections_by_workload",
            "Connections per workload (Deployment, host, static map name; an address no identity source names stays an address; top K + other).",
            &l,
            st.connections as f64,
        );
        f.gauge(
            "redis_client_workload_idle_connections",
            "Connections per workload idle at least the idle threshold.",
            &l,
            st.idle_connections as f64,
        );
        f.gauge(
            "redis_client_workload_memory_bytes",
            "Summed client memory (tot-mem) per workload.",
            &l,
            st.memory_bytes as f64,
        );
    }
    let dims = [
        (
            "redis_client_connections_by_user",
            "Connections per ACL user (top K + other).",
            "user",
            &c.by_user,
        ),
        (
            "redis_client_connections_by_command",
            "Connections per last command (top K + other).",
            "command",
            &c.by_command,
        ),
    ];
    for (name, help, label, values) in dims {
        for (v, n) in values {
            f.gauge(
                name,
                help,
                &[("target", target), (label, v.as_str())],
                *n as f64,
            );
        }
    }
    for ty in ClientType::ALL {
        let l = [("target", target), ("type", ty.as_str())];
        f.gauge(
            "redis_client_connections_by_type",
            "Connections per type: normal, pubsub, replica, master.",
            &l,
            c.by_type[ty] as f64,
        );
        f.gauge(
            "redis_client_idle_connections",
            "Connections idle at least the idle threshold, per type.",
            &l,
            c.idle_by_type[ty] as f64,
        );
    }
    for flag in Flag::ALL {
        f.gauge(
            "redis_client_connections_by_flag",
            "Connections in a state (blocked, multi, tracking...); not a partition.",
            &[("target", target), ("flag", flag.as_str())],
            c.by_flag[flag] as f64,
        );
    }
    for (i, kind) in ["channel", "pattern", "shard"].iter().enumerate() {
        f.gauge(
            "redis_client_subscriptions",
            "Pub/sub subscriptions held by clients, by kind.",
            &[("target", target), ("kind", kind)],
            c.subscriptions[i] as f64,
        );
    }
    f.histogram(
        "redis_client_idle_seconds",
        "Snapshot distribution of connection idle time (no rate() needed).",
        t,
        &c.idle,
    );
    f.histogram(
        "redis_client_age_seconds",
        "Snapshot distribution of connection age (no rate() needed).",
        t,
        &c.age,
    );
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::analysis::aggregate::Aggregator;
    use crate::redis::info::Info;
    use crate::targets::state::{Store, Topology};

    fn up(clients: usize, used_memory: Option<f64>) -> TargetState {
        let mut info = Info::parse(include_str!(
            "../../tests/fixtures/info_everything_redis7.0.txt"
        ));
        info.used_memory = used_memory;
        let list = crate::analysis::synthetic::client_list(clients, 3, 8);
        TargetState {
            up: true,
            info: Some(info),
            clients: Some(Arc::new(Aggregator::new(60).summarize(&list, 50))),
            last_success: Some(1.7e9),
            ..TargetState::default()
        }
    }

    /// Through the store as the daemon runs it (each block written at publish) and without a
    /// prerender (written by the scrape): the bytes every scrape wrote before blocks, in both
    /// formats, for a down target first, a cluster node, an infinite value; a state published
    /// again is rendered again.
    #[test]
    fn scrapes_assembled_from_blocks_are_what_direct_rendering_writes() {
        let node = TargetState {
            topology: Some(Arc::new(Topology {
                group: "c1".into(),
                node: "10.0.0.1:6379".into(),
                discovered_role: Role::Replica,
            })),
            ..up(5, Some(1.0))
        };
        let targets = [
            ("a-down", TargetState::default()),
            ("b", up(40, Some(2048.0))),
            ("c-node", node),
            ("d-inf", up(3, Some(f64::INFINITY))),
        ];
        for prerender in [true, false] {
            let store = Store::default();
            if prerender {
                store.set_prerender(render_block);
            }
            for (label, s) in &targets {
                store.publish(label, s.clone());
            }
            // Published again with another value: its block must be the new state's.
            store.publish("b", up(41, Some(4096.0)));
            let snapshot = store.snapshot();
            assert_eq!(
                snapshot[0].1.rendered.get().is_some(),
                prerender,
                "written at publish only with a prerender"
            );
            for format in [Format::Text, Format::OpenMetrics] {
                let direct = render_chunks_direct(&snapshot, format).concat();
                let assembled = render_chunks_as(&snapshot, format).concat();
                let text = String::from_utf8(assembled).expect("utf8");
                assert_eq!(text, String::from_utf8(direct).expect("utf8"));
                assert!(text.contains("redis_memory_used_bytes{target=\"b\"} 4096\n"));
                let inf = match format {
                    Format::Text => "redis_memory_used_bytes{target=\"d-inf\"} inf\n",
                    Format::OpenMetrics => "redis_memory_used_bytes{target=\"d-inf\"} +Inf\n",
                };
                assert!(text.contains(inf), "{format:?}");
            }
            let d = store.get("d-inf").expect("d-inf");
            let r = d.rendered.get().expect("rendered");
            assert!(r.openmetrics.is_some(), "an infinity: a block per format");
            let b = store.get("b").expect("b");
            assert!(b.rendered.get().expect("rendered").openmetrics.is_none());
        }
    }
}
