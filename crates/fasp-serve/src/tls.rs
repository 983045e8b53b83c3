//! TLS: the server's certificate and private key, and what a client trusts.
//!
//! rustls (with ring) does the work, through tonic. The server side reads PEM files; the key
//! file must be private to its owner, as the token file. A client trusts the CA certificate it
//! is given, else the public web's roots (webpki-roots).

use std::fmt;
use std::path::Path;

use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};
use zeroize::Zeroizing;

use crate::error::ServeError;

/// The server's certificate chain and private key, PEM. Its [`Debug`](fmt::Debug) shows no part
/// of the key, which is wiped from memory when dropped.
#[derive(Clone)]
pub struct TlsIdentity {
    cert: Vec<u8>,
    key: Zeroizing<Vec<u8>>,
}

impl fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsIdentity")
            .field("cert", &format_args!("{} bytes of PEM", self.cert.len()))
            .field("key", &format_args!("<redacted>"))
            .finish()
    }
}

impl TlsIdentity {
    /// The certificate chain in `cert` and the private key in `key`, both PEM. The key file
    /// must not be readable or writable by group or others (chmod 600); each file must hold
    /// what it is named for. Whether the two match is checked when the server starts.
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<TlsIdentity, ServeError> {
        let bad = |path: &Path, reason: String| ServeError::TlsFile {
            path: path.to_path_buf(),
            reason,
        };
        let cert_pem = std::fs::read(cert).map_err(|e| bad(cert, e.to_string()))?;
        if !contains(&cert_pem, b"-----BEGIN CERTIFICATE-----") {
            return Err(bad(cert, "it holds no PEM certificate".to_owned()));
        }
        let key_pem = Zeroizing::new(read_private(key).map_err(|reason| bad(key, reason))?);
        if !contains(&key_pem, b"PRIVATE KEY-----") {
            return Err(bad(key, "it holds no PEM private key".to_owned()));
        }
        Ok(TlsIdentity {
            cert: cert_pem,
            key: key_pem,
        })
    }

    /// A certificate chain and private key given as PEM bytes.
    pub fn from_pem(cert: impl Into<Vec<u8>>, key: impl Into<Vec<u8>>) -> TlsIdentity {
        TlsIdentity {
            cert: cert.into(),
            key: Zeroizing::new(key.into()),
        }
    }

    pub(crate) fn server_config(&self) -> ServerTlsConfig {
        ServerTlsConfig::new().identity(Identity::from_pem(&self.cert, self.key.as_slice()))
    }
}

/// What a client trusts when it reaches a server over TLS (an `https://` address): a CA
/// certificate, or by default the public web's roots.
#[derive(Clone, Debug, Default)]
pub struct ClientTls {
    ca: Option<Vec<u8>>,
    domain: Option<String>,
}

impl ClientTls {
    /// Trust the public web's roots (webpki-roots) only: for a server whose certificate a
    /// public CA signed.
    pub fn new() -> ClientTls {
        ClientTls::default()
    }

    /// Trust the CA certificate (PEM) in the file at `path` instead: for a private CA, or a
    /// server's own self-signed certificate.
    pub fn ca_file(path: &Path) -> Result<ClientTls, ServeError> {
        let bad = |reason: String| ServeError::TlsFile {
            path: path.to_path_buf(),
            reason,
        };
        let pem = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
        if !contains(&pem, b"-----BEGIN CERTIFICATE-----") {
            return Err(bad("it holds no PEM certificate".to_owned()));
        }
        Ok(ClientTls::new().ca_pem(pem))
    }

    /// Trust this CA certificate (PEM) instead of the public roots.
    pub fn ca_pem(mut self, pem: impl Into<Vec<u8>>) -> ClientTls {
        self.ca = Some(pem.into());
        self
    }

    /// Check the server's certificate against this name rather than the address's host.
    pub fn domain(mut self, name: impl Into<String>) -> ClientTls {
        self.domain = Some(name.into());
        self
    }

    pub(crate) fn config(&self) -> ClientTlsConfig {
        let mut config = ClientTlsConfig::new();
        config = match &self.ca {
            Some(pem) => config.ca_certificate(Certificate::from_pem(pem)),
            None => config.with_webpki_roots(),
        };
        if let Some(name) = &self.domain {
            config = config.domain_name(name.clone());
        }
        config
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The bytes of a file that must be private to its owner (mode without group or other bits).
fn read_private(path: &Path) -> Result<Vec<u8>, String> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "its mode is {mode:03o}: group and others must have no access (chmod 600)"
        ));
    }
    std::fs::read(path).map_err(|e| e.to_string())
}
