//! The series a report draws, read from a target's bounded history: connections against
//! maxclients, the top groups of the culprit's kind (the culprit first), and when refusals
//! began and ended. Shared by the HTML chart (`web/svg.rs`) and the text sparklines, so both
//! show the same groups. Bounded whatever the history holds: at most [`MAX_POINTS`] points
//! and [`MAX_GROUPS`] groups.

use std::fmt::Write;

use crate::analysis::aggregate::Dimension;
use crate::analysis::history::Sample;
use crate::diagnose::Report;
use crate::redis::client_list::CLIENT_NAME;

/// Points drawn per series: the history keeps ~61 samples; more would be thinned.
pub const MAX_POINTS: usize = 120;
/// Groups drawn besides "everything else".
pub const MAX_GROUPS: usize = 6;

/// One group's connections over the window; `None` where the sample may have folded it away.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub key: String,
    pub values: Vec<Option<u32>>,
    /// The report's culprit: drawn marked.
    pub culprit: bool,
}

impl Series {
    pub fn last(&self) -> u32 {
        self.values.last().copied().flatten().unwrap_or(0)
    }

    pub fn peak(&self) -> u32 {
        self.values.iter().flatten().copied().max().unwrap_or(0)
    }
}

/// A run of samples during which Redis refused connections.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Refusals {
    /// The sample before the first one that counted refusals (they began after it).
    pub from: f64,
    /// The last sample that counted refusals.
    pub to: f64,
    pub refused: f64,
    /// Still refusing at the newest sample.
    pub ongoing: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Timeline {
    /// Unix times of the points, oldest first.
    pub at: Vec<f64>,
    /// Everything counted against maxclients (clients + replicas + cluster bus), else
    /// CLIENT LIST's count.
    pub connections: Vec<u32>,
    pub maxclients: Vec<Option<u32>>,
    /// Which kind of group `groups` holds.
    pub kind: Dimension,
    pub groups: Vec<Series>,
    pub refusals: Vec<Refusals>,
}

/// The points kept of `n`: every one up to [`MAX_POINTS`], else evenly thinned, always with
/// the first and the newest.
fn kept(n: usize) -> Vec<usize> {
    if n <= MAX_POINTS {
        return (0..n).collect();
    }
    let step = (n - 1) as f64 / (MAX_POINTS - 1) as f64;
    (0..MAX_POINTS)
        .map(|i| ((i as f64 * step).round() as usize).min(n - 1))
        .collect()
}

fn groups_of(s: &Sample, kind: Dimension) -> Vec<crate::analysis::history::GroupCount> {
    match kind {
        Dimension::ClientName => s.names(),
        Dimension::LibName => s.libs(),
        Dimension::AddressPrefix => s.prefixes(),
        Dimension::SourceIp | Dimension::AllSources | Dimension::Workload => s.sources(),
    }
}

impl Timeline {
    /// The timeline of `history` (oldest first) for `report`: groups of its culprit's kind
    /// (sources when it has none), the culprit first, then the largest now. `None` with fewer
    /// than two samples: one point is no trend.
    pub fn of(history: &[&Sample], report: &Report) -> Option<Timeline> {
        if history.len() < 2 {
            return None;
        }
        let culprit = report
            .top_cause()
            .and_then(|f| f.selector.as_ref())
            .filter(|s| s.group != Dimension::AllSources);
        let kind = culprit.map_or(Dimension::SourceIp, |s| s.group);
        let idx = kept(history.len());
        let points: Vec<&Sample> = idx.iter().map(|&i| history[i]).collect();
        let newest = points[points.len() - 1];

        // The culprit, then the groups of the newest sample, then those seen earlier only.
        let mut keys: Vec<String> = Vec::new();
        if let Some(c) = culprit {
            keys.push(c.key.clone());
        }
        // (key, seen in the newest sample, its connections then): newest first, then largest.
        let mut rest: Vec<(std::sync::Arc<str>, bool, u32)> = Vec::new();
        for s in points.iter().rev() {
            // The exporter's own connection is no client's.
            for g in groups_of(s, kind)
                .into_iter()
                .filter(|g| &*g.key != CLIENT_NAME)
            {
                if !rest.iter().any(|(k, ..)| *k == g.key) {
                    rest.push((g.key, std::ptr::eq(*s, newest), g.connections));
                }
            }
        }
        rest.sort_by_key(|&(_, newest, n)| std::cmp::Reverse((newest, n)));
        for (k, ..) in rest {
            if keys.len() >= MAX_GROUPS {
                break;
            }
            if !keys.iter().any(|x| **x == *k) {
                keys.push(k.to_string());
            }
        }
        let groups: Vec<Series> = keys
            .into_iter()
            .map(|key| Series {
                culprit: culprit.is_some_and(|c| c.key == key),
                values: points
                    .iter()
                    .map(|s| s.counts(kind, &key).map(|(c, _)| c as u32))
                    .collect(),
                key,
            })
            // A group that never held a connection in the window (the exporter's own source)
            // says nothing; the culprit always stays.
            .filter(|g| g.culprit || g.peak() > 0)
            .collect();
        Some(Timeline {
            at: points.iter().map(|s| s.at).collect(),
            connections: points
                .iter()
                .map(|s| {
                    s.limit_connections()
                        .map_or(s.connections, |l| l.clamp(0.0, f64::from(u32::MAX)) as u32)
                })
                .collect(),
            maxclients: points.iter().map(|s| s.maxclients()).collect(),
            kind,
            groups,
            refusals: refusals(history),
        })
    }

