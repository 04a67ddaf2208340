//! Property tests of the parsers with a fixed seed (deterministic from run to run: no
//! PROPTEST_* variable, no persisted failures, no time or OS randomness).
//!
//! Inputs: arbitrary strings, lossy-UTF-8 byte soups, and structured mutations of real
//! CLIENT LIST lines (tests/fixtures/client_list_redis7.0.txt): fields dropped, duplicated,
//! swapped, truncated, '=' and spaces inserted, numbers at and past u64::MAX.
//!
//! Properties:
//! - nothing panics (`TestRunner` catches a panic and reports the shrunk input);
//! - `ClientEntry::parse` agrees with a naive split-on-spaces reference parser (the real one
//!   finds spaces eight bytes at a time, which is where an off-by-one would hide);
//! - `Aggregator::summarize`: `connections + parse_errors` is the number of non-empty lines,
//!   every partition (source, name, user, command, type) sums to `connections`, every top-K
//!   list has at most K + 1 entries with `other` last, the kept entries agree with counts taken
//!   from the lines directly, and an aggregator reused across snapshots (as the poller reuses
//!   it) gives exactly what a fresh one gives;
//! - `Info::parse` never yields a non-finite number and reads back what a generated reply says.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::cell::RefCell;
use std::collections::BTreeMap;

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};

use redis_clients_exporter::analysis::aggregate::{Aggregator, ClientListSummary, OTHER};
use redis_clients_exporter::redis::client_list::{lines, ClientEntry, ParseError, Parser};
use redis_clients_exporter::redis::info::{looks_fd_clamped, Info};

const CASES: u32 = 2000;
const SEED: [u8; 32] = *b"redis-clients-exporter fuzz seed";

fn runner() -> TestRunner {
    let config = Config {
        cases: CASES,
        failure_persistence: None,
        rng_algorithm: RngAlgorithm::ChaCha,
        ..Config::default()
    };
    TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &SEED))
}

fn check<S: Strategy>(strategy: S, test: impl Fn(S::Value) -> Result<(), TestCaseError>)
where
    S::Value: std::fmt::Debug,
{
    if let Err(e) = runner().run(&strategy, test) {
        panic!("{e}");
    }
}

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn fixture_lines() -> Vec<String> {
    fixture("client_list_redis7.0.txt")
        .lines()
        .map(str::to_string)
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Inputs

/// Strings dense in the characters that matter to the parsers, with multi-byte characters
/// whose UTF-8 bytes include 0x20/0xA0-style patterns to tempt the SWAR space search.
fn parser_alphabet() -> impl Strategy<Value = String> {
    const TOKENS: &[&str] = &[
        " ",
        " ",
        " ",
        "=",
        "=",
        ":",
        "\r",
        "\n",
        "[",
        "]",
        "/",
        ".",
        ",",
        "|",
        "(",
        ")",
        "-",
        "_",
        "0",
        "1",
        "7",
        "9",
        "a",
        "e",
        "x",
        "N",
        "P",
        "S",
        "U",
        "b",
        "addr=",
        "id=",
        "idle=",
        "age=",
        "name=",
        "flags=",
        "sub=",
        "psub=",
        "tot-mem=",
        "cmd=",
        "user=",
        "127.0.0.1:",
        "[::1]:",
        "\u{a0}",
        "\u{2020}",
        "\u{20ac}",
        "é",
        "\u{1F600}",
    ];
    prop::collection::vec(prop::sample::select(TOKENS), 0..120).prop_map(|t| t.concat())
}

/// Arbitrary text: any Unicode, the parser alphabet, or bytes made text with lossy UTF-8.
fn soup() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        parser_alphabet(),
        prop::collection::vec(any::<u8>(), 0..400)
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
    ]
}

/// Values that stress number parsing: at and past u64::MAX, signs, padding, non-ASCII digits.
fn weird_value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("18446744073709551615".to_string()), // u64::MAX
        Just("18446744073709551616".to_string()), // u64::MAX + 1
        Just("99999999999999999999999".to_string()),
        Just("00000000000000000000001".to_string()),
        Just("9223372036854775808".to_string()),
        "[0-9]{1,25}",
        small_weird_value(),
    ]
}

