//! `fasp decode` as a user runs it: the binary on the real captures and on damaged input.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

fn fixtures() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fasp-mgmt-proto/tests/fixtures/real-ascp")
}

fn fasp_decode(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_fasp"))
        .arg("decode")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

fn lines(out: &Output) -> Vec<Value> {
    String::from_utf8(out.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

#[test]
fn every_capture_decodes_to_its_frames() {
    let mut seen = 0;
    for entry in std::fs::read_dir(fixtures()).unwrap() {
        let path = entry.unwrap().path();
        let out = fasp_decode(&[path.to_str().unwrap()], b"");
        assert!(
            out.status.success(),
            "{}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.stderr.is_empty());
        let frames = lines(&out);
        let types: Vec<&str> = frames.iter().map(|f| f["type"].as_str().unwrap()).collect();
        assert_eq!(types, ["INIT", "SESSION", "ERROR"], "{}", path.display());
        // Fields in wire order, exactly as in the capture.
        let text = std::fs::read_to_string(&path).unwrap();
        let want: Vec<(String, String)> = text
            .split("\n\n")
            .next()
            .unwrap()
            .lines()
            .skip(1)
            .map(|l| l.split_once(": ").unwrap())
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let got: Vec<(String, String)> = frames[0]["fields"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
            .collect();
        assert_eq!(got, want);
        seen += 1;
    }
    assert_eq!(seen, 9);
}

#[test]
fn codes_and_values_come_through() {
    let path = fixtures().join("tags-two-sources.faspmgr");
    let out = fasp_decode(&[path.to_str().unwrap()], b"");
    let f = lines(&out);
    assert_eq!(
        f[1]["fields"]["Source"],
        "/srv/outbox/report.txt\t/srv/outbox/big.bin"
    );
    assert_eq!(f[1]["fields"]["RateCap"], "4503599627370495");
    assert_eq!(f[2]["fields"]["Code"], "38");
    // Stdin works the same, with `-` or nothing.
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(lines(&fasp_decode(&["-"], &bytes)), f);
    assert_eq!(lines(&fasp_decode(&[], &bytes)), f);
}

#[test]
fn secrets_are_redacted_unless_asked() {
    let input = b"FASPMGR 2\nType: SESSION\nToken: ATM3_secret_token\nCookie: my cookie: with colon\nUser: xfer\n\n";
    let out = fasp_decode(&[], input);
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !stdout.contains("ATM3_secret_token") && !stdout.contains("with colon"),
        "{stdout}"
    );
    let f = lines(&out);
    assert_eq!(f[0]["fields"]["Token"], "<redacted>");
    assert_eq!(f[0]["fields"]["Cookie"], "<redacted>");
    assert_eq!(f[0]["fields"]["User"], "xfer");
    let f = lines(&fasp_decode(&["--show-secrets"], input));
    assert_eq!(f[0]["fields"]["Token"], "ATM3_secret_token");
    assert_eq!(f[0]["fields"]["Cookie"], "my cookie: with colon");
}

#[test]
fn garbage_is_reported_with_offsets_and_decoding_goes_on() {
    let good = "FASPMGR 2\nType: INIT\nSessionId: s1\n\n";
    let garbage: &[u8] = b"\x00\x01\xfe binary garbage\n";
    let bad_line = "FASPMGR 2\nType: STATS\nno separator here\n\n";
    let mut input = Vec::new();
    input.extend_from_slice(garbage);
    input.extend_from_slice(good.as_bytes());
    input.extend_from_slice(bad_line.as_bytes());
    input.extend_from_slice(good.as_bytes());
    input.extend_from_slice(b"FASPMGR 7\n\n");
    input.extend_from_slice(good.as_bytes());
    input.extend_from_slice(b"FASPMGR 2\nType: DONE\n"); // truncated
    let out = fasp_decode(&[], &input);
    assert_eq!(out.status.code(), Some(1));
    let f = lines(&out);
    assert_eq!(f.len(), 3);
    assert!(f.iter().all(|f| f["type"] == "INIT"));
    let stderr = String::from_utf8(out.stderr).unwrap();
    let errs: Vec<&str> = stderr.lines().collect();
    let (z, g, b) = (garbage.len(), good.len(), bad_line.len());
    assert_eq!(errs.len(), 4, "{stderr}");
    assert!(
        errs[0].contains("at byte 0:") && errs[0].contains("FASPMGR 2"),
        "{}",
        errs[0]
    );
    let at = z + g + 22;
    assert!(
        errs[1].contains(&format!("at byte {at}:")) && errs[1].contains("separator"),
        "{}",
        errs[1]
    );
    let at = z + g + b + g;
    assert!(
        errs[2].contains(&format!("at byte {at}:")) && errs[2].contains("FASPMGR 7"),
        "{}",
        errs[2]
    );
    let at = z + 3 * g + b + 11;
    assert!(
        errs[3].contains(&format!("at byte {at}:")) && errs[3].contains("ended inside a frame"),
        "{}",
        errs[3]
    );
}

#[test]
fn clean_empty_input_exits_zero_and_missing_file_is_an_error() {
    let out = fasp_decode(&[], b"");
    assert!(out.status.success() && out.stdout.is_empty());
    let out = fasp_decode(&["/nonexistent/capture"], b"");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/capture"));
}

#[test]
fn a_folder_is_named_in_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_fasp"))
        .arg("decode")
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("fasp decode: cannot read ")
            && stderr.contains(dir.path().to_str().unwrap()),
        "{stderr}"
    );
}
