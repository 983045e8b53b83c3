//! `fasp transfer`, `fasp upload` and `fasp download` end to end against ascp-sim (the
//! project's ascp emulator) and, for upload/download, the node API stand-in.
//!
//! `cargo test --workspace` builds `ascp-sim` first; run alone, these tests skip with a notice
//! when it is missing (with `CI=true` they fail).

mod support;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fasp_node_standin::{NODE_PASSWORD, NODE_USER, NodeStandin, StandinConfig};
use serde_json::Value;
use support::{json_lines, sim_path};

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i.wrapping_mul(131) >> 3) as u8).collect()
}

#[test]
fn transfer_json_streams_events_and_takes_a_rate_change_from_stdin() {
    let Some(sim) = sim_path() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (local, remote) = (dir.path().join("local"), dir.path().join("remote"));
    std::fs::create_dir_all(&local).unwrap();
    std::fs::create_dir_all(&remote).unwrap();
    let data = pattern(4_000_000);
    std::fs::write(local.join("big.bin"), &data).unwrap();
    // 8000 kbit/s: 4 s for 4 MB unless the rate goes up.
    let spec = serde_json::json!({
        "direction": "send", "remote_host": "127.0.0.1", "remote_user": "xfer",
        "target_rate_kbps": 8000, "token": "ATM3_e2e_secret",
        "paths": [{"source": local.join("big.bin").to_str().unwrap()}], "destination_root": "/"
    });
    let spec_path = dir.path().join("spec.json");
    std::fs::write(&spec_path, spec.to_string()).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_fasp"))
        .args([
            "transfer",
            "--json",
            "--spec",
            spec_path.to_str().unwrap(),
            "--ascp",
            sim.to_str().unwrap(),
        ])
        .env("FASP_ASCP_ENV", "ASCP_SIM_*")
        .env("ASCP_SIM_ROOT", &remote)
        .env("ASCP_SIM_STATS_INTERVAL_MS", "100")
        .env("ASCP_SIM_EXPECT_TOKEN", "ATM3_e2e_secret")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let started = Instant::now();
    let mut lines = Vec::new();
    let mut sent = false;
    for line in stdout.lines() {
        let line = line.unwrap();
        let v: Value = support::json_line(&line);
        if !sent && v["type"] == "file_progress" {
            writeln!(
                stdin,
                r#"{{"type":"rate","target_kbps":64000,"policy":"fixed"}}"#
            )
            .unwrap();
            stdin.flush().unwrap();
            sent = true;
        }
        lines.push(v);
    }
    let status = child.wait().unwrap();
    let took = started.elapsed();
    assert!(status.success(), "{lines:?}");
    assert!(sent);
    assert_eq!(std::fs::read(remote.join("big.bin")).unwrap(), data);
    // The rate change reached ascp-sim, which acknowledged it, and the transfer sped up.
    assert!(
        lines
            .iter()
            .any(|l| l["type"] == "control_sent" && l["control"] == "RATE")
    );
    assert!(
        lines
            .iter()
            .any(|l| l["type"] == "rate_changed" && l["target_kbps"] == 64000),
        "{lines:?}"
    );
    assert!(
        took < Duration::from_secs(3),
        "the rate change had no effect: {took:?}"
    );
    let last = lines.last().unwrap();
    assert_eq!(last["type"], "outcome");
    assert_eq!(last["ok"], true);
    assert_eq!(last["code"], Value::Null);
    assert_eq!(last["bytes"], 4_000_000);
    for l in &lines {
        let t = l["type"].as_str().unwrap();
        if t.starts_with("file_") || t.starts_with("session_") {
            assert!(l["session_id"].is_string(), "{l}");
        }
    }
    assert!(
        !lines
            .iter()
            .any(|l| l.to_string().contains("ATM3_e2e_secret"))
    );
}

fn fasp(args: &[&str], remote: &Path, token: &str) -> (bool, Vec<Value>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_fasp"))
        .args(args)
        .env("FASP_NODE_PASSWORD", NODE_PASSWORD)
        .env("FASP_ASCP_ENV", "ASCP_SIM_*")
        .env("ASCP_SIM_ROOT", remote)
        .env("ASCP_SIM_STATS_INTERVAL_MS", "50")
        .env("ASCP_SIM_EXPECT_TOKEN", token)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    (
        out.status.success(),
        json_lines(&stdout),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn upload_and_download_through_the_node_stand_in() {
    let Some(sim) = sim_path() else { return };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let node = rt
        .block_on(NodeStandin::start(StandinConfig::default()))
        .unwrap();
    let url = node.base_url().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let (local, remote) = (dir.path().join("local"), dir.path().join("remote"));
    std::fs::create_dir_all(&local).unwrap();
    std::fs::create_dir_all(remote.join("incoming")).unwrap();
    let a = pattern(250_000);
    let b = pattern(1_234);
    std::fs::write(local.join("a.bin"), &a).unwrap();
    std::fs::write(local.join("b.bin"), &b).unwrap();
    let sim = sim.to_str().unwrap();
    let (la, lb) = (local.join("a.bin"), local.join("b.bin"));

    // Upload: the stand-in's first token is the only one the "server" takes.
    let (ok, lines, stderr) = fasp(
        &[
            "upload",
            "--url",
            &url,
            "--user",
            NODE_USER,
            "--ascp",
            sim,
            "--json",
            la.to_str().unwrap(),
            lb.to_str().unwrap(),
            "/incoming",
        ],
        &remote,
        "ATB3_standin-1",
    );
    assert!(ok, "{stderr}\n{lines:?}");
    assert_eq!(std::fs::read(remote.join("incoming/a.bin")).unwrap(), a);
    assert_eq!(std::fs::read(remote.join("incoming/b.bin")).unwrap(), b);
    let last = lines.last().unwrap();
    assert_eq!(
        (
            last["type"].as_str(),
            last["ok"].as_bool(),
            last["files"]["done"].as_u64()
        ),
        (Some("outcome"), Some(true), Some(2))
    );
    assert!(
        !stderr.contains("ATB3_standin")
            && !lines.iter().any(|l| l.to_string().contains("ATB3_standin"))
    );
    assert_eq!(node.issued_tokens(), ["ATB3_standin-1"]);

    // Download them back with the second token.
    let back = dir.path().join("back");
    std::fs::create_dir_all(&back).unwrap();
    let (ok, lines, stderr) = fasp(
        &[
            "download",
            "--url",
            &url,
            "--user",
            NODE_USER,
            "--ascp",
            sim,
            "--json",
            "/incoming/a.bin",
            "/incoming/b.bin",
            back.to_str().unwrap(),
        ],
        &remote,
        "ATB3_standin-2",
    );
    assert!(ok, "{stderr}\n{lines:?}");
    assert_eq!(std::fs::read(back.join("a.bin")).unwrap(), a);
    assert_eq!(std::fs::read(back.join("b.bin")).unwrap(), b);

    // A wrong password: the node refuses, nothing is started, exit 1 naming the failure.
    let out = Command::new(env!("CARGO_BIN_EXE_fasp"))
        .args([
            "upload",
            "--url",
            &url,
            "--user",
            NODE_USER,
            "--ascp",
            sim,
            la.to_str().unwrap(),
            "/incoming",
        ])
        .env("FASP_NODE_PASSWORD", "wrong")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("401"), "{stderr}");
    drop(node);
}
