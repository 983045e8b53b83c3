//! [`Secret`]: a string that refuses to be printed.

use std::fmt;

use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop};

/// What secrets print as (fasp-mgmt-proto's word, the same everywhere).
pub use fasp_mgmt_proto::REDACTED;

/// A string that must not end up in logs, error messages or `ps` output: a transfer token, a
/// cookie, a password, private key material.
///
/// `Debug` and `Display` print `<redacted>`; the only way to the value is the explicitly named
/// [`Secret::expose`]. Serialisation, on the other hand, is transparent (a plain JSON string):
/// a transfer spec must survive a round trip through JSON, so whoever serialises a spec is
/// handling its secrets.
///
/// The value is wiped (overwritten with zeros, with `zeroize`) when the `Secret` is dropped.
/// That covers the `Secret`'s own buffer only: copies taken with [`Secret::expose`] or
/// [`Secret::into_inner`], and buffers left behind when the string was built, are the caller's.
///
/// ```
/// use fasp_spec::Secret;
///
/// let token = Secret::new("ATM3_ACsGh7N");
/// assert_eq!(format!("{token} {token:?}"), "<redacted> <redacted>");
/// assert_eq!(token.expose(), "ATM3_ACsGh7N");
/// ```
#[derive(Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value itself. Callers take responsibility for where it goes.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Unwraps the value (which is then no longer wiped on drop).
    pub fn into_inner(mut self) -> String {
        std::mem::take(&mut self.0)
    }

    /// Whether the value is the empty string.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl ZeroizeOnDrop for Secret {}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Secret(value.to_owned())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

/// Whether a key of unknown meaning names a secret: fasp-mgmt-proto's rule for frame fields
/// (it contains `token`, `cookie`, `password`, `passphrase` or `secret`, in any case).
pub(crate) use fasp_mgmt_proto::is_secret_key as looks_secret;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_hide_the_value() {
        let secret = Secret::new("hunter2-hunter2");
        assert_eq!(format!("{secret}"), REDACTED);
        assert_eq!(format!("{secret:?}"), REDACTED);
        assert_eq!(format!("{:?}", Some(&secret)), "Some(<redacted>)");
        assert_eq!(format!("{secret:#?}"), REDACTED);
    }

    #[test]
    fn into_inner_still_gives_the_value() {
        assert_eq!(Secret::new("abc").into_inner(), "abc");
        let mut secret = Secret::new("xyz");
        // What Drop does, observed on a live value.
        secret.0.zeroize();
        assert!(secret.is_empty());
    }

    #[test]
    fn serde_is_transparent() {
        let secret: Secret = serde_json::from_str("\"abc\"").unwrap();
        assert_eq!(secret.expose(), "abc");
        assert_eq!(serde_json::to_string(&secret).unwrap(), "\"abc\"");
    }
}
