//! [`SpecError`], the one error type of this crate, and [`NodeError`].

use std::fmt;
use std::io;
use std::path::PathBuf;

use crate::json::JsonValue;
use crate::secret::REDACTED;

/// Everything that can be wrong with a transfer spec, from reading its JSON to writing the file
/// lists of its ascp command.
///
/// Errors about a value name the spec key (nested keys as `paths[2].source`) and the offending
/// value, available through [`SpecError::key`] and [`SpecError::value`]. Values of secret keys
/// (token, cookie, passwords, private key, proxy password) are replaced by `<redacted>` before
/// they are stored in the error, so an error can be logged as is.
///
/// ```
/// use fasp_spec::{SpecError, TransferSpec};
///
/// let err = TransferSpec::from_json(r#"{"rate_policy": "turbo"}"#).unwrap_err();
/// assert_eq!(err.key(), Some("rate_policy"));
/// assert_eq!(err.value(), Some("turbo"));
/// assert_eq!(
///     err.to_string(),
///     r#"invalid transfer spec: key "rate_policy": unknown value "turbo" (expected one of fixed, high, fair, low)"#
/// );
/// assert!(matches!(err, SpecError::UnknownValue { .. }));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpecError {
    /// A string outside the set a key accepts (`rate_policy: "turbo"`).
    #[error(
        "invalid transfer spec: key \"{key}\": unknown value {value:?} (expected one of {expected})"
    )]
    UnknownValue {
        /// The spec key.
        key: String,
        /// The value found.
        value: String,
        /// The accepted values, comma separated.
        expected: &'static str,
    },

    /// A JSON value of the wrong type (`ssh_port: true`). The value is shown as JSON text.
    #[error(
        "invalid transfer spec: key \"{key}\": value {value} has the wrong type (expected {expected})"
    )]
    WrongType {
        /// The spec key.
        key: String,
        /// The value found, as JSON text.
        value: String,
        /// What the key takes.
        expected: &'static str,
    },

    /// A negative number where only whole numbers from zero up make sense.
    #[error(
        "invalid transfer spec: key \"{key}\": negative value {value:?} (expected a whole number, 0 or more)"
    )]
    Negative {
        /// The spec key.
        key: String,
        /// The value found.
        value: String,
    },

    /// A number outside the range ascp accepts (a port of 0 or above 65535, an overflowing rate).
    #[error(
        "invalid transfer spec: key \"{key}\": value {value:?} out of range (expected {min} to {max})"
    )]
    OutOfRange {
        /// The spec key.
        key: String,
        /// The value found.
        value: String,
        /// Smallest accepted value.
        min: u64,
        /// Largest accepted value.
        max: u64,
    },

    /// A key that must be present (or a list that must not be empty) is missing.
    #[error("invalid transfer spec: key \"{key}\": missing ({reason})")]
    Missing {
        /// The spec key.
        key: String,
        /// Why it is needed.
        reason: &'static str,
    },

    /// A line break or NUL in a value that ends up in ascp's argv, environment or file lists.
    #[error(
        "invalid transfer spec: key \"{key}\": value {value:?} contains {}, which ascp cannot take",
        describe_char(*character)
    )]
    ForbiddenCharacter {
        /// The spec key.
        key: String,
        /// The value found (`<redacted>` for secrets).
        value: String,
        /// The offending character.
        character: char,
    },

    /// A value that contradicts another key (`min_rate_kbps` above `target_rate_kbps`,
    /// `rate_policy` beyond `rate_policy_allowed`, ...).
    #[error(
        "invalid transfer spec: key \"{key}\": value {value:?} conflicts with key \"{other_key}\": {reason}"
    )]
    Conflict {
        /// The spec key.
        key: String,
        /// The value found.
        value: String,
        /// The key it contradicts.
        other_key: String,
        /// How.
        reason: String,
    },

    /// A value longer than ascp accepts (`tags` above 4 KiB).
    #[error(
        "invalid transfer spec: key \"{key}\": value of {length} bytes is too long (at most {max})"
    )]
    TooLong {
        /// The spec key.
        key: String,
        /// The value found (not repeated in the message).
        value: String,
        /// Its length in bytes, as ascp would get it.
        length: usize,
        /// The most ascp accepts.
        max: usize,
    },

    /// Any other malformed value (a proxy URL without a host, an empty host name, ...).
    #[error("invalid transfer spec: key \"{key}\": value {value:?} is invalid: {reason}")]
    Invalid {
        /// The spec key (or `RenderOptions::<field>` for a bad render option).
        key: String,
        /// The value found.
        value: String,
        /// What is wrong with it.
        reason: String,
    },

    /// The node answered with an error object instead of a transfer spec.
    #[error("{0}")]
    Node(NodeError),

    /// The text is not JSON, or not the JSON shape of a transfer spec or node answer.
    #[error("invalid transfer spec: {}{message}", json_position(*line, *column))]
    Json {
        /// Line of the error (1-based; 0 when unknown).
        line: usize,
        /// Column of the error (1-based; 0 when unknown).
        column: usize,
        /// What the JSON parser said.
        message: String,
    },

    /// A node answer lists more transfer specs than the reader allows (see
    /// [`NodeAnswerReader::with_max_specs`](crate::NodeAnswerReader::with_max_specs)): refused
    /// as soon as the element after the last allowed one starts, without reading it.
    #[error("node answer: more than {max} element{} in \"transfer_specs\"", if *max == 1 { "" } else { "s" })]
    TooManySpecs {
        /// The most elements allowed.
        max: usize,
    },

    /// Writing a file list failed.
    #[error("cannot write file list {}: {source}", path.display())]
    Io {
        /// The file (or folder) concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

impl SpecError {
    /// The spec key the error is about, if any (`paths[1].destination` for nested keys,
    /// `error` for a node error).
    pub fn key(&self) -> Option<&str> {
        match self {
            SpecError::UnknownValue { key, .. }
            | SpecError::WrongType { key, .. }
            | SpecError::Negative { key, .. }
            | SpecError::OutOfRange { key, .. }
            | SpecError::Missing { key, .. }
            | SpecError::ForbiddenCharacter { key, .. }
            | SpecError::Conflict { key, .. }
            | SpecError::TooLong { key, .. }
            | SpecError::Invalid { key, .. } => Some(key),
            SpecError::Node(_) => Some("error"),
            SpecError::TooManySpecs { .. } => Some("transfer_specs"),
            SpecError::Json { .. } | SpecError::Io { .. } => None,
        }
    }

    /// The offending value, if any: the string itself for string values, JSON text for values
    /// of the wrong type, `<redacted>` for secret keys, the node's `reason` for a node error.
    pub fn value(&self) -> Option<&str> {
        match self {
            SpecError::UnknownValue { value, .. }
            | SpecError::WrongType { value, .. }
            | SpecError::Negative { value, .. }
            | SpecError::OutOfRange { value, .. }
            | SpecError::ForbiddenCharacter { value, .. }
            | SpecError::Conflict { value, .. }
            | SpecError::TooLong { value, .. }
            | SpecError::Invalid { value, .. } => Some(value),
            SpecError::Node(node) => node.reason.as_deref(),
            SpecError::Missing { .. }
            | SpecError::Json { .. }
            | SpecError::Io { .. }
            | SpecError::TooManySpecs { .. } => None,
        }
    }

    pub(crate) fn json(err: &serde_json::Error) -> Self {
        // serde_json appends " at line L column C" to its Display; the bare message is cleaner.
        let full = err.to_string();
        let message = match full.rfind(" at line ") {
            Some(at) if err.line() > 0 => full[..at].to_owned(),
            _ => full,
        };
        SpecError::Json {
            line: err.line(),
            column: err.column(),
            message,
        }
    }
}

fn describe_char(c: char) -> String {
    let name = match c {
        '\n' => "a line feed",
        '\r' => "a carriage return",
        '\0' => "a NUL character",
        _ => "the character",
    };
    format!("{name} (U+{:04X})", c as u32)
}

/// An error object a node returned instead of a transfer spec, for example
/// `{"error": {"code": 404, "reason": "Not found", "user_message": "..."}}` inside one element
/// of `transfer_specs`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct NodeError {
    /// The node's error code (often an HTTP status). Numeric strings are accepted.
    pub code: Option<i64>,
    /// Short reason (`"Not found"`).
    pub reason: Option<String>,
    /// Message meant for the end user.
    pub user_message: Option<String>,
    /// Message meant for the developer.
    pub internal_message: Option<String>,
}

