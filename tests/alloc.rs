//! The hot path allocates nothing per line: a counting global allocator proves it.
//! (This file holds one test only: the allocator is global to the test binary.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

use redis_clients_exporter::analysis::aggregate::{Aggregator, PARALLEL_MIN_BYTES};
use redis_clients_exporter::analysis::synthetic;
use redis_clients_exporter::redis::chunked::ChunkSink;
use redis_clients_exporter::redis::client_list::lines;

#[path = "support/counting.rs"]
mod counting;
use counting::{allocations, live, SERIAL};

#[test]
fn parse_and_aggregate_allocate_nothing_per_line_after_warm_up() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let reply = synthetic::client_list(20_000, 500, 40);
    let mut agg = Aggregator::new(60);
    // Warm-up: the first snapshot copies each distinct key once.
    let first = agg.summarize(&reply, 50);
    assert_eq!(first.connections, 20_000);

    let per_line = allocations(|| {
        agg.begin();
        for entry in lines(&reply) {
            match entry {
                Ok(e) => agg.add(&e),
                Err(_) => agg.add_error(),
            }
        }
    });
    assert_eq!(
        per_line, 0,
        "parse + aggregate of 20,000 warm lines allocated {per_line} times"
    );
    let folded = agg.finish(50);
    assert_eq!(folded.connections, 20_000);

    // A whole snapshot (with the top-K folding) costs the same whatever the line count, on one
    // thread...
    agg.set_parallel(false);
    let small = synthetic::client_list(2_000, 500, 40);
    let per_snapshot = |agg: &mut Aggregator, reply: &str| {
        agg.summarize(reply, 50);
        allocations(|| {
            agg.summarize(reply, 50);
        })
    };
    let n_small = per_snapshot(&mut agg, &small);
    let n_large = per_snapshot(&mut agg, &reply);
    assert_eq!(
        n_small, n_large,
        "allocations grew with the line count: {n_small} for 2k lines, {n_large} for 20k"
    );

    // ...and on two (a reply this large is split in halves; this machine may have one core, then
    // both runs take the one-thread path and the check still holds).
    agg.set_parallel(true);
    let split = synthetic::client_list(32_000, 500, 40);
    let larger = synthetic::client_list(60_000, 500, 40);
    assert!(split.len() >= PARALLEL_MIN_BYTES);
    agg.summarize(&larger, 50);
    let n_split = per_snapshot(&mut agg, &split);
    let n_larger = per_snapshot(&mut agg, &larger);
    assert_eq!(
        n_split, n_larger,
        "two-thread allocations grew with the line count: {n_split} for 32k lines, {n_larger} for 60k"
    );

    // Values too long for a label are bounded on the way in, in a reused buffer: no allocation
    // per line either (a hostile client's 4 MiB name must not cost one per poll).
    let long_name = |i: usize| format!("{}-{i}", "n".repeat(300));
    let long_user = format!("user-{}", "\u{e9}".repeat(150));
    let mut hostile = String::new();
    for i in 0..5_000 {
        hostile.push_str(&format!(
            "id={i} addr=10.0.{}.{}:4000 fd=8 name={} age=100 idle=5 flags=N db=0 sub=0 psub=0 omem=0 tot-mem=1000 cmd=get user={long_user}\n",
            i / 250,
            i % 250,
            long_name(i % 40)
        ));
    }
    let mut agg = Aggregator::new(60);
    agg.set_parallel(false);
    let warm = agg.summarize(&hostile, 50);
    assert_eq!(warm.truncated_values, 10_000);
    let per_line = allocations(|| {
        agg.begin();
        for entry in lines(&hostile) {
            match entry {
                Ok(e) => agg.add(&e),
                Err(_) => agg.add_error(),
            }
        }
    });
    assert_eq!(
        per_line, 0,
        "parse + aggregate of 5,000 warm lines with long values allocated {per_line} times"
    );

    // The chunked walk (src/redis/chunked.rs) feeds replies of up to 500 lines and collects their ids
    // into a vector kept between polls: nothing per line either once warm.
    let chunk = synthetic::client_list(500, 50, 40);
    let mut agg = Aggregator::new(60);
    let mut ids = Vec::new();
    for _ in 0..2 {
        agg.begin();
        ids.clear();
        for _ in 0..40 {
            agg.add_chunk(&chunk, &mut ids);
        }
        agg.finish(50);
    }
    let per_line = allocations(|| {
        agg.begin();
        ids.clear();
        for _ in 0..40 {
            agg.add_chunk(&chunk, &mut ids);
        }
    });
    assert_eq!(ids.len(), 20_000);
    assert_eq!(
        per_line, 0,
        "40 warm chunks of 500 lines allocated {per_line} times"
    );

    // With the identity layer on (src/identity): the workload dimension's maps are warm like
    // the others, so still nothing per line; and a whole snapshot costs the same whatever its
    // line count.
    let mut agg = Aggregator::new(60);
    agg.set_parallel(false);
    agg.set_identity(Some(identity_of(&reply)), 2_000_000_000);
    let warm = agg.summarize(&reply, 50);
    assert!(warm
        .by_workload
        .iter()
        .any(|(k, _)| k.starts_with("Deployment ")));
    let per_line = allocations(|| {
        agg.begin();
        for entry in lines(&reply) {
            match entry {
                Ok(e) => agg.add(&e),
                Err(_) => agg.add_error(),
            }
        }
    });
    agg.finish(50);
    assert_eq!(
        per_line, 0,
        "with identity on, 20,000 warm lines allocated {per_line} times"
    );
    let per_snapshot = |agg: &mut Aggregator, reply: &str| {
        agg.summarize(reply, 50);
        allocations(|| {
            agg.summarize(reply, 50);
        })
    };
    let n_small = per_snapshot(&mut agg, &small);
    let n_large = per_snapshot(&mut agg, &reply);
    assert_eq!(
        n_small, n_large,
        "with identity on, allocations grew with the line count: {n_small} for 2k, {n_large} for 20k"
    );
}

