//! Relief's work on a poller's held connection: a job handed to the target's poller (which runs
//! it between polls) with a bounded wait for its answer, and the Redis commands the jobs send.

use std::future::Future;

use tokio::sync::oneshot;

use super::hub::PollerHandle;
use super::{refuse, Job, Outcome, Param, Refusal, POLLER_WAIT};
use crate::redis::connection::{Conn, ErrorKind, PollError, Stage};
use crate::redis::resp::{Arg, Value};
use tokio::sync::mpsc;

/// Runs `work` on the target's poller (its held connection) and waits for the answer.
pub(super) async fn on_poller<T, F>(handle: &PollerHandle, work: F) -> Result<T, Refusal>
where
    T: Send + 'static,
    F: for<'a> FnOnce(&'a mut Conn) -> Work<'a, T> + Send + 'static,
{
    let (tx, rx) = oneshot::channel();
    // Each command of `work` is bounded by the connection's (the target's) command timeout.
    let job: Job = Box::new(move |conn| {
        Box::pin(async move {
            // The requester stopped waiting: it was told nothing happened, so nothing does.
            if tx.is_closed() {
                return;
            }
            let r = match conn {
                Some(c) if !c.broken() => work(c).await,
                _ => Err(refuse(
                    Outcome::Unavailable,
                    "the exporter holds no connection to this target right now (down or reconnecting): nothing can be done through it",
                )),
            };
            if tx.send(r).is_err() {
                tracing::warn!(target: "audit", "a relief job finished after its requester stopped waiting");
            }
        })
    });
    handle.jobs.try_send(job).map_err(|e| match e {
        mpsc::error::TrySendError::Full(_) => refuse(
            Outcome::Unavailable,
            "other relief requests are queued for this target: retry in a moment",
        ),
        mpsc::error::TrySendError::Closed(_) => {
            refuse(Outcome::Unavailable, "this target's poller is not running")
        }
    })?;
    match tokio::time::timeout(POLLER_WAIT, rx).await {
        Ok(Ok(r)) => r,
        Ok(Err(_)) => Err(refuse(
            Outcome::Unavailable,
            "the poller stopped before running the request",
        )),
        Err(_) => Err(refuse(
            Outcome::Unavailable,
            format!("the poller did not take the request within {} s (a poll of a slow server in progress?): nothing was done", POLLER_WAIT.as_secs()),
        )),
    }
}

/// A job's work on the held connection.
pub(super) type Work<'a, T> =
    std::pin::Pin<Box<dyn Future<Output = Result<T, Refusal>> + Send + 'a>>;

async fn command(
    c: &mut Conn,
    stage: Stage,
    name: &'static str,
    args: Vec<String>,
) -> Result<Value, PollError> {
    let all = std::iter::once(Arg::Str(name)).chain(args.iter().map(|a| Arg::Str(a)));
    c.call(stage, all).await
}

/// CLIENT LIST (of `ids` only, when given), decoded lossily: a name with invalid UTF-8 must
/// not make the list unreadable.
pub(super) async fn client_list(c: &mut Conn, ids: Option<&[u64]>) -> Result<String, PollError> {
    let mut args = vec!["LIST".to_string()];
    if let Some(ids) = ids {
        args.push("ID".to_string());
        args.extend(ids.iter().map(u64::to_string));
    }
    let v = command(c, Stage::ClientList, "CLIENT", args).await?;
    match v.as_bytes() {
        Some(b) => Ok(String::from_utf8_lossy(b).into_owned()),
        None => Err(PollError::new(
            ErrorKind::Protocol,
            Stage::ClientList,
            "CLIENT LIST did not answer text",
        )),
    }
}

pub(super) async fn own_id(c: &mut Conn) -> Result<Option<u64>, PollError> {
    let v = command(c, Stage::ClientId, "CLIENT", vec!["ID".into()]).await?;
    Ok(v.as_u64())
}

/// The current value of a parameter, or why it cannot be read.
pub(super) async fn config_get(c: &mut Conn, p: Param) -> Result<Option<i64>, String> {
    let v = command(
        c,
        Stage::Config,
        "CONFIG",
        vec!["GET".into(), p.redis_name().into()],
    )
    .await
    .map_err(|e| e.to_string())?;
    let pair = v
        .into_strings()
        .ok_or_else(|| "CONFIG GET did not answer strings".to_string())?;
    Ok(pair.get(1).and_then(|v| v.trim().parse().ok()))
}

pub(super) async fn config_set(c: &mut Conn, p: Param, v: i64) -> Result<(), PollError> {
    command(
        c,
        Stage::Config,
        "CONFIG",
        vec!["SET".into(), p.redis_name().into(), v.to_string()],
    )
    .await
    .map(|_| ())
}
