//! Passwords: [`Secret`] (never printed; a file or variable is read again at each connect),
//! the password sources of one configuration layer, and the start-up check that every file and
//! variable in force is readable.

use std::fmt;
use std::path::PathBuf;

use thiserror::Error;

use crate::config::raw::RawConfig;
use crate::config::{invalid, ConfigError, Overrides};

/// A password, from the config, a file, or an environment variable. Never printed.
#[derive(Clone, PartialEq, Eq, Default)]
pub enum Secret {
    #[default]
    None,
    Value(String),
    File(PathBuf),
    Env(String),
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Secret::None => f.write_str("None"),
            Secret::Value(_) => f.write_str("Value(<redacted>)"),
            Secret::File(p) => write!(f, "File({})", p.display()),
            Secret::Env(v) => write!(f, "Env({v})"),
        }
    }
}

#[derive(Debug, Error)]
pub enum SecretError {
    #[error("cannot read password file {path}: {source}")]
    File {
        path: String,
        source: std::io::Error,
    },
    #[error("environment variable {0} holding the password is not set")]
    Env(String),
}

impl Secret {
    /// Reads the secret now; a file or variable is read on every call, so a rotated password
    /// is picked up at the next (re)connect.
    pub fn resolve(&self) -> Result<Option<String>, SecretError> {
        match self {
            Secret::None => Ok(None),
            Secret::Value(v) => Ok(Some(v.clone())),
            Secret::File(p) => std::fs::read_to_string(p)
                .map(|s| Some(s.trim_end_matches(['\r', '\n']).to_string()))
                .map_err(|source| SecretError::File {
                    path: p.display().to_string(),
                    source,
                }),
            Secret::Env(name) => std::env::var(name)
                .map(Some)
                .map_err(|_| SecretError::Env(name.clone())),
        }
    }

    /// [`Secret::resolve`] for async code: a password file is read on a blocking thread, so
    /// that a hung mount stalls one connect, not the runtime's workers.
    pub async fn resolve_async(&self) -> Result<Option<String>, SecretError> {
        match self {
            Secret::File(p) => {
                let secret = self.clone();
                let path = p.display().to_string();
                tokio::task::spawn_blocking(move || secret.resolve())
                    .await
                    .unwrap_or_else(|e| {
                        Err(SecretError::File {
                            path,
                            source: std::io::Error::other(e.to_string()),
                        })
                    })
            }
            _ => self.resolve(),
        }
    }
}

/// The `password`, `password_file` and `password_env` of one configuration layer (the top
/// level, a target, an auth profile).
pub(crate) struct PasswordSources<'a> {
    pub(crate) password: &'a Option<String>,
    pub(crate) file: &'a Option<PathBuf>,
    pub(crate) env: &'a Option<String>,
}

impl PasswordSources<'_> {
    /// How many of the three are set: more than one in a layer is ambiguous.
    pub(crate) fn count(&self) -> usize {
        usize::from(self.password.is_some())
            + usize::from(self.file.is_some())
            + usize::from(self.env.is_some())
    }

    /// The layer's secret, if it names one.
    pub(crate) fn secret(&self) -> Option<Secret> {
        if let Some(v) = self.password {
            Some(Secret::Value(v.clone()))
        } else if let Some(f) = self.file {
            Some(Secret::File(f.clone()))
        } else {
            self.env.as_ref().map(|v| Secret::Env(v.clone()))
        }
    }
}

/// Every password file and password variable the configuration names (and that is in force)
/// must be readable now. Errors name the key and the file or variable, never the content.
pub(super) fn check_secrets(
    raw: &RawConfig,
    o: &Overrides,
    origin: &str,
    env: &[(String, String)],
) -> Result<(), ConfigError> {
    // (origin, key, secret)
    let mut sources: Vec<(&str, String, Secret)> = Vec::new();
    if let Some(f) = &o.password_file {
        sources.push((
            "command line",
            "--password-file".into(),
            Secret::File(f.clone()),
        ));
    }
    let mut layer = |origin, prefix: &str, file: &Option<PathBuf>, var: &Option<String>| {
        if let Some(f) = file {
            sources.push((
                origin,
                format!("{prefix}password_file"),
                Secret::File(f.clone()),
            ));
        }
        if let Some(v) = var {
            sources.push((
                origin,
                format!("{prefix}password_env"),
                Secret::Env(v.clone()),
            ));
        }
    };
    // The flag replaces the top-level password for every target that sets none.
    if o.password_file.is_none() {
        layer(origin, "", &raw.password_file, &raw.password_env);
    }
    // `--target` replaces the configuration's targets: theirs are not in force.
    if o.targets.is_empty() {
        for (i, t) in raw.targets.iter().flatten().enumerate() {
            layer(
                origin,
                &format!("targets[{i}]."),
                &t.password_file,
                &t.password_env,
            );
        }
    }
    for (name, p) in raw.auth_profiles.iter().flatten() {
        layer(
            origin,
            &format!("auth_profiles.{name}."),
            &p.password_file,
            &p.password_env,
        );
    }
    for (origin, key, secret) in sources {
        match &secret {
            Secret::Env(var) if !env.iter().any(|(k, _)| k == var) => {
                return Err(invalid(
                    origin,
                    key,
                    format!("environment variable {var} holding the password is not set"),
                ));
            }
            // Read it as the poller will (the value is dropped at once, never shown).
            Secret::File(_) => {
                if let Err(e) = secret.resolve() {
                    return Err(invalid(origin, key, e.to_string()));
                }
            }
            _ => {}
        }
    }
    Ok(())
}
