//! `fasp-lab demo` as the README runs it: offline, every byte verified, nothing left behind.

use std::process::Command;

use serde_json::Value;

fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

#[test]
fn demo_runs_offline_verifies_every_byte_and_cleans_up() {
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_fasp-lab"))
        .args(["demo", "--json", "--size-mb", "40"])
        .env("TMPDIR", tmp.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = json_lines(&stdout);
    let steps: Vec<&str> = lines
        .iter()
        .filter(|l| l["type"] == "demo")
        .filter_map(|l| l["step"].as_str())
        .collect();
    for s in [
        "intro", "data", "node", "upload", "rate", "download", "verify",
    ] {
        assert!(steps.contains(&s), "{s} missing: {steps:?}");
    }
    assert!(
        lines
            .iter()
            .any(|l| l["type"] == "rate_changed" && l["target_kbps"] == 800_000)
    );
    let summary = lines
        .iter()
        .find(|l| l["type"] == "summary")
        .expect("summary");
    assert_eq!(summary["ok"], true);
    assert_eq!(summary["bytes"], 40_000_000);
    let files = summary["files"].as_array().unwrap();
    assert_eq!(files.len(), 6);
    assert!(files.iter().all(|f| f["verified"] == true));
    assert!(lines[0]["message"].as_str().unwrap().contains("emulator"));
    // Its work folder (data, "remote host", downloads) is gone.
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
}
