//! The page an on-call receives, end to end: a real Redis driven to maxclients by a named
//! leaking client, the exporter, a real Prometheus evaluating the rules rendered from the mixin,
//! a real Alertmanager routing and inhibiting with the mixin's shipped fragment
//! (mixin/alertmanager.libsonnet, alerts/alertmanager-fragment.yml), and a webhook receiver in
//! this test for each of the fragment's receivers. One incident must give ONE notification to
//! the paging receiver and none to the ticket receiver (its warnings are inhibited, as is the
//! "near maxclients" page while refusals page); that notification's alerts (refusals and the
//! diagnosis) name the culprit (address and client name) and the cause, carry a /diagnose link
//! that answers, and a runbook link to the alert's section (served here, so the configured
//! runbook base is exercised too).
//!
//! Every `for:` is overridden to 2s through the mixin's _config (the shipped durations are
//! pinned by tests/alerts/), and the fragment's timers to seconds; its routes, matchers,
//! grouping and inhibit rules are the shipped ones.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{config, Exporter, Redis};
use serde_json::{json, Value};

const TARGET: &str = "e2e";
const LEAKER_IP: &str = "127.0.0.2";
const LEAKER_NAME: &str = "leaky-worker";
const MAXCLIENTS: usize = 30;
/// The fragment's group_wait here: long enough for every alert of the incident to reach
/// Alertmanager before the group is first sent, on a loaded machine too.
const GROUP_WAIT: &str = "20s";
const PAGE: &str = "redis-clients-page";
const TICKET: &str = "redis-clients-ticket";

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// A child process killed on drop, with the directory holding its config and data.
struct Proc {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `program` on a free loopback port (retrying: a port picked by binding :0 can be
/// taken before the program binds it) until `GET /-/ready` answers 200.
fn spawn_ready(program: &str, args: impl Fn(&Path, u16) -> Vec<String>) -> Proc {
    for _ in 0..10 {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = common::free_port();
        let child = Command::new(program)
            .args(args(dir.path(), port))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {program}: {e}"));
        let mut p = Proc {
            child,
            port,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = p.child.try_wait() {
                break;
            }
            if TcpStream::connect(("127.0.0.1", port)).is_ok()
                && common::http_get(addr(port), "/-/ready").0 == 200
            {
                return p;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    panic!("{program} did not start");
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// The webhook receiver: records every notification posted to /hook/<receiver> (with the
/// receiver's name) and serves docs/runbook.md at /runbook.md.
struct Hook {
    port: u16,
    received: Arc<Mutex<Vec<(String, Value)>>>,
}

fn start_hook() -> Hook {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind webhook receiver");
    let port = listener.local_addr().expect("addr").port();
    let received = Arc::new(Mutex::new(Vec::new()));
    let rec = Arc::clone(&received);
    let runbook = std::fs::read_to_string(repo("docs/runbook.md")).expect("docs/runbook.md");
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let _ = serve(stream, &rec, &runbook);
        }
    });
    Hook { port, received }
}

fn serve(
    stream: TcpStream,
    rec: &Mutex<Vec<(String, Value)>>,
    runbook: &str,
) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut r = BufReader::new(stream.try_clone()?);
    let mut request = String::new();
    r.read_line(&mut request)?;
    let mut len = 0;
    loop {
        let mut h = String::new();
        if r.read_line(&mut h)? == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body)?;
    let (status, reply) = match request.split_whitespace().take(2).collect::<Vec<_>>()[..] {
        ["POST", path] if path.starts_with("/hook/") => {
            if let Ok(v) = serde_json::from_slice::<Value>(&body) {
                let receiver = path.trim_start_matches("/hook/").to_string();
                rec.lock().expect("lock").push((receiver, v));
            }
            ("200 OK", "ok\n")
        }
        ["GET", "/runbook.md"] => ("200 OK", runbook),
        _ => ("404 Not Found", "not found\n"),
    };
    let mut w = stream;
    write!(
        w,
        "HTTP/1.0 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{reply}",
        reply.len()
    )
}

/// `what` of the shipped mixin as a mixin user renders it, with `_config` overrides: here the
/// link bases, every `for` shortened to 2s and the Alertmanager timers to seconds.
fn render_mixin(overrides: &Value, what: &str) -> Vec<u8> {
    let code = format!(
        "local base = (import 'config.libsonnet')._config;\n\
         local m = (import 'mixin.libsonnet') + {{ _config+:: {overrides} + {{\n\
           [k]: '2s' for k in std.objectFields(base) if std.endsWith(k, 'For')\n\
         }} + {{ alertmanagerGroupWait: '{GROUP_WAIT}', alertmanagerGroupInterval: '10m', alertmanagerRepeatInterval: '1h' }} }};\n\
         {what}"
    );
    let out = Command::new("jsonnet")
        .arg("-J")
        .arg(repo("mixin"))
        .args(["-e", &code])
        .current_dir(repo("mixin"))
        .output()
        .expect("run jsonnet (apt-get install jsonnet)");
    assert!(
        out.status.success(),
        "jsonnet: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// The rules file Prometheus loads (JSON is YAML: it reads the rendered groups as they are).
fn render_rules(dir: &Path, overrides: &Value) -> PathBuf {
    let rules = render_mixin(
        overrides,
        "{ groups: m.prometheusRules.groups + m.prometheusAlerts.groups }",
    );
    let p = dir.join("rules.yml");
    std::fs::write(&p, rules).expect("write rules");
    p
}

/// An Alertmanager configuration made of the shipped fragment: its routes under a catch-all
/// `default` receiver, its inhibit rules, and a webhook to this test for every receiver.
fn alertmanager_config(hook_port: u16) -> String {
    let fragment: Value =
        serde_json::from_slice(&render_mixin(&json!({}), "m.alertmanagerConfig")).expect("JSON");
    let routes = fragment["route"]["routes"].clone();
    let mut names = vec!["default".to_string()];
    for r in routes.as_array().expect("routes") {
        names.push(r["receiver"].as_str().expect("receiver").to_string());
    }
    let receivers: Vec<Value> = names
        .iter()
        .map(|n| {
            json!({"name": n, "webhook_configs": [
                {"url": format!("http://127.0.0.1:{hook_port}/hook/{n}"), "send_resolved": false}
            ]})
        })
        .collect();
    json!({
        "route": {"receiver": "default", "routes": routes},
        "receivers": receivers,
        "inhibit_rules": fragment["inhibit_rules"],
    })
    .to_string()
}

/// Splits `http://127.0.0.1:PORT/path?query#fragment` into the address and the request path.
fn split_url(url: &str) -> (SocketAddr, String) {
    let rest = url
        .strip_prefix("http://")
        .unwrap_or_else(|| panic!("not an http URL: {url}"));
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = path.split('#').next().unwrap_or("/");
    (
        host.parse()
            .unwrap_or_else(|e| panic!("{url}: host {host}: {e}")),
        path.to_string(),
    )
}

/// The notifications `receiver` got so far with a firing alert of our target.
fn notifications(hook: &Hook, receiver: &str) -> Vec<Value> {
    hook.received
        .lock()
        .expect("lock")
        .iter()
        .filter(|(r, n)| {
            r == receiver
                && n["alerts"].as_array().is_some_and(|a| {
                    a.iter()
                        .any(|a| a["status"] == "firing" && a["labels"]["target"] == TARGET)
                })
        })
        .map(|(_, n)| n.clone())
        .collect()
}

/// The names of the firing alerts of one notification.
fn alert_names(notification: &Value) -> Vec<String> {
    let mut names: Vec<String> = notification["alerts"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|a| a["status"] == "firing")
                .filter_map(|a| a["labels"]["alertname"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Alertmanager's view of our target's alert `name`: (state, inhibited by).
fn am_state(am_port: u16, name: &str) -> Option<(String, usize)> {
    let (status, body) = common::http_get(addr(am_port), "/api/v2/alerts");
    if status != 200 {
        return None;
    }
    let alerts: Value = serde_json::from_str(&body).ok()?;
    alerts.as_array()?.iter().find_map(|a| {
        (a["labels"]["alertname"] == name && a["labels"]["target"] == TARGET).then(|| {
            (
                a["status"]["state"].as_str().unwrap_or("").to_string(),
                a["status"]["inhibitedBy"].as_array().map_or(0, Vec::len),
            )
        })
    })
}

#[test]
fn one_incident_one_page_naming_the_culprit_with_working_links() {
    let r = Redis::start(&["--maxclients", &MAXCLIENTS.to_string()]);
    let mut t = r.target(TARGET);
    t.poll_interval = Duration::from_millis(500);
    let mut cfg = config(vec![t], 10);
    cfg.idle_threshold_seconds = 1;
    let exp = Exporter::start(cfg);
    let hook = start_hook();

    // The leak: one named client takes every slot but the exporter's, and leaves them idle.
    let mut held = Vec::new();
    while held.len() < MAXCLIENTS - 1 {
        held.push(r.conn_from(LEAKER_IP).named(LEAKER_NAME));
    }
    let refuse = || {
        let mut c = r.conn();
        assert!(c.cmd(&["PING"]).is_error(), "server should be full");
    };
    refuse();

    // The exporter's diagnosis series carries the culprit (the labels the rules read). Prometheus
    // starts after it, so that the incident's alerts reach Alertmanager together, as they would
    // after the shipped 1m group_wait.
    let m = exp.wait_for("the leak diagnosed", Duration::from_secs(30), |m| {
        m.all("redis_client_diagnosis", &[("target", TARGET)])
            .iter()
            .any(|(l, v)| {
                l.get("cause").map(String::as_str) == Some("connection_leak") && *v >= 0.7
            })
    });
    let (labels, _) = m.all("redis_client_diagnosis", &[("target", TARGET)])[0];
    let culprit = (
        labels.get("culprit_kind").cloned().unwrap_or_default(),
        labels.get("culprit").cloned().unwrap_or_default(),
    );
    assert!(
        culprit == ("source_ip".into(), LEAKER_IP.into())
            || culprit == ("client_name".into(), LEAKER_NAME.into()),
        "diagnosis culprit labels: {labels:?}"
    );

    let am_config = alertmanager_config(hook.port);
    let am = spawn_ready("prometheus-alertmanager", |dir, port| {
        let cfg = dir.join("alertmanager.yml");
        std::fs::write(&cfg, &am_config).expect("write alertmanager.yml");
        vec![
            format!("--config.file={}", cfg.display()),
            format!("--storage.path={}", dir.join("data").display()),
            format!("--web.listen-address=127.0.0.1:{port}"),
            // No gossip: nothing listens beyond the one loopback port.
            "--cluster.listen-address=".to_string(),
        ]
    });

    // Link bases as a deployment behind a proxy would set them: the exporter's address for
    // /diagnose, and a runbook copy served by the webhook receiver.
    let diagnose_base = format!("http://{}", exp.addr);
    let runbook_base = format!("http://127.0.0.1:{}/runbook.md", hook.port);
    let overrides = json!({"diagnoseUrlBase": diagnose_base, "runbookUrlBase": runbook_base});
    let exporter_addr = exp.addr;
    let am_port = am.port;
    let prom = spawn_ready("prometheus", |dir, port| {
        let rules = render_rules(dir, &overrides);
        let cfg = dir.join("prometheus.yml");
        std::fs::write(
            &cfg,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\n\
                 alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['127.0.0.1:{am_port}']\n\
                 scrape_configs:\n  - job_name: redis-clients-exporter\n    static_configs:\n      - targets: ['{exporter_addr}']\n",
                rules.display()
            ),
        )
        .expect("write prometheus.yml");
        vec![
            format!("--config.file={}", cfg.display()),
            format!("--storage.tsdb.path={}", dir.join("data").display()),
            format!("--web.listen-address=127.0.0.1:{port}"),
            // Send changed annotations to Alertmanager every second, not every minute.
            "--rules.alert.resend-delay=1s".to_string(),
        ]
    });

    // The incident pages (refusals keep coming) and Alertmanager holds the warning and the
    // "near maxclients" page as inhibited.
    let inhibited = [
        "RedisClientUtilisationHigh",
        "RedisClientUtilisationCritical",
    ];
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        refuse();
        let paged = !notifications(&hook, PAGE).is_empty();
        let held_back = inhibited.iter().all(|n| {
            am_state(am_port, n).is_some_and(|(state, by)| state == "suppressed" && by > 0)
        });
        if paged && held_back {
            break;
        }
        if Instant::now() > deadline {
            let firing = common::http_get(addr(prom.port), "/api/v1/alerts").1;
            let am_alerts = common::http_get(addr(am_port), "/api/v2/alerts").1;
            panic!(
                "no page with {inhibited:?} inhibited.\nReceived: {:#?}\nPrometheus alerts: {firing}\n\
                 Alertmanager alerts: {am_alerts}",
                hook.received.lock().expect("lock")
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    // A while longer (the refusals go on): nothing more is sent for this incident.
    let settle = Instant::now() + Duration::from_secs(5);
    while Instant::now() < settle {
        refuse();
        std::thread::sleep(Duration::from_millis(500));
    }

    let pages = notifications(&hook, PAGE);
    assert_eq!(
        pages.len(),
        1,
        "one incident, one page; got: {:#?}",
        pages.iter().map(alert_names).collect::<Vec<_>>()
    );
    let page = &pages[0];
    assert_eq!(
        alert_names(page),
        ["RedisClientsCauseDiagnosed", "RedisConnectionsRejected"],
        "the page holds the refusals and the diagnosis, the inhibited alerts are left out: {page:#}"
    );
    for receiver in [TICKET, "default"] {
        let got = notifications(&hook, receiver);
        assert!(
            got.is_empty(),
            "{receiver} got notified although its alerts are inhibited while the target pages: {:#?}",
            got.iter().map(alert_names).collect::<Vec<_>>()
        );
    }

    for alert in page["alerts"].as_array().expect("alerts") {
        let name = alert["labels"]["alertname"].as_str().unwrap_or("");
        assert_eq!(alert["labels"]["severity"], "critical", "{name}: {alert:#}");
        let a = &alert["annotations"];
        let description = a["description"].as_str().unwrap_or("");
        assert!(
            description.contains(LEAKER_IP)
                && description.contains(LEAKER_NAME)
                && description.contains("connection_leak"),
            "{name}: the page does not name {LEAKER_IP}, {LEAKER_NAME} and connection_leak: {description}"
        );

        // The /diagnose link, in the text and as its own annotation, answers with the culprit.
        let link = format!("{diagnose_base}/diagnose?target={TARGET}&format=html");
        assert_eq!(a["diagnose_url"], link.as_str(), "{name}: {alert:#}");
        assert!(
            description.contains(&link),
            "{name}: description lacks {link}: {description}"
        );
        let (host, path) = split_url(&link);
        let (status, page) = common::http_get(host, &path);
        assert_eq!(status, 200, "{name}: GET {link}: {page}");
        assert!(
            page.contains(LEAKER_IP) || page.contains(LEAKER_NAME),
            "{name}: the /diagnose page does not name the culprit"
        );

        // The runbook link points at the alert's own section of the served runbook.
        let runbook = format!("{runbook_base}#{}", name.to_lowercase());
        assert_eq!(a["runbook_url"], runbook.as_str(), "{name}: {alert:#}");
        let (host, path) = split_url(&runbook);
        let (status, text) = common::http_get(host, &path);
        assert_eq!(status, 200, "{name}: GET {runbook}");
        assert!(
            text.lines().any(|l| l == format!("## {name}")),
            "{name}: the runbook has no section `## {name}`"
        );
    }
    drop(held);
}
