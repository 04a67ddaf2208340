//! Renders a diagnosis [`Report`] for people: plain text for a terminal at 3 am, Markdown for
//! an incident ticket, and a self-contained HTML page (inline style, no script, no external
//! asset) that a browser shows even when the network to a CDN is part of the outage.

use std::fmt::Write;

use crate::analysis::aggregate::{ClientListSummary, GroupStats, OTHER};
use crate::analysis::history::{History, Sample};
use crate::diagnose::{Finding, Report, Status};
use crate::web::timeline::{self, Timeline};

/// Rows of each table of groups on the HTML page: the aggregator keeps its top K (a
/// configured bound) plus `other`; a page stays bounded even with a large K.
pub const MAX_TABLE_ROWS: usize = 100;
/// What introduces a step's `redis-cli`-only form.
const FALLBACK: &str =
    "Without the exporter's binary, with redis-cli only (the same selection; exits 1 when refused)";

/// Characters of a name in a sparkline line.
const LINE_NAME_CHARS: usize = 40;

/// What a page shows besides the report: the target's history (the chart and sparklines),
/// its last CLIENT LIST aggregates (the tables) and how often the HTML page reloads. The
/// daemon has all three; a report alone renders without them.
#[derive(Debug, Clone, Copy, Default)]
pub struct Extras<'a> {
    pub history: Option<&'a History>,
    pub clients: Option<&'a ClientListSummary>,
    /// Seconds between reloads of the HTML page (`<meta http-equiv="refresh">`, no script).
    pub refresh_seconds: Option<u64>,
}

/// How often an HTML page reloads: the poll interval (a new diagnosis comes no faster),
/// between 5 s and 5 min.
pub fn refresh_seconds(poll_interval: std::time::Duration) -> u64 {
    match poll_interval.as_secs() {
        0 => 15,
        s => s.clamp(5, 300),
    }
}

impl<'a> Extras<'a> {
    /// Everything a published target state has for its page, as `/diagnose` serves it.
    pub fn of(s: &'a crate::targets::state::TargetState) -> Extras<'a> {
        Extras {
            history: s.history.as_deref(),
            clients: s.clients.as_deref(),
            refresh_seconds: Some(refresh_seconds(s.poll_interval)),
        }
    }
}

impl Extras<'_> {
    fn timeline(&self, r: &Report) -> Option<Timeline> {
        let samples: Vec<&Sample> = self.history?.iter().collect();
        Timeline::of(&samples, r)
    }
}

fn ratio(r: Option<f64>) -> String {
    r.map_or("unknown".to_string(), |r| format!("{:.0}%", r * 100.0))
}

fn num(v: Option<f64>) -> String {
    v.map_or("unknown".to_string(), |v| format!("{v:.0}"))
}

use crate::diagnose::shell::visible;
pub use crate::web::escape::{html_escape, url_encode};
pub use crate::web::timeline::utc;

/// Markdown text that shows exactly `s`: every character with a Markdown meaning is
/// backslash-escaped (no emphasis, link, raw HTML, code span or table cell can start inside a
/// client name), and line breaks become spaces so a value cannot start a new block.
fn md(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '|' | '~' | '&' | '#' | '!' => {
                o.push('\\');
                o.push(c);
            }
            '\n' | '\r' => o.push(' '),
            c => o.push(c),
        }
    }
    o
}

/// The longest run of backticks in `s`.
fn backtick_run(s: &str) -> usize {
    let (mut best, mut run) = (0, 0);
    for c in s.chars() {
        run = if c == '`' { run + 1 } else { 0 };
        best = best.max(run);
    }
    best
}

/// An inline code span holding exactly `s`, whatever backticks it contains (CommonMark: the
/// delimiter is a run longer than any inside, padded with a space when `s` begins or ends
/// with a backtick).
fn md_code(s: &str) -> String {
    let fence = "`".repeat(backtick_run(s) + 1);
    let pad = if s.starts_with('`') || s.ends_with('`') {
        " "
    } else {
        ""
    };
    format!("{fence}{pad}{}{pad}{fence}", s.replace(['\n', '\r'], " "))
}

