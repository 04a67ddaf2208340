//! Golden outputs: the exact `/metrics` page and the exact diagnosis (JSON as `/diagnose` serves
//! it, and its text, Markdown and HTML renderings) that the daemon publishes after polling the
//! real captures in tests/fixtures and tests/golden/input, compared byte for byte with the files
//! committed in tests/golden/.
//!
//! No Redis runs: each poll's replies go through the code the poller runs on them (`Info::parse`,
//! the target's one `Aggregator`, [`Poller::fold_poll`]), the state is published to a real
//! `Store`, and `/metrics` and the diagnosis are rendered from the store's snapshot. Clock
//! readings are injected: every poll happens at a fixed Unix time and every stage takes a fixed
//! time, so the files change only when the code's behaviour does.
//!
//! A change that alters an output on purpose regenerates the files with
//! `UPDATE_GOLDEN=1 cargo test --test golden`; review the diff of tests/golden/ and commit it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use redis_clients_exporter::analysis::aggregate::Aggregator;
use redis_clients_exporter::analysis::history::{History, RETENTION};
use redis_clients_exporter::config::{self, Overrides};
use redis_clients_exporter::diagnose::redis_cli_for;
use redis_clients_exporter::redis::connection::{PollError, Stage};
use redis_clients_exporter::redis::info::Info;
use redis_clients_exporter::targets::poller::{PollResult, Poller};
use redis_clients_exporter::targets::state::{
    ConfigValues, ErrorKind, Role, StageDurations, Store, TargetState, Topology,
};
use redis_clients_exporter::web::exposition::Format;
use redis_clients_exporter::web::{metrics, render};

/// When the last poll of every case happens (2027-01-15 08:00:00 UTC); earlier polls are
/// offsets from it.
const NOW: f64 = 1_800_000_000.0;

/// What every poll's stages take (the poller measures them; here they are fixed).
const DURATIONS: StageDurations = StageDurations {
    info: 0.001,
    config: 0.002,
    client_list: 0.004,
    aggregate: 0.0005,
    total: 0.0075,
};

/// The configured password of one target: it must appear in no output.
const SECRET: &str = "golden-s3cret-never-shown";

/// What `CONFIG GET maxclients / timeout / tcp-keepalive` answered.
#[derive(Clone, Copy)]
enum Config {
    Read {
        maxclients: f64,
        timeout: f64,
        tcp_keepalive: f64,
    },
    /// CONFIG renamed or forbidden (a managed service): the poll goes on with INFO alone.
    Unavailable,
}

/// One successful poll: its time (seconds before [`NOW`]), the INFO reply, the CONFIG answer,
/// and the CLIENT LIST reply when it was due (`lines` keeps only the first lines, to show a
/// server whose connections grew between two polls).
struct Poll {
    before_now: f64,
    info: String,
    config: Config,
    client_list: Option<(String, Option<usize>)>,
}

struct Case {
    label: String,
    topology: Option<Topology>,
    polls: Vec<Poll>,
}

