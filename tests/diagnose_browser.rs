//! The `/diagnose` HTML page in a real headless Chromium, driven over WebDriver by
//! chromedriver (Debian packages `chromium`, `chromium-driver`, installed by `.ci/run`): the
//! page loads, shows the ranked causes with the leak first, draws its history with the culprit
//! marked, and logs no console error; an hour of polls folded by the daemon's code renders
//! bounded, well-formed and with every hostile name escaped. Screenshots go to
//! `target/test-output/` (`diagnose-report.png` is README's, copied to docs/).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use common::{config, free_port, Exporter, Redis, RespConn};
use redis_clients_exporter::analysis::aggregate::Aggregator;
use redis_clients_exporter::analysis::history::{History, RETENTION};
use redis_clients_exporter::diagnose::{Report, Status};
use redis_clients_exporter::redis::info::Info;
use redis_clients_exporter::targets::poller::{PollResult, Poller};
use redis_clients_exporter::targets::state::{ConfigValues, StageDurations, TargetState};
use redis_clients_exporter::web::{render, timeline};
use serde_json::{json, Value};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

/// One HTTP/1.1 request with a JSON body (or none), `Connection: close`, JSON reply.
fn request(addr: SocketAddr, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    let mut s = TcpStream::connect(addr).expect("connect to chromedriver");
    s.set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    let payload = body.map(|b| b.to_string()).unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        payload.len()
    );
    s.write_all(head.as_bytes()).expect("write");
    s.write_all(payload.as_bytes()).expect("write");
    // chromedriver keeps the connection open whatever the request says: read by length.
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    let (head, body_start) = loop {
        let n = s.read(&mut buf).expect("read");
        assert!(n > 0, "chromedriver closed the connection mid-reply");
        raw.extend_from_slice(&buf[..n]);
        if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break (String::from_utf8_lossy(&raw[..i]).into_owned(), i + 4);
        }
    };
    let lower = head.to_ascii_lowercase();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let length = lower
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok());
    let body = match length {
        Some(len) => {
            while raw.len() < body_start + len {
                let n = s.read(&mut buf).expect("read body");
                assert!(n > 0, "short body");
                raw.extend_from_slice(&buf[..n]);
            }
            String::from_utf8_lossy(&raw[body_start..body_start + len]).into_owned()
        }
        None => {
            let _ = s.read_to_end(&mut raw);
            let rest = String::from_utf8_lossy(&raw[body_start..]).into_owned();
            if lower.contains("transfer-encoding: chunked") {
                dechunk(&rest)
            } else {
                rest
            }
        }
    };
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

struct Driver {
    child: Child,
    addr: SocketAddr,
    session: String,
}

