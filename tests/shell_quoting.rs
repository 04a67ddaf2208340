//! Printed fix commands against hostile client names (issue 13 item 2, issue 15 item 5).
//!
//! Redis accepts `' ; $ { } \` | & "` in CLIENT SETNAME, and an SRE pastes the commands a
//! diagnosis prints. Each test makes clients with such names the culprits of a leak and of
//! blocked clients on a real redis-server, takes the report in one format (the daemon's
//! `/diagnose` as text, markdown, JSON and HTML; the `diagnose` command as text, markdown and
//! JSON), extracts every printed command and runs it in bash with the real redis-cli. Then:
//! no canary file exists (no payload ran), and exactly the culprits' connections are gone.
//! On a full server, every printed pipeline must exit non-zero instead of redis-cli's 0.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{config, Busy, Exporter, Redis, RespConn};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_redis-clients-exporter");

/// Names that run `touch <dir>/PWNED_<i>` if a printed command lets the shell interpret them
/// (Redis forbids spaces in names: `${IFS}` stands in). Each leaves a single-quoted context
/// first (the old commands put names between single quotes), then runs its payload by another
/// shell feature; some also carry what breaks Markdown (backtick runs) and HTML (`</pre>`).
fn hostile_names(dir: &Path) -> Vec<String> {
    let d = dir.display();
    vec![
        format!("x';touch${{IFS}}{d}/PWNED_0;echo'"),
        format!("'$(touch${{IFS}}{d}/PWNED_1)'```</pre><b>"),
        format!("'`touch${{IFS}}{d}/PWNED_2`'"),
        format!("'|touch${{IFS}}{d}/PWNED_3|'"),
        format!("'&touch${{IFS}}{d}/PWNED_4&'"),
        format!("\\';touch${{IFS}}{d}/PWNED_5;echo\"\\\"\"'"),
        format!("0123'\"$(touch${{IFS}}{d}/PWNED_6)\"`touch${{IFS}}{d}/PWNED_7`'"),
    ]
}

/// A server with a leak and blocked clients, both from several sources under hostile names,
/// beside innocent connections that share the culprits' sources.
struct Scenario {
    redis: Redis,
    leak_name: String,
    blocked_name: String,
    _busy: Busy,
    _held: Vec<RespConn>,
}

const LEAKED: usize = 30;
const BLOCKED: usize = 14;

impl Scenario {
    fn start(leak_name: &str, blocked_name: &str) -> Scenario {
        // 64 client connections (65 with the exporter's or the command's) of 76: a threat, so
        // the report prints commands (a pattern without a threat gets none).
        let redis = Redis::start(&["--maxclients", "76"]);
        let busy = Busy::start(
            (0..10)
                .map(|_| redis.conn_from("127.0.30.2").named("api"))
                .collect(),
        );
        let mut held = Vec::new();
        // 6 leaked, 1 idle bystander and 1 idle unnamed connection per source: the name is the
        // culprit (30 idle), and killing by source would take the innocents with it.
        for i in 1..=5 {
            let ip = format!("127.0.31.{i}");
            for _ in 0..LEAKED / 5 {
                held.push(redis.conn_from(&ip).named(leak_name));
            }
            held.push(redis.conn_from(&ip).named("bystander"));
            held.push(redis.conn_from(&ip));
        }
        for i in 1..=7 {
            let ip = format!("127.0.32.{i}");
            for _ in 0..BLOCKED / 7 {
                let mut c = redis.conn_from(&ip).named(blocked_name);
                c.send(&["BLPOP", "never-pushed", "0"]);
                held.push(c);
            }
        }
        Scenario {
            redis,
            leak_name: leak_name.to_string(),
            blocked_name: blocked_name.to_string(),
            _busy: busy,
            _held: held,
        }
    }

    /// Connections per client name now (our own CLIENT LIST connection left out).
    fn names(&self) -> BTreeMap<String, usize> {
        let mut c = self.redis.conn().named("shell-quoting-checker");
        let list = c.cmd(&["CLIENT", "LIST"]);
        let mut out = BTreeMap::new();
        for line in list.as_bulk().unwrap_or_default().lines() {
            let name = line
                .split(' ')
                .find_map(|f| f.strip_prefix("name="))
                .unwrap_or("");
            if name != "shell-quoting-checker" {
                *out.entry(name.to_string()).or_insert(0) += 1;
            }
        }
        out
    }

    fn assert_before(&self) {
        let n = self.names();
        assert_eq!(n.get(&self.leak_name), Some(&LEAKED), "{n:?}");
        assert_eq!(n.get(&self.blocked_name), Some(&BLOCKED), "{n:?}");
    }

