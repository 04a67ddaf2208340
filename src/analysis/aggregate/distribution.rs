//! Snapshot distributions of the aggregator (idle time, connection age): counts per bucket
//! of [`BUCKETS`], exported as Prometheus histograms of one snapshot.

/// Upper bounds of the idle-age and connection-age distributions, in seconds.
pub const BUCKETS: [u64; 9] = [1, 10, 60, 300, 600, 1800, 3600, 21600, 86400];

/// A snapshot distribution: cumulative counts per bucket of [`BUCKETS`] plus the sum and count.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Distribution {
    /// Non-cumulative counts; index `BUCKETS.len()` holds the observations above the last bound.
    counts: [u64; BUCKETS.len() + 1],
    pub sum: u64,
    pub count: u64,
}

impl Distribution {
    pub(super) fn observe(&mut self, v: u64) {
        let i = BUCKETS
            .iter()
            .position(|&b| v <= b)
            .unwrap_or(BUCKETS.len());
        self.counts[i] += 1;
        // Values come from the network: a hostile or broken reply must not overflow a sum.
        self.sum = self.sum.saturating_add(v);
        self.count += 1;
    }

    pub(super) fn merge(&mut self, o: &Distribution) {
        for (a, b) in self.counts.iter_mut().zip(o.counts) {
            *a = a.saturating_add(b);
        }
        self.sum = self.sum.saturating_add(o.sum);
        self.count = self.count.saturating_add(o.count);
    }

    /// `(upper bound, cumulative count)` for every finite bucket, as Prometheus wants them.
    pub fn cumulative(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        BUCKETS
            .iter()
            .zip(self.counts.iter())
            .scan(0u64, |acc, (&b, &c)| {
                *acc = acc.saturating_add(c);
                Some((b, *acc))
            })
    }
}
