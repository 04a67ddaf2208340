//! The rustls server configuration of the exporter's own endpoint, from the web config file's
//! `tls_server_config` (src/config/web.rs): certificate and key (files or inline), TLS versions,
//! TLS 1.2 cipher suites and key exchange groups by Go's names, the five client auth policies,
//! `client_allowed_sans`, and the verified client certificate's names (for relief).

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::ring::{cipher_suite, kx_group};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use thiserror::Error;

use crate::config::{CipherSuite, ClientAuth, Curve, Pem, TlsVersion, WebTls};

#[derive(Debug, Error)]
pub enum ServerTlsError {
    #[error("tls_server_config: cannot read {what} ({source_name}): {message}")]
    Pem {
        what: &'static str,
        /// The file, or `inline`; never the content.
        source_name: String,
        message: String,
    },
    #[error("tls_server_config: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("tls_server_config: client CA: {0}")]
    ClientCa(String),
}

fn provider(t: &WebTls) -> rustls::crypto::CryptoProvider {
    let mut p = rustls::crypto::ring::default_provider();
    if !t.cipher_suites.is_empty() {
        // TLS 1.3's suites stay (not configurable, as in Go); TLS 1.2's are the listed ones,
        // in the listed order.
        let mut suites: Vec<_> = p
            .cipher_suites
            .iter()
            .copied()
            .filter(|s| s.version() == &rustls::version::TLS13)
            .collect();
        suites.extend(t.cipher_suites.iter().map(|c| match c {
            CipherSuite::EcdheEcdsaAes128GcmSha256 => {
                cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
            }
            CipherSuite::EcdheEcdsaAes256GcmSha384 => {
                cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
            }
            CipherSuite::EcdheEcdsaChacha20Poly1305Sha256 => {
                cipher_suite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
            }
            CipherSuite::EcdheRsaAes128GcmSha256 => {
                cipher_suite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
            }
            CipherSuite::EcdheRsaAes256GcmSha384 => {
                cipher_suite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384
            }
            CipherSuite::EcdheRsaChacha20Poly1305Sha256 => {
                cipher_suite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256
            }
        }));
        p.cipher_suites = suites;
    }
    if !t.curve_preferences.is_empty() {
        p.kx_groups = t
            .curve_preferences
            .iter()
            .map(|c| match c {
                Curve::X25519 => kx_group::X25519,
                Curve::P256 => kx_group::SECP256R1,
                Curve::P384 => kx_group::SECP384R1,
            })
            .collect();
    }
    p
}

fn pem_bytes(what: &'static str, pem: &Pem) -> Result<Vec<u8>, ServerTlsError> {
    match pem {
        Pem::Inline(text) => Ok(text.as_bytes().to_vec()),
        Pem::File(path) => std::fs::read(path).map_err(|e| ServerTlsError::Pem {
            what,
            source_name: path.display().to_string(),
            message: e.to_string(),
        }),
    }
}

fn source_name(pem: &Pem) -> String {
    match pem {
        Pem::File(p) => p.display().to_string(),
        Pem::Inline(_) => "inline".to_string(),
    }
}

fn certs(what: &'static str, pem: &Pem) -> Result<Vec<CertificateDer<'static>>, ServerTlsError> {
    let bytes = pem_bytes(what, pem)?;
    let err = |message: String| ServerTlsError::Pem {
        what,
        source_name: source_name(pem),
        message,
    };
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(e.to_string()))?;
    if certs.is_empty() {
        return Err(err("no PEM certificate in it".to_string()));
    }
    Ok(certs)
}

fn key(pem: &Pem) -> Result<PrivateKeyDer<'static>, ServerTlsError> {
    let bytes = pem_bytes("key", pem)?;
    // The parser's message never holds key material.
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| ServerTlsError::Pem {
        what: "key",
        source_name: source_name(pem),
        message: e.to_string(),
    })
}

