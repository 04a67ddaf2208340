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

/// The exporter started with `cmd` (stderr piped, JSON logs), once it logged its address and
/// its first target up: the child, the address, the log lines so far and the rest to come.
struct Started {
    child: std::process::Child,
    addr: std::net::SocketAddr,
    logs: Vec<String>,
    rx: std::sync::mpsc::Receiver<String>,
}

fn start_until_up(cmd: &mut Command) -> Started {
    let mut child = cmd
        .args(["--listen", "127.0.0.1:0", "--log-format", "json"])
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
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the exporter exited with {status}: {logs:?}");
        }
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
    let Some(addr) = addr else {
        let _ = child.kill();
        panic!("no listening line: {logs:?}");
    };
    assert!(up, "{logs:?}");
    Started {
        child,
        addr: addr.parse().expect("addr"),
        logs,
        rx,
    }
}

/// SIGTERM, and the exit status once the exporter stopped (10 s at most).
fn terminate(child: &mut std::process::Child) -> std::process::ExitStatus {
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(kill.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(s) = child.try_wait().expect("wait") {
            return s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("exporter did not stop on SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn runs_logs_and_stops_gracefully_on_sigterm() {
    let r = common::Redis::start(&["--requirepass", SECRET]);
    let dir = tempfile::tempdir().expect("tempdir");
    let pw = write(dir.path(), "pw", &format!("{SECRET}\n"));
    let Started {
        mut child,
        addr,
        mut logs,
        rx,
    } = start_until_up(
        Command::new(BIN)
            .arg("--target")
            .arg(format!("redis://127.0.0.1:{}", r.port))
            .arg("--password-file")
            .arg(&pw),
    );
    let (status, body) = common::http_get(addr, "/metrics");
    assert_eq!(status, 200);
    assert!(body.contains("redis_up{target=\"127.0.0.1:"), "{body}");

    let status = terminate(&mut child);
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

/// What Kubernetes puts in every pod's environment for a Service named like the exporter
/// (service links), unless the pod spec says `enableServiceLinks: false`.
const SERVICE_LINKS: &[(&str, &str)] = &[
    ("REDIS_CLIENTS_EXPORTER_SERVICE_HOST", "10.96.0.7"),
    ("REDIS_CLIENTS_EXPORTER_SERVICE_PORT", "9816"),
    ("REDIS_CLIENTS_EXPORTER_SERVICE_PORT_METRICS", "9816"),
    ("REDIS_CLIENTS_EXPORTER_PORT", "tcp://10.96.0.7:9816"),
    (
        "REDIS_CLIENTS_EXPORTER_PORT_9816_TCP",
        "tcp://10.96.0.7:9816",
    ),
    ("REDIS_CLIENTS_EXPORTER_PORT_9816_TCP_PROTO", "tcp"),
    ("REDIS_CLIENTS_EXPORTER_PORT_9816_TCP_PORT", "9816"),
    ("REDIS_CLIENTS_EXPORTER_PORT_9816_TCP_ADDR", "10.96.0.7"),
];

#[test]
fn kubernetes_service_link_variables_do_not_stop_the_exporter() {
    let r = common::Redis::start(&[]);
    let target = format!("redis://127.0.0.1:{}", r.port);
    let out = Command::new(BIN)
        .arg("--check-config")
        .envs(SERVICE_LINKS.iter().copied())
        .env("REDIS_CLIENTS_EXPORTER_TARGET", &target)
        .output()
        .expect("run");
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{all}");
    assert!(all.contains(&format!("127.0.0.1:{}", r.port)), "{all}");

    // And the daemon itself: starts, polls the target from the environment, serves /metrics.
    let mut started = start_until_up(
        Command::new(BIN)
            .envs(SERVICE_LINKS.iter().copied())
            .env("REDIS_CLIENTS_EXPORTER_TARGET", &target),
    );
    // The listener is up before the first poll has finished: wait for the poll, bounded.
    let up = format!("redis_up{{target=\"127.0.0.1:{}\"}} 1", r.port);
    let deadline = Instant::now() + Duration::from_secs(30);
    let body = loop {
        let (status, body) = common::http_get(started.addr, "/metrics");
        assert_eq!(status, 200, "{body}");
        if body.contains(&up) || Instant::now() > deadline {
            break body;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(body.contains(&up), "{body}");
    assert!(terminate(&mut started.child).success());

    // A variable of ours that is neither configuration nor a service link is still refused,
    // by its name.
    let out = Command::new(BIN)
        .arg("--check-config")
        .envs(SERVICE_LINKS.iter().copied())
        .env("REDIS_CLIENTS_EXPORTER_TARGET", &target)
        .env("REDIS_CLIENTS_EXPORTER_POLL_INTERVAL", "5")
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("REDIS_CLIENTS_EXPORTER_POLL_INTERVAL"),
        "{err}"
    );
}

/// Runs the exporter with `args` and `env`, expecting exit status 2; returns all it printed.
fn exits_2(args: &[&std::ffi::OsStr], env: &[(&str, &str)]) -> String {
    let mut cmd = Command::new(BIN);
    cmd.args(args).envs(env.iter().copied());
    // Without --check-config the daemon would run on success: never wait for that.
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn exporter");
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{args:?} {env:?}: still running; expected exit status 2");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("output");
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(2), "{args:?} {env:?}: {all}");
    all
}

#[test]
fn missing_or_unreadable_password_files_and_empty_target_lists_are_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = write(dir.path(), "pw", &format!("{SECRET}\n"));
    let missing = dir.path().join("no-such-pw");
    let m = missing.display().to_string();
    let os = |s: &str| std::ffi::OsString::from(s);
    let listen = ["--listen", "127.0.0.1:0"];

    // Missing, through the flag: with --check-config, and at start-up (no daemon without it).
    for extra in [&["--check-config"][..], &listen[..]] {
        let mut args: Vec<std::ffi::OsString> = vec![os("--password-file"), missing.clone().into()];
        args.extend(extra.iter().map(|a| os(a)));
        let refs: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
        let all = exits_2(
            &refs,
            &[("REDIS_CLIENTS_EXPORTER_TARGET", "redis://127.0.0.1:1")],
        );
        assert!(all.contains("--password-file") && all.contains(&m), "{all}");
    }
    // --skip-secrets checks the rest of a configuration away from its host; only with
    // --check-config (the daemon never starts without its password).
    let out = Command::new(BIN)
        .args(["--check-config", "--skip-secrets", "--password-file"])
        .arg(&missing)
        .output()
        .expect("run");
    assert!(out.status.success(), "{out:?}");
    let all = exits_2(
        &[
            os("--skip-secrets").as_os_str(),
            os("--password-file").as_os_str(),
            missing.as_os_str(),
            os("--listen").as_os_str(),
            os("127.0.0.1:0").as_os_str(),
        ],
        &[],
    );
    assert!(all.contains("--check-config"), "{all}");
    // Missing, through the environment.
    let all = exits_2(
        &[os("--check-config").as_os_str()],
        &[("REDIS_CLIENTS_EXPORTER_PASSWORD_FILE", &m)],
    );
    assert!(
        all.contains("key `password_file`") && all.contains(&m),
        "{all}"
    );
    // Unreadable (a directory), on one target of a file whose default password file is
    // fine: the key, the file and the configuration file are named, the password never.
    let cfg = write(
        dir.path(),
        "c.toml",
        &format!(
            "password_file = \"{}\"\n[[targets]]\naddress = \"redis://127.0.0.1:1\"\n\
             [[targets]]\naddress = \"redis://127.0.0.1:2\"\npassword_file = \"{}\"\n",
            good.display(),
            dir.path().display()
        ),
    );
    let all = exits_2(
        &[
            os("--check-config").as_os_str(),
            os("--config").as_os_str(),
            cfg.as_os_str(),
        ],
        &[],
    );
    assert!(
        all.contains("key `targets[1].password_file`")
            && all.contains(&dir.path().display().to_string())
            && all.contains(&cfg.display().to_string()),
        "{all}"
    );
    assert!(!all.contains(SECRET), "{all}");
    // With the file there, the same configuration is fine.
    std::fs::write(&cfg, format!("password_file = \"{}\"\n", good.display())).expect("write");
    let out = Command::new(BIN)
        .arg("--check-config")
        .arg("--config")
        .arg(&cfg)
        .output()
        .expect("run");
    assert!(out.status.success(), "{out:?}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains(SECRET));

    // A target list of separators only names nothing to poll.
    for list in [",", " , "] {
        for extra in [&["--check-config"][..], &listen[..]] {
            let args: Vec<&std::ffi::OsStr> = extra.iter().map(std::ffi::OsStr::new).collect();
            let all = exits_2(&args, &[("REDIS_CLIENTS_EXPORTER_TARGET", list)]);
            assert!(all.contains("key `target`"), "{all}");
        }
    }
}

/// A bad `--target` is the flag's error (which one, counted from 1), not a configuration key's;
/// `valkey://` and `valkeys://` are accepted as `redis://` and `rediss://`.
#[test]
fn a_bad_target_flag_names_the_flag_and_valkey_urls_are_accepted() {
    let all = exits_2(
        &[
            "--target".as_ref(),
            "valkey://127.0.0.1:6379".as_ref(),
            "--target".as_ref(),
            "redis://:x@127.0.0.1:notaport".as_ref(),
            "--check-config".as_ref(),
        ],
        &[],
    );
    assert!(
        all.contains("flag `--target` (2nd): not a valid URL"),
        "{all}"
    );
    assert!(
        !all.contains("environment") && !all.contains("key `"),
        "{all}"
    );
    let out = Command::new(BIN)
        .args(["--target", "valkeys://127.0.0.1:6380", "--check-config"])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
