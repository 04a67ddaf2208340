//! The web configuration file, exporter-toolkit's `web.yml` (its docs/web-configuration.md):
//! `tls_server_config` (certificate, client certificates, versions, cipher suites, curves),
//! `http_server_config` (`http2`, security headers) and `basic_auth_users` (bcrypt). Read and
//! checked here into typed values; src/web/tls_server.rs builds the rustls configuration from
//! them and src/web/live_config.rs reads the file again when it (or a certificate) changes.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::config::layers::deserialize;
use crate::config::{invalid, ConfigError};

/// Protection of the exporter's own endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WebConfig {
    /// The file it was read from (`None`: built in code, never re-read).
    pub file: Option<PathBuf>,
    pub tls_server_config: Option<WebTls>,
    pub http_server_config: HttpServerConfig,
    /// User -> bcrypt hash.
    pub basic_auth_users: BTreeMap<String, String>,
}

/// A PEM document, in a file (read at every (re)load) or inline in the web config file.
#[derive(Clone, PartialEq, Eq)]
pub enum Pem {
    File(PathBuf),
    Inline(String),
}

impl fmt::Debug for Pem {
    // An inline key is a secret; an inline certificate is just long.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pem::File(p) => write!(f, "File({})", p.display()),
            Pem::Inline(_) => f.write_str("Inline(<redacted>)"),
        }
    }
}

/// `client_auth_type`, Go's `tls.ClientAuthType` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientAuth {
    #[default]
    NoClientCert,
    /// Asks for a certificate, accepts none and any.
    RequestClientCert,
    /// Needs a certificate, any (not verified).
    RequireAnyClientCert,
    /// A certificate, if sent, must verify against the client CA.
    VerifyClientCertIfGiven,
    /// A certificate that verifies against the client CA is needed: the one secure choice.
    RequireAndVerifyClientCert,
}

impl ClientAuth {
    const NAMES: &'static [(&'static str, ClientAuth)] = &[
        ("NoClientCert", ClientAuth::NoClientCert),
        ("RequestClientCert", ClientAuth::RequestClientCert),
        ("RequireAnyClientCert", ClientAuth::RequireAnyClientCert),
        // exporter-toolkit's older spelling of RequireAnyClientCert.
        ("RequireClientCert", ClientAuth::RequireAnyClientCert),
        (
            "VerifyClientCertIfGiven",
            ClientAuth::VerifyClientCertIfGiven,
        ),
        (
            "RequireAndVerifyClientCert",
            ClientAuth::RequireAndVerifyClientCert,
        ),
    ];

    /// Whether a client certificate is checked against the client CA.
    pub fn verifies(self) -> bool {
        matches!(
            self,
            ClientAuth::VerifyClientCertIfGiven | ClientAuth::RequireAndVerifyClientCert
        )
    }

    /// Whether a client without a certificate is refused.
    pub fn requires(self) -> bool {
        matches!(
            self,
            ClientAuth::RequireAnyClientCert | ClientAuth::RequireAndVerifyClientCert
        )
    }
}

/// `min_version` / `max_version`. rustls implements TLS 1.2 and 1.3 only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    Tls12,
    Tls13,
}

/// The TLS 1.2 cipher suites rustls implements, by Go's names (`cipher_suites`). TLS 1.3 suites
/// are not configurable (in Go neither): all three are always offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CipherSuite {
    EcdheEcdsaAes128GcmSha256,
    EcdheEcdsaAes256GcmSha384,
    EcdheEcdsaChacha20Poly1305Sha256,
    EcdheRsaAes128GcmSha256,
    EcdheRsaAes256GcmSha384,
    EcdheRsaChacha20Poly1305Sha256,
}

