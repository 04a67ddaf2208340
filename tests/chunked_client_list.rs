//! CLIENT LIST in chunks of client ids (src/redis/chunked.rs) against real redis-server: the chunked
//! walk and a full CLIENT LIST give the same aggregates on a static population; under churn
//! every client alive through a whole walk is counted; after CONFIG RESETSTAT and after a
//! restart of Redis (ids handed out from 1 again) the counts are right at the next poll.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{server_version, Exporter, Redis, RespConn};
use redis_clients_exporter::analysis::aggregate::{Aggregator, ClientListSummary, GroupStats};
use redis_clients_exporter::redis::chunked::{ChunkedLister, FullReason, Listing, CHUNK_IDS};
use redis_clients_exporter::redis::connection::{Conn, Stage};
use redis_clients_exporter::redis::info::Info;
use redis_clients_exporter::redis::resp::Value;

const TOP_K: usize = 10_000;
const TIMEOUT: Duration = Duration::from_secs(10);

fn chunked_server() -> bool {
    server_version() >= (6, 2)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

async fn connect(r: &Redis) -> Conn {
    let mut t = r.target("chunked");
    t.command_timeout = TIMEOUT;
    Conn::open(&t).await.unwrap()
}

/// A text reply (INFO, CLIENT LIST) on the same connection.
async fn text(c: &mut Conn, stage: Stage, args: &[&str]) -> String {
    match c.command(stage, args).await.unwrap() {
        Value::String(s) => s,
        other => panic!("{args:?}: {other:?}"),
    }
}

/// One poll's listing, as the poller does it: INFO, then the listing into the aggregator.
async fn walk(
    lister: &mut ChunkedLister,
    agg: &mut Aggregator,
    c: &mut Conn,
) -> (Listing, ClientListSummary) {
    let info = Info::parse(&text(c, Stage::Info, &["INFO"]).await);
    let listing = lister.list(c, &info, agg).await.unwrap();
    (listing, agg.finish(TOP_K))
}

/// A full CLIENT LIST on the same connection, aggregated the usual way.
async fn full(c: &mut Conn) -> ClientListSummary {
    let reply = text(c, Stage::ClientList, &["CLIENT", "LIST"]).await;
    Aggregator::new(60).summarize(&reply, TOP_K)
}

/// What a snapshot says about who holds the connections, without what moves with the clock
/// (ages, idle times) or with the command being run (our own connection's memory).
#[derive(Debug, PartialEq)]
struct Counts {
    connections: u64,
    parse_errors: u64,
    distinct_sources: u64,
    by_source: BTreeMap<String, [u64; 5]>,
    by_name: BTreeMap<String, [u64; 5]>,
    by_lib: BTreeMap<String, [u64; 5]>,
    by_user: BTreeMap<String, u64>,
    by_command: BTreeMap<String, u64>,
    by_type: Vec<u64>,
    by_flag: Vec<u64>,
    subscriptions: [u64; 3],
}

fn counts(s: &ClientListSummary) -> Counts {
    let groups = |v: &[(String, GroupStats)]| {
        v.iter()
            .map(|(k, g)| {
                (
                    k.clone(),
                    [
                        g.connections,
                        g.no_command,
                        g.pubsub,
                        g.subscriptions,
                        g.own,
                    ],
                )
            })
            .collect()
    };
    Counts {
        connections: s.connections,
        parse_errors: s.parse_errors,
        distinct_sources: s.distinct_sources,
        by_source: groups(&s.by_source),
        by_name: groups(&s.by_name),
        by_lib: groups(&s.by_lib),
        by_user: s.by_user.iter().cloned().collect(),
        by_command: s.by_command.iter().cloned().collect(),
        by_type: s.by_type.counts().to_vec(),
        by_flag: s.by_flag.counts().to_vec(),
        subscriptions: s.subscriptions,
    }
}

fn name_count(s: &ClientListSummary, name: &str) -> u64 {
    s.by_name
        .iter()
        .find(|(k, _)| k == name)
        .map_or(0, |(_, g)| g.connections)
}

/// `n` clients from 40 loopback sources with 53 names (every tenth unnamed, some subscribed).
fn population(r: &Redis, n: usize, tag: &str) -> Vec<RespConn> {
    (0..n)
        .map(|i| {
            let mut c = r.conn_from(&format!("127.0.0.{}", 2 + i % 40));
            if i % 10 != 0 {
                c = c.named(&format!("{tag}-{}:pool{}", i % 53, i % 7));
            }
            if i % 97 == 1 {
                c.send(&["SUBSCRIBE", "events"]);
                c.read().unwrap();
            }
            c
        })
        .collect()
}

/// Connections opened and closed at once: a run of ids no client holds any more.
fn gap(r: &Redis, n: usize) {
    for _ in 0..n {
        drop(r.conn_from("127.0.0.250"));
    }
}

fn named(r: &Redis, n: usize, name: &str) -> Vec<RespConn> {
    (0..n)
        .map(|i| r.conn_from(&format!("127.0.1.{}", 1 + i % 20)).named(name))
        .collect()
}

#[test]
fn chunked_walk_equals_a_full_listing_of_a_static_population() {
    let r = Redis::start(&["--maxclients", "10000"]);
    let _clients = population(&r, 4000, "svc");
    let rt = runtime();
    rt.block_on(async {
        let mut c = connect(&r).await;
        let mut lister = ChunkedLister::new(None);
        let mut agg = Aggregator::new(60);
        // The first listing on a connection sweeps every id from 1 in chunks (a full
        // CLIENT LIST where the server has no CLIENT LIST ID).
        let (first, swept) = walk(&mut lister, &mut agg, &mut c).await;
        assert_eq!(counts(&swept), counts(&full(&mut c).await));
        if chunked_server() {
            assert_eq!(
                (first.full, first.sweep),
                (None, Some(FullReason::Connected))
            );
            assert!(first.commands > 4001 / CHUNK_IDS as u64, "{first:?}");
        } else {
            assert_eq!(first.full, Some(FullReason::Unsupported));
        }

        let (second, walked) = walk(&mut lister, &mut agg, &mut c).await;
        let listed = full(&mut c).await;
        assert_eq!(counts(&walked), counts(&listed));
        assert_eq!(walked.connections, 4001);
        if !chunked_server() {
            return;
        }
        assert_eq!(
            (second.full, second.sweep),
            (None, None),
            "the second poll walks"
        );
        // 4,001 known ids in chunks of 500, and at least one probe above them.
        assert!(second.commands > 4001 / CHUNK_IDS as u64, "{second:?}");

        // New clients above a run of closed ids longer than a chunk: found by the bound that
        // INFO's total_connections_received gives, not only by chasing returned ids.
        gap(&r, 3 * CHUNK_IDS);
        let late = population(&r, 1200, "late");
        let (third, walked) = walk(&mut lister, &mut agg, &mut c).await;
        let listed = full(&mut c).await;
        assert_eq!(third.full, None);
        assert_eq!(counts(&walked), counts(&listed));
        assert_eq!(walked.connections, 5201);

        // Clients that left are no longer counted.
        drop(late);
        let (_, walked) = walk(&mut lister, &mut agg, &mut c).await;
        let listed = full(&mut c).await;
        assert_eq!(counts(&walked), counts(&listed));
        assert_eq!(walked.connections, 4001);
    });
}

#[test]
fn every_client_alive_through_a_walk_is_counted_under_churn() {
    if !chunked_server() {
        eprintln!("SKIP: the server has no CLIENT LIST ID");
        return;
    }
    let r = Redis::start(&["--maxclients", "10000"]);
    let _static = population(&r, 3000, "steady");
    let expected: Vec<(String, u64)> = {
        let rt = runtime();
        rt.block_on(async {
            let mut c = connect(&r).await;
            let s = full(&mut c).await;
            s.by_name
                .iter()
                .filter(|(k, _)| k.starts_with("steady-"))
                .map(|(k, g)| (k.clone(), g.connections))
                .collect()
        })
    };
    assert_eq!(expected.len(), 53 * 7);
    // Churn from two threads: connections opened and closed all the time, some held a while.
    let stop = Arc::new(AtomicBool::new(false));
    let opened = Arc::new(AtomicU64::new(0));
    let churn: Vec<_> = (0..2)
        .map(|t| {
            let (stop, opened, port) = (stop.clone(), opened.clone(), r.port);
            std::thread::spawn(move || {
                let mut held = std::collections::VecDeque::new();
                while !stop.load(Ordering::Relaxed) {
                    let c = RespConn::connect(port, &format!("127.0.2.{}", 1 + t)).named("churn");
                    opened.fetch_add(1, Ordering::Relaxed);
                    held.push_back(c);
                    if held.len() > 50 {
                        held.pop_front();
                    }
                }
            })
        })
        .collect();
    let rt = runtime();
    let mut chunked_walks = 0;
    let mut late = Vec::new();
    rt.block_on(async {
        let mut c = connect(&r).await;
        let mut lister = ChunkedLister::new(None);
        let mut agg = Aggregator::new(60);
        walk(&mut lister, &mut agg, &mut c).await;
        for round in 0..6 {
            // Alive from before this walk to after it: each must be counted.
            late.push(named(&r, 700, &format!("late-{round}")));
            let churned_before = opened.load(Ordering::Relaxed);
            let (listing, s) = walk(&mut lister, &mut agg, &mut c).await;
            assert!(
                opened.load(Ordering::Relaxed) > churned_before || listing.full.is_some(),
                "no churn happened during the walk"
            );
            chunked_walks += u32::from(listing.full.is_none());
            for (name, n) in &expected {
                assert_eq!(name_count(&s, name), *n, "{name} in round {round}");
            }
            for k in 0..=round {
                assert_eq!(name_count(&s, &format!("late-{k}")), 700, "round {round}");
            }
        }
    });
    stop.store(true, Ordering::Relaxed);
    for t in churn {
        t.join().unwrap();
    }
    assert!(
        chunked_walks >= 3,
        "only {chunked_walks} walks were chunked"
    );
    assert!(opened.load(Ordering::Relaxed) > 100);
}

#[test]
fn counts_are_right_within_one_poll_after_resetstat_and_after_a_restart() {
    if !chunked_server() {
        eprintln!("SKIP: the server has no CLIENT LIST ID");
        return;
    }
    let mut r = Redis::start(&["--maxclients", "10000"]);
    let steady = population(&r, 2000, "steady");
    let rt = runtime();
    rt.block_on(async {
        let mut c = connect(&r).await;
        let mut lister = ChunkedLister::new(None);
        let mut agg = Aggregator::new(60);
        walk(&mut lister, &mut agg, &mut c).await;
        let (l, _) = walk(&mut lister, &mut agg, &mut c).await;
        assert_eq!(l.full, None);

        // RESETSTAT: total_connections_received starts again from 0, so it says nothing of
        // the ids handed out since the last poll. A run of closed ids longer than a chunk,
        // then new clients: a walk bounded by the reset counter would stop before them.
        let mut admin = r.conn();
        assert_eq!(admin.cmd(&["CONFIG", "RESETSTAT"]).as_simple(), Some("OK"));
        gap(&r, 2 * CHUNK_IDS);
        let _after = named(&r, 100, "after-reset");
        let (l, walked) = walk(&mut lister, &mut agg, &mut c).await;
        assert_eq!(name_count(&walked, "after-reset"), 100);
        assert_eq!(counts(&walked), counts(&full(&mut c).await));
        assert_eq!(l.full, Some(FullReason::Resetstat));
        let (l, walked) = walk(&mut lister, &mut agg, &mut c).await;
        assert_eq!(l.full, None, "chunked again after the resync");
        assert_eq!(name_count(&walked, "after-reset"), 100);
        drop(admin);
        c.close().await;
    });
    drop(steady);

    // A restart: the new server hands out ids from 1 again, below everything the lister
    // knew. The old server's ids were sparse (a run of closed ids first), so a walk of the
    // old ids and of the ids above them would find almost no one.
    let rt2 = runtime();
    let mut lister = ChunkedLister::new(None);
    gap(&r, 3000);
    let _old = named(&r, 800, "before-restart");
    rt2.block_on(async {
        let mut c = connect(&r).await;
        let mut agg = Aggregator::new(60);
        walk(&mut lister, &mut agg, &mut c).await;
        let (l, s) = walk(&mut lister, &mut agg, &mut c).await;
        assert_eq!(l.full, None);
        assert_eq!(name_count(&s, "before-restart"), 800);
        c.close().await;
    });
    r.restart();
    // New clients with ids below everything the lister knew, then enough connections that
    // total_connections_received is higher than before the restart (so that it does not look
    // like a RESETSTAT: only run_id and uptime tell).
    let _new = population(&r, 1500, "reborn");
    gap(&r, 6000);
    rt2.block_on(async {
        // The same lister on a connection to the new server (the poller also starts afresh
        // on any new connection; this checks the restart is seen from INFO alone).
        let mut c = connect(&r).await;
        let mut agg = Aggregator::new(60);
        let (l, walked) = walk(&mut lister, &mut agg, &mut c).await;
        assert_eq!(walked.connections, 1501);
        assert_eq!(counts(&walked), counts(&full(&mut c).await));
        // Swept in chunks: the new server's ids are few.
        assert_eq!((l.full, l.sweep), (None, Some(FullReason::Restart)));
        let (l, walked) = walk(&mut lister, &mut agg, &mut c).await;
        assert_eq!(l.full, None);
        assert_eq!(walked.connections, 1501);
    });
}

/// The poller's hook: the exporter lists in chunks from its second poll on, and /metrics says
/// how (commands per listing, full listings by reason).
#[test]
fn the_exporter_polls_in_chunks_and_reports_it() {
    let r = Redis::start(&["--maxclients", "10000"]);
    let _clients = population(&r, 1500, "svc");
    let e = Exporter::start(common::config(vec![r.target("t")], 50));
    let t = [("target", "t")];
    let m = e.wait_for("two listings", Duration::from_secs(30), |m| {
        m.get("redis_clients_exporter_client_list_commands_total", &t)
            .is_some_and(|n| n > 1.0)
            && m.get("redis_client_snapshot_connections", &t).is_some()
    });
    assert_eq!(m.get("redis_client_snapshot_connections", &t), Some(1501.0));
    let full = |m: &common::Metrics, reason: &str| {
        m.get(
            "redis_clients_exporter_client_list_full_listings_total",
            &[("target", "t"), ("reason", reason)],
        )
    };
    if chunked_server() {
        let m = e.wait_for("a chunked listing", Duration::from_secs(30), |m| {
            m.get("redis_clients_exporter_client_list_commands", &t)
                .is_some_and(|n| n > 1.0)
        });
        // 1,501 known ids in chunks of 500 plus a probe.
        assert!(m.get("redis_clients_exporter_client_list_commands", &t) >= Some(5.0));
        assert_eq!(
            m.get(
                "redis_clients_exporter_client_list_sweeps_total",
                &[("target", "t"), ("reason", "connected")]
            ),
            Some(1.0)
        );
        assert_eq!(full(&m, "connected"), Some(0.0));
        assert_eq!(m.get("redis_client_snapshot_connections", &t), Some(1501.0));
    } else {
        assert!(full(&m, "unsupported") >= Some(1.0));
    }
}
