//! The HTTP layer shared by [`NodeClient`](crate::NodeClient) and
//! [`CosClient`](crate::CosClient): one `reqwest::Client`, timeouts, retries with backoff, and
//! the translation of every failure into an [`Error`].

use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};
use reqwest::{RequestBuilder, Response, StatusCode, Url};
use zeroize::Zeroizing;

use crate::error::Error;

/// Default of [`ClientConfig::max_body_bytes`]: 4 MiB. Node, IAM and COS answers are a few
/// kilobytes; a node answering a thousand requests at once stays below a megabyte.
pub const DEFAULT_MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// How requests are retried: [`fasp_spec::RetryPolicy`], the workspace's one retry type
/// (its default, 3 retries from 500 ms to 8 s, is the node client's).
pub use fasp_spec::RetryPolicy;

/// Settings of the HTTP layer, shared by [`NodeClient`](crate::NodeClient) and
/// [`CosClient`](crate::CosClient).
///
/// ```
/// use std::time::Duration;
/// use fasp_token::{ClientConfig, RetryPolicy};
///
/// let config = ClientConfig::default()
///     .with_timeout(Duration::from_secs(10))
///     .with_retry(RetryPolicy::none());
/// assert!(!config.danger_accept_invalid_certs);
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct ClientConfig {
    /// Longest wait for one attempt, from sending the request to the end of the answer's body.
    /// Default 30 s.
    pub timeout: Duration,
    /// Longest wait for a connection (TCP and TLS). Default 10 s.
    pub connect_timeout: Duration,
    /// Retries of transient failures.
    pub retry: RetryPolicy,
    /// **Turns off TLS certificate verification**: any certificate is accepted, for any name,
    /// so anyone on the path can read the credentials and the tokens. For lab servers with
    /// self-signed certificates only. Default `false`.
    pub danger_accept_invalid_certs: bool,
    /// PEM-encoded certificates trusted in addition to the built-in roots: a private CA, or a
    /// lab server's own self-signed certificate (verification stays on). Default none.
    pub extra_root_certificates: Vec<Vec<u8>>,
    /// PEM files of certificates trusted in addition to the built-in roots (like
    /// [`ClientConfig::extra_root_certificates`], read when the client is built; an unreadable
    /// file, or one without a certificate, is an [`Error::Certificate`] naming it). This is
    /// what a `--cacert FILE` option sets. Default none.
    pub root_certificate_files: Vec<PathBuf>,
    /// The largest answer body read, in bytes: the body is read in chunks and a longer one is
    /// refused ([`Error::AnswerTooLarge`]) as soon as it passes this size, before anything is
    /// parsed. Default [`DEFAULT_MAX_BODY_BYTES`] (4 MiB).
    pub max_body_bytes: usize,
    /// The `User-Agent` header. Default `fasp-token/<version>`.
    pub user_agent: String,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            retry: RetryPolicy::default(),
            danger_accept_invalid_certs: false,
            extra_root_certificates: Vec::new(),
            root_certificate_files: Vec::new(),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            user_agent: concat!("fasp-token/", env!("CARGO_PKG_VERSION")).to_owned(),
        }
    }
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("retry", &self.retry)
            .field(
                "danger_accept_invalid_certs",
                &self.danger_accept_invalid_certs,
            )
            .field(
                "extra_root_certificates",
                &self.extra_root_certificates.len(),
            )
            .field("root_certificate_files", &self.root_certificate_files)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("user_agent", &self.user_agent)
            .finish()
    }
}

impl ClientConfig {
    /// Sets [`ClientConfig::timeout`].
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets [`ClientConfig::connect_timeout`].
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets [`ClientConfig::retry`].
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Sets [`ClientConfig::danger_accept_invalid_certs`]: `true` **turns off certificate
    /// verification**. Lab servers only.
    pub fn with_danger_accept_invalid_certs(mut self, accept: bool) -> Self {
        self.danger_accept_invalid_certs = accept;
        self
    }

    /// Adds a PEM-encoded certificate to [`ClientConfig::extra_root_certificates`].
    pub fn with_extra_root_certificate(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.extra_root_certificates.push(pem.into());
        self
    }

    /// Adds a PEM file to [`ClientConfig::root_certificate_files`] (read when the client is
    /// built).
    pub fn with_root_certificate_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.root_certificate_files.push(path.into());
        self
    }

    /// Sets [`ClientConfig::max_body_bytes`].
    pub fn with_max_body_bytes(mut self, max: usize) -> Self {
        self.max_body_bytes = max;
        self
    }

    /// Sets [`ClientConfig::user_agent`].
    pub fn with_user_agent(mut self, user_agent: impl Into<String>) -> Self {
        self.user_agent = user_agent.into();
        self
    }
}

