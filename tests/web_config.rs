//! The exporter-toolkit web configuration file, as Prometheus' own exporters read it: a
//! `web.yml` in its documented keys starts and is enforced (client certificates required and
//! verified, `client_allowed_sans`, `min_version`, headers), a rotated certificate is served
//! without a restart, and an unknown key stops the binary with exit 2, naming key and file.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Command;

use common::{config, Exporter, Redis};
use redis_clients_exporter::config::load_web_config;

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

/// A CA `ca` (files `ca.pem`, `ca.key`).
fn ca(dir: &Path, ca: &str) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &format!("{ca}.key"),
            "-out",
            &format!("{ca}.pem"),
            "-days",
            "2",
            "-subj",
            &format!("/CN={ca}"),
        ],
    );
}

/// `name.pem`/`name.key` signed by `ca`, with the given X.509 v3 extensions.
fn leaf(dir: &Path, ca: &str, name: &str, ext: &str) {
    std::fs::write(dir.join(format!("{name}.ext")), ext).expect("ext");
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
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            &format!("{name}.pem"),
            "-extfile",
            &format!("{name}.ext"),
        ],
    );
}

const SERVER_EXT: &str = "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n";

/// curl's HTTP status (`000` when the handshake failed) and the response headers.
fn curl(port: u16, dir: &Path, ca: &str, cert: Option<&str>, extra: &[&str]) -> (String, String) {
    let resolve = format!("localhost:{port}:127.0.0.1");
    let mut cmd = Command::new("curl");
    if let Some(c) = cert {
        cmd.args(["--cert", &format!("{c}.pem"), "--key", &format!("{c}.key")]);
    }
    let out = cmd
        .args(["-s", "-D", "-", "-o", "/dev/null", "-w", "%{http_code}"])
        .args(["--max-time", "10", "--resolve", &resolve, "--cacert", ca])
        .args(extra)
        .arg(format!("https://localhost:{port}/metrics"))
        .current_dir(dir)
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let code = text[text.len().saturating_sub(3)..].to_string();
    (code, text)
}

#[test]
fn an_exporter_toolkit_web_yml_is_enforced_and_rotation_needs_no_restart() {
    if !common::require_tool("openssl", "openssl") || !common::require_tool("curl", "curl") {
        return;
    }
    let d = tempfile::tempdir().expect("tempdir");
    let dir = d.path();
    ca(dir, "ca");
    ca(dir, "ca2");
    leaf(dir, "ca", "server", SERVER_EXT);
    leaf(dir, "ca2", "server2", SERVER_EXT);
    let client_ext = |san: &str| format!("subjectAltName={san}\nextendedKeyUsage=clientAuth\n");
    leaf(
        dir,
        "ca",
        "prometheus",
        &client_ext("DNS:prometheus.example"),
    );
    leaf(dir, "ca", "intruder", &client_ext("DNS:intruder.example"));
    // A certificate for the allowed name from another CA: the SAN alone is not enough.
    leaf(dir, "ca2", "forged", &client_ext("DNS:prometheus.example"));
    // exporter-toolkit's documented keys; paths relative to the file, as it reads them.
    std::fs::write(
        dir.join("web.yml"),
        "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n  \
         client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.pem\n  \
         client_allowed_sans:\n    - prometheus.example\n  min_version: TLS13\n  \
         max_version: TLS13\n  cipher_suites:\n    - TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256\n  \
         prefer_server_cipher_suites: true\n  curve_preferences:\n    - X25519\n    - CurveP256\n\
         http_server_config:\n  http2: false\n  headers:\n    X-Frame-Options: deny\n    \
         X-Content-Type-Options: nosniff\n",
    )
    .expect("web.yml");
    let r = Redis::start(&[]);
    let mut cfg = config(vec![r.target("main")], 50);
    cfg.web = load_web_config(&dir.join("web.yml")).expect("web.yml loads");
    let exp = Exporter::start(cfg);
    let port = exp.addr.port();
    let (code, _) = curl(port, dir, "ca.pem", None, &[]);
    assert_eq!(
        code, "000",
        "no client certificate: refused in the handshake"
    );
    let (code, headers) = curl(port, dir, "ca.pem", Some("prometheus"), &[]);
    assert_eq!(code, "200", "{headers}");
    let lower = headers.to_ascii_lowercase();
    assert!(
        lower.contains("x-frame-options: deny")
            && lower.contains("x-content-type-options: nosniff"),
        "{headers}"
    );
    let (code, _) = curl(port, dir, "ca.pem", Some("intruder"), &[]);
    assert_eq!(code, "000", "a SAN not in client_allowed_sans: refused");
    let (code, _) = curl(port, dir, "ca.pem", Some("forged"), &[]);
    assert_eq!(code, "000", "an allowed SAN from another CA: refused");
    let tls12 = ["--tlsv1.2", "--tls-max", "1.2"];
    let (code, _) = curl(port, dir, "ca.pem", Some("prometheus"), &tls12);
    assert_eq!(code, "000", "TLS 1.2 below min_version TLS13: refused");

    // Rotation: the certificate and key files are replaced (as cert-manager does); the next
    // connection is served with the new certificate, by the same process.
    std::fs::copy(dir.join("server2.pem"), dir.join("server.pem")).expect("rotate cert");
    std::fs::copy(dir.join("server2.key"), dir.join("server.key")).expect("rotate key");
    let (code, _) = curl(port, dir, "ca2.pem", Some("prometheus"), &[]);
    assert_eq!(code, "200", "the rotated certificate is served");
    let (code, _) = curl(port, dir, "ca.pem", Some("prometheus"), &[]);
    assert_eq!(code, "000", "the old certificate is no longer served");

    // The web.yml itself changes: client certificates no longer required, a header dropped.
    let yml = std::fs::read_to_string(dir.join("web.yml")).expect("read");
    let relaxed = yml
        .replace("RequireAndVerifyClientCert", "VerifyClientCertIfGiven")
        .replace("  client_allowed_sans:\n    - prometheus.example\n", "")
        .replace("    X-Frame-Options: deny\n", "");
    std::fs::write(dir.join("web.yml"), relaxed).expect("write");
    let (code, headers) = curl(port, dir, "ca2.pem", None, &[]);
    assert_eq!(
        code, "200",
        "the re-read file no longer requires a certificate"
    );
    assert!(
        !headers.to_ascii_lowercase().contains("x-frame-options"),
        "{headers}"
    );
    // A broken file keeps the configuration in force.
    std::fs::write(dir.join("web.yml"), "tls_server_config:\n  nonsense: 1\n").expect("write");
    let (code, _) = curl(port, dir, "ca2.pem", None, &[]);
    assert_eq!(code, "200", "a web.yml that does not load changes nothing");
}