impl CipherSuite {
    const NAMES: &'static [(&'static str, CipherSuite)] = &[
        (
            "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
            CipherSuite::EcdheEcdsaAes128GcmSha256,
        ),
        (
            "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
            CipherSuite::EcdheEcdsaAes256GcmSha384,
        ),
        (
            "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
            CipherSuite::EcdheEcdsaChacha20Poly1305Sha256,
        ),
        // Go's older constant name for the same suite.
        (
            "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305",
            CipherSuite::EcdheEcdsaChacha20Poly1305Sha256,
        ),
        (
            "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
            CipherSuite::EcdheRsaAes128GcmSha256,
        ),
        (
            "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
            CipherSuite::EcdheRsaAes256GcmSha384,
        ),
        (
            "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
            CipherSuite::EcdheRsaChacha20Poly1305Sha256,
        ),
        (
            "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305",
            CipherSuite::EcdheRsaChacha20Poly1305Sha256,
        ),
    ];
}

/// Go's TLS 1.3 suite names: accepted in `cipher_suites` and, as in Go, without effect.
const TLS13_SUITES: &[&str] = &[
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
];

/// Go's other suite names (`tls.CipherSuites()` and `tls.InsecureCipherSuites()`): CBC, RSA key
/// exchange, 3DES and RC4, which rustls does not implement.
const GO_ONLY_SUITES: &[&str] = &[
    "TLS_RSA_WITH_AES_128_CBC_SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA",
    "TLS_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_RSA_WITH_AES_128_CBC_SHA256",
    "TLS_RSA_WITH_RC4_128_SHA",
    "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
    "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
    "TLS_ECDHE_RSA_WITH_RC4_128_SHA",
    "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA",
];

/// `curve_preferences`, Go's `tls.CurveID` names that rustls (ring) implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Curve {
    X25519,
    P256,
    P384,
}

impl Curve {
    const NAMES: &'static [(&'static str, Curve)] = &[
        ("X25519", Curve::X25519),
        ("CurveP256", Curve::P256),
        ("CurveP384", Curve::P384),
    ];
}

