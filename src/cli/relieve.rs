//! The `relieve` subcommand's side: POSTs a preview (and, asked to, the execute with its
//! token) to a running exporter over HTTP or HTTPS with basic auth, and says what happened.
//! The exporter does the work on its held connection; this only talks to the exporter.

use std::fmt::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use base64::Engine;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use serde_json::Value;

use crate::diagnose::shell::visible;

/// The whole exchange with the exporter, response included (an execute waits for the poller).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
const MAX_RESPONSE: usize = 64 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{0}")]
    Usage(String),
    #[error("cannot reach the exporter at {url}: {message}")]
    Connect { url: String, message: String },
    #[error("the exporter answered {status}: {message}")]
    Refused { status: u16, message: String },
}

/// Where the exporter is and how to authenticate.
pub struct Exporter {
    url: url::Url,
    auth: Option<String>,
    tls: Option<tokio_rustls::TlsConnector>,
}

impl Exporter {
    /// `url` is `http://host:port` or `https://host:port`; `user` and the password from
    /// `password_file` become a basic-auth header; `ca_file` verifies an https exporter.
    pub fn new(
        url: &str,
        user: Option<&str>,
        password_file: Option<&PathBuf>,
        ca_file: Option<&PathBuf>,
    ) -> Result<Exporter, ClientError> {
        let url = url::Url::parse(url)
            .map_err(|e| ClientError::Usage(format!("--exporter: not a URL ({e})")))?;
        if url.host_str().is_none() || !matches!(url.scheme(), "http" | "https") {
            return Err(ClientError::Usage(
                "--exporter must be http://host:port or https://host:port".into(),
            ));
        }
        let auth = match (user, password_file) {
            (Some(u), Some(f)) => {
                let pw = std::fs::read_to_string(f).map_err(|e| {
                    ClientError::Usage(format!(
                        "cannot read the password file {}: {e}",
                        f.display()
                    ))
                })?;
                let pw = pw.trim_end_matches(['\r', '\n']);
                Some(format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(format!("{u}:{pw}"))
                ))
            }
            (None, None) => None,
            _ => {
                return Err(ClientError::Usage(
                    "basic auth needs both --auth-user (RELIEVE_USER) and --password-file (RELIEVE_PASSWORD_FILE)".into(),
                ))
            }
        };
        let tls = if url.scheme() == "https" {
            let opts = crate::config::TlsOptions {
                ca_file: ca_file.cloned(),
                ..Default::default()
            };
            let cfg = crate::redis::tls::client_config(&opts)
                .map_err(|e| ClientError::Usage(format!("--ca-file: {e}")))?;
            Some(tokio_rustls::TlsConnector::from(Arc::new(cfg)))
        } else {
            None
        };
        Ok(Exporter { url, auth, tls })
    }

    /// POSTs `body` to `path` (under the URL's own path); the JSON answer and its status.
    pub async fn post(&self, path: &str, body: &Value) -> Result<(u16, Value), ClientError> {
        tokio::time::timeout(REQUEST_TIMEOUT, self.exchange(path, body))
            .await
            .unwrap_or_else(|_| {
                Err(self.connect_error(format!("no answer within {REQUEST_TIMEOUT:?}")))
            })
    }

    fn connect_error(&self, message: impl Into<String>) -> ClientError {
        ClientError::Connect {
            url: self.url.to_string(),
            message: message.into(),
        }
    }

    async fn exchange(&self, path: &str, body: &Value) -> Result<(u16, Value), ClientError> {
        let host = self.url.host_str().unwrap_or_default().to_string();
        let port = self.url.port_or_known_default().unwrap_or(80);
        let bare = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let tcp = tokio::net::TcpStream::connect((bare.as_str(), port))
            .await
            .map_err(|e| self.connect_error(e.to_string()))?;
        let full_path = format!("{}{path}", self.url.path().trim_end_matches('/'));
        let mut req = hyper::Request::post(full_path)
            .header(hyper::header::HOST, format!("{host}:{port}"))
            .header(hyper::header::CONTENT_TYPE, "application/json");
        if let Some(a) = &self.auth {
            req = req.header(hyper::header::AUTHORIZATION, a);
        }
        let req = req
            .body(Full::new(Bytes::from(body.to_string())))
            .map_err(|e| ClientError::Usage(e.to_string()))?;
        let resp = match &self.tls {
            None => send(TokioIo::new(tcp), req).await,
            Some(tls) => {
                let name = rustls::pki_types::ServerName::try_from(bare.clone())
                    .map_err(|e| ClientError::Usage(format!("--exporter host: {e}")))?;
                let stream = tls
                    .connect(name, tcp)
                    .await
                    .map_err(|e| self.connect_error(format!("TLS: {e}")))?;
                send(TokioIo::new(stream), req).await
            }
        }
        .map_err(|e| self.connect_error(e))?;
        let status = resp.status().as_u16();
        let bytes = Limited::new(resp.into_body(), MAX_RESPONSE)
            .collect()
            .await
            .map_err(|e| self.connect_error(format!("reading the answer: {e}")))?
            .to_bytes();
        let value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).trim().to_string()));
        Ok((status, value))
    }
}