/// Like [`weird_value`], but no number that parses above 10^12: the sums over a generated
/// reply (under 16 lines, a few duplicated fields each) cannot overflow a u64. (Values whose sums overflow are the subject of
/// `summarize_does_not_overflow_on_huge_values`.)
fn small_weird_value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("999999999999".to_string()),
        Just("000000000000000000001".to_string()), // 21 characters: refused
        Just("-1".to_string()),
        Just("+1".to_string()),
        Just("0x10".to_string()),
        Just("1e3".to_string()),
        Just("".to_string()),
        Just("=".to_string()),
        Just("١٢".to_string()),
        "[0-9]{1,12}",
        "[0-9]{21,25}",
        "[^ \n0-9]{0,12}",
    ]
}

#[derive(Debug, Clone)]
enum Mutation {
    Drop(usize),
    Duplicate(usize),
    Swap(usize, usize),
    Truncate(usize),
    InsertAt(usize, &'static str),
    SetValue(usize, String),
    InsertText(usize, String),
}

fn mutation(huge: bool) -> impl Strategy<Value = Mutation> {
    let value = if huge {
        weird_value().boxed()
    } else {
        small_weird_value().boxed()
    };
    prop_oneof![
        any::<usize>().prop_map(Mutation::Drop),
        any::<usize>().prop_map(Mutation::Duplicate),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::Swap(a, b)),
        any::<usize>().prop_map(Mutation::Truncate),
        (
            any::<usize>(),
            prop::sample::select(vec!["=", " ", "  ", "==", " =", "= ", "\r", "\t", "\u{a0}"])
        )
            .prop_map(|(a, s)| Mutation::InsertAt(a, s)),
        (any::<usize>(), value).prop_map(|(a, v)| Mutation::SetValue(a, v)),
        (any::<usize>(), "[^\n0-9]{0,10}").prop_map(|(a, v)| Mutation::InsertText(a, v)),
    ]
}

fn floor_boundary(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn mutate(line: &str, muts: &[Mutation]) -> String {
    let mut fields: Vec<String> = line.split(' ').map(str::to_string).collect();
    for m in muts {
        let n = fields.len().max(1);
        match m {
            Mutation::Drop(i) => {
                if !fields.is_empty() {
                    fields.remove(i % n);
                }
            }
            Mutation::Duplicate(i) => {
                if !fields.is_empty() {
                    let f = fields[i % n].clone();
                    fields.insert(i % n, f);
                }
            }
            Mutation::Swap(a, b) => {
                if !fields.is_empty() {
                    fields.swap(a % n, b % n);
                }
            }
            Mutation::Truncate(at) => {
                let joined = fields.join(" ");
                let cut = floor_boundary(&joined, at % (joined.len() + 1));
                fields = joined[..cut].split(' ').map(str::to_string).collect();
            }
            Mutation::InsertAt(at, s) => fields = insert_text(&fields, *at, s),
            Mutation::InsertText(at, s) => fields = insert_text(&fields, *at, s),
            Mutation::SetValue(i, v) => {
                if !fields.is_empty() {
                    let f = &mut fields[i % n];
                    let key = f.split_once('=').map_or(f.as_str(), |(k, _)| k).to_string();
                    *f = format!("{key}={v}");
                }
            }
        }
    }
    fields.join(" ")
}

fn insert_text(fields: &[String], at: usize, s: &str) -> Vec<String> {
    let mut joined = fields.join(" ");
    let pos = floor_boundary(&joined, at % (joined.len() + 1));
    joined.insert_str(pos, s);
    joined.split(' ').map(str::to_string).collect()
}

/// A fixture line with a few mutations; `huge` allows numbers up to and past u64::MAX.
fn mutated_line(huge: bool) -> impl Strategy<Value = String> {
    let base = fixture_lines();
    (
        prop::sample::select(base),
        prop::collection::vec(mutation(huge), 0..6),
    )
        .prop_map(|(line, muts)| mutate(&line, &muts))
}

/// A CLIENT LIST reply: mostly mutated fixture lines, some clean ones, some junk, joined by
/// LF or CRLF, with blank lines here and there.
fn reply() -> impl Strategy<Value = String> {
    let base = fixture_lines();
    let line = prop_oneof![
        4 => mutated_line(false),
        3 => prop::sample::select(base),
        1 => soup().prop_map(|s| s.replace('\n', " ")),
        1 => Just(String::new()),
    ];
    (
        prop::collection::vec(line, 0..16),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(lines, crlf, trailing)| {
            let sep = if crlf { "\r\n" } else { "\n" };
            let mut s = lines.join(sep);
            if trailing {
                s.push_str(sep);
            }
            s
        })
}

// ---------------------------------------------------------------------------------------------
// The reference CLIENT LIST line parser: split on ' ', one field at a time, in order.

fn ref_num(field: &'static str, v: &str) -> Result<u64, ParseError> {
    // Digits only (no sign), and at most 20 of them (u64::MAX has 20): the real parser refuses
    // longer values even when they are zero-padded, which Redis never does.
    if v.is_empty() || v.len() > 20 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ParseError::BadNumber(field));
    }
    v.parse::<u64>().map_err(|_| ParseError::BadNumber(field))
}