impl Driver {
    fn start() -> Driver {
        let port = free_port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn chromedriver");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(addr).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not listen");
            std::thread::sleep(Duration::from_millis(100));
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:loggingPrefs": {"browser": "ALL"},
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1200,1600"]
            }
        }}});
        let (status, v) = request(addr, "POST", "/session", Some(&caps));
        assert_eq!(status, 200, "new session: {v}");
        let session = v["value"]["sessionId"]
            .as_str()
            .expect("session id")
            .to_string();
        Driver {
            child,
            addr,
            session,
        }
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (status, v) = request(
            self.addr,
            method,
            &format!("/session/{}{path}", self.session),
            body.as_ref(),
        );
        assert_eq!(status, 200, "{method} {path}: {v}");
        v["value"].clone()
    }

    fn texts(&self, css: &str, attribute: Option<&str>) -> Vec<String> {
        let els = self.call(
            "POST",
            "/elements",
            Some(json!({"using": "css selector", "value": css})),
        );
        els.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e.as_object()?.values().next()?.as_str().map(String::from))
                    .map(|id| {
                        let v = match attribute {
                            // `.name`: the DOM property (what a script would read), not the attribute.
                            Some(prop) if prop.starts_with('.') => self.call(
                                "GET",
                                &format!("/element/{id}/property/{}", &prop[1..]),
                                None,
                            ),
                            Some(attr) => {
                                self.call("GET", &format!("/element/{id}/attribute/{attr}"), None)
                            }
                            None => self.call("GET", &format!("/element/{id}/text"), None),
                        };
                        v.as_str().unwrap_or("").to_string()
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = request(
            self.addr,
            "DELETE",
            &format!("/session/{}", self.session),
            None,
        );
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn diagnose_page_renders_in_headless_chromium() {
    if !common::require_tool(CHROMEDRIVER, "chromium-driver")
        || !common::require_tool(CHROMIUM, "chromium")
    {
        return;
    }
    // 31 of 36 slots taken: a threat, so the leak is a cause with commands, not a note.
    let r = Redis::start(&["--maxclients", "36"]);
    // A leak from one source beside a busy one, so the page has a cause to show.
    let _leak: Vec<RespConn> = (0..30).map(|_| r.conn_from("127.0.20.5")).collect();
    let mut cfg = config(vec![r.target("t")], 20);
    cfg.idle_threshold_seconds = 1;
    let e = Exporter::start(cfg);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, body) = e.get("/diagnose?target=t");
        if body.contains("\"connection_leak\"") {
            break;
        }
        assert!(Instant::now() < deadline, "no leak finding: {body}");
        std::thread::sleep(Duration::from_millis(200));
    }

    let d = Driver::start();
    let url = format!("http://{}/diagnose?target=t&format=html", e.addr);
    d.call("POST", "/url", Some(json!({ "url": url })));
    let title = d.call("GET", "/title", None);
    assert!(
        title.as_str().unwrap_or("").contains("diagnosis of t"),
        "{title}"
    );
    let status = d.texts("#status", None);
    assert_eq!(status.len(), 1);
    assert!(status[0].contains("connection leak"), "{status:?}");
    let ranked = d.texts("#causes section.finding", Some("data-cause"));
    assert_eq!(
        ranked.first().map(String::as_str),
        Some("connection_leak"),
        "{ranked:?}"
    );
    let headings = d.texts("#causes section.finding h2", None);
    assert!(headings[0].contains("127.0.20.5"), "{headings:?}");
    // The close step shows one short line; its redis-cli-only pipeline is folded (a closed
    // <details>: in the page, not shown until opened).
    let commands = d.texts("#causes pre", None);
    let short = commands
        .iter()
        .find(|c| c.starts_with("redis-clients-exporter close "))
        .unwrap_or_else(|| panic!("no close command shown: {commands:?}"));
    assert!(
        short.contains("--source-ip 127.0.20.5 --idle-seconds 1") && short.len() < 120,
        "{short}"
    );
    let folded = d.texts("#causes details.fallback", Some("open"));
    assert!(
        !folded.is_empty() && folded.iter().all(String::is_empty),
        "{folded:?}"
    );
    let hidden = d.texts("#causes details.fallback pre", Some(".textContent"));
    assert!(
        hidden
            .iter()
            .any(|c| c.contains("CLIENT LIST") && c.contains("awk")),
        "{hidden:?}"
    );

    // The daemon's page has its history (two samples by now: the first poll and the last),
    // the culprit marked in the chart and in the sources table, and reloads itself.
    assert_eq!(
        d.texts("#timeline path.series.culprit", Some("data-key")),
        vec!["127.0.20.5".to_string()]
    );
    let rows = d.texts("#sources tr.culprit td.key", None);
    assert_eq!(rows, vec!["127.0.20.5 (culprit)".to_string()]);
    let refresh = d.texts("meta[http-equiv=refresh]", Some("content"));
    assert_eq!(refresh.len(), 1, "{refresh:?}");

    let shot = d.call("GET", "/screenshot", None);
    let png = base64::engine::general_purpose::STANDARD
        .decode(shot.as_str().unwrap_or(""))
        .expect("base64 screenshot");
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    std::fs::write(output_dir().join("diagnose-live.png"), &png).expect("write screenshot");

    // The landing page: the target's status and a link to its report that opens it.
    d.call(
        "POST",
        "/url",
        Some(json!({ "url": format!("http://{}/", e.addr) })),
    );
    let statuses = d.texts("#targets tr", Some("data-status"));
    assert_eq!(statuses.len(), 2, "header and one target: {statuses:?}");
    assert!(
        ["warning", "critical", "full"].contains(&statuses[1].as_str()),
        "{statuses:?}"
    );
    let links = d.texts("#targets a", Some("href"));
    assert_eq!(links[0], "diagnose?target=t&format=html", "{links:?}");
    d.call(
        "POST",
        "/url",
        Some(json!({ "url": format!("http://{}/{}", e.addr, links[0]) })),
    );
    assert_eq!(d.texts("#timeline", Some("id")).len(), 1);

    // chromedriver serves the browser console log on the legacy endpoint.
    let logs = d.call("POST", "/se/log", Some(json!({"type": "browser"})));
    let errors: Vec<&Value> = logs
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|l| l["level"].as_str() == Some("SEVERE"))
                .collect()
        })
        .unwrap_or_default();
    assert!(errors.is_empty(), "console errors: {errors:?}");
    assert!(logs.is_array(), "the log endpoint answered: {logs}");
}