/// Every source address of `reply` as a pod of one of 20 Deployments.
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
        let n = pods.len() % 20;
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

/// What an aggregator holds: the live bytes its drop gives back.
fn held(agg: Aggregator) -> u64 {
    let before = live();
    drop(agg);
    u64::try_from(before - live()).unwrap_or(0)
}

/// Issue 20: an aggregator that once saw a large population gives the capacity back after a
/// small reply (a fleet of idle targets stays small), and then, polled with the same small
/// population, reaches a fixed size: no allocation growth from poll to poll.
#[test]
fn a_small_reply_gives_back_what_a_large_one_left() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let large = synthetic::client_list(20_000, 500, 40);
    let small = synthetic::client_list(40, 4, 4);
    assert!(small.len() < redis_clients_exporter::analysis::aggregate::SHRINK_BELOW_BYTES);
    let mut only_small = Aggregator::new(60);
    only_small.set_parallel(false);
    let mut was_large = Aggregator::new(60);
    was_large.set_parallel(false);
    was_large.summarize(&large, 50);
    for _ in 0..3 {
        only_small.summarize(&small, 50);
        was_large.summarize(&small, 50);
    }
    let n1 = allocations(|| {
        was_large.summarize(&small, 50);
    });
    let n2 = allocations(|| {
        was_large.summarize(&small, 50);
    });
    assert_eq!(n1, n2, "a steady small population keeps allocating more");
    // The same through the poller's path (src/redis/chunked.rs feeds the sink; the poller
    // finishes): it gives the capacity back too.
    let mut listed = Aggregator::new(60);
    listed.set_parallel(false);
    for reply in [&large, &small, &small] {
        listed.begin();
        listed.add_reply(reply);
        listed.finish(50);
    }
    let (small_held, was_large_held) = (held(only_small), held(was_large));
    let listed_held = held(listed);
    // A margin for the allocator's own rounding, far below the megabytes the large
    // population's maps took.
    assert!(
        was_large_held < small_held + 64 * 1024,
        "after a small reply the aggregator still holds {was_large_held} bytes (one that only saw small ones: {small_held})"
    );
    assert!(
        listed_held < small_held + 64 * 1024,
        "after a small listing the aggregator still holds {listed_held} bytes (one that only saw small ones: {small_held})"
    );
}
