//! Helpers shared by the integration tests of `fasp` that run it against ascp-sim
//! (`tests/sim_end_to_end.rs`, `tests/stalled_stdout.rs`), and the JSON contract every
//! `--json` line they read is checked against (`docs/fasp-json.schema.json`).
//!
//! Each test file is a crate of its own that includes this module with `mod support;` and
//! uses only part of it: what one of them leaves unused is used by another, not dead.
#![allow(dead_code)]

#[cfg(feature = "jobs")]
pub(crate) mod serve;

use std::sync::OnceLock;

use serde_json::Value;

/// ascp-sim (`FASP_SIM`, or next to the test binary, where `cargo test --workspace` builds
/// it). Missing, it is a skip with a notice, or a failure with `CI=true`.
pub(crate) use fasp_testkit::sim::sim_path;

/// The documented schema of `--json` lines (included at build time: editing it rebuilds the
/// tests).
pub(crate) const SCHEMA_TEXT: &str = include_str!("../../../../docs/fasp-json.schema.json");

/// The schema as JSON.
pub(crate) fn schema_value() -> &'static Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        serde_json::from_str(SCHEMA_TEXT)
            .unwrap_or_else(|e| panic!("docs/fasp-json.schema.json is not JSON: {e}"))
    })
}

/// A validator of one `$defs` entry of the schema, or of the whole schema for `None`.
fn compile(def: Option<&str>) -> jsonschema::Validator {
    let full = schema_value();
    let schema = match def {
        None => full.clone(),
        Some(name) => {
            assert!(
                full["$defs"].get(name).is_some(),
                "docs/fasp-json.schema.json has no $defs/{name}"
            );
            serde_json::json!({
                "$schema": full["$schema"],
                "$defs": full["$defs"],
                "$ref": format!("#/$defs/{name}"),
            })
        }
    };
    jsonschema::draft202012::new(&schema)
        .unwrap_or_else(|e| panic!("docs/fasp-json.schema.json does not compile: {e}"))
}

/// The validator of stdout lines, compiled once per test binary.
fn line_validator() -> &'static jsonschema::Validator {
    static VALIDATOR: OnceLock<jsonschema::Validator> = OnceLock::new();
    VALIDATOR.get_or_init(|| compile(None))
}

/// The validator of stdin control lines (`$defs/control_line`), compiled once.
fn control_validator() -> &'static jsonschema::Validator {
    static VALIDATOR: OnceLock<jsonschema::Validator> = OnceLock::new();
    VALIDATOR.get_or_init(|| compile(Some("control_line")))
}

/// Every schema error of `value`, one per line, or `None` when it is valid.
fn errors(validator: &jsonschema::Validator, value: &Value) -> Option<String> {
    let found: Vec<String> = validator
        .iter_errors(value)
        .map(|e| format!("  at {:?}: {e}", e.instance_path().as_str()))
        .collect();
    (!found.is_empty()).then(|| found.join("\n"))
}

/// One line of `fasp ... --json` stdout, parsed and checked against the contract: JSON,
/// `type` its first key, valid against docs/fasp-json.schema.json. Panics with the line and
/// what is wrong otherwise.
pub(crate) fn json_line(line: &str) -> Value {
    let value: Value =
        serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
    let first = value.as_object().and_then(|o| o.keys().next());
    assert_eq!(
        first.map(String::as_str),
        Some("type"),
        "`type` is not the first key of this --json line: {line}"
    );
    if let Some(found) = errors(line_validator(), &value) {
        panic!("this --json line breaks docs/fasp-json.schema.json:\n{line}\n{found}");
    }
    value
}

/// `fasp --json` output: one JSON value a line, each checked by [`json_line`].
pub(crate) fn json_lines(text: &str) -> Vec<Value> {
    text.lines().map(json_line).collect()
}

/// Whether `value` is a valid `--json` stdout line; the schema's errors otherwise (for tests
/// of the schema itself).
pub(crate) fn line_errors(value: &Value) -> Option<String> {
    errors(line_validator(), value)
}

/// Whether `value` is a valid stdin control line; the schema's errors otherwise.
pub(crate) fn control_errors(value: &Value) -> Option<String> {
    errors(control_validator(), value)
}
