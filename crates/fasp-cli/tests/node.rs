//! `fasp node upload-setup|download-setup`, run as a process against the node API stand-in:
//! output, redaction, exit statuses.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use fasp_node_standin::{
    ACCESS_KEY, Answer, BEARER_TOKEN, NODE_PASSWORD, NODE_USER, NodeStandin, StandinConfig,
};
use serde_json::{Value, json};

/// A stand-in served by its own runtime, alive as long as this value.
struct Node {
    standin: NodeStandin,
    _runtime: tokio::runtime::Runtime,
}

impl Node {
    fn start(change: impl FnOnce(&mut StandinConfig)) -> Node {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let mut config = StandinConfig::default();
        change(&mut config);
        let standin = runtime.block_on(NodeStandin::start(config)).unwrap();
        Node {
            standin,
            _runtime: runtime,
        }
    }

    fn url(&self) -> &str {
        self.standin.base_url()
    }
}

/// Runs `fasp` with the words of `line` as arguments.
fn fasp(line: &str, password: Option<&str>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_fasp"));
    command
        .args(line.split_whitespace())
        .env_remove("FASP_NODE_PASSWORD");
    if let Some(password) = password {
        command.env("FASP_NODE_PASSWORD", password);
    }
    command.output().expect("run fasp")
}

fn stdout_json(output: &Output) -> Value {
    assert!(
        output.status.success(),
        "exit {:?}, stderr: {}",
        output.status.code(),
        stderr(output)
    );
    serde_json::from_slice(&output.stdout).expect("stdout is one JSON object")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn all_output(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        stderr(output)
    )
}

#[test]
fn upload_setup_prints_the_spec_with_the_token_redacted() {
    let node = Node::start(|_| {});
    let output = fasp(
        &format!(
            "node upload-setup --url {url} --user {NODE_USER} --path /incoming",
            url = node.url()
        ),
        Some(NODE_PASSWORD),
    );
    let spec = stdout_json(&output);
    assert_eq!(spec["token"], "<redacted>");
    assert_eq!(spec["direction"], "send");
    assert_eq!(spec["remote_host"], "127.0.0.1");
    assert_eq!(spec["remote_user"], "xfer");
    assert_eq!(spec["ssh_port"], 33001);
    assert_eq!(spec["paths"], json!([{"destination": "/incoming"}]));

    let tokens = node.standin.issued_tokens();
    assert_eq!(tokens.len(), 1);
    let text = all_output(&output);
    assert!(!text.contains(&tokens[0]), "{text}");
    assert!(!text.contains(NODE_PASSWORD), "{text}");

    let request = &node.standin.requests()[0];
    assert_eq!(request.path, "/files/upload_setup");
    assert!(
        request
            .header("authorization")
            .unwrap()
            .starts_with("Basic ")
    );
}

#[test]
fn show_secrets_prints_the_token() {
    let node = Node::start(|_| {});
    let output = fasp(
        &format!(
            "node upload-setup --url {url} --user {NODE_USER} --password {NODE_PASSWORD} --path / --show-secrets",
            url = node.url()
        ),
        None,
    );
    let spec = stdout_json(&output);
    assert_eq!(spec["token"], node.standin.issued_tokens()[0].as_str());
}

