//! The running server's own CLIENT LIST and INFO, live, on whatever server the tests run
//! (`REDIS_SERVER_BIN`, see scripts/version-matrix.sh; Debian's redis-server by default):
//! connections of every kind the server has, each read back field by field. Under the matrix,
//! `REDIS_EXPECT_SERVER` ("valkey 9.1.2") also makes sure the intended binary is the one that
//! ran, so that a mistake in the matrix cannot pass by testing the default server six times.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{Redis, Reply, RespConn};
use redis_clients_exporter::analysis::aggregate::Aggregator;
use redis_clients_exporter::redis::client_list::{lines, ClientType, Flag};
use redis_clients_exporter::redis::info::Info;

fn info(c: &mut RespConn, section: &str) -> Info {
    let reply = c.cmd(&["INFO", section]);
    Info::parse(reply.as_bulk().expect("INFO is a bulk string"))
}

/// ("redis" or "valkey", "7.0.15") from the binary's `--version` ("Valkey server v=9.1.2 ...").
fn binary_identity() -> (String, String) {
    let bin = common::redis_server_bin();
    let out = std::process::Command::new(&bin)
        .arg("--version")
        .output()
        .expect("--version");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let product = text
        .split_whitespace()
        .next()
        .expect("product")
        .to_lowercase();
    let version = text
        .split_whitespace()
        .find_map(|w| w.strip_prefix("v="))
        .expect("v=")
        .to_string();
    (product, version)
}

#[test]
fn the_server_that_runs_is_the_one_asked_for() {
    let r = Redis::start(&[]);
    let i = info(&mut r.conn(), "server");
    let (product, version) = i.server().expect("INFO names the server");
    let (bin_product, bin_version) = binary_identity();
    assert_eq!(
        (product, version),
        (bin_product.as_str(), bin_version.as_str())
    );
    if let Ok(want) = std::env::var("REDIS_EXPECT_SERVER") {
        assert_eq!(format!("{product} {version}"), want);
    }
}

fn words(line: &str) -> BTreeMap<&str, &str> {
    line.split(' ')
        .filter(|w| !w.is_empty())
        .map(|w| w.split_once('=').expect("key=value"))
        .collect()
}