/// Names a client may give itself (CLIENT SETNAME refuses only spaces and control bytes):
/// markup, entities, quotes, the end of a CDATA section, a bidi override, and a name far longer
/// than a label may be.
const HOSTILE: &str = "<script>alert(1)</script>&amp;\"'`]]></svg><b>\u{202e}evil";
fn long_name() -> String {
    format!("l{}", "o".repeat(400))
}

/// One CLIENT LIST line.
fn line(id: u64, addr: &str, name: &str, age: u64, idle: u64) -> String {
    format!("id={id} addr={addr}:{} fd=8 name={name} age={age} idle={idle} flags=N db=0 sub=0 psub=0 multi=-1 qbuf=0 qbuf-free=0 obl=0 oll=0 omem=0 events=r cmd={} user=default\n",
        40000 + id % 20000, if idle > 0 { "get" } else { "ping" })
}

/// The report of an hour of polls one minute apart, as the daemon's poller folds them: a
/// service `orders-api` on 8 pods leaks until the server (maxclients 60) is full and refuses
/// connections (a first burst at minutes 20-22, then from minute 52 on), beside steady
/// services; with `crowd`, also the hostile names above and, from minute 50, 300
/// one-connection sources with long names (a page must stay bounded).
fn an_hour_of_a_leak(crowd: bool) -> (Report, TargetState) {
    const NOW: f64 = 1_796_000_000.0;
    let mut aggregator = Aggregator::new(60);
    let mut history = History::new(RETENTION);
    let mut state = TargetState::default();
    let mut rejected = 0u64;
    for minute in 0..=60u64 {
        let at = NOW - (60 - minute) as f64 * 60.0;
        let mut list = String::new();
        let mut id = 1;
        let mut add = |list: &mut String, addr: &str, name: &str, age: u64, idle: u64| {
            list.push_str(&line(id, addr, name, age, idle));
            id += 1;
        };
        add(&mut list, "127.0.0.1", "redis-clients-exporter", 3600, 0);
        for (svc, n, pods) in [("billing", 6, 2), ("search", 5, 3), ("sessions", 4, 2)] {
            for i in 0..n {
                add(
                    &mut list,
                    &format!("10.1.{pods}.{}", i % pods),
                    svc,
                    3000,
                    0,
                );
            }
        }
        // The leak: never closed, from 8 pods, until it fills the server at minute 52.
        let leaked = (minute * 43 / 52).min(43);
        // A cron burst takes every free slot for three minutes: the first refusals.
        let busy = if (20..23).contains(&minute) {
            60 - 16 - leaked
        } else {
            1
        };
        for i in 0..busy {
            add(&mut list, &format!("10.9.0.{i}"), "cron", 5, 0);
        }
        if crowd {
            add(&mut list, "10.2.0.1", HOSTILE, 3000, 0);
            add(&mut list, "10.2.0.2", HOSTILE, 3000, 0);
            add(&mut list, "10.2.0.3", &long_name(), 3000, 0);
            add(&mut list, "10.2.0.4", &long_name(), 3000, 0);
        }
        for i in 0..leaked {
            add(
                &mut list,
                &format!("10.4.7.{}", i % 8),
                "orders-api",
                (leaked - i) * 85,
                (leaked - i) * 85,
            );
        }
        // 300 one-connection sources with long names from minute 50 on (a page must stay bounded).
        if crowd && minute >= 50 {
            for i in 0..300 {
                add(
                    &mut list,
                    &format!("10.7.{}.{}", i / 250, i % 250),
                    &format!("batch-{i}-{}", "x".repeat(150)),
                    30,
                    0,
                );
            }
        }
        let connections = list.lines().count() as u64;
        let clients = connections.min(60);
        if (20..23).contains(&minute) || minute >= 52 {
            rejected += 17;
        }
        let info = Info::parse(&format!(
            "# Server\r\nredis_version:7.2.4\r\n# Clients\r\nconnected_clients:{clients}\r\nmaxclients:60\r\ncluster_connections:0\r\n# Stats\r\ntotal_connections_received:{}\r\nrejected_connections:{rejected}\r\n# Replication\r\nrole:master\r\nconnected_slaves:0\r\n",
            1000 + minute * 3
        ));
        let summary = aggregator.summarize(&list, 50);
        let result = PollResult {
            info,
            config: ConfigValues {
                available: true,
                maxclients: Some(60.0),
                timeout: Some(0.0),
                tcp_keepalive: Some(300.0),
                maxmemory_clients: None,
            },
            config_error: None,
            clients: Some(summary),
            invalid_utf8: [0, 0],
            durations: StageDurations::default(),
        };
        Poller::fold_poll(
            &mut state,
            &mut history,
            result,
            Some(at),
            "orders-redis",
            60,
            "redis-cli -h redis.orders -p 6379",
        );
    }
    state.history = Some(std::sync::Arc::new(history));
    state.poll_interval = Duration::from_secs(15);
    let report = state.diagnosis.as_deref().cloned().expect("a diagnosis");
    (report, state)
}