/// Go's curve names rustls's ring provider does not implement.
const GO_ONLY_CURVES: &[&str] = &["CurveP521", "X25519MLKEM768"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebTls {
    pub cert: Pem,
    pub key: Pem,
    pub client_auth: ClientAuth,
    /// The CA client certificates must chain to (needed by the verifying `client_auth` types).
    pub client_ca: Option<Pem>,
    /// A client certificate must carry one of these as a SAN (DNS, IP, e-mail or URI), exactly.
    pub client_allowed_sans: Vec<String>,
    pub min_version: TlsVersion,
    pub max_version: TlsVersion,
    /// TLS 1.2 suites in the server's order of preference; empty: rustls' defaults.
    pub cipher_suites: Vec<CipherSuite>,
    pub prefer_server_cipher_suites: bool,
    /// Key exchange groups in order of preference; empty: rustls' defaults.
    pub curve_preferences: Vec<Curve>,
}

impl WebTls {
    /// A certificate and key from files, every other setting at exporter-toolkit's default.
    pub fn files(cert_file: impl Into<PathBuf>, key_file: impl Into<PathBuf>) -> Self {
        Self {
            cert: Pem::File(cert_file.into()),
            key: Pem::File(key_file.into()),
            client_auth: ClientAuth::NoClientCert,
            client_ca: None,
            client_allowed_sans: Vec::new(),
            min_version: TlsVersion::Tls12,
            max_version: TlsVersion::Tls13,
            cipher_suites: Vec::new(),
            prefer_server_cipher_suites: true,
            curve_preferences: Vec::new(),
        }
    }

    /// The files this configuration reads (certificate, key, client CA).
    pub fn files_read(&self) -> impl Iterator<Item = &Path> {
        [Some(&self.cert), Some(&self.key), self.client_ca.as_ref()]
            .into_iter()
            .flatten()
            .filter_map(|p| match p {
                Pem::File(f) => Some(f.as_path()),
                Pem::Inline(_) => None,
            })
    }
}

/// `http_server_config`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HttpServerConfig {
    /// `http2`: accepted for compatibility; HTTP/1.1 is served either way (ALPN offers
    /// `http/1.1` only, so an HTTP/2 client falls back).
    pub http2: Option<bool>,
    /// Header name -> value, added to every response.
    pub headers: Vec<(&'static str, String)>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWeb {
    tls_server_config: Option<RawTls>,
    http_server_config: Option<RawHttp>,
    #[serde(default)]
    basic_auth_users: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert_file: Option<PathBuf>,
    key_file: Option<PathBuf>,
    cert: Option<String>,
    key: Option<String>,
    client_auth_type: Option<String>,
    client_ca_file: Option<PathBuf>,
    client_ca: Option<String>,
    client_allowed_sans: Option<Vec<String>>,
    min_version: Option<String>,
    max_version: Option<String>,
    cipher_suites: Option<Vec<String>>,
    prefer_server_cipher_suites: Option<bool>,
    curve_preferences: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    http2: Option<bool>,
    headers: Option<BTreeMap<String, String>>,
}

/// The headers `http_server_config.headers` may set (exporter-toolkit's list), and the values
/// each accepts (`None`: any).
const HEADERS: &[(&str, Option<&[&str]>)] = &[
    ("Content-Security-Policy", None),
    ("X-Frame-Options", Some(&["deny", "sameorigin"])),
    ("X-Content-Type-Options", Some(&["nosniff"])),
    ("X-XSS-Protection", None),
    ("Strict-Transport-Security", None),
];

/// Reads and checks the web config file: every key known, certificate files readable, names
/// of versions, suites and curves ones rustls implements, every user's hash a bcrypt hash.
/// Errors name the file and the key, never a hash or a key. Relative paths are relative to
/// the file's directory, as exporter-toolkit reads them.
pub fn load_web_config(path: &Path) -> Result<WebConfig, ConfigError> {
    let origin = path.display().to_string();
    if !path.exists() {
        return Err(ConfigError::Load {
            origin,
            message: "web config file not found".to_string(),
        });
    }
    let raw: RawWeb = deserialize(
        config::Config::builder()
            .add_source(config::File::from(path).format(config::FileFormat::Yaml)),
        &origin,
    )?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let tls_server_config = raw
        .tls_server_config
        .map(|t| resolve_tls(t, dir, &origin))
        .transpose()?;
    let http_server_config = resolve_http(raw.http_server_config.unwrap_or_default(), &origin)?;
    for (user, hash) in &raw.basic_auth_users {
        if hash.parse::<bcrypt::HashParts>().is_err() {
            return Err(invalid(
                &origin,
                format!("basic_auth_users.{user}"),
                "is not a bcrypt hash (htpasswd -nBC 10 USER)",
            ));
        }
    }
    Ok(WebConfig {
        file: Some(path.to_path_buf()),
        tls_server_config,
        http_server_config,
        basic_auth_users: raw.basic_auth_users,
    })
}

/// One of `file`/`inline` (`key` and `key_file`, say), the file relative to `dir`.
fn pem(
    origin: &str,
    (file_key, file): (&str, Option<PathBuf>),
    (inline_key, inline): (&str, Option<String>),
    dir: &Path,
) -> Result<Option<Pem>, ConfigError> {
    let key = |k: &str| format!("tls_server_config.{k}");
    match (file, inline) {
        (Some(_), Some(_)) => Err(invalid(
            origin,
            key(file_key),
            format!("set {file_key} or {inline_key}, not both"),
        )),
        (Some(f), None) => {
            let f = dir.join(f);
            if std::fs::metadata(&f).is_err() {
                return Err(invalid(
                    origin,
                    key(file_key),
                    format!("cannot read {}", f.display()),
                ));
            }
            Ok(Some(Pem::File(f)))
        }
        (None, Some(text)) => Ok(Some(Pem::Inline(text))),
        (None, None) => Ok(None),
    }
}

/// What a PEM document must hold.
#[derive(Clone, Copy)]
enum PemKind {
    Certificates,
    PrivateKey,
}

/// The document reads as PEM of its kind (the TLS library checks the rest when it builds the
/// configuration), so that `--check-config` finds a wrong file. Never quotes the content.
fn check_pem(
    origin: &str,
    (file_key, inline_key): (&str, &str),
    pem: &Pem,
    kind: PemKind,
) -> Result<(), ConfigError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let key = match pem {
        Pem::File(_) => file_key,
        Pem::Inline(_) => inline_key,
    };
    let bytes = match pem {
        Pem::Inline(text) => text.as_bytes().to_vec(),
        Pem::File(path) => std::fs::read(path).map_err(|e| {
            invalid(
                origin,
                format!("tls_server_config.{key}"),
                format!("cannot read {}: {e}", path.display()),
            )
        })?,
    };
    let ok = match kind {
        PemKind::Certificates => CertificateDer::pem_slice_iter(&bytes)
            .collect::<Result<Vec<_>, _>>()
            .is_ok_and(|c| !c.is_empty()),
        PemKind::PrivateKey => PrivateKeyDer::from_pem_slice(&bytes).is_ok(),
    };
    if ok {
        return Ok(());
    }
    let what = match kind {
        PemKind::Certificates => "no PEM certificate (-----BEGIN CERTIFICATE-----) in it",
        PemKind::PrivateKey => "no PEM private key (-----BEGIN ... PRIVATE KEY-----) in it",
    };
    Err(invalid(origin, format!("tls_server_config.{key}"), what))
}

