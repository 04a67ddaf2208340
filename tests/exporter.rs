//! End-to-end: real redis-server processes, real client connections, the exporter's /metrics.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{config, Exporter, Metrics, Redis, RespConn};
use redis_clients_exporter::config::Secret;

const T: &str = "main";
const WAIT: Duration = Duration::from_secs(10);

/// Opens connections in known states; returns them so they stay open.
fn populate(r: &Redis) -> Vec<RespConn> {
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(r.conn_from("127.0.0.2").named("svc-a"));
    }
    for _ in 0..2 {
        held.push(r.conn_from("127.0.0.3").named("svc-b"));
    }
    let mut unnamed = r.conn_from("127.0.0.1");
    assert_eq!(unnamed.cmd(&["PING"]).as_simple(), Some("PONG"));
    held.push(unnamed);
    let mut sub = r.conn_from("127.0.0.4").named("listener");
    assert!(matches!(
        sub.cmd(&["SUBSCRIBE", "news"]),
        common::Reply::Array(_)
    ));
    held.push(sub);
    let mut psub = r.conn_from("127.0.0.4").named("listener");
    assert!(matches!(
        psub.cmd(&["PSUBSCRIBE", "news.*"]),
        common::Reply::Array(_)
    ));
    held.push(psub);
    let mut blocked = r.conn_from("127.0.0.5").named("worker");
    blocked.send(&["BLPOP", "jobs", "0"]);
    held.push(blocked);
    held.push(RespConn::connect_unix(&r.socket_path()).named("local"));
    held
}

fn assert_partitions(m: &Metrics, target: &str) -> f64 {
    let total = m
        .get("redis_client_snapshot_connections", &[("target", target)])
        .expect("snapshot count");
    for family in [
        "redis_client_connections",
        "redis_client_connections_by_name",
        "redis_client_connections_by_user",
        "redis_client_connections_by_type",
        "redis_client_connections_by_command",
    ] {
        assert_eq!(
            m.sum(family, &[("target", target)]),
            total,
            "sum of {family} != snapshot lines\n{}",
            m.text
        );
    }
    total
}