    /// The chart's top: the largest of maxclients and the connections, at least 1.
    pub fn top(&self) -> u32 {
        let m = self.maxclients.iter().flatten().copied().max().unwrap_or(0);
        let c = self.connections.iter().copied().max().unwrap_or(0);
        m.max(c).max(1)
    }

    /// `45 s`, `12 minutes`: how far back the points reach.
    pub fn window_words(&self) -> String {
        let s = self.window_seconds().max(0.0);
        if s < 120.0 {
            format!("{s:.0} s")
        } else {
            format!("{:.0} minutes", s / 60.0)
        }
    }

    pub fn window_seconds(&self) -> f64 {
        match (self.at.first(), self.at.last()) {
            (Some(a), Some(b)) => b - a,
            _ => 0.0,
        }
    }
}

/// The runs of samples that counted refusals, over every sample (not only the kept points:
/// a refusal between two kept points is still shown).
fn refusals(history: &[&Sample]) -> Vec<Refusals> {
    let mut out: Vec<Refusals> = Vec::new();
    let mut open = false;
    for w in history.windows(2) {
        let refused = w[1].refused_since(w[0]).unwrap_or(0.0);
        if refused > 0.0 {
            match out.last_mut().filter(|_| open) {
                Some(r) => {
                    r.to = w[1].at;
                    r.refused += refused;
                }
                None => out.push(Refusals {
                    from: w[0].at,
                    to: w[1].at,
                    refused,
                    ongoing: false,
                }),
            }
            open = true;
        } else {
            open = false;
        }
    }
    if let Some(r) = out.last_mut() {
        r.ongoing = open;
    }
    // Bounded like the points: the runs are at most half the samples, and samples are bounded.
    out.truncate(MAX_POINTS);
    out
}

/// Unix seconds as `YYYY-MM-DD HH:MM:SS UTC` (days to civil date: Howard Hinnant's algorithm).
pub fn utc(unix: f64) -> String {
    let secs = unix.max(0.0) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

const BLOCKS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/// One line of block characters for `values`, scaled from 0 to `top`; `·` where unknown.
pub fn sparkline(values: impl IntoIterator<Item = Option<u32>>, top: u32) -> String {
    let top = f64::from(top.max(1));
    values
        .into_iter()
        .map(|v| match v {
            None => '·',
            Some(v) => {
                let level = (f64::from(v) / top * 7.0).round().clamp(0.0, 7.0) as usize;
                BLOCKS[level]
            }
        })
        .collect()
}

/// `refused 312 connections from 12:01:05 to 12:05:10 UTC (still refusing)`, one per run.
pub fn describe_refusals(t: &Timeline) -> Vec<String> {
    t.refusals
        .iter()
        .map(|r| {
            let mut s = String::new();
            let _ = write!(
                s,
                "refused {:.0} connection(s) between {} and {}",
                r.refused,
                utc(r.from),
                utc(r.to)
            );
            if r.ongoing {
                s.push_str(", still refusing at the last poll");
            }
            s
        })
        .collect()
}

/// Text lines: connections against maxclients, then each group, each with a sparkline on one
/// shared scale (the chart's), its count now and its peak. `name` renders a group's key for
/// the format (escaped, bounded).
pub fn sparkline_lines(t: &Timeline, name: impl Fn(&str) -> String) -> Vec<String> {
    let top = t.top();
    let mut lines = Vec::new();
    let max_now = t.maxclients.last().copied().flatten();
    lines.push(format!(
        "{} connections {}, peak {}{}",
        sparkline(t.connections.iter().map(|&c| Some(c)), top),
        t.connections.last().copied().unwrap_or(0),
        t.connections.iter().max().copied().unwrap_or(0),
        max_now.map_or(String::new(), |m| format!(" (maxclients {m})"))
    ));
    for g in &t.groups {
        lines.push(format!(
            "{} {} {}, peak {}{}",
            sparkline(g.values.iter().copied(), top),
            name(&g.key),
            g.last(),
            g.peak(),
            if g.culprit { " (culprit)" } else { "" }
        ));
    }
    lines
}

/// A key bounded for a chart or a line: at most `max` characters, an ellipsis when cut.
pub fn shorten(key: &str, max: usize) -> String {
    if key.chars().count() <= max {
        return key.to_string();
    }
    let mut s: String = key.chars().take(max.saturating_sub(1)).collect();
    s.push('…');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparkline_scales_and_marks_unknown() {
        assert_eq!(sparkline([Some(0), Some(50), Some(100), None], 100), "▁▅█·");
        assert_eq!(sparkline([Some(7)], 0), "█");
    }

    #[test]
    fn thinning_keeps_ends_and_bounds() {
        assert_eq!(kept(3), vec![0, 1, 2]);
        let k = kept(1000);
        assert_eq!(k.len(), MAX_POINTS);
        assert_eq!((k[0], k[MAX_POINTS - 1]), (0, 999));
    }

    #[test]
    fn shorten_counts_characters() {
        assert_eq!(shorten("abc", 3), "abc");
        assert_eq!(shorten("äbcd", 3), "äb…");
    }
}
