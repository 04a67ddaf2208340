//! A real Prometheus scrapes the exporter, loads the shipped rules, and runs every dashboard
//! query, while a real Redis is driven to maxclients.
//!
//! The shipped `for:` durations (minutes) are shortened to seconds in the copy loaded here, so
//! the test takes about a minute; the durations themselves are pinned by the promtool unit
//! tests in tests/alerts/.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use std::time::{Duration, Instant};

use common::{config, Exporter, Prometheus, Redis};
use serde_json::Value;

const TARGET: &str = "e2e";

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// The shipped rules with every `for:` shortened to a few seconds.
fn fast_rules(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(repo("alerts/redis-clients.rules.yml")).expect("rules file");
    let fast: Vec<String> = text
        .lines()
        .map(|l| match l.trim_start().strip_prefix("for:") {
            Some(_) => format!("{}for: 3s", &l[..l.len() - l.trim_start().len()]),
            None => l.to_string(),
        })
        .collect();
    let p = dir.join("rules.yml");
    std::fs::write(&p, fast.join("\n")).expect("write rules");
    p
}

fn start_prometheus(exporter: std::net::SocketAddr) -> Prometheus {
    Prometheus::start(|dir| {
        let rules = fast_rules(dir);
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\nscrape_configs:\n  - job_name: redis-clients-exporter\n    static_configs:\n      - targets: ['{exporter}']\n",
            rules.display()
        )
    })
}

fn api(p: &Prometheus, path: &str) -> Option<String> {
    p.get(path)
}

/// Runs an instant query; returns the result vector, or the error Prometheus gave.
fn query(p: &Prometheus, q: &str) -> Result<Vec<Value>, String> {
    let (status, body) = common::http_get(
        format!("127.0.0.1:{}", p.port).parse().expect("addr"),
        &format!("/api/v1/query?query={}", common::url_encode(q)),
    );
    let v: Value = serde_json::from_str(&body).map_err(|e| format!("{status}: {e}: {body}"))?;
    if v["status"] != "success" {
        return Err(body);
    }
    Ok(v["data"]["result"].as_array().cloned().unwrap_or_default())
}

