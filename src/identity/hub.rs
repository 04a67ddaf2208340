//! What identity is in force: the published [`IdentitySnapshot`], each source's status (the
//! `redis_clients_exporter_identity_source_up` family and the report's line when one is down),
//! and the refresh task, restarted when a reload changes `[identity]`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
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
    /// Addresses the pollers found unnamed, waiting for a PTR lookup (only with `[identity.dns]`),
    /// at most `max_entries`.
    wanted: Mutex<BTreeSet<IpAddr>>,
    /// 0: reverse DNS off (nothing is collected); else the bound of `wanted`.
    wanted_max: AtomicUsize,
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

    /// Addresses a poll's workload dimension left unnamed (its top K): asked of reverse DNS
    /// when it is configured; nothing is kept otherwise.
    pub fn want_names<'a>(&self, addresses: impl Iterator<Item = &'a str>) {
        let max = self.wanted_max.load(Ordering::Relaxed);
        if max == 0 {
            return;
        }
        let mut w = self.wanted.lock().unwrap_or_else(|e| e.into_inner());
        for ip in addresses.filter_map(|a| a.parse::<IpAddr>().ok()) {
            if w.len() >= max {
                break;
            }
            w.insert(ip);
        }
    }

    /// The addresses waiting for a lookup, taken.
    pub fn take_wanted(&self) -> BTreeSet<IpAddr> {
        std::mem::take(&mut *self.wanted.lock().unwrap_or_else(|e| e.into_inner()))
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
        let wanted_max = if cfg.dns.is_some() {
            cfg.max_entries
        } else {
            0
        };
        self.wanted_max.store(wanted_max, Ordering::Relaxed);
        self.take_wanted();
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
