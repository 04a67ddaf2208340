//! Parse + aggregate throughput of CLIENT LIST replies shaped like the real captures.
//! `cargo bench --bench client_list`; lines per second = the reported element throughput.
//!
//! Instruction counts (repeatable on a busy machine, unlike wall time): set `HOT_PATH` to one of
//! `parse_only`, `parse_aggregate`, `fixture` and `HOT_PATH_ITERS` to a count, and run the bench
//! binary under callgrind, collecting only inside the `hot_*` functions:
//!
//! ```text
//! HOT_PATH=parse_aggregate HOT_PATH_ITERS=5 valgrind --tool=callgrind \
//!     --toggle-collect='client_list::hot_*' target/release/deps/client_list-<hash>
//! ```
//! It prints the line count; instructions per line = callgrind's total / lines. The two-thread
//! path is off in this mode unless `HOT_PATH_PARALLEL` is set (then collect without the toggle).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use redis_clients_exporter::analysis::aggregate::Aggregator;
use redis_clients_exporter::analysis::synthetic;
use redis_clients_exporter::redis::client_list::lines;

/// The reply shape of the load script and the real fixtures: 20 clients per source, 50 names.
fn synthetic_reply(n: usize) -> String {
    synthetic::client_list(n, n / 20, 50)
}

fn fixture_reply() -> String {
    include_str!("../tests/fixtures/client_list_redis7.0.txt").repeat(500)
}

#[inline(never)]
fn hot_parse_only(reply: &str) -> usize {
    lines(reply).filter(Result::is_ok).count()
}

#[inline(never)]
fn hot_summarize(agg: &mut Aggregator, reply: &str) -> u64 {
    agg.summarize(reply, 50).connections
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("client_list");
    for &n in &[10_000usize, 50_000] {
        let reply = synthetic_reply(n);
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::new("parse_only", n), &reply, |b, r| {
            b.iter(|| hot_parse_only(r))
        });
        // One core: the acceptance figure is per core.
        let mut agg = Aggregator::new(60);
        agg.set_parallel(false);
        g.bench_with_input(
            BenchmarkId::new("parse_aggregate_fold", n),
            &reply,
            |b, r| b.iter(|| hot_summarize(&mut agg, r)),
        );
    }
    let fixture = fixture_reply();
    let n = fixture.lines().count() as u64;
    g.throughput(Throughput::Elements(n));
    let mut agg = Aggregator::new(60);
    g.bench_function("real_fixture_x500", |b| {
        b.iter(|| hot_summarize(&mut agg, &fixture))
    });
    g.finish();

    // The poll-time budget is per reply: time of one 50,000-line snapshot as the poller runs it
    // (two threads where there are two cores), and on one thread.
    let mut g = c.benchmark_group("parse_aggregate");
    let reply = synthetic_reply(50_000);
    g.throughput(Throughput::Elements(50_000));
    let mut agg = Aggregator::new(60);
    g.bench_function("synthetic_50k", |b| {
        b.iter(|| hot_summarize(&mut agg, &reply))
    });
    let mut agg = Aggregator::new(60);
    agg.set_parallel(false);
    g.bench_function("synthetic_50k_one_thread", |b| {
        b.iter(|| hot_summarize(&mut agg, &reply))
    });
    // With the identity layer on (src/identity): every source a pod of one of 50 Deployments,
    // so each line is also counted in the workload dimension (one thread, as the poller then
    // aggregates).
    let mut agg = Aggregator::new(60);
    agg.set_identity(Some(identity_of(&reply)), 2_000_000_000);
    g.bench_function("synthetic_50k_identity", |b| {
        b.iter(|| hot_summarize(&mut agg, &reply))
    });
    g.finish();
}

/// Every source address of `reply` as a pod of one of 50 Deployments.
fn identity_of(
    reply: &str,
) -> std::sync::Arc<dyn redis_clients_exporter::analysis::aggregate::SourceIdentity> {
    use redis_clients_exporter::identity::{IdentitySnapshot, Owner};
    let mut pods = std::collections::HashMap::new();
    for line in reply.lines() {
        let Some(addr) = line.split(' ').find_map(|f| f.strip_prefix("addr=")) else {
            continue;
        };
        let Some(ip) = addr.rsplit_once(':').and_then(|(ip, _)| ip.parse().ok()) else {
            continue;
        };
        let n = pods.len() % 50;
        pods.entry(ip).or_insert_with(|| Owner {
            workload: format!("Deployment shop/service-{n}"),
            since_unix: Some(1_000_000_000),
        });
    }
    std::sync::Arc::new(IdentitySnapshot {
        pods: std::sync::Arc::new(pods),
        ..Default::default()
    })
}

/// The fixed-work mode for callgrind (see the module docs).
fn hot_path(which: &str, iters: usize) {
    let reply = match which {
        "fixture" => fixture_reply(),
        _ => synthetic_reply(50_000),
    };
    let mut agg = Aggregator::new(60);
    // One thread unless HOT_PATH_PARALLEL is set: callgrind serialises threads anyway, and
    // `--toggle-collect` only sees the calling thread.
    agg.set_parallel(std::env::var_os("HOT_PATH_PARALLEL").is_some());
    // Warm the maps as the poller's are after its first poll; not a `hot_*` call, so not counted.
    agg.summarize(&reply, 50);
    let mut lines = 0u64;
    for _ in 0..iters {
        lines += match which {
            "parse_only" => hot_parse_only(black_box(&reply)) as u64,
            _ => hot_summarize(&mut agg, black_box(&reply)),
        };
    }
    println!("{which}: {lines} lines through hot_* functions");
}

criterion_group!(benches, bench);

fn main() {
    if let (Ok(which), Ok(iters)) = (std::env::var("HOT_PATH"), std::env::var("HOT_PATH_ITERS")) {
        hot_path(&which, iters.parse().unwrap_or(1));
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
