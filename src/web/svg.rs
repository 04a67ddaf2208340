//! The report's chart as inline SVG, drawn by the exporter (no script, no external asset):
//! the top groups stacked (the culprit at the bottom, in red and outlined), everything else
//! in grey, the connections counted against maxclients as a line, maxclients dashed, and the
//! runs of refusals as red bands. Every name from Redis is escaped ([`html_escape`]) and cut
//! to [`LABEL_CHARS`] characters; the size is bounded by the timeline's caps.

use std::fmt::Write;

use crate::web::escape::html_escape;
use crate::web::timeline::{shorten, utc, Timeline};

/// Characters of a group's name shown in the legend (the full, label-bounded name is in its
/// tooltip and in the table).
pub const LABEL_CHARS: usize = 30;

const W: f64 = 960.0;
const PLOT_LEFT: f64 = 56.0;
const PLOT_RIGHT: f64 = 830.0;
const PLOT_TOP: f64 = 14.0;
const PLOT_BOTTOM: f64 = 250.0;
const CULPRIT: &str = "#c5221f";
/// Muted, distinct from the culprit's red and from each other.
const PALETTE: [&str; 6] = [
    "#5b8def", "#36a39a", "#a67bd8", "#e0a030", "#7d8fa8", "#4cb5e6",
];
const REST: &str = "#c9ccd1";

struct Scale {
    t0: f64,
    span: f64,
    top: f64,
}

impl Scale {
    fn x(&self, at: f64) -> f64 {
        PLOT_LEFT + (at - self.t0) / self.span * (PLOT_RIGHT - PLOT_LEFT)
    }
    fn y(&self, v: f64) -> f64 {
        PLOT_BOTTOM - v / self.top * (PLOT_BOTTOM - PLOT_TOP)
    }
}

/// A closed area between two stacked boundaries.
fn area(o: &mut String, s: &Scale, at: &[f64], lower: &[f64], upper: &[f64]) {
    o.push_str(" d=\"M");
    for (i, (&t, &v)) in at.iter().zip(upper).enumerate() {
        let _ = write!(
            o,
            "{}{:.1},{:.1}",
            if i == 0 { "" } else { " L" },
            s.x(t),
            s.y(v)
        );
    }
    for (&t, &v) in at.iter().zip(lower).rev() {
        let _ = write!(o, " L{:.1},{:.1}", s.x(t), s.y(v));
    }
    o.push_str(" Z\"");
}

fn polyline(o: &mut String, s: &Scale, at: &[f64], values: impl Iterator<Item = Option<f64>>) {
    // Unknown points break the line (M starts a new run).
    let mut pen_down = false;
    o.push_str(" d=\"");
    for (&t, v) in at.iter().zip(values) {
        match v {
            Some(v) => {
                let _ = write!(
                    o,
                    "{}{:.1},{:.1} ",
                    if pen_down { "L" } else { "M" },
                    s.x(t),
                    s.y(v)
                );
                pen_down = true;
            }
            None => pen_down = false,
        }
    }
    o.push('"');
}

