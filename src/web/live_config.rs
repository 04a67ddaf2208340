//! The web configuration in force, re-read when it changes: each new connection looks at the
//! web config file and the certificate, key and client CA files it names (modification time
//! and length), and a change builds a new TLS acceptor, basic-auth users and headers for that
//! connection and the next ones. So a rotated certificate (cert-manager, a renewed Secret) is
//! served without a restart, as exporter-toolkit's exporters do. A file that does not load is
//! logged (once per distinct error) and the configuration in force stays.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use axum::http::{HeaderName, HeaderValue};

use crate::config::{load_web_config, WebConfig};
use crate::web::auth::BasicAuth;
use crate::web::tls_server::{server_config, ServerTlsError};

/// What the endpoint serves with, built from one reading of the web configuration.
pub struct Served {
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    /// Client certificates are verified against a CA: their names may identify a relief user.
    pub verifies_client: bool,
    pub auth: Arc<BasicAuth>,
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl Served {
    fn build(web: &WebConfig) -> Result<Self, ServerTlsError> {
        let tls = web
            .tls_server_config
            .as_ref()
            .map(|t| server_config(t).map(|c| tokio_rustls::TlsAcceptor::from(Arc::new(c))))
            .transpose()?;
        let headers = web
            .http_server_config
            .headers
            .iter()
            .filter_map(|(name, value)| {
                // Checked when the file was read (src/config/web.rs).
                Some((
                    HeaderName::from_static(header_name(name)?),
                    HeaderValue::from_str(value).ok()?,
                ))
            })
            .collect();
        Ok(Self {
            tls,
            verifies_client: web
                .tls_server_config
                .as_ref()
                .is_some_and(|t| t.client_auth.verifies()),
            auth: Arc::new(BasicAuth::new(web.basic_auth_users.clone())),
            headers,
        })
    }
}

/// `HeaderName::from_static` needs lower case.
fn header_name(name: &str) -> Option<&'static str> {
    Some(match name {
        "Content-Security-Policy" => "content-security-policy",
        "X-Frame-Options" => "x-frame-options",
        "X-Content-Type-Options" => "x-content-type-options",
        "X-XSS-Protection" => "x-xss-protection",
        "Strict-Transport-Security" => "strict-transport-security",
        _ => return None,
    })
}

/// A file's modification time and length; `None`: unreadable.
type Stamp = Option<(SystemTime, u64)>;

fn stamp(path: &Path) -> Stamp {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

struct State {
    stamps: Vec<(PathBuf, Stamp)>,
    served: Arc<Served>,
    tls_on: bool,
    last_error: Option<String>,
}

pub struct LiveWebConfig {
    file: Option<PathBuf>,
    state: Mutex<State>,
}

fn stamps(web: &WebConfig) -> Vec<(PathBuf, Stamp)> {
    web.file
        .iter()
        .map(PathBuf::as_path)
        .chain(web.tls_server_config.iter().flat_map(|t| t.files_read()))
        .map(|p| (p.to_path_buf(), stamp(p)))
        .collect()
}

impl LiveWebConfig {
    /// The configuration loaded at start (a TLS error here stops the start).
    pub fn new(web: &WebConfig) -> Result<Self, ServerTlsError> {
        Ok(Self {
            file: web.file.clone(),
            state: Mutex::new(State {
                stamps: stamps(web),
                served: Arc::new(Served::build(web)?),
                tls_on: web.tls_server_config.is_some(),
                last_error: None,
            }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The configuration in force, as last read.
    pub fn current(&self) -> Arc<Served> {
        Arc::clone(&self.lock().served)
    }

    /// The configuration for a new connection: read again first if a file changed.
    pub fn refresh(&self) -> Arc<Served> {
        let Some(file) = &self.file else {
            return self.current();
        };
        let mut state = self.lock();
        if state.stamps.iter().all(|(p, s)| stamp(p) == *s) {
            return Arc::clone(&state.served);
        }
        let result = load_web_config(file)
            .map_err(|e| e.to_string())
            .and_then(|web| {
                if web.tls_server_config.is_some() != state.tls_on {
                    return Err(format!(
                        "{}: turning TLS on or off needs a restart",
                        file.display()
                    ));
                }
                let served = Served::build(&web).map_err(|e| e.to_string())?;
                Ok((web, served))
            });
        match result {
            Ok((web, served)) => {
                state.stamps = stamps(&web);
                state.served = Arc::new(served);
                state.last_error = None;
                tracing::info!(file = %file.display(), "web configuration re-read: new connections use it");
            }
            Err(e) => {
                // Look again only when a file changes again (a half-written rotation is
                // retried when its second file lands).
                let mut seen = std::mem::take(&mut state.stamps);
                for (p, s) in &mut seen {
                    *s = stamp(p);
                }
                state.stamps = seen;
                if state.last_error.as_deref() != Some(e.as_str()) {
                    tracing::warn!(error = %e, "the changed web configuration does not load; keeping the one in force");
                    state.last_error = Some(e);
                }
            }
        }
        Arc::clone(&state.served)
    }
}
