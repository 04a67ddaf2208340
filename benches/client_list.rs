//! Parse + aggregate throughput of CLIENT LIST replies shaped like the real captures.
//! `cargo bench --bench client_list`; lines per second = the reported element throughput.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use redis_clients_exporter::aggregate::Aggregator;
use redis_clients_exporter::client_list::lines;
use redis_clients_exporter::synthetic;

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("client_list");
    for &n in &[10_000usize, 50_000] {
        let reply = synthetic::client_list(n, n / 20, 50);
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::new("parse_only", n), &reply, |b, r| {
            b.iter(|| lines(r).filter(Result::is_ok).count())
        });
        let mut agg = Aggregator::new(60);
        g.bench_with_input(
            BenchmarkId::new("parse_aggregate_fold", n),
            &reply,
            |b, r| b.iter(|| agg.summarize(r, 50).connections),
        );
    }
    let fixture = include_str!("../tests/fixtures/client_list_redis7.0.txt").repeat(500);
    let n = fixture.lines().count() as u64;
    g.throughput(Throughput::Elements(n));
    let mut agg = Aggregator::new(60);
    g.bench_function("real_fixture_x500", |b| {
        b.iter(|| agg.summarize(&fixture, 50).connections)
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
