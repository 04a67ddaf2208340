//! Named background tasks kept in line with a wanted set: start the added, stop the removed,
//! restart the changed, leave the rest (and their held connections) alone. Used for the
//! configured pollers on reload, for the nodes of each cluster or Sentinel set after every
//! discovery, and for the targets file.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::Target;
use crate::targets::state::{Store, Topology};

/// What a reconciliation changed, for the log line.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ReloadSummary {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub restarted: Vec<String>,
    pub kept: usize,
}

impl ReloadSummary {
    pub fn merge(&mut self, other: ReloadSummary) {
        self.added.extend(other.added);
        self.removed.extend(other.removed);
        self.restarted.extend(other.restarted);
        self.kept += other.kept;
    }

    pub fn is_change(&self) -> bool {
        !(self.added.is_empty() && self.removed.is_empty() && self.restarted.is_empty())
    }
}

struct Entry<S> {
    spec: S,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

/// Tasks by label, each started from a spec `S`; a spec that compares equal keeps its task.
pub struct TaskSet<S> {
    parent: CancellationToken,
    tasks: BTreeMap<String, Entry<S>>,
}

impl<S: PartialEq> TaskSet<S> {
    /// Tasks are stopped with `parent` as well as one by one.
    pub fn new(parent: CancellationToken) -> Self {
        Self {
            parent,
            tasks: BTreeMap::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// The spec `label` runs, if it runs.
    pub fn spec(&self, label: &str) -> Option<&S> {
        self.tasks.get(label).map(|e| &e.spec)
    }

    pub fn labels(&self) -> impl Iterator<Item = &str> {
        self.tasks.keys().map(String::as_str)
    }

    /// Starts `spec` under `label` (replacing nothing: the caller checks).
    pub fn start(
        &mut self,
        label: String,
        spec: S,
        spawn: impl FnOnce(&S, CancellationToken) -> JoinHandle<()>,
    ) {
        let stop = self.parent.child_token();
        let task = spawn(&spec, stop.clone());
        self.tasks.insert(label, Entry { spec, stop, task });
    }

    /// Cancels one task and hands back its handle, so that a caller holding a lock can wait
    /// for it after letting go.
    pub fn cancel(&mut self, label: &str) -> Option<JoinHandle<()>> {
        self.tasks.remove(label).map(|e| {
            e.stop.cancel();
            e.task
        })
    }

    /// Stops one task and waits for it; true if it was running.
    pub async fn stop(&mut self, label: &str) -> bool {
        match self.cancel(label) {
            Some(task) => {
                let _ = task.await;
                true
            }
            None => false,
        }
    }

    /// Makes `label` run `spec`, leaving every other task alone: kept if it already runs an
    /// equal spec, restarted if its spec differs, started otherwise. `gone` runs between the
    /// stop of a replaced task and the start of the new one. True unless kept.
    pub async fn ensure(
        &mut self,
        label: &str,
        spec: S,
        spawn: impl FnOnce(&S, CancellationToken) -> JoinHandle<()>,
        gone: impl FnOnce(&str),
    ) -> bool {
        if self.tasks.get(label).is_some_and(|e| e.spec == spec) {
            return false;
        }
        if self.stop(label).await {
            gone(label);
        }
        self.start(label.to_string(), spec, spawn);
        true
    }

    /// Brings the running tasks in line with `wanted`. `gone` is called for each label that
    /// no longer runs at all (to remove its series).
    pub async fn reconcile(
        &mut self,
        wanted: BTreeMap<String, S>,
        mut spawn: impl FnMut(&S, CancellationToken) -> JoinHandle<()>,
        mut gone: impl FnMut(&str),
    ) -> ReloadSummary {
        let mut summary = ReloadSummary::default();
        let labels: Vec<String> = self.tasks.keys().cloned().collect();
        for label in labels {
            let same = self
                .tasks
                .get(&label)
                .is_some_and(|e| wanted.get(&label) == Some(&e.spec));
            if same {
                summary.kept += 1;
                continue;
            }
            self.stop(&label).await;
            if wanted.contains_key(&label) {
                summary.restarted.push(label);
            } else {
                gone(&label);
                summary.removed.push(label);
            }
        }
        for (label, spec) in wanted {
            if self.tasks.contains_key(&label) {
                continue;
            }
            if !summary.restarted.contains(&label) {
                summary.added.push(label.clone());
            }
            self.start(label, spec, &mut spawn);
        }
        summary
    }

    /// Stops every task, waits for them, and calls `gone` for each label.
    pub async fn stop_all(&mut self, mut gone: impl FnMut(&str)) {
        for e in self.tasks.values() {
            e.stop.cancel();
        }
        for (label, e) in std::mem::take(&mut self.tasks) {
            let _ = e.task.await;
            gone(&label);
        }
    }
}

/// What a poller is started with; equal specs keep the running poller and its connection.
#[derive(Debug, Clone)]
pub struct PollerSpec {
    pub target: Target,
    pub top_k: usize,
    pub idle_threshold_seconds: u64,
    /// Cluster or Sentinel labels; not part of equality (a role seen at discovery may change
    /// without the node's poller needing a restart).
    pub topology: Option<Arc<Topology>>,
}

impl PartialEq for PollerSpec {
    fn eq(&self, o: &Self) -> bool {
        self.target == o.target
            && self.top_k == o.top_k
            && self.idle_threshold_seconds == o.idle_threshold_seconds
    }
}

impl PollerSpec {
    pub fn spawn(&self, store: &Arc<Store>, stop: CancellationToken) -> JoinHandle<()> {
        let mut poller = crate::targets::poller::Poller::new(
            self.target.clone(),
            Arc::clone(store),
            self.top_k,
            self.idle_threshold_seconds,
        );
        if let Some(t) = &self.topology {
            poller = poller.with_topology(Arc::clone(t));
        }
        // Relief reaches a target only through its poller's queue (src/relief).
        let (jobs, queue) = tokio::sync::mpsc::channel(crate::targets::jobs::QUEUE);
        store.actions.register(&self.target, jobs);
        poller = poller.with_relief(queue);
        tokio::spawn(poller.run(stop))
    }
}

/// Reconciles pollers against `wanted` targets in `store`: the series of stopped ones go.
pub async fn reconcile_pollers(
    set: &mut TaskSet<PollerSpec>,
    wanted: BTreeMap<String, PollerSpec>,
    store: &Arc<Store>,
) -> ReloadSummary {
    set.reconcile(
        wanted,
        |spec, stop| spec.spawn(store, stop),
        |label| store.remove(label),
    )
    .await
}