fn firing(p: &Prometheus) -> Vec<String> {
    let body = api(p, "/api/v1/alerts").unwrap_or_default();
    let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    v["data"]["alerts"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|x| x["state"] == "firing" && x["labels"]["target"] == TARGET)
                .filter_map(|x| x["labels"]["alertname"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn wait(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Every PromQL expression of every panel (rows included) of a dashboard.
fn dashboard_queries(v: &Value, out: &mut Vec<(String, String)>) {
    if let Some(panels) = v["panels"].as_array() {
        for p in panels {
            let title = p["title"].as_str().unwrap_or("?").to_string();
            for t in p["targets"].as_array().into_iter().flatten() {
                if let Some(e) = t["expr"].as_str() {
                    out.push((title.clone(), e.to_string()));
                }
            }
            dashboard_queries(p, out);
        }
    }
}

/// Substitutes Grafana's variables the way Grafana would for one selected target.
fn substitute(expr: &str) -> String {
    // cluster, node and role at `All` (a plain target has none of these labels).
    expr.replace("$cluster", ".*")
        .replace("$node", ".*")
        .replace("$role", ".*")
        .replace("${target:regex}", TARGET)
        .replace("${target}", TARGET)
        .replace("$target", TARGET)
        .replace("${__rate_interval}", "30s")
        .replace("$__rate_interval", "30s")
        .replace("${__interval}", "5s")
        .replace("$__interval", "5s")
        .replace("${__range}", "5m")
        .replace("$__range", "5m")
}

#[test]
fn prometheus_fires_the_alerts_and_every_dashboard_query_returns_data() {
    if !common::require_tool("prometheus", "prometheus")
        || !common::require_tool("promtool", "prometheus")
    {
        return;
    }
    let r = Redis::start(&["--maxclients", "20"]);
    let mut t = r.target(TARGET);
    t.poll_interval = Duration::from_millis(500);
    let exp = Exporter::start(config(vec![t], 50));
    let prom = start_prometheus(exp.addr);
    wait("first scrape", Duration::from_secs(30), || {
        query(&prom, "redis_up")
            .map(|r| !r.is_empty())
            .unwrap_or(false)
    });

    // States that the source dashboard shows: a subscriber, a blocked client, named pools.
    let mut held = Vec::new();
    let mut sub = r.conn_from("127.0.0.2").named("listener");
    sub.send(&["SUBSCRIBE", "news"]);
    held.push(sub);
    let mut blocked = r.conn_from("127.0.0.3").named("worker");
    blocked.send(&["BLPOP", "jobs", "0"]);
    held.push(blocked);
    // Fill to maxclients (the exporter holds one), then keep being refused.
    while held.len() < 19 {
        let c = r.conn_from("127.0.0.4").named("leaky-service");
        held.push(c);
    }
    let refuse = || {
        let mut c = r.conn();
        assert!(c.cmd(&["PING"]).is_error(), "server should be full");
    };
    refuse();

    let deadline = Instant::now() + Duration::from_secs(120);
    let want = [
        "RedisClientUtilisationHigh",
        "RedisClientUtilisationCritical",
        "RedisConnectionsRejected",
    ];
    loop {
        refuse();
        let f = firing(&prom);
        if want.iter().all(|w| f.iter().any(|x| x == w)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "alerts firing: {f:?}, wanted {want:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    // Every dashboard query parses and returns data for this target.
    let mut queries = Vec::new();
    for entry in std::fs::read_dir(repo("dashboards")).expect("dashboards/") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "json") {
            let v: Value = serde_json::from_str(&std::fs::read_to_string(&path).expect("read"))
                .expect("dashboard JSON");
            let before = queries.len();
            dashboard_queries(&v, &mut queries);
            assert!(queries.len() > before, "{} has no queries", path.display());
        }
    }
    // Panels built on rates need two samples inside the window: give them a moment.
    std::thread::sleep(Duration::from_secs(3));
    let mut failures = Vec::new();
    for (title, expr) in &queries {
        let q = substitute(expr);
        match query(&prom, &q) {
            Ok(res) if res.is_empty() => failures.push(format!("{title}: no data: {q}")),
            Ok(_) => {}
            Err(e) => failures.push(format!("{title}: error {e}: {q}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} dashboard queries failed:\n{}",
        failures.len(),
        queries.len(),
        failures.join("\n")
    );

    // promtool finds nothing wrong in the exposition.
    let (_, body) = exp.get("/metrics");
    let mut check = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool");
    use std::io::Write;
    check
        .stdin
        .take()
        .expect("stdin")
        .write_all(body.as_bytes())
        .expect("write");
    let out = check.wait_with_output().expect("promtool");
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    drop(held);
}

/// Redis counts protected mode's -DENIED in `rejected_connections`: refusals of a server far
/// from maxclients must not page as maxclients (issue 28's false page), and must still say
/// something (RedisConnectionsRefusedBelowLimit).
#[test]
fn protected_mode_refusals_do_not_page_as_maxclients() {
    if !common::require_tool("prometheus", "prometheus")
        || !common::require_tool("promtool", "prometheus")
    {
        return;
    }
    // Bound to 127.0.0.1, protected mode on, no password: a client from 127.0.0.2 is DENIED.
    let r = Redis::start(&["--protected-mode", "yes", "--maxclients", "50"]);
    let mut t = r.target(TARGET);
    t.poll_interval = Duration::from_millis(500);
    let exp = Exporter::start(config(vec![t], 50));
    let prom = start_prometheus(exp.addr);
    wait("first scrape", Duration::from_secs(30), || {
        query(&prom, "redis_up == 1")
            .map(|r| !r.is_empty())
            .unwrap_or(false)
    });

    let deny = || {
        let mut c = common::RespConn::try_connect(r.port, "127.0.0.2").expect("connect");
        match c.read() {
            Ok(common::Reply::Error(e)) => assert!(e.starts_with("DENIED"), "{e}"),
            other => panic!("expected -DENIED, got {other:?}"),
        }
    };
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        deny();
        let f = firing(&prom);
        assert!(
            !f.iter().any(|a| a == "RedisConnectionsRejected"),
            "a protected-mode refusal paged as maxclients: {f:?}"
        );
        if f.iter().any(|a| a == "RedisConnectionsRefusedBelowLimit") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "RedisConnectionsRefusedBelowLimit never fired; firing: {f:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    // The premise: Redis did count the refusals, at a utilisation far from the limit.
    let rejected = query(
        &prom,
        &format!("redis_rejected_connections_total{{target=\"{TARGET}\"}} > 0"),
    );
    assert!(
        rejected.is_ok_and(|r| !r.is_empty()),
        "rejected_connections did not grow"
    );
    let util = query(&prom, "redis:client_utilisation:max_over_time5m < 0.5");
    assert!(
        util.is_ok_and(|r| !r.is_empty()),
        "utilisation should be low"
    );
    // A few more evaluations after the warning: still no maxclients page.
    for _ in 0..6 {
        deny();
        std::thread::sleep(Duration::from_millis(500));
        let f = firing(&prom);
        assert!(
            !f.iter().any(|a| a == "RedisConnectionsRejected"),
            "a protected-mode refusal paged as maxclients: {f:?}"
        );
    }
}
