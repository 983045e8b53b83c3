//! Throwaway TLS certificates for tests: a self-signed certificate for `localhost` and
//! `127.0.0.1`, its PEM files written where a server and a client read them.

use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// A self-signed certificate and its key, as PEM text and as files (the key file mode 0600).
#[derive(Debug)]
pub struct TestCert {
    /// The certificate, which a client trusts as its CA.
    pub cert: PathBuf,
    /// The private key.
    pub key: PathBuf,
    /// The certificate's PEM text.
    pub cert_pem: String,
    /// The key's PEM text.
    pub key_pem: String,
}

/// A new self-signed certificate for `localhost` and `127.0.0.1`, written to `dir` as
/// `NAME.crt` and `NAME.key`.
pub fn self_signed(dir: &Path, name: &str) -> TestCert {
    let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    let made = rcgen::generate_simple_self_signed(names).expect("a self-signed certificate");
    let cert_pem = made.cert.pem();
    let key_pem = made.key_pair.serialize_pem();
    let cert = dir.join(format!("{name}.crt"));
    let key = dir.join(format!("{name}.key"));
    std::fs::write(&cert, &cert_pem).expect("write the certificate");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&key)
        .expect("create the key file");
    std::io::Write::write_all(&mut file, key_pem.as_bytes()).expect("write the key");
    TestCert {
        cert,
        key,
        cert_pem,
        key_pem,
    }
}