/// The server configuration: every file named is read now (so a rotated certificate is used
/// by the next configuration built).
pub fn server_config(t: &WebTls) -> Result<rustls::ServerConfig, ServerTlsError> {
    let provider = Arc::new(provider(t));
    let versions: Vec<&'static rustls::SupportedProtocolVersion> = [
        (TlsVersion::Tls12, &rustls::version::TLS12),
        (TlsVersion::Tls13, &rustls::version::TLS13),
    ]
    .into_iter()
    .filter(|(v, _)| (t.min_version..=t.max_version).contains(v))
    .map(|(_, v)| v)
    .collect();
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&versions)?;
    let verifier: Option<Arc<dyn ClientCertVerifier>> = match t.client_auth {
        ClientAuth::NoClientCert => None,
        ClientAuth::RequestClientCert | ClientAuth::RequireAnyClientCert => {
            Some(Arc::new(AnyClientCert {
                provider: Arc::clone(&provider),
                mandatory: t.client_auth.requires(),
            }))
        }
        ClientAuth::VerifyClientCertIfGiven | ClientAuth::RequireAndVerifyClientCert => {
            let ca = t
                .client_ca
                .as_ref()
                .ok_or_else(|| ServerTlsError::ClientCa("no client_ca_file".into()))?;
            let mut roots = rustls::RootCertStore::empty();
            for c in certs("client CA", ca)? {
                roots
                    .add(c)
                    .map_err(|e| ServerTlsError::ClientCa(e.to_string()))?;
            }
            let b =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider));
            let b = if t.client_auth.requires() {
                b
            } else {
                b.allow_unauthenticated()
            };
            Some(
                b.build()
                    .map_err(|e| ServerTlsError::ClientCa(e.to_string()))?,
            )
        }
    };
    let verifier = match verifier {
        Some(inner) if !t.client_allowed_sans.is_empty() => Some(Arc::new(AllowedSans {
            inner,
            allowed: t.client_allowed_sans.clone(),
        })
            as Arc<dyn ClientCertVerifier>),
        v => v,
    };
    let builder = match verifier {
        None => builder.with_no_client_auth(),
        Some(v) => builder.with_client_cert_verifier(v),
    };
    let mut cfg = builder.with_single_cert(certs("certificate", &t.cert)?, key(&t.key)?)?;
    cfg.ignore_client_order = t.prefer_server_cipher_suites;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(cfg)
}

/// The names a certificate holds: its SANs (DNS, IP, e-mail, URI, as exporter-toolkit
/// compares them) and its subject's common names. Empty when it does not parse.
pub fn certificate_names(cert: &CertificateDer<'_>) -> Vec<String> {
    use x509_parser::extensions::GeneralName;
    let Ok((_, parsed)) = x509_parser::parse_x509_certificate(cert.as_ref()) else {
        return Vec::new();
    };
    let mut names = Vec::new();
    if let Ok(Some(san)) = parsed.subject_alternative_name() {
        for n in &san.value.general_names {
            match n {
                GeneralName::DNSName(s) | GeneralName::RFC822Name(s) | GeneralName::URI(s) => {
                    names.push((*s).to_string())
                }
                GeneralName::IPAddress(b) => match b.len() {
                    4 => names.push(
                        std::net::Ipv4Addr::from(<[u8; 4]>::try_from(*b).unwrap_or_default())
                            .to_string(),
                    ),
                    16 => names.push(
                        std::net::Ipv6Addr::from(<[u8; 16]>::try_from(*b).unwrap_or_default())
                            .to_string(),
                    ),
                    _ => {}
                },
                _ => {}
            }
        }
    }
    for cn in parsed.subject().iter_common_name() {
        if let Ok(s) = cn.as_str() {
            names.push(format!("CN={s}"));
        }
    }
    names
}

/// `client_allowed_sans`: the inner verifier's checks, then one of the leaf's SANs must equal
/// an allowed entry exactly (its common name does not count).
#[derive(Debug)]
struct AllowedSans {
    inner: Arc<dyn ClientCertVerifier>,
    allowed: Vec<String>,
}

impl ClientCertVerifier for AllowedSans {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        let names = certificate_names(end_entity);
        if names
            .iter()
            .filter(|n| !n.starts_with("CN="))
            .any(|n| self.allowed.iter().any(|a| a == n))
        {
            Ok(verified)
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// `RequestClientCert` / `RequireAnyClientCert`: a certificate is asked for (required or not)
/// and not verified, as in Go; the client must still prove it holds the certificate's key.
#[derive(Debug)]
struct AnyClientCert {
    provider: Arc<rustls::crypto::CryptoProvider>,
    mandatory: bool,
}

impl ClientCertVerifier for AnyClientCert {
    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
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
            &self.provider.signature_verification_algorithms,
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
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
