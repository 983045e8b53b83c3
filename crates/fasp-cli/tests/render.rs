//! `fasp render`, run as a process: output shape, secrets, exit statuses.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Value, json};

const TOKEN: &str = "ATM3_Zq8xVv2kRt7NmW4pLs9dHc";
const COOKIE: &str = "cookie-Jk3Hy6Tb1Wq";

fn fasp_render(spec: &Path, workdir: Option<&Path>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_fasp"));
    command.arg("render").arg("--spec").arg(spec);
    if let Some(dir) = workdir {
        command.arg("--workdir").arg(dir);
    }
    command.output().expect("run fasp")
}

fn write_spec(dir: &Path, value: &Value) -> PathBuf {
    let path = dir.join("spec.json");
    std::fs::write(&path, serde_json::to_vec_pretty(value).unwrap()).unwrap();
    path
}

fn stdout_json(output: &Output) -> Value {
    assert!(
        output.status.success(),
        "exit {:?}, stderr: {}",
        output.status.code(),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("stdout is one JSON object")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn token_goes_to_the_environment_and_is_redacted() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write_spec(
        dir.path(),
        &json!({
            "direction": "send", "remote_host": "ats.example.com", "remote_user": "xfer",
            "ssh_port": "33001", "token": TOKEN, "cookie": COOKIE,
            "destination_root": "/incoming", "paths": [{"source": "report.pdf"}]
        }),
    );
    let output = fasp_render(&spec, None);
    let value = stdout_json(&output);
    assert_eq!(value["program"], "ascp");
    let args: Vec<&str> = value["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(
        args,
        [
            "--mode=send",
            "--user=xfer",
            "--host=ats.example.com",
            "-P",
            "33001",
            "--",
            "report.pdf",
            "/incoming",
        ]
    );
    for arg in &args {
        assert!(
            !arg.contains(TOKEN) && !arg.contains(COOKIE),
            "secret in {arg}"
        );
    }
    assert_eq!(
        value["env"],
        json!({"ASPERA_SCP_COOKIE": "<redacted>", "ASPERA_SCP_TOKEN": "<redacted>"})
    );
    assert_eq!(value["files"], json!([]));
    // Nowhere in the output, not even stderr.
    let everything = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        stderr(&output)
    );
    assert!(!everything.contains(TOKEN) && !everything.contains(COOKIE));
}

#[test]
fn invalid_value_exits_2_naming_key_and_value() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write_spec(
        dir.path(),
        &json!({"direction": "send", "remote_host": "h", "rate_policy": "turbo",
                "paths": [{"source": "a"}]}),
    );
    let output = fasp_render(&spec, None);
    assert_eq!(output.status.code(), Some(2));
    assert!(output.stdout.is_empty());
    let message = stderr(&output);
    assert!(
        message.contains(
            r#"key "rate_policy": unknown value "turbo" (expected one of fixed, high, fair, low)"#
        ),
        "{message}"
    );
}

#[test]
fn rule_violation_exits_2_naming_key_and_value() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write_spec(
        dir.path(),
        &json!({"direction": "send", "remote_host": "h", "target_rate_kbps": 1000,
                "min_rate_kbps": 5000, "paths": [{"source": "a"}]}),
    );
    let output = fasp_render(&spec, None);
    assert_eq!(output.status.code(), Some(2));
    let message = stderr(&output);
    assert!(
        message.contains(r#"key "min_rate_kbps": value "5000""#),
        "{message}"
    );
    assert!(message.contains("target_rate_kbps"), "{message}");
}

#[test]
fn secret_with_a_line_break_is_refused_without_showing_it() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write_spec(
        dir.path(),
        &json!({"direction": "send", "remote_host": "h", "token": format!("{TOKEN}\nX"),
                "paths": [{"source": "a"}]}),
    );
    let output = fasp_render(&spec, None);
    assert_eq!(output.status.code(), Some(2));
    let message = stderr(&output);
    assert!(
        message.contains(r#"key "token": value "<redacted>" contains a line feed"#),
        "{message}"
    );
    assert!(!message.contains(TOKEN));
}

#[test]
fn bad_json_exits_2_with_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("spec.json");
    std::fs::write(
        &spec,
        "{\n  \"remote_host\": \"h\",\n  \"ssh_port\": ,\n}\n",
    )
    .unwrap();
    let output = fasp_render(&spec, None);
    assert_eq!(output.status.code(), Some(2));
    let message = stderr(&output);
    assert!(
        message.contains("JSON error at line 3, column 15"),
        "{message}"
    );
}

#[test]
fn unreadable_file_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let output = fasp_render(&dir.path().join("missing.json"), None);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("cannot read"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn node_error_exits_2_with_the_node_message() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write_spec(
        dir.path(),
        &json!({"transfer_specs": [{"error": {"code": 403, "reason": "Forbidden",
                                               "user_message": "Access denied"}}]}),
    );
    let output = fasp_render(&spec, None);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("node error 403: Forbidden: Access denied"));
}

#[cfg(unix)]
fn mode_of(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn node_answer_with_a_file_pair_list_in_the_workdir() {
    let dir = tempfile::tempdir().unwrap();
    let workdir = dir.path().join("lists");
    let spec = write_spec(
        dir.path(),
        &json!({"transfer_specs": [
            {"transfer_spec": {
                "direction": "receive", "remote_host": "h", "destination_root": "/tmp/in",
                "paths": [{"source": "/r/a", "destination": "a"}, {"source": "/r/b", "destination": "x:b"}],
                "token": TOKEN, "x_unknown": 1
            }},
            {"transfer_spec": {"remote_host": "ignored"}}
        ]}),
    );
    let output = fasp_render(&spec, Some(&workdir));
    let value = stdout_json(&output);
    assert!(stderr(&output).contains("keys kept but not rendered: x_unknown"));
    let files = value["files"].as_array().unwrap();
    assert_eq!(files.len(), 1);
    let path = PathBuf::from(files[0]["path"].as_str().unwrap());
    assert_eq!(path.parent().unwrap(), workdir);
    assert_eq!(files[0]["kind"], "file-pair-list");
    assert_eq!(files[0]["lines"], json!(["/r/a", "a", "/r/b", "./x:b"]));
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "/r/a\na\n/r/b\n./x:b\n"
    );
    #[cfg(unix)]
    assert_eq!(mode_of(&path), 0o600);
    let args = value["args"].as_array().unwrap();
    let tail: Vec<&str> = args[args.len() - 3..]
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(
        tail,
        [
            format!("--file-pair-list={}", path.display()).as_str(),
            "--",
            "/tmp/in"
        ]
    );
    assert_eq!(value["env"], json!({"ASPERA_SCP_TOKEN": "<redacted>"}));
}

#[test]
fn without_workdir_lists_go_to_a_new_temp_folder() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write_spec(
        dir.path(),
        &json!({"direction": "send", "remote_host": "h",
                "paths": [{"source": "a"}, {"source": "b"}]}),
    );
    let output = fasp_render(&spec, None);
    let value = stdout_json(&output);
    let path = PathBuf::from(value["files"][0]["path"].as_str().unwrap());
    let folder = path.parent().unwrap().to_owned();
    let cleanup = scopeguard(folder.clone());
    assert!(
        folder.starts_with(std::env::temp_dir()),
        "{}",
        folder.display()
    );
    assert!(
        folder
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("fasp-render-")
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "a\nb\n");
    assert_eq!(value["files"][0]["kind"], "file-list");
    drop(cleanup);
}

/// Removes a folder when dropped (even if an assertion fails first).
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn scopeguard(path: PathBuf) -> RemoveOnDrop {
    RemoveOnDrop(path)
}
