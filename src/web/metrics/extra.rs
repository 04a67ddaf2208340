//! The families of issue 19: the INFO client fields beyond the maxclients arithmetic, CONFIG
//! `maxmemory-clients`, and the CLIENT LIST details (client libraries, listening ports,
//! buffers, totals). docs/metrics.md lists each with the server versions that report it.

use super::Families;
use crate::analysis::aggregate::details::{split_library, ClientDetails};
use crate::redis::connection::ConfigValues;
use crate::redis::info::extra::{ClientMemoryLimit, InfoExtra};

pub(super) fn info(f: &mut Families, t: &[(&str, &str)], target: &str, x: &InfoExtra) {
    let gauges = [
        ("redis_pubsub_clients", "Clients in pub/sub mode (INFO pubsub_clients; Redis 7.4+, Valkey 8.1+).", x.pubsub_clients),
        ("redis_watching_clients", "Clients with keys WATCHed (INFO watching_clients; Redis 7.4+, Valkey 8.1+).", x.watching_clients),
        ("redis_watched_keys", "Keys WATCHed by clients (INFO total_watched_keys; Redis 7.4+, Valkey 8.1+).", x.total_watched_keys),
        ("redis_clients_in_timeout_table", "Blocked clients waiting with a timeout (INFO clients_in_timeout_table).", x.clients_in_timeout_table),
        ("redis_blocking_keys", "Keys blocked clients wait on (INFO total_blocking_keys; Redis 7.2+, Valkey).", x.total_blocking_keys),
        ("redis_mem_clients_normal", "Memory of normal clients: buffers and client structures (INFO mem_clients_normal).", x.mem_clients_normal),
        ("redis_mem_clients_slaves", "Memory of replica links (INFO mem_clients_slaves).", x.mem_clients_slaves),
        ("redis_client_recent_max_input_buffer_bytes", "Largest client query buffer of recent seconds (INFO client_recent_max_input_buffer).", x.client_recent_max_input_buffer),
        ("redis_client_recent_max_output_buffer_bytes", "Largest client output buffer of recent seconds (INFO client_recent_max_output_buffer).", x.client_recent_max_output_buffer),
    ];
    for (name, help, v) in gauges {
        f.gauge_opt(name, help, t, v);
    }
    let counters = [
        ("redis_evicted_clients_total", "Clients closed by client eviction, maxmemory-clients (INFO evicted_clients; Redis 7.0+, Valkey).", x.evicted_clients),
        ("redis_client_query_buffer_limit_disconnections_total", "Clients closed for exceeding the query buffer limit (INFO; Redis 7.4+, Valkey 8.1+).", x.client_query_buffer_limit_disconnections),
        ("redis_client_output_buffer_limit_disconnections_total", "Clients closed for exceeding client-output-buffer-limit (INFO; Redis 7.4+, Valkey 8.1+).", x.client_output_buffer_limit_disconnections),
    ];
    for (name, help, v) in counters {
        if let Some(v) = v {
            f.counter(name, help, t, v);
        }
    }
    if let Some(reason) = &x.paused_reason {
        f.gauge(
            "redis_client_paused",
            "1 while clients are paused (CLIENT PAUSE, shutdown, failover), with Valkey's reason; 0 with reason none (INFO paused_reason; Valkey 8.1+).",
            &[("target", target), ("reason", reason.as_str())],
            if reason == "none" { 0.0 } else { 1.0 },
        );
    }
}

pub(super) fn config(f: &mut Families, t: &[(&str, &str)], c: &ConfigValues) {
    match c.maxmemory_clients {
        Some(ClientMemoryLimit::Bytes(b)) => f.gauge(
            "redis_client_config_maxmemory_clients_bytes",
            "maxmemory-clients in bytes (0 = no client eviction; Redis 7.0+, Valkey).",
            t,
            b,
        ),
        Some(ClientMemoryLimit::Percent(p)) => f.gauge(
            "redis_client_config_maxmemory_clients_ratio",
            "maxmemory-clients given as a share of maxmemory (10% is 0.1; Redis 7.0+, Valkey).",
            t,
            p / 100.0,
        ),
        None => {}
    }
}

pub(super) fn client_list(f: &mut Families, t: &[(&str, &str)], target: &str, d: &ClientDetails) {
    // On every server: before 7.2 every connection is `unset` (it could declare nothing), so
    // the family and the dashboard's library panels never come up empty.
    {
        for (key, s) in &d.by_library {
            let (library, version) = split_library(key);
            let l = [
                ("target", target),
                ("library", library),
                ("version", version),
            ];
            f.gauge(
                "redis_client_connections_by_library",
                "Connections per client library and version (CLIENT SETINFO lib-name/lib-ver; unset when none; top K + other).",
                &l,
                s.connections as f64,
            );
            f.gauge(
                "redis_client_library_idle_connections",
                "Connections per client library and version idle at least the idle threshold.",
                &l,
                s.idle_connections as f64,
            );
            f.gauge(
                "redis_client_library_memory_bytes",
                "Summed client memory (tot-mem) per client library and version.",
                &l,
                s.memory_bytes as f64,
            );
        }
    }
    for (port, n) in &d.by_local_port {
        f.gauge(
            "redis_client_connections_by_local_port",
            "Connections per listening port (laddr; unix for unix sockets; top K + other).",
            &[("target", target), ("port", port.as_str())],
            *n as f64,
        );
    }
    let gauges = [
        ("redis_client_query_buffer_bytes", "Summed query buffer length of all clients (qbuf).", d.query_buffer_bytes),
        ("redis_client_argv_memory_bytes", "Summed memory of the arguments of the commands being run (argv-mem).", d.argv_memory_bytes),
        ("redis_client_multi_memory_bytes", "Summed memory of the commands queued in MULTI (multi-mem; Redis 7.0+, Valkey).", d.multi_memory_bytes),
        ("redis_client_output_list_blocks", "Summed reply list length of all clients (oll).", d.output_list_blocks),
        ("redis_client_output_fixed_buffer_bytes", "Summed bytes in the clients' fixed reply buffers (obl).", d.output_static_bytes),
        ("redis_client_never_ran_command_connections", "Connections that have not run a command yet (tot-cmds=0; Redis 8 (8.2 in the matrix, not 7.4), Valkey 8.1+).", d.never_ran_command),
        ("redis_client_net_input_bytes", "Bytes read from the connections open now, over their lives (tot-net-in; Redis 8 (8.2 in the matrix, not 7.4), Valkey 8.1+).", d.net_input_bytes),
        ("redis_client_net_output_bytes", "Bytes written to the connections open now, over their lives (tot-net-out; Redis 8 (8.2 in the matrix, not 7.4), Valkey 8.1+).", d.net_output_bytes),
    ];
    for (name, help, v) in gauges {
        f.gauge_opt(name, help, t, v.map(|v| v as f64));
    }
    f.gauge(
        "redis_client_output_pending_connections",
        "Connections with replies not yet sent (omem, oll or obl above 0).",
        t,
        d.output_pending_connections as f64,
    );
    f.gauge(
        "redis_client_output_stalled_connections",
        "Connections whose replies wait for a socket that does not drain (events=rw with output pending): readers slower than the server, or not reading.",
        t,
        d.output_stalled_connections as f64,
    );
}
