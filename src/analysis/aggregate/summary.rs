//! What an aggregated snapshot says: the [`ClientListSummary`] (folded to top K + `other`),
//! the [`Dimension`]s connections are grouped by, and the fleet evidence ([`Fleet`]).

use super::details::ClientDetails;
use super::{Distribution, GroupStats};
use crate::redis::client_list::{PerFlag, PerType};

/// The aggregates of one CLIENT LIST snapshot, already folded to top K + `other`.
/// Each `Vec` is sorted by connection count, largest first, `other` (if any) last.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClientListSummary {
    /// Lines parsed (connections seen).
    pub connections: u64,
    /// Lines that could not be parsed and were skipped.
    pub parse_errors: u64,
    pub by_source: Vec<(String, GroupStats)>,
    pub by_name: Vec<(String, GroupStats)>,
    /// Per client library (`lib-name`, Redis 7.2+ / Valkey 8.1+, when the client set it).
    pub by_lib: Vec<(String, GroupStats)>,
    /// Per IPv4 /24 of the source address, keyed `a.b.c.0/24`.
    pub by_prefix: Vec<(String, GroupStats)>,
    /// Instance evidence per service (client name, library, /24, and all sources together):
    /// how many source addresses, since when, each with how many connections. Top K per kind
    /// by connections, only services of at least two instances, plus the `All` fleet.
    pub fleets: Vec<Fleet>,
    /// Distinct sources other than the exporter's own connection: client instances.
    pub instances: u64,
    /// The sources with the most young connections (at most [`YOUNG_SECONDS`](super::YOUNG_SECONDS) old), largest
    /// first, [`TOP_YOUNG`](super::TOP_YOUNG) of them (or every source when there are fewer; counts may be 0):
    /// who connects per request, whether or not it is among the top sources by connections.
    pub young_sources: Vec<(String, u64)>,
    pub by_user: Vec<(String, u64)>,
    pub by_command: Vec<(String, u64)>,
    pub by_type: PerType,
    /// Connections idle at least the threshold, per type.
    pub idle_by_type: PerType,
    pub by_flag: PerFlag,
    /// Channel, pattern and shard subscriptions.
    pub subscriptions: [u64; 3],
    pub output_buffer_bytes: u64,
    pub distinct_sources: u64,
    pub idle: Distribution,
    pub age: Distribution,
    /// Libraries, local ports, buffers and totals (src/extras.rs).
    pub details: ClientDetails,
    /// Values (source, name, user, command) longer than [`MAX_LABEL_BYTES`](crate::redis::label::MAX_LABEL_BYTES) in this snapshot,
    /// counted under their bounded form (see [`crate::redis::label`]).
    pub truncated_values: u64,
    /// Per workload (src/identity: a Deployment, a host, a static map's name; an address
    /// nobody claims stays itself). Empty unless an identity layer is configured.
    pub by_workload: Vec<(String, GroupStats)>,
    /// The addresses of each workload named in `by_workload`.
    pub workloads: Vec<super::WorkloadMembers>,
}

/// A dimension connections are grouped by, as a finding names its culprit (`source_ip
/// 10.0.0.5`, `client_name orders-api`) and as the history keeps groups. Serialized as that
/// name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Dimension {
    SourceIp,
    ClientName,
    LibName,
    /// The IPv4 /24 of the source address.
    AddressPrefix,
    /// Every source address together (a fleet-wide leak).
    AllSources,
    /// The workload the identity layer names (src/identity): a Deployment's pods, a host.
    Workload,
}

impl Dimension {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SourceIp => "source_ip",
            Self::ClientName => "client_name",
            Self::LibName => "lib_name",
            Self::AddressPrefix => "address_prefix",
            Self::AllSources => "all_sources",
            Self::Workload => "workload",
        }
    }
}

impl std::fmt::Display for Dimension {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which attribute groups source addresses into one service's fleet of instances.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum FleetKind {
    /// Every source address: the server's whole population of clients.
    #[default]
    All,
    /// The client name of the instance's connections.
    Name,
    /// The client library (`lib-name`).
    Lib,
    /// The IPv4 /24 of the address (pods of one node, hosts of one subnet).
    Prefix,
}

impl FleetKind {
    /// The culprit kind a finding names (`client_name orders-api`, `address_prefix 10.0.3.0/24`).
    pub fn dimension(self) -> Dimension {
        match self {
            Self::All => Dimension::AllSources,
            Self::Name => Dimension::ClientName,
            Self::Lib => Dimension::LibName,
            Self::Prefix => Dimension::AddressPrefix,
        }
    }

    pub fn as_str(self) -> &'static str {
        self.dimension().as_str()
    }

    pub(super) const ALL: [FleetKind; 4] = [Self::All, Self::Name, Self::Lib, Self::Prefix];
}

/// A jump in the instances' ages: the youngest instances appeared well after the others (the
/// oldest of them is at most half as old as the youngest of the rest, and at least 2 s
/// younger). What a scale-out leaves in CLIENT LIST whenever it happened: each instance's
/// oldest connection says since when it exists.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AgeStep {
    /// Instances on the young side of the step, their connections and idle (unused) ones.
    pub young_instances: u64,
    pub young_connections: u64,
    pub young_idle: u64,
    /// The oldest young instance's age, and the youngest old instance's age: the step
    /// happened between these many seconds ago.
    pub young_oldest_age: u64,
    pub old_youngest_age: u64,
}

/// One service's instances (distinct source addresses; the exporter's own connection is not
/// one) and their connections: the evidence for scale-outs and fleet-wide leaks.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Fleet {
    pub kind: FleetKind,
    /// The name, library or `a.b.c.0/24`; empty for [`FleetKind::All`].
    pub key: String,
    pub instances: u64,
    /// Connections of these instances (all of each instance's connections: an instance is
    /// counted in the service of its first connection in the snapshot).
    pub connections: u64,
    pub idle_unused: u64,
    /// The oldest instance's age.
    pub oldest_age_seconds: u64,
    /// The median connections per instance, and how many instances hold within ±50% of it.
    pub pool_median: u64,
    pub similar_pools: u64,
    /// The most idle (unused) connections any one instance holds.
    pub max_idle_per_instance: u64,
    /// The latest step in the instances' ages, when there is one (see [`AgeStep`]).
    pub step: Option<AgeStep>,
}