#[test]
fn serves_who_holds_the_connections() {
    let r = Redis::start(&[]);
    let _held = populate(&r);
    let exp = Exporter::start(config(vec![r.target(T)], 50));
    // 10 of ours + the exporter's own connection, which is counted like any other.
    let m = exp.wait_for("11 connections", WAIT, |m| {
        m.get("redis_client_snapshot_connections", &[("target", T)]) == Some(11.0)
    });

    let total = assert_partitions(&m, T);
    assert_eq!(
        m.get("redis_connected_clients", &[("target", T)]),
        Some(total)
    );
    assert_eq!(m.get("redis_up", &[("target", T)]), Some(1.0));

    let by_ip = m.by("redis_client_connections", T, "source_ip");
    let expect_ip = [
        ("127.0.0.1", 2.0),
        ("127.0.0.2", 3.0),
        ("127.0.0.3", 2.0),
        ("127.0.0.4", 2.0),
        ("127.0.0.5", 1.0),
        ("unix", 1.0),
    ];
    assert_eq!(
        by_ip,
        expect_ip.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    );
    assert_eq!(
        m.get("redis_client_distinct_sources", &[("target", T)]),
        Some(6.0)
    );

    let by_name = m.by("redis_client_connections_by_name", T, "name");
    let expect_name = [
        ("listener", 2.0),
        ("local", 1.0),
        ("redis-clients-exporter", 1.0),
        ("svc-a", 3.0),
        ("svc-b", 2.0),
        ("unnamed", 1.0),
        ("worker", 1.0),
    ];
    assert_eq!(
        by_name,
        expect_name
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect()
    );

    let by_type = m.by("redis_client_connections_by_type", T, "type");
    assert_eq!(by_type.get("pubsub"), Some(&2.0));
    assert_eq!(by_type.get("normal"), Some(&9.0));
    assert_eq!(by_type.get("replica"), Some(&0.0));
    assert_eq!(
        m.get(
            "redis_client_connections_by_flag",
            &[("target", T), ("flag", "blocked")]
        ),
        Some(1.0)
    );
    assert_eq!(
        m.get(
            "redis_client_connections_by_flag",
            &[("target", T), ("flag", "unix_socket")]
        ),
        Some(1.0)
    );
    assert_eq!(
        m.get(
            "redis_client_subscriptions",
            &[("target", T), ("kind", "channel")]
        ),
        Some(1.0)
    );
    assert_eq!(
        m.get(
            "redis_client_subscriptions",
            &[("target", T), ("kind", "pattern")]
        ),
        Some(1.0)
    );
    assert_eq!(m.get("redis_blocked_clients", &[("target", T)]), Some(1.0));
    assert_eq!(
        m.get(
            "redis_client_connections_by_command",
            &[("target", T), ("command", "blpop")]
        ),
        Some(1.0)
    );
    assert_eq!(
        m.get(
            "redis_client_connections_by_user",
            &[("target", T), ("user", "default")]
        ),
        Some(11.0)
    );

    // Nobody has been idle for a minute yet: every observation sits in the lowest buckets.
    assert_eq!(
        m.get("redis_client_idle_seconds_count", &[("target", T)]),
        Some(11.0)
    );
    assert_eq!(
        m.get(
            "redis_client_idle_seconds_bucket",
            &[("target", T), ("le", "60")]
        ),
        Some(11.0)
    );
    assert_eq!(
        m.get(
            "redis_client_age_seconds_bucket",
            &[("target", T), ("le", "+Inf")]
        ),
        Some(11.0)
    );
    assert_eq!(
        m.get(
            "redis_client_idle_connections",
            &[("target", T), ("type", "normal")]
        ),
        Some(0.0)
    );
    assert!(
        m.get(
            "redis_client_source_memory_bytes",
            &[("target", T), ("source_ip", "127.0.0.2")]
        )
        .unwrap_or(0.0)
            > 0.0
    );

    // Limits and config come from the same poll.
    assert_eq!(
        m.get("redis_config_maxclients", &[("target", T)]),
        Some(10000.0)
    );
    assert_eq!(
        m.get(
            "redis_client_maxclients_source",
            &[("target", T), ("source", "config")]
        ),
        Some(1.0)
    );
    assert_eq!(
        m.get("redis_client_headroom_connections", &[("target", T)]),
        Some(10000.0 - 11.0)
    );
    assert_eq!(
        m.get("redis_client_config_timeout_seconds", &[("target", T)]),
        Some(0.0)
    );

    // Every family served is documented.
    let docs = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/metrics.md"))
        .expect("docs/metrics.md");
    let families: Vec<&str> = m
        .text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .collect();
    assert!(families.len() > 40, "{families:?}");
    for f in families {
        assert!(
            docs.contains(&format!("`{f}`")),
            "{f} is served but missing from docs/metrics.md"
        );
    }

    // Closing connections shows up at the next poll; ghosts do not stay.
    drop(_held);
    let m = exp.wait_for("only the exporter left", WAIT, |m| {
        m.get("redis_client_snapshot_connections", &[("target", T)]) == Some(1.0)
    });
    assert_eq!(m.by("redis_client_connections", T, "source_ip").len(), 1);
    assert_eq!(
        m.get(
            "redis_client_connections_by_name",
            &[("target", T), ("name", "svc-a")]
        ),
        None
    );
}

#[test]
fn top_k_folds_the_rest_into_other() {
    let r = Redis::start(&[]);
    let _held = populate(&r);
    let exp = Exporter::start(config(vec![r.target(T)], 2));
    let m = exp.wait_for("11 connections", WAIT, |m| {
        m.get("redis_client_snapshot_connections", &[("target", T)]) == Some(11.0)
    });
    assert_partitions(&m, T);
    let by_ip = m.by("redis_client_connections", T, "source_ip");
    // Top 2 by count: 127.0.0.2 (3), then the tie at 2 broken by name: 127.0.0.1.
    let expect: Vec<(String, f64)> = vec![
        ("127.0.0.1".into(), 2.0),
        ("127.0.0.2".into(), 3.0),
        ("other".into(), 6.0),
    ];
    assert_eq!(by_ip.into_iter().collect::<Vec<_>>(), expect);
    let by_name = m.by("redis_client_connections_by_name", T, "name");
    assert_eq!(by_name.len(), 3, "{by_name:?}");
    assert_eq!(by_name.get("svc-a"), Some(&3.0));
    assert_eq!(by_name.get("other"), Some(&6.0));
    // The count of distinct sources is taken before folding.
    assert_eq!(
        m.get("redis_client_distinct_sources", &[("target", T)]),
        Some(6.0)
    );
}