/// A fenced code block holding `command`, indented to sit in a list item; the fence is longer
/// than any backtick run inside, so nothing in the command can close it.
fn md_block(command: &str, indent: &str) -> String {
    let fence = "`".repeat(backtick_run(command).max(2) + 1);
    format!("{indent}{fence}sh\n{indent}{command}\n{indent}{fence}")
}

fn facts(r: &Report) -> Vec<(&'static str, String)> {
    let s = &r.server;
    vec![
        ("observed at", utc(r.generated_at)),
        (
            "server",
            format!(
                "{} {} ({})",
                if s.product == Some("valkey") {
                    "Valkey"
                } else {
                    "Redis"
                },
                s.version.as_deref().unwrap_or("?"),
                s.role.as_deref().unwrap_or("?")
            ),
        ),
        (
            "connections counted against maxclients",
            num(s.limit_connections),
        ),
        (
            "maxclients",
            format!(
                "{} (from {})",
                num(s.maxclients),
                s.maxclients_source.map_or("-", |m| m.as_str())
            ),
        ),
        ("utilisation", ratio(s.utilisation_ratio)),
        (
            "rejected connections since start",
            num(s.rejected_connections),
        ),
        (
            "new connections per second",
            s.new_connections_per_second
                .map_or("unknown".into(), |v| format!("{v:.1}")),
        ),
        (
            "distinct source IPs (client instances)",
            format!("{} ({})", s.distinct_sources, s.instances),
        ),
        (
            "timeout / tcp-keepalive",
            format!("{} / {}", num(s.timeout), num(s.tcp_keepalive)),
        ),
        (
            "history",
            format!(
                "{} samples over {:.0} s",
                r.history_samples, r.history_window_seconds
            ),
        ),
    ]
}

fn causes_and_notes(r: &Report) -> (Vec<&Finding>, Vec<&Finding>) {
    let th = crate::diagnose::Thresholds::default().cause_score;
    r.findings.iter().partition(|f| f.score >= th)
}

/// `confidence 0.90, severity 0.95, score 0.86`.
fn rating(f: &Finding) -> String {
    format!(
        "confidence {:.2}, severity {:.2}, score {:.2}",
        f.confidence, f.severity, f.score
    )
}

/// The sparkline section's heading.
fn trend_heading(t: &Timeline) -> String {
    format!(
        "Last {} ({} points, one scale from 0 to {}; · = not among the top groups then), by {}:",
        t.window_words(),
        t.at.len(),
        t.top(),
        t.kind.as_str()
    )
}

/// A group's key on one line of text: bounded, line breaks as spaces.
fn line_name(key: &str) -> String {
    timeline::shorten(key, LINE_NAME_CHARS).replace(['\n', '\r'], " ")
}

/// Plain text, for the terminal.
pub fn text(r: &Report) -> String {
    text_with(r, &Extras::default())
}