/// A configured `reqwest::Client` plus the policy around it. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Http {
    client: reqwest::Client,
    config: ClientConfig,
}

impl fmt::Debug for Http {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Http")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// A successful answer: status 2xx and the whole body (wiped on drop: it may hold a token).
pub(crate) struct Answer {
    pub(crate) body: Zeroizing<String>,
}

impl Http {
    pub(crate) fn new(config: ClientConfig) -> Result<Self, Error> {
        let mut builder = reqwest::Client::builder();
        for path in &config.root_certificate_files {
            for certificate in read_certificate_file(path)? {
                builder = builder.add_root_certificate(certificate);
            }
        }
        for (i, pem) in config.extra_root_certificates.iter().enumerate() {
            let certificate =
                reqwest::Certificate::from_pem(pem).map_err(|e| Error::Transport {
                    url: String::new(),
                    message: format!(
                        "cannot read extra root certificate #{}: {}",
                        i + 1,
                        chain(&e)
                    ),
                })?;
            builder = builder.add_root_certificate(certificate);
        }
        let client = builder
            .timeout(config.timeout)
            .connect_timeout(config.connect_timeout)
            .user_agent(config.user_agent.clone())
            // Credentials go to the URL they were given for and nowhere else: a redirect is
            // reported as an HTTP status, not followed.
            .redirect(reqwest::redirect::Policy::none())
            .danger_accept_invalid_certs(config.danger_accept_invalid_certs)
            .https_only(false)
            .build()
            .map_err(|e| Error::Transport {
                url: String::new(),
                message: format!("cannot build the HTTP client: {}", chain(&e)),
            })?;
        Ok(Http { client, config })
    }

    pub(crate) fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// Sends the request `make` builds (once per attempt), retrying transient failures, and
    /// returns the body of a 2xx answer. `shown` is the URL as errors show it.
    pub(crate) async fn send(
        &self,
        shown: &str,
        make: impl Fn(&reqwest::Client) -> RequestBuilder,
    ) -> Result<Answer, Error> {
        let retry = &self.config.retry;
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            let can_retry = attempt <= retry.max_retries;
            let started = Instant::now();
            // Only the URL (never with credentials: see parse_base_url) and the attempt: no
            // header, no body.
            tracing::debug!(url = %shown, attempt, "sending request");
            let outcome = match make(&self.client).send().await {
                Ok(response) => self.read(shown, response, attempt, started).await,
                Err(e) => Err(self.classify(shown, &e, attempt)),
            };
            let wait = match &outcome {
                Err(Failure::Retryable { retry_after, error }) if can_retry => {
                    let wait = retry_after
                        .unwrap_or_else(|| retry.backoff(attempt))
                        .min(retry.max_backoff);
                    // Errors of this crate hold no secret (see Error).
                    tracing::warn!(
                        url = %shown,
                        attempt,
                        wait_ms = wait.as_millis() as u64,
                        error = %error,
                        "retrying after a transient failure"
                    );
                    wait
                }
                Ok(_) => {
                    tracing::debug!(
                        url = %shown,
                        attempt,
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        "request succeeded"
                    );
                    return outcome.map_err(Failure::into_error);
                }
                Err(failure) => {
                    tracing::debug!(
                        url = %shown,
                        attempt,
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        error = %failure.error(),
                        "request failed"
                    );
                    return outcome.map_err(Failure::into_error);
                }
            };
            tokio::time::sleep(wait).await;
        }
    }

    async fn read(
        &self,
        shown: &str,
        response: Response,
        attempt: u32,
        started: Instant,
    ) -> Result<Answer, Failure> {
        let status = response.status();
        let retry_after = retry_after(response.headers());
        tracing::debug!(
            url = %shown,
            attempt,
            status = status.as_u16(),
            content_length = response.content_length(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "answer received"
        );
        let limit = self.config.max_body_bytes;
        let body = read_body(response, limit).await.map_err(|e| match e {
            BodyError::Http(e) => self.classify(shown, &e, attempt),
            BodyError::TooLarge => Failure::Final(Error::AnswerTooLarge {
                url: shown.to_owned(),
                limit,
            }),
        })?;
        tracing::trace!(url = %shown, bytes = body.len(), "answer body read");
        if status.is_success() {
            return Ok(Answer { body });
        }
        let (message, node) = crate::answer::body_message(&body, status);
        let error = Error::Http {
            url: shown.to_owned(),
            status: status.as_u16(),
            message,
            node,
            attempts: attempt,
        };
        if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
            Err(Failure::Retryable { error, retry_after })
        } else {
            Err(Failure::Final(error))
        }
    }