impl NodeError {
    /// Reads an error object leniently: missing or oddly typed members become `None`.
    pub fn from_json_value(value: &serde_json::Value) -> Self {
        Self::from_json(&JsonValue::from(value.clone()))
    }

    /// [`NodeError::from_json_value`] from a [`JsonValue`] (a member that is an object shows
    /// as JSON text with its keys in their order).
    pub fn from_json(value: &JsonValue) -> Self {
        let text = |name: &str| -> Option<String> {
            match value.get(name)? {
                JsonValue::String(s) => Some(s.clone()),
                JsonValue::Null => None,
                other => Some(other.to_string()),
            }
        };
        let code = match value.get("code") {
            Some(JsonValue::Number(n)) => n.as_i64(),
            Some(JsonValue::String(s)) => s.trim().parse().ok(),
            _ => None,
        };
        NodeError {
            code,
            reason: text("reason"),
            user_message: text("user_message"),
            internal_message: text("internal_message"),
        }
    }
}

impl fmt::Display for NodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("node error")?;
        if let Some(code) = self.code {
            write!(f, " {code}")?;
        }
        match (&self.reason, &self.user_message) {
            (Some(reason), Some(message)) if reason != message => {
                write!(f, ": {reason}: {message}")
            }
            (Some(text), _) | (None, Some(text)) => write!(f, ": {text}"),
            (None, None) => match &self.internal_message {
                Some(text) => write!(f, ": {text}"),
                None => Ok(()),
            },
        }
    }
}