async fn send<I>(
    io: I,
    req: hyper::Request<Full<Bytes>>,
) -> Result<hyper::Response<hyper::body::Incoming>, String>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    sender.send_request(req).await.map_err(|e| e.to_string())
}

/// The error an answer carries, or the answer itself when it is not ours.
pub fn refusal(status: u16, v: &Value) -> ClientError {
    let message = v["error"]
        .as_str()
        .map(String::from)
        .unwrap_or_else(|| v.to_string());
    ClientError::Refused {
        status,
        message: visible(&message),
    }
}

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => visible(s),
        Value::Null => "-".into(),
        v => v.to_string(),
    }
}

/// One line per client (name @ address) of a preview's connections, the largest first:
/// "90 connections of report-worker @ 127.0.0.3, idle 12-64 s".
pub fn summary(conns: &[Value]) -> Vec<String> {
    let mut groups: Vec<(String, usize, u64, u64)> = Vec::new();
    for c in conns {
        let name = match s(&c["name"]) {
            n if n.is_empty() || n == "-" => "(unnamed)".to_string(),
            n => n,
        };
        let addr = s(&c["addr"]);
        let host = addr.rsplit_once(':').map_or(addr.as_str(), |(h, _)| h);
        let key = format!("{name} @ {host}");
        let idle = c["idle_seconds"].as_u64().unwrap_or(0);
        match groups.iter_mut().find(|g| g.0 == key) {
            Some(g) => {
                g.1 += 1;
                g.2 = g.2.min(idle);
                g.3 = g.3.max(idle);
            }
            None => groups.push((key, 1, idle, idle)),
        }
    }
    groups.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let shown = 5;
    let mut out: Vec<String> = groups
        .iter()
        .take(shown)
        .map(|(k, n, lo, hi)| {
            let idle = if lo == hi {
                format!("idle {lo} s")
            } else {
                format!("idle {lo}-{hi} s")
            };
            format!(
                "{n} connection{} of {k}, {idle}",
                if *n == 1 { "" } else { "s" }
            )
        })
        .collect();
    if groups.len() > shown {
        let rest: usize = groups[shown..].iter().map(|g| g.1).sum();
        out.push(format!(
            "{rest} more of {} other clients",
            groups.len() - shown
        ));
    }
    out
}

