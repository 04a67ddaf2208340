//! The per-target machinery: the store every handler reads, the pollers that hold one
//! connection per Redis, their reconciliation on reload, discovery of cluster and Sentinel
//! nodes and of the targets file, the `/scrape` targets, and the one-shot `diagnose` command's
//! observation.

pub mod close;
pub mod discovery;
pub mod dynamic;
pub mod jobs;
pub mod poller;
pub mod reconcile;
pub mod state;
pub mod triage;

/// The last state a log line reported, so that logs say each change of state once, not once
/// per poll: `if logged.changed(up) { log }`.
#[derive(Debug, Clone, Default)]
pub struct Logged<T>(Option<T>);

impl<T: PartialEq> Logged<T> {
    /// Starts as if `state` had been logged already (no line for it).
    pub fn assuming(state: T) -> Self {
        Self(Some(state))
    }

    /// Records `now`; true when it differs from the last recorded state.
    pub fn changed(&mut self, now: T) -> bool {
        if self.0.as_ref() == Some(&now) {
            return false;
        }
        self.0 = Some(now);
        true
    }
}