fn reference_parse(line: &str) -> Result<ClientEntry<'_>, ParseError> {
    let line = line.strip_suffix('\r').unwrap_or(line);
    let mut e = ClientEntry::default();
    let mut have_addr = false;
    for field in line.split(' ').filter(|f| !f.is_empty()) {
        let (key, value) = field.split_once('=').ok_or(ParseError::FieldWithoutValue)?;
        match key {
            "id" => e.id = Some(ref_num("id", value)?),
            "addr" => {
                e.addr = value;
                have_addr = true;
            }
            "laddr" => e.laddr = Some(value),
            "name" => e.name = Some(value),
            "age" => e.age = Some(ref_num("age", value)?),
            "idle" => e.idle = Some(ref_num("idle", value)?),
            "flags" => e.flags = Some(value),
            "db" => e.db = Some(ref_num("db", value)?),
            "sub" => e.sub = Some(ref_num("sub", value)?),
            "psub" => e.psub = Some(ref_num("psub", value)?),
            "ssub" => e.ssub = Some(ref_num("ssub", value)?),
            "omem" => e.omem = Some(ref_num("omem", value)?),
            "tot-mem" => e.tot_mem = Some(ref_num("tot-mem", value)?),
            "cmd" => e.cmd = Some(value),
            "user" => e.user = Some(value),
            "resp" => e.resp = Some(ref_num("resp", value)?),
            "lib-name" => e.lib_name = Some(value),
            _ => {}
        }
    }
    if !have_addr {
        return Err(ParseError::MissingAddr);
    }
    Ok(e)
}

fn check_line(line: &str) -> Result<(), TestCaseError> {
    let got = ClientEntry::parse(line);
    prop_assert_eq!(&got, &reference_parse(line), "line {:?}", line);
    if let Ok(e) = got {
        prop_assert!(line.contains(e.addr));
        let ip = e.source_ip();
        prop_assert!(
            ip == "unix" || e.addr.contains(ip),
            "{:?} from {:?}",
            ip,
            e.addr
        );
        // sub + psub + ssub overflows on absurd values (see
        // `summarize_does_not_overflow_on_huge_values`); everything else must hold.
        let subs = [e.sub, e.psub, e.ssub].map(|v| v.unwrap_or(0));
        if subs
            .iter()
            .try_fold(0u64, |a, &b| a.checked_add(b))
            .is_some()
        {
            let _ = e.client_type();
        }
        for flag in redis_clients_exporter::redis::client_list::Flag::ALL {
            let _ = e.has_flag(flag.letter());
        }
    }
    Ok(())
}

#[test]
fn client_entry_parse_matches_the_reference_on_soup() {
    check(soup(), |s| {
        for line in s.split('\n') {
            check_line(line)?;
        }
        check_line(&s)
    });
}

#[test]
fn client_entry_parse_matches_the_reference_on_mutated_fixture_lines() {
    check(mutated_line(true), |line| check_line(&line));
}