/// `JSON error at line L, column C: ` (1-based, as editors count), or nothing when the error
/// concerns the document as a whole (a value of the wrong shape has no single position).
fn json_position(line: usize, column: usize) -> String {
    if line == 0 {
        String::new()
    } else {
        format!("JSON error at line {line}, column {column}: ")
    }
}

/// Whether a spec key holds a secret (never shown in errors or `Debug`, rendered only into
/// ascp's environment): fasp-mgmt-proto's rule for names (`token`, `cookie`, `password`,
/// `passphrase`, `secret`), plus `ssh_private_key`, whose name does not say it.
pub(crate) fn is_secret_key(key: &str) -> bool {
    key == "ssh_private_key" || crate::secret::looks_secret(key)
}

/// The value of `key` as it may appear in an error: secrets redacted, the proxy URL without
/// its password.
pub(crate) fn shown(key: &str, raw: &str) -> String {
    if is_secret_key(key) {
        REDACTED.to_owned()
    } else if key == "proxy" {
        crate::proxy::redacted_url(raw)
    } else {
        raw.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_error_display() {
        let err = NodeError::from_json_value(&serde_json::json!({
            "code": "404", "reason": "Not found", "user_message": "No such file"
        }));
        assert_eq!(err.code, Some(404));
        assert_eq!(err.to_string(), "node error 404: Not found: No such file");
        let bare = NodeError::from_json_value(&serde_json::json!({}));
        assert_eq!(bare.to_string(), "node error");
    }

    #[test]
    fn forbidden_character_message_names_the_character() {
        let err = SpecError::ForbiddenCharacter {
            key: "cookie".into(),
            value: REDACTED.into(),
            character: '\n',
        };
        assert_eq!(
            err.to_string(),
            "invalid transfer spec: key \"cookie\": value \"<redacted>\" contains a line feed (U+000A), which ascp cannot take"
        );
    }

    #[test]
    fn secrets_are_redacted_in_shown_values() {
        assert_eq!(shown("token", "abc"), REDACTED);
        assert_eq!(shown("remote_host", "abc"), "abc");
        assert_eq!(shown("proxy", "dnat://u:pw@h:1"), "dnat://u:<redacted>@h:1");
    }
}