/// Waits until INFO says what `cond` wants (a BLPOP sent on another connection is blocked only
/// once the server has read it).
fn wait_info(c: &mut RespConn, what: &str, cond: impl Fn(&Info) -> bool) -> Info {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let i = info(c, "clients");
        if cond(&i) {
            return i;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {i:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn ok(c: &mut RespConn, args: &[&str]) {
    let reply = c.cmd(args);
    assert!(!reply.is_error(), "{args:?}: {reply:?}");
}

#[test]
fn a_live_client_list_of_every_kind_parses_and_counts() {
    let r = Redis::start(&[]);
    let mut admin = r.conn().named("admin");
    let server = info(&mut admin, "server");
    let (product, _) = server.server().expect("server identity");
    let (major, minor) = common::server_version();
    let has_shard = major >= 7;
    let has_setinfo = product == "valkey" || (major, minor) >= (7, 2);

    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(r.conn_from("127.0.0.2").named("svc-a"));
    }
    let mut sub = r.conn_from("127.0.0.3").named("listener");
    assert!(matches!(sub.cmd(&["SUBSCRIBE", "a", "b"]), Reply::Array(_)));
    // The second channel's confirmation.
    assert!(matches!(sub.read(), Ok(Reply::Array(_))));
    held.push(sub);
    let mut psub = r.conn_from("127.0.0.3").named("listener");
    assert!(matches!(psub.cmd(&["PSUBSCRIBE", "a.*"]), Reply::Array(_)));
    held.push(psub);
    if has_shard {
        let mut ssub = r.conn_from("127.0.0.3").named("listener");
        assert!(matches!(ssub.cmd(&["SSUBSCRIBE", "s"]), Reply::Array(_)));
        held.push(ssub);
    }
    let mut blocked = r.conn_from("127.0.0.4").named("worker");
    blocked.send(&["BLPOP", "jobs", "0"]);
    held.push(blocked);
    let mut multi = r.conn_from("127.0.0.5");
    ok(&mut multi, &["MULTI"]);
    assert_eq!(multi.cmd(&["INCR", "n"]).as_simple(), Some("QUEUED"));
    held.push(multi);
    let mut tracking = r.conn_from("127.0.0.6").named("cache");
    ok(&mut tracking, &["CLIENT", "TRACKING", "ON"]);
    held.push(tracking);
    let mut lib = r.conn_from("127.0.0.7").named("modern");
    if has_setinfo {
        ok(&mut lib, &["CLIENT", "SETINFO", "LIB-NAME", "redis-rs"]);
        ok(&mut lib, &["CLIENT", "SETINFO", "LIB-VER", "0.27.0"]);
    }
    held.push(lib);
    held.push(RespConn::connect_unix(&r.socket_path()).named("local"));

    let subs = 2 + usize::from(has_shard);
    // admin, 3 svc-a, the subscribers, worker, multi, cache, modern, local.
    let want = 1 + 3 + subs + 5;
    let i = wait_info(&mut admin, "the BLPOP to block", |i| {
        i.blocked_clients == Some(1.0) && i.connected_clients == Some(want as f64)
    });
    // Every version of the matrix (6.2 included) reports these.
    assert_eq!(i.maxclients, Some(10000.0));
    assert_eq!(i.cluster_connections, Some(0.0));
    assert_eq!(i.tracking_clients, Some(1.0));
    assert_eq!(i.limit_connections(), Some(want as f64));

    let reply = admin.cmd(&["CLIENT", "LIST"]);
    let text = reply.as_bulk().expect("CLIENT LIST is a bulk string");
    let raw: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(raw.len(), want, "{text}");
    for (line, e) in raw.iter().zip(lines(text)) {
        let e = e.unwrap_or_else(|err| panic!("{err}: {line}"));
        let w = words(line);
        let n = |k: &str| w.get(k).map(|v| v.parse::<u64>().expect("number"));
        assert_eq!(e.id, n("id"), "{line}");
        assert_eq!(Some(e.addr), w.get("addr").copied(), "{line}");
        assert_eq!(e.name, w.get("name").copied(), "{line}");
        assert_eq!(e.flags, w.get("flags").copied(), "{line}");
        assert_eq!(e.cmd, w.get("cmd").copied(), "{line}");
        assert_eq!(e.idle, n("idle"), "{line}");
        assert_eq!(e.sub, n("sub"), "{line}");
        assert_eq!(e.psub, n("psub"), "{line}");
        assert_eq!(e.ssub, n("ssub"), "{line}");
        assert_eq!(e.tot_mem, n("tot-mem"), "{line}");
        assert_eq!(e.omem, n("omem"), "{line}");
        assert_eq!(e.lib_name.is_some(), has_setinfo, "{line}");
        if e.name == Some("modern") && has_setinfo {
            assert_eq!(e.lib_name, Some("redis-rs"), "{line}");
        }
        if e.name == Some("admin") {
            // The connection that asked: `client` before 7.0, `client|list` from 7.0 on.
            let want_cmd = if major >= 7 { "client|list" } else { "client" };
            assert_eq!(e.cmd, Some(want_cmd), "{line}");
        }
    }

    let s = Aggregator::new(60).summarize(text, 100);
    assert_eq!(s.parse_errors, 0);
    assert_eq!(s.connections, want as u64);
    assert_eq!(s.by_type[ClientType::Pubsub], subs as u64);
    assert_eq!(s.by_type[ClientType::Normal], (want - subs) as u64);
    assert_eq!(s.subscriptions, [2, 1, u64::from(has_shard)]);
    for flag in [Flag::Blocked, Flag::Multi, Flag::Tracking, Flag::UnixSocket] {
        assert_eq!(s.by_flag[flag], 1, "{}: {text}", flag.as_str());
    }
    let names: BTreeMap<&str, u64> = s
        .by_name
        .iter()
        .map(|(k, g)| (k.as_str(), g.connections))
        .collect();
    assert_eq!(names.get("svc-a"), Some(&3));
    assert_eq!(names.get("listener"), Some(&(subs as u64)));
    assert_eq!(names.get("unnamed"), Some(&1));
    let sources: BTreeMap<&str, u64> = s
        .by_source
        .iter()
        .map(|(k, g)| (k.as_str(), g.connections))
        .collect();
    let expect: BTreeMap<&str, u64> = [
        ("127.0.0.1", 1),
        ("127.0.0.2", 3),
        ("127.0.0.3", subs as u64),
        ("127.0.0.4", 1),
        ("127.0.0.5", 1),
        ("127.0.0.6", 1),
        ("127.0.0.7", 1),
        ("unix", 1),
    ]
    .into();
    assert_eq!(sources, expect);
    drop(held);
}