/// Well-formedness of the page as python3's html.parser reads it: every element closed in
/// order (void elements excepted), no duplicate id, no script; and the SVG, parsed as XML (the
/// stricter grammar), gives back exactly the texts the page meant.
const CHECKER: &str = r#"
import sys, html.parser, xml.etree.ElementTree as ET
page = open(sys.argv[1], encoding="utf-8").read()
VOID = {"meta","link","br","img","input","hr","col","area","base","wbr","source","track","embed","param"}
class P(html.parser.HTMLParser):
    def __init__(s):
        super().__init__(convert_charrefs=True); s.stack=[]; s.ids=set(); s.errors=[]; s.scripts=0
    def handle_starttag(s, tag, attrs):
        s.attr(tag, attrs)
        if tag not in VOID: s.stack.append(tag)
    def handle_startendtag(s, tag, attrs): s.attr(tag, attrs)
    def attr(s, tag, attrs):
        if tag in ("script","iframe","object","embed","foreignobject"): s.scripts += 1
        for k, v in attrs:
            if k.startswith("on"): s.errors.append("event handler " + k)
            if k == "id":
                if v in s.ids: s.errors.append("duplicate id " + v)
                s.ids.add(v)
    def handle_endtag(s, tag):
        if not s.stack or s.stack[-1] != tag: s.errors.append("</%s> closes %s" % (tag, s.stack[-1:] or "nothing"))
        else: s.stack.pop()
p = P(); p.feed(page); p.close()
if p.stack: p.errors.append("unclosed " + ",".join(p.stack))
if p.scripts: p.errors.append("%d script-like elements" % p.scripts)
if not page.lower().startswith("<!doctype html>"): p.errors.append("no doctype")
a = page.index("<svg"); b = page.index("</svg>", a) + 6
svg = ET.fromstring(page[a:b])
ns = "{http://www.w3.org/2000/svg}"
print("\n".join(p.errors) if p.errors else "ok")
for e in svg.iter(ns + "path"):
    if "culprit" in e.get("class", ""): print("CULPRIT-KEY " + e.get("data-key"))
    elif "series" in e.get("class", ""): print("SERIES-KEY " + e.get("data-key"))
"#;

