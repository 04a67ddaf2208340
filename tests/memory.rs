//! What an idle target with a small client population holds in memory after an hour (issue
//! 20: at most 50 kB), measured as live heap bytes with a counting global allocator over many
//! targets against one real redis-server: everything a target keeps but its connection (the
//! state, the aggregator, the hour of history, what the store serves), and the whole poller
//! with its connection.
//! (Its own test binary: the allocator is global to it.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{Redis, RespConn};
use redis_clients_exporter::analysis::aggregate::{Aggregator, ClientListSummary};
use redis_clients_exporter::analysis::history::{History, Sample, MAX_SAMPLES, RETENTION};
use redis_clients_exporter::diagnose::redis_cli_for;
use redis_clients_exporter::redis::chunked::ChunkSink;
use redis_clients_exporter::redis::info::Info;
use redis_clients_exporter::targets::poller::{PollResult, Poller};
use redis_clients_exporter::targets::state::{ConfigValues, StageDurations, Store, TargetState};

#[path = "support/counting.rs"]
mod counting;
use counting::{live, SERIAL};

/// Targets measured at once: the bytes per target are the average over them.
const TARGETS: usize = 30;
const TOP_K: usize = 50;
const IDLE_THRESHOLD: u64 = 60;
/// What a target may hold, its connection included (issue 20).
const PER_TARGET: i64 = 50_000;
/// What a target may hold besides its connection.
const OURS: i64 = 35_000;
/// A full hour of history of a small idle population (3.6 kB measured).
const HISTORY: i64 = 4_000;
/// A full hour of history when every minute's counts differ (issue 31: under 8 kB; 7.4 kB
/// measured).
const HISTORY_VARYING: i64 = 7_800;

fn kb(bytes: i64) -> String {
    format!("{:.1} kB", bytes as f64 / 1000.0)
}

/// A small idle population: 10 clients, 6 names, from 2 sources.
fn idle_clients(redis: &Redis) -> Vec<RespConn> {
    (0..10)
        .map(|i| {
            let source = if i % 3 == 0 { "127.0.0.2" } else { "127.0.0.1" };
            redis.conn_from(source).named(&format!("svc-{}", i % 6))
        })
        .collect()
}

/// INFO and CLIENT LIST as the server answers them now.
fn replies(redis: &Redis) -> (String, String) {
    let mut c = redis.conn_from("127.0.0.3");
    let info = c.cmd(&["INFO"]).as_bulk().expect("INFO").to_string();
    let list = c
        .cmd(&["CLIENT", "LIST"])
        .as_bulk()
        .expect("CLIENT LIST")
        .to_string();
    (info, list)
}