#[test]
fn an_unknown_web_yml_key_stops_the_binary_naming_key_and_file() {
    let d = tempfile::tempdir().expect("tempdir");
    let p = d.path().join("web.yml");
    std::fs::write(
        &p,
        "tls_server_config:\n  cert_file: a\n  key_file: b\n  min_versoin: TLS12\n",
    )
    .expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_redis-clients-exporter"))
        .arg("--web-config-file")
        .arg(&p)
        .arg("--check-config")
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("min_versoin") && err.contains(&p.display().to_string()),
        "{err}"
    );
}

/// A relief user named by a client certificate (`cert:` + a SAN): the verified certificate
/// passes relief's gate, another verified certificate is refused as not listed, and none is
/// unauthenticated. Relief's answer about the (unknown) target shows the gate was passed.
#[test]
fn a_verified_client_certificate_can_be_a_relief_user() {
    if !common::require_tool("openssl", "openssl") || !common::require_tool("curl", "curl") {
        return;
    }
    let d = tempfile::tempdir().expect("tempdir");
    let dir = d.path();
    ca(dir, "ca");
    leaf(dir, "ca", "server", SERVER_EXT);
    let client_ext = |san: &str| format!("subjectAltName={san}\nextendedKeyUsage=clientAuth\n");
    leaf(dir, "ca", "ops", &client_ext("DNS:ops.example"));
    leaf(dir, "ca", "reader", &client_ext("DNS:reader.example"));
    std::fs::write(
        dir.join("web.yml"),
        "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n  \
         client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: ca.pem\n",
    )
    .expect("web.yml");
    let r = Redis::start(&[]);
    std::fs::write(
        dir.join("c.toml"),
        format!(
            "listen = \"127.0.0.1:0\"\nweb_config_file = \"{}\"\n[[targets]]\naddress = \"redis://127.0.0.1:{}\"\n\
             [relief]\nenabled = true\nusers = [\"cert:ops.example\"]\n",
            dir.join("web.yml").display(),
            r.port
        ),
    )
    .expect("config");
    let cfg = redis_clients_exporter::config::load_with_env(
        Some(&dir.join("c.toml")),
        &Default::default(),
        std::iter::empty(),
    )
    .expect("a cert: relief user with verified client certificates is valid");
    let exp = Exporter::start(cfg);
    let port = exp.addr.port();
    let preview = |cert: Option<&str>| {
        let resolve = format!("localhost:{port}:127.0.0.1");
        let mut cmd = Command::new("curl");
        if let Some(c) = cert {
            cmd.args(["--cert", &format!("{c}.pem"), "--key", &format!("{c}.key")]);
        }
        let out = cmd
            .args([
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "--max-time",
                "10",
            ])
            .args(["--resolve", &resolve, "--cacert", "ca.pem", "-X", "POST"])
            .args(["-H", "Content-Type: application/json"])
            .args(["-d", r#"{"target":"no-such-target"}"#])
            .arg(format!("https://localhost:{port}/relief/preview"))
            .current_dir(dir)
            .output()
            .expect("curl");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(preview(None), "401", "no certificate: unauthenticated");
    assert_eq!(
        preview(Some("reader")),
        "403",
        "a certificate relief does not list"
    );
    assert_eq!(
        preview(Some("ops")),
        "404",
        "the listed certificate passes the gate (then: no such target)"
    );

    // Without verified client certificates, a cert: user is a configuration error.
    std::fs::write(
        dir.join("plain.yml"),
        "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n",
    )
    .expect("web.yml");
    let toml = std::fs::read_to_string(dir.join("c.toml"))
        .expect("read")
        .replace("web.yml", "plain.yml");
    std::fs::write(dir.join("c2.toml"), toml).expect("write");
    let e = redis_clients_exporter::config::load_with_env(
        Some(&dir.join("c2.toml")),
        &Default::default(),
        std::iter::empty(),
    )
    .expect_err("no client certificates verified")
    .to_string();
    assert!(
        e.contains("key `relief.users`") && e.contains("cert:ops.example"),
        "{e}"
    );
}
