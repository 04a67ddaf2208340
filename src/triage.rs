//! The one-shot `diagnose` command: connect once (waiting for a free slot when Redis is full),
//! take two snapshots a few seconds apart (rates need two), run the same diagnosis as the
//! daemon, and add what only the raw CLIENT LIST can give: the ids of the culprit connections.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::aggregate::Aggregator;
use crate::client_list::{raw_lines, ClientEntry, Parser};
use crate::config::Target;
use crate::diagnose::{self, Observation, Report, Step};
use crate::history::Sample;
use crate::info::Info;
use crate::poller::{read_config, Conn, PollError};
use crate::state::{ConfigValues, ErrorKind};

/// Ids listed per finding at most: enough to act on, short enough to paste.
pub const MAX_IDS: usize = 500;

#[derive(Debug, Clone)]
pub struct Options {
    pub target: Target,
    /// Time between the two snapshots.
    pub sample: Duration,
    /// How long to keep retrying a full server (and the bound on the whole run's connect).
    pub wait_for_slot: Duration,
    pub idle_threshold_seconds: u64,
    pub top_k: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum TriageError {
    #[error("Redis at {target} is FULL: every connection slot is taken (ERR max number of clients reached), and no slot freed within {waited:?}. This is itself the finding: connections are exhausted. Diagnose from a connection that is already open (an application's, or the redis-clients-exporter daemon's held one: /diagnose), or free slots first (restart the leaking service), then run this again.")]
    Full { target: String, waited: Duration },
    #[error("cannot diagnose {target} ({kind} error): {source}", kind = source.kind.as_str())]
    Poll { target: String, source: PollError },
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Opens the connection, retrying once a second while the server is full.
async fn connect(o: &Options, mut waiting: impl FnMut(&str)) -> Result<Conn, TriageError> {
    let started = Instant::now();
    let mut told = false;
    loop {
        match Conn::open(&o.target).await {
            Ok(c) => return Ok(c),
            Err(e) if e.kind == ErrorKind::Maxclients => {
                if started.elapsed() + Duration::from_secs(1) > o.wait_for_slot {
                    return Err(TriageError::Full {
                        target: o.target.label.clone(),
                        waited: started.elapsed(),
                    });
                }
                if !told {
                    waiting(&format!(
                        "Redis at {} is full (ERR max number of clients reached); retrying every second for up to {:?} while waiting for a free slot...",
                        o.target.label, o.wait_for_slot
                    ));
                    told = true;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(source) => {
                return Err(TriageError::Poll {
                    target: o.target.label.clone(),
                    source,
                })
            }
        }
    }
}

struct Snap {
    info: Info,
    reply: String,
    at: f64,
}

async fn snapshot(conn: &Conn, timeout: Duration) -> Result<Snap, PollError> {
    let c = &conn.client;
    let (info_text, _) = crate::poller::read_info(c, timeout).await?;
    let info = Info::parse(&info_text);
    if info.redis_version.is_none() {
        return Err(PollError::new(
            ErrorKind::Protocol,
            "info",
            "the INFO reply has no redis_version field",
        ));
    }
    let reply = crate::poller::read_client_list(c, timeout)
        .await?
        .0
        .into_string();
    Ok(Snap {
        info,
        reply,
        at: now(),
    })
}

/// Runs the triage. `waiting` is told (once) when the command has to wait for a free slot.
pub async fn run(o: &Options, waiting: impl FnMut(&str)) -> Result<Report, TriageError> {
    let conn = connect(o, waiting).await?;
    let result = observe(o, &conn).await;
    conn.close().await;
    result.map_err(|source| TriageError::Poll {
        target: o.target.label.clone(),
        source,
    })
}

async fn observe(o: &Options, conn: &Conn) -> Result<Report, PollError> {
    let t = o.target.command_timeout;
    let config = match read_config(&conn.client, t).await {
        Ok(c) => c,
        Err(e) if e.kind == ErrorKind::ConfigUnavailable => ConfigValues::default(),
        Err(e) => return Err(e),
    };
    let mut agg = Aggregator::new(o.idle_threshold_seconds);
    let first = snapshot(conn, t).await?;
    let first_summary = agg.summarize(&first.reply, o.top_k);
    let mut history = vec![Sample::new(first.at, &first.info, &first_summary, None)];
    let last = if o.sample.is_zero() {
        first
    } else {
        tokio::time::sleep(o.sample).await;
        snapshot(conn, t).await?
    };
    let summary = agg.summarize(&last.reply, o.top_k);
    if summary.connections == 0 {
        return Err(PollError::new(
            ErrorKind::Protocol,
            "client_list",
            "the CLIENT LIST reply has no parseable line",
        ));
    }
    if history[0].at < last.at {
        let sample = Sample::new(last.at, &last.info, &summary, history.first());
        history.push(sample);
    }
    let obs = Observation {
        info: &last.info,
        config: &config,
        clients: &summary,
        idle_threshold_seconds: o.idle_threshold_seconds,
    };
    let cli = diagnose::redis_cli_for(&o.target);
    let mut report = diagnose::diagnose(&o.target.label, &obs, &history, last.at, &cli);
    add_ids(&mut report, &last.reply);
    Ok(report)
}

/// Puts the exact ids of each finding's connections, from the last snapshot, in front of its
/// remediation: on servers without idle filters this is the command to paste.
fn add_ids(report: &mut Report, reply: &str) {
    let cli = report.redis_cli.clone();
    for f in &mut report.findings {
        let Some(sel) = &f.selector else { continue };
        let mut ids = Vec::new();
        let mut matched = 0usize;
        let mut e = ClientEntry::default();
        let mut parser = Parser::new();
        for line in raw_lines(reply) {
            if parser.parse_into(&mut e, line).is_ok() && sel.matches(&e) {
                matched += 1;
                if let Some(id) = e.id.filter(|_| ids.len() < MAX_IDS) {
                    ids.push(id.to_string());
                }
            }
        }
        if ids.is_empty() {
            continue;
        }
        let more = if matched > ids.len() {
            format!(" (the first {} of {matched})", ids.len())
        } else {
            String::new()
        };
        f.remediation.insert(
            0,
            Step {
                why: format!("Close the {matched} connections this snapshot matched{more}, by id"),
                command: Some(format!(
                    "for id in {}; do {cli} CLIENT KILL ID $id; done",
                    ids.join(" ")
                )),
            },
        );
    }
}