/// `list` as it reads `later` seconds on: every connection that much older and, not having
/// sent anything, idle that much longer.
fn aged(list: &str, later: u64) -> String {
    list.split_inclusive('\n')
        .map(|line| {
            line.split(' ')
                .map(|field| match field.split_once('=') {
                    Some((k @ ("age" | "idle"), v)) => {
                        format!("{k}={}", v.parse::<u64>().expect(k) + later)
                    }
                    _ => field.to_string(),
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// An hour of samples, one a minute, the last one a minute before `now`.
fn hour_of_history(now: f64, info: &Info, summaries: &[ClientListSummary]) -> History {
    let mut h = History::new(RETENTION);
    for (i, s) in summaries.iter().enumerate().take(MAX_SAMPLES) {
        let at = now - 60.0 * (MAX_SAMPLES - i) as f64;
        let sample = Sample::new(at, info, s, h.last());
        h.push(sample);
    }
    h
}

/// Per target, live bytes.
struct Ours {
    /// Everything a target keeps but its connection.
    all: i64,
    /// Its hour of history, of an idle population.
    history: i64,
    /// An hour of history when every minute's counts differ.
    history_varying: i64,
    /// The population's size.
    connections: u64,
    /// What each part holds.
    breakdown: String,
}

/// What a target keeps between polls but its connection and its task, as `Poller::new` and
/// `Poller::cycle` keep it (from `redis`'s real replies, folded one a minute for an hour),
/// and what the store serves of it.
fn ours(redis: &Redis) -> Ours {
    let (info_text, list) = replies(redis);
    // One poll a minute for an hour and one more: the history full, the oldest sample dropped.
    let lists: Vec<String> = (0..=MAX_SAMPLES as u64)
        .map(|i| aged(&list, 600 + 60 * i))
        .collect();
    let info = Info::parse(&info_text);
    let summaries: Vec<ClientListSummary> = lists
        .iter()
        .map(|l| Aggregator::new(IDLE_THRESHOLD).summarize(l, TOP_K))
        .collect();
    assert!(summaries[0].connections >= 11, "{list}");
    let labels: Vec<String> = (0..TARGETS).map(|i| format!("target-{i}")).collect();
    let config = ConfigValues {
        available: true,
        maxclients: Some(10_000.0),
        timeout: Some(0.0),
        tcp_keepalive: Some(300.0),
        maxmemory_clients: None,
    };

    // The history alone, of an idle population (the same counts every minute).
    let mut histories = Vec::with_capacity(TARGETS);
    let before = live();
    for _ in 0..TARGETS {
        histories.push(hour_of_history(0.0, &info, &summaries));
    }
    let history = (live() - before) / TARGETS as i64;
    assert!(histories.iter().all(|h| h.len() == MAX_SAMPLES));
    drop(histories);

    // A worst case for comparison: every minute's counts differ (one client comes and goes).
    let varying: Vec<ClientListSummary> = lists
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let cut: String = l.split_inclusive('\n').skip(i % 2).collect();
            Aggregator::new(IDLE_THRESHOLD).summarize(&cut, TOP_K)
        })
        .collect();
    let mut histories = Vec::with_capacity(TARGETS);
    let before = live();
    for _ in 0..TARGETS {
        histories.push(hour_of_history(0.0, &info, &varying));
    }
    let history_varying = (live() - before) / TARGETS as i64;
    drop(histories);

    // Everything a poller keeps between polls but its connection, as `Poller::new` and
    // `Poller::cycle` keep it, and what the store serves: the state and, as the daemon's store
    // writes it at publish (src/lib.rs), its series' text.
    let store = Store::default();
    store.set_prerender(redis_clients_exporter::web::metrics::render_block);
    let mut targets = Vec::with_capacity(TARGETS);
    let t0 = unix_now() - 3600.0;
    let before = live();
    for label in &labels {
        let target = redis.target(label);
        let redis_cli = redis_cli_for(&target);
        let mut aggregator = Aggregator::new(IDLE_THRESHOLD);
        let mut history = History::new(RETENTION);
        let mut state = TargetState::default();
        for (i, l) in lists.iter().enumerate() {
            state.counters.polls += 1;
            let result = PollResult {
                info: Info::parse(&info_text),
                config: config.clone(),
                config_error: None,
                // As the poller lists (src/redis/chunked.rs, one whole reply) and folds.
                clients: Some({
                    aggregator.begin();
                    aggregator.add_reply(l);
                    aggregator.finish(TOP_K)
                }),
                invalid_utf8: [0, 0],
                durations: StageDurations::default(),
            };
            let now = Some(t0 + 60.0 * i as f64);
            Poller::fold_poll(
                &mut state,
                &mut history,
                result,
                now,
                label,
                IDLE_THRESHOLD,
                &redis_cli,
            );
            store.publish(label, state.clone());
        }
        assert!(history.len() >= MAX_SAMPLES, "{}", history.len());
        assert!(state.diagnosis.is_some());
        // Boxed: the poller's fields are counted too (they live in its task).
        targets.push(Box::new((target, redis_cli, aggregator, history, state)));
    }
    let ours = (live() - before) / TARGETS as i64;
    // Where the bytes go: each part given back in turn (the store's copy of the state last).
    let n = TARGETS as i64;
    // Of the store's copy, the series' text (its buffers' sizes).
    let text: usize = labels
        .iter()
        .filter_map(|l| store.get(l))
        .filter_map(|s| {
            s.rendered
                .get()
                .map(|r| r.text.text.len() + std::mem::size_of_val(&*r.text.families))
        })
        .sum();
    let mut mark = live();
    let mut breakdown = String::new();
    let mut part = |what: &str| {
        let now = live();
        let sep = if breakdown.is_empty() { "" } else { ", " };
        breakdown.push_str(&format!("{sep}{what} {}", kb((mark - now) / n)));
        mark = now;
    };
    for (t, label) in targets.iter_mut().zip(&labels) {
        t.4.diagnosis = None;
        store.publish(label, t.4.clone());
    }
    part("diagnosis");
    for label in &labels {
        store.remove(label);
    }
    part("the store's copy of the state");
    for t in &mut targets {
        t.4.clients = None;
    }
    part("CLIENT LIST summary");
    for t in &mut targets {
        t.2 = Aggregator::new(IDLE_THRESHOLD);
    }
    part("aggregator's maps");
    for t in &mut targets {
        t.3 = History::new(RETENTION);
    }
    part("history");
    drop(targets);
    part("the poller's own fields and strings");
    breakdown.push_str(&format!(
        ", of the store's copy the series' text {}",
        kb(text as i64 / n)
    ));
    Ours {
        all: ours,
        history,
        history_varying,
        connections: summaries[0].connections,
        breakdown,
    }
}

#[test]
fn everything_a_small_idle_target_holds_but_its_connection_is_at_most_35_kb() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let redis = Redis::start(&[]);
    let _clients = idle_clients(&redis);
    let o = ours(&redis);
    eprintln!(
        "per target, {TARGETS} targets, {} clients: everything but the connection {}, of which \
         the hour of history {} ({} when every minute differs); by part: {}",
        o.connections,
        kb(o.all),
        kb(o.history),
        kb(o.history_varying),
        o.breakdown,
    );
    assert!(
        o.history <= HISTORY,
        "an hour of history of a small idle target holds {} (at most {})",
        kb(o.history),
        kb(HISTORY)
    );
    assert!(
        o.history_varying <= HISTORY_VARYING,
        "an hour of history whose counts change every minute holds {} (at most {})",
        kb(o.history_varying),
        kb(HISTORY_VARYING)
    );
    assert!(
        o.all <= OURS,
        "a small idle target holds {} besides its connection (at most {}): {}",
        kb(o.all),
        kb(OURS),
        o.breakdown
    );
}

#[test]
fn a_small_idle_target_holds_at_most_50_kb_with_its_connection() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let redis = Redis::start(&[]);
    let _clients = idle_clients(&redis);
    let o = ours(&redis);
    let (info_text, list) = replies(&redis);
    let info = Info::parse(&info_text);
    let summaries: Vec<ClientListSummary> = (0..MAX_SAMPLES as u64)
        .map(|i| Aggregator::new(IDLE_THRESHOLD).summarize(&aged(&list, 60 * i), TOP_K))
        .collect();
    let labels: Vec<String> = (0..TARGETS).map(|i| format!("target-{i}")).collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let store = Arc::new(Store::default());
    store.set_prerender(redis_clients_exporter::web::metrics::render_block);
    let stop = tokio_util::sync::CancellationToken::new();
    let mut tasks = Vec::with_capacity(TARGETS);
    let mut relief = Vec::with_capacity(TARGETS);
    // Warm the runtime up (its timer wheel, the I/O driver) outside of what is measured.
    rt.block_on(async { tokio::time::sleep(Duration::from_millis(10)).await });

    let before = live();
    let now = unix_now();
    for label in &labels {
        let mut target = redis.target(label);
        target.poll_interval = Duration::from_secs(1);
        // As `PollerSpec::spawn`: each poller serves its relief queue.
        let (jobs, queue) =
            tokio::sync::mpsc::channel(redis_clients_exporter::targets::jobs::QUEUE);
        relief.push(jobs);
        let poller = Poller::new(target, Arc::clone(&store), TOP_K, IDLE_THRESHOLD)
            .with_history(hour_of_history(now, &info, &summaries))
            .with_relief(queue);
        tasks.push(rt.spawn(poller.run(stop.clone())));
    }
    // A few polls each (no timing is asserted: the deadline only ends a hung test).
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let polled = labels
            .iter()
            .filter(|l| store.get(l).is_some_and(|s| s.up && s.counters.polls >= 3))
            .count();
        if polled == TARGETS {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{polled} of {TARGETS} targets polled 3 times"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let total = (live() - before) / TARGETS as i64;
    stop.cancel();
    for t in tasks {
        rt.block_on(t).unwrap();
    }
    eprintln!(
        "per target, {TARGETS} pollers: {} in all; everything but the connection {} (the hour of \
         history {}); the connection, the poller's task and their registrations {}",
        kb(total),
        kb(o.all),
        kb(o.history),
        kb(total - o.all)
    );
    assert!(
        total <= PER_TARGET,
        "a small idle target holds {} with its connection (at most {}): everything but the \
         connection {} ({}), the connection, the poller's task and their registrations {}",
        kb(total),
        kb(PER_TARGET),
        kb(o.all),
        o.breakdown,
        kb(total - o.all)
    );
}

/// The identity layer's cost (issue 29), measured as live bytes: its snapshot of 50,000 pods
/// (what kube-state-metrics answers for a large cluster), and what the workload dimension adds
/// to an aggregator of 2,000 connections from 500 sources. Printed; bounded loosely so that a
/// regression of an order of magnitude fails.
#[test]
fn what_identity_costs_when_on() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let pods = 50_000;
    let mut info = Vec::new();
    let mut start = Vec::new();
    for i in 0..pods {
        let (ns, pod) = (
            format!("ns-{}", i % 40),
            format!("service-{}-7d4b9c-{i:05}", i % 400),
        );
        info.push(
            serde_json::json!({"metric": {"namespace": ns, "pod": pod, "uid": format!("u{i}"),
            "pod_ip": format!("10.{}.{}.{}", i / 65536, (i / 256) % 256, i % 256),
            "node": format!("node-{}", i % 100), "created_by_kind": "ReplicaSet",
            "created_by_name": format!("service-{}-7d4b9c", i % 400), "host_network": "false"},
            "value": [1.0, "1"]}),
        );
        start.push(serde_json::json!({"metric": {"namespace": ns, "pod": pod}, "value": [1.0, "1700000000"]}));
    }
    let answer = |r: Vec<serde_json::Value>| {
        serde_json::json!({"status": "success", "data": {"resultType": "vector", "result": r}})
            .to_string()
            .into_bytes()
    };
    let (info, start) = (answer(info), answer(start));
    let rs = answer(
        (0..400)
            .map(|s| {
                serde_json::json!({"metric": {"namespace": format!("ns-{}", s % 40),
                "replicaset": format!("service-{s}-7d4b9c"), "owner_kind": "Deployment",
                "owner_name": format!("service-{s}")}, "value": [1.0, "1"]})
            })
            .collect(),
    );
    let before = live();
    let owners =
        redis_clients_exporter::identity::kube::owners(&info, &rs, &start, 100_000).unwrap();
    let snapshot_bytes = live() - before;
    assert_eq!(owners.len(), pods);

    let reply = redis_clients_exporter::analysis::synthetic::client_list(2_000, 500, 40);
    let mut by_ip = std::collections::HashMap::new();
    for line in reply.lines() {
        if let Some((ip, _)) = line
            .split(' ')
            .find_map(|f| f.strip_prefix("addr="))
            .and_then(|a| a.rsplit_once(':'))
        {
            let n = by_ip.len() % 20;
            by_ip.entry(ip.parse().unwrap()).or_insert_with(|| {
                redis_clients_exporter::identity::Owner {
                    workload: format!("Deployment shop/service-{n}"),
                    since_unix: None,
                }
            });
        }
    }
    let identity: Arc<dyn redis_clients_exporter::analysis::aggregate::SourceIdentity> =
        Arc::new(redis_clients_exporter::identity::IdentitySnapshot {
            pods: Arc::new(by_ip),
            ..Default::default()
        });
    let held = |on: bool| {
        let before = live();
        let mut agg = Aggregator::new(IDLE_THRESHOLD);
        if on {
            agg.set_identity(Some(Arc::clone(&identity)), 2_000_000_000);
        }
        let s = agg.summarize(&reply, TOP_K);
        let bytes = live() - before;
        drop(s);
        drop(agg);
        bytes
    };
    let (off, on) = (held(false), held(true));
    eprintln!(
        "identity: a snapshot of {pods} pods holds {}; an aggregator of 2,000 connections from 500 sources holds {} off, {} on (+{})",
        kb(snapshot_bytes),
        kb(off),
        kb(on),
        kb(on - off)
    );
    assert!(snapshot_bytes < 32_000_000, "{}", kb(snapshot_bytes));
    assert!(on - off < 200_000, "{}", kb(on - off));
    drop(owners);
}
