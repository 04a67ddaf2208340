//! The binary: --check-config, invalid configuration, logs, graceful shutdown, no secrets.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_redis-clients-exporter");
const SECRET: &str = "Sup3r-S3cret-pw";

fn write(dir: &std::path::Path, name: &str, body: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, body).expect("write");
    p
}

#[test]
fn check_config_validates_without_printing_secrets() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = write(
        dir.path(),
        "c.toml",
        &format!(
            "[[targets]]\naddress = \"redis://app:{SECRET}@10.1.2.3:6380\"\nalias = \"orders\"\n"
        ),
    );
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&cfg)
        .arg("--check-config")
        .output()
        .expect("run");
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{all}");
    assert!(all.contains("orders"), "{all}");
    assert!(!all.contains(SECRET), "{all}");
}

#[test]
fn invalid_config_names_the_key_and_the_file_and_exits_non_zero() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = write(
        dir.path(),
        "bad.yaml",
        "targets:\n  - address: redis://h:1\n  - address: memcached://h:2\n",
    );
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&cfg)
        .arg("--check-config")
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("targets[1].address") && err.contains("bad.yaml"),
        "{err}"
    );
    let out = Command::new(BIN)
        .args(["--config", "/nonexistent/x.toml"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/x.toml"));
}

#[test]
fn runs_logs_and_stops_gracefully_on_sigterm() {
    let r = common::Redis::start(&["--requirepass", SECRET]);
    let dir = tempfile::tempdir().expect("tempdir");
    let pw = write(dir.path(), "pw", &format!("{SECRET}\n"));
    let mut child = Command::new(BIN)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
            "--target",
        ])
        .arg(format!("redis://127.0.0.1:{}", r.port))
        .arg("--password-file")
        .arg(&pw)
        .env("RUST_LOG", "debug")
        .stderr(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn exporter");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut logs = Vec::new();
    let mut addr = None;
    let mut up = false;
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline && !(addr.is_some() && up) {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(100)) {
            if line.contains("\"listening\"") {
                addr = line
                    .split("\"addr\":\"")
                    .nth(1)
                    .and_then(|r| r.split('"').next())
                    .map(str::to_string);
            }
            up |= line.contains("target is up");
            logs.push(line);
        }
    }
    let addr: std::net::SocketAddr = addr.expect("listening line").parse().expect("addr");
    assert!(up, "{logs:?}");
    let (status, body) = common::http_get(addr, "/metrics");
    assert_eq!(status, 200);
    assert!(body.contains("redis_up{target=\"127.0.0.1:"), "{body}");

    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(kill.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "exporter did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
    while let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
        logs.push(line);
    }
    let all = logs.join("\n");
    assert!(all.contains("shutting down"), "{all}");
    assert!(
        !all.contains(SECRET) && !body.contains(SECRET),
        "the password leaked"
    );
}
