//! Topology end to end: a real 6-node Redis Cluster, a real Sentinel with a primary and a
//! replica, `/scrape?target=` with auth profiles and the dynamic-target cap, and the watched
//! targets file. (`/scrape`'s defences against a hostile caller: tests/scrape_security.rs.) The exporter is configured through a real configuration file.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{Cluster, Exporter, Metrics, Redis, Sentinel};
use redis_clients_exporter::config::{load_with_env, Config, Overrides};

const WAIT: Duration = Duration::from_secs(40);

fn load(body: &str) -> (Config, tempfile::NamedTempFile) {
    let f = tempfile::Builder::new()
        .suffix(".toml")
        .tempfile()
        .expect("tempfile");
    std::fs::write(f.path(), body).expect("write config");
    let cfg = load_with_env(Some(f.path()), &Overrides::default(), Vec::new())
        .unwrap_or_else(|e| panic!("config: {e}\n{body}"));
    (cfg, f)
}

/// `role` label of the node on `port` in cluster/set `group`, if exactly one `redis_up` series.
fn role_of(m: &Metrics, group: &str, port: u16) -> Option<String> {
    let node = format!("127.0.0.1:{port}");
    match m
        .all("redis_up", &[("cluster", group), ("node", &node)])
        .as_slice()
    {
        [(labels, v)] if *v == 1.0 => labels.get("role").cloned(),
        _ => None,
    }
}

fn word(role: &str) -> &'static str {
    if role == "master" {
        "primary"
    } else {
        "replica"
    }
}

#[test]
fn cluster_nodes_roles_failover_and_removal() {
    let cluster = Cluster::start(3, 1);
    let seed = cluster.nodes[0].port;
    let (cfg, _f) = load(&format!(
        "listen = \"127.0.0.1:0\"\npoll_interval_seconds = 0.2\ndiscovery_interval_seconds = 1\n\
         [[targets]]\naddress = \"redis://127.0.0.1:{seed}\"\ncluster = true\nalias = \"orders\"\n"
    ));
    let exp = Exporter::start(cfg);

    let view = cluster.view(0);
    assert_eq!(view.len(), 6);
    let m = exp.wait_for("all six nodes up with their own roles", WAIT, |m| {
        cluster
            .roles()
            .iter()
            .all(|(port, role)| role_of(m, "orders", *port).as_deref() == Some(word(role)))
    });
    assert_eq!(m.all("redis_up", &[("cluster", "orders")]).len(), 6);
    for (_, port, _) in &view {
        let target = format!("orders/127.0.0.1:{port}");
        // Every series of a node carries the topology labels, not only redis_up.
        let (labels, _) = *m
            .all("redis_connected_clients", &[("target", &target)])
            .first()
            .expect("a node series");
        assert_eq!(labels.get("cluster").map(String::as_str), Some("orders"));
        assert!(m
            .get("redis_client_snapshot_connections", &[("target", &target)])
            .is_some());
    }

    // Fail a primary over: CLUSTER FAILOVER on one of its replicas. The seed's replica when
    // the seed is a primary, so that the node removed below is the seed itself: the exporter
    // must then not follow the removed node's view of a one-node "cluster".
    let primary_of = |port: u16| -> Option<u16> {
        let info = cluster
            .nodes
            .iter()
            .find(|r| r.port == port)?
            .conn()
            .cmd(&["INFO", "replication"]);
        info.as_bulk()?
            .lines()
            .find_map(|l| l.strip_prefix("master_port:"))?
            .trim()
            .parse()
            .ok()
    };
    let replicas: Vec<u16> = view
        .iter()
        .filter(|(_, _, r)| r == "slave")
        .map(|(_, p, _)| *p)
        .collect();
    let replica_port = replicas
        .iter()
        .copied()
        .find(|p| primary_of(*p) == Some(seed))
        .or(replicas.first().copied())
        .expect("a replica");
    let old_primary_port = primary_of(replica_port).expect("master_port");
    let replica = cluster
        .nodes
        .iter()
        .find(|r| r.port == replica_port)
        .expect("replica node");
    assert_eq!(
        replica.conn().cmd(&["CLUSTER", "FAILOVER"]).as_simple(),
        Some("OK")
    );
    exp.wait_for("the roles to flip", WAIT, |m| {
        role_of(m, "orders", replica_port).as_deref() == Some("primary")
            && role_of(m, "orders", old_primary_port).as_deref() == Some("replica")
    });

    // Remove the old primary (now a replica) from the cluster: its series must go.
    let gone = cluster
        .view(0)
        .into_iter()
        .find(|(_, p, _)| *p == old_primary_port)
        .expect("old primary in view");
    let out = std::process::Command::new(common::redis_cli_bin())
        .args([
            "--cluster",
            "del-node",
            &format!("127.0.0.1:{seed}"),
            &gone.0,
        ])
        .output()
        .expect("redis-cli --cluster del-node");
    assert!(
        out.status.success(),
        "del-node: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let node = format!("127.0.0.1:{old_primary_port}");
    let m = exp.wait_for("the removed node's series to disappear", WAIT, |m| {
        !m.text.contains(&node) && m.all("redis_up", &[("cluster", "orders")]).len() == 5
    });
    assert_eq!(m.sum("redis_up", &[("cluster", "orders")]), 5.0);
}

#[test]
fn sentinel_failover_is_followed() {
    if !common::require_tool("redis-sentinel", "redis-sentinel") {
        return;
    }
    let primary = Redis::start(&[]);
    let p = primary.port.to_string();
    let replica = Redis::start(&["--replicaof", "127.0.0.1", &p]);
    let deadline = std::time::Instant::now() + WAIT;
    while !replica
        .conn()
        .cmd(&["INFO", "replication"])
        .as_bulk()
        .is_some_and(|t| t.contains("master_link_status:up"))
    {
        assert!(std::time::Instant::now() < deadline, "replica never synced");
        std::thread::sleep(Duration::from_millis(100));
    }
    let sentinel = Sentinel::start("mymaster", primary.port);
    let (cfg, _f) = load(&format!(
        "listen = \"127.0.0.1:0\"\npoll_interval_seconds = 0.2\ndiscovery_interval_seconds = 1\n\
         [[targets]]\nsentinel_master = \"mymaster\"\nsentinels = [\"redis://127.0.0.1:{}\"]\n",
        sentinel.port
    ));
    let exp = Exporter::start(cfg);
    exp.wait_for("primary and replica with their roles", WAIT, |m| {
        role_of(m, "mymaster", primary.port).as_deref() == Some("primary")
            && role_of(m, "mymaster", replica.port).as_deref() == Some("replica")
    });

    // The sentinel may not accept a failover before it has seen the replica as healthy.
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let r = sentinel.conn().cmd(&["SENTINEL", "FAILOVER", "mymaster"]);
        if r.as_simple() == Some("OK") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "SENTINEL FAILOVER kept failing: {r:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let m = exp.wait_for("the exporter to follow the new primary", WAIT, |m| {
        role_of(m, "mymaster", replica.port).as_deref() == Some("primary")
            && role_of(m, "mymaster", primary.port).as_deref() == Some("replica")
    });
    assert_eq!(m.all("redis_up", &[("cluster", "mymaster")]).len(), 2);
}

