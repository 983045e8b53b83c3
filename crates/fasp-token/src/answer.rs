//! Reading answers: JSON with the path of a bad element, node setup answers into one result per
//! request, and the message of an error body.

use fasp_spec::{Direction, NodeAnswerError, NodeAnswerReader, NodeError, NodeSpec, SpecError};
use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::Error;

/// How much of a plain-text error body a message keeps.
const MAX_MESSAGE: usize = 300;

/// Parses `body` as JSON into `T`; a failure names the path of the bad element.
pub(crate) fn parse_json<T: DeserializeOwned>(url: &str, body: &str) -> Result<T, Error> {
    let mut deserializer = serde_json::Deserializer::from_str(body);
    let value: T =
        serde_path_to_error::deserialize(&mut deserializer).map_err(|e| Error::MalformedJson {
            url: url.to_owned(),
            path: e.path().to_string(),
            message: e.inner().to_string(),
        })?;
    deserializer.end().map_err(|e| Error::MalformedJson {
        url: url.to_owned(),
        path: ".".into(),
        message: e.to_string(),
    })?;
    Ok(value)
}

/// Reads the answer of `upload_setup` / `download_setup` for `expected` transfer requests in
/// `direction`, with fasp-spec's [`NodeAnswerReader`]: at most `expected` elements (the next
/// one is refused before it is read), each spec restricted to the keys a node may set.
///
/// Outer error: not JSON, not `{"transfer_specs": [...]}`, a node error as the whole answer,
/// more elements than requests ([`Error::TooManySpecs`]) or fewer. Inner: one result per
/// element, a node error (in the element or inside its `transfer_spec`) never becoming a spec.
pub(crate) fn setup_results(
    url: &str,
    body: &str,
    expected: usize,
    direction: Direction,
) -> Result<Vec<Result<NodeSpec, Error>>, Error> {
    let reader = NodeAnswerReader::new(direction).with_max_specs(expected);
    let mut deserializer = serde_json::Deserializer::from_str(body);
    let mut track = serde_path_to_error::Track::new();
    let answer = reader.read_from(serde_path_to_error::Deserializer::new(
        &mut deserializer,
        &mut track,
    ));
    let answer = match answer {
        Ok(answer) => answer,
        Err(NodeAnswerError::TooManySpecs { max }) => {
            return Err(Error::TooManySpecs {
                url: url.to_owned(),
                max,
            });
        }
        Err(NodeAnswerError::Syntax(e)) => {
            return Err(Error::MalformedJson {
                url: url.to_owned(),
                path: track.path().to_string(),
                message: e.to_string(),
            });
        }
        Err(_) => {
            return Err(Error::MalformedJson {
                url: url.to_owned(),
                path: ".".into(),
                message: "unreadable answer".into(),
            });
        }
    };
    deserializer.end().map_err(|e| Error::MalformedJson {
        url: url.to_owned(),
        path: ".".into(),
        message: e.to_string(),
    })?;
    let results = answer.into_specs().map_err(|e| match e {
        SpecError::Node(node) => Error::Node(node),
        other => malformed(url, &other),
    })?;
    if results.len() != expected {
        return Err(Error::MalformedJson {
            url: url.to_owned(),
            path: "transfer_specs".into(),
            message: format!(
                "{} element{} for {expected} transfer request{}",
                results.len(),
                if results.len() == 1 { "" } else { "s" },
                if expected == 1 { "" } else { "s" },
            ),
        });
    }
    Ok(results
        .into_iter()
        .enumerate()
        .map(|(index, result)| match result {
            Ok(spec) => Ok(spec),
            Err(SpecError::Node(node)) => Err(Error::Node(node)),
            Err(e) => Err(element_error(url, index, e)),
        })
        .collect())
}