/// A preview for a terminal. Everything from Redis goes through [`visible`].
pub fn describe_preview(v: &Value) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "Preview on {} (a fresh CLIENT LIST over the exporter's held connection; nothing changed):",
        s(&v["target"])
    );
    if let Some(f) = v["finding"].as_object() {
        let _ = writeln!(o, "  finding: {}", s(&f["cause"]));
    }
    let mut conns = v["connections"].as_array().cloned().unwrap_or_default();
    // In order: by client, then the longest idle first (the oldest leaked connections).
    let num = |c: &Value, k: &str| c[k].as_u64().unwrap_or(0);
    conns.sort_by(|a, b| {
        (
            s(&a["name"]),
            s(&a["addr"]).rsplit_once(':').map(|(h, _)| h.to_string()),
        )
            .cmp(&(
                s(&b["name"]),
                s(&b["addr"]).rsplit_once(':').map(|(h, _)| h.to_string()),
            ))
            .then(num(b, "idle_seconds").cmp(&num(a, "idle_seconds")))
            .then(num(a, "id").cmp(&num(b, "id")))
    });
    if conns.is_empty() {
        let _ = writeln!(o, "  no connection would be closed");
    } else {
        for line in summary(&conns) {
            let _ = writeln!(o, "  {line}");
        }
        let _ = writeln!(o, "  {} connection(s) would be closed:", conns.len());
        let _ = writeln!(
            o,
            "    {:<10} {:<24} {:>7} {:>7}  {:<12} name",
            "id", "addr", "idle s", "age s", "user"
        );
        for c in &conns {
            let _ = writeln!(
                o,
                "    {:<10} {:<24} {:>7} {:>7}  {:<12} {}",
                s(&c["id"]),
                s(&c["addr"]),
                s(&c["idle_seconds"]),
                s(&c["age_seconds"]),
                s(&c["user"]),
                s(&c["name"])
            );
        }
    }
    if let Some(left) = v["left_out"].as_object().filter(|m| !m.is_empty()) {
        let parts: Vec<String> = left.iter().map(|(k, n)| format!("{n} {k}")).collect();
        let _ = writeln!(o, "  matched but never closed here: {}", parts.join(", "));
    }
    for p in v["set"].as_array().into_iter().flatten() {
        let _ = writeln!(
            o,
            "  CONFIG SET {} {} (now {}), {}",
            s(&p["parameter"]),
            s(&p["value"]),
            s(&p["current"]),
            s(&p["when"])
        );
        if !p["warning"].is_null() {
            let _ = writeln!(o, "    warning: {}", s(&p["warning"]));
        }
    }
    for n in v["notes"].as_array().into_iter().flatten() {
        let _ = writeln!(o, "  note: {}", s(n));
    }
    o
}

/// An execute's result for a terminal.
pub fn describe_execute(v: &Value) -> String {
    let mut o = String::new();
    let closed: Vec<String> = v["closed"]
        .as_array()
        .into_iter()
        .flatten()
        .map(s)
        .collect();
    let _ = writeln!(
        o,
        "Executed on {}: result {}",
        s(&v["target"]),
        s(&v["result"])
    );
    for p in v["set"].as_array().into_iter().flatten() {
        let _ = writeln!(
            o,
            "  CONFIG SET {} {}: {} (was {})",
            s(&p["parameter"]),
            s(&p["value"]),
            if p["applied"] == Value::Bool(true) {
                "done"
            } else {
                "FAILED"
            },
            s(&p["previous"])
        );
    }
    let _ = writeln!(
        o,
        "  closed {} connection(s){}{}",
        closed.len(),
        if closed.is_empty() { "" } else { ": ids " },
        closed.join(" ")
    );
    for k in v["skipped"].as_array().into_iter().flatten() {
        let _ = writeln!(o, "  left alone: id {} ({})", s(&k["id"]), s(&k["reason"]));
    }
    if !v["connected_clients_after"].is_null() {
        let _ = writeln!(
            o,
            "  connected_clients now: {}",
            s(&v["connected_clients_after"])
        );
    }
    if !v["error"].is_null() {
        let _ = writeln!(o, "  error: {}", s(&v["error"]));
    }
    o
}
