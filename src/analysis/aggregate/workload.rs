//! The `workload` dimension: connections grouped by who their source address is (a Deployment,
//! a host, a static map's service), when an identity layer (src/identity) is configured.
//!
//! The aggregator does not know how an address becomes a workload: it asks a
//! [`SourceIdentity`] (defined here, implemented above, in src/identity) once per source per
//! snapshot, never per line, and the answer is a lookup in a snapshot the identity layer
//! published beforehand (no I/O, no lock held). Without one, none of this runs: the hot path,
//! the series and the memory of a target are what they were.
//!
//! An address may have changed hands: a pod IP reused by a new pod. The identity says since
//! when its owner has had it; a connection older than that (with [`START_SLACK_SECONDS`] of
//! clock skew allowed) was opened by an earlier owner and is counted under the bare address,
//! never under the new owner.

use std::sync::Arc;

use super::counts::{fold, Count, Counts, NO_SLOT};
use super::group::LineFacts;
use super::{GroupStats, OTHER};

/// Connections this much older than their address' owner are still its own (clocks of the
/// Kubernetes API and Redis differ; a pod connects after it starts, never before).
pub const START_SLACK_SECONDS: u64 = 5;

/// Addresses listed per workload in [`WorkloadMembers::sources`].
pub const MEMBERS_LISTED: usize = 256;

/// Who a source address is, as the identity layer knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identified<'a> {
    /// `Deployment billing/report-worker`, `host orders-worker-3.prod`, a static map's name:
    /// already bounded to a label's length.
    pub workload: &'a str,
    /// Unix time (seconds) since which this owner has held the address, when known (a pod's
    /// start time): older connections are an earlier owner's.
    pub since_unix: Option<u64>,
}

/// The identity layer's view of source addresses, published as an immutable snapshot.
pub trait SourceIdentity: Send + Sync {
    /// Who `ip` (as CLIENT LIST writes it) is, if known.
    fn identify(&self, ip: &str) -> Option<Identified<'_>>;

    /// The most instances `workload` may scale to (a HorizontalPodAutoscaler's `maxReplicas`),
    /// when known.
    fn max_replicas(&self, _workload: &str) -> Option<u32> {
        None
    }
}

/// One workload's addresses in a snapshot: how many, and the first few (sorted).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WorkloadMembers {
    pub workload: String,
    /// Distinct source addresses (pods, hosts) with connections counted for the workload.
    pub instances: u64,
    /// At most [`MEMBERS_LISTED`], sorted.
    pub sources: Vec<String>,
    /// Its HorizontalPodAutoscaler's `maxReplicas`, when it has one.
    pub max_replicas: Option<u32>,
}

/// A source's answer, asked once per snapshot.
#[derive(Debug, Clone, Copy)]
struct SourceWorkload {
    lines: u64,
    /// Connections counted for the workload (not older than its owner).
    credited: u64,
    asked: bool,
    workload: u32,
    max_age: u64,
}

impl Default for SourceWorkload {
    fn default() -> Self {
        Self {
            lines: 0,
            credited: 0,
            asked: false,
            workload: NO_SLOT,
            max_age: u64::MAX,
        }
    }
}

impl Count for SourceWorkload {
    fn weight(&self) -> u64 {
        self.lines
    }
    fn absorb(&mut self, o: &Self) {
        self.lines = self.lines.saturating_add(o.lines);
        self.credited = self.credited.saturating_add(o.credited);
    }
}

/// The aggregator's workload state (only when an identity is set).
pub(super) struct WorkloadState {
    identity: Arc<dyn SourceIdentity>,
    now_unix: u64,
    sources: Counts<SourceWorkload>,
    workloads: Counts<GroupStats>,
}

impl WorkloadState {
    pub(super) fn new(identity: Arc<dyn SourceIdentity>, now_unix: u64) -> Self {
        Self {
            identity,
            now_unix,
            sources: Counts::default(),
            workloads: Counts::default(),
        }
    }

    /// A new identity snapshot and clock for the next listing; the maps stay warm.
    pub(super) fn set(&mut self, identity: Arc<dyn SourceIdentity>, now_unix: u64) {
        self.identity = identity;
        self.now_unix = now_unix;
    }

    pub(super) fn begin(&mut self) {
        self.sources.reset();
        self.workloads.reset();
    }

    /// One line from (bounded) source `ip`, `age` seconds old.
    pub(super) fn add(&mut self, ip: &str, age: Option<u64>, facts: &LineFacts) {
        let i = self.sources.slot(ip);
        if !self.sources.slots[i].asked {
            let mut s = SourceWorkload {
                asked: true,
                ..Default::default()
            };
            if let Some(who) = self.identity.identify(ip) {
                s.workload = self.workloads.slot(who.workload) as u32;
                if let Some(since) = who.since_unix {
                    s.max_age = self
                        .now_unix
                        .saturating_sub(since)
                        .saturating_add(START_SLACK_SECONDS);
                }
            }
            self.sources.slots[i] = s;
        }
        let s = &mut self.sources.slots[i];
        s.lines += 1;
        let owned = s.workload != NO_SLOT && age.unwrap_or(0) <= s.max_age;
        if owned {
            s.credited += 1;
            let w = s.workload as usize;
            self.workloads.slots[w].add(facts);
        } else {
            // Unknown, or an earlier owner's connection: the address itself.
            self.workloads.entry(ip).add(facts);
        }
    }

    /// The dimension folded to top K + `other`, and the members of each workload named.
    pub(super) fn finish(
        &mut self,
        top_k: usize,
    ) -> (Vec<(String, GroupStats)>, Vec<WorkloadMembers>) {
        let folded = fold(self.workloads.iter(), top_k, GroupStats::merge);
        let mut members = Vec::new();
        for (name, _) in folded.iter().filter(|(k, _)| k != OTHER) {
            let Some(&slot) = self.workloads.index.get(name.as_str()) else {
                continue;
            };
            let mut ips: Vec<&str> = self
                .sources
                .iter()
                .filter(|(_, s)| s.credited > 0 && s.workload as usize == slot)
                .map(|(k, _)| k)
                .collect();
            if ips.is_empty() {
                continue;
            }
            ips.sort_unstable();
            members.push(WorkloadMembers {
                workload: name.clone(),
                instances: ips.len() as u64,
                sources: ips
                    .iter()
                    .take(MEMBERS_LISTED)
                    .map(|s| s.to_string())
                    .collect(),
                max_replicas: self.identity.max_replicas(name),
            });
        }
        self.sources.prune();
        self.workloads.prune();
        (folded, members)
    }

    pub(super) fn shrink(&mut self) {
        self.sources.shrink();
        self.workloads.shrink();
    }
}
