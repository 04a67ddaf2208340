//! The per-target machinery: the store every handler reads, the pollers that hold one
//! connection per Redis, their reconciliation on reload, discovery of cluster and Sentinel
//! nodes and of the targets file, the `/scrape` targets, and the one-shot `diagnose` command's
//! observation.

pub mod discovery;
pub mod dynamic;
pub mod jobs;
pub mod poller;
pub mod reconcile;
pub mod state;
pub mod triage;
