//! The parsers against real captures from redis-server 7.0.15 (copied from shared/fixtures).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use redis_clients_exporter::analysis::aggregate::Aggregator;
use redis_clients_exporter::redis::client_list::{lines, ClientType, Flag};
use redis_clients_exporter::redis::info::{looks_fd_clamped, Info};

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn every_line_of_a_real_primary_parses() {
    let text = fixture("client_list_redis7.0.txt");
    let parsed: Vec<_> = lines(&text).collect();
    assert_eq!(parsed.len(), 19);
    assert!(parsed.iter().all(Result::is_ok), "{parsed:?}");
}

#[test]
fn aggregates_of_a_real_primary() {
    let s = Aggregator::new(60).summarize(&fixture("client_list_redis7.0.txt"), 50);
    assert_eq!(s.connections, 19);
    assert_eq!(s.parse_errors, 0);
    let src: Vec<_> = s
        .by_source
        .iter()
        .map(|(k, v)| (k.as_str(), v.connections))
        .collect();
    assert_eq!(src, vec![("127.0.0.1", 17), ("::1", 1), ("unix", 1)]);
    assert_eq!(s.by_type[ClientType::Replica], 1);
    assert_eq!(s.by_type[ClientType::Pubsub], 2);
    assert_eq!(s.by_type[ClientType::Normal], 16);
    assert_eq!(s.subscriptions, [1, 1, 0]);
    let unnamed = s
        .by_name
        .iter()
        .find(|(k, _)| k == "unnamed")
        .map(|(_, v)| v.connections);
    assert_eq!(unnamed, Some(10));
    assert_eq!(
        s.by_name
            .iter()
            .filter(|(k, _)| k.starts_with("order-service:pool-"))
            .count(),
        5
    );
    assert_eq!(
        s.by_source.iter().map(|(_, v)| v.memory_bytes).sum::<u64>(),
        356_928
    );
    let cmds: Vec<_> = s.by_command.iter().map(|(k, _)| k.as_str()).collect();
    assert!(
        cmds.contains(&"client|setname") && cmds.contains(&"NULL") && cmds.contains(&"psync"),
        "{cmds:?}"
    );
    assert_eq!(s.idle.count, 19);
    assert_eq!(s.idle.sum, 17 * 2 + 4);
    // flags b, x, t, U once each
    for flag in [Flag::Blocked, Flag::Multi, Flag::Tracking, Flag::UnixSocket] {
        assert_eq!(s.by_flag[flag], 1, "{flag:?}");
    }
}

#[test]
fn replica_view_has_its_master_link() {
    let s = Aggregator::new(60).summarize(&fixture("client_list_redis7.0_replica.txt"), 50);
    assert_eq!(s.by_type[ClientType::Master], 1);
    assert!(
        s.by_user.iter().any(|(k, v)| k == "(superuser)" && *v == 1),
        "{:?}",
        s.by_user
    );
}

#[test]
fn info_of_a_real_primary() {
    let i = Info::parse(&fixture("info_everything_redis7.0.txt"));
    assert_eq!(i.redis_version.as_deref(), Some("7.0.15"));
    assert_eq!(i.role.as_deref(), Some("master"));
    assert_eq!(i.connected_clients, Some(18.0));
    assert_eq!(i.connected_slaves, Some(1.0));
    assert_eq!(i.maxclients, Some(64.0));
    assert_eq!(i.blocked_clients, Some(1.0));
    assert_eq!(i.tracking_clients, Some(1.0));
    // The replica link counts against maxclients: 18 clients + 1 replica = the 19 CLIENT LIST lines.
    assert_eq!(i.limit_connections(), Some(19.0));
    let stats = Info::parse(&fixture("info_stats_after_rejections_redis7.0.txt"));
    assert_eq!(stats.rejected_connections, Some(35.0));
    assert_eq!(stats.total_connections_received, Some(74.0));
    assert_eq!(stats.connected_clients, None);
}

#[test]
fn the_clamped_value_in_the_real_log_is_recognised() {
    let log = fixture("log_maxclients_clamped_redis7.0.txt");
    let reduced: f64 = log
        .split("reduced to ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("the log names the reduced value");
    assert_eq!(reduced, 992.0);
    assert!(looks_fd_clamped(reduced));
}