/// An error about the answer's shape (`transfer_specs` missing, not an array, ...).
fn malformed(url: &str, e: &SpecError) -> Error {
    Error::MalformedJson {
        url: url.to_owned(),
        path: e.key().unwrap_or(".").to_owned(),
        message: match e {
            SpecError::Json { message, .. } => message.clone(),
            SpecError::Missing { reason, .. } => format!("missing ({reason})"),
            // The reader shows the kind of a misplaced value, never the value.
            SpecError::WrongType {
                value, expected, ..
            } => format!("{value} where {expected} belongs"),
            other => other.to_string(),
        },
    }
}

/// An error about element `index`: its shape, or a value inside its spec.
fn element_error(url: &str, index: usize, e: SpecError) -> Error {
    match e.key() {
        Some(key) if key.starts_with("transfer_specs") => malformed(url, &e),
        Some(key) => Error::InvalidSpec {
            url: url.to_owned(),
            path: format!("transfer_specs[{index}].transfer_spec.{key}"),
            source: Box::new(e),
        },
        None => Error::InvalidSpec {
            url: url.to_owned(),
            path: format!("transfer_specs[{index}].transfer_spec"),
            source: Box::new(e),
        },
    }
}

/// The message an error body carries, and its node error object if it has one.
///
/// Understood: node errors (`{"error": {"code", "reason", "user_message"}}`), IAM errors
/// (`errorMessage`), OAuth errors (`error_description`), `{"message": ..}`, S3 XML errors
/// (`<Message>`); anything else is shown as its first few hundred characters.
pub(crate) fn body_message(body: &str, status: StatusCode) -> (String, Option<Box<NodeError>>) {
    let fallback = || status.canonical_reason().unwrap_or("no message").to_owned();
    let trimmed = body.trim();
    if trimmed.is_empty() {
        return (fallback(), None);
    }
    if let Ok(value) = serde_json::from_str::<Value>(trimmed) {
        if let Some(error @ Value::Object(_)) = value.get("error") {
            let node = NodeError::from_json_value(error);
            let message = node
                .user_message
                .clone()
                .or_else(|| node.reason.clone())
                .or_else(|| node.internal_message.clone())
                .unwrap_or_else(fallback);
            return (message, Some(Box::new(node)));
        }
        for key in ["errorMessage", "error_description", "message", "error"] {
            if let Some(Value::String(text)) = value.get(key) {
                return (shorten(text), None);
            }
        }
        return (shorten(trimmed), None);
    }
    if trimmed.starts_with('<') {
        if let Some(message) = crate::xml::first_text(trimmed, "Message") {
            return (shorten(&message), None);
        }
    }
    (shorten(trimmed), None)
}

