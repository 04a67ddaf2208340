//! A culprit in the user's words: the workload (src/identity) that holds a group's connections,
//! "Deployment billing/report-worker (3 pods: 10.42.1.7, 10.42.2.9, ...)", when one does.
//! Without an identity layer the summary has no workloads and nothing changes.

use crate::analysis::aggregate::{
    ClientListSummary, Dimension, GroupStats, WorkloadMembers, OTHER,
};

/// Addresses a culprit text lists before `...`.
const LISTED: usize = 3;

/// The workload that holds the group `kind key` (its `unused` connections): for an address,
/// the workload it belongs to; for a broader group (a name, unnamed connections, a /24, a
/// library), the one workload whose unused connections are those of the group (80% to 125%
/// of them), so that a fleet over pods on several nodes is named as its Deployment.
pub(super) fn culprit_workload(
    c: &ClientListSummary,
    kind: Dimension,
    key: &str,
    unused: u64,
) -> Option<String> {
    if c.workloads.is_empty() {
        return None;
    }
    let members = match kind {
        Dimension::SourceIp => c
            .workloads
            .iter()
            .find(|m| m.sources.iter().any(|s| s == key))?,
        _ => {
            let (name, _) = c
                .by_workload
                .iter()
                .filter(|(k, _)| k != OTHER && c.workloads.iter().any(|m| &m.workload == k))
                .max_by_key(|(_, g)| g.unused())
                .filter(|(_, g)| fits(g, unused))?;
            c.workloads.iter().find(|m| &m.workload == name)?
        }
    };
    Some(describe(members))
}

fn fits(g: &GroupStats, unused: u64) -> bool {
    let (w, u) = (g.unused() as f64, unused as f64);
    u > 0.0 && w >= 0.8 * u && w <= 1.25 * u
}

/// `Deployment billing/report-worker (3 pods: 10.0.1.1, 10.0.1.2, 10.0.2.1)`.
pub(super) fn describe(m: &WorkloadMembers) -> String {
    let kube = [
        "Deployment ",
        "StatefulSet ",
        "DaemonSet ",
        "ReplicaSet ",
        "Job ",
        "Pod ",
    ]
    .iter()
    .any(|k| m.workload.starts_with(k));
    let unit = match (kube, m.instances) {
        (true, 1) => "pod",
        (true, _) => "pods",
        (false, 1) => "address",
        (false, _) => "addresses",
    };
    let mut shown: Vec<&str> = m.sources.iter().take(LISTED).map(String::as_str).collect();
    if m.instances as usize > shown.len() {
        shown.push("...");
    }
    format!(
        "{} ({} {unit}: {})",
        m.workload,
        m.instances,
        shown.join(", ")
    )
}
