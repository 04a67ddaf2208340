//! The one-shot `diagnose` command: connect once (waiting for a free slot when Redis is full),
//! take snapshots a second apart for a few seconds (rates need two; a fast leak shows poll by
//! poll), run the same diagnosis as the daemon, and add what only the raw CLIENT LIST can
//! give: the ids of the culprit connections.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::analysis::aggregate::Aggregator;
use crate::analysis::history::Sample;
use crate::config::Target;
use crate::diagnose::{self, Notice, Observation, Report, Step};
use crate::redis::client_list::Parser;
use crate::redis::connection::{
    no_client_in_client_list, observe_config, observe_info, read_client_list, Conn, ErrorKind,
    PollError,
};
use crate::redis::info::Info;

/// Ids listed per finding at most (Redis' default maxclients): more are counted, and the live
/// re-selection step that follows closes them too.
pub const MAX_IDS: usize = 10_000;

/// Ids per printed command: a line that still pastes well (about 7 kB).
pub const IDS_PER_COMMAND: usize = 1_000;

#[derive(Debug, Clone)]
pub struct Options {
    pub target: Target,
    /// Time between the two snapshots.
    pub sample: Duration,
    /// How long to keep retrying a full server: the command gives up once this has passed
    /// (tries 1, 2, 4 then 5 s apart: each try is one more refused connection; the last one
    /// at the deadline).
    pub wait_for_slot: Duration,
    pub idle_threshold_seconds: u64,
    pub top_k: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum TriageError {
    #[error("Redis at {target} is FULL: every connection slot is taken (ERR max number of clients reached), and no slot freed within {} s ({attempts} attempts, each one more refused connection). This is itself the finding: connections are exhausted. Diagnose from a connection that is already open (an application's, or the redis-clients-exporter daemon's held one: /diagnose), or free slots first (recycle or restart the service holding the most connections: its connections close with its processes; or, where the exporter's relief action is enabled, let it close connections over the connection it already holds), then run this again. No redis-cli command can run while the server is full.", .waited.as_secs_f64().round())]
    Full {
        target: String,
        waited: Duration,
        attempts: u32,
    },
    #[error("cannot diagnose {target} ({kind} error): {source}", kind = source.kind.as_str())]
    Poll { target: String, source: PollError },
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The longest wait between two tries on a full server: each try is one more
/// `rejected_connections`, so the command backs off to one every few seconds.
pub const FULL_RETRY_MAX: Duration = Duration::from_secs(5);

/// Opens the connection, retrying (backing off to [`FULL_RETRY_MAX`]) while the server is full.
async fn connect(o: &Options, mut waiting: impl FnMut(&str)) -> Result<Conn, TriageError> {
    let started = Instant::now();
    let mut told = false;
    let mut attempts = 0u32;
    let mut pause = Duration::from_secs(1);
    loop {
        attempts += 1;
        match Conn::open(&o.target).await {
            Ok(c) => return Ok(c),
            Err(e) if e.kind == ErrorKind::Maxclients => {
                let waited = started.elapsed();
                if waited >= o.wait_for_slot {
                    return Err(TriageError::Full {
                        target: o.target.label.clone(),
                        waited,
                        attempts,
                    });
                }
                if !told {
                    waiting(&format!(
                        "Redis at {} is full (ERR max number of clients reached); retrying for up to {} s, backing off to one try every {} s (each try is one more refused connection), while waiting for a free slot...",
                        o.target.label,
                        o.wait_for_slot.as_secs_f64().round(),
                        FULL_RETRY_MAX.as_secs()
                    ));
                    told = true;
                }
                // The last wait is cut short so that one more try lands on the deadline: the
                // command gives up after the time it was given, not a second before it.
                let left = o.wait_for_slot.saturating_sub(waited);
                tokio::time::sleep(pause.min(left)).await;
                pause = (pause * 2).min(FULL_RETRY_MAX);
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

async fn snapshot(c: &mut Conn) -> Result<Snap, PollError> {
    let (info, _) = observe_info(c).await?;
    let reply = read_client_list(c).await?.0.into_string();
    Ok(Snap {
        info,
        reply,
        at: now(),
    })
}

/// Runs the triage. `waiting` is told (once) when the command has to wait for a free slot.
pub async fn run(o: &Options, waiting: impl FnMut(&str)) -> Result<Report, TriageError> {
    let mut conn = connect(o, waiting).await?;
    let result = observe(o, &mut conn).await;
    conn.close().await;
    result.map_err(|source| TriageError::Poll {
        target: o.target.label.clone(),
        source,
    })
}

/// Snapshots taken at most this far apart within the sample time: a fast leak shows poll by
/// poll within a few seconds.
pub const SNAPSHOT_EVERY: Duration = Duration::from_secs(1);

async fn observe(o: &Options, conn: &mut Conn) -> Result<Report, PollError> {
    // An unavailable CONFIG leaves its values unknown; the diagnosis says what it lacks.
    let (config, _) = observe_config(conn).await?;
    let mut agg = Aggregator::new(o.idle_threshold_seconds);
    let mut last = snapshot(conn).await?;
    let mut summary = agg.summarize(&last.reply, o.top_k);
    let mut history = vec![Sample::new(last.at, &last.info, &summary, None)];
    // Snapshots a second apart over the sample time (at least two for rates): the history a
    // daemon would have of the last few seconds.
    let steps = (o.sample.as_secs_f64() / SNAPSHOT_EVERY.as_secs_f64()).ceil() as u32;
    let every = if steps > 0 {
        o.sample / steps
    } else {
        Duration::ZERO
    };
    for _ in 0..steps {
        tokio::time::sleep(every).await;
        last = snapshot(conn).await?;
        summary = agg.summarize(&last.reply, o.top_k);
        if history.last().is_some_and(|p| p.at < last.at) {
            let sample = Sample::new(last.at, &last.info, &summary, history.last());
            history.push(sample);
        }
    }
    if summary.connections == 0 {
        return Err(no_client_in_client_list());
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
/// remediation (after the "server is full" notice, when there is one): on servers without idle
/// filters this is the command to paste. Every id is listed, in commands of
/// [`IDS_PER_COMMAND`], up to [`MAX_IDS`]; beyond that the report says how many more matched.
fn add_ids(report: &mut Report, reply: &str) {
    let cli = report.redis_cli.clone();
    for f in &mut report.findings {
        let Some(sel) = &f.selector else { continue };
        let mut ids: Vec<u64> = Vec::new();
        let mut matched = 0usize;
        Parser::new().each_entry(reply, |e| {
            if sel.matches(e) {
                matched += 1;
                if let Some(id) = e.id.filter(|_| ids.len() < MAX_IDS) {
                    ids.push(id);
                }
            }
        });
        if ids.is_empty() {
            continue;
        }
        let what = if matched > ids.len() {
            format!("{} of the {matched} connections", ids.len())
        } else {
            format!("the {matched} connections")
        };
        let chunks: Vec<&[u64]> = ids.chunks(IDS_PER_COMMAND).collect();
        let mut steps = Vec::with_capacity(chunks.len() + 1);
        for (i, chunk) in chunks.iter().enumerate() {
            let part = if chunks.len() > 1 {
                format!(" (part {} of {})", i + 1, chunks.len())
            } else {
                String::new()
            };
            steps.push(Step::kill_ids(
                format!("Close {what} this snapshot matched, by id{part}"),
                &cli,
                chunk.to_vec(),
            ));
        }
        if matched > ids.len() {
            steps.push(Step::advice(format!(
                "{} more connections matched than the {} listed by id: the next step re-selects them from a live CLIENT LIST and closes them too",
                matched - ids.len(),
                ids.len()
            )));
        }
        let at = f
            .remediation
            .iter()
            .take_while(|s| s.is_notice(Notice::FullServer))
            .count();
        f.remediation.splice(at..at, steps);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redis::connection::ConfigValues;

    /// A report on `n` idle connections from one source (plus 5 busy ones), at `maxclients`,
    /// with the by-id steps added from the same reply.
    fn report_with_ids(n: u64, maxclients: f64) -> Report {
        let mut reply = String::new();
        for id in 1..=n {
            reply += &format!("id={id} addr=10.0.0.9:{} fd=8 name= age=900 idle=800 flags=N db=0 omem=0 cmd=NULL\n", 10000 + id % 50000);
        }
        for id in n + 1..=n + 5 {
            reply += &format!("id={id} addr=10.0.0.1:1 fd=8 name=api age=900 idle=0 flags=N db=0 omem=0 cmd=get\n");
        }
        let clients = Aggregator::new(60).summarize(&reply, 20);
        let info = Info::parse(&format!(
            "redis_version:7.0.15\nconnected_clients:{}\n",
            n + 5
        ));
        let config = ConfigValues {
            available: true,
            maxclients: Some(maxclients),
            timeout: Some(300.0),
            tcp_keepalive: Some(300.0),
            maxmemory_clients: None,
        };
        let obs = Observation {
            info: &info,
            config: &config,
            clients: &clients,
            idle_threshold_seconds: 60,
        };
        let mut r = diagnose::diagnose("t", &obs, &[], 1000.0, "redis-cli -p 1");
        add_ids(&mut r, &reply);
        r
    }

    /// The ids of every by-id command of the first finding, in order.
    fn listed(r: &Report) -> Vec<u64> {
        r.findings[0]
            .remediation
            .iter()
            .filter_map(|s| s.command())
            .filter_map(|c| c.strip_prefix("printf 'CLIENT KILL ID %s\\n' "))
            .flat_map(|c| {
                c.split(" | ")
                    .next()
                    .unwrap_or("")
                    .split(' ')
                    .map(|id| id.parse::<u64>().expect("an id"))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    #[test]
    fn every_id_is_listed_in_chunks() {
        let r = report_with_ids(2_500, 10_000.0);
        assert_eq!(listed(&r), (1..=2_500).collect::<Vec<u64>>());
        let steps = &r.findings[0].remediation;
        assert!(steps[0].why.ends_with("by id (part 1 of 3)"), "{steps:#?}");
        assert!(steps[2].why.ends_with("by id (part 3 of 3)"), "{steps:#?}");
        assert!(steps[0].why.contains("the 2500 connections"), "{steps:#?}");
    }

    #[test]
    fn beyond_the_cap_the_report_says_how_many_more() {
        let r = report_with_ids(MAX_IDS as u64 + 50, 20_000.0);
        assert_eq!(listed(&r).len(), MAX_IDS);
        let steps = &r.findings[0].remediation;
        let chunks = MAX_IDS / IDS_PER_COMMAND;
        assert!(steps[chunks].command().is_none());
        assert!(
            steps[chunks].why.starts_with("50 more connections matched"),
            "{steps:#?}"
        );
        // The live re-selection, which closes them too, follows.
        assert!(steps[chunks + 1]
            .fallback()
            .is_some_and(|c| c.contains("CLIENT LIST")));
    }

    #[test]
    fn on_a_full_server_the_notice_comes_first() {
        let r = report_with_ids(45, 50.0);
        assert_eq!(r.status, diagnose::Status::Full);
        let steps = &r.findings[0].remediation;
        assert!(steps[0].is_notice(Notice::FullServer), "{steps:#?}");
        assert!(
            steps[0].why.starts_with(diagnose::FULL_NOTICE),
            "{steps:#?}"
        );
        assert!(steps[1].why.contains("by id"), "{steps:#?}");
        assert_eq!(listed(&r).len(), 45);
    }
}