#[test]
fn an_hour_of_a_leak_renders_bounded_escaped_and_marked_in_chromium() {
    if !common::require_tool(CHROMEDRIVER, "chromium-driver")
        || !common::require_tool(CHROMIUM, "chromium")
        || !common::require_tool("python3", "python3")
    {
        return;
    }
    let (report, state) = an_hour_of_a_leak(true);
    let page = render::html_with(&report, &render::Extras::of(&state));
    let out = output_dir();
    let file = out.join("diagnose-hour.html");
    std::fs::write(&file, &page).expect("write page");
    assert_eq!(report.status, Status::Full, "{}", report.headline);
    let culprit = report
        .top_cause()
        .and_then(|f| f.selector.clone())
        .expect("a culprit");
    assert_eq!(culprit.key, "orders-api", "{}", report.headline);

    // Bounded: 300 sources with long names, yet at most the caps of points, groups and rows.
    assert!(page.len() < 120_000, "{} bytes", page.len());
    let points: usize = attr_value(&page, "data-points")
        .parse()
        .expect("data-points");
    let groups: usize = attr_value(&page, "data-groups")
        .parse()
        .expect("data-groups");
    assert!(
        (2..=timeline::MAX_POINTS).contains(&points) && points == 61,
        "{points}"
    );
    assert!(groups <= timeline::MAX_GROUPS, "{groups}");
    assert!(page.matches("<tr").count() < 2 * render::MAX_TABLE_ROWS + 60);

    // Well-formed, no script, and the SVG's names read back exactly as the history keeps them.
    let check = Command::new("python3")
        .args(["-c", CHECKER])
        .arg(&file)
        .output()
        .expect("python3");
    let said = String::from_utf8_lossy(&check.stdout).to_string();
    assert!(
        check.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let mut lines = said.lines();
    assert_eq!(lines.next(), Some("ok"), "{said}");
    let keys: Vec<&str> = said.lines().skip(1).collect();
    assert_eq!(
        keys.iter().filter(|k| k.starts_with("CULPRIT-KEY")).count(),
        1,
        "{said}"
    );
    assert!(keys.contains(&"CULPRIT-KEY orders-api"), "{said}");
    // The bidi override is shown as its code, not obeyed; everything else is the name itself.
    let shown = HOSTILE.replace('\u{202e}', "\\u{202e}");
    assert!(
        keys.contains(&format!("SERIES-KEY {shown}").as_str()),
        "{said}"
    );
    let long = redis_clients_exporter::redis::label::bound(&long_name()).to_string();
    assert!(
        keys.contains(&format!("SERIES-KEY {long}").as_str()),
        "{said}"
    );
    assert!(
        !page.contains('\u{202e}') && !page.contains("<script>") && !page.contains("]]></svg><b>")
    );

    let d = Driver::start();
    d.call(
        "POST",
        "/window/rect",
        Some(json!({"width": 1100, "height": 1500})),
    );
    d.call(
        "POST",
        "/url",
        Some(json!({ "url": format!("file://{}", file.display()) })),
    );
    // The browser built no element from a name: no script, no <b> inside the chart.
    let count = |css: &str| d.texts(css, Some("class")).len();
    assert_eq!(count("script"), 0);
    assert_eq!(count("#timeline b, #timeline foreignObject"), 0);
    assert_eq!(count("#timeline path.series.culprit"), 1);
    assert_eq!(
        count("#timeline rect.refused"),
        2,
        "the burst and the ongoing refusals"
    );
    // The SVG is laid out at the page's width, not collapsed.
    let svg = d.call(
        "POST",
        "/element",
        Some(json!({"using": "css selector", "value": "#timeline"})),
    );
    let id = svg
        .as_object()
        .and_then(|o| o.values().next())
        .and_then(Value::as_str)
        .expect("svg element")
        .to_string();
    let rect = d.call("GET", &format!("/element/{id}/rect"), None);
    assert!(
        rect["width"].as_f64().unwrap_or(0.0) > 600.0
            && rect["height"].as_f64().unwrap_or(0.0) > 250.0,
        "{rect}"
    );
    // The tables: the culprit's row marked; the hostile name shown as text.
    let culprit_rows = d.texts("#names tr.culprit", None);
    assert_eq!(culprit_rows.len(), 1, "{culprit_rows:?}");
    assert!(
        culprit_rows[0].starts_with("orders-api (culprit)"),
        "{culprit_rows:?}"
    );
    let names = d.texts("#names td.key", None);
    assert!(names.iter().any(|n| n == &shown), "{names:?}");
    let refusals = d.texts("#refusals li", None);
    assert_eq!(refusals.len(), 2, "{refusals:?}");
    assert!(refusals[1].contains("still refusing"), "{refusals:?}");
    assert!(!refusals[0].contains("still"), "{refusals:?}");
    let refresh = d.texts("meta[http-equiv=refresh]", Some("content"));
    assert_eq!(refresh, vec!["15".to_string()]);

    let shot = d.call("GET", "/screenshot", None);
    let png = base64::engine::general_purpose::STANDARD
        .decode(shot.as_str().unwrap_or(""))
        .expect("base64 screenshot");
    assert!(png.starts_with(b"\x89PNG"));
    std::fs::write(out.join("diagnose-hour-hostile.png"), &png).expect("write screenshot");

    // The same hour without the crowd: the picture README shows (docs/diagnose-report.png).
    let (report, state) = an_hour_of_a_leak(false);
    let file = out.join("diagnose-report.html");
    std::fs::write(
        &file,
        render::html_with(&report, &render::Extras::of(&state)),
    )
    .expect("write");
    d.call(
        "POST",
        "/window/rect",
        Some(json!({"width": 1000, "height": 760})),
    );
    d.call(
        "POST",
        "/url",
        Some(json!({ "url": format!("file://{}", file.display()) })),
    );
    assert_eq!(count("#timeline path.series.culprit"), 1);
    let shot = d.call("GET", "/screenshot", None);
    let png = base64::engine::general_purpose::STANDARD
        .decode(shot.as_str().unwrap_or(""))
        .expect("base64 screenshot");
    assert!(png.starts_with(b"\x89PNG"));
    std::fs::write(out.join("diagnose-report.png"), &png).expect("write screenshot");
}

fn output_dir() -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-output");
    std::fs::create_dir_all(&dir).expect("create target/test-output");
    dir
}

/// The value of the first `name="..."` attribute in `page`.
fn attr_value<'a>(page: &'a str, name: &str) -> &'a str {
    let start = page
        .find(&format!("{name}=\""))
        .map(|i| i + name.len() + 2)
        .unwrap_or(0);
    page[start..].split('"').next().unwrap_or("")
}
