//! Work run on a poller's held connection between polls, and the hook through which whoever
//! sends that work (relief, src/relief) hears of pollers starting and stopping and adds its
//! steps to their reports. Defined here, implemented above: the pollers never name relief.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::config::Target;
use crate::diagnose::Report;
use crate::redis::connection::Conn;

/// Jobs queued per poller; past it a request is refused as busy instead of piling up.
pub const QUEUE: usize = 4;
/// How long a request waits for its poller to run the job (a poll of a slow server may be in
/// progress: up to a few command timeouts). A job that has not started by then never does.
pub const POLLER_WAIT: Duration = Duration::from_secs(30);

/// Work for a poller: run on its held connection (`None` when it holds none right now).
pub type Job = Box<
    dyn for<'a> FnOnce(Option<&'a mut Conn>) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>>
        + Send,
>;

/// What the pollers tell the one who acts through them (relief's hub).
pub trait Actions: Send + Sync {
    /// A poller announces its job queue (replacing a stopped predecessor's).
    fn register(&self, target: &Target, jobs: mpsc::Sender<Job>);
    /// The target is gone: nothing can act on it any more.
    fn forget(&self, target: &str);
    /// Adds the steps it can take to a report the poller has just built.
    fn add_steps(&self, target: &str, report: &mut Report);
}

/// Nobody acts through the pollers (a store built without relief: tests, tools).
pub struct NoActions;

impl Actions for NoActions {
    fn register(&self, _: &Target, _: mpsc::Sender<Job>) {}
    fn forget(&self, _: &str) {}
    fn add_steps(&self, _: &str, _: &mut Report) {}
}

/// Waits `wait`, meanwhile running the jobs sent to this poller on its held connection
/// (`conn`). A poller calls this between polls, so a job never overlaps a poll.
pub async fn idle(
    wait: Duration,
    jobs: &mut Option<mpsc::Receiver<Job>>,
    mut conn: Option<&mut Conn>,
) {
    let until = tokio::time::Instant::now() + wait;
    loop {
        let Some(rx) = jobs.as_mut() else {
            return tokio::time::sleep_until(until).await;
        };
        let job = tokio::select! {
            // Jobs first: a poller whose polls overrun its interval still serves its queue.
            biased;
            job = rx.recv() => job,
            _ = tokio::time::sleep_until(until) => return,
        };
        match job {
            // Each job bounds its own commands; this bounds the job against a bug.
            Some(job) => {
                // A job cut off here may leave a reply owed: the connection's next exchange
                // drops it (`Conn::settle`), or the connection is broken and replaced.
                let _ = tokio::time::timeout(POLLER_WAIT, job(conn.as_deref_mut())).await;
            }
            None => *jobs = None,
        }
    }
}
