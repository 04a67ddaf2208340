//! A minimal client of Prometheus' HTTP API (`GET /api/v1/query?query=...`): one HTTP/1.1
//! connection per query (hyper's client connection, over tokio and, for `https://`, the rustls
//! configuration the `rediss://` targets use), under one timeout for connect, request and body,
//! with the body bounded. hyper is a dependency already (the web server); a pooled client
//! (reqwest, hyper-util's legacy client) would be another for three queries a minute.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;

use crate::config::identity::KubernetesSource;
use crate::config::TlsOptions;

/// The largest answer read (a cluster of ~50,000 pods' `kube_pod_info` is ~25 MiB).
pub const MAX_BODY_BYTES: usize = 64 << 20;

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("cannot connect: {0}")]
    Connect(std::io::Error),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("HTTP: {0}")]
    Http(String),
    #[error("HTTP status {0}")]
    Status(u16),
    #[error("cannot read the credential file: {0}")]
    Secret(String),
}

/// The body of a 200 answer to the instant query `query`.
pub async fn query(src: &KubernetesSource, query: &str) -> Result<Bytes, QueryError> {
    tokio::time::timeout(src.timeout, query_inner(src, query))
        .await
        .map_err(|_| QueryError::Timeout(src.timeout))?
}

async fn query_inner(src: &KubernetesSource, query: &str) -> Result<Bytes, QueryError> {
    let url = &src.prometheus_url;
    let host = url.host_str().unwrap_or("");
    let port = url.port_or_known_default().unwrap_or(80);
    let mut api = url.clone();
    let base = api.path().trim_end_matches('/').to_string();
    api.set_path(&format!("{base}/api/v1/query"));
    api.query_pairs_mut().clear().append_pair("query", query);
    let path = match api.query() {
        Some(q) => format!("{}?{q}", api.path()),
        None => api.path().to_string(),
    };
    let mut req = hyper::Request::get(path)
        .header(hyper::header::HOST, host_header(url))
        .header(hyper::header::ACCEPT, "application/json");
    if let Some(token) = &src.bearer_token {
        let t = secret(token).await?;
        req = req.header(hyper::header::AUTHORIZATION, format!("Bearer {}", t.trim()));
    }
    if let Some((user, password)) = &src.basic_auth {
        use base64::Engine;
        let p = secret(password).await?;
        let cred = base64::engine::general_purpose::STANDARD
            .encode(format!("{user}:{}", p.trim_end_matches(['\r', '\n'])));
        req = req.header(hyper::header::AUTHORIZATION, format!("Basic {cred}"));
    }
    let req = req
        .body(Empty::<Bytes>::new())
        .map_err(|e| QueryError::Http(e.to_string()))?;
    let tcp = tokio::net::TcpStream::connect((host.trim_matches(['[', ']']), port))
        .await
        .map_err(QueryError::Connect)?;
    let resp = if url.scheme() == "https" {
        let opts = TlsOptions {
            ca_file: src.tls_ca_file.clone(),
            cert_file: None,
            key_file: None,
            insecure_skip_verify: false,
            server_name: None,
        };
        let cfg = crate::redis::tls::shared_client_config(&opts)
            .map_err(|e| QueryError::Tls(e.to_string()))?;
        let name =
            rustls::pki_types::ServerName::try_from(host.trim_matches(['[', ']']).to_string())
                .map_err(|e| QueryError::Tls(e.to_string()))?;
        let tls = tokio_rustls::TlsConnector::from(cfg)
            .connect(name, tcp)
            .await
            .map_err(|e| QueryError::Tls(e.to_string()))?;
        send(TokioIo::new(tls), req).await?
    } else {
        send(TokioIo::new(tcp), req).await?
    };
    Ok(resp)
}

async fn send<IO>(io: IO, req: hyper::Request<Empty<Bytes>>) -> Result<Bytes, QueryError>
where
    IO: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| QueryError::Http(e.to_string()))?;
    let driver = tokio::spawn(conn);
    let result = async {
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| QueryError::Http(e.to_string()))?;
        if resp.status() != hyper::StatusCode::OK {
            return Err(QueryError::Status(resp.status().as_u16()));
        }
        Limited::new(resp.into_body(), MAX_BODY_BYTES)
            .collect()
            .await
            .map(|b| b.to_bytes())
            .map_err(|e| QueryError::Http(e.to_string()))
    }
    .await;
    driver.abort();
    result
}

fn host_header(url: &url::Url) -> String {
    match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_string(),
        _ => String::new(),
    }
}

/// A credential file's text (re-read every refresh: a rotated token is picked up). The error
/// names the file, never its content.
async fn secret(s: &crate::config::Secret) -> Result<String, QueryError> {
    match s.resolve_async().await {
        Ok(Some(v)) => Ok(v),
        Ok(None) => Err(QueryError::Secret("empty".into())),
        Err(e) => Err(QueryError::Secret(e.to_string())),
    }
}
