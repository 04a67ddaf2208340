//! The identity layer (issue 29): who a source address is, in the words of the people who run
//! it: `Deployment billing/report-worker` (kube-state-metrics through Prometheus), a static
//! map's service name (VMs, NAT gateways), `host orders-worker-3.prod` (reverse DNS).
//!
//! Sources are refreshed by one background task (`refresh.rs`), which publishes an immutable
//! [`IdentitySnapshot`]; a poller takes the current `Arc` (a short read lock) before it lists
//! CLIENT LIST and the aggregator asks it once per source per snapshot
//! ([`crate::analysis::aggregate::SourceIdentity`]). A poll never waits on Prometheus or DNS.
//! Off unless `[identity]` names a source: then there is no task and no snapshot.
//!
//! One job per file: `snapshot.rs` (the published lookup), `hub.rs` (what is in force, the
//! sources' status, the task), `static_map.rs`, `kube.rs` (kube-state-metrics series to pod
//! owners), `prometheus.rs` (the HTTP API client), `dns.rs` (PTR), `refresh.rs` (the task).

pub mod dns;
pub mod hub;
pub mod kube;
pub mod prometheus;
pub mod refresh;
pub mod snapshot;
pub mod static_map;

pub use hub::{IdentityHub, SourceStatus};
pub use snapshot::{IdentitySnapshot, Owner};