/// The version captures copied from shared/fixtures/versions (a primary with 35 clients of
/// several services, and its replica).
const VERSIONS: [&str; 9] = [
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

fn read(rel: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn cases() -> Vec<Case> {
    let read_64 = Config::Read {
        maxclients: 64.0,
        timeout: 0.0,
        tcp_keepalive: 300.0,
    };
    let mut cases = vec![
        // The 7.0 primary of tests/fixtures (maxclients 64), polled twice 15 s apart with the
        // same replies, then once more without a CLIENT LIST (not due): the last aggregates
        // stay, with their older timestamp.
        Case {
            label: "r70-primary".into(),
            topology: None,
            polls: vec![
                Poll {
                    before_now: 30.0,
                    info: "tests/fixtures/info_everything_redis7.0.txt".into(),
                    config: read_64,
                    client_list: Some(("tests/fixtures/client_list_redis7.0.txt".into(), None)),
                },
                Poll {
                    before_now: 15.0,
                    info: "tests/fixtures/info_everything_redis7.0.txt".into(),
                    config: read_64,
                    client_list: Some(("tests/fixtures/client_list_redis7.0.txt".into(), None)),
                },
                Poll {
                    before_now: 0.0,
                    info: "tests/fixtures/info_everything_redis7.0.txt".into(),
                    config: read_64,
                    client_list: None,
                },
            ],
        },
        // The same server with CONFIG forbidden: maxclients comes from INFO.
        Case {
            label: "r70-primary-noconfig".into(),
            topology: None,
            polls: vec![Poll {
                before_now: 0.0,
                info: "tests/fixtures/info_everything_redis7.0.txt".into(),
                config: Config::Unavailable,
                client_list: Some(("tests/fixtures/client_list_redis7.0.txt".into(), None)),
            }],
        },
        // Its replica, as a node of a Sentinel set (the topology labels).
        Case {
            label: "r70-replica".into(),
            topology: Some(Topology {
                group: "mymaster".into(),
                node: "127.0.0.1:6381".into(),
                discovered_role: Role::Replica,
            }),
            polls: vec![Poll {
                before_now: 0.0,
                info: "tests/golden/input/redis-7.0.15/replica_info.txt".into(),
                config: Config::Read {
                    maxclients: 10_000.0,
                    timeout: 300.0,
                    tcp_keepalive: 300.0,
                },
                client_list: Some((
                    "tests/fixtures/client_list_redis7.0_replica.txt".into(),
                    None,
                )),
            }],
        },
        // 12 connections, then a minute later all 35, against maxclients 40: growth, rates
        // and a server close to full, for the detectors that need history.
        Case {
            label: "growth".into(),
            topology: None,
            polls: vec![
                Poll {
                    before_now: 60.0,
                    info: "tests/golden/input/redis-7.4.1/info.txt".into(),
                    config: Config::Read {
                        maxclients: 40.0,
                        timeout: 0.0,
                        tcp_keepalive: 0.0,
                    },
                    client_list: Some((
                        "tests/golden/input/redis-7.4.1/client_list.txt".into(),
                        Some(12),
                    )),
                },
                Poll {
                    before_now: 0.0,
                    info: "tests/golden/input/redis-7.4.1/info.txt".into(),
                    config: Config::Read {
                        maxclients: 40.0,
                        timeout: 0.0,
                        tcp_keepalive: 0.0,
                    },
                    client_list: Some((
                        "tests/golden/input/redis-7.4.1/client_list.txt".into(),
                        None,
                    )),
                },
            ],
        },
        // Configured, started, never polled yet: what the poller publishes first.
        Case {
            label: "never-polled".into(),
            topology: None,
            polls: Vec::new(),
        },
    ];
    for v in VERSIONS {
        let dir = format!("tests/golden/input/{v}");
        // CONFIG agrees with INFO's maxclients, as on a real server.
        let info_max = Info::parse(&read(&format!("{dir}/info.txt")))
            .maxclients
            .unwrap_or(10_000.0);
        for (suffix, prefix) in [("", ""), ("-replica", "replica_")] {
            cases.push(Case {
                label: format!("{v}{suffix}"),
                topology: None,
                polls: vec![Poll {
                    before_now: 0.0,
                    info: format!("{dir}/{prefix}info.txt"),
                    config: Config::Read {
                        maxclients: info_max,
                        timeout: 0.0,
                        tcp_keepalive: 300.0,
                    },
                    client_list: Some((format!("{dir}/{prefix}client_list.txt"), None)),
                }],
            });
        }
    }
    cases
}

/// The CLIENT LIST reply of a poll, cut to its first `lines` lines when asked.
fn client_list_reply(rel: &str, lines: Option<usize>) -> String {
    let text = read(rel);
    match lines {
        None => text,
        Some(n) => text.split_inclusive('\n').take(n).collect(),
    }
}

/// Everything the daemon would serve after the polls, by golden file (relative to
/// tests/golden/): `/metrics`, and per target its diagnosis exactly as `/diagnose` serves it in
/// each format.
type Outputs = BTreeMap<String, String>;

fn outputs() -> Outputs {
    let cfg_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/config.toml");
    let cfg = config::load_with_env(Some(&cfg_path), &Overrides::default(), std::iter::empty())
        .unwrap_or_else(|e| panic!("tests/golden/config.toml: {e}"));
    let cases = cases();
    let configured: Vec<&str> = cfg.targets.iter().map(|t| t.label.as_str()).collect();
    let case_labels: Vec<&str> = cases.iter().map(|c| c.label.as_str()).collect();
    assert_eq!(
        configured, case_labels,
        "tests/golden/config.toml and the cases must name the same targets in the same order"
    );

    let store = Store::default();
    for (case, target) in cases.iter().zip(&cfg.targets) {
        // As `Poller::new`, `with_topology` and the first publish of `Poller::run`.
        let redis_cli = redis_cli_for(target);
        let mut aggregator = Aggregator::new(cfg.idle_threshold_seconds);
        let mut history = History::new(RETENTION);
        let mut state = TargetState {
            topology: case.topology.clone().map(Arc::new),
            ..TargetState::default()
        };
        store.publish(&target.label, state.clone());
        for poll in &case.polls {
            // As `Poller::cycle` and `Poller::poll` on a successful poll.
            state.counters.polls += 1;
            let info = Info::parse(&read(&poll.info));
            assert!(info.redis_version.is_some(), "{}: not INFO", poll.info);
            let (config, config_error) = match poll.config {
                Config::Read {
                    maxclients,
                    timeout,
                    tcp_keepalive,
                } => (
                    ConfigValues {
                        available: true,
                        maxclients: Some(maxclients),
                        timeout: Some(timeout),
                        tcp_keepalive: Some(tcp_keepalive),
                        maxmemory_clients: None,
                    },
                    None,
                ),
                Config::Unavailable => (
                    ConfigValues::default(),
                    Some(PollError {
                        kind: ErrorKind::ConfigUnavailable,
                        stage: Stage::Config,
                        message: "Unknown: ERR unknown command 'CONFIG'".into(),
                    }),
                ),
            };
            let clients = poll.client_list.as_ref().map(|(rel, lines)| {
                let summary = aggregator.summarize(&client_list_reply(rel, *lines), cfg.top_k);
                assert!(summary.connections > 0, "{rel}: no parseable line");
                summary
            });
            let result = PollResult {
                info,
                config,
                config_error,
                clients,
                invalid_utf8: [0, 0],
                durations: DURATIONS,
            };
            Poller::fold_poll(
                &mut state,
                &mut history,
                result,
                Some(NOW - poll.before_now),
                &target.label,
                cfg.idle_threshold_seconds,
                &redis_cli,
            );
            // As the poller: the published state shares its history (the report's chart).
            state.history = Some(Arc::new(history.clone()));
            store.publish(&target.label, state.clone());
        }
    }

    let snapshot = store.snapshot();
    let mut out = Outputs::new();
    let metrics = String::from_utf8(metrics::render(&snapshot)).expect("metrics are UTF-8");
    let metrics = without_build_details(&metrics);
    out.insert("metrics.prom".into(), metrics);
    // The same states in OpenMetrics, as `/metrics` answers Prometheus' default `Accept`
    // (web/negotiate.rs adds the `# EOF` line); gzip changes only the transfer.
    let om: Vec<u8> = metrics::render_chunks_as(&snapshot, Format::OpenMetrics)
        .iter()
        .flat_map(|c| c.iter().copied())
        .collect();
    let om = String::from_utf8(om).expect("OpenMetrics text is UTF-8");
    out.insert("metrics.openmetrics".into(), without_build_details(&om));
    for (label, state) in &snapshot {
        let Some(report) = &state.diagnosis else {
            continue;
        };
        // The bytes of `/diagnose?format=json` (src/web/http.rs: `serde_json::to_vec_pretty`).
        let json = serde_json::to_vec_pretty(report.as_ref()).expect("report serialises");
        let json = String::from_utf8(json).expect("JSON is UTF-8");
        out.insert(format!("diagnose/{label}.json"), json);
        // As `/diagnose` renders them: with the target's history, tables and reload.
        let extras = render::Extras::of(state);
        out.insert(
            format!("diagnose/{label}.txt"),
            render::text_with(report, &extras),
        );
        out.insert(
            format!("diagnose/{label}.md"),
            render::markdown_with(report, &extras),
        );
        out.insert(
            format!("diagnose/{label}.html"),
            render::html_with(report, &extras),
        );
    }
    out
}

/// The build_info line with the values that change per build (commit, branch, compiler,
/// profile) replaced by their names: the version stays, it changes only with a release.
fn without_build_details(metrics: &str) -> String {
    use redis_clients_exporter::web::build_info;
    let line = |labels: &[(&str, &str)]| {
        let l: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
        format!("redis_clients_exporter_build_info{{{}}} 1\n", l.join(","))
    };
    let actual = line(&build_info::labels());
    assert!(metrics.contains(&actual), "no build_info line: {actual}");
    let fixed = line(&[
        ("branch", "<branch>"),
        ("revision", "<revision>"),
        ("rustversion", "<rustversion>"),
        ("tags", "<tags>"),
        ("version", build_info::VERSION),
    ]);
    metrics.replacen(&actual, &fixed, 1)
}

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

/// Compares `actual` with the committed file, or rewrites the file under `UPDATE_GOLDEN=1`.
/// Returns a description of the first difference, if any.
fn check(name: &str, actual: &str) -> Option<String> {
    let path = golden_dir().join(name);
    if std::env::var("UPDATE_GOLDEN").is_ok_and(|v| v == "1") {
        if std::fs::read_to_string(&path).ok().as_deref() != Some(actual) {
            std::fs::write(&path, actual).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            println!("updated {}", path.display());
        }
        return None;
    }
    let expected = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => return Some(format!("{}: {e}", path.display())),
    };
    if expected == actual {
        return None;
    }
    let (exp, act): (Vec<&str>, Vec<&str>) = (expected.lines().collect(), actual.lines().collect());
    let first = exp
        .iter()
        .zip(&act)
        .position(|(e, a)| e != a)
        .unwrap_or(exp.len().min(act.len()));
    let (e, a) = (
        exp.get(first).copied().unwrap_or("<end of file>"),
        act.get(first).copied().unwrap_or("<end of file>"),
    );
    // Long lines (the HTML is one) are shown around their first differing character.
    let col = e
        .char_indices()
        .zip(a.chars())
        .find(|((_, x), y)| x != y)
        .map_or(e.len().min(a.len()), |((i, _), _)| i);
    let window = |l: &str| -> String {
        let mut start = col.saturating_sub(60).min(l.len());
        while !l.is_char_boundary(start) {
            start -= 1;
        }
        let cut: String = l[start..].chars().take(160).collect();
        let more = if l.len() - start > cut.len() {
            "…"
        } else {
            ""
        };
        format!("{}{cut}{more}", if start > 0 { "…" } else { "" })
    };
    Some(format!(
        "tests/golden/{name} differs at line {} ({} lines expected, {} produced):\n  expected: {}\n  produced: {}",
        first + 1,
        exp.len(),
        act.len(),
        window(e),
        window(a),
    ))
}

fn golden_files() -> Vec<String> {
    let mut names = vec![
        "metrics.openmetrics".to_string(),
        "metrics.prom".to_string(),
    ];
    let dir = golden_dir().join("diagnose");
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for e in entries.flatten() {
            names.push(format!("diagnose/{}", e.file_name().to_string_lossy()));
        }
    }
    names.sort();
    names
}