/// A `Parser` reused across lines (as the aggregator reuses one) has learned the key positions
/// of earlier, differently mutated lines and of a real line: its predictions must only ever be
/// checked, so it agrees with the reference too, including on a line seen just before (every
/// key predicted).
#[test]
fn a_parser_that_learned_earlier_lines_matches_the_reference() {
    let parser = RefCell::new(Parser::new());
    let real = fixture_lines();
    check((mutated_line(true), soup()), |(line, soup)| {
        let mut p = parser.borrow_mut();
        for l in [
            real[0].as_str(),
            &line,
            &line,
            soup.as_str(),
            &line,
            &soup,
            &soup,
        ] {
            prop_assert_eq!(&p.parse(l), &reference_parse(l), "line {:?}", l);
        }
        Ok(())
    });
}

/// A line generated from known values parses back to them; a number past u64::MAX is a
/// `BadNumber`, not a wrapped or truncated value.
#[test]
fn client_entry_round_trips_generated_lines() {
    let strategy = (
        any::<u64>(),
        prop::sample::select(vec![
            "10.1.2.3:6000",
            "[::1]:41114",
            "::1:41114",
            "/tmp/r.sock:0",
        ]),
        "[a-zA-Z0-9:._=-]{0,20}",
        any::<u64>(),
        "[NPSMbxtUrAe]{1,4}",
        prop::option::of(any::<u128>()),
    );
    check(strategy, |(id, addr, name, idle, flags, big)| {
        let mut line = format!("id={id} addr={addr} name={name} idle={idle} flags={flags}");
        if let Some(big) = big {
            line.push_str(&format!(" age={big}"));
        }
        let parsed = ClientEntry::parse(&line);
        match big {
            Some(b) if b > u128::from(u64::MAX) => {
                prop_assert_eq!(parsed, Err(ParseError::BadNumber("age")));
            }
            _ => {
                let e = parsed.map_err(|e| TestCaseError::fail(format!("{e}: {line}")))?;
                prop_assert_eq!(e.id, Some(id));
                prop_assert_eq!(e.addr, addr);
                prop_assert_eq!(e.name, Some(name.as_str()));
                prop_assert_eq!(e.idle, Some(idle));
                prop_assert_eq!(e.flags, Some(flags.as_str()));
                prop_assert_eq!(e.age, big.map(|b| b as u64));
            }
        }
        Ok(())
    });
}

// ---------------------------------------------------------------------------------------------
// lines() and Aggregator::summarize

fn non_empty_lines(reply: &str) -> usize {
    // A line is empty when nothing is left once its terminator (LF or CRLF) is removed.
    reply
        .split('\n')
        .filter(|l| !l.is_empty() && *l != "\r")
        .count()
}

fn check_fold<V>(
    what: &str,
    got: &[(String, V)],
    k: usize,
    reference: &BTreeMap<String, u64>,
    weight: impl Fn(&V) -> u64,
    connections: u64,
) -> Result<(), TestCaseError> {
    prop_assert!(
        got.len() <= k + 1,
        "{}: {} entries for k={}",
        what,
        got.len(),
        k
    );
    let total: u64 = got.iter().map(|(_, v)| weight(v)).sum();
    prop_assert_eq!(
        total,
        connections,
        "{} does not sum to the connections",
        what
    );
    let others: Vec<usize> = got
        .iter()
        .enumerate()
        .filter(|(_, (key, _))| key == OTHER)
        .map(|(i, _)| i)
        .collect();
    prop_assert!(others.len() <= 1, "{}: several `other`", what);
    if let Some(&i) = others.first() {
        prop_assert_eq!(i, got.len() - 1, "{}: `other` not last", what);
    }
    let kept = &got[..got.len() - others.len()];
    prop_assert!(kept.len() <= k);
    // Kept entries: real keys with their true counts, largest first, ties by key, and none
    // smaller than anything folded away.
    let mut prev: Option<(u64, &str)> = None;
    for (key, v) in kept {
        let w = weight(v);
        prop_assert_eq!(
            reference.get(key).copied(),
            Some(w),
            "{}: count of {:?}",
            what,
            key
        );
        if let Some((pw, pk)) = prev {
            prop_assert!(pw > w || (pw == w && pk < key.as_str()), "{}: order", what);
        }
        prev = Some((w, key));
    }
    let smallest_kept = kept.last().map(|(_, v)| weight(v));
    for (key, &count) in reference {
        if key != OTHER && !kept.iter().any(|(k2, _)| k2 == key) {
            if let Some(s) = smallest_kept {
                prop_assert!(
                    kept.len() < k || count <= s,
                    "{}: {:?} ({}) folded while a smaller one was kept",
                    what,
                    key,
                    count
                );
            }
            prop_assert!(
                kept.len() == k || key == OTHER,
                "{}: {:?} folded below k",
                what,
                key
            );
        }
    }
    Ok(())
}