/// Looks `name` up in `names`; else an error naming the key that lists the choices.
fn named<T: Copy>(
    origin: &str,
    key: &str,
    name: &str,
    names: &[(&str, T)],
    unsupported: &[&str],
) -> Result<T, ConfigError> {
    if let Some((_, v)) = names.iter().find(|(n, _)| *n == name) {
        return Ok(*v);
    }
    let choices: Vec<&str> = names.iter().map(|(n, _)| *n).collect();
    let why = if unsupported.contains(&name) {
        "is not implemented by rustls, the TLS library of this exporter"
    } else {
        "is not a known name"
    };
    Err(invalid(
        origin,
        key,
        format!("`{name}` {why}; supported: {}", choices.join(", ")),
    ))
}

fn version(origin: &str, key: &str, v: Option<&str>, max: bool) -> Result<TlsVersion, ConfigError> {
    match v {
        None if max => Ok(TlsVersion::Tls13),
        None | Some("TLS12") => Ok(TlsVersion::Tls12),
        Some("TLS13") => Ok(TlsVersion::Tls13),
        // rustls has no TLS 1.0/1.1: as a floor, 1.2 is what is offered (stricter, still safe);
        // as a ceiling, nothing could be served.
        Some("TLS10" | "TLS11") if !max => Ok(TlsVersion::Tls12),
        Some(other) => Err(invalid(
            origin,
            key,
            format!(
                "`{other}` is not supported: rustls implements TLS12 and TLS13{}",
                if max {
                    ""
                } else {
                    " (TLS10 and TLS11 are read as TLS12)"
                }
            ),
        )),
    }
}

