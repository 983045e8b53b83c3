//! Error types of the three layers: stream decoding, field parsing, encoding.

use std::fmt;

/// A malformed stretch of a FASPMGR stream.
///
/// The decoder reports it and carries on: it skips to the next `FASPMGR` header, so frames
/// after the damage are still delivered. `offset` is the position in the whole stream (bytes
/// since the decoder was created) where the problem was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    /// Byte offset in the stream where the damaged stretch (or the offending line) starts.
    pub offset: u64,
    /// What was wrong.
    pub kind: DecodeErrorKind,
}

/// What was wrong with a stretch of a FASPMGR stream.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeErrorKind {
    /// Bytes where a `FASPMGR 2` header line was expected.
    MissingHeader,
    /// A `FASPMGR <version>` header with a version other than 2.
    UnsupportedVersion {
        /// The version text found after `FASPMGR `.
        version: String,
    },
    /// The frame (or a single line of it) grew beyond the configured maximum.
    FrameTooLarge {
        /// The configured limit in bytes.
        limit: usize,
    },
    /// A line in a frame body has no `": "` separator.
    MissingSeparator,
    /// A key is empty or holds bytes other than printable ASCII.
    InvalidKey,
    /// A field value holds a NUL byte.
    NulInValue {
        /// The field's key.
        key: String,
    },
    /// A field value is not valid UTF-8.
    InvalidUtf8 {
        /// The field's key.
        key: String,
    },
    /// A new `FASPMGR` header arrived before the frame was closed by an empty line.
    Unterminated,
    /// The stream ended in the middle of a frame.
    TruncatedAtEof,
}

impl fmt::Display for DecodeErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeErrorKind::MissingHeader => f.write_str("expected a `FASPMGR 2` header line"),
            DecodeErrorKind::UnsupportedVersion { version } => {
                write!(
                    f,
                    "unsupported protocol version `FASPMGR {version}` (expected 2)"
                )
            }
            DecodeErrorKind::FrameTooLarge { limit } => {
                write!(f, "frame exceeds the maximum of {limit} bytes")
            }
            DecodeErrorKind::MissingSeparator => f.write_str("line has no `: ` separator"),
            DecodeErrorKind::InvalidKey => f.write_str("field key is empty or not printable ASCII"),
            DecodeErrorKind::NulInValue { key } => write!(f, "value of `{key}` holds a NUL byte"),
            DecodeErrorKind::InvalidUtf8 { key } => write!(f, "value of `{key}` is not UTF-8"),
            DecodeErrorKind::Unterminated => {
                f.write_str("frame not closed by an empty line before the next header")
            }
            DecodeErrorKind::TruncatedAtEof => f.write_str("stream ended inside a frame"),
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "malformed FASPMGR data at byte {}: {}",
            self.offset, self.kind
        )
    }
}

impl std::error::Error for DecodeError {}

/// A frame or control message that cannot be written.
#[derive(Debug)]
#[non_exhaustive]
pub enum EncodeError {
    /// A key is empty or holds spaces, colons or non-printable bytes.
    InvalidKey {
        /// The key as given.
        key: String,
    },
    /// A non-path value holds CR or LF (paths are escaped instead).
    LineBreakInValue {
        /// The field's key.
        key: String,
    },
    /// A value holds a NUL byte.
    NulInValue {
        /// The field's key.
        key: String,
    },
    /// An invalid control message (for example a `FileBytes` range whose start is after its end).
    InvalidControl {
        /// What is wrong.
        reason: &'static str,
    },
    /// Writing to the transport failed (only from the codec's `Encoder`).
    Io(std::io::Error),
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::InvalidKey { key } => write!(f, "invalid field key {key:?}"),
            EncodeError::LineBreakInValue { key } => {
                write!(f, "value of `{key}` holds a line break")
            }
            EncodeError::NulInValue { key } => write!(f, "value of `{key}` holds a NUL byte"),
            EncodeError::InvalidControl { reason } => {
                write!(f, "invalid control message: {reason}")
            }
            EncodeError::Io(e) => write!(f, "cannot write frame: {e}"),
        }
    }
}

impl std::error::Error for EncodeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            EncodeError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<std::io::Error> for EncodeError {
    fn from(e: std::io::Error) -> EncodeError {
        EncodeError::Io(e)
    }
}

/// A well-framed message whose field does not hold what its type needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The message type (`STATS`, `RATE`...).
    pub message: String,
    /// The field's key.
    pub key: String,
    /// What was wrong.
    pub kind: FieldErrorKind,
}

/// What was wrong with a field.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FieldErrorKind {
    /// A required field is absent.
    Missing,
    /// The value is not what the field holds.
    Invalid {
        /// What was expected, in words (`an unsigned integer`, `Yes or No`...).
        expected: &'static str,
        /// The value found (`<redacted>` for secret fields).
        found: String,
    },
    /// The frame's `Type` is not one this view reads.
    WrongType {
        /// The type names accepted.
        expected: &'static str,
    },
}

impl FieldError {
    pub(crate) fn invalid(message: &str, key: &str, expected: &'static str, found: &str) -> Self {
        let found = if crate::frame::is_secret_key(key) {
            crate::frame::REDACTED.to_string()
        } else {
            found.to_string()
        };
        FieldError {
            message: message.into(),
            key: key.into(),
            kind: FieldErrorKind::Invalid { expected, found },
        }
    }

    pub(crate) fn missing(message: &str, key: &str) -> Self {
        FieldError {
            message: message.into(),
            key: key.into(),
            kind: FieldErrorKind::Missing,
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            FieldErrorKind::Missing => {
                write!(
                    f,
                    "{} frame: required field `{}` is missing",
                    self.message, self.key
                )
            }
            FieldErrorKind::Invalid { expected, found } => write!(
                f,
                "{} frame: field `{}`: expected {expected}, found {found:?}",
                self.message, self.key
            ),
            FieldErrorKind::WrongType { expected } => write!(
                f,
                "frame of type {:?} where {expected} was expected",
                self.message
            ),
        }
    }
}

impl std::error::Error for FieldError {}
