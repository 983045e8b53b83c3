//! Node answers: the seed's example, errors inside, odd shapes.

use fasp_spec::{
    Cipher, Direction, HttpFallback, RatePolicy, RenderOptions, SpecError, TransferPath,
    TransferSpec,
};

use crate::common::args;

/// The `upload_setup` answer of the seed article (eudemo.asperademo.com), as proper JSON.
const SEED_ANSWER: &str = r#"{
  "transfer_specs" : [ {
    "transfer_spec" : {
      "paths" : [ { "destination" : "/" } ],
      "source_root" : "",
      "destination_root" : "/",
      "token" : "ATM3_ACsGh7NRzGA2-ANT6j6mT3O4UYw48JKSstgxg2y8PunjPYAAEc-5aMrqwWI9XCbMaE2Kxk_3MTA",
      "direction" : "send",
      "cipher" : "aes-128",
      "rate_policy_allowed" : "fixed",
      "rate_policy" : "fair",
      "target_rate_kbps" : 50000,
      "min_rate_kbps" : 0,
      "remote_host" : "eudemo.asperademo.com",
      "remote_user" : "xfer",
      "ssh_port" : 33001,
      "fasp_port" : 33001,
      "http_fallback" : true,
      "http_fallback_port" : 8443
    }
  } ]
}"#;

const TOKEN: &str =
    "ATM3_ACsGh7NRzGA2-ANT6j6mT3O4UYw48JKSstgxg2y8PunjPYAAEc-5aMrqwWI9XCbMaE2Kxk_3MTA";

#[test]
fn seed_answer_is_read() {
    let mut results = TransferSpec::from_node_response(SEED_ANSWER).unwrap();
    assert_eq!(results.len(), 1);
    let spec = results.remove(0).unwrap();
    assert_eq!(spec.paths, [TransferPath::destination_only("/")]);
    assert_eq!(spec.source_root.as_deref(), Some(""));
    assert_eq!(spec.destination_root.as_deref(), Some("/"));
    assert_eq!(spec.token.as_ref().unwrap().expose(), TOKEN);
    assert_eq!(spec.direction, Some(Direction::Send));
    assert_eq!(spec.cipher, Some(Cipher::Aes128));
    assert_eq!(spec.rate_policy_allowed, Some(RatePolicy::Fixed));
    assert_eq!(spec.rate_policy, Some(RatePolicy::Fair));
    assert_eq!(
        (spec.target_rate_kbps, spec.min_rate_kbps),
        (Some(50000), Some(0))
    );
    assert_eq!(spec.remote_host.as_deref(), Some("eudemo.asperademo.com"));
    assert_eq!(spec.remote_user.as_deref(), Some("xfer"));
    assert_eq!((spec.ssh_port, spec.fasp_port), (Some(33001), Some(33001)));
    assert_eq!(spec.http_fallback, Some(HttpFallback::Enabled));
    assert_eq!(spec.http_fallback_port, Some(8443));
    assert!(spec.unknown_keys().is_empty());
    assert!(!format!("{spec:?}").contains("ATM3"));
}

#[test]
fn seed_answer_needs_sources_then_renders() {
    let mut spec = TransferSpec::from_document(SEED_ANSWER).unwrap();
    // As the node returns it, the paths name only the destination: not ready for ascp.
    let err = spec.validate().unwrap_err();
    assert_eq!(err.key(), Some("paths[0].source"));
    assert!(matches!(err, SpecError::Missing { .. }));
    // The client puts its sources in; the destination folder stays destination_root.
    spec.paths = vec![TransferPath::new("Documents/Samples/200KB.1")];
    let command = spec.render(&RenderOptions::new()).unwrap();
    assert_eq!(
        args(&command),
        [
            "--mode=send",
            "--user=xfer",
            "--host=eudemo.asperademo.com",
            "-P",
            "33001",
            "-O",
            "33001",
            "-c",
            "aes128",
            "--policy=fair",
            "-l",
            "50000",
            "-m",
            "0",
            "-y",
            "1",
            "-t",
            "8443",
            "--",
            "Documents/Samples/200KB.1",
            "/",
        ]
    );
    assert_eq!(command.env["ASPERA_SCP_TOKEN"].expose(), TOKEN);
    assert!(
        command
            .args
            .iter()
            .all(|a| !a.to_string_lossy().contains("ATM3"))
    );
}

#[test]
fn errors_inside_the_answer_are_typed() {
    let answer = r#"{"transfer_specs": [
        {"transfer_spec": {"remote_host": "a", "ssh_port": "33001"}},
        {"error": {"code": 409, "reason": "Conflict", "user_message": "File already exists"}},
        {"transfer_spec": {"remote_host": "b"}, "error": {"code": "500", "reason": "Internal"}},
        {"transfer_spec": {"fasp_port": -1}}
    ]}"#;
    let results = TransferSpec::from_node_response(answer).unwrap();
    assert_eq!(results.len(), 4);
    assert_eq!(results[0].as_ref().unwrap().ssh_port, Some(33001));
    match &results[1] {
        Err(SpecError::Node(node)) => {
            assert_eq!(node.code, Some(409));
            assert_eq!(node.reason.as_deref(), Some("Conflict"));
            assert_eq!(node.user_message.as_deref(), Some("File already exists"));
        }
        other => panic!("expected a node error, got {other:?}"),
    }
    // An element with both: the error wins, no spec comes out of it.
    match &results[2] {
        Err(SpecError::Node(node)) => assert_eq!(node.code, Some(500)),
        other => panic!("expected a node error, got {other:?}"),
    }
    let err = results[3].as_ref().unwrap_err();
    assert!(matches!(err, SpecError::Negative { .. }));
    assert_eq!((err.key(), err.value()), (Some("fasp_port"), Some("-1")));
}

#[test]
fn from_document_surfaces_a_node_error_first() {
    let err = TransferSpec::from_document(
        r#"{"transfer_specs": [{"error": {"code": 404, "reason": "Not found"}}]}"#,
    )
    .unwrap_err();
    assert_eq!(err.to_string(), "node error 404: Not found");
    let err = TransferSpec::from_document(
        r#"{"error": {"code": 401, "user_message": "Bad credentials"}}"#,
    )
    .unwrap_err();
    assert_eq!(err.to_string(), "node error 401: Bad credentials");
}

#[test]
fn malformed_answers() {
    let err = TransferSpec::from_node_response("{\"transfer_specs\": [").unwrap_err();
    assert!(matches!(err, SpecError::Json { line: 1, .. }), "{err}");
    let err = TransferSpec::from_node_response("[]").unwrap_err();
    assert!(matches!(err, SpecError::Json { .. }));
    let err = TransferSpec::from_node_response("{}").unwrap_err();
    assert_eq!(err.key(), Some("transfer_specs"));
}
