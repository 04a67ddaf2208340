//! Who a request is: basic auth (bcrypt, with a bounded cache of verified credentials) and the
//! verified client certificate's names. src/web/http.rs checks them against the web
//! configuration in force (src/web/live_config.rs) and hands the result to handlers as the
//! request extension [`AuthUser`], which relief reads.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use axum::http::HeaderValue;
use base64::Engine;

/// The names of the client certificate a connection presented, once verified against the
/// client CA (a request extension; absent when no certificate was verified).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCertNames(pub Arc<Vec<String>>);

/// A relief user that names a client certificate: `cert:` and one of its names (a SAN, or
/// `CN=` and its common name).
pub use crate::config::relief::CERT_USER as CERT_USER_PREFIX;

/// Basic-auth users (bcrypt hashes) and a cache of header values already verified: bcrypt
/// costs tens of milliseconds on purpose, too much to pay on every scrape.
#[derive(Default)]
pub struct BasicAuth {
    users: BTreeMap<String, String>,
    /// Header value -> the user it authenticated.
    verified: Mutex<HashMap<String, String>>,
}

pub use crate::relief::AuthUser;

/// Entries kept in the verified cache; past it the cache restarts, so a flood of distinct
/// credentials cannot grow memory.
const VERIFIED_CACHE: usize = 64;

impl BasicAuth {
    pub fn new(users: BTreeMap<String, String>) -> Self {
        Self {
            users,
            verified: Mutex::new(HashMap::new()),
        }
    }

    /// No users: basic auth is off.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// The user these credentials authenticate, if they do.
    pub async fn allows(self: Arc<Self>, header: Option<&HeaderValue>) -> Option<String> {
        let value = header.and_then(|h| h.to_str().ok())?;
        if let Some(user) = self
            .verified
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(value)
        {
            return Some(user.clone());
        }
        let encoded = value.strip_prefix("Basic ")?;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .ok()?;
        let decoded = String::from_utf8(decoded).ok()?;
        let (user, password) = decoded.split_once(':')?;
        let hash = self.users.get(user).cloned()?;
        let password = password.to_string();
        let ok =
            tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash).unwrap_or(false))
                .await
                .unwrap_or(false);
        if !ok {
            return None;
        }
        let mut cache = self.verified.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= VERIFIED_CACHE {
            cache.clear();
        }
        cache.insert(value.to_string(), user.to_string());
        Some(user.to_string())
    }
}
