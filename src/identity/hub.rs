//! What identity is in force: the published [`IdentitySnapshot`], each source's status (the
//! `redis_clients_exporter_identity_source_up` family and the report's line when one is down),
//! and the refresh task, restarted when a reload changes `[identity]`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::analysis::aggregate::SourceIdentity;
use crate::config::identity::IdentityConfig;
use crate::identity::IdentitySnapshot;

/// One source's last refresh.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SourceStatus {
    pub up: bool,
    /// Addresses it names (pods, networks, names).
    pub entries: usize,
    /// Why the last refresh failed (bounded; no secret: built from the error kinds).
    pub error: Option<String>,
}

#[derive(Default)]
pub struct IdentityHub {
    current: RwLock<Option<Arc<IdentitySnapshot>>>,
    status: Mutex<BTreeMap<&'static str, SourceStatus>>,
    task: Mutex<Option<(IdentityConfig, CancellationToken, JoinHandle<()>)>>,
}

impl IdentityHub {
    /// The snapshot a poll uses; `None` when identity is off.
    pub fn current(&self) -> Option<Arc<dyn SourceIdentity>> {
        let s = self.current.read().unwrap_or_else(|e| e.into_inner());
        s.as_ref().map(|s| Arc::clone(s) as Arc<dyn SourceIdentity>)
    }

    pub fn publish(&self, snapshot: Option<Arc<IdentitySnapshot>>) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = snapshot;
    }

    pub fn set_status(&self, source: &'static str, status: SourceStatus) {
        let mut s = self.status.lock().unwrap_or_else(|e| e.into_inner());
        s.insert(source, status);
    }

    pub fn statuses(&self) -> Vec<(&'static str, SourceStatus)> {
        let s = self.status.lock().unwrap_or_else(|e| e.into_inner());
        s.iter().map(|(k, v)| (*k, v.clone())).collect()
    }

    /// What a report says when a source is down: culprits fall back to addresses.
    pub fn degraded(&self) -> Option<String> {
        let down: Vec<String> = self
            .statuses()
            .into_iter()
            .filter(|(_, s)| !s.up)
            .map(|(k, s)| match s.error {
                Some(e) => format!("{k} ({e})"),
                None => k.to_string(),
            })
            .collect();
        (!down.is_empty()).then(|| {
            format!(
                "Identity source down: {}; its addresses are shown as addresses.",
                down.join(", ")
            )
        })
    }

    /// Starts, restarts or stops the refresh task for `cfg` (a reload calls it with the new
    /// configuration; an unchanged one keeps the task and its snapshot).
    pub fn configure(self: &Arc<Self>, cfg: &IdentityConfig, shutdown: &CancellationToken) {
        let mut task = self.task.lock().unwrap_or_else(|e| e.into_inner());
        if task.as_ref().is_some_and(|(c, _, _)| c == cfg) {
            return;
        }
        if let Some((_, stop, handle)) = task.take() {
            stop.cancel();
            handle.abort();
        }
        self.status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        if !cfg.enabled() {
            self.publish(None);
            return;
        }
        let stop = shutdown.child_token();
        let handle = tokio::spawn(crate::identity::refresh::run(
            Arc::clone(self),
            cfg.clone(),
            stop.clone(),
        ));
        *task = Some((cfg.clone(), stop, handle));
    }
}
