//! A short, bounded per-target history of what the polls saw: enough to tell growth (a leak, a
//! scale-out) and rates (connection churn, refusals) from a single snapshot's shape.
//!
//! Memory is bounded twice: samples are kept at least `retention / MAX_SAMPLES` apart (the
//! newest is always kept, so rates between the last two entries stay fresh), and each sample
//! holds only the top [`TOP_GROUPS`] sources and client names, whose keys are shared with the
//! previous sample (the same pods stay on top from one poll to the next): about 30 kB per target.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use crate::aggregate::{ClientListSummary, GroupStats, OTHER};
use crate::info::Info;

/// How far back the daemon's history reaches.
pub const RETENTION: Duration = Duration::from_secs(3600);
/// Samples kept over the retention window (plus the newest).
pub const MAX_SAMPLES: usize = 60;
/// Sources and names kept per sample.
pub const TOP_GROUPS: usize = 10;

/// One group's counts at one time.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupCount {
    pub key: Arc<str>,
    pub connections: u64,
    /// Idle at least the threshold and not a pub/sub subscriber: leak candidates.
    pub idle: u64,
}

/// What one poll saw, reduced to what trends need.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sample {
    /// Unix time, seconds.
    pub at: f64,
    pub connections: u64,
    pub distinct_sources: u64,
    pub limit_connections: Option<f64>,
    pub total_connections_received: Option<f64>,
    pub rejected_connections: Option<f64>,
    pub sources: Vec<GroupCount>,
    pub names: Vec<GroupCount>,
}

fn top(groups: &[(String, GroupStats)], prev: &[GroupCount]) -> Vec<GroupCount> {
    groups
        .iter()
        .filter(|(k, _)| k != OTHER)
        .take(TOP_GROUPS)
        .map(|(k, v)| GroupCount {
            key: prev
                .iter()
                .find(|g| &*g.key == k.as_str())
                .map_or_else(|| Arc::from(k.as_str()), |g| Arc::clone(&g.key)),
            connections: v.connections,
            idle: v.idle_unused(),
        })
        .collect()
}

impl Sample {
    /// `prev` is the sample before this one, whose keys are reused.
    pub fn new(at: f64, info: &Info, clients: &ClientListSummary, prev: Option<&Sample>) -> Sample {
        let (ps, pn) = prev.map_or((&[][..], &[][..]), |p| (&p.sources[..], &p.names[..]));
        Sample {
            at,
            connections: clients.connections,
            distinct_sources: clients.distinct_sources,
            limit_connections: info.limit_connections(),
            total_connections_received: info.total_connections_received,
            rejected_connections: info.rejected_connections,
            sources: top(&clients.by_source, ps),
            names: top(&clients.by_name, pn),
        }
    }

    /// This sample's connection count of a source (`by_name == false`) or a name; 0 when it was
    /// not among the top groups then.
    pub fn count_of(&self, key: &str, by_name: bool) -> u64 {
        let groups = if by_name { &self.names } else { &self.sources };
        groups
            .iter()
            .find(|g| &*g.key == key)
            .map_or(0, |g| g.connections)
    }
}

/// The bounded history of one target. See the module docs.
#[derive(Debug, Clone)]
pub struct History {
    retention: f64,
    spacing: f64,
    samples: VecDeque<Sample>,
}

impl History {
    pub fn new(retention: Duration) -> Self {
        let retention = retention.as_secs_f64().max(1.0);
        Self {
            retention,
            spacing: retention / MAX_SAMPLES as f64,
            samples: VecDeque::with_capacity(MAX_SAMPLES + 2),
        }
    }

    pub fn push(&mut self, sample: Sample) {
        let n = self.samples.len();
        // The newest sample is replaced rather than kept when it is too close to the one
        // before it: spacing bounds the count, and the latest poll is always present.
        if n >= 2 && self.samples[n - 1].at - self.samples[n - 2].at < self.spacing {
            self.samples.pop_back();
        }
        let cutoff = sample.at - self.retention;
        self.samples.push_back(sample);
        while self.samples.len() > 1 && self.samples.front().is_some_and(|s| s.at < cutoff) {
            self.samples.pop_front();
        }
    }

    /// Oldest first, without copying (the diagnosis reads it after every poll).
    pub fn samples(&mut self) -> &[Sample] {
        self.samples.make_contiguous()
    }

    pub fn last(&self) -> Option<&Sample> {
        self.samples.back()
    }

    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(t: f64) -> Sample {
        Sample {
            at: t,
            ..Sample::default()
        }
    }

    #[test]
    fn bounded_and_keeps_the_newest() {
        let mut h = History::new(Duration::from_secs(120)); // spacing 1 s
        for i in 0..10_000 {
            h.push(at(f64::from(i) * 0.25));
        }
        let s = h.samples().to_vec();
        assert!(s.len() <= MAX_SAMPLES + 2, "{}", s.len());
        assert_eq!(s.last().map(|s| s.at), Some(9999.0 * 0.25));
        assert!(s[0].at >= 9999.0 * 0.25 - 120.0);
        for w in s.windows(2).take(s.len().saturating_sub(2)) {
            assert!(w[1].at - w[0].at >= 1.0, "{} {}", w[0].at, w[1].at);
        }
    }

    #[test]
    fn keys_are_shared_with_the_previous_sample() {
        use crate::aggregate::Aggregator;
        let reply = "id=1 addr=10.0.0.1:1 name=a age=1 idle=1 cmd=get\nid=2 addr=10.0.0.2:1 name=b age=1 idle=1 cmd=get\n";
        let summary = Aggregator::new(60).summarize(reply, 10);
        let info = Info::default();
        let a = Sample::new(1.0, &info, &summary, None);
        let b = Sample::new(2.0, &info, &summary, Some(&a));
        assert_eq!(a.sources.len(), 2);
        for (x, y) in a.sources.iter().zip(&b.sources) {
            assert!(Arc::ptr_eq(&x.key, &y.key), "{}", x.key);
        }
        assert_eq!(b.count_of("10.0.0.2", false), 1);
    }

    #[test]
    fn count_of_absent_group_is_zero() {
        let mut s = at(0.0);
        s.sources.push(GroupCount {
            key: "10.0.0.1".into(),
            connections: 5,
            idle: 1,
        });
        assert_eq!(s.count_of("10.0.0.1", false), 5);
        assert_eq!(s.count_of("10.0.0.2", false), 0);
        assert_eq!(s.count_of("10.0.0.1", true), 0);
    }
}
