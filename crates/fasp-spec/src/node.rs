//! Node API answers: `{"transfer_specs": [{"transfer_spec": {...}} | {"error": {...}}, ...]}`.

use serde_json::Value;

use crate::error::{NodeError, SpecError};
use crate::spec::{TransferSpec, is_node_error};

/// One result per element of `transfer_specs`; the outer error for an answer that is not of
/// that shape (or is a node error as a whole).
pub(crate) fn specs_from_answer(
    answer: Value,
) -> Result<Vec<Result<TransferSpec, SpecError>>, SpecError> {
    let Value::Object(mut answer) = answer else {
        return Err(SpecError::Json {
            line: 0,
            column: 0,
            message: "expected a JSON object (a node answer with \"transfer_specs\")".into(),
        });
    };
    let elements = match answer.shift_remove("transfer_specs") {
        Some(Value::Array(elements)) => elements,
        Some(other) => {
            return Err(SpecError::WrongType {
                key: "transfer_specs".into(),
                value: other.to_string(),
                expected: "an array",
            });
        }
        None if is_node_error(&answer) => {
            return Err(SpecError::Node(NodeError::from_json_value(
                &answer["error"],
            )));
        }
        None => {
            return Err(SpecError::Missing {
                key: "transfer_specs".into(),
                reason: "a node answer lists its transfer specs there",
            });
        }
    };
    Ok(elements
        .into_iter()
        .enumerate()
        .map(|(i, element)| read_element(i, element))
        .collect())
}

fn read_element(index: usize, element: Value) -> Result<TransferSpec, SpecError> {
    let Value::Object(mut element) = element else {
        return Err(SpecError::WrongType {
            key: format!("transfer_specs[{index}]"),
            value: element.to_string(),
            expected: "an object holding \"transfer_spec\" or \"error\"",
        });
    };
    // An error wins over a spec: a node that reports an error did not authorise anything.
    if is_node_error(&element) {
        return Err(SpecError::Node(NodeError::from_json_value(
            &element["error"],
        )));
    }
    match element.shift_remove("transfer_spec") {
        Some(spec @ Value::Object(_)) => TransferSpec::from_json_value(spec),
        Some(other) => Err(SpecError::WrongType {
            key: format!("transfer_specs[{index}].transfer_spec"),
            value: other.to_string(),
            expected: "an object",
        }),
        None => Err(SpecError::Missing {
            key: format!("transfer_specs[{index}].transfer_spec"),
            reason: "each element holds a transfer spec or an error",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn elements_in_order_with_errors_inside() {
        let answer = json!({"transfer_specs": [
            {"transfer_spec": {"remote_host": "a"}},
            {"error": {"code": 404, "reason": "Not found", "user_message": "Path does not exist"}},
            {"transfer_spec": {"rate_policy": "turbo"}},
            7,
            {}
        ]});
        let results = specs_from_answer(answer).unwrap();
        assert_eq!(results.len(), 5);
        assert_eq!(
            results[0].as_ref().unwrap().remote_host.as_deref(),
            Some("a")
        );
        match &results[1] {
            Err(SpecError::Node(node)) => {
                assert_eq!(node.code, Some(404));
                assert_eq!(node.user_message.as_deref(), Some("Path does not exist"));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(results[2].as_ref().unwrap_err().key(), Some("rate_policy"));
        assert_eq!(
            results[3].as_ref().unwrap_err().key(),
            Some("transfer_specs[3]")
        );
        assert_eq!(
            results[4].as_ref().unwrap_err().key(),
            Some("transfer_specs[4].transfer_spec")
        );
    }

    #[test]
    fn whole_answer_errors() {
        let err = specs_from_answer(json!({"error": {"code": 401, "reason": "Unauthorized"}}))
            .unwrap_err();
        assert!(matches!(err, SpecError::Node(_)));
        assert_eq!(err.to_string(), "node error 401: Unauthorized");
        let err = specs_from_answer(json!({"specs": []})).unwrap_err();
        assert_eq!(err.key(), Some("transfer_specs"));
        let err = specs_from_answer(json!({"transfer_specs": {}})).unwrap_err();
        assert!(matches!(err, SpecError::WrongType { .. }));
    }
}