    /// Turns a reqwest error into a typed [`Error`], retryable or not.
    fn classify(&self, shown: &str, e: &reqwest::Error, attempts: u32) -> Failure {
        let url = shown.to_owned();
        if let Some(message) = tls_message(e) {
            return Failure::Final(Error::Tls { url, message });
        }
        if e.is_timeout() {
            // A connect timeout is a connection failure (nothing was sent): retry it.
            if e.is_connect() {
                return Failure::Retryable {
                    error: Error::Unreachable {
                        url,
                        message: format!(
                            "no connection within {}",
                            crate::error::fmt_duration(self.config.connect_timeout)
                        ),
                        attempts,
                    },
                    retry_after: None,
                };
            }
            return Failure::Final(Error::Timeout {
                url,
                after: self.config.timeout,
            });
        }
        if e.is_connect() {
            return Failure::Retryable {
                error: Error::Unreachable {
                    url,
                    message: chain(e),
                    attempts,
                },
                retry_after: None,
            };
        }
        if connection_lost(e) {
            return Failure::Retryable {
                error: Error::ConnectionLost {
                    url,
                    message: chain(e),
                    attempts,
                },
                retry_after: None,
            };
        }
        Failure::Final(Error::Transport {
            url,
            message: chain(e),
        })
    }
}

/// One attempt's failure: retryable (with the server's `Retry-After`) or final.
enum Failure {
    Retryable {
        error: Error,
        retry_after: Option<Duration>,
    },
    Final(Error),
}

impl Failure {
    fn error(&self) -> &Error {
        match self {
            Failure::Retryable { error, .. } | Failure::Final(error) => error,
        }
    }

    fn into_error(self) -> Error {
        match self {
            Failure::Retryable { error, .. } | Failure::Final(error) => error,
        }
    }
}

enum BodyError {
    Http(reqwest::Error),
    TooLarge,
}

/// Reads the body chunk by chunk, refusing it as soon as it passes `limit` bytes (a
/// `Content-Length` above the limit is refused before any chunk is read). The buffer is wiped
/// on drop, also when the body is refused half-way.
async fn read_body(mut response: Response, limit: usize) -> Result<Zeroizing<String>, BodyError> {
    let announced = response.content_length();
    if announced.is_some_and(|length| length > limit as u64) {
        return Err(BodyError::TooLarge);
    }
    // Reserved once when the length is announced: growing would leave copies of the body (and
    // of the token it may hold) in freed memory.
    let capacity = announced.map_or(0, |length| length as usize);
    let mut bytes = Zeroizing::new(Vec::with_capacity(capacity));
    while let Some(chunk) = response.chunk().await.map_err(BodyError::Http)? {
        if bytes.len().saturating_add(chunk.len()) > limit {
            return Err(BodyError::TooLarge);
        }
        bytes.extend_from_slice(&chunk);
    }
    // No copy for UTF-8 (the usual case): the buffer becomes the string.
    let bytes = std::mem::take(&mut *bytes);
    Ok(Zeroizing::new(match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => {
            let bytes = Zeroizing::new(e.into_bytes());
            String::from_utf8_lossy(&bytes).into_owned()
        }
    }))
}

/// Reads the certificates of a PEM file: at least one, or an [`Error::Certificate`] naming the
/// file.
fn read_certificate_file(path: &std::path::Path) -> Result<Vec<reqwest::Certificate>, Error> {
    let fail = |message: String| Error::Certificate {
        path: path.to_owned(),
        message,
    };
    let pem = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
    if !pem
        .windows(b"-----BEGIN CERTIFICATE-----".len())
        .any(|w| w == b"-----BEGIN CERTIFICATE-----")
    {
        return Err(fail(
            "no PEM certificate (-----BEGIN CERTIFICATE-----) in it".into(),
        ));
    }
    let certificates = reqwest::Certificate::from_pem_bundle(&pem)
        .map_err(|e| fail(format!("not a valid PEM certificate: {}", chain(&e))))?;
    if certificates.is_empty() {
        return Err(fail("no certificate in it".into()));
    }
    Ok(certificates)
}

/// `Retry-After` in seconds (the HTTP-date form is ignored: the backoff applies then).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// The message of a TLS failure, if `e` is one.
fn tls_message(e: &reqwest::Error) -> Option<String> {
    find_in_chain(e, &|err| {
        err.downcast_ref::<rustls::Error>().map(ToString::to_string)
    })
}

