//! The parsers against real captures from every server version of the matrix: Redis 6.2.14,
//! 7.0.15, 7.2.4, 7.4.1, 8.2.3 (also with io-threads 4), Valkey 8.1.8 and 9.1.2 (also with
//! io-threads 4), each a primary with ~35 connections of every kind and its replica
//! (tests/fixtures/versions/README.md says how each was captured).
//!
//! What the parser must find is computed here independently, by plain splitting of each line
//! into `key=value` words, never by calling the parser.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use redis_clients_exporter::analysis::aggregate::{Aggregator, ClientListSummary, UNNAMED};
use redis_clients_exporter::redis::client_list::{lines, ClientEntry, ClientType, Flag, Parser};
use redis_clients_exporter::redis::info::Info;

/// Every capture folder. Listed rather than discovered, so that a lost folder fails the tests.
const CAPTURES: [&str; 9] = [
    "redis-6.2.14",
    "redis-7.0.15",
    "redis-7.2.4",
    "redis-7.4.1",
    "redis-8.2.3",
    "redis-8.2.3-iothreads4",
    "valkey-8.1.8",
    "valkey-9.1.2",
    "valkey-9.1.2-iothreads4",
];

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/versions")
}

fn read(capture: &str, file: &str) -> String {
    let path = dir().join(capture).join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// ("redis" or "valkey", "8.2.3") from a folder name such as `redis-8.2.3-iothreads4`.
fn product_version(capture: &str) -> (&str, &str) {
    let mut parts = capture.split('-');
    let product = parts.next().expect("product");
    let version = parts.next().expect("version");
    (product, version)
}

fn major_minor(version: &str) -> (u32, u32) {
    let mut p = version
        .split('.')
        .map(|n| n.parse::<u32>().expect("number"));
    (p.next().expect("major"), p.next().expect("minor"))
}

/// A CLIENT LIST line as `key -> value`, by splitting on ' ' and at the first '='.
fn words(line: &str) -> BTreeMap<&str, &str> {
    line.trim_end_matches('\r')
        .split(' ')
        .filter(|w| !w.is_empty())
        .map(|w| w.split_once('=').expect("every CLIENT LIST word has '='"))
        .collect()
}

fn client_list_lines(text: &str) -> Vec<&str> {
    text.lines()
        .map(|l| l.trim_end_matches('\r'))
        .filter(|l| !l.is_empty())
        .collect()
}

fn num(w: &BTreeMap<&str, &str>, key: &str) -> Option<u64> {
    w.get(key)
        .map(|v| v.parse().unwrap_or_else(|_| panic!("{key}={v}")))
}

/// Every field the parser keeps, compared with the line's own words.
fn assert_entry_matches(e: &ClientEntry<'_>, w: &BTreeMap<&str, &str>, ctx: &str) {
    let text = |k: &str| w.get(k).copied();
    assert_eq!(e.id, num(w, "id"), "id: {ctx}");
    assert_eq!(Some(e.addr), text("addr"), "addr: {ctx}");
    assert_eq!(e.laddr, text("laddr"), "laddr: {ctx}");
    assert_eq!(e.name, text("name"), "name: {ctx}");
    assert_eq!(e.age, num(w, "age"), "age: {ctx}");
    assert_eq!(e.idle, num(w, "idle"), "idle: {ctx}");
    assert_eq!(e.flags, text("flags"), "flags: {ctx}");
    assert_eq!(e.db, num(w, "db"), "db: {ctx}");
    assert_eq!(e.sub, num(w, "sub"), "sub: {ctx}");
    assert_eq!(e.psub, num(w, "psub"), "psub: {ctx}");
    assert_eq!(e.ssub, num(w, "ssub"), "ssub: {ctx}");
    assert_eq!(e.omem, num(w, "omem"), "omem: {ctx}");
    assert_eq!(e.tot_mem, num(w, "tot-mem"), "tot-mem: {ctx}");
    assert_eq!(e.cmd, text("cmd"), "cmd: {ctx}");
    assert_eq!(e.user, text("user"), "user: {ctx}");
    assert_eq!(e.resp, num(w, "resp"), "resp: {ctx}");
    assert_eq!(e.lib_name, text("lib-name"), "lib-name: {ctx}");
}

/// What a CLIENT LIST capture holds, counted from its words.
#[derive(Debug, Default)]
struct Expected {
    lines: u64,
    by_type: [u64; 4],
    by_flag: [u64; Flag::ALL.len()],
    by_name: BTreeMap<String, u64>,
    by_command: BTreeMap<String, u64>,
    by_user: BTreeMap<String, u64>,
    by_source: BTreeMap<String, u64>,
    subscriptions: [u64; 3],
    memory: u64,
    output: u64,
}

fn expected(text: &str) -> Expected {
    let mut x = Expected::default();
    for line in client_list_lines(text) {
        let w = words(line);
        x.lines += 1;
        let flags = w["flags"];
        let subs = [
            num(&w, "sub").unwrap_or(0),
            num(&w, "psub").unwrap_or(0),
            num(&w, "ssub").unwrap_or(0),
        ];
        let ty = if flags.contains('S') {
            ClientType::Replica
        } else if flags.contains('M') {
            ClientType::Master
        } else if flags.contains('P') || subs.iter().any(|&n| n > 0) {
            ClientType::Pubsub
        } else {
            ClientType::Normal
        };
        x.by_type[ty as usize] += 1;
        for (i, flag) in Flag::ALL.iter().enumerate() {
            if flags.contains(char::from(flag.letter())) {
                x.by_flag[i] += 1;
            }
        }
        let name = match w["name"] {
            "" => UNNAMED,
            n => n,
        };
        *x.by_name.entry(name.to_string()).or_default() += 1;
        *x.by_command.entry(w["cmd"].to_string()).or_default() += 1;
        *x.by_user.entry(w["user"].to_string()).or_default() += 1;
        // Loopback IPv4 only in these captures: the source is the address without its port.
        let (ip, _port) = w["addr"].rsplit_once(':').expect("ip:port");
        *x.by_source.entry(ip.to_string()).or_default() += 1;
        for (total, n) in x.subscriptions.iter_mut().zip(subs) {
            *total += n;
        }
        x.memory += num(&w, "tot-mem").expect("tot-mem");
        x.output += num(&w, "omem").expect("omem");
    }
    x
}

fn summarize(text: &str) -> ClientListSummary {
    // A top K far above the number of keys, so nothing is folded into `other`.
    Aggregator::new(60).summarize(text, 1000)
}

fn as_map<V: Copy>(v: &[(String, V)], f: impl Fn(V) -> u64) -> BTreeMap<String, u64> {
    v.iter().map(|(k, s)| (k.clone(), f(*s))).collect()
}

fn client_list_files() -> Vec<(String, String)> {
    CAPTURES
        .iter()
        .flat_map(|c| {
            ["client_list.txt", "replica_client_list.txt"].map(|f| (format!("{c}/{f}"), read(c, f)))
        })
        .collect()
}

#[test]
fn every_line_of_every_capture_parses_into_its_own_words() {
    let mut total = 0;
    for (file, text) in client_list_files() {
        let raw = client_list_lines(&text);
        let parsed: Vec<_> = lines(&text).collect();
        assert_eq!(parsed.len(), raw.len(), "{file}");
        for (line, entry) in raw.iter().zip(&parsed) {
            let ctx = format!("{file}: {line}");
            let e = entry.as_ref().unwrap_or_else(|err| panic!("{err}: {ctx}"));
            assert_entry_matches(e, &words(line), &ctx);
            total += 1;
        }
    }
    // 35 lines per primary, 2 per replica, 9 captures.
    assert_eq!(total, 9 * (35 + 2));
}

#[test]
fn counts_of_every_capture_match_its_lines() {
    for (file, text) in client_list_files() {
        let x = expected(&text);
        let s = summarize(&text);
        assert_eq!(s.parse_errors, 0, "{file}");
        assert_eq!(s.connections, x.lines, "{file}");
        assert_eq!(s.by_type.counts(), x.by_type, "types of {file}");
        assert_eq!(s.by_flag.counts(), x.by_flag, "flags of {file}");
        assert_eq!(s.subscriptions, x.subscriptions, "subscriptions of {file}");
        assert_eq!(s.output_buffer_bytes, x.output, "omem of {file}");
        assert_eq!(as_map(&s.by_name, |g| g.connections), x.by_name, "{file}");
        assert_eq!(as_map(&s.by_command, |n| n), x.by_command, "{file}");
        assert_eq!(as_map(&s.by_user, |n| n), x.by_user, "{file}");
        assert_eq!(
            as_map(&s.by_source, |g| g.connections),
            x.by_source,
            "{file}"
        );
        assert_eq!(
            s.by_source.iter().map(|(_, g)| g.memory_bytes).sum::<u64>(),
            x.memory,
            "tot-mem of {file}"
        );
        assert_eq!(s.distinct_sources, x.by_source.len() as u64, "{file}");
    }
}

/// The scenario every primary was captured in, as the README tells it: the same kinds of
/// connection on every version, so the counts agree across versions.
#[test]
fn every_primary_shows_the_captured_scenario() {
    for c in CAPTURES {
        let text = read(c, "client_list.txt");
        let x = expected(&text);
        let s = summarize(&text);
        let (_, version) = product_version(c);
        let flag = |label: &str| {
            let f = Flag::ALL
                .into_iter()
                .find(|f| f.as_str() == label)
                .expect(label);
            s.by_flag[f]
        };
        assert_eq!(s.connections, 35, "{c}");
        assert_eq!(s.by_type[ClientType::Replica], 1, "{c}");
        assert_eq!(s.by_type[ClientType::Master], 0, "{c}");
        assert_eq!(flag("blocked"), 3, "{c}");
        assert_eq!(flag("multi"), 1, "{c}");
        assert_eq!(flag("tracking"), 1, "{c}");
        // Shard channels (SSUBSCRIBE) exist from 7.0 on.
        let shard = u64::from(major_minor(version) >= (7, 0));
        assert_eq!(s.subscriptions[2], shard, "{c}");
        assert_eq!(s.by_type[ClientType::Pubsub], x.by_type[1], "{c}");
        assert!(s.by_type[ClientType::Pubsub] >= 5, "{c}");
        let names = as_map(&s.by_name, |g| g.connections);
        for (name, n) in [("orders-api", 8), ("billing-worker", 6)] {
            assert_eq!(names.get(name), Some(&n), "{c}: {names:?}");
        }
    }
}

/// `cmd=` of the connection that ran CLIENT LIST: `client` on 6.2, `client|list` from 7.0 on
/// (subcommands joined by '|'), as docs/metrics.md warns dashboards grouping by command.
#[test]
fn the_client_list_command_is_named_by_version() {
    for c in CAPTURES {
        let (_, version) = product_version(c);
        let want = if major_minor(version) >= (7, 0) {
            "client|list"
        } else {
            "client"
        };
        for f in ["client_list.txt", "replica_client_list.txt"] {
            let s = summarize(&read(c, f));
            let cmds = as_map(&s.by_command, |n| n);
            assert!(cmds.contains_key(want), "{c}/{f}: {cmds:?}");
            let other = if want == "client" {
                "client|list"
            } else {
                "client"
            };
            assert!(!cmds.contains_key(other), "{c}/{f}: {cmds:?}");
        }
    }
}

/// `lib-name=` (CLIENT SETINFO) is in every line from Redis 7.2 and in Valkey, and the
/// connections that set it are read with their library; older servers have no such field.
#[test]
fn lib_name_is_read_where_the_server_has_it() {
    for c in CAPTURES {
        let (product, version) = product_version(c);
        let has = product == "valkey" || major_minor(version) >= (7, 2);
        let text = read(c, "client_list.txt");
        let mut set = 0;
        for (line, e) in client_list_lines(&text).iter().zip(lines(&text)) {
            let e = e.expect("parses");
            assert_eq!(e.lib_name.is_some(), has, "{c}: {line}");
            let independent = words(line).get("lib-name").copied();
            assert_eq!(e.lib_name, independent, "{c}: {line}");
            if e.lib_name.is_some_and(|l| !l.is_empty()) {
                set += 1;
            }
        }
        assert_eq!(set, if has { 4 } else { 0 }, "{c}");
    }
}

/// One parser fed the lines of every version in turn (one learned layout after another, as
/// when a target is upgraded in place) still reads every field.
#[test]
fn one_parser_relearns_across_every_layout() {
    let files = client_list_files();
    let all: Vec<Vec<&str>> = files.iter().map(|(_, t)| client_list_lines(t)).collect();
    let longest = all.iter().map(Vec::len).max().unwrap_or(0);
    let mut parser = Parser::new();
    let mut seen = 0;
    // Round robin: every line comes after one of another version.
    for i in 0..longest {
        for (f, ls) in all.iter().enumerate() {
            if let Some(line) = ls.get(i) {
                let ctx = format!("{}: {line}", files[f].0);
                let e = parser
                    .parse(line)
                    .unwrap_or_else(|err| panic!("{err}: {ctx}"));
                assert_entry_matches(&e, &words(line), &ctx);
                seen += 1;
            }
        }
    }
    assert_eq!(seen, 9 * 37);
}

/// INFO `key:value` lines, split independently of the parser.
fn info_words(text: &str) -> BTreeMap<&str, &str> {
    text.lines()
        .map(|l| l.trim_end_matches('\r'))
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once(':'))
        .collect()
}

