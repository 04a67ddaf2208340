//! Sharding targets over exporter replicas: replica `i` of `N` polls and exports only the
//! targets whose label hashes to `i` (`shard = "i/N"`, `--shard i/N`, or `shard = "ordinal/N"`
//! with `i` taken from the host name's `-<ordinal>` suffix, as a Kubernetes StatefulSet names
//! its pods).
//!
//! The hash is 64-bit FNV-1a of the target label's UTF-8 bytes (the `target` label of every
//! series: the alias, or the address; a discovered node's `cluster/host:port`), modulo `N`. It
//! is fixed (no seed), so every replica, every restart and every version agree on the owner of
//! a target, and a target moves only when `N` changes. FNV-1a is also what `label.rs` uses to
//! tag a cut label value: one well-known function, with reference test vectors.
//!
//! In the config layer: it parses and validates the key; the targets layer only asks
//! [`Shard::owns`].

use std::fmt;

/// Where the replica's ordinal is read from for `ordinal/N`: this variable when set (Kubernetes
/// sets `HOSTNAME` to the pod name), else the kernel's host name.
pub const HOSTNAME_VAR: &str = "HOSTNAME";

/// This replica's share: index `index` of `count` (0 ≤ index < count).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl Default for Shard {
    /// One replica owns everything.
    fn default() -> Self {
        Shard { index: 0, count: 1 }
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// Why a `shard` value was refused (the config layer adds the key and the file).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ShardError(pub String);

/// The largest `N`: far beyond any fleet, small enough that a typo (`0/20000000`) is caught.
pub const MAX_SHARDS: u32 = 10_000;

impl Shard {
    /// Parses `i/N` or `ordinal/N`; `hostname` is asked only for `ordinal`.
    pub fn parse(s: &str, hostname: impl FnOnce() -> Option<String>) -> Result<Shard, ShardError> {
        let bad = |why: String| ShardError(why);
        let (i, n) = s.trim().split_once('/').ok_or_else(|| {
            bad(format!(
                "`{s}` is not `i/N` (this replica's index, 0-based, of N replicas) or `ordinal/N`"
            ))
        })?;
        let count: u32 = n.trim().parse().map_err(|_| {
            bad(format!(
                "`{s}`: N must be a whole number of replicas, got `{n}`"
            ))
        })?;
        if count == 0 || count > MAX_SHARDS {
            return Err(bad(format!(
                "`{s}`: N must be between 1 and {MAX_SHARDS}, got {count}"
            )));
        }
        let index = if i.trim() == "ordinal" {
            let host = hostname().ok_or_else(|| {
                bad(format!(
                    "`{s}`: no host name to take the ordinal from (set {HOSTNAME_VAR})"
                ))
            })?;
            ordinal(&host).ok_or_else(|| {
                bad(format!(
                    "`{s}`: the host name `{}` does not end in `-<ordinal>` as a StatefulSet pod's does",
                    host.chars().take(64).collect::<String>()
                ))
            })?
        } else {
            i.trim().parse().map_err(|_| {
                bad(format!(
                    "`{s}`: i must be this replica's index (0-based) or `ordinal`, got `{i}`"
                ))
            })?
        };
        if index >= count {
            return Err(bad(format!(
                "`{s}`: the index must be below N (0 to {}), got {index}",
                count - 1
            )));
        }
        Ok(Shard { index, count })
    }

    /// True when there is only one replica.
    pub fn is_whole(&self) -> bool {
        self.count == 1
    }

    /// The shard that owns `label`.
    pub fn of(label: &str, count: u32) -> u32 {
        (fnv1a(label.as_bytes()) % u64::from(count.max(1))) as u32
    }

    /// True when this replica polls and exports `label`.
    pub fn owns(&self, label: &str) -> bool {
        self.is_whole() || Self::of(label, self.count) == self.index
    }
}

/// What this replica owns and skips, per source of targets (`targets`, `targets_file`,
/// `group:NAME`), for `redis_clients_exporter_shard_targets`.
#[derive(Debug, Default)]
pub struct Ledger {
    inner: std::sync::Mutex<(Shard, std::collections::BTreeMap<String, [u64; 2]>)>,
}

impl Ledger {
    pub fn configure(&self, shard: Shard) {
        self.lock().0 = shard;
    }

    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, (Shard, std::collections::BTreeMap<String, [u64; 2]>)> {
        // A poisoned lock only means a writer panicked between two plain stores.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `source` now has `owned` targets here and `skipped` ones left to other replicas.
    pub fn record(&self, source: &str, owned: usize, skipped: usize) {
        self.lock()
            .1
            .insert(source.to_string(), [owned as u64, skipped as u64]);
    }

    pub fn forget(&self, source: &str) {
        self.lock().1.remove(source);
    }

    /// The shard and, per source, `[owned, skipped]`.
    pub fn snapshot(&self) -> (Shard, Vec<(String, [u64; 2])>) {
        let g = self.lock();
        (g.0, g.1.iter().map(|(k, v)| (k.clone(), *v)).collect())
    }
}

/// The StatefulSet ordinal at the end of a pod name (`redis-clients-exporter-2` -> 2).
fn ordinal(host: &str) -> Option<u32> {
    let (_, digits) = host.trim().rsplit_once('-')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The host name when `HOSTNAME` is not in the environment given.
pub fn kernel_hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
}

/// The shard hash (`crate::hash`'s FNV-1a), here too because the shard rule names it.
pub use crate::hash::fnv1a;

#[cfg(test)]
mod tests {
    use super::*;

    fn no_host() -> Option<String> {
        None
    }

    #[test]
    fn parses_and_validates() {
        assert_eq!(
            Shard::parse("1/3", no_host),
            Ok(Shard { index: 1, count: 3 })
        );
        assert_eq!(Shard::parse(" 0 / 1 ", no_host), Ok(Shard::default()));
        for bad in ["3/3", "0/0", "1", "a/2", "-1/2", "1/x", "", "0/10001"] {
            assert!(Shard::parse(bad, no_host).is_err(), "{bad}");
        }
        let host = |h: &str| {
            let h = h.to_string();
            move || Some(h)
        };
        assert_eq!(
            Shard::parse("ordinal/3", host("redis-clients-exporter-2")),
            Ok(Shard { index: 2, count: 3 })
        );
        let e = Shard::parse("ordinal/2", host("redis-clients-exporter-2")).unwrap_err();
        assert!(e.0.contains("below N"), "{e}");
        assert!(Shard::parse("ordinal/2", host("exporter")).is_err());
        assert!(Shard::parse("ordinal/2", host("exporter-")).is_err());
        assert!(Shard::parse("ordinal/2", no_host).is_err());
    }

    #[test]
    fn every_label_has_exactly_one_owner() {
        for n in 1..6 {
            for t in 0..200 {
                let label = format!("t{t:03}");
                let owners = (0..n)
                    .filter(|&i| Shard { index: i, count: n }.owns(&label))
                    .count();
                assert_eq!(owners, 1, "{label} of {n}");
            }
        }
    }
}
