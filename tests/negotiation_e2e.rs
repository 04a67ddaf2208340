//! `/metrics` by negotiation, read by the real tools: Prometheus (which asks for OpenMetrics
//! 1.0 first and for gzip) scrapes every family under the names the 0.0.4 text has, and
//! `promtool check metrics` reads the 0.0.4 text, gzipped on the wire.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::io::Read as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{config, Exporter, Prometheus, Redis};
use serde_json::Value;

const OM_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// Status, headers (lower-cased names) and the body, gunzipped when it came gzipped.
fn get(addr: std::net::SocketAddr, accept: Option<&str>, gzip: bool) -> (String, String, String) {
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-D", "/dev/stderr", "--max-time", "10"]);
    if let Some(a) = accept {
        cmd.args(["-H", &format!("Accept: {a}")]);
    }
    if gzip {
        cmd.args(["-H", "Accept-Encoding: gzip"]);
    }
    let out = cmd
        .arg(format!("http://{addr}/metrics"))
        .output()
        .expect("curl");
    let headers = String::from_utf8_lossy(&out.stderr).to_ascii_lowercase();
    let status = headers.split(' ').nth(1).unwrap_or("").to_string();
    let body = if headers.contains("content-encoding: gzip") {
        let mut s = String::new();
        flate2::read::GzDecoder::new(&out.stdout[..])
            .read_to_string(&mut s)
            .expect("a gzip body");
        s
    } else {
        String::from_utf8(out.stdout).expect("utf8")
    };
    (status, headers, body)
}

/// The sample names of a text exposition.
fn sample_names(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap_or("").to_string())
        .collect()
}

#[test]
fn prometheus_scrapes_openmetrics_gzipped_and_promtool_reads_the_text() {
    if !common::require_tool("prometheus", "prometheus")
        || !common::require_tool("promtool", "prometheus")
        || !common::require_tool("curl", "curl")
    {
        return;
    }
    let r = Redis::start(&[]);
    let mut cfg = config(vec![r.target("negotiated")], 50);
    cfg.targets[0].poll_interval = Duration::from_millis(500);
    let exp = Exporter::start(cfg);
    let addr = exp.addr;
    let deadline = Instant::now() + Duration::from_secs(20);
    while !get(addr, None, false)
        .2
        .contains("redis_up{target=\"negotiated\"} 1")
    {
        assert!(Instant::now() < deadline, "the target never came up");
        std::thread::sleep(Duration::from_millis(200));
    }

    // The negotiation itself.
    let (status, headers, plain) = get(addr, None, false);
    assert_eq!(status, "200");
    assert!(
        headers.contains("content-type: text/plain; version=0.0.4"),
        "{headers}"
    );
    assert!(!headers.contains("content-encoding"), "{headers}");
    let (_, headers, gz_text) = get(addr, None, true);
    assert!(headers.contains("content-encoding: gzip"), "{headers}");
    assert!(headers.contains("text/plain; version=0.0.4"), "{headers}");
    assert_eq!(sample_names(&gz_text), sample_names(&plain));
    let (_, headers, om) = get(addr, Some(OM_ACCEPT), true);
    assert!(
        headers.contains("content-type: application/openmetrics-text; version=1.0.0"),
        "{headers}"
    );
    assert!(
        om.ends_with("# EOF\n"),
        "{}",
        &om[om.len().saturating_sub(200)..]
    );
    assert!(om.contains("# TYPE redis_clients_exporter_polls counter\n"));
    assert!(om.contains("\nredis_clients_exporter_polls_total{target=\"negotiated\"} "));
    assert!(!om.contains("# TYPE redis_clients_exporter_polls_total"));
    assert_eq!(sample_names(&om), sample_names(&plain));

    // promtool reads the 0.0.4 text (it lints; a parse error is a failure either way).
    let mut lint = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool");
    std::io::Write::write_all(lint.stdin.as_mut().expect("stdin"), gz_text.as_bytes())
        .expect("write");
    let out = lint.wait_with_output().expect("promtool");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !said.contains("error while linting") && !said.contains("parse"),
        "{said}"
    );

    // Prometheus 2.42 asks for OpenMetrics first and for gzip: every family arrives, under
    // the names of the 0.0.4 text.
    let p = Prometheus::start(|_| {
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: negotiated\n    static_configs:\n      - targets: ['{addr}']\n"
        )
    });
    let names_in_prometheus = || -> BTreeSet<String> {
        let (_, body) = common::http_get(
            format!("127.0.0.1:{}", p.port).parse().expect("addr"),
            &format!(
                "/api/v1/query?query={}",
                common::url_encode("count by (__name__) ({job=\"negotiated\"})")
            ),
        );
        let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        v["data"]["result"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r["metric"]["__name__"].as_str().map(str::to_string))
            .filter(|n| n != "up" && !n.starts_with("scrape_"))
            .collect()
    };
    let want = sample_names(&get(addr, None, false).2);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = names_in_prometheus();
        if got == want {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus's names differ from the text's:\nmissing {:?}\nextra {:?}",
            want.difference(&got).collect::<Vec<_>>(),
            got.difference(&want).collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}
