//! The published lookup: address → owner, from every source at once (Kubernetes first, then
//! the static map, then reverse DNS).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use crate::analysis::aggregate::{Identified, SourceIdentity};
use crate::config::identity::Cidr;

/// Who holds an address, and since when (unix seconds) when a source knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// Bounded to a label's length.
    pub workload: String,
    pub since_unix: Option<u64>,
}

/// One immutable view of every source, swapped whole by the refresh task.
#[derive(Debug, Default)]
pub struct IdentitySnapshot {
    pub pods: Arc<HashMap<IpAddr, Owner>>,
    pub static_map: Arc<Vec<(Cidr, String)>>,
    pub dns: Arc<HashMap<IpAddr, String>>,
    /// Workload (`Deployment ns/name`) → its HorizontalPodAutoscaler's `maxReplicas`.
    pub max_replicas: Arc<HashMap<String, u32>>,
}

impl IdentitySnapshot {
    pub fn lookup(&self, ip: IpAddr) -> Option<Identified<'_>> {
        if let Some(o) = self.pods.get(&ip) {
            return Some(Identified {
                workload: &o.workload,
                since_unix: o.since_unix,
            });
        }
        if let Some(name) = crate::identity::static_map::find(&self.static_map, ip) {
            return Some(Identified {
                workload: name,
                since_unix: None,
            });
        }
        self.dns.get(&ip).map(|h| Identified {
            workload: h,
            since_unix: None,
        })
    }
}

impl SourceIdentity for IdentitySnapshot {
    fn identify(&self, ip: &str) -> Option<Identified<'_>> {
        // CLIENT LIST writes IPv6 without brackets; unix sockets have no address.
        let ip: IpAddr = ip.parse().ok()?;
        self.lookup(ip)
    }

    fn max_replicas(&self, workload: &str) -> Option<u32> {
        self.max_replicas.get(workload).copied()
    }
}
