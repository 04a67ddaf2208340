//! TLS to Redis: the rustls client configuration for `rediss://` targets (CA file, client
//! certificate, SNI, skip-verify only when asked). The exporter's own endpoint is
//! src/web/tls_server.rs.
//!
//! Every config is built with an explicit ring provider rather than the process default, so
//! that no second rustls provider pulled in by a dependency can make it ambiguous.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use thiserror::Error;

use crate::config::TlsOptions;

#[derive(Debug, Error)]
pub enum TlsError {
    #[error("cannot read {what} {path}: {message}")]
    File {
        what: &'static str,
        path: String,
        message: String,
    },
    #[error("TLS setup: {0}")]
    Rustls(#[from] rustls::Error),
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn certs(what: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let err = |message: String| TlsError::File {
        what,
        path: path.display().to_string(),
        message,
    };
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(|e| err(e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| err(e.to_string()))?;
    if certs.is_empty() {
        return Err(err("no PEM certificate in it".to_string()));
    }
    Ok(certs)
}

fn key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    // The message says what failed, never what the file holds.
    PrivateKeyDer::from_pem_file(path).map_err(|e| TlsError::File {
        what: "private key",
        path: path.display().to_string(),
        message: e.to_string(),
    })
}

/// The client configuration for one `rediss://` target.
pub fn client_config(opts: &TlsOptions) -> Result<rustls::ClientConfig, TlsError> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?;
    let builder = if opts.insecure_skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCert(provider())))
    } else {
        let mut roots = rustls::RootCertStore::empty();
        match &opts.ca_file {
            Some(ca) => {
                for c in certs("CA file", ca)? {
                    roots.add(c)?;
                }
            }
            // The system store, read once per process and shared by every target and every
            // reconnect (it is ~150 certificates: reading and parsing it per connect cost
            // each target its own copy).
            None => return finish(builder.with_root_certificates(system_roots()), opts),
        }
        builder.with_root_certificates(roots)
    };
    finish(builder, opts)
}

/// The client configuration for `opts`, shared by every connection with the same settings as
/// long as its files (CA, client certificate, key) are unchanged: a changed file (a rotated
/// certificate) is read again at the next connect.
///
/// Built per connection, each config carried its own session-resumption cache (rustls reserves
/// room for 256 servers up front) and its own parsed CA bundle: ~68 kB more per `rediss://`
/// target than per plain one (500 targets: 71.8 vs 37.7 MiB RSS). Shared, a reconnect can also
/// resume its TLS session.
pub fn shared_client_config(opts: &TlsOptions) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    type Entry = (
        TlsOptions,
        Vec<Option<FileStamp>>,
        Arc<rustls::ClientConfig>,
    );
    // Bounded by the configuration: one entry per distinct TLS settings (targets, profiles).
    static CACHE: std::sync::Mutex<Vec<Entry>> = std::sync::Mutex::new(Vec::new());
    let stamps: Vec<Option<FileStamp>> = [&opts.ca_file, &opts.cert_file, &opts.key_file]
        .into_iter()
        .map(|f| f.as_deref().and_then(FileStamp::of))
        .collect();
    {
        let cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, _, c)) = cache.iter().find(|(o, s, _)| o == opts && *s == stamps) {
            return Ok(Arc::clone(c));
        }
    }
    let config = Arc::new(client_config(opts)?);
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    cache.retain(|(o, _, _)| o != opts);
    cache.push((opts.clone(), stamps, Arc::clone(&config)));
    Ok(config)
}

/// What tells a changed file: its modification time and length.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileStamp(std::time::SystemTime, u64);

impl FileStamp {
    fn of(path: &Path) -> Option<FileStamp> {
        let m = std::fs::metadata(path).ok()?;
        Some(FileStamp(m.modified().ok()?, m.len()))
    }
}

/// The client certificate, when the target has one.
fn finish(
    builder: rustls::ConfigBuilder<rustls::ClientConfig, rustls::client::WantsClientCert>,
    opts: &TlsOptions,
) -> Result<rustls::ClientConfig, TlsError> {
    match (&opts.cert_file, &opts.key_file) {
        (Some(cert), Some(k)) => {
            Ok(builder.with_client_auth_cert(certs("client certificate", cert)?, key(k)?)?)
        }
        _ => Ok(builder.with_no_client_auth()),
    }
}

/// The operating system's trust store, loaded at first use.
fn system_roots() -> Arc<rustls::RootCertStore> {
    static ROOTS: std::sync::OnceLock<Arc<rustls::RootCertStore>> = std::sync::OnceLock::new();
    Arc::clone(ROOTS.get_or_init(|| {
        let mut roots = rustls::RootCertStore::empty();
        for c in rustls_native_certs::load_native_certs().certs {
            // A broken system certificate must not stop the others from loading.
            let _ = roots.add(c);
        }
        Arc::new(roots)
    }))
}

/// `tls_insecure_skip_verify`: the handshake still happens (so traffic is encrypted), but any
/// certificate is accepted. Signatures are still checked, so the peer must hold the key of the
/// certificate it shows.
#[derive(Debug)]
struct AcceptAnyCert(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
