//! [`Error`]: everything that can go wrong between asking a node for a transfer spec and
//! holding one.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use fasp_spec::{NodeError, SpecError};

/// What went wrong talking to a node API, IBM IAM or a COS bucket.
///
/// Each variant says what happened in its own words: the host could not be reached, the TLS
/// handshake failed, no answer came in time, the server answered with an HTTP error status, the
/// answer was not the JSON (or XML) it should be, or the node refused inside an HTTP 200. URLs
/// in errors never carry a password, and no variant holds a token, password, API key or access
/// key secret: every error can be logged as it is.
///
/// ```
/// use fasp_token::Error;
///
/// fn explain(err: &Error) -> &'static str {
///     match err {
///         Error::Node(_) => "the node refused the request",
///         Error::Http { status: 401 | 403, .. } => "check the credentials",
///         Error::Unreachable { .. } | Error::ConnectionLost { .. } => "check the network",
///         Error::Timeout { .. } => "the node is slow: raise the timeout",
///         _ => "see the message",
///     }
/// }
/// # let _ = explain;
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A URL given to the client (or found in a COS answer) cannot be used.
    #[error("invalid URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given (its password, if any, redacted).
        url: String,
        /// What is wrong with it.
        reason: String,
    },

    /// No connection could be opened: the name does not resolve, nothing listens on the port,
    /// the network is unreachable, or connecting took longer than the connect timeout. Retried
    /// before it is reported.
    #[error("cannot reach {url}: {message} ({attempts} attempt{})", plural(*attempts))]
    Unreachable {
        /// The URL of the request.
        url: String,
        /// What the operating system or resolver said.
        message: String,
        /// How many times the request was tried.
        attempts: u32,
    },

    /// A connection was opened but closed (or reset) before a whole answer arrived. Retried
    /// before it is reported.
    #[error("connection to {url} lost before the answer: {message} ({attempts} attempt{})", plural(*attempts))]
    ConnectionLost {
        /// The URL of the request.
        url: String,
        /// What was seen.
        message: String,
        /// How many times the request was tried.
        attempts: u32,
    },

    /// The TLS handshake failed: an untrusted or expired certificate, a name mismatch, a server
    /// that does not speak TLS on that port. Not retried.
    #[error("TLS failure with {url}: {message}")]
    Tls {
        /// The URL of the request.
        url: String,
        /// What the TLS library said (for example `invalid peer certificate: UnknownIssuer`).
        message: String,
    },

    /// No complete answer within the configured timeout. Not retried: the server may still be
    /// working on the request.
    #[error("no answer from {url} within {} (timeout)", fmt_duration(*after))]
    Timeout {
        /// The URL of the request.
        url: String,
        /// The timeout that ran out.
        after: Duration,
    },

    /// The server answered with an HTTP error status (after the retries, for 429 and 5xx).
    #[error("{url}: HTTP {status}{}: {message}", status_reason(*status))]
    Http {
        /// The URL of the request.
        url: String,
        /// The HTTP status code.
        status: u16,
        /// The message of the answer's body: a node error's `user_message` or `reason`, IAM's
        /// `errorMessage`, an S3 `<Message>`, or the start of a plain-text body.
        message: String,
        /// The node error object, when the body held one (`{"error": {"code", ...}}`).
        node: Option<Box<NodeError>>,
        /// How many times the request was tried.
        attempts: u32,
    },

    /// The answer is not the JSON it should be: a syntax error, or a member of the wrong shape.
    /// `path` locates the bad element (`transfer_specs[1].transfer_spec`, `.` for the whole
    /// answer).
    #[error("malformed JSON from {url} at {path}: {message}")]
    MalformedJson {
        /// The URL of the request.
        url: String,
        /// Where in the answer (`transfer_specs[0]`, `access_token`, ...).
        path: String,
        /// What is wrong there.
        message: String,
    },

    /// The answer's body is longer than [`ClientConfig::max_body_bytes`](crate::ClientConfig):
    /// refused while it was being read, before any of it was parsed. Not retried.
    #[error("answer from {url} is larger than {limit} bytes (the client's limit): refused")]
    AnswerTooLarge {
        /// The URL of the request.
        url: String,
        /// The limit, in bytes.
        limit: usize,
    },

    /// A setup answer lists more transfer specs than transfer requests were sent: refused as
    /// soon as the element after the expected ones starts, before it is read.
    #[error("answer from {url} holds more than {max} transfer spec{} (one per request sent): refused", plural_usize(*max))]
    TooManySpecs {
        /// The URL of the request.
        url: String,
        /// The number of requests sent, so the most elements expected.
        max: usize,
    },

    /// A certificate file given to trust (`--cacert`,
    /// [`ClientConfig::root_certificate_files`](crate::ClientConfig)) cannot be read or holds
    /// no valid PEM certificate.
    #[error("cannot use certificate file {}: {message}", path.display())]
    Certificate {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },

    /// The bucket's `faspConnectionInfo` answer is not the XML it should be.
    #[error("malformed XML from {url}: {message}")]
    MalformedXml {
        /// The URL of the request.
        url: String,
        /// What is wrong.
        message: String,
    },

    /// A transfer spec in the answer holds a value fasp-spec refuses (an unknown rate policy,
    /// a negative port, ...). `path` is the full path in the answer; the source error names the
    /// key and value (secrets redacted).
    #[error("invalid transfer spec from {url} at {path}: {source}")]
    InvalidSpec {
        /// The URL of the request.
        url: String,
        /// The full path of the bad value (`transfer_specs[0].transfer_spec.rate_policy`).
        path: String,
        /// What fasp-spec found.
        #[source]
        source: Box<SpecError>,
    },

    /// The node refused, with an error object inside an HTTP 200: the whole answer, one element
    /// of `transfer_specs`, or a `transfer_spec` that holds an `error`. The display is the
    /// node's code, reason and user message.
    #[error("{0}")]
    Node(NodeError),

    /// Any other failure of the HTTP layer (building the client, an unexpected protocol error).
    #[error("HTTP request to {url} failed: {message}")]
    Transport {
        /// The URL of the request (empty when building the client failed).
        url: String,
        /// What happened.
        message: String,
    },
}

