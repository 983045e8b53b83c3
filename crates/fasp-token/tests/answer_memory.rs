//! An 8 MB node answer of 50,000 specs, for one request, is refused at its second element:
//! the memory it costs is the body, not 50,000 parsed specs (which took 172 MB before the
//! bound). Alone in its test binary, so that the high-water mark is this test's.

use fasp_node_standin::{Answer, NODE_PASSWORD, NODE_USER, NodeStandin, StandinConfig};
use fasp_token::{Error, NodeClient, TransferRequest};

/// The process's peak resident set, in KiB (Linux only).
fn peak_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[tokio::test(flavor = "current_thread")]
async fn fifty_thousand_specs_cost_the_body_only() {
    let element = r#"{"transfer_spec": {"remote_host": "node.example.com", "remote_user": "xfer", "ssh_port": 33001, "token": "ATM3_AAAAAAAAAAAAA", "paths": [{"destination": "/incoming"}]}}"#;
    let answer = format!(
        r#"{{"transfer_specs": [{}]}}"#,
        vec![element; 50_000].join(",")
    );
    assert!(answer.len() > 8_000_000, "{}", answer.len());
    let config = StandinConfig {
        upload_answers: vec![Answer::json_body(&answer)],
        ..StandinConfig::default()
    };
    let node = NodeStandin::start(config).await.unwrap();
    let client = NodeClient::builder(node.base_url())
        .basic_auth(NODE_USER, NODE_PASSWORD)
        .max_body_bytes(16 * 1024 * 1024)
        .build()
        .unwrap();
    let before = peak_kib();
    let err = client
        .upload_setup_one(&TransferRequest::upload_to(["/"]))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::TooManySpecs { max: 1, .. }), "{err:?}");
    if let (Some(before), Some(after)) = (before, peak_kib()) {
        let grown_mib = (after.saturating_sub(before)) / 1024;
        eprintln!(
            "peak resident set grew by {grown_mib} MiB for an {} byte answer",
            answer.len()
        );
        // The body as sent by the stand-in and as read by the client, and their buffers.
        assert!(grown_mib < 48, "grew by {grown_mib} MiB");
    }
}