/// Plain text with a sparkline per top group when the history is there.
pub fn text_with(r: &Report, x: &Extras<'_>) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "Diagnosis of {}", r.target);
    let _ = writeln!(o, "{}", r.headline);
    o.push('\n');
    for (k, v) in facts(r) {
        let _ = writeln!(o, "  {k:<42} {v}");
    }
    if let Some(t) = x.timeline(r) {
        let _ = writeln!(o, "\n{}", trend_heading(&t));
        for line in timeline::sparkline_lines(&t, line_name) {
            let _ = writeln!(o, "  {line}");
        }
        for line in timeline::describe_refusals(&t) {
            let _ = writeln!(o, "  Redis {line}");
        }
    }
    let (causes, notes) = causes_and_notes(r);
    for (i, f) in causes.iter().enumerate() {
        let _ = writeln!(o, "\n{}. {}  [{}]", i + 1, f.title, rating(f));
        let _ = writeln!(o, "   {}", f.summary);
        let _ = writeln!(o, "   Threat: {}", f.threat);
        let _ = writeln!(o, "   Evidence:");
        for e in &f.evidence {
            let _ = writeln!(o, "     - {}: {}", e.what, e.value);
        }
        let _ = writeln!(o, "   Fix:");
        for s in &f.remediation {
            let _ = writeln!(o, "     - {}", s.why);
            if let Some(c) = s.command() {
                let _ = writeln!(o, "       $ {c}");
            }
            if let Some(c) = s.fallback() {
                let _ = writeln!(o, "       {FALLBACK}:\n       $ {c}");
            }
        }
    }
    if !notes.is_empty() {
        let _ = writeln!(
            o,
            "\nNotes (patterns below the cause score: not sure, or no threat to the limit):"
        );
        for f in notes {
            let _ = writeln!(o, "  - {} [{}]: {}", f.title, rating(f), f.summary);
        }
    }
    if r.findings
        .iter()
        .any(|f| f.remediation.iter().any(|s| s.command().is_some()))
    {
        let _ = writeln!(
            o,
            "\nCommands use `{}` (`redis-clients-exporter close` takes the same flags); if the server needs a password, export REDISCLI_AUTH first.",
            r.redis_cli
        );
    }
    visible(&o)
}

/// Markdown, for a ticket or a chat.
pub fn markdown(r: &Report) -> String {
    markdown_with(r, &Extras::default())
}

/// Markdown with a sparkline per top group (in a code block, so they line up) when the
/// history is there.
pub fn markdown_with(r: &Report, x: &Extras<'_>) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "# Diagnosis of {}\n\n**{}**\n",
        md_code(&r.target),
        md(&r.headline)
    );
    let _ = writeln!(o, "| fact | value |\n| --- | --- |");
    for (k, v) in facts(r) {
        let _ = writeln!(o, "| {} | {} |", md(k), md(&v));
    }
    if let Some(t) = x.timeline(r) {
        let lines = timeline::sparkline_lines(&t, line_name).join("\n");
        let _ = writeln!(o, "\n{}\n", md(&trend_heading(&t)));
        let fence = "`".repeat(backtick_run(&lines).max(2) + 1);
        let _ = writeln!(o, "{fence}text\n{lines}\n{fence}");
        for line in timeline::describe_refusals(&t) {
            let _ = writeln!(o, "\nRedis {}", md(&line));
        }
    }
    let (causes, notes) = causes_and_notes(r);
    for (i, f) in causes.iter().enumerate() {
        let _ = writeln!(
            o,
            "\n## {}. {} ({})\n\n{}\n\nThreat: {}\n",
            i + 1,
            md(&f.title),
            rating(f),
            md(&f.summary),
            md(&f.threat)
        );
        for e in &f.evidence {
            let _ = writeln!(o, "- {}: **{}**", md(&e.what), md(&e.value));
        }
        let _ = writeln!(o, "\n**Fix**\n");
        for s in &f.remediation {
            let _ = writeln!(o, "- {}", md(&s.why));
            if let Some(c) = s.command() {
                let _ = writeln!(o, "{}", md_block(c, "  "));
            }
            if let Some(c) = s.fallback() {
                let _ = writeln!(o, "\n  {FALLBACK}:\n\n{}", md_block(c, "  "));
            }
        }
    }
    if !notes.is_empty() {
        let _ = writeln!(o, "\n## Notes\n");
        for f in notes {
            let _ = writeln!(o, "- {} ({}): {}", md(&f.title), rating(f), md(&f.summary));
        }
    }
    if r.findings
        .iter()
        .any(|f| f.remediation.iter().any(|s| s.command().is_some()))
    {
        let _ = writeln!(
            o,
            "\nCommands use {} (`redis-clients-exporter close` takes the same flags); if the server needs a password, export REDISCLI\\_AUTH first.",
            md_code(&r.redis_cli)
        );
    }
    visible(&o)
}