fn resolve_tls(t: RawTls, dir: &Path, origin: &str) -> Result<WebTls, ConfigError> {
    let key = |k: &str| format!("tls_server_config.{k}");
    let cert = pem(origin, ("cert_file", t.cert_file), ("cert", t.cert), dir)?
        .ok_or_else(|| invalid(origin, key("cert_file"), "is missing (or set cert)"))?;
    let private_key = pem(origin, ("key_file", t.key_file), ("key", t.key), dir)?
        .ok_or_else(|| invalid(origin, key("key_file"), "is missing (or set key)"))?;
    let client_ca = pem(
        origin,
        ("client_ca_file", t.client_ca_file),
        ("client_ca", t.client_ca),
        dir,
    )?;
    check_pem(origin, ("cert_file", "cert"), &cert, PemKind::Certificates)?;
    check_pem(
        origin,
        ("key_file", "key"),
        &private_key,
        PemKind::PrivateKey,
    )?;
    if let Some(ca) = &client_ca {
        check_pem(
            origin,
            ("client_ca_file", "client_ca"),
            ca,
            PemKind::Certificates,
        )?;
    }
    let client_auth = match t.client_auth_type.as_deref() {
        None | Some("") => ClientAuth::NoClientCert,
        Some(name) => named(
            origin,
            &key("client_auth_type"),
            name,
            ClientAuth::NAMES,
            &[],
        )?,
    };
    if client_auth.verifies() && client_ca.is_none() {
        return Err(invalid(
            origin,
            key("client_ca_file"),
            "client_auth_type verifies client certificates: name the CA they must chain to",
        ));
    }
    if client_ca.is_some() && client_auth == ClientAuth::NoClientCert {
        return Err(invalid(
            origin,
            key("client_auth_type"),
            "a client CA is configured without a client auth policy (RequireAndVerifyClientCert?)",
        ));
    }
    let client_allowed_sans = t.client_allowed_sans.unwrap_or_default();
    if !client_allowed_sans.is_empty() && !client_auth.requires() {
        return Err(invalid(
            origin,
            key("client_allowed_sans"),
            "needs client_auth_type RequireAndVerifyClientCert (or RequireAnyClientCert): otherwise a client without a certificate has no SAN to check",
        ));
    }
    let min_version = version(origin, &key("min_version"), t.min_version.as_deref(), false)?;
    let max_version = version(origin, &key("max_version"), t.max_version.as_deref(), true)?;
    if min_version > max_version {
        return Err(invalid(origin, key("min_version"), "is above max_version"));
    }
    let mut cipher_suites = Vec::new();
    for (i, name) in t.cipher_suites.iter().flatten().enumerate() {
        if TLS13_SUITES.contains(&name.as_str()) {
            continue;
        }
        let k = key(&format!("cipher_suites[{i}]"));
        cipher_suites.push(named(origin, &k, name, CipherSuite::NAMES, GO_ONLY_SUITES)?);
    }
    let mut curve_preferences = Vec::new();
    for (i, name) in t.curve_preferences.iter().flatten().enumerate() {
        let k = key(&format!("curve_preferences[{i}]"));
        curve_preferences.push(named(origin, &k, name, Curve::NAMES, GO_ONLY_CURVES)?);
    }
    Ok(WebTls {
        cert,
        key: private_key,
        client_auth,
        client_ca,
        client_allowed_sans,
        min_version,
        max_version,
        cipher_suites,
        prefer_server_cipher_suites: t.prefer_server_cipher_suites.unwrap_or(true),
        curve_preferences,
    })
}