#[test]
fn metrics_and_diagnoses_of_the_captures_match_the_golden_files() {
    let out = outputs();
    // The same inputs twice give the same bytes: a golden file cannot pin an output that
    // depends on hash order or the clock.
    assert!(
        out == outputs(),
        "two runs over the same captures rendered different outputs"
    );
    for (name, text) in &out {
        assert!(
            !text.contains(SECRET),
            "{name}: the configured password appears in an output"
        );
    }
    let updating = std::env::var("UPDATE_GOLDEN").is_ok_and(|v| v == "1");
    let mut problems: Vec<String> = Vec::new();
    // A golden file that no output produces any more (a case renamed or removed).
    for name in golden_files() {
        if !out.contains_key(&name) {
            let path = golden_dir().join(&name);
            if updating {
                std::fs::remove_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                println!("removed {}", path.display());
            } else {
                problems.push(format!("tests/golden/{name} is produced by no case"));
            }
        }
    }
    if updating {
        std::fs::create_dir_all(golden_dir().join("diagnose"))
            .expect("create tests/golden/diagnose");
    }
    problems.extend(out.iter().filter_map(|(name, text)| check(name, text)));
    let shown = 6;
    if problems.len() > shown {
        let more = problems.len() - shown;
        problems.truncate(shown);
        problems.push(format!("… and {more} more"));
    }
    assert!(
        problems.is_empty(),
        "golden files differ:\n\n{}\n\nIf the change is intended: UPDATE_GOLDEN=1 cargo test \
         --test golden, then review and commit the diff of tests/golden/.",
        problems.join("\n\n")
    );
}