/// The text on one line, at most [`MAX_MESSAGE`] characters.
fn shorten(text: &str) -> String {
    let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match one_line.char_indices().nth(MAX_MESSAGE) {
        Some((at, _)) => format!("{}...", &one_line[..at]),
        None => one_line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const URL: &str = "http://node/files/upload_setup";

    #[test]
    fn one_result_per_element() {
        let body = r#"{"transfer_specs": [
            {"transfer_spec": {"remote_host": "h", "token": "ATM3_secret", "paths": [{"destination": "/"}]}},
            {"error": {"code": 404, "reason": "Not found", "user_message": "No such folder"}},
            {"transfer_spec": {"error": {"code": 403, "reason": "Forbidden", "user_message": "Denied"}, "remote_host": "h"}},
            {"transfer_spec": {"rate_policy": "turbo"}},
            {"transfer_spec": 7}
        ]}"#;
        let results = setup_results(URL, body, 5, Direction::Send).unwrap();
        assert_eq!(
            results[0].as_ref().unwrap().spec.remote_host.as_deref(),
            Some("h")
        );
        match &results[1] {
            Err(Error::Node(node)) => assert_eq!(node.code, Some(404)),
            other => panic!("{other:?}"),
        }
        match &results[2] {
            Err(Error::Node(node)) => {
                assert_eq!(node.code, Some(403));
                assert_eq!(node.user_message.as_deref(), Some("Denied"));
            }
            other => panic!("{other:?}"),
        }
        match &results[3] {
            Err(Error::InvalidSpec { path, .. }) => {
                assert_eq!(path, "transfer_specs[3].transfer_spec.rate_policy");
            }
            other => panic!("{other:?}"),
        }
        match &results[4] {
            Err(Error::MalformedJson { path, message, .. }) => {
                assert_eq!(path, "transfer_specs[4].transfer_spec");
                assert_eq!(message, "a number where an object belongs");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn whole_answer_errors() {
        let err = setup_results(
            URL,
            r#"{"error": {"code": 401, "reason": "Unauthorized"}}"#,
            1,
            Direction::Send,
        )
        .unwrap_err();
        assert!(
            matches!(err, Error::Node(ref n) if n.code == Some(401)),
            "{err:?}"
        );
        let err = setup_results(URL, r#"{"transfer_specs": {}}"#, 1, Direction::Send).unwrap_err();
        assert!(
            matches!(err, Error::MalformedJson { ref path, .. } if path == "transfer_specs"),
            "{err:?}"
        );
        let err = setup_results(URL, r#"{"specs": []}"#, 1, Direction::Send).unwrap_err();
        assert!(
            matches!(err, Error::MalformedJson { ref path, .. } if path == "transfer_specs"),
            "{err:?}"
        );
        let err = setup_results(URL, r#"{"transfer_specs": []}"#, 2, Direction::Send).unwrap_err();
        assert_eq!(
            err.to_string(),
            "malformed JSON from http://node/files/upload_setup at transfer_specs: \
             0 elements for 2 transfer requests"
        );
        let err = setup_results(URL, r#"[1, 2]"#, 1, Direction::Send).unwrap_err();
        assert!(matches!(err, Error::MalformedJson { .. }), "{err:?}");
        // More elements than requests: refused at the second element, never read (here it is
        // not even JSON).
        let err = setup_results(
            URL,
            r#"{"transfer_specs": [{"transfer_spec": {}}, {"transfer_spec": {"#,
            1,
            Direction::Send,
        )
        .unwrap_err();
        assert!(matches!(err, Error::TooManySpecs { max: 1, .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            "answer from http://node/files/upload_setup holds more than 1 transfer spec \
             (one per request sent): refused"
        );
    }

    #[test]
    fn syntax_errors_have_a_path() {
        let body =
            r#"{"transfer_specs": [{"transfer_spec": {"remote_host": "h", "ssh_port": 33001,"#;
        match setup_results(URL, body, 1, Direction::Send).unwrap_err() {
            Error::MalformedJson { path, message, .. } => {
                assert!(
                    path.starts_with("transfer_specs[0].transfer_spec"),
                    "{path}"
                );
                assert!(message.contains("EOF"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        match setup_results(URL, "{} x", 1, Direction::Send).unwrap_err() {
            Error::MalformedJson { path, message, .. } => {
                assert_eq!(path, ".");
                assert!(message.contains("trailing"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn error_body_messages() {
        let status = StatusCode::UNAUTHORIZED;
        let (message, node) = body_message(
            r#"{"error": {"code": 401, "reason": "Unauthorized", "user_message": "Bad password"}}"#,
            status,
        );
        assert_eq!(message, "Bad password");
        assert_eq!(node.unwrap().code, Some(401));
        let (message, node) = body_message(
            r#"{"errorCode": "BXNIM0415E", "errorMessage": "Provided API key could not be found"}"#,
            StatusCode::BAD_REQUEST,
        );
        assert_eq!(message, "Provided API key could not be found");
        assert!(node.is_none());
        let (message, _) = body_message(
            "<?xml version=\"1.0\"?><Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>",
            StatusCode::FORBIDDEN,
        );
        assert_eq!(message, "Access Denied");
        let (message, _) = body_message("", StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(message, "Service Unavailable");
        let (message, _) = body_message(&"x".repeat(1000), StatusCode::BAD_GATEWAY);
        assert_eq!(message.len(), MAX_MESSAGE + 3);
        let (message, _) = body_message(
            "<html>\n  <body>oops</body>\n</html>",
            StatusCode::BAD_GATEWAY,
        );
        assert_eq!(message, "<html> <body>oops</body> </html>");
    }
}
