//! TLS to Redis, the exporter's own TLS and basic auth, SIGHUP reload, and no secret in any
//! output. Certificates are made here with openssl; Redis is Debian's, built with TLS.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use common::{config, free_port, Exporter, Redis};
use redis_clients_exporter::config::topology::Allowlist;
use redis_clients_exporter::config::{Endpoint, TlsOptions, WebConfig, WebTls};

const BIN: &str = env!("CARGO_BIN_EXE_redis-clients-exporter");
const WAIT: Duration = Duration::from_secs(15);
const SECRET: &str = "Tr0ub4dor-and-3";

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl (apt-get install openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A self-signed CA: `NAME.key` and `NAME.pem` in `dir`.
fn self_signed_ca(dir: &Path, name: &str, subject: &str) {
    let (key, pem) = (format!("{name}.key"), format!("{name}.pem"));
    openssl(
        dir,
        &[
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", &key, "-out", &pem,
            "-days", "2", "-subj", subject,
        ],
    );
}

/// A CA, a server certificate for `localhost` and 127.0.0.1, and a client certificate.
fn certificates(dir: &Path) {
    self_signed_ca(dir, "ca", "/CN=test-ca");
    // Both as X.509 v3 (with extensions): rustls refuses v1 end-entity certificates.
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    )
    .expect("ext");
    std::fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n").expect("ext");
    for name in ["server", "client"] {
        openssl(
            dir,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.csr"),
                "-subj",
                &format!("/CN={name}"),
            ],
        );
        let mut args = vec![
            "x509",
            "-req",
            "-in",
            &*format!("{name}.csr"),
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
        ]
        .into_iter()
        .map(str::to_string)
        .collect::<Vec<_>>();
        args.extend([
            "-out".to_string(),
            format!("{name}.pem"),
            "-extfile".to_string(),
            format!("{name}.ext"),
        ]);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        openssl(dir, &refs);
    }
}

fn tls_redis(dir: &Path, tls_port: u16) -> Redis {
    let p = |f: &str| dir.join(f).display().to_string();
    Redis::start(&[
        "--tls-port",
        &tls_port.to_string(),
        "--tls-cert-file",
        &p("server.pem"),
        "--tls-key-file",
        &p("server.key"),
        "--tls-ca-cert-file",
        &p("ca.pem"),
        "--tls-auth-clients",
        "yes",
    ])
}

#[test]
fn tls_targets_verify_the_server_present_a_client_certificate_and_honour_sni() {
    if !common::require_tool("openssl", "openssl") {
        return;
    }
    let certs = tempfile::tempdir().expect("tempdir");
    certificates(certs.path());
    let tls_port = free_port();
    let r = tls_redis(certs.path(), tls_port);
    let d = |f: &str| Some(certs.path().join(f));
    let target = |label: &str, tls: TlsOptions| {
        let mut t = r.target(label);
        t.endpoint = Endpoint::Tcp {
            host: "127.0.0.1".into(),
            port: tls_port,
        };
        t.tls = Some(tls);
        t
    };
    let with_client = TlsOptions {
        ca_file: d("ca.pem"),
        cert_file: d("client.pem"),
        key_file: d("client.key"),
        ..Default::default()
    };
    let exp = Exporter::start(config(
        vec![
            target(
                "verified",
                TlsOptions {
                    server_name: Some("localhost".into()),
                    ..with_client.clone()
                },
            ),
            target(
                "skip-verify",
                TlsOptions {
                    ca_file: None,
                    insecure_skip_verify: true,
                    ..with_client.clone()
                },
            ),
            target(
                "system-roots",
                TlsOptions {
                    ca_file: None,
                    ..with_client.clone()
                },
            ),
            target(
                "wrong-sni",
                TlsOptions {
                    server_name: Some("wrong.example".into()),
                    ..with_client.clone()
                },
            ),
            target(
                "no-client-cert",
                TlsOptions {
                    ca_file: d("ca.pem"),
                    ..Default::default()
                },
            ),
        ],
        50,
    ));
    let m = exp.wait_for("TLS targets settled", WAIT, |m| {
        m.get("redis_up", &[("target", "verified")]) == Some(1.0)
            && m.get("redis_up", &[("target", "skip-verify")]) == Some(1.0)
            && ["system-roots", "wrong-sni", "no-client-cert"]
                .iter()
                .all(|t| m.sum("redis_clients_exporter_poll_errors_total", &[("target", t)]) >= 1.0)
    });
    for t in ["system-roots", "wrong-sni", "no-client-cert"] {
        assert_eq!(
            m.get("redis_up", &[("target", t)]),
            Some(0.0),
            "{t} must be down"
        );
    }
    assert!(m
        .get(
            "redis_client_snapshot_connections",
            &[("target", "verified")]
        )
        .is_some());

    // A rotated CA file is read again at the next connect (the client configuration is shared
    // between connections only while its files are unchanged): replaced by a CA that did not
    // sign the server's certificate, the reconnect fails; put back, it succeeds.
    let ca = certs.path().join("ca.pem");
    let good_ca = std::fs::read(&ca).expect("ca");
    self_signed_ca(certs.path(), "other", "/CN=other-ca");
    std::fs::copy(certs.path().join("other.pem"), &ca).expect("rotate");
    let connect_errors = |m: &common::Metrics| {
        m.get(
            "redis_clients_exporter_poll_errors_total",
            &[("target", "verified"), ("kind", "connect")],
        )
        .unwrap_or(0.0)
    };
    let before = connect_errors(&m);
    let kill_ours = || {
        let mut admin = r.conn();
        admin.cmd(&["CLIENT", "KILL", "USER", "default", "SKIPME", "yes"]);
    };
    kill_ours();
    exp.wait_for("verified down with the rotated CA", WAIT, |m| {
        m.get("redis_up", &[("target", "verified")]) == Some(0.0)
            && connect_errors(m) > before + 1.0
    });
    std::fs::write(&ca, good_ca).expect("restore");
    exp.wait_for("verified up with the CA back", WAIT, |m| {
        m.get("redis_up", &[("target", "verified")]) == Some(1.0)
    });
}

