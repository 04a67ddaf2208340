//! The `/diagnose` HTML page in a real headless Chromium, driven over WebDriver by
//! chromedriver (Debian packages `chromium`, `chromium-driver`, installed by `.ci/run`): the
//! page loads, shows the ranked causes with the leak first, and logs no console error. A
//! screenshot is written to `target/diagnose-screenshot.png` (not committed).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use common::{config, free_port, Exporter, Redis, RespConn};
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
    let commands = d.texts("#causes pre", None);
    assert!(
        commands.iter().any(|c| c.contains("CLIENT KILL")),
        "{commands:?}"
    );

    let shot = d.call("GET", "/screenshot", None);
    let png = base64::engine::general_purpose::STANDARD
        .decode(shot.as_str().unwrap_or(""))
        .expect("base64 screenshot");
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    let out =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/diagnose-screenshot.png");
    std::fs::write(&out, &png).expect("write screenshot");

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
