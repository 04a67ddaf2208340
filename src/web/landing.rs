//! The landing page `/`: each configured target's diagnosis status and a link to its report.
//! `/scrape` targets are not listed: who may see them is `/diagnose`'s business
//! (docs/security.md), and a list would tell any caller which addresses others asked for.

use std::fmt::Write;

use crate::diagnose::Status;
use crate::web::escape::{html_escape, url_encode};
use crate::web::timeline::{shorten, utc};

/// One configured target as the landing page shows it.
pub struct Row<'a> {
    pub label: &'a str,
    /// `None` until the first poll ends.
    pub status: Option<Status>,
    pub headline: Option<&'a str>,
    pub last_success: Option<f64>,
}

/// Characters of a headline on the landing page (the report has all of it).
const HEADLINE_CHARS: usize = 220;

const STYLE: &str = "body{font:15px/1.45 system-ui,sans-serif;margin:0 auto;max-width:1100px;padding:1em;color:#1d1d1f;background:#fff}\
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.35em .7em;vertical-align:top;border-bottom:1px solid #ddd}\
.status{font-weight:bold;white-space:nowrap;border-radius:4px}.healthy{background:#e3f5e1}.warning{background:#fff4d6}\
.critical,.full{background:#fde2e1}.unreachable,.pending{background:#eee}\
@media (prefers-color-scheme:dark){body{background:#111;color:#eee}.healthy{background:#1e3a1e}.warning{background:#4a3b00}.critical,.full{background:#4a1414}.unreachable,.pending{background:#333}}";

/// The page, worst status first (then by label), reloading every `refresh_seconds`.
pub fn page(version: &str, rows: &mut [Row<'_>], refresh_seconds: u64) -> String {
    // Unknown (no poll yet) sorts after the known states.
    rows.sort_by(|a, b| {
        (a.status.is_none(), a.status, a.label).cmp(&(b.status.is_none(), b.status, b.label))
    });
    let mut o = String::with_capacity(2048 + rows.len() * 400);
    let _ = write!(
        o,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><meta http-equiv=\"refresh\" content=\"{refresh_seconds}\">\
<link rel=\"icon\" href=\"data:,\"><title>redis-clients-exporter</title><style>{STYLE}</style></head><body>\
<h1>redis-clients-exporter {}</h1><p>Who holds the connections of your Redis.</p>\
<h2>Targets</h2><table id=\"targets\"><thead><tr><th>target</th><th>status</th><th>diagnosis</th><th>last poll</th><th>report</th></tr></thead><tbody>",
        html_escape(version)
    );
    for r in rows.iter() {
        let (class, word) = match r.status {
            Some(s) => (s.as_str(), s.as_str().to_uppercase()),
            None => ("pending", "NO POLL YET".to_string()),
        };
        let q = url_encode(r.label);
        let _ = write!(
            o,
            "<tr data-status=\"{class}\"><td>{}</td><td><span class=\"status {class}\">{word}</span></td><td>{}</td><td>{}</td>\
<td><a href=\"diagnose?target={q}&amp;format=html\">report</a> · <a href=\"diagnose?target={q}&amp;format=text\">text</a></td></tr>",
            html_escape(r.label),
            html_escape(&shorten(r.headline.unwrap_or("-"), HEADLINE_CHARS)),
            r.last_success.map_or("-".to_string(), utc),
        );
    }
    if rows.is_empty() {
        o.push_str("<tr><td colspan=\"5\">No configured target.</td></tr>");
    }
    o.push_str(
        "</tbody></table><h2>Endpoints</h2><ul><li><a href=\"metrics\">/metrics</a></li>\
<li><a href=\"diagnose?format=html\">/diagnose</a> (add <code>?target=</code> with several targets; <code>format=html|text|markdown|json</code>)</li>\
<li><a href=\"healthz\">/healthz</a></li><li><a href=\"readyz\">/readyz</a></li></ul></body></html>",
    );
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worst_first_escaped_and_linked() {
        let mut rows = vec![
            Row {
                label: "a<b>&\"",
                status: Some(Status::Healthy),
                headline: Some("HEALTHY: <i>x</i>"),
                last_success: Some(0.0),
            },
            Row {
                label: "z full",
                status: Some(Status::Full),
                headline: Some("FULL"),
                last_success: None,
            },
            Row {
                label: "new",
                status: None,
                headline: None,
                last_success: None,
            },
        ];
        let p = page("1.0", &mut rows, 15);
        let full = p.find("z full").unwrap_or(usize::MAX);
        let healthy = p.find("a&lt;b&gt;&amp;&quot;").unwrap_or(0);
        let pending = p.find("NO POLL YET").unwrap_or(0);
        assert!(full < healthy && healthy < pending, "{p}");
        assert!(!p.contains("<i>x</i>") && p.contains("&lt;i&gt;x&lt;/i&gt;"));
        assert!(
            p.contains("diagnose?target=z%20full&amp;format=html"),
            "{p}"
        );
        assert!(p.contains("<meta http-equiv=\"refresh\" content=\"15\">"));
    }
}
