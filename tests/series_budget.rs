//! The per-target series budget that README's "Series budget per target" promises: one target
//! renders at most `FIXED + KEYED × (top_k + 1)` series on `/metrics`, whatever its population.
//!
//! One target is polled (as tests/golden.rs does it: `Info::parse`, the `Aggregator`,
//! [`Poller::fold_poll`], no Redis) with replies that show every family at once: the INFO of
//! Valkey 9.1.2 (it reports every client field the exporter reads), `maxmemory-clients` set, a
//! synthetic CLIENT LIST where every client has its own source, name, user, command, library,
//! library version and listening port, more of each than the largest `top_k` tried. Its series
//! are counted per family at several `top_k`: each family is either fixed (the same count at
//! every `top_k`) or keyed (exactly `top_k + 1`), their totals are the constants below, and
//! README and docs/metrics.md state those constants and the values they give. A new per-target family, or a new
//! series in a fixed one, changes a count and fails here until the budget and README say so.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;

use redis_clients_exporter::analysis::aggregate::Aggregator;
use redis_clients_exporter::analysis::history::{History, RETENTION};
use redis_clients_exporter::redis::info::extra::ClientMemoryLimit;
use redis_clients_exporter::redis::info::Info;
use redis_clients_exporter::targets::poller::{PollResult, Poller};
use redis_clients_exporter::targets::state::{ConfigValues, StageDurations, Store, TargetState};
use redis_clients_exporter::web::metrics;

/// Series of one target whatever its population (when every optional value is reported).
/// README.md, "Series budget per target", states this number.
const FIXED: usize = 122;
/// Families with one series per top-K key plus `other`. README.md states this number.
const KEYED: usize = 11;

const TARGET: &str = "budget-target";
const IDLE_THRESHOLD: u64 = 60;
/// Distinct values of every keyed dimension: more than the largest `top_k` tried + 1.
const CLIENTS: usize = 120;

fn read(rel: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Valkey 9.1.2's INFO: every client field the exporter reads (paused_reason, pubsub and
/// watch counts, blocking keys, client eviction, buffer-limit disconnections).
fn info_with_every_field() -> String {
    read("tests/golden/input/valkey-9.1.2/info.txt")
}

/// `CLIENTS` clients, each alone in every keyed dimension, with every field Valkey 9 lists
/// (tot-net-in/out and tot-cmds included, some clients that never ran a command).
fn client_list_every_key_distinct() -> String {
    let mut out = String::new();
    for i in 0..CLIENTS {
        // Unequal counts would not matter (each key is one client); ages and idles vary so the
        // histograms and the idle families have something to show.
        let idle = (i * 37) % 7200;
        let _ = writeln!(
            out,
            "id={id} addr=10.{a}.{b}.7:{sport} laddr=127.0.0.1:{lport} fd={fd} name=svc-{i} age={age} idle={idle} flags=N capa= db=0 sub=0 psub=0 ssub=0 multi=-1 watch=0 qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=1024 rbp=0 obl=0 oll=0 omem=0 tot-mem=22272 events=r cmd=cmd{i} user=user-{i} redir=-1 resp=2 lib-name=lib-{i} lib-ver=1.{i} tot-net-in=88 tot-net-out=77 tot-cmds={cmds}",
            id = i + 10,
            a = i / 200,
            b = i % 200,
            sport = 30000 + i,
            lport = 7000 + i,
            fd = i + 20,
            age = idle + i,
            cmds = i % 3,
        );
    }
    out
}

/// `/metrics` after one successful poll of the target at `top_k`.
fn render(top_k: usize, info: &str, client_list: &str) -> String {
    let mut aggregator = Aggregator::new(IDLE_THRESHOLD);
    let mut history = History::new(RETENTION);
    let mut state = TargetState::default();
    // Counted by the poller's connection layer, which does not run here: a listing was sent
    // (`redis_clients_exporter_client_list_commands` shows only after one).
    state.counters.polls = 1;
    state.counters.client_list_commands = 1;
    state.counters.client_list_last_commands = 1;
    let summary = aggregator.summarize(client_list, top_k);
    assert_eq!(summary.connections as usize, client_list.lines().count());
    let info = Info::parse(info);
    let max = info.maxclients.unwrap_or(10_000.0);
    let result = PollResult {
        info,
        config: ConfigValues {
            available: true,
            maxclients: Some(max),
            timeout: Some(0.0),
            tcp_keepalive: Some(300.0),
            maxmemory_clients: Some(ClientMemoryLimit::Bytes(0.0)),
        },
        config_error: None,
        clients: Some(summary),
        invalid_utf8: [0, 0],
        durations: StageDurations::default(),
    };
    Poller::fold_poll(
        &mut state,
        &mut history,
        result,
        Some(1_800_000_000.0),
        TARGET,
        IDLE_THRESHOLD,
        "redis-cli -h 127.0.0.1 -p 6379",
    );
    assert!(state.diagnosis.is_some(), "no diagnosis after a poll");
    let store = Store::default();
    store.publish(TARGET, state);
    String::from_utf8(metrics::render(&store.snapshot())).expect("metrics are UTF-8")
}

/// The target's series per family (a histogram's buckets, sum and count are its family's).
fn series_per_family(page: &str) -> BTreeMap<String, usize> {
    let mut family = String::new();
    let mut out = BTreeMap::new();
    let label = format!("target=\"{TARGET}\"");
    for line in page.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            family = rest.split(' ').next().unwrap_or("").to_string();
            continue;
        }
        if line.starts_with('#') || !line.contains(&label) {
            continue;
        }
        let name = line.split(['{', ' ']).next().unwrap_or("");
        assert!(
            name.starts_with(family.as_str()),
            "{name} outside its family {family}"
        );
        *out.entry(family.clone()).or_insert(0) += 1;
    }
    out
}