fn check_summary(reply: &str, k: usize, s: &ClientListSummary) -> Result<(), TestCaseError> {
    let parsed: Vec<_> = lines(reply).collect();
    prop_assert_eq!(parsed.len(), non_empty_lines(reply));
    prop_assert_eq!(
        s.connections + s.parse_errors,
        non_empty_lines(reply) as u64,
        "connections + parse_errors != non-empty lines"
    );
    let ok: Vec<&ClientEntry<'_>> = parsed.iter().filter_map(|r| r.as_ref().ok()).collect();
    prop_assert_eq!(s.connections, ok.len() as u64);
    prop_assert_eq!(s.by_type.counts().iter().sum::<u64>(), s.connections);

    let mut sources = BTreeMap::new();
    let mut names = BTreeMap::new();
    let mut users = BTreeMap::new();
    let mut commands = BTreeMap::new();
    for e in &ok {
        *sources.entry(e.source_ip().to_string()).or_insert(0u64) += 1;
        let name = e.name.filter(|n| !n.is_empty()).unwrap_or("unnamed");
        *names.entry(name.to_string()).or_insert(0u64) += 1;
        *users
            .entry(e.user.unwrap_or("default").to_string())
            .or_insert(0u64) += 1;
        *commands
            .entry(e.cmd.unwrap_or("NULL").to_string())
            .or_insert(0u64) += 1;
    }
    prop_assert_eq!(s.distinct_sources, sources.len() as u64);
    check_fold(
        "by_source",
        &s.by_source,
        k,
        &sources,
        |v| v.connections,
        s.connections,
    )?;
    check_fold(
        "by_name",
        &s.by_name,
        k,
        &names,
        |v| v.connections,
        s.connections,
    )?;
    check_fold("by_user", &s.by_user, k, &users, |v| *v, s.connections)?;
    check_fold(
        "by_command",
        &s.by_command,
        k,
        &commands,
        |v| *v,
        s.connections,
    )?;
    prop_assert_eq!(
        s.idle.count,
        ok.iter().filter(|e| e.idle.is_some()).count() as u64
    );
    prop_assert_eq!(
        s.age.count,
        ok.iter().filter(|e| e.age.is_some()).count() as u64
    );
    for (_, c) in s.idle.cumulative().chain(s.age.cumulative()) {
        prop_assert!(c <= s.connections);
    }
    Ok(())
}

#[test]
fn lines_never_panics_and_counts_non_empty_lines() {
    check(prop_oneof![soup(), reply()], |r| {
        let n = lines(&r).count();
        prop_assert_eq!(n, non_empty_lines(&r));
        Ok(())
    });
}

/// Summaries of generated replies, from a fresh aggregator and from one reused across all the
/// cases (as a poller reuses its own, with keys that come and go): same result, all invariants.
#[test]
fn summarize_invariants_and_reuse_on_generated_replies() {
    let reused = RefCell::new(Aggregator::new(60));
    let strategy = (
        prop_oneof![4 => reply(), 1 => soup()],
        prop_oneof![Just(0usize), Just(1), 0usize..6, Just(50)],
    );
    check(strategy, |(r, k)| {
        let fresh = Aggregator::new(60).summarize(&r, k);
        check_summary(&r, k, &fresh)?;
        let again = reused.borrow_mut().summarize(&r, k);
        prop_assert_eq!(
            &again,
            &fresh,
            "a reused aggregator disagrees with a fresh one"
        );
        Ok(())
    });
}