#[test]
fn keeps_seeing_a_full_server() {
    let r = Redis::start(&["--maxclients", "20"]);
    let exp = Exporter::start(config(vec![r.target(T)], 50));
    exp.wait_for("first poll", WAIT, |m| {
        m.get("redis_up", &[("target", T)]) == Some(1.0)
    });

    // Fill the server: the exporter holds 1, so 19 more fit; the rest are refused.
    let mut held = Vec::new();
    let mut refused = 0;
    for _ in 0..25 {
        let mut c = r.conn();
        match c.cmd(&["PING"]) {
            common::Reply::Simple(_) => held.push(c),
            common::Reply::Error(e) => {
                assert!(e.contains("max number of clients"), "{e}");
                refused += 1;
            }
            other => panic!("unexpected reply {other:?}"),
        }
    }
    assert_eq!(held.len(), 19);
    assert_eq!(refused, 6);

    let m = exp.wait_for("a full server", WAIT, |m| {
        m.get("redis_connected_clients", &[("target", T)]) == Some(20.0)
            && m.get("redis_rejected_connections_total", &[("target", T)]) == Some(6.0)
    });
    assert_eq!(
        m.get("redis_client_headroom_connections", &[("target", T)]),
        Some(0.0)
    );
    let seen = m
        .get(
            "redis_clients_exporter_last_success_timestamp_seconds",
            &[("target", T)],
        )
        .expect("timestamp");

    // While full, more are refused and the exporter keeps reporting fresh values.
    for _ in 0..3 {
        let mut c = r.conn();
        assert!(c.cmd(&["PING"]).is_error());
    }
    let m = exp.wait_for("rejections rising", WAIT, |m| {
        m.get("redis_rejected_connections_total", &[("target", T)]) == Some(9.0)
    });
    assert_eq!(m.get("redis_up", &[("target", T)]), Some(1.0));
    assert!(
        m.get(
            "redis_clients_exporter_last_success_timestamp_seconds",
            &[("target", T)]
        )
        .expect("timestamp")
            > seen
    );
    assert_eq!(
        m.get("redis_client_snapshot_connections", &[("target", T)]),
        Some(20.0)
    );
}

#[test]
fn a_killed_server_goes_down_and_comes_back_while_others_keep_updating() {
    let mut a = Redis::start(&[]);
    let b = Redis::start(&[]);
    let exp = Exporter::start(config(vec![a.target("a"), b.target("b")], 50));
    exp.wait_for("both up", WAIT, |m| {
        m.get("redis_up", &[("target", "a")]) == Some(1.0)
            && m.get("redis_up", &[("target", "b")]) == Some(1.0)
    });

    a.kill();
    let m = exp.wait_for("a down", WAIT, |m| {
        m.get("redis_up", &[("target", "a")]) == Some(0.0)
    });
    // A down target shows only that it is down, not stale values.
    assert_eq!(m.get("redis_connected_clients", &[("target", "a")]), None);
    assert!(
        m.sum(
            "redis_clients_exporter_poll_errors_total",
            &[("target", "a")]
        ) >= 1.0
    );
    let b_polls = m
        .get("redis_clients_exporter_polls_total", &[("target", "b")])
        .expect("b polls");
    let b_seen = m
        .get(
            "redis_clients_exporter_last_success_timestamp_seconds",
            &[("target", "b")],
        )
        .expect("b timestamp");
    exp.wait_for("b still polled while a is down", WAIT, |m| {
        m.get("redis_clients_exporter_polls_total", &[("target", "b")]) > Some(b_polls + 2.0)
            && m.get(
                "redis_clients_exporter_last_success_timestamp_seconds",
                &[("target", "b")],
            ) > Some(b_seen)
            && m.get("redis_up", &[("target", "b")]) == Some(1.0)
    });

    a.restart();
    let m = exp.wait_for("a back up", WAIT, |m| {
        m.get("redis_up", &[("target", "a")]) == Some(1.0)
    });
    assert_eq!(m.get("redis_up", &[("target", "b")]), Some(1.0));
    // The exporter reconnected with exactly one connection.
    let m = exp.wait_for("a's snapshot after restart", WAIT, |m| {
        m.get("redis_client_snapshot_connections", &[("target", "a")])
            .is_some()
    });
    assert_eq!(
        m.get(
            "redis_client_connections_by_name",
            &[("target", "a"), ("name", "redis-clients-exporter")]
        ),
        Some(1.0)
    );
}