fn info_num(w: &BTreeMap<&str, &str>, key: &str) -> Option<f64> {
    w.get(key)
        .map(|v| v.parse().unwrap_or_else(|_| panic!("{key}:{v}")))
}

#[test]
fn info_of_every_capture() {
    for c in CAPTURES {
        let (product, version) = product_version(c);
        for (info_file, list_file, role) in [
            ("info.txt", "client_list.txt", "master"),
            ("replica_info.txt", "replica_client_list.txt", "slave"),
        ] {
            let ctx = format!("{c}/{info_file}");
            let text = read(c, info_file);
            let w = info_words(&text);
            let i = Info::parse(&text);
            for (field, got) in [
                ("connected_clients", i.connected_clients),
                ("maxclients", i.maxclients),
                ("cluster_connections", i.cluster_connections),
                ("blocked_clients", i.blocked_clients),
                ("tracking_clients", i.tracking_clients),
                ("connected_slaves", i.connected_slaves),
                ("total_connections_received", i.total_connections_received),
                ("rejected_connections", i.rejected_connections),
                ("used_memory", i.used_memory),
                ("uptime_in_seconds", i.uptime_in_seconds),
            ] {
                // Every version of the matrix, 6.2 included, reports each of these.
                let want = info_num(&w, field);
                assert!(want.is_some(), "{ctx} has no {field}");
                assert_eq!(got, want, "{field} of {ctx}");
            }
            assert_eq!(i.role.as_deref(), Some(role), "{ctx}");
            assert_eq!(i.role.as_deref(), w.get("role").copied(), "{ctx}");
            assert_eq!(i.redis_version.as_deref(), w.get("redis_version").copied());
            assert_eq!(i.redis_mode.as_deref(), Some("standalone"), "{ctx}");
            // The product and version are the folder's, whatever redis_version says.
            assert_eq!(i.server(), Some((product, version)), "{ctx}");
            if product == "valkey" {
                assert_eq!(i.redis_version.as_deref(), Some("7.2.4"), "{ctx}");
                assert_eq!(i.server_name.as_deref(), Some("valkey"), "{ctx}");
            } else {
                assert_eq!(i.redis_version.as_deref(), Some(version), "{ctx}");
                assert_eq!(i.server_name, None, "{ctx}");
            }
            // What counts against maxclients is exactly the lines of CLIENT LIST taken with
            // it: clients plus the replica link.
            let listed = client_list_lines(&read(c, list_file)).len() as f64;
            assert_eq!(i.limit_connections(), Some(listed), "{ctx}");
        }
        let primary = Info::parse(&read(c, "info.txt"));
        assert_eq!(primary.maxclients, Some(321.0), "{c}");
        assert_eq!(primary.connected_slaves, Some(1.0), "{c}");
        assert_eq!(primary.blocked_clients, Some(3.0), "{c}");
        assert_eq!(primary.tracking_clients, Some(1.0), "{c}");
        assert_eq!(primary.cluster_connections, Some(0.0), "{c}");
    }
}