/// The same reply summarized twice in a row by the same aggregator gives the same summary,
/// and a different idle threshold only moves idle counts, never the partitions.
#[test]
fn summarize_is_repeatable_and_threshold_only_moves_idle_counts() {
    let strategy = (reply(), 0u64..4000, 0usize..8);
    check(strategy, |(r, threshold, k)| {
        let mut agg = Aggregator::new(threshold);
        let a = agg.summarize(&r, k);
        let b = agg.summarize(&r, k);
        prop_assert_eq!(&a, &b);
        let other = Aggregator::new(threshold + 1).summarize(&r, k);
        prop_assert_eq!(a.connections, other.connections);
        prop_assert_eq!(a.by_type, other.by_type);
        let conns = |s: &redis_clients_exporter::analysis::aggregate::ClientListSummary| {
            s.by_name
                .iter()
                .map(|(k, v)| (k.clone(), v.connections))
                .collect::<Vec<_>>()
        };
        prop_assert_eq!(conns(&a), conns(&other));
        prop_assert!(
            other.idle_by_type.counts().iter().sum::<u64>()
                <= a.idle_by_type.counts().iter().sum::<u64>()
        );
        Ok(())
    });
}

// ---------------------------------------------------------------------------------------------
// INFO

const INFO_NUMBERS: [&str; 10] = [
    "connected_clients",
    "blocked_clients",
    "tracking_clients",
    "cluster_connections",
    "maxclients",
    "connected_slaves",
    "total_connections_received",
    "rejected_connections",
    "used_memory",
    "uptime_in_seconds",
];

fn info_numbers(i: &Info) -> [Option<f64>; 10] {
    [
        i.uptime_in_seconds,
        i.connected_clients,
        i.blocked_clients,
        i.tracking_clients,
        i.cluster_connections,
        i.maxclients,
        i.connected_slaves,
        i.total_connections_received,
        i.rejected_connections,
        i.used_memory,
    ]
}

fn check_info(text: &str) -> Result<(), TestCaseError> {
    let i = Info::parse(text);
    for v in info_numbers(&i).into_iter().flatten() {
        prop_assert!(v.is_finite(), "non-finite value from {:?}", text);
    }
    if let Some(l) = i.limit_connections() {
        prop_assert!(!l.is_nan());
    }
    if let Some(m) = i.maxclients {
        let _ = looks_fd_clamped(m);
    }
    Ok(())
}

#[test]
fn info_parse_never_panics_on_soup() {
    check(soup(), |s| check_info(&s));
}

/// The real INFO reply with lines mutated: values replaced by weird numbers ("inf", "NaN",
/// "1e400", huge, negative), ':' inserted or removed, lines truncated.
#[test]
fn info_parse_on_mutated_real_replies() {
    let base: Vec<String> = fixture("info_everything_redis7.0.txt")
        .split('\n')
        .map(str::to_string)
        .collect();
    let n = base.len();
    let value = prop_oneof![
        weird_value(),
        prop::sample::select(vec![
            "inf", "-inf", "NaN", "1e400", "-1e400", "1e308", "-0", " 12 ", "12\r", "0.5", ":",
        ])
        .prop_map(str::to_string),
    ];
    let edit = (0..n, 0u8..4, value, any::<usize>());
    check(prop::collection::vec(edit, 0..12), move |edits| {
        let mut text = base.clone();
        for (i, op, v, at) in edits {
            let line = &mut text[i];
            match op {
                0 => {
                    if let Some((k, _)) = line.split_once(':') {
                        *line = format!("{k}:{v}\r");
                    }
                }
                1 => line.insert(floor_boundary(line, at % (line.len() + 1)), ':'),
                2 => line.truncate(floor_boundary(line, at % (line.len() + 1))),
                _ => *line = line.replacen(':', "", 1),
            }
        }
        check_info(&text.join("\n"))
    });
}