#[test]
fn forbidden_config_falls_back_to_info_and_wrong_password_is_a_clear_down() {
    let r = Redis::start(&[]);
    let mut admin = r.conn();
    let setuser = [
        "ACL",
        "SETUSER",
        "watcher",
        "on",
        ">w4tch-pw",
        "+info",
        "+client|list",
        "+client|setname",
        "+client|id",
        "+ping",
    ];
    assert_eq!(admin.cmd(&setuser).as_simple(), Some("OK"));

    let mut ok = r.target("acl");
    ok.username = Some("watcher".into());
    ok.password = Secret::Value("w4tch-pw".into());
    let mut bad = r.target("badpw");
    bad.username = Some("watcher".into());
    bad.password = Secret::Value("not-the-password".into());
    let exp = Exporter::start(config(vec![ok, bad], 50));

    let m = exp.wait_for("acl target up", WAIT, |m| {
        m.get("redis_up", &[("target", "acl")]) == Some(1.0)
            && m.get("redis_up", &[("target", "badpw")]) == Some(0.0)
    });
    assert_eq!(
        m.get("redis_client_config_available", &[("target", "acl")]),
        Some(0.0)
    );
    assert_eq!(
        m.get(
            "redis_client_maxclients_source",
            &[("target", "acl"), ("source", "info")]
        ),
        Some(1.0)
    );
    assert_eq!(
        m.get("redis_config_maxclients", &[("target", "acl")]),
        Some(10000.0)
    );
    assert_eq!(
        m.get("redis_client_config_timeout_seconds", &[("target", "acl")]),
        None
    );
    assert!(
        m.get(
            "redis_clients_exporter_poll_errors_total",
            &[("target", "acl"), ("kind", "config_unavailable")]
        ) >= Some(1.0)
    );
    assert!(m
        .get("redis_client_snapshot_connections", &[("target", "acl")])
        .is_some());
    let m = exp.wait_for("auth error counted", WAIT, |m| {
        m.get(
            "redis_clients_exporter_poll_errors_total",
            &[("target", "badpw"), ("kind", "auth")],
        ) >= Some(1.0)
    });
    assert!(!m.text.contains("not-the-password") && !m.text.contains("w4tch-pw"));
}

#[test]
fn endpoints_for_health_readiness_and_humans() {
    let r = Redis::start(&[]);
    let mut t = r.target(T);
    t.poll_interval = Duration::from_secs(3600);
    let dead = {
        let mut d = r.target("dead");
        d.endpoint = redis_clients_exporter::config::Endpoint::Tcp {
            host: "127.0.0.1".into(),
            port: 1,
        };
        d
    };
    // Only a dead target: alive but not ready.
    let exp = Exporter::start(config(vec![dead.clone()], 50));
    assert_eq!(exp.get("/healthz").0, 200);
    exp.wait_for("dead target down", WAIT, |m| {
        m.get("redis_up", &[("target", "dead")]) == Some(0.0)
    });
    assert_eq!(exp.get("/readyz").0, 503);
    drop(exp);

    let exp = Exporter::start(config(vec![t, dead], 50));
    exp.wait_for("first poll", WAIT, |m| {
        m.get("redis_up", &[("target", T)]) == Some(1.0)
    });
    assert_eq!(exp.get("/readyz").0, 200);
    let (status, page) = exp.get("/");
    assert_eq!(status, 200);
    assert!(
        page.contains("href=\"metrics\"") && page.contains("main"),
        "{page}"
    );
}

#[test]
fn unix_socket_target() {
    let r = Redis::start(&[]);
    let mut t = r.target("sock");
    t.endpoint = redis_clients_exporter::config::Endpoint::Unix(r.socket_path());
    let exp = Exporter::start(config(vec![t], 50));
    let m = exp.wait_for("unix target up", WAIT, |m| {
        m.get("redis_up", &[("target", "sock")]) == Some(1.0)
    });
    assert_eq!(
        m.get(
            "redis_client_connections",
            &[("target", "sock"), ("source_ip", "unix")]
        ),
        Some(1.0)
    );
}

