//! Fleet detection: which source addresses are instances of one service (by client name,
//! library, /24, or all together), how many, since when, with what pools, and the latest
//! step in their ages (what a scale-out leaves in CLIENT LIST).

use super::counts::{Counts, NO_SLOT};
use super::{AgeStep, Aggregator, Fleet, FleetKind, GroupStats};

/// The `a.b.c` of an IPv4 source address (four parts of one to three digits; `None` for IPv6,
/// unix sockets and anything else): its /24. One pass over the bytes (it runs once per source
/// per snapshot).
pub fn ipv4_prefix(ip: &str) -> Option<&str> {
    let (mut dots, mut run, mut last_dot) = (0, 0, 0);
    for (i, b) in ip.bytes().enumerate() {
        match b {
            b'0'..=b'9' if run < 3 => run += 1,
            b'.' if run > 0 && dots < 3 => {
                dots += 1;
                run = 0;
                last_dot = i;
            }
            _ => return None,
        }
    }
    (dots == 3 && run > 0).then(|| &ip[..last_dot])
}

/// One instance (source) as a member of one fleet, for the fleet evidence.
#[derive(Debug, Clone, Copy)]
pub(super) struct InstanceRow {
    /// Kind, slot and age packed so that rows sort by one integer compare: kind in the top
    /// byte, the slot below it, the age (seconds, capped at 2^48) in the low 48 bits.
    order: u128,
    kind: FleetKind,
    slot: u32,
    age: u64,
    connections: u64,
    idle: u64,
}

impl Aggregator {
    /// The /24 groups and the fleets of this snapshot. Runs before the maps are pruned: the
    /// sources' name and library slots are valid until then. Costs one sort of the sources
    /// (not of the lines); the scratch vectors keep their capacity.
    pub(super) fn fleets(&mut self, top_k: usize) -> Vec<Fleet> {
        self.instance_rows();
        let Self {
            names,
            libs,
            prefixes,
            rows,
            pools,
            ..
        } = self;
        // Each run of rows is one fleet: its stats, then the top K per kind get their keys.
        let mut stats: Vec<(FleetKind, u32, Fleet)> = Vec::new();
        let mut at = 0;
        while at < rows.len() {
            let (kind, slot) = (rows[at].kind, rows[at].slot);
            let end = at
                + rows[at..]
                    .iter()
                    .take_while(|r| r.kind == kind && r.slot == slot)
                    .count();
            let run = &rows[at..end];
            if run.len() >= 2 || kind == FleetKind::All {
                stats.push((kind, slot, fleet_of(kind, run, pools)));
            }
            at = end;
        }
        let mut out = Vec::new();
        for kind in FleetKind::ALL {
            let map = match kind {
                FleetKind::All => None,
                FleetKind::Name => Some(&*names),
                FleetKind::Lib => Some(&*libs),
                FleetKind::Prefix => Some(&*prefixes),
            };
            out.extend(top_of_kind(kind, map, &stats, top_k));
        }
        out
    }

    /// Builds the /24 groups from the sources and one row per instance per fleet it belongs
    /// to, sorted so that each fleet's rows are one run, youngest first.
    fn instance_rows(&mut self) {
        let Self {
            sources,
            prefixes,
            rows,
            ..
        } = self;
        prefixes.reset();
        rows.clear();
        for (ip, &i) in &sources.index {
            let s = sources.slots[i];
            if s.g.connections == 0 {
                continue;
            }
            let prefix = ipv4_prefix(ip).map(|p| {
                let slot = prefixes.slot(p);
                prefixes.slots[slot].merge(&s.g);
                slot as u32
            });
            if s.g.clients() == 0 {
                // Only our own connection: not a client instance.
                continue;
            }
            let row = |kind: FleetKind, slot: u32| InstanceRow {
                order: (u128::from(kind as u8) << 96)
                    | (u128::from(slot) << 48)
                    | u128::from(s.g.oldest_age_seconds.min((1 << 48) - 1)),
                kind,
                slot,
                age: s.g.oldest_age_seconds,
                connections: s.g.clients(),
                idle: s.g.idle_unused(),
            };
            rows.push(row(FleetKind::All, 0));
            if s.name != NO_SLOT {
                rows.push(row(FleetKind::Name, s.name));
            }
            if s.lib != NO_SLOT {
                rows.push(row(FleetKind::Lib, s.lib));
            }
            if let Some(p) = prefix {
                rows.push(row(FleetKind::Prefix, p));
            }
        }
        rows.sort_unstable_by_key(|r| r.order);
    }
}

/// The `top_k` fleets of one kind by connections, with their keys (from the map whose slots
/// the fleets name; none for [`FleetKind::All`]).
fn top_of_kind(
    kind: FleetKind,
    map: Option<&Counts<GroupStats>>,
    stats: &[(FleetKind, u32, Fleet)],
    top_k: usize,
) -> Vec<Fleet> {
    let mut keys: Vec<&str> = vec![""; map.map_or(1, |m| m.slots.len())];
    for (k, &i) in map.iter().flat_map(|m| m.index.iter()) {
        keys[i] = k;
    }
    let mut of_kind: Vec<(&str, &Fleet)> = stats
        .iter()
        .filter(|(k, _, _)| *k == kind)
        .map(|(_, s, f)| (keys.get(*s as usize).copied().unwrap_or(""), f))
        .collect();
    // Ties broken by key: the same fleets whichever order the slots were made in.
    of_kind.sort_by(|a, b| b.1.connections.cmp(&a.1.connections).then(a.0.cmp(b.0)));
    of_kind.truncate(top_k.max(1));
    of_kind
        .into_iter()
        .map(|(k, f)| Fleet {
            key: match kind {
                FleetKind::Prefix => format!("{k}.0/24"),
                _ => k.to_string(),
            },
            ..f.clone()
        })
        .collect()
}

/// One fleet's evidence from its instances, sorted by age (youngest first).
fn fleet_of(kind: FleetKind, run: &[InstanceRow], pools: &mut Vec<u64>) -> Fleet {
    let mut f = Fleet {
        kind,
        instances: run.len() as u64,
        oldest_age_seconds: run.last().map_or(0, |r| r.age),
        ..Fleet::default()
    };
    let (mut young_conns, mut young_idle) = (0u64, 0u64);
    for (i, r) in run.iter().enumerate() {
        f.connections = f.connections.saturating_add(r.connections);
        f.idle_unused = f.idle_unused.saturating_add(r.idle);
        f.max_idle_per_instance = f.max_idle_per_instance.max(r.idle);
        young_conns = young_conns.saturating_add(r.connections);
        young_idle = young_idle.saturating_add(r.idle);
        // The latest step wins: the largest set of instances that appeared after the others.
        if let Some(next) = run.get(i + 1) {
            if next.age + 1 >= 2 * (r.age + 1) && next.age >= r.age + 2 {
                f.step = Some(AgeStep {
                    young_instances: i as u64 + 1,
                    young_connections: young_conns,
                    young_idle,
                    young_oldest_age: r.age,
                    old_youngest_age: next.age,
                });
            }
        }
    }
    pools.clear();
    pools.extend(run.iter().map(|r| r.connections));
    let mid = pools.len() / 2;
    if !pools.is_empty() {
        let (_, m, _) = pools.select_nth_unstable(mid);
        f.pool_median = *m;
    }
    let m = f.pool_median;
    f.similar_pools = run
        .iter()
        .filter(|r| 2 * r.connections >= m && 2 * r.connections <= 3 * m)
        .count() as u64;
    f
}
