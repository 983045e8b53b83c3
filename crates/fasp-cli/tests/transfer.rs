//! `fasp transfer` as a user runs it, against the real ascp (closed SSH port: the outcome is
//! code 44 after INIT and SESSION).

use std::io::Write;
use std::process::{Command, Stdio};

use fasp_testkit::require_real_ascp;
use serde_json::Value;

fn run(args: &[&str], stdin: &str) -> (Option<i32>, Vec<Value>, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_fasp"))
        .arg("transfer")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect();
    (
        out.status.code(),
        lines,
        stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn json_events_end_with_the_outcome_and_never_show_the_token() {
    let ascp = require_real_ascp!();
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("a.txt");
    std::fs::write(&src, "data").unwrap();
    let hold = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let c = std::net::TcpStream::connect(hold.local_addr().unwrap()).unwrap();
    let closed = c.local_addr().unwrap().port();
    let spec = serde_json::json!({
        "direction": "send", "remote_host": "127.0.0.1", "remote_user": "xfer", "ssh_port": closed,
        "token": "ATM3_cli_secret_token_123", "target_rate_kbps": 7000,
        "paths": [{"source": src.to_str().unwrap()}], "destination_root": "/tmp/in"
    });
    let spec_path = dir.path().join("spec.json");
    std::fs::write(&spec_path, spec.to_string()).unwrap();
    let (code, lines, stdout, stderr) = run(
        &[
            "--spec",
            spec_path.to_str().unwrap(),
            "--ascp",
            ascp.to_str().unwrap(),
            "--json",
        ],
        "",
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        !stdout.contains("ATM3_cli_secret_token_123")
            && !stderr.contains("ATM3_cli_secret_token_123")
    );
    let types: Vec<&str> = lines.iter().map(|l| l["type"].as_str().unwrap()).collect();
    for t in [
        "spawned",
        "connected",
        "session_init",
        "session_started",
        "session_failed",
    ] {
        assert!(types.contains(&t), "{t} missing in {types:?}");
    }
    let last = lines.last().unwrap();
    assert_eq!(last["type"], "outcome");
    assert_eq!(last["ok"], false);
    assert_eq!(last["code"], 44);
    assert_eq!(last["retryable"], true);
    let session = lines
        .iter()
        .find(|l| l["type"] == "session_started")
        .unwrap();
    assert_eq!(session["target_kbps"], 7000);
    assert!(
        session["session_id"]
            .as_str()
            .is_some_and(|s| s.len() == 36)
    );
    // Every session event names its session.
    assert!(
        lines
            .iter()
            .filter(|l| l["type"] == "session_failed")
            .all(|l| l["session_id"].is_string())
    );
}

#[test]
fn invalid_spec_exits_2_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let spec_path = dir.path().join("spec.json");
    std::fs::write(
        &spec_path,
        r#"{"direction":"send","remote_host":"h","rate_policy":"turbo","paths":[{"source":"a"}]}"#,
    )
    .unwrap();
    let (code, _, _, stderr) = run(&["--spec", spec_path.to_str().unwrap(), "--json"], "");
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains("rate_policy") && stderr.contains("turbo"),
        "{stderr}"
    );
}