const STYLE: &str = "body{font:15px/1.45 system-ui,sans-serif;margin:0 auto;max-width:980px;padding:1em;color:#1d1d1f;background:#fff}\
h1{font-size:1.4em}header p{font-size:1.1em;padding:.6em .8em;border-radius:6px}\
.healthy{background:#e3f5e1}.warning{background:#fff4d6}.critical,.full{background:#fde2e1}.unreachable{background:#eee}\
table{border-collapse:collapse}td{padding:.15em .8em .15em 0;vertical-align:top}\
section.finding{border:1px solid #ccc;border-radius:6px;padding:.4em 1em;margin:1em 0}\
.conf{font-weight:bold}details.fallback summary{cursor:pointer;color:#555;font-size:.9em}#trend svg{max-width:100%;height:auto;color:inherit}#refusals{color:#c5221f;font-weight:bold}\
table.groups{margin:.3em 0 1em;font-variant-numeric:tabular-nums}table.groups th{text-align:left;padding-right:.8em;border-bottom:1px solid #ccc}\
table.groups td.key{max-width:28em;overflow-wrap:anywhere}tr.culprit{background:#fde2e1}\
pre{background:#f4f4f4;padding:.5em;overflow-x:auto;white-space:pre-wrap;word-break:break-all}\
@media (prefers-color-scheme:dark){body{background:#111;color:#eee}pre{background:#222}.healthy{background:#1e3a1e}.warning{background:#4a3b00}.critical,.full,tr.culprit{background:#4a1414}}";

/// A self-contained HTML page.
pub fn html(r: &Report) -> String {
    html_with(r, &Extras::default())
}

/// `12 s`, `4 min`, `3.5 h`.
fn duration(seconds: u64) -> String {
    match seconds {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s => format!("{:.1} h", s as f64 / 3600.0),
    }
}

/// One table of groups (sources or client names) as the last CLIENT LIST saw them, the
/// culprit's row marked, at most [`MAX_TABLE_ROWS`] rows.
fn groups_table(
    o: &mut String,
    id: &str,
    heading: &str,
    groups: &[(String, GroupStats)],
    culprit: Option<&str>,
    idle_threshold: &str,
) {
    let _ = write!(
        o,
        "<h2>{heading}</h2><table id=\"{id}\" class=\"groups\"><thead><tr><th>{}</th><th>connections</th><th>idle {idle_threshold}</th><th>longest idle</th><th>oldest connection</th></tr></thead><tbody>",
        if id == "sources" { "source" } else { "client name" }
    );
    for (key, g) in groups.iter().take(MAX_TABLE_ROWS) {
        let is_culprit = culprit == Some(key.as_str()) && key != OTHER;
        let shown = if key == OTHER {
            "<i>other (folded: beyond the top groups)</i>".to_string()
        } else if key.is_empty() {
            "<i>(no name)</i>".to_string()
        } else {
            html_escape(key)
        };
        let _ = write!(
            o,
            "<tr{}><td class=\"key\">{shown}{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            if is_culprit { " class=\"culprit\"" } else { "" },
            if is_culprit { " <b>(culprit)</b>" } else { "" },
            g.connections,
            g.idle_connections,
            duration(g.oldest_idle_seconds),
            duration(g.oldest_age_seconds)
        );
    }
    o.push_str("</tbody></table>");
    if groups.len() > MAX_TABLE_ROWS {
        let _ = write!(
            o,
            "<p class=\"more\">{} more not shown.</p>",
            groups.len() - MAX_TABLE_ROWS
        );
    }
}