fn resolve_http(h: RawHttp, origin: &str) -> Result<HttpServerConfig, ConfigError> {
    let mut headers = Vec::new();
    for (name, value) in h.headers.unwrap_or_default() {
        let k = format!("http_server_config.headers.{name}");
        let Some((canonical, allowed)) =
            HEADERS.iter().find(|(n, _)| n.eq_ignore_ascii_case(&name))
        else {
            let names: Vec<&str> = HEADERS.iter().map(|(n, _)| *n).collect();
            return Err(invalid(
                origin,
                k,
                format!(
                    "is not a header that can be set here; these can: {}",
                    names.join(", ")
                ),
            ));
        };
        // Blank: unset, as exporter-toolkit reads it.
        if value.is_empty() {
            continue;
        }
        if let Some(allowed) = allowed {
            if !allowed.iter().any(|a| a.eq_ignore_ascii_case(&value)) {
                return Err(invalid(
                    origin,
                    k,
                    format!("must be one of: {}", allowed.join(", ")),
                ));
            }
        }
        if axum::http::HeaderValue::from_str(&value).is_err() {
            return Err(invalid(origin, k, "is not a valid header value"));
        }
        headers.push((*canonical, value));
    }
    Ok(HttpServerConfig {
        http2: h.http2,
        headers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(body: &str) -> Result<WebConfig, String> {
        let dir = tempfile::tempdir().expect("tempdir");
        // PEM in form only: the TLS library checks the content when it builds a server.
        let cert = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        let key = "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n";
        std::fs::write(dir.path().join("c.pem"), cert).expect("write");
        std::fs::write(dir.path().join("k.pem"), key).expect("write");
        std::fs::write(dir.path().join("ca.pem"), cert).expect("write");
        std::fs::write(dir.path().join("junk.pem"), "x").expect("write");
        let p = dir.path().join("web.yml");
        std::fs::write(&p, body).expect("write");
        load_web_config(&p).map_err(|e| e.to_string())
    }

    const BASE: &str = "tls_server_config:\n  cert_file: c.pem\n  key_file: k.pem\n";

    #[test]
    fn exporter_toolkits_keys_are_read() {
        let c = load(&format!(
            "{BASE}  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.pem\n  \
             client_allowed_sans: [prometheus.example]\n  min_version: TLS13\n  max_version: TLS13\n  \
             cipher_suites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, TLS_AES_128_GCM_SHA256]\n  \
             prefer_server_cipher_suites: false\n  curve_preferences: [X25519, CurveP256]\n\
             http_server_config:\n  http2: false\n  headers:\n    X-Frame-Options: deny\n    \
             Strict-Transport-Security: max-age=31536000\n    X-XSS-Protection: \"\"\n\
             basic_auth_users:\n  Alice: $2y$10$X0h1gDsPszWURQaxFh.zoubFi6DXncSjhoQNJgRrnGs7EsimhC7zG\n"
        ))
        .expect("valid");
        let t = c.tls_server_config.expect("tls");
        assert_eq!(t.client_auth, ClientAuth::RequireAndVerifyClientCert);
        assert!(matches!(&t.cert, Pem::File(p) if p.ends_with("c.pem") && p.is_absolute()));
        assert_eq!(t.client_allowed_sans, ["prometheus.example"]);
        assert_eq!(
            (t.min_version, t.max_version),
            (TlsVersion::Tls13, TlsVersion::Tls13)
        );
        assert_eq!(t.cipher_suites, [CipherSuite::EcdheRsaAes128GcmSha256]);
        assert!(!t.prefer_server_cipher_suites);
        assert_eq!(t.curve_preferences, [Curve::X25519, Curve::P256]);
        assert_eq!(t.files_read().count(), 3);
        assert_eq!(
            c.http_server_config.headers,
            [
                ("Strict-Transport-Security", "max-age=31536000".to_string()),
                ("X-Frame-Options", "deny".to_string())
            ]
        );
        // User names keep their case.
        assert!(
            c.basic_auth_users.contains_key("Alice"),
            "{:?}",
            c.basic_auth_users
        );
    }

    #[test]
    fn every_client_auth_type_and_the_rules_between_them() {
        for (name, want) in [
            ("NoClientCert", ClientAuth::NoClientCert),
            ("RequestClientCert", ClientAuth::RequestClientCert),
            ("RequireAnyClientCert", ClientAuth::RequireAnyClientCert),
            (
                "VerifyClientCertIfGiven",
                ClientAuth::VerifyClientCertIfGiven,
            ),
            (
                "RequireAndVerifyClientCert",
                ClientAuth::RequireAndVerifyClientCert,
            ),
        ] {
            let ca = if want == ClientAuth::NoClientCert {
                ""
            } else {
                "  client_ca_file: ca.pem\n"
            };
            let c = load(&format!("{BASE}  client_auth_type: {name}\n{ca}")).expect(name);
            assert_eq!(c.tls_server_config.expect("tls").client_auth, want);
        }
        let e = load(&format!(
            "{BASE}  client_auth_type: RequireAndVerifyClientCert\n"
        ))
        .expect_err("no CA");
        assert!(e.contains("key `tls_server_config.client_ca_file`"), "{e}");
        let e = load(&format!("{BASE}  client_ca_file: ca.pem\n")).expect_err("no policy");
        assert!(
            e.contains("key `tls_server_config.client_auth_type`"),
            "{e}"
        );
        let e = load(&format!(
            "{BASE}  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: ca.pem\n  client_allowed_sans: [a]\n"
        ))
        .expect_err("sans without a required certificate");
        assert!(e.contains("client_allowed_sans"), "{e}");
        let e = load(&format!("{BASE}  client_auth_type: Sometimes\n")).expect_err("unknown");
        assert!(e.contains("`Sometimes` is not a known name"), "{e}");
    }

    #[test]
    fn unknown_keys_and_names_rustls_lacks_are_errors_naming_the_key_and_file() {
        let e = load(&format!("{BASE}  min_versoin: TLS12\n")).expect_err("typo");
        assert!(e.contains("web.yml") && e.contains("min_versoin"), "{e}");
        let e = load("rate_limit:\n  interval: 1s\n").expect_err("unsupported");
        assert!(e.contains("rate_limit"), "{e}");
        for (line, key, word) in [
            (
                "  cipher_suites: [TLS_RSA_WITH_AES_128_CBC_SHA]\n",
                "cipher_suites[0]",
                "rustls",
            ),
            (
                "  cipher_suites: [TLS_NOPE]\n",
                "cipher_suites[0]",
                "not a known name",
            ),
            (
                "  curve_preferences: [X25519, CurveP521]\n",
                "curve_preferences[1]",
                "rustls",
            ),
            ("  max_version: TLS11\n", "max_version", "TLS12 and TLS13"),
            (
                "  min_version: TLS13\n  max_version: TLS12\n",
                "min_version",
                "above",
            ),
        ] {
            let e = load(&format!("{BASE}{line}")).expect_err(line);
            assert!(
                e.contains(&format!("key `tls_server_config.{key}`")) && e.contains(word),
                "{line}: {e}"
            );
        }
        let c = load(&format!("{BASE}  min_version: TLS10\n")).expect("a lower floor");
        assert_eq!(
            c.tls_server_config.expect("tls").min_version,
            TlsVersion::Tls12
        );
        let e = load("http_server_config:\n  headers:\n    Server: me\n").expect_err("header");
        assert!(e.contains("key `http_server_config.headers.Server`"), "{e}");
        let e = load("http_server_config:\n  headers:\n    X-Frame-Options: allow\n")
            .expect_err("value");
        assert!(e.contains("deny, sameorigin"), "{e}");
        let e = load("tls_server_config:\n  cert_file: c.pem\n").expect_err("no key");
        assert!(e.contains("key `tls_server_config.key_file`"), "{e}");
        let e = load("tls_server_config:\n  cert_file: c.pem\n  cert: x\n  key_file: k.pem\n")
            .expect_err("both");
        assert!(e.contains("set cert_file or cert, not both"), "{e}");
        let e = load("tls_server_config:\n  cert_file: nope.pem\n  key_file: k.pem\n")
            .expect_err("missing file");
        assert!(e.contains("cannot read") && e.contains("nope.pem"), "{e}");
        let e = load("tls_server_config:\n  cert_file: junk.pem\n  key_file: k.pem\n")
            .expect_err("not PEM");
        assert!(
            e.contains("key `tls_server_config.cert_file`: no PEM certificate"),
            "{e}"
        );
        let e = load("tls_server_config:\n  cert_file: c.pem\n  key_file: c.pem\n")
            .expect_err("a certificate is not a key");
        assert!(
            e.contains("key `tls_server_config.key_file`: no PEM private key"),
            "{e}"
        );
    }

    #[test]
    fn an_inline_key_is_never_printed() {
        let c = load(
            "tls_server_config:\n  cert: |\n    -----BEGIN CERTIFICATE-----\n    MIIB\n    \
             -----END CERTIFICATE-----\n  key: |\n    -----BEGIN PRIVATE KEY-----\n    S0VZU0VDUkVU\n    \
             -----END PRIVATE KEY-----\n",
        )
        .expect("inline");
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("S0VZU0VDUkVU") && shown.contains("Inline(<redacted>)"),
            "{shown}"
        );
    }
}
