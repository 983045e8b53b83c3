//! The built-in self-signed certificate and the TLS acceptor.

use std::io;
use std::sync::Arc;

use base64::Engine;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::TlsAcceptor;

pub(crate) const CERTIFICATE_PEM: &str = include_str!("tls/cert.pem");
const KEY_PEM: &str = include_str!("tls/key.pem");

/// The DER bytes inside the first PEM block labelled `label`.
fn pem_block(pem: &str, label: &str) -> io::Result<Vec<u8>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = pem
        .find(&begin)
        .ok_or_else(|| io::Error::other(format!("no {label} in the built-in PEM")))?
        + begin.len();
    let stop = pem[start..]
        .find(&end)
        .ok_or_else(|| io::Error::other(format!("unterminated {label}")))?
        + start;
    let body: String = pem[start..stop].split_whitespace().collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .map_err(io::Error::other)
}

pub(crate) fn acceptor() -> io::Result<TlsAcceptor> {
    let certificate = CertificateDer::from(pem_block(CERTIFICATE_PEM, "CERTIFICATE")?);
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pem_block(KEY_PEM, "PRIVATE KEY")?));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?
        .with_no_client_auth()
        .with_single_cert(vec![certificate], key)
        .map_err(io::Error::other)?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}