fn bcrypt_hash(password: &str) -> String {
    bcrypt::hash(password, 4).expect("bcrypt")
}

fn curl(args: &[&str]) -> (String, String) {
    let out = Command::new("curl")
        .args(["-s", "-o", "-", "-w", "\n%{http_code}", "--max-time", "10"])
        .args(args)
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", ""));
    (code.to_string(), body.to_string())
}

#[test]
fn metrics_endpoint_with_tls_and_basic_auth() {
    if !common::require_tool("openssl", "openssl") || !common::require_tool("curl", "curl") {
        return;
    }
    let certs = tempfile::tempdir().expect("tempdir");
    certificates(certs.path());
    let r = Redis::start(&[]);
    let mut cfg = config(vec![r.target("main")], 50);
    let allow = format!("127.0.0.1:{}", r.port);
    cfg.topology.dynamic.allow = Allowlist::parse([allow.as_str()]).expect("allowlist");
    cfg.web = WebConfig {
        tls_server_config: Some(WebTls::files(
            certs.path().join("server.pem"),
            certs.path().join("server.key"),
        )),
        basic_auth_users: [("prometheus".to_string(), bcrypt_hash(SECRET))]
            .into_iter()
            .collect(),
        ..Default::default()
    };
    let exp = Exporter::start(cfg);
    let url = |path: &str| format!("https://localhost:{}{path}", exp.addr.port());
    let ca = certs.path().join("ca.pem").display().to_string();
    let resolve = format!("localhost:{}:127.0.0.1", exp.addr.port());
    let base = ["--cacert", &ca, "--resolve", &resolve];

    let with = |extra: &[&str], path: &str| {
        let mut a: Vec<&str> = base.to_vec();
        a.extend_from_slice(extra);
        let u = url(path);
        a.push(&u);
        curl(&a)
    };
    let creds = format!("prometheus:{SECRET}");
    let deadline = Instant::now() + WAIT;
    loop {
        let (code, body) = with(&["-u", &creds], "/metrics");
        if code == "200" && body.contains("redis_up{target=\"main\"} 1") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no authenticated scrape: {code} {body}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(with(&[], "/metrics").0, "401");
    assert_eq!(with(&["-u", "prometheus:wrong"], "/metrics").0, "401");
    // /scrape is protected like /metrics: no poller starts for an unauthenticated caller.
    let scrape = format!("/scrape?target=redis://127.0.0.1:{}", r.port);
    assert_eq!(with(&[], &scrape).0, "401");
    let (code, body) = with(&["-u", &creds], &scrape);
    assert_eq!(code, "200", "{body}");
    assert!(body.contains("redis_up{"), "{body}");
    assert_eq!(with(&["-u", "nobody:x"], "/").0, "401");
    // Probes need no credentials.
    assert_eq!(with(&[], "/healthz").0, "200");
    // Plain HTTP on the TLS port gets no metrics.
    let (code, body) = curl(&[&format!("http://127.0.0.1:{}/metrics", exp.addr.port())]);
    assert_ne!(code, "200", "{body}");
    // And a client that does not trust our CA refuses the server.
    let (code, _) = curl(&["-u", &creds, "--resolve", &resolve, &url("/metrics")]);
    assert_eq!(code, "000");
}

struct Daemon {
    child: Child,
    logs: Receiver<String>,
    seen: Vec<String>,
    addr: std::net::SocketAddr,
}

impl Daemon {
    fn start(args: &[&str]) -> Daemon {
        let mut child = Command::new(BIN)
            .args(["--listen", "127.0.0.1:0", "--log-format", "json"])
            .args(args)
            .env("RUST_LOG", "trace")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn exporter");
        let (tx, rx) = std::sync::mpsc::channel();
        for stream in [
            Box::new(child.stderr.take().expect("stderr")) as Box<dyn std::io::Read + Send>,
            Box::new(child.stdout.take().expect("stdout")),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let _ = tx.send(line);
                }
            });
        }
        let mut d = Daemon {
            child,
            logs: rx,
            seen: Vec::new(),
            addr: "127.0.0.1:0".parse().expect("addr"),
        };
        let line = d.wait_log("listening");
        d.addr = line
            .split("\"addr\":\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .expect("addr")
            .parse()
            .expect("addr");
        d
    }

    fn wait_log(&mut self, needle: &str) -> String {
        if let Some(l) = self.seen.iter().find(|l| l.contains(needle)) {
            return l.clone();
        }
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if let Ok(line) = self.logs.recv_timeout(Duration::from_millis(100)) {
                self.seen.push(line.clone());
                if line.contains(needle) {
                    return line;
                }
            }
        }
        panic!(
            "no log line with {needle:?}; logs:\n{}",
            self.seen.join("\n")
        );
    }

    fn metrics(&self) -> common::Metrics {
        common::Metrics::parse(&common::http_get(self.addr, "/metrics").1)
    }

    fn wait_metrics(&self, what: &str, f: impl Fn(&common::Metrics) -> bool) -> common::Metrics {
        let deadline = Instant::now() + WAIT;
        loop {
            let m = self.metrics();
            if f(&m) {
                return m;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}:\n{}",
                m.text
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn signal(&self, sig: &str) {
        assert!(Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .expect("kill")
            .success());
    }

    /// Stops the daemon and returns everything it printed.
    fn finish(mut self) -> String {
        self.signal("-TERM");
        let _ = self.child.wait();
        while let Ok(l) = self.logs.recv_timeout(Duration::from_millis(300)) {
            self.seen.push(l);
        }
        self.seen.join("\n")
    }
}

fn write_config(path: &Path, targets: &[(&str, u16)], extra: &str) {
    let mut s = format!("poll_interval_seconds = 0.2\n{extra}\n");
    for (alias, port) in targets {
        s.push_str(&format!(
            "[[targets]]\naddress = \"redis://127.0.0.1:{port}\"\nalias = \"{alias}\"\n"
        ));
    }
    std::fs::write(path, s).expect("write config");
}

#[test]
fn sighup_reloads_targets_and_rejects_a_bad_config() {
    let a = Redis::start(&[]);
    let b = Redis::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg: PathBuf = dir.path().join("exporter.toml");
    write_config(&cfg, &[("a", a.port)], "");
    let mut d = Daemon::start(&["--config", &cfg.display().to_string()]);
    d.wait_metrics("a up", |m| {
        m.get("redis_up", &[("target", "a")]) == Some(1.0)
    });

    write_config(&cfg, &[("a", a.port), ("b", b.port)], "");
    d.signal("-HUP");
    d.wait_metrics("b added", |m| {
        m.get("redis_up", &[("target", "b")]) == Some(1.0)
    });
    // a kept its connection: still exactly one exporter connection on a.
    let m = d.metrics();
    assert_eq!(
        m.get(
            "redis_client_connections_by_name",
            &[("target", "a"), ("name", "redis-clients-exporter")]
        ),
        Some(1.0)
    );

    write_config(&cfg, &[("b", b.port)], "");
    d.signal("-HUP");
    d.wait_metrics("a removed", |m| {
        m.get("redis_up", &[("target", "a")]).is_none()
            && m.get("redis_up", &[("target", "b")]) == Some(1.0)
    });
    // a's connection is closed, not leaked.
    let mut admin = a.conn();
    let deadline = Instant::now() + WAIT;
    loop {
        let list = admin.cmd(&["CLIENT", "LIST"]);
        if !list
            .as_bulk()
            .unwrap_or("")
            .contains("name=redis-clients-exporter")
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the removed target's connection stayed open"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    std::fs::write(&cfg, "[[targets]]\naddress = \"gopher://nowhere\"\n").expect("write");
    d.signal("-HUP");
    let line = d.wait_log("reload rejected");
    assert!(line.contains("targets[0].address"), "{line}");
    let polls = d
        .metrics()
        .get("redis_clients_exporter_polls_total", &[("target", "b")])
        .expect("b polls");
    d.wait_metrics("b still polled after the rejected reload", |m| {
        m.get("redis_clients_exporter_polls_total", &[("target", "b")]) > Some(polls + 2.0)
    });
    d.finish();
}

#[test]
fn no_secret_in_any_output() {
    let r = Redis::start(&["--requirepass", SECRET]);
    let dir = tempfile::tempdir().expect("tempdir");
    let pw = dir.path().join("pw");
    std::fs::write(&pw, format!("{SECRET}\n")).expect("write");
    // Something in Redis' place that repeats what it was sent in its error reply: the
    // password must not travel on into logs or outputs.
    let echo = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let echo_port = echo.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for mut s in echo.incoming().flatten() {
            use std::io::{Read, Write};
            let mut buf = [0u8; 4096];
            let n = s.read(&mut buf).unwrap_or(0);
            let sent = String::from_utf8_lossy(&buf[..n]).replace(['\r', '\n'], " ");
            let _ = s.write_all(format!("-ERR you sent {sent}\r\n").as_bytes());
        }
    });
    let cfg = dir.path().join("c.yaml");
    std::fs::write(
        &cfg,
        format!(
            "poll_interval_seconds: 0.2\ntargets:\n  - address: redis://:{SECRET}@127.0.0.1:{port}\n    alias: in-url\n  - address: redis://127.0.0.1:{port}\n    alias: from-file\n    password_file: {pw}\n  - address: redis://127.0.0.1:{port}\n    alias: wrong\n    password: {SECRET}x\n  - address: redis://127.0.0.1:{echo_port}\n    alias: echo\n    password: {SECRET}\n",
            port = r.port,
            pw = pw.display()
        ),
    )
    .expect("write");
    let check = Command::new(BIN)
        .args(["--check-config", "--config", &cfg.display().to_string()])
        .output()
        .expect("check");
    let mut all = format!(
        "{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    assert!(check.status.success(), "{all}");

    let d = Daemon::start(&["--config", &cfg.display().to_string()]);
    let m = d.wait_metrics("two up, two refused", |m| {
        m.get("redis_up", &[("target", "in-url")]) == Some(1.0)
            && m.get("redis_up", &[("target", "from-file")]) == Some(1.0)
            && m.get(
                "redis_clients_exporter_poll_errors_total",
                &[("target", "wrong"), ("kind", "auth")],
            ) >= Some(1.0)
            && m.get(
                "redis_clients_exporter_poll_errors_total",
                &[("target", "echo"), ("kind", "auth")],
            ) >= Some(1.0)
    });
    all.push_str(&m.text);
    all.push_str(&common::http_get(d.addr, "/").1);
    all.push_str(&d.finish());
    assert!(
        all.contains("target is down"),
        "the wrong password must be logged as a clear down:\n{all}"
    );
    assert!(!all.contains(SECRET), "the password leaked:\n{all}");
}

#[test]
fn a_rotated_password_file_is_read_again_at_the_next_reconnect() {
    let r = Redis::start(&["--requirepass", "first-pw"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "first-pw\n").expect("write");
    let mut t = r.target("rotating");
    t.password = redis_clients_exporter::config::Secret::File(pw.clone());
    let exp = Exporter::start(config(vec![t], 50));
    exp.wait_for("up with the first password", WAIT, |m| {
        m.get("redis_up", &[("target", "rotating")]) == Some(1.0)
    });

    // Rotate: new password on the server and in the file, then drop the exporter's connection.
    let mut admin = r.conn();
    assert!(!admin.cmd(&["AUTH", "first-pw"]).is_error());
    assert!(!admin
        .cmd(&["CONFIG", "SET", "requirepass", "second-pw"])
        .is_error());
    std::fs::write(&pw, "second-pw\n").expect("write");
    let killed = admin.cmd(&["CLIENT", "KILL", "SKIPME", "yes"]);
    assert_eq!(
        killed,
        common::Reply::Int(1),
        "the exporter's connection should have been killed"
    );
    let before = exp.scrape().sum(
        "redis_clients_exporter_poll_errors_total",
        &[("target", "rotating")],
    );
    exp.wait_for(
        "the drop noticed, then up with the second password",
        WAIT,
        |m| {
            m.sum(
                "redis_clients_exporter_poll_errors_total",
                &[("target", "rotating")],
            ) > before
                && m.get("redis_up", &[("target", "rotating")]) == Some(1.0)
        },
    );
    assert_eq!(
        exp.scrape().get(
            "redis_clients_exporter_poll_errors_total",
            &[("target", "rotating"), ("kind", "auth")]
        ),
        Some(0.0),
        "the new password was not read"
    );
}
