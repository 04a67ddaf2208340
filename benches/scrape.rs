//! What a scrape of `/metrics` costs for N targets: before (every series formatted at the
//! scrape, `render_chunks_direct`) and after (each target's block written when its state is
//! published, the scrape assembling them, `render_chunks_as`). Not criterion: a plain program
//! whose `hot_*` functions callgrind counts alone (instructions are repeatable on a busy
//! machine, wall time is not):
//!
//! ```text
//! cargo bench --bench scrape --no-run
//! SCRAPE_TARGETS=10000 SCRAPE_MODE=assemble valgrind --tool=callgrind \
//!     --toggle-collect='scrape::hot_*' target/release/deps/scrape-<hash>
//! ```
//! `SCRAPE_MODE`: `direct` (before: one chunk per family, all held), `assemble` (after: the
//! blocks written first, outside the count, then the body read chunk by chunk as `/metrics`
//! sends it), `publish` (after: the blocks' writing alone, as the pollers do it);
//! `SCRAPE_FORMAT=openmetrics` for OpenMetrics. Without callgrind it prints the output's size,
//! the scrape's peak of live heap bytes (a counting allocator) and the wall time, indicative.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use redis_clients_exporter::analysis::aggregate::Aggregator;
use redis_clients_exporter::analysis::synthetic;
use redis_clients_exporter::redis::info::Info;
use redis_clients_exporter::targets::state::{ConfigValues, Counters, TargetState};
use redis_clients_exporter::web::exposition::Format;
use redis_clients_exporter::web::metrics;

#[path = "../tests/support/counting.rs"]
mod counting;

/// A small target as the scale runs poll them: 30 clients from 3 sources under 8 names.
fn state(i: usize) -> TargetState {
    let info = Info::parse(include_str!(
        "../tests/fixtures/info_everything_redis7.0.txt"
    ));
    let list = synthetic::client_list(30, 3, 8);
    let clients = Aggregator::new(60).summarize(&list, 50);
    TargetState {
        up: true,
        info: Some(info),
        config: ConfigValues {
            available: true,
            maxclients: Some(10_000.0),
            timeout: Some(0.0),
            tcp_keepalive: Some(300.0),
            maxmemory_clients: None,
        },
        clients: Some(Arc::new(clients)),
        last_success: Some(1.7e9 + i as f64),
        client_list_timestamp: Some(1.7e9 + i as f64),
        counters: Counters {
            polls: 100 + i as u64,
            ..Counters::default()
        },
        ..TargetState::default()
    }
}

fn states(n: usize) -> Vec<(String, Arc<TargetState>)> {
    (0..n)
        .map(|i| (format!("redis-{i:05}"), Arc::new(state(i))))
        .collect()
}

#[inline(never)]
fn hot_direct(s: &[(String, Arc<TargetState>)], format: Format) -> Vec<Bytes> {
    metrics::render_chunks_direct(s, format)
}

/// As `/metrics` sends it: chunk after chunk, each dropped once sent.
#[inline(never)]
fn hot_assemble(s: &[(String, Arc<TargetState>)], format: Format) -> usize {
    metrics::render_body_as(s, format)
        .map(|c| black_box(c).len())
        .sum()
}

#[inline(never)]
fn hot_publish(s: &[(String, Arc<TargetState>)]) {
    for (label, st) in s {
        let _ = st.rendered.set(metrics::render_block(label, st));
    }
}

fn main() {
    let n: usize = std::env::var("SCRAPE_TARGETS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let mode = std::env::var("SCRAPE_MODE").unwrap_or_else(|_| "assemble".into());
    let format = match std::env::var("SCRAPE_FORMAT").as_deref() {
        Ok("openmetrics") => Format::OpenMetrics,
        _ => Format::Text,
    };
    let s = states(n);
    if mode != "direct" && mode != "publish" {
        // As the pollers leave them: every state's block written at its publish.
        for (label, st) in &s {
            let _ = st.rendered.set(metrics::render_block(label, st));
        }
    }
    let held = counting::live();
    counting::reset_peak();
    let t = Instant::now();
    let bytes: usize = match mode.as_str() {
        "direct" => black_box(hot_direct(&s, format))
            .iter()
            .map(Bytes::len)
            .sum(),
        "publish" => {
            hot_publish(&s);
            0
        }
        _ => hot_assemble(&s, format),
    };
    let wall = t.elapsed();
    let peak = counting::peak() - held;
    let blocks: usize = s
        .iter()
        .filter_map(|(_, st)| st.rendered.get())
        .map(|r| r.text.text.len() + r.text.families.len() * 8)
        .sum();
    println!(
        "targets {n} mode {mode} format {format:?}: output {bytes} bytes ({} per target), \
         scrape peak {peak} bytes live, blocks held {blocks} bytes ({} per target), wall {wall:?} (indicative)",
        bytes / n.max(1),
        blocks / n.max(1),
    );
}