#[test]
fn one_target_reaches_exactly_the_documented_budget_at_every_top_k() {
    let (info, list) = (info_with_every_field(), client_list_every_key_distinct());
    let tops = [1, 5, 50];
    let counts: Vec<BTreeMap<String, usize>> = tops
        .iter()
        .map(|&k| series_per_family(&render(k, &info, &list)))
        .collect();
    let families: Vec<&String> = counts[0].keys().collect();
    for c in &counts[1..] {
        assert_eq!(
            c.keys().collect::<Vec<_>>(),
            families,
            "the families differ with top_k"
        );
    }
    let (mut fixed, mut keyed) = (0, Vec::new());
    for fam in families {
        let per_k: Vec<usize> = counts.iter().map(|c| c[fam]).collect();
        if per_k.iter().all(|&n| n == per_k[0]) {
            fixed += per_k[0];
        } else if per_k.iter().zip(tops).all(|(&n, k)| n == k + 1) {
            keyed.push(fam.as_str());
        } else {
            panic!("{fam}: {per_k:?} series at top_k {tops:?}, neither fixed nor top_k + 1");
        }
    }
    assert_eq!(
        (fixed, keyed.len()),
        (FIXED, KEYED),
        "a target now costs {fixed} + {} × (top_k + 1) series (keyed: {keyed:?}); update FIXED, KEYED and README's \"Series budget per target\"",
        keyed.len(),
    );
    for (k, c) in tops.iter().zip(&counts) {
        let total: usize = c.values().sum();
        assert_eq!(total, FIXED + KEYED * (k + 1), "top_k = {k}");
    }
}

#[test]
fn a_small_target_stays_under_the_budget() {
    // The real Valkey 9.1.2 capture: a handful of clients, fewer keys than top_k.
    let page = render(
        50,
        &read("tests/golden/input/valkey-9.1.2/info.txt"),
        &read("tests/golden/input/valkey-9.1.2/client_list.txt"),
    );
    let total: usize = series_per_family(&page).values().sum();
    assert!(
        total > FIXED / 2,
        "{total}: the target rendered almost nothing"
    );
    assert!(total <= FIXED + KEYED * 51, "{total} series");
}

/// docs/metrics.md states the formula too.
#[test]
fn metrics_reference_states_the_same_formula() {
    let doc = read("docs/metrics.md");
    let doc = doc.split_whitespace().collect::<Vec<_>>().join(" ");
    let want = format!("at most `{FIXED} + {KEYED} × (top_k + 1)` series");
    assert!(
        doc.contains(&want),
        "docs/metrics.md does not say \"{want}\""
    );
}

/// README's paragraph states the constants and what they give at `top_k` 50 and 10.
#[test]
fn readme_states_the_budget_the_code_has() {
    let readme = read("README.md");
    let start = readme
        .find("**Series budget per target.**")
        .expect("README has no \"Series budget per target\" paragraph");
    let para = &readme[start..];
    let para = &para[..para.find("\n\n").unwrap_or(para.len())];
    let para = para.split_whitespace().collect::<Vec<_>>().join(" ");
    for want in [
        format!("most {FIXED} series whatever the population"),
        format!("`{FIXED} + {KEYED} × (top_k + 1)`"),
        format!("{} at the default `top_k = 50`", FIXED + KEYED * 51),
        format!("`top_k = 10`: at most {}", FIXED + KEYED * 11),
        format!("{KEYED} families keyed by"),
    ] {
        assert!(
            para.contains(&want),
            "README's \"Series budget per target\" does not say \"{want}\":\n{para}"
        );
    }
}