    /// Exactly the culprits' connections are gone; every innocent one is still there.
    fn assert_only_culprits_closed(&self, exporter_holds_one: bool) {
        let n = self.names();
        assert_eq!(n.get(&self.leak_name), None, "leaked ones left: {n:?}");
        assert_eq!(n.get(&self.blocked_name), None, "blocked ones left: {n:?}");
        assert_eq!(n.get("api"), Some(&10), "{n:?}");
        assert_eq!(n.get("bystander"), Some(&5), "{n:?}");
        assert_eq!(n.get(""), Some(&5), "{n:?}");
        let own = usize::from(exporter_holds_one);
        assert_eq!(
            n.get("redis-clients-exporter").copied().unwrap_or(0),
            own,
            "{n:?}"
        );
        assert_eq!(n.len(), 3 + own, "{n:?}");
    }
}

fn canaries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

struct Ran {
    command: String,
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs one printed command in bash, in the canary directory, with a bounded wait.
fn run_bash(cmd: &str, dir: &Path) -> Ran {
    // The printed `redis-clients-exporter close` is this build's binary.
    let bin_dir = Path::new(BIN).parent().expect("the binary's directory");
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut child = Command::new("bash")
        .arg("-c")
        .arg(cmd)
        .env("PATH", path)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn bash");
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().ok().flatten().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("command did not finish: {cmd}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("output");
    Ran {
        command: cmd.to_string(),
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Format {
    Text,
    Markdown,
    Json,
    Html,
}

impl Format {
    fn arg(self) -> &'static str {
        match self {
            Format::Text => "text",
            Format::Markdown => "markdown",
            Format::Json => "json",
            Format::Html => "html",
        }
    }
}

fn html_unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// Every command a report prints, in order.
fn commands(format: Format, body: &str) -> Vec<String> {
    match format {
        Format::Text => body
            .lines()
            .filter_map(|l| l.trim_start().strip_prefix("$ "))
            .map(String::from)
            .collect(),
        Format::Markdown => {
            let mut out = Vec::new();
            let mut fence: Option<String> = None;
            let mut block = Vec::new();
            let mut text_fence: Option<String> = None;
            for l in body.lines() {
                let t = l.trim();
                if let Some(f) = &text_fence {
                    if t == f {
                        text_fence = None;
                    }
                    continue;
                }
                match &fence {
                    None => {
                        if t.starts_with("```") {
                            let f: String = t.chars().take_while(|&c| c == '`').collect();
                            // The one other block is the sparklines' (not a command): skipped.
                            if &t[f.len()..] == "text" {
                                text_fence = Some(f);
                                continue;
                            }
                            assert_eq!(
                                &t[f.len()..],
                                "sh",
                                "a code block that is not a command: {l}"
                            );
                            fence = Some(f);
                        }
                    }
                    Some(f) if t == f => {
                        out.push(block.join("\n"));
                        block.clear();
                        fence = None;
                    }
                    Some(_) => block.push(t.to_string()),
                }
            }
            assert!(fence.is_none(), "an unclosed code block:\n{body}");
            out
        }
        Format::Json => {
            let v: Value = serde_json::from_str(body).expect("a JSON report");
            v["findings"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|f| f["remediation"].as_array().cloned().unwrap_or_default())
                .flat_map(|s| {
                    ["command", "fallback_command"]
                        .into_iter()
                        .filter_map(|k| s[k].as_str().map(String::from))
                        .collect::<Vec<_>>()
                })
                .collect()
        }
        Format::Html => body
            .split("<pre>")
            .skip(1)
            .filter_map(|p| p.split_once("</pre>").map(|(c, _)| html_unescape(c)))
            .collect(),
    }
}

/// Runs every command, then checks that no payload ran and every command succeeded.
fn run_all(cmds: &[String], dir: &Path, body: &str) -> Vec<Ran> {
    assert!(
        cmds.iter().any(|c| c.contains("PWNED_")),
        "no printed command carries a hostile name, so this test would prove nothing:\n{body}"
    );
    let ran: Vec<Ran> = cmds.iter().map(|c| run_bash(c, dir)).collect();
    let found = canaries(dir);
    assert!(
        found.is_empty(),
        "a printed command ran the payload in a client name: {found:?}\n{body}"
    );
    ran
}

fn diagnose_cmd(args: &[&str]) -> (i32, String, String) {
    let mut child = Command::new(BIN)
        .arg("diagnose")
        .args(args)
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the exporter binary");
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().ok().flatten().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("diagnose {args:?} did not exit");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("output");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn culprit_is(r: &Value, cause: &str, culprit: &str) -> bool {
    r["findings"].as_array().is_some_and(|a| {
        a.iter().any(|f| {
            f["cause"] == cause
                && f["culprit"].as_str() == Some(culprit)
                && f["confidence"].as_f64().unwrap_or(0.0) >= 0.5
        })
    })
}

fn both_culprits_named(r: &Value, s: &Scenario) -> bool {
    culprit_is(
        r,
        "connection_leak",
        &format!("client_name {}", s.leak_name),
    ) && culprit_is(
        r,
        "blocked_clients",
        &format!("client_name {}", s.blocked_name),
    )
}

/// The daemon's report in `format`, once it blames both hostile names; also the JSON report of
/// that moment, to check that the format prints the same commands.
fn daemon_report(e: &Exporter, s: &Scenario, format: Format) -> (String, Vec<String>) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, json) = e.get("/diagnose?target=t");
        let rep: Value = serde_json::from_str(&json).unwrap_or(Value::Null);
        if both_culprits_named(&rep, s) {
            let (status, body) = e.get(&format!("/diagnose?target=t&format={}", format.arg()));
            assert_eq!(status, 200, "{body}");
            return (body, commands(Format::Json, &json));
        }
        assert!(
            Instant::now() < deadline,
            "the daemon never blamed both hostile names:\n{json}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn daemon_round(format: Format, name_index: usize) {
    let dir = tempfile::tempdir().expect("canary dir");
    let names = hostile_names(dir.path());
    let s = Scenario::start(
        &names[name_index % names.len()],
        &names[(name_index + 1) % names.len()],
    );
    let mut cfg = config(vec![s.redis.target("t")], 20);
    cfg.idle_threshold_seconds = 1;
    let e = Exporter::start(cfg);
    s.assert_before();
    let (body, json_cmds) = daemon_report(&e, &s, format);
    let cmds = commands(format, &body);
    assert!(!cmds.is_empty(), "no command printed:\n{body}");
    for c in &cmds {
        assert!(
            json_cmds.contains(c),
            "{format:?} prints a command the JSON report does not have (mangled?):\n{c}\n{body}"
        );
    }
    let ran = run_all(&cmds, dir.path(), &body);
    for r in &ran {
        assert_eq!(
            r.code, 0,
            "a printed command failed: {}\n{}{}",
            r.command, r.stdout, r.stderr
        );
    }
    s.assert_only_culprits_closed(true);
}

fn cli_round(format: Format, name_index: usize) {
    let dir = tempfile::tempdir().expect("canary dir");
    let names = hostile_names(dir.path());
    let s = Scenario::start(
        &names[name_index % names.len()],
        &names[(name_index + 1) % names.len()],
    );
    s.assert_before();
    // Idle ≥ 1 s before the one snapshot.
    std::thread::sleep(Duration::from_millis(1500));
    let url = format!("redis://127.0.0.1:{}", s.redis.port);
    let (code, out, err) = diagnose_cmd(&[
        &url,
        "--format",
        format.arg(),
        "--sample-seconds",
        "0",
        "--idle-threshold-seconds",
        "1",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let cmds = commands(format, &out);
    let ran = run_all(&cmds, dir.path(), &out);
    // The exact ids come first, then the live re-selection.
    assert!(
        cmds.iter()
            .any(|c| c.starts_with("printf 'CLIENT KILL ID %s\\n' ")),
        "no kill-by-id command:\n{out}"
    );
    for r in &ran {
        assert_eq!(
            r.code, 0,
            "a printed command failed: {}\n{}{}",
            r.command, r.stdout, r.stderr
        );
    }
    // The by-id steps closed every culprit connection (the live steps found nothing left).
    let closed: usize = ran
        .iter()
        .filter(|r| r.command.starts_with("printf 'CLIENT KILL ID"))
        .filter_map(|r| r.stdout.split_whitespace().next()?.parse::<usize>().ok())
        .sum();
    assert_eq!(closed, LEAKED + BLOCKED, "{out}");
    s.assert_only_culprits_closed(false);
}

#[test]
fn daemon_text_commands_are_safe_and_exact() {
    daemon_round(Format::Text, 0);
}

#[test]
fn daemon_markdown_commands_are_safe_and_exact() {
    daemon_round(Format::Markdown, 1);
}

#[test]
fn daemon_json_commands_are_safe_and_exact() {
    daemon_round(Format::Json, 2);
}

#[test]
fn daemon_html_commands_are_safe_and_exact() {
    daemon_round(Format::Html, 3);
}

#[test]
fn cli_text_commands_are_safe_and_exact() {
    cli_round(Format::Text, 4);
}

#[test]
fn cli_markdown_commands_are_safe_and_exact() {
    cli_round(Format::Markdown, 5);
}

#[test]
fn cli_json_commands_are_safe_and_exact() {
    cli_round(Format::Json, 0);
}

/// Runs every pipeline of a report against a server that is full: each must exit non-zero and
/// say so, where the old `grep | awk | xargs -r` pipeline exited 0 having done nothing.
fn assert_pipelines_fail_loudly(cmds: &[String], dir: &Path, body: &str) {
    let pipelines: Vec<&String> = cmds
        .iter()
        .filter(|c| c.contains('|') || c.starts_with("redis-clients-exporter close "))
        .collect();
    assert!(!pipelines.is_empty(), "no pipeline printed:\n{body}");
    assert!(
        pipelines
            .iter()
            .any(|c| c.starts_with("redis-clients-exporter close ")),
        "no close command printed:\n{body}"
    );
    for c in pipelines {
        let r = run_bash(c, dir);
        assert_ne!(
            r.code, 0,
            "exit 0 on a full server: {c}\n{}{}",
            r.stdout, r.stderr
        );
        assert!(
            r.stderr.contains("max number of clients") && r.stderr.contains("FAILED"),
            "says why: {c}\n{}{}",
            r.stdout,
            r.stderr
        );
    }
    assert!(canaries(dir).is_empty(), "{:?}", canaries(dir));
}

#[test]
fn on_a_full_server_the_daemons_pipelines_fail_loudly_and_the_report_says_what_works() {
    let dir = tempfile::tempdir().expect("canary dir");
    let name = &hostile_names(dir.path())[0];
    let r = Redis::start(&["--maxclients", "40"]);
    let mut cfg = config(vec![r.target("t")], 20);
    cfg.idle_threshold_seconds = 1;
    let e = Exporter::start(cfg);
    // The exporter holds its slot first; then 5 busy and 34 leaked connections take the rest.
    let deadline = Instant::now() + Duration::from_secs(10);
    while e.get("/diagnose?target=t").1.contains("\"unreachable\"") {
        assert!(Instant::now() < deadline, "the exporter never connected");
        std::thread::sleep(Duration::from_millis(100));
    }
    let _busy = Busy::start((0..5).map(|_| r.conn_from("127.0.33.2")).collect());
    let leak: Vec<RespConn> = (0..34)
        .map(|i| r.conn_from(&format!("127.0.34.{}", i % 5 + 1)).named(name))
        .collect();
    assert!(RespConn::try_connect(r.port, "127.0.0.1")
        .map(|mut c| c.cmd(&["PING"]).is_error())
        .unwrap_or(true));
    let culprit = format!("client_name {name}");
    let deadline = Instant::now() + Duration::from_secs(20);
    let json = loop {
        let (_, json) = e.get("/diagnose?target=t");
        let rep: Value = serde_json::from_str(&json).unwrap_or(Value::Null);
        if rep["status"] == "full" && culprit_is(&rep, "connection_leak", &culprit) {
            break json;
        }
        assert!(
            Instant::now() < deadline,
            "never full with the leak: {json}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let (_, text) = e.get("/diagnose?target=t&format=text");
    assert_pipelines_fail_loudly(&commands(Format::Text, &text), dir.path(), &text);
    // Plainly: no new connection can run the commands, and what works: the culprit's service,
    // named and quoted, and the exporter's relief action.
    let quoted = redis_clients_exporter::diagnose::shell::quote(name);
    for body in [&json, &text] {
        assert!(body.contains("no new connection can be opened"), "{body}");
    }
    assert!(
        text.contains(&format!("restart the service behind client_name {quoted}")),
        "{text}"
    );
    assert!(text.contains("relief action"), "{text}");
    assert!(text.contains("New connections are refused"), "{text}");
    // Nothing was closed.
    assert_eq!(leak.len(), 34);
    let (_, after) = e.get("/diagnose?target=t");
    let after: Value = serde_json::from_str(&after).unwrap_or(Value::Null);
    assert_eq!(after["server"]["client_list_connections"], 40, "{after}");
}

#[test]
fn on_a_full_server_the_commands_kill_by_id_fails_loudly() {
    let dir = tempfile::tempdir().expect("canary dir");
    let name = &hostile_names(dir.path())[3];
    let r = Redis::start(&["--maxclients", "40"]);
    let _busy = Busy::start((0..5).map(|_| r.conn_from("127.0.35.2")).collect());
    let mut leak: Vec<RespConn> = (0..34)
        .map(|i| r.conn_from(&format!("127.0.36.{}", i % 5 + 1)).named(name))
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    // The command takes the 40th slot: it sees a full server.
    let url = format!("redis://127.0.0.1:{}", r.port);
    let (code, out, err) = diagnose_cmd(&[
        &url,
        "--format",
        "json",
        "--sample-seconds",
        "0",
        "--idle-threshold-seconds",
        "1",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let rep: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(rep["status"], "full", "{out}");
    // Its slot is taken again as soon as it leaves.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut c = r.conn_from("127.0.36.9");
        if !c.cmd(&["PING"]).is_error() {
            leak.push(c);
            break;
        }
        assert!(Instant::now() < deadline, "the command's slot never freed");
        std::thread::sleep(Duration::from_millis(50));
    }
    let cmds = commands(Format::Json, &out);
    assert_pipelines_fail_loudly(&cmds, dir.path(), &out);
    assert!(
        cmds.iter().any(|c| c.starts_with("printf 'CLIENT KILL ID")),
        "{out}"
    );
    let steps = rep["findings"][0]["remediation"].to_string();
    assert!(steps.contains("no new connection can be opened"), "{out}");
    assert_eq!(leak.len(), 35);
}

/// Issue 28 item 6: the close step a person reads is one short line (the exporter's `close`
/// subcommand with redis-cli's flags and the quoted name), it closes exactly the culprits, a
/// second run closes nothing and still exits 0, and the `redis-cli`-only pipeline is the step's
/// fallback, not its command.
#[test]
fn the_short_close_command_is_readable_exact_and_safe_to_rerun() {
    let dir = tempfile::tempdir().expect("canary dir");
    let names = hostile_names(dir.path());
    let s = Scenario::start(&names[0], &names[2]);
    let mut cfg = config(vec![s.redis.target("t")], 20);
    cfg.idle_threshold_seconds = 1;
    let e = Exporter::start(cfg);
    s.assert_before();
    let (json, _) = daemon_report(&e, &s, Format::Json);
    let v: Value = serde_json::from_str(&json).expect("JSON");
    let steps: Vec<&Value> = v["findings"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|f| f["remediation"].as_array().into_iter().flatten())
        .filter(|s| {
            s["command"]
                .as_str()
                .is_some_and(|c| c.starts_with("redis-clients-exporter close "))
        })
        .collect();
    assert_eq!(steps.len(), 2, "one per culprit: {json}");
    let quoted = redis_clients_exporter::diagnose::shell::quote(&names[0]);
    let mut ran = Vec::new();
    for step in &steps {
        let c = step["command"].as_str().unwrap_or("");
        // Read in five seconds: one line, no pipe, no awk, the connection flags and the name.
        assert!(
            !c.contains('|') && !c.contains("awk") && !c.contains('\n'),
            "{c}"
        );
        assert!(
            c.len() < 60 + 2 * names[0].len().max(names[2].len()),
            "{} chars: {c}",
            c.len()
        );
        assert!(
            c.contains(&format!(" -h 127.0.0.1 -p {} ", s.redis.port)),
            "{c}"
        );
        // The guarded pipeline stays available, folded behind it.
        let fallback = step["fallback_command"].as_str().unwrap_or("");
        assert!(
            fallback.contains("awk") && fallback.len() > 3 * c.len(),
            "{fallback}"
        );
        ran.push(run_bash(c, dir.path()));
    }
    assert!(
        ran.iter().any(|r| r
            .command
            .contains(&format!("--client-name {quoted} --idle-seconds 1"))),
        "{json}"
    );
    assert!(
        ran.iter().any(|r| r.command.contains("--only blocked")),
        "{json}"
    );
    for r in &ran {
        assert_eq!(r.code, 0, "{}\n{}{}", r.command, r.stdout, r.stderr);
        assert!(r.stdout.contains("connection(s) closed"), "{}", r.stdout);
    }
    let closed: usize = ran
        .iter()
        .filter_map(|r| r.stdout.split_whitespace().next()?.parse::<usize>().ok())
        .sum();
    assert_eq!(closed, LEAKED + BLOCKED);
    assert!(
        canaries(dir.path()).is_empty(),
        "{:?}",
        canaries(dir.path())
    );
    s.assert_only_culprits_closed(true);
    // Again: nothing left to close, still exit 0, nobody else touched.
    for r in &ran {
        let again = run_bash(&r.command, dir.path());
        assert_eq!(again.code, 0, "{}{}", again.stdout, again.stderr);
        assert!(
            again.stdout.contains("nothing to close"),
            "{}",
            again.stdout
        );
    }
    s.assert_only_culprits_closed(true);
}