impl Error {
    /// Whether retrying the same request later may help: connection errors, timeouts, 429 and
    /// 5xx statuses. The client has already retried these as far as its
    /// [`RetryPolicy`](crate::RetryPolicy) allows.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Unreachable { .. } | Error::ConnectionLost { .. } | Error::Timeout { .. } => {
                true
            }
            Error::Http { status, .. } => *status == 429 || *status >= 500,
            _ => false,
        }
    }

    /// The node error, for [`Error::Node`] and for an [`Error::Http`] whose body held one.
    pub fn node_error(&self) -> Option<&NodeError> {
        match self {
            Error::Node(node) => Some(node),
            Error::Http { node, .. } => node.as_deref(),
            _ => None,
        }
    }

    /// The HTTP status, for [`Error::Http`].
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Http { status, .. } => Some(*status),
            _ => None,
        }
    }
}

fn plural(n: u32) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn plural_usize(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn status_reason(status: u16) -> String {
    match reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
    {
        Some(reason) => format!(" {reason}"),
        None => String::new(),
    }
}

pub(crate) fn fmt_duration(d: Duration) -> impl fmt::Display {
    struct Shown(Duration);
    impl fmt::Display for Shown {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            let d = self.0;
            if d.subsec_nanos() == 0 {
                write!(f, "{} s", d.as_secs())
            } else if d < Duration::from_secs(1) {
                write!(f, "{} ms", d.as_millis())
            } else {
                write!(f, "{:.3} s", d.as_secs_f64())
            }
        }
    }
    Shown(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages() {
        let err = Error::Http {
            url: "https://node:9092/files/upload_setup".into(),
            status: 401,
            message: "Invalid credentials".into(),
            node: None,
            attempts: 1,
        };
        assert_eq!(
            err.to_string(),
            "https://node:9092/files/upload_setup: HTTP 401 Unauthorized: Invalid credentials"
        );
        assert!(!err.is_transient());
        let err = Error::Unreachable {
            url: "http://127.0.0.1:1/x".into(),
            message: "Connection refused (os error 111)".into(),
            attempts: 4,
        };
        assert_eq!(
            err.to_string(),
            "cannot reach http://127.0.0.1:1/x: Connection refused (os error 111) (4 attempts)"
        );
        assert!(err.is_transient());
        let err = Error::Timeout {
            url: "http://h/x".into(),
            after: Duration::from_millis(250),
        };
        assert_eq!(
            err.to_string(),
            "no answer from http://h/x within 250 ms (timeout)"
        );
        let err = Error::Timeout {
            url: "http://h/x".into(),
            after: Duration::from_secs(30),
        };
        assert_eq!(
            err.to_string(),
            "no answer from http://h/x within 30 s (timeout)"
        );
    }
}