#[test]
fn scrape_with_auth_profile_and_dynamic_target_cap() {
    let secured = Redis::start(&["--requirepass", "s3cret-pw"]);
    let other = Redis::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "s3cret-pw\n").expect("write pw");
    let (cfg, _f) = load(&format!(
        "listen = \"127.0.0.1:0\"\npoll_interval_seconds = 0.2\n\
         scrape_allow = [\"127.0.0.1:1-65535\"]\n\
         scrape_max_targets = 1\nscrape_idle_timeout_seconds = 2\n\
         [auth_profiles.ops]\npassword_file = \"{}\"\ntargets = [\"127.0.0.1:1-65535\"]\n\
         [[targets]]\naddress = \"redis://127.0.0.1:{}\"\nalias = \"static\"\n",
        pw.display(),
        other.port
    ));
    let exp = Exporter::start(cfg);
    let t = format!("redis://127.0.0.1:{}", secured.port);
    let label = format!("127.0.0.1:{}", secured.port);

    // Without the profile the server refuses us: the first scrape already says so.
    let (status, body) = exp.get(&format!("/scrape?target={t}"));
    assert_eq!(status, 200, "{body}");
    let m = Metrics::parse(&body);
    assert_eq!(
        m.get("redis_up", &[("target", &label)]),
        Some(0.0),
        "{body}"
    );
    assert!(
        m.get(
            "redis_clients_exporter_poll_errors_total",
            &[("target", &label), ("kind", "auth")]
        ) >= Some(1.0),
        "{body}"
    );

    // With it, the same target polls; the first scrape of the new credentials waits for a poll.
    let (status, body) = exp.get(&format!("/scrape?target={t}&auth=ops"));
    assert_eq!(status, 200, "{body}");
    let m = Metrics::parse(&body);
    assert_eq!(
        m.get("redis_up", &[("target", &label)]),
        Some(1.0),
        "{body}"
    );
    assert!(m.get("redis_client_snapshot_connections", &[("target", &label)]) >= Some(1.0));
    // Only that target is rendered, and /metrics does not show it.
    assert!(!body.contains("static"), "{body}");
    assert!(!exp.get("/metrics").1.contains(&label));
    assert!(!body.contains("s3cret-pw"));
    // Its diagnosis is served like a configured target's (the diagnosis alert links there).
    let (status, body) = exp.get(&format!("/diagnose?target={label}"));
    assert_eq!(status, 200, "{body}");
    let report: serde_json::Value = serde_json::from_str(&body).expect("diagnosis JSON");
    assert_eq!(report["target"], label.as_str(), "{body}");
    // The static target's first poll may still be under way on a loaded machine (503 until
    // then): wait for it, bounded.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut code = exp.get("/diagnose?target=static").0;
    while code == 503 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
        code = exp.get("/diagnose?target=static").0;
    }
    assert_eq!(code, 200);

    // Credentials never come from the URL; unknown profiles, targets outside scrape_allow and
    // bad schemes are refused.
    for (q, want, code) in [
        (
            format!("redis://u:s3cret-pw@127.0.0.1:{}", other.port),
            "auth profile",
            400,
        ),
        (
            format!("redis://127.0.0.1:{}&auth=nope", other.port),
            "nope",
            403,
        ),
        ("redis://10.0.0.1:6379".to_string(), "scrape_allow", 403),
        ("unix:///tmp/x.sock".to_string(), "redis://", 400),
        ("http://example".to_string(), "scheme", 400),
    ] {
        let (status, body) = exp.get(&format!("/scrape?target={q}"));
        assert_eq!(status, code, "{q}: {body}");
        assert!(body.contains(want), "{q}: {body}");
        assert!(!body.contains("s3cret-pw"), "{body}");
    }
    assert_eq!(exp.get("/scrape").0, 400);

    // The cap: one dynamic target runs, a second is refused while the first is in use.
    let t2 = format!("redis://127.0.0.1:{}", other.port);
    let (status, body) = exp.get(&format!("/scrape?target={t2}"));
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("scrape_max_targets"), "{body}");
    // Once the first has gone unscraped past the idle timeout it is stopped, and room is made.
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let (status, body) = exp.get(&format!("/scrape?target={t2}"));
        if status == 200 {
            assert!(body.contains("redis_up"), "{body}");
            break;
        }
        assert_eq!(status, 503, "{body}");
        assert!(
            std::time::Instant::now() < deadline,
            "the idle target never expired"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // The expired target's connection is closed: the secured server sees no exporter left.
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let mut c = secured.conn();
        assert_eq!(c.cmd(&["AUTH", "s3cret-pw"]).as_simple(), Some("OK"));
        let list = c.cmd(&["CLIENT", "LIST"]);
        if !list
            .as_bulk()
            .unwrap_or("")
            .contains("redis-clients-exporter")
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "connection kept: {list:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn targets_file_is_watched() {
    let a = Redis::start(&[]);
    let b = Redis::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("targets.yaml");
    std::fs::write(
        &file,
        format!(
            "targets:\n  - address: redis://127.0.0.1:{}\n    alias: fleet-a\n",
            a.port
        ),
    )
    .expect("write targets");
    let (cfg, _f) = load(&format!(
        "listen = \"127.0.0.1:0\"\npoll_interval_seconds = 0.2\n\
         targets_file = \"{}\"\ntargets_file_interval_seconds = 0.2\n\
         [[targets]]\naddress = \"redis://127.0.0.1:{}\"\nalias = \"static\"\n",
        file.display(),
        b.port
    ));
    let exp = Exporter::start(cfg);
    exp.wait_for("the file's target", WAIT, |m| {
        m.get("redis_up", &[("target", "fleet-a")]) == Some(1.0)
            && m.get("redis_up", &[("target", "static")]) == Some(1.0)
    });
    // A broken file leaves the running set alone...
    std::fs::write(&file, "targets:\n  - address: ftp://x\n").expect("write");
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(
        exp.scrape().get("redis_up", &[("target", "fleet-a")]),
        Some(1.0)
    );
    // ...and a new list replaces the old one without a restart.
    std::fs::write(
        &file,
        format!(
            "{{\"targets\": [{{\"address\": \"redis://127.0.0.1:{}\", \"alias\": \"fleet-b\"}}]}}",
            b.port
        ),
    )
    .expect("write");
    exp.wait_for("the new list", WAIT, |m| {
        m.get("redis_up", &[("target", "fleet-b")]) == Some(1.0)
            && m.all("redis_up", &[("target", "fleet-a")]).is_empty()
            && m.get("redis_up", &[("target", "static")]) == Some(1.0)
    });
}