/// Known keys with generated finite values, in random order among section headers, unknown
/// keys and junk lines, read back exactly (the last occurrence wins, as in the parser).
#[test]
fn info_parse_reads_back_generated_fields() {
    let field = (
        prop::sample::select(INFO_NUMBERS.to_vec()),
        prop_oneof![any::<u32>().prop_map(f64::from), -1e15f64..1e15],
    );
    let noise = prop_oneof![
        Just("# Clients".to_string()),
        Just(String::new()),
        "[a-z_]{1,12}:[ -~]{0,12}",
        "[^:\n]{0,20}",
    ];
    let strategy = (
        prop::collection::vec(field, 0..12),
        prop::collection::vec(noise, 0..12),
        any::<bool>(),
    );
    check(strategy, |(fields, noise, crlf)| {
        let mut out = Vec::new();
        let mut expect: BTreeMap<&str, f64> = BTreeMap::new();
        let mut noise = noise.into_iter();
        for (k, v) in &fields {
            if let Some(n) = noise.next() {
                if INFO_NUMBERS
                    .iter()
                    .all(|k2| !n.starts_with(&format!("{k2}:")))
                {
                    out.push(n);
                }
            }
            out.push(format!("{k}:{v}"));
            expect.insert(k, *v);
        }
        let text = out.join(if crlf { "\r\n" } else { "\n" });
        let i = Info::parse(&text);
        let got = |k: &str| match k {
            "uptime_in_seconds" => i.uptime_in_seconds,
            "connected_clients" => i.connected_clients,
            "blocked_clients" => i.blocked_clients,
            "tracking_clients" => i.tracking_clients,
            "cluster_connections" => i.cluster_connections,
            "maxclients" => i.maxclients,
            "connected_slaves" => i.connected_slaves,
            "total_connections_received" => i.total_connections_received,
            "rejected_connections" => i.rejected_connections,
            "used_memory" => i.used_memory,
            _ => unreachable!(),
        };
        for k in INFO_NUMBERS {
            prop_assert_eq!(got(k), expect.get(k).copied(), "{} in {:?}", k, text);
        }
        check_info(&text)
    });
}

/// The fixed seed really fixes the inputs: two runners draw the same first values.
#[test]
fn the_seed_is_fixed() {
    let draw = || {
        let mut r = runner();
        let s = reply();
        (0..5)
            .map(|_| s.new_tree(&mut r).expect("tree").current())
            .collect::<Vec<_>>()
    };
    assert_eq!(draw(), draw());
}

/// Sums over CLIENT LIST values must not overflow. A value near u64::MAX never comes from a
/// healthy Redis, but a corrupt reply can carry one: in a debug build (or with
/// overflow-checks) the addition panics inside the poller task, which then dies and leaves the
/// target's last state frozen; in a release build it wraps silently (a sum of 0, a pubsub
/// client typed `normal`). Saturating is the expected behaviour.
#[test]
fn summarize_does_not_overflow_on_huge_values() {
    use redis_clients_exporter::redis::client_list::ClientType;
    let max = u64::MAX;
    type Check = fn(&ClientListSummary) -> bool;
    let cases: [(&str, String, Check); 7] = [
        (
            "age sum",
            format!("addr=1.1.1.1:1 age={max}\naddr=1.1.1.1:2 age=1"),
            |s| s.age.sum == u64::MAX,
        ),
        (
            "idle sum",
            format!("addr=1.1.1.1:1 idle={max}\naddr=1.1.1.1:2 idle=1"),
            |s| s.idle.sum == u64::MAX,
        ),
        (
            "client type from sub + psub",
            format!("addr=1.1.1.1:1 sub={max} psub=1"),
            |s| s.by_type[ClientType::Pubsub] == 1,
        ),
        (
            "subscriptions",
            format!("addr=1.1.1.1:1 sub={max}\naddr=1.1.1.1:2 sub=1"),
            |s| s.subscriptions[0] == u64::MAX,
        ),
        (
            "output buffers",
            format!("addr=1.1.1.1:1 omem={max}\naddr=1.1.1.1:2 omem=1"),
            |s| s.output_buffer_bytes == u64::MAX,
        ),
        (
            "memory per source",
            format!("addr=1.1.1.1:1 tot-mem={max}\naddr=1.1.1.1:2 tot-mem=1"),
            |s| s.by_source[0].1.memory_bytes == u64::MAX,
        ),
        (
            "memory folded into other",
            format!("addr=1.1.1.1:1 tot-mem={max}\naddr=1.1.1.2:2 tot-mem=1"),
            |s| s.by_source[0].1.memory_bytes == u64::MAX,
        ),
    ];
    let mut failures = Vec::new();
    for (what, reply, ok) in cases {
        // k = 0 folds every source into `other` (GroupStats::merge).
        match std::panic::catch_unwind(|| Aggregator::new(60).summarize(&reply, 0)) {
            Err(_) => failures.push(format!("{what}: panicked")),
            Ok(s) if !ok(&s) => failures.push(format!("{what}: wrapped, got {s:?}")),
            Ok(_) => {}
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
