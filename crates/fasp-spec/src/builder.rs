//! [`TransferSpecBuilder`]: transfer specs written by hand.

use crate::error::SpecError;
use crate::json::JsonMap;
use crate::secret::Secret;
use crate::spec::{TransferPath, TransferSpec};
use crate::values::{
    Cipher, ContentProtection, Direction, HttpFallback, OverwritePolicy, RatePolicy, ResumePolicy,
};

/// Builds a [`TransferSpec`] step by step; [`TransferSpecBuilder::build`] validates it.
///
/// The common keys have setters; [`TransferSpecBuilder::with`] reaches every other field.
///
/// ```
/// use fasp_spec::{Cipher, RatePolicy, TransferSpec};
///
/// let spec = TransferSpec::builder()
///     .upload()
///     .host("demo.example.com")
///     .user("xfer")
///     .ssh_port(33001)
///     .token("ATM3_secret_token")
///     .path("reports/q1.pdf", "incoming/q1.pdf")
///     .destination_root("/")
///     .cipher(Cipher::Aes256)
///     .rate_policy(RatePolicy::Fair)
///     .target_rate_kbps(100_000)
///     .with(|spec| spec.precalculate_job_size = Some(true))
///     .build()?;
/// assert_eq!(spec.paths.len(), 1);
///
/// // Rules are checked by build(): a minimum above the target is refused.
/// let err = TransferSpec::builder()
///     .upload()
///     .host("h")
///     .source("a")
///     .target_rate_kbps(100)
///     .min_rate_kbps(200)
///     .build()
///     .unwrap_err();
/// assert_eq!(err.key(), Some("min_rate_kbps"));
/// # Ok::<(), fasp_spec::SpecError>(())
/// ```
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct TransferSpecBuilder {
    spec: TransferSpec,
}

impl TransferSpecBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts from an existing spec (for example a node answer to complete).
    pub fn from_spec(spec: TransferSpec) -> Self {
        TransferSpecBuilder { spec }
    }

    /// `direction: "send"`.
    pub fn upload(self) -> Self {
        self.direction(Direction::Send)
    }

    /// `direction: "receive"`.
    pub fn download(self) -> Self {
        self.direction(Direction::Receive)
    }

    /// `direction`.
    pub fn direction(mut self, direction: Direction) -> Self {
        self.spec.direction = Some(direction);
        self
    }

    /// `remote_host`.
    pub fn host(mut self, host: impl Into<String>) -> Self {
        self.spec.remote_host = Some(host.into());
        self
    }

    /// `remote_user`.
    pub fn user(mut self, user: impl Into<String>) -> Self {
        self.spec.remote_user = Some(user.into());
        self
    }

    /// `ssh_port`.
    pub fn ssh_port(mut self, port: u16) -> Self {
        self.spec.ssh_port = Some(port);
        self
    }

    /// `fasp_port`.
    pub fn fasp_port(mut self, port: u16) -> Self {
        self.spec.fasp_port = Some(port);
        self
    }

    /// Adds a path with an explicit destination (relative to `destination_root`).
    pub fn path(mut self, source: impl Into<String>, destination: impl Into<String>) -> Self {
        self.spec
            .paths
            .push(TransferPath::pair(source, destination));
        self
    }

    /// Adds a path without destination (it lands in `destination_root`).
    pub fn source(mut self, source: impl Into<String>) -> Self {
        self.spec.paths.push(TransferPath::new(source));
        self
    }

    /// `source_root`.
    pub fn source_root(mut self, root: impl Into<String>) -> Self {
        self.spec.source_root = Some(root.into());
        self
    }

    /// `destination_root`.
    pub fn destination_root(mut self, root: impl Into<String>) -> Self {
        self.spec.destination_root = Some(root.into());
        self
    }

    /// `token`.
    pub fn token(mut self, token: impl Into<Secret>) -> Self {
        self.spec.token = Some(token.into());
        self
    }

    /// `cookie`.
    pub fn cookie(mut self, cookie: impl Into<Secret>) -> Self {
        self.spec.cookie = Some(cookie.into());
        self
    }

    /// `remote_password`.
    pub fn password(mut self, password: impl Into<Secret>) -> Self {
        self.spec.remote_password = Some(password.into());
        self
    }

    /// `ssh_private_key`: the key's content.
    pub fn ssh_private_key(mut self, key: impl Into<Secret>) -> Self {
        self.spec.ssh_private_key = Some(key.into());
        self
    }

    /// `ssh_private_key_path`: the key's file.
    pub fn ssh_private_key_path(mut self, path: impl Into<String>) -> Self {
        self.spec.ssh_private_key_path = Some(path.into());
        self
    }

    /// `ssh_private_key_passphrase`.
    pub fn ssh_private_key_passphrase(mut self, passphrase: impl Into<Secret>) -> Self {
        self.spec.ssh_private_key_passphrase = Some(passphrase.into());
        self
    }

    /// `cipher`.
    pub fn cipher(mut self, cipher: Cipher) -> Self {
        self.spec.cipher = Some(cipher);
        self
    }

    /// `rate_policy`.
    pub fn rate_policy(mut self, policy: RatePolicy) -> Self {
        self.spec.rate_policy = Some(policy);
        self
    }

    /// `target_rate_kbps`.
    pub fn target_rate_kbps(mut self, rate: u64) -> Self {
        self.spec.target_rate_kbps = Some(rate);
        self
    }

    /// `min_rate_kbps`.
    pub fn min_rate_kbps(mut self, rate: u64) -> Self {
        self.spec.min_rate_kbps = Some(rate);
        self
    }

    /// `resume_policy`.
    pub fn resume_policy(mut self, policy: ResumePolicy) -> Self {
        self.spec.resume_policy = Some(policy);
        self
    }

    /// `overwrite`.
    pub fn overwrite(mut self, policy: OverwritePolicy) -> Self {
        self.spec.overwrite = Some(policy);
        self
    }

    /// `create_dir`.
    pub fn create_dir(mut self, create: bool) -> Self {
        self.spec.create_dir = Some(create);
        self
    }

    /// `tags`.
    pub fn tags(mut self, tags: JsonMap) -> Self {
        self.spec.tags = Some(tags);
        self
    }

    /// `http_fallback` and, if given, `http_fallback_port`.
    pub fn http_fallback(mut self, fallback: HttpFallback, port: Option<u16>) -> Self {
        self.spec.http_fallback = Some(fallback);
        if port.is_some() {
            self.spec.http_fallback_port = port;
        }
        self
    }

    /// `content_protection` with its `content_protection_password`.
    pub fn content_protection(
        mut self,
        protection: ContentProtection,
        password: impl Into<Secret>,
    ) -> Self {
        self.spec.content_protection = Some(protection);
        self.spec.content_protection_password = Some(password.into());
        self
    }

    /// `keepalive`.
    pub fn keepalive(mut self, keepalive: bool) -> Self {
        self.spec.keepalive = Some(keepalive);
        self
    }

    /// Edits any field directly.
    pub fn with(mut self, edit: impl FnOnce(&mut TransferSpec)) -> Self {
        edit(&mut self.spec);
        self
    }

    /// Validates ([`TransferSpec::validate`]) and returns the spec.
    pub fn build(self) -> Result<TransferSpec, SpecError> {
        self.spec.validate()?;
        Ok(self.spec)
    }

    /// Returns the spec without validating it.
    pub fn build_unchecked(self) -> TransferSpec {
        self.spec
    }
}