/// The outputs are not trivially satisfied: they hold what each case is about.
#[test]
fn the_outputs_cover_every_case() {
    let out = outputs();
    let metrics = &out["metrics.prom"];
    for case in cases() {
        let target = format!("target=\"{}\"", case.label);
        assert!(
            metrics
                .lines()
                .any(|l| l.starts_with("redis_up{") && l.contains(&target)),
            "no redis_up of {} in /metrics",
            case.label
        );
        let polled = !case.polls.is_empty();
        assert_eq!(
            out.contains_key(&format!("diagnose/{}.json", case.label)),
            polled,
            "{}: a diagnosis exactly when the target was polled",
            case.label
        );
    }
    // Every capture parsed without a skipped line.
    let parse_errors: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("redis_clients_exporter_client_list_parse_errors_total{"))
        .collect();
    assert_eq!(parse_errors.len(), cases().len());
    assert!(
        parse_errors.iter().all(|l| l.ends_with(" 0")),
        "{parse_errors:?}"
    );
    assert!(out["diagnose/growth.json"].contains("\"history_samples\": 2"));
    // The report carries the exact redis-cli (TLS, ACL user, db) for its commands.
    assert!(out["diagnose/r70-replica.json"].contains("--tls --user monitor -n 2"));
    assert!(metrics.contains("cluster=\"mymaster\""));
    assert!(metrics.contains(
        "redis_client_maxclients_source{target=\"r70-primary-noconfig\",source=\"info\"} 1"
    ));
}