#[test]
fn download_setup_with_bearer_and_several_paths() {
    let node = Node::start(|_| {});
    let output = fasp(
        &format!(
            "node download-setup --url {url} --bearer {BEARER_TOKEN} --access-key {ACCESS_KEY} --path /out/a.bin --path /out/b.bin",
            url = node.url()
        ),
        None,
    );
    let spec = stdout_json(&output);
    assert_eq!(spec["direction"], "receive");
    assert_eq!(
        spec["paths"],
        json!([{"source": "/out/a.bin"}, {"source": "/out/b.bin"}])
    );
    assert!(!all_output(&output).contains(BEARER_TOKEN));
    let request = &node.standin.requests()[0];
    assert_eq!(request.path, "/files/download_setup");
    assert_eq!(request.header("x-aspera-accesskey"), Some(ACCESS_KEY));
    // One transfer request holding both paths.
    assert_eq!(
        request.json().unwrap()["transfer_requests"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn a_node_error_exits_1_naming_code_and_message() {
    let node = Node::start(|c| {
        c.download_answers = vec![Answer::node_error(
            404,
            "Not found",
            "Path does not exist: /missing",
        )];
    });
    let output = fasp(
        &format!(
            "node download-setup --url {url} --user {NODE_USER} --path /missing",
            url = node.url()
        ),
        Some(NODE_PASSWORD),
    );
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(output.stdout.is_empty());
    // The stand-in speaks plain HTTP: a warning first, then the error.
    let text = stderr(&output);
    assert!(
        text.starts_with("fasp node download-setup: warning: http://"),
        "{text}"
    );
    assert!(
        text.ends_with(
            "fasp node download-setup: node error 404: Not found: Path does not exist: /missing\n"
        ),
        "{text}"
    );
}

#[test]
fn http_and_answer_failures_exit_1() {
    let node = Node::start(|_| {});
    // Wrong password: 401, the node's message, the password not repeated.
    let output = fasp(
        &format!(
            "node upload-setup --url {url} --user {NODE_USER} --path /",
            url = node.url()
        ),
        Some("wrong-Pz4Kq"),
    );
    assert_eq!(output.status.code(), Some(1));
    let text = stderr(&output);
    assert!(
        text.ends_with("HTTP 401 Unauthorized: Invalid credentials\n"),
        "{text}"
    );
    assert!(!text.contains("wrong-Pz4Kq"));

    // Truncated JSON: the path of the bad element.
    node.standin.reconfigure(|c| {
        c.upload_answers = vec![Answer::json_body(
            r#"{"transfer_specs": [{"transfer_spec": "#,
        )];
    });
    let output = fasp(
        &format!(
            "node upload-setup --url {url} --user {NODE_USER} --path /",
            url = node.url()
        ),
        Some(NODE_PASSWORD),
    );
    assert_eq!(output.status.code(), Some(1));
    let text = stderr(&output);
    assert!(
        text.contains("malformed JSON from") && text.contains("at transfer_specs[0].transfer_spec"),
        "{text}"
    );
}

#[test]
fn timeout_is_honoured() {
    let node = Node::start(|c| c.upload_answers = vec![Answer::Slow(Duration::from_secs(5))]);
    let started = Instant::now();
    let output = fasp(
        &format!(
            "node upload-setup --url {url} --user {NODE_USER} --path / --timeout 0.3",
            url = node.url()
        ),
        Some(NODE_PASSWORD),
    );
    assert!(started.elapsed() < Duration::from_secs(4));
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).ends_with("within 300 ms (timeout)\n"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn usage_errors_exit_2_without_asking_the_node() {
    let node = Node::start(|_| {});
    // No password anywhere.
    let output = fasp(
        &format!(
            "node upload-setup --url {url} --user {NODE_USER} --path /",
            url = node.url()
        ),
        None,
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("FASP_NODE_PASSWORD"),
        "{}",
        stderr(&output)
    );
    // No authentication at all, --bearer without --access-key, no --path, a bad timeout.
    let url = node.url();
    for line in [
        format!("node upload-setup --url {url} --path /"),
        format!("node upload-setup --url {url} --bearer t --path /"),
        format!("node upload-setup --url {url} --user {NODE_USER}"),
        format!("node upload-setup --url {url} --user {NODE_USER} --path / --timeout 0"),
    ] {
        let output = fasp(&line, Some(NODE_PASSWORD));
        assert_eq!(output.status.code(), Some(2), "{line}: {}", stderr(&output));
    }
    // A URL that is not one.
    let output = fasp(
        &format!("node upload-setup --url node:9092 --user {NODE_USER} --path /"),
        Some(NODE_PASSWORD),
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("invalid URL"),
        "{}",
        stderr(&output)
    );
    assert!(node.standin.requests().is_empty());
}
