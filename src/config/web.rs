//! The web configuration file (exporter-toolkit's `web.yml`): TLS of the exporter's own
//! endpoint and basic-auth users.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::config::layers::deserialize;
use crate::config::{invalid, ConfigError};

/// Protection of the exporter's own endpoint, in the style of Prometheus' web config file
/// (`tls_server_config` and `basic_auth_users` with bcrypt hashes).
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebConfig {
    pub tls_server_config: Option<WebTls>,
    #[serde(default)]
    pub basic_auth_users: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebTls {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

/// Reads and checks the web config file: certificate files readable, every user's hash a
/// bcrypt hash. Errors name the file and the key, never a hash.
pub fn load_web_config(path: &Path) -> Result<WebConfig, ConfigError> {
    let origin = path.display().to_string();
    if !path.exists() {
        return Err(ConfigError::Load {
            origin,
            message: "web config file not found".to_string(),
        });
    }
    let web: WebConfig = deserialize(
        config::Config::builder()
            .add_source(config::File::from(path).format(config::FileFormat::Yaml)),
        &origin,
    )?;
    if let Some(tls) = &web.tls_server_config {
        for (key, file) in [
            ("tls_server_config.cert_file", &tls.cert_file),
            ("tls_server_config.key_file", &tls.key_file),
        ] {
            if std::fs::metadata(file).is_err() {
                return Err(invalid(
                    &origin,
                    key,
                    format!("cannot read {}", file.display()),
                ));
            }
        }
    }
    for (user, hash) in &web.basic_auth_users {
        if hash.parse::<bcrypt::HashParts>().is_err() {
            return Err(invalid(
                &origin,
                format!("basic_auth_users.{user}"),
                "is not a bcrypt hash (htpasswd -nBC 10 USER)",
            ));
        }
    }
    Ok(web)
}