/// Applies `probe` to `e`, its sources, and the errors wrapped in `io::Error`s on the way
/// (whose `source()` skips the wrapped error itself), until it finds something.
fn find_in_chain<T>(
    e: &(dyn StdError + 'static),
    probe: &dyn Fn(&(dyn StdError + 'static)) -> Option<T>,
) -> Option<T> {
    let mut current = Some(e);
    while let Some(err) = current {
        if let Some(found) = probe(err) {
            return Some(found);
        }
        if let Some(inner) = err.downcast_ref::<io::Error>().and_then(io::Error::get_ref) {
            let inner: &(dyn StdError + 'static) = inner;
            if let Some(found) = find_in_chain(inner, probe) {
                return Some(found);
            }
        }
        current = err.source();
    }
    None
}

/// Whether `e` is a connection closed or reset before the whole answer arrived.
fn connection_lost(e: &reqwest::Error) -> bool {
    find_in_chain(e, &|err| {
        let hyper = err
            .downcast_ref::<hyper::Error>()
            .is_some_and(|h| h.is_incomplete_message() || h.is_canceled() || h.is_closed());
        let io = err.downcast_ref::<io::Error>().is_some_and(|io| {
            matches!(
                io.kind(),
                io::ErrorKind::ConnectionReset
                    | io::ErrorKind::ConnectionAborted
                    | io::ErrorKind::BrokenPipe
                    | io::ErrorKind::UnexpectedEof
            )
        });
        (hyper || io).then_some(())
    })
    .is_some()
}

/// The messages of `e`'s sources, joined with `: `, without reqwest's own first line (which
/// repeats the URL). Repeated messages are shown once.
pub(crate) fn chain(e: &reqwest::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut current = e.source();
    while let Some(err) = current {
        let text = err.to_string();
        // hyper-util's "client error (Connect)" only repeats what the next source says.
        let noise = text.starts_with("client error (") && text.ends_with(')');
        if !noise && !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        current = err.source();
    }
    if parts.is_empty() {
        // No source: reqwest's own message, without the URL it appends.
        let mut text = e.to_string();
        if let Some(at) = text.find(" for url (") {
            text.truncate(at);
        }
        parts.push(text);
    }
    parts.join(": ")
}

/// A header value marked sensitive (kept out of reqwest's and hyper's `Debug`). A value that
/// is not a valid header (a line break in a token) becomes an empty, equally sensitive value:
/// the server then refuses the credentials.
pub(crate) fn sensitive(value: &str) -> HeaderValue {
    let mut header = HeaderValue::from_str(value).unwrap_or_else(|_| HeaderValue::from_static(""));
    header.set_sensitive(true);
    header
}

/// Parses and checks a base URL: `http` or `https`, with a host.
pub(crate) fn parse_base_url(text: &str) -> Result<Url, Error> {
    let invalid = |reason: &str| Error::InvalidUrl {
        url: redact_raw(text),
        reason: reason.to_owned(),
    };
    let url = Url::parse(text.trim()).map_err(|e| invalid(&e.to_string()))?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(invalid("the scheme must be http or https"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("no host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid("a base URL takes no query or fragment"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(
            "credentials go into the client's authentication, not into the URL",
        ));
    }
    Ok(url)
}

/// Joins `path` (no leading slash) to a base URL, keeping the base's own path as a prefix.
pub(crate) fn join(base: &Url, path: &str) -> Url {
    let mut url = base.clone();
    let prefix = base.path().trim_end_matches('/');
    url.set_path(&format!("{prefix}/{path}"));
    url
}

/// A URL that did not parse, with anything that looks like `user:password@` redacted.
fn redact_raw(text: &str) -> String {
    let Some(scheme_end) = text.find("://") else {
        return text.to_owned();
    };
    let rest = &text[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => {
            let userinfo = &rest[..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}://{user}:redacted{}", &text[..scheme_end], &rest[at..])
        }
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let policy = RetryPolicy::default()
            .with_initial_backoff(Duration::from_millis(100))
            .with_max_backoff(Duration::from_millis(350));
        assert_eq!(policy.backoff(1), Duration::from_millis(100));
        assert_eq!(policy.backoff(2), Duration::from_millis(200));
        assert_eq!(policy.backoff(3), Duration::from_millis(350));
        assert_eq!(policy.backoff(60), Duration::from_millis(350));
    }

    #[test]
    fn base_urls() {
        let url = parse_base_url("https://node.example.com:9092").unwrap();
        assert_eq!(
            join(&url, "files/upload_setup").as_str(),
            "https://node.example.com:9092/files/upload_setup"
        );
        let url = parse_base_url("https://h/prefix/").unwrap();
        assert_eq!(join(&url, "files/x").as_str(), "https://h/prefix/files/x");
        assert!(matches!(
            parse_base_url("ftp://h"),
            Err(Error::InvalidUrl { .. })
        ));
        assert!(matches!(
            parse_base_url("not a url"),
            Err(Error::InvalidUrl { .. })
        ));
        for text in ["https://u:hunter2@h:9092?x", "https://u:hunter2@h:9092"] {
            let err = parse_base_url(text).unwrap_err();
            assert!(!err.to_string().contains("hunter2"), "{err}");
        }
        assert_eq!(redact_raw("https://u:pw@h x/y"), "https://u:redacted@h x/y");
    }
}
