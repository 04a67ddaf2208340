//! Cost of one diagnosis, as the daemon pays it after every poll: the detectors over a top-50
//! summary of 10,000 clients and a full hour of history (60 samples).
//! `cargo bench --bench diagnose`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use criterion::{criterion_group, criterion_main, Criterion};
use redis_clients_exporter::analysis::aggregate::Aggregator;
use redis_clients_exporter::analysis::history::{History, Sample, MAX_SAMPLES, RETENTION};
use redis_clients_exporter::analysis::synthetic;
use redis_clients_exporter::diagnose::{diagnose, Observation};
use redis_clients_exporter::redis::info::Info;
use redis_clients_exporter::targets::state::ConfigValues;

fn bench(c: &mut Criterion) {
    let reply = synthetic::client_list(10_000, 500, 50);
    let summary = Aggregator::new(60).summarize(&reply, 50);
    let info = Info::parse(
        "redis_version:7.0.15\r\nconnected_clients:10000\r\nmaxclients:12000\r\ntotal_connections_received:500000\r\nrejected_connections:0\r\n",
    );
    let config = ConfigValues {
        available: true,
        maxclients: Some(12_000.0),
        timeout: Some(0.0),
        tcp_keepalive: Some(300.0),
    };
    let mut history = History::new(RETENTION);
    let step = RETENTION.as_secs_f64() / MAX_SAMPLES as f64;
    for i in 0..=MAX_SAMPLES {
        let s = Sample::new(i as f64 * step, &info, &summary, history.last());
        history.push(s);
    }
    let now = MAX_SAMPLES as f64 * step;
    let samples = history.samples().to_vec();
    let obs = Observation {
        info: &info,
        config: &config,
        clients: &summary,
        idle_threshold_seconds: 60,
    };
    c.bench_function("diagnose/top50_history60", |b| {
        b.iter(|| {
            diagnose("t", &obs, &samples, now, "redis-cli")
                .findings
                .len()
        })
    });
    c.bench_function("history/sample_and_push", |b| {
        let mut h = History::new(RETENTION);
        let mut t = 0.0;
        b.iter(|| {
            t += step;
            let s = Sample::new(t, &info, &summary, h.last());
            h.push(s);
            h.len()
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