/// A self-contained HTML page with, when `x` has them, the chart of the last hour, the tables
/// of sources and names, and a reload every `refresh_seconds` (no script).
pub fn html_with(r: &Report, x: &Extras<'_>) -> String {
    let mut o = String::new();
    let class = r.status.as_str();
    let refresh = x.refresh_seconds.map_or(String::new(), |s| {
        format!("<meta http-equiv=\"refresh\" content=\"{s}\">")
    });
    let _ = write!(
        o,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">{refresh}\
<link rel=\"icon\" href=\"data:,\"><title>{} – diagnosis of {}</title><style>{STYLE}</style></head><body>\
<header><h1>Diagnosis of {}</h1><p id=\"status\" class=\"{class}\" data-status=\"{class}\">{}</p></header>",
        html_escape(&class.to_uppercase()),
        html_escape(&r.target),
        html_escape(&r.target),
        html_escape(&r.headline)
    );
    let culprit = r.top_cause().and_then(|f| f.selector.as_ref());
    if let Some(t) = x.timeline(r) {
        let _ = write!(
            o,
            "<section id=\"trend\"><h2>Last {}</h2>{}",
            t.window_words(),
            crate::web::svg::chart(&t)
        );
        let refusals = timeline::describe_refusals(&t);
        if refusals.is_empty() {
            o.push_str("<p id=\"refusals\">No connection refused in this window.</p>");
        } else {
            o.push_str("<ul id=\"refusals\">");
            for line in refusals {
                let _ = write!(o, "<li>Redis {}</li>", html_escape(&line));
            }
            o.push_str("</ul>");
        }
        o.push_str("</section>");
    }
    o.push_str("<table id=\"facts\">");
    for (k, v) in facts(r) {
        let _ = write!(
            o,
            "<tr><td>{}</td><td>{}</td></tr>",
            html_escape(k),
            html_escape(&v)
        );
    }
    o.push_str("</table>");
    let (causes, notes) = causes_and_notes(r);
    if causes.is_empty() && r.status != Status::Unreachable {
        o.push_str("<p id=\"no-cause\">No cause of connection exhaustion found.</p>");
    }
    o.push_str("<ol id=\"causes\">");
    for f in causes {
        let _ = write!(
            o,
            "<li><section class=\"finding\" data-cause=\"{}\" data-score=\"{:.2}\"><h2>{} <span class=\"conf\">{}</span></h2><p>{}</p><p class=\"threat\">Threat: {}</p><h3>Evidence</h3><table>",
            f.cause.as_str(),
            f.score,
            html_escape(&f.title),
            html_escape(&rating(f)),
            html_escape(&f.summary),
            html_escape(&f.threat)
        );
        for e in &f.evidence {
            let _ = write!(
                o,
                "<tr><td>{}</td><td><b>{}</b></td></tr>",
                html_escape(&e.what),
                html_escape(&e.value)
            );
        }
        o.push_str("</table><h3>Fix</h3><ul>");
        for s in &f.remediation {
            let _ = write!(o, "<li>{}", html_escape(&s.why));
            if let Some(c) = s.command() {
                let _ = write!(o, "<pre>{}</pre>", html_escape(c));
            }
            // Folded: the short command above is what a person reads; this is for a shell
            // without the exporter's binary.
            if let Some(c) = s.fallback() {
                let _ = write!(
                    o,
                    "<details class=\"fallback\"><summary>{FALLBACK}</summary><pre>{}</pre></details>",
                    html_escape(c)
                );
            }
            o.push_str("</li>");
        }
        o.push_str("</ul></section></li>");
    }
    o.push_str("</ol>");
    if !notes.is_empty() {
        o.push_str("<h2>Notes</h2><ul id=\"notes\">");
        for f in notes {
            let _ = write!(
                o,
                "<li data-cause=\"{}\">{} ({}): {}</li>",
                f.cause.as_str(),
                html_escape(&f.title),
                html_escape(&rating(f)),
                html_escape(&f.summary)
            );
        }
        o.push_str("</ul>");
    }
    if let Some(c) = x.clients {
        use crate::analysis::aggregate::Dimension;
        let key_of = |d: Dimension| culprit.filter(|s| s.group == d).map(|s| s.key.as_str());
        let threshold = r
            .findings
            .iter()
            .find_map(|f| f.selector.as_ref())
            .map_or(String::from("(≥ threshold)"), |s| {
                format!("≥ {}", duration(s.idle_seconds))
            });
        groups_table(
            &mut o,
            "sources",
            "Sources at the last CLIENT LIST",
            &c.by_source,
            key_of(Dimension::SourceIp),
            &threshold,
        );
        groups_table(
            &mut o,
            "names",
            "Client names at the last CLIENT LIST",
            &c.by_name,
            key_of(Dimension::ClientName),
            &threshold,
        );
    }
    let _ = write!(
        o,
        "<footer><p>Commands use <code>{}</code> (<code>redis-clients-exporter close</code> takes the same flags); export REDISCLI_AUTH first if the server needs a password. \
<a href=\"?target={}&amp;format=json\">JSON</a>{}</p></footer></body></html>",
        html_escape(&r.redis_cli),
        html_escape(&url_encode(&r.target)),
        x.refresh_seconds.map_or(String::new(), |s| format!(
            " · This page reloads every {s} s."
        ))
    );
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_escapes_everything_from_the_server() {
        let mut r = Report::unreachable("<script>x</script>", 0.0, "a \"b\" & 'c'", "redis-cli");
        r.status = Status::Healthy;
        let page = html(&r);
        assert!(!page.contains("<script>"), "{page}");
        assert!(page.contains("&lt;script&gt;"));
        assert!(page.contains("&quot;b&quot; &amp; &#39;c&#39;"));
        assert_eq!(url_encode("a b:1/x"), "a%20b%3A1%2Fx");
    }

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0.0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400.0), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_795_437_668.0), "2026-11-23 12:41:08 UTC");
    }
    fn hostile_report() -> Report {
        use crate::analysis::aggregate::Dimension;
        use crate::diagnose::{Cause, CloseBy, Evidence, Finding, Only, Selector, Step};
        let name = "x```';touch${IFS}/tmp/P;echo'</pre>*_[a](b)|\u{1b}]0;title\u{7}\u{202e}";
        let mut r = Report::unreachable("t`1", 0.0, "-", "redis-cli -p 1");
        r.status = Status::Warning;
        r.findings.push(Finding {
            cause: Cause::ConnectionLeak,
            title: format!("connection leak from client_name {name}"),
            confidence: 0.9,
            severity: 1.0,
            score: 0.9,
            threat: name.to_string(),
            culprit: Some(format!("client_name {name}")),
            summary: name.to_string(),
            evidence: vec![Evidence {
                what: name.to_string(),
                value: name.to_string(),
            }],
            remediation: vec![Step::close(
                name,
                "redis-cli -p 1",
                Selector {
                    group: Dimension::ClientName,
                    key: name.to_string(),
                    only: Only::Idle,
                    idle_seconds: 60,
                    sources: String::new(),
                },
                CloseBy::ServerFilter,
            )],
            selector: None,
        });
        r
    }

    #[test]
    fn markdown_keeps_hostile_names_out_of_code_and_markup() {
        let r = hostile_report();
        let md = markdown(&r);
        assert!(md.starts_with("# Diagnosis of ``t`1``"), "{md}");
        // The command's block is fenced by a run longer than the name's, and is unchanged.
        let cmd = r.findings[0].remediation[0]
            .command()
            .unwrap_or_default()
            .to_string();
        assert!(md.contains(&format!("  ````sh\n  {cmd}\n  ````\n")), "{md}");
        let fallback = r.findings[0].remediation[0]
            .fallback()
            .unwrap_or_default()
            .to_string();
        assert!(!fallback.is_empty());
        assert!(
            md.contains(&format!("  ````sh\n  {fallback}\n  ````\n")),
            "{md}"
        );
        // Outside the blocks, no markup survives: every `*`, `_`, `[`, backtick, `<` escaped.
        let prose: String = md.replace(&cmd, "").replace(&fallback, "");
        for bad in ["*_", "[a]", "</pre>", "```'"] {
            assert!(!prose.contains(bad), "{bad} in {prose}");
        }
        assert!(prose.contains(r"\*\_\[a\](b)\|"), "{prose}");
        // No byte that a terminal acts on.
        assert!(!md.contains('\u{1b}') && !md.contains('\u{7}') && !md.contains('\u{202e}'));
        assert!(md.contains(r"\u{1b}\]0;title\u{7}\u{202e}"), "{md}");
    }

    #[test]
    fn text_and_html_neutralise_terminal_and_markup_bytes() {
        let r = hostile_report();
        let t = text(&r);
        assert!(!t.contains('\u{1b}') && !t.contains('\u{7}') && !t.contains('\u{202e}'));
        assert!(t.contains(r"\u{1b}]0;title\u{7}\u{202e}"), "{t}");
        let cmd = r.findings[0].remediation[0]
            .command()
            .unwrap_or_default()
            .to_string();
        assert!(t.contains(&format!("$ {cmd}\n")), "{t}");
        let h = html(&r);
        assert!(!h.contains("</pre>*") && !h.contains('\u{1b}'), "{h}");
        assert!(h.contains("&lt;/pre&gt;*_"), "{h}");
    }

    /// Sparklines carry names from Redis too: in text no byte a terminal acts on, in Markdown a
    /// fence no name can close; one line per group, the culprit said.
    #[test]
    fn sparklines_keep_hostile_names_inert() {
        use crate::analysis::aggregate::Aggregator;
        use crate::diagnose::{Observation, Report};
        let name = "a````b\u{1b}]0;t\u{7}\u{202e}<i>";
        let mut agg = Aggregator::new(1);
        let mut history = History::new(std::time::Duration::from_secs(3600));
        let info = crate::redis::info::Info::parse(
            "redis_version:7.2.4\r\nconnected_clients:40\r\nmaxclients:50\r\nrejected_connections:0\r\n",
        );
        let mut report: Option<Report> = None;
        for minute in 0..5u64 {
            let mut list = String::new();
            for i in 0..(8 * minute + 8) {
                list.push_str(&format!(
                    "id={i} addr=10.0.0.{}:1 name={name} age=900 idle=900 cmd=get\n",
                    i % 4
                ));
            }
            let summary = agg.summarize(&list, 10);
            let at = 1000.0 + minute as f64 * 60.0;
            history.push(Sample::observe(
                at,
                &info,
                Some(50.0),
                &summary,
                history.last(),
            ));
            let config = crate::redis::connection::ConfigValues::default();
            let obs = Observation {
                info: &info,
                config: &config,
                clients: &summary,
                idle_threshold_seconds: 1,
            };
            let samples: Vec<Sample> = history.iter().cloned().collect();
            report = Some(crate::diagnose::diagnose(
                "t",
                &obs,
                &samples,
                at,
                "redis-cli",
            ));
        }
        let r = report.expect("a report");
        let x = Extras {
            history: Some(&history),
            ..Extras::default()
        };
        let t = text_with(&r, &x);
        assert!(!t.contains('\u{1b}') && !t.contains('\u{202e}'), "{t}");
        let line = t
            .lines()
            .find(|l| l.contains("a````b") && l.contains(", peak "))
            .expect("a sparkline line");
        assert!(line.contains("(culprit)"), "{line}");
        // Five samples growing from 8 to 40 of 50: five rising blocks.
        assert!(line.trim_start().starts_with("▂▃▄▅▇ "), "{line}");
        let m = markdown_with(&r, &x);
        assert!(m.contains("`````text\n"), "{m}");
        assert!(m.contains("(culprit)"), "{m}");
    }
}