/// The chart of `t`; `what` names the groups' kind (`source_ip`).
pub fn chart(t: &Timeline) -> String {
    let n = t.at.len();
    let legend_rows = t.groups.len() + 3;
    let height = PLOT_BOTTOM + 34.0 + legend_rows.div_ceil(2) as f64 * 20.0;
    let s = Scale {
        t0: t.at[0],
        span: t.window_seconds().max(1.0),
        top: f64::from(t.top()) * 1.08,
    };
    let mut o = String::with_capacity(4096 + n * 16 * (t.groups.len() + 3));
    let _ = write!(
        o,
        "<svg id=\"timeline\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {W} {height:.0}\" width=\"100%\" role=\"img\" aria-labelledby=\"timeline-title\" data-points=\"{n}\" data-groups=\"{}\">\
<title id=\"timeline-title\">Connections against maxclients over the last {}, by {}</title>\
<rect x=\"{PLOT_LEFT}\" y=\"{PLOT_TOP}\" width=\"{:.0}\" height=\"{:.0}\" fill=\"none\" stroke=\"#999\" stroke-width=\"1\"/>",
        t.groups.len(),
        t.window_words(),
        t.kind.as_str(),
        PLOT_RIGHT - PLOT_LEFT,
        PLOT_BOTTOM - PLOT_TOP
    );
    // Refusals behind everything: a band from the sample before the first refusal to the last
    // sample that counted one.
    for r in &t.refusals {
        let (x0, x1) = (s.x(r.from), s.x(r.to));
        let _ = write!(
            o,
            "<rect class=\"refused\" x=\"{x0:.1}\" y=\"{PLOT_TOP}\" width=\"{:.1}\" height=\"{:.0}\" fill=\"{CULPRIT}\" fill-opacity=\"0.16\"><title>Redis refused {:.0} connection(s) between {} and {}{}</title></rect>\
<text x=\"{:.1}\" y=\"{:.0}\" font-size=\"12\" fill=\"{CULPRIT}\" font-weight=\"bold\">refused{}</text>",
            (x1 - x0).max(2.0),
            PLOT_BOTTOM - PLOT_TOP,
            r.refused,
            utc(r.from),
            utc(r.to),
            if r.ongoing { ", still refusing" } else { "" },
            x0 + 3.0,
            PLOT_TOP + 13.0,
            if r.ongoing { " (still)" } else { "" }
        );
    }
    // Stacked areas, the culprit (first group) at the bottom.
    let mut lower = vec![0.0f64; n];
    let mut legend: Vec<(String, String, bool)> = Vec::new();
    let mut colour = PALETTE.iter().cycle();
    for g in &t.groups {
        let upper: Vec<f64> = lower
            .iter()
            .zip(&g.values)
            .map(|(l, v)| l + f64::from(v.unwrap_or(0)))
            .collect();
        let fill = if g.culprit {
            CULPRIT
        } else {
            colour.next().copied().unwrap_or(REST)
        };
        let name = html_escape(&g.key);
        let _ = write!(
            o,
            "<path class=\"series{}\" data-key=\"{name}\" fill=\"{fill}\" fill-opacity=\"{}\" stroke=\"{}\" stroke-width=\"{}\"",
            if g.culprit { " culprit" } else { "" },
            if g.culprit { "0.85" } else { "0.6" },
            if g.culprit { "#7a0f0c" } else { fill },
            if g.culprit { "2" } else { "0.5" }
        );
        area(&mut o, &s, &t.at, &lower, &upper);
        let _ = write!(
            o,
            "><title>{} {name}: {} now, peak {}{}</title></path>",
            t.kind.as_str(),
            g.last(),
            g.peak(),
            if g.culprit { " (culprit)" } else { "" }
        );
        legend.push((
            fill.to_string(),
            format!(
                "{}{}: {} now, peak {}",
                if g.culprit { "culprit " } else { "" },
                shorten(&g.key, LABEL_CHARS),
                g.last(),
                g.peak()
            ),
            g.culprit,
        ));
        lower = upper;
    }
    // Everything else: the connections the shown groups do not hold.
    let total: Vec<f64> = t.connections.iter().map(|&c| f64::from(c)).collect();
    let rest_top: Vec<f64> = lower.iter().zip(&total).map(|(l, c)| l.max(*c)).collect();
    o.push_str("<path class=\"rest\" fill=\"#c9ccd1\" fill-opacity=\"0.6\" stroke=\"none\"");
    area(&mut o, &s, &t.at, &lower, &rest_top);
    o.push_str("><title>other connections</title></path>");
    legend.push((REST.into(), "everything else".into(), false));
    // The connections counted against maxclients, and maxclients.
    o.push_str("<path class=\"connections\" fill=\"none\" stroke=\"#1d1d1f\" stroke-width=\"2\"");
    polyline(&mut o, &s, &t.at, total.iter().map(|&c| Some(c)));
    o.push_str("><title>connections counted against maxclients</title></path>");
    legend.push((
        "#1d1d1f".into(),
        format!(
            "connections: {} now",
            t.connections.last().copied().unwrap_or(0)
        ),
        false,
    ));
    if t.maxclients.iter().any(Option::is_some) {
        o.push_str("<path class=\"maxclients\" fill=\"none\" stroke=\"#c5221f\" stroke-width=\"2\" stroke-dasharray=\"7 4\"");
        polyline(
            &mut o,
            &s,
            &t.at,
            t.maxclients.iter().map(|m| m.map(f64::from)),
        );
        let last = t.maxclients.iter().rev().flatten().next().copied();
        let _ = write!(o, "><title>maxclients</title></path>");
        if let Some(m) = last {
            let _ = write!(
                o,
                "<text x=\"{:.0}\" y=\"{:.1}\" font-size=\"13\" fill=\"#c5221f\">maxclients {m}</text>",
                PLOT_RIGHT + 6.0,
                s.y(f64::from(m)) + 4.0
            );
        }
        legend.push(("#c5221f".into(), "maxclients (dashed)".into(), false));
    }
    // Axes: three values, five times.
    let top = t.top();
    for v in [0, top / 2, top] {
        let y = s.y(f64::from(v));
        let _ = write!(
            o,
            "<line x1=\"{PLOT_LEFT}\" x2=\"{PLOT_RIGHT}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#999\" stroke-opacity=\"0.35\"/>\
<text x=\"{:.0}\" y=\"{:.1}\" font-size=\"12\" text-anchor=\"end\" fill=\"currentColor\">{v}</text>",
            PLOT_LEFT - 6.0,
            y + 4.0
        );
    }
    for i in 0..5 {
        let at = s.t0 + s.span * f64::from(i) / 4.0;
        let label = utc(at);
        let hms = label.get(11..19).unwrap_or(&label);
        let anchor = match i {
            0 => "start",
            4 => "end",
            _ => "middle",
        };
        let _ = write!(
            o,
            "<text x=\"{:.1}\" y=\"{:.0}\" font-size=\"12\" text-anchor=\"{anchor}\" fill=\"currentColor\">{hms}</text>",
            s.x(at),
            PLOT_BOTTOM + 16.0
        );
    }
    let _ = write!(
        o,
        "<text x=\"{PLOT_RIGHT}\" y=\"{:.0}\" font-size=\"11\" text-anchor=\"end\" fill=\"currentColor\" opacity=\"0.7\">UTC</text>",
        PLOT_BOTTOM + 29.0
    );
    for (i, (fill, label, culprit)) in legend.iter().enumerate() {
        let x = PLOT_LEFT + if i % 2 == 0 { 0.0 } else { 440.0 };
        let y = PLOT_BOTTOM + 40.0 + (i / 2) as f64 * 20.0;
        let _ = write!(
            o,
            "<rect x=\"{x:.0}\" y=\"{:.0}\" width=\"14\" height=\"12\" fill=\"{fill}\"{}/>\
<text x=\"{:.0}\" y=\"{y:.0}\" font-size=\"13\" fill=\"currentColor\"{}>{}</text>",
            y - 11.0,
            if *culprit {
                " stroke=\"#7a0f0c\" stroke-width=\"2\""
            } else {
                ""
            },
            x + 20.0,
            if *culprit {
                " font-weight=\"bold\" class=\"culprit-label\""
            } else {
                ""
            },
            html_escape(label)
        );
    }
    o.push_str("</svg>");
    o
}