#[test]
fn client_list_backs_off_on_a_crowded_server_while_info_keeps_its_pace() {
    let r = Redis::start(&[]);
    let _held = populate(&r);
    let mut t = r.target(T);
    // 11 clients against a threshold of 1: CLIENT LIST every 0.2 s × 11 = 2.2 s, INFO every 0.2 s.
    t.client_list = redis_clients_exporter::config::ClientListSchedule {
        backoff_clients: 1,
        full_backoff_clients: 1,
        max_interval: Duration::from_secs(30),
        resync: None,
    };
    let exp = Exporter::start(config(vec![t], 50));
    let first = exp.wait_for("first CLIENT LIST", WAIT, |m| {
        m.get("redis_client_snapshot_connections", &[("target", T)]) == Some(11.0)
    });
    let polls = first
        .get("redis_clients_exporter_polls_total", &[("target", T)])
        .expect("polls");
    let lines = first
        .get(
            "redis_clients_exporter_client_list_lines_total",
            &[("target", T)],
        )
        .expect("lines");
    let later = exp.wait_for("ten more polls", WAIT, |m| {
        m.get("redis_clients_exporter_polls_total", &[("target", T)]) >= Some(polls + 10.0)
    });
    let snapshots = (later
        .get(
            "redis_clients_exporter_client_list_lines_total",
            &[("target", T)],
        )
        .expect("lines")
        - lines)
        / 11.0;
    // Without the back-off this would be ten snapshots.
    assert!(
        snapshots <= 2.0,
        "{snapshots} CLIENT LIST snapshots during 10 polls"
    );
    // The aggregates stay served between CLIENT LISTs, with their own timestamp. Waited for:
    // `later` may come right after a poll that ran CLIENT LIST, where both timestamps are
    // the same instant.
    exp.wait_for("a poll without CLIENT LIST", WAIT, |m| {
        let ts = |name| m.get(name, &[("target", T)]);
        m.get("redis_client_snapshot_connections", &[("target", T)]) == Some(11.0)
            && ts("redis_clients_exporter_last_client_list_timestamp_seconds").is_some()
            && ts("redis_clients_exporter_last_client_list_timestamp_seconds")
                < ts("redis_clients_exporter_last_success_timestamp_seconds")
    });
}

#[test]
fn a_reply_over_a_mebibyte_is_aggregated_off_the_runtime_and_counted_exactly() {
    // 600 connections with 2,000-byte names make a CLIENT LIST reply of ~1.4 MB: past the size at
    // which the poller hands the aggregation to `block_in_place`, with few file descriptors.
    let r = Redis::start(&[]);
    let names: Vec<String> = ["alpha", "beta", "gamma"]
        .iter()
        .map(|n| format!("{n}-{}", "x".repeat(2000)))
        .collect();
    let held: Vec<RespConn> = (0..600)
        .map(|i| r.conn_from("127.0.0.5").named(&names[i % 3]))
        .collect();
    let list = r.conn().cmd(&["CLIENT", "LIST"]);
    assert!(
        list.as_bulk().map_or(0, str::len) > 1 << 20,
        "reply too small"
    );
    let exp = Exporter::start(config(vec![r.target(T)], 10));
    let m = exp.wait_for("the big snapshot", WAIT, |m| {
        m.get("redis_client_snapshot_connections", &[("target", T)]) >= Some(601.0)
    });
    assert_eq!(m.get("redis_up", &[("target", T)]), Some(1.0));
    let by_name = m.by("redis_client_connections_by_name", T, "name");
    for n in &names {
        // Names this long are labelled by their bounded form (docs/metrics.md).
        let label = redis_clients_exporter::redis::label::bound(n);
        assert_eq!(by_name.get(&*label), Some(&200.0), "{by_name:?}");
    }
    assert_eq!(
        m.get(
            "redis_client_connections",
            &[("target", T), ("source_ip", "127.0.0.5")]
        ),
        Some(600.0)
    );
    drop(held);
}
