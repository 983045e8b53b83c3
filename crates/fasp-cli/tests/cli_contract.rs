//! The `fasp` command as users meet it (issue 13): destinations that are folders, transfer
//! options that reach ascp, keys nothing uses, the outcome line whatever happens, hostile node
//! answers, TLS options, terminal safety. Run against the node API stand-in and ascp-sim.

mod support;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use fasp_node_standin::{
    Answer, CERTIFICATE_PEM, NODE_PASSWORD, NODE_USER, NodeStandin, StandinConfig,
};
use serde_json::{Value, json};
use support::{json_lines, sim_path};

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| ((i.wrapping_mul(131) >> 3) as u8) ^ seed)
        .collect()
}

/// A stand-in on its own runtime, with the folders of one test.
struct Lab {
    node: NodeStandin,
    _runtime: tokio::runtime::Runtime,
    dir: tempfile::TempDir,
    sim: PathBuf,
}

impl Lab {
    fn start(change: impl FnOnce(&mut StandinConfig)) -> Option<Lab> {
        let sim = sim_path()?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let mut config = StandinConfig::default();
        change(&mut config);
        let node = runtime.block_on(NodeStandin::start(config)).unwrap();
        let dir = tempfile::tempdir().unwrap();
        for d in ["local", "remote", "back"] {
            std::fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        Some(Lab {
            node,
            _runtime: runtime,
            dir,
            sim,
        })
    }

    fn local(&self) -> PathBuf {
        self.dir.path().join("local")
    }

    fn remote(&self) -> PathBuf {
        self.dir.path().join("remote")
    }

    fn back(&self) -> PathBuf {
        self.dir.path().join("back")
    }

    /// `fasp <args>` with the node's URL, user and password and ascp-sim as ascp.
    fn fasp(&self, sub: &str, args: &[&str]) -> Output {
        let mut all = vec![
            sub,
            "--url",
            self.node.base_url(),
            "--user",
            NODE_USER,
            "--ascp",
            self.sim.to_str().unwrap(),
        ];
        all.extend_from_slice(args);
        self.command(&all).output().unwrap()
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_fasp"));
        c.args(args)
            .env("FASP_NODE_PASSWORD", NODE_PASSWORD)
            .env("FASP_ASCP_ENV", "ASCP_SIM_*")
            .env("ASCP_SIM_ROOT", self.remote())
            .env("ASCP_SIM_STATS_INTERVAL_MS", "50")
            .env_remove("ASCP_SIM_EXPECT_TOKEN")
            .stdin(Stdio::null());
        c
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn ok(out: &Output) {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        text(&out.stdout),
        text(&out.stderr)
    );
}

fn write(path: &Path, data: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, data).unwrap();
}

#[test]
fn upload_destinations_are_folders_created_when_missing() {
    let Some(lab) = Lab::start(|_| {}) else {
        return;
    };
    let (a, b, c) = (pattern(70_000, 1), pattern(1_234, 2), pattern(9_999, 3));
    write(&lab.local().join("a.bin"), &a);
    write(&lab.local().join("b.bin"), &b);
    write(&lab.local().join("set/inner/c.bin"), &c);
    let la = lab.local().join("a.bin");
    let lb = lab.local().join("b.bin");
    let set = lab.local().join("set");
    std::fs::create_dir_all(lab.remote().join("existing")).unwrap();

    // One file into a folder that does not exist yet: created, the file inside it.
    ok(&lab.fasp("upload", &[la.to_str().unwrap(), "/new_folder"]));
    assert!(lab.remote().join("new_folder").is_dir());
    assert_eq!(
        std::fs::read(lab.remote().join("new_folder/a.bin")).unwrap(),
        a
    );

    // Several files into an existing folder.
    ok(&lab.fasp(
        "upload",
        &[la.to_str().unwrap(), lb.to_str().unwrap(), "/existing"],
    ));
    assert_eq!(
        std::fs::read(lab.remote().join("existing/a.bin")).unwrap(),
        a
    );
    assert_eq!(
        std::fs::read(lab.remote().join("existing/b.bin")).unwrap(),
        b
    );

    // A folder into a missing folder: it lands inside under its own name.
    ok(&lab.fasp("upload", &[set.to_str().unwrap(), "/deep/target"]));
    assert_eq!(
        std::fs::read(lab.remote().join("deep/target/set/inner/c.bin")).unwrap(),
        c
    );

    // A rename only when asked.
    ok(&lab.fasp(
        "upload",
        &["--rename", la.to_str().unwrap(), "/existing/renamed.bin"],
    ));
    assert_eq!(
        std::fs::read(lab.remote().join("existing/renamed.bin")).unwrap(),
        a
    );
    let two = lab.fasp(
        "upload",
        &["--rename", la.to_str().unwrap(), lb.to_str().unwrap(), "/x"],
    );
    assert_eq!(two.status.code(), Some(2), "{}", text(&two.stderr));
    assert!(text(&two.stderr).starts_with("fasp upload: --rename takes exactly one source"));
}

#[test]
fn download_destinations_are_local_folders_created_when_missing() {
    let Some(lab) = Lab::start(|_| {}) else {
        return;
    };
    let (a, b) = (pattern(50_000, 4), pattern(777, 5));
    write(&lab.remote().join("out/a.bin"), &a);
    write(&lab.remote().join("out/b.bin"), &b);
    write(&lab.remote().join("tree/sub/b.bin"), &b);

    let missing = lab.back().join("not/yet");
    ok(&lab.fasp("download", &["/out/a.bin", missing.to_str().unwrap()]));
    assert_eq!(std::fs::read(missing.join("a.bin")).unwrap(), a);

    ok(&lab.fasp(
        "download",
        &["/out/a.bin", "/out/b.bin", lab.back().to_str().unwrap()],
    ));
    assert_eq!(std::fs::read(lab.back().join("a.bin")).unwrap(), a);
    assert_eq!(std::fs::read(lab.back().join("b.bin")).unwrap(), b);

    let folder = lab.back().join("folder");
    ok(&lab.fasp("download", &["/tree", folder.to_str().unwrap()]));
    assert_eq!(std::fs::read(folder.join("tree/sub/b.bin")).unwrap(), b);

    let renamed = lab.back().join("renamed.bin");
    ok(&lab.fasp(
        "download",
        &["--rename", "/out/b.bin", renamed.to_str().unwrap()],
    ));
    assert_eq!(std::fs::read(&renamed).unwrap(), b);
}

/// A bare spec for ascp-sim: `files` under `local`, uploaded to `/up`.
fn spec_file(lab: &Lab, extra: Value, files: &[&str]) -> PathBuf {
    let mut spec = json!({
        "direction": "send", "remote_host": "127.0.0.1", "remote_user": "xfer",
        "ssh_port": 33001, "fasp_port": 33001, "token": "ATB3_contract",
        "destination_root": "/up", "create_dir": true,
        "paths": files.iter().map(|f| json!({"source": lab.local().join(f)})).collect::<Vec<_>>(),
    });
    for (k, v) in extra.as_object().unwrap() {
        spec[k] = v.clone();
    }
    let path = lab.dir.path().join(format!("spec-{}.json", rand_suffix()));
    std::fs::write(&path, spec.to_string()).unwrap();
    path
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

#[test]
fn options_reach_ascp_and_multi_session_runs_several_sessions() {
    let Some(lab) = Lab::start(|_| {}) else {
        return;
    };
    for (i, name) in ["m1.bin", "m2.bin", "m3.bin", "m4.bin"].iter().enumerate() {
        write(
            &lab.local().join(name),
            &pattern(40_000 + i * 1000, i as u8),
        );
    }
    let spec = spec_file(&lab, json!({}), &["m1.bin", "m2.bin", "m3.bin", "m4.bin"]);
    let ts = lab.dir.path().join("ts.json");
    std::fs::write(&ts, r#"{"min_rate_kbps": 100}"#).unwrap();
    let sim = lab.sim.to_str().unwrap();
    let ts_arg = format!("@{}", ts.display());
    let out = lab
        .command(&[
            "transfer",
            "--spec",
            spec.to_str().unwrap(),
            "--ascp",
            sim,
            "--json",
            "--target-rate",
            "80m",
            "--policy",
            "fair",
            "--ts",
            &ts_arg,
            "--multi-session",
            "2",
        ])
        .output()
        .unwrap();
    ok(&out);
    let lines = json_lines(&text(&out.stdout));
    let started: Vec<&Value> = lines
        .iter()
        .filter(|l| l["type"] == "session_started")
        .collect();
    assert_eq!(started.len(), 2, "{lines:?}");
    // Each of the two sessions has half of the 80 Mbit/s, the minimum from --ts, the policy.
    for s in &started {
        assert_eq!(s["target_kbps"], 40_000, "{s}");
        assert_eq!(s["min_kbps"], 50, "{s}");
        assert_eq!(s["policy"], "fair", "{s}");
    }
    let outcome = lines.last().unwrap();
    assert_eq!(outcome["type"], "outcome");
    assert_eq!(outcome["ok"], true);
    assert_eq!(outcome["sessions"], 2);
    assert_eq!(outcome["files"]["done"], 4);
    for (i, name) in ["m1.bin", "m2.bin", "m3.bin", "m4.bin"].iter().enumerate() {
        assert_eq!(
            std::fs::read(lab.remote().join("up").join(name)).unwrap(),
            pattern(40_000 + i * 1000, i as u8)
        );
    }
}

#[test]
fn keys_nothing_uses_are_warned_about_or_refused_with_strict() {
    let Some(lab) = Lab::start(|_| {}) else {
        return;
    };
    write(&lab.local().join("k.bin"), &pattern(5_000, 9));
    let spec = spec_file(&lab, json!({"target_rate": 5000}), &["k.bin"]);
    let sim = lab.sim.to_str().unwrap();
    let out = lab
        .command(&[
            "transfer",
            "--spec",
            spec.to_str().unwrap(),
            "--ascp",
            sim,
            "--json",
        ])
        .output()
        .unwrap();
    ok(&out);
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("fasp transfer: warning:") && stderr.contains("target_rate"),
        "{stderr}"
    );
    let lines = json_lines(&text(&out.stdout));
    assert_eq!(lines[0]["type"], "warning", "{lines:?}");
    assert!(
        lines[0]["message"]
            .as_str()
            .unwrap()
            .contains("target_rate")
    );
    std::fs::remove_file(lab.remote().join("up/k.bin")).unwrap();

    let out = lab
        .command(&[
            "transfer",
            "--spec",
            spec.to_str().unwrap(),
            "--ascp",
            sim,
            "--json",
            "--strict",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let lines = json_lines(&text(&out.stdout));
    assert_eq!(lines.len(), 1, "{lines:?}");
    let outcome = &lines[0];
    assert_eq!(outcome["type"], "outcome");
    assert_eq!(outcome["exit"], 2);
    assert!(outcome["message"].as_str().unwrap().contains("target_rate"));
    // Nothing ran.
    assert!(!lab.remote().join("up/k.bin").exists());
}

/// The fields every outcome line has, in this order.
const OUTCOME_FIELDS: &[&str] = &[
    "type",
    "ok",
    "exit",
    "code",
    "message",
    "retryable",
    "interrupted",
    "bytes",
    "files",
    "attempts",
    "sessions",
    "elapsed_ms",
];

fn outcome_fields(v: &Value) -> Vec<&str> {
    v.as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .filter(|k| OUTCOME_FIELDS.contains(k))
        .collect()
}

#[test]
fn the_outcome_line_has_the_same_fields_whatever_happens() {
    let Some(lab) = Lab::start(|_| {}) else {
        return;
    };
    write(&lab.local().join("o.bin"), &pattern(3_000, 7));
    let sim = lab.sim.to_str().unwrap();
    let run = |args: &[&str], stdin: Option<&str>| -> (Option<i32>, Vec<Value>, String) {
        let mut c = lab.command(args);
        c.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        let mut input = child.stdin.take().unwrap();
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).unwrap();
        }
        drop(input);
        let out = child.wait_with_output().unwrap();
        (
            out.status.code(),
            json_lines(&text(&out.stdout)),
            text(&out.stderr),
        )
    };

    // Success.
    let spec = spec_file(&lab, json!({}), &["o.bin"]);
    let (code, lines, _) = run(
        &[
            "transfer",
            "--spec",
            spec.to_str().unwrap(),
            "--ascp",
            sim,
            "--json",
        ],
        None,
    );
    assert_eq!(code, Some(0));
    let good = lines.last().unwrap().clone();
    assert_eq!(outcome_fields(&good), OUTCOME_FIELDS);

    // A spec that is not JSON: exit 2, 1-based position, the same fields.
    let broken = lab.dir.path().join("broken.json");
    std::fs::write(&broken, "{\n  \"remote_host\": ,\n}").unwrap();
    let (code, lines, stderr) = run(
        &["transfer", "--spec", broken.to_str().unwrap(), "--json"],
        None,
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert_eq!(lines.len(), 1);
    assert_eq!(outcome_fields(&lines[0]), OUTCOME_FIELDS);
    assert_eq!(lines[0]["exit"], 2);
    let message = lines[0]["message"].as_str().unwrap();
    assert!(message.contains("line 2"), "{message}");
    assert!(message.contains("broken.json"), "{message}");
    assert!(stderr.starts_with("fasp transfer: "), "{stderr}");

    // A missing file names its path.
    let (code, lines, _) = run(
        &["transfer", "--spec", "/nonexistent/spec.json", "--json"],
        None,
    );
    assert_eq!(code, Some(2));
    assert!(
        lines[0]["message"]
            .as_str()
            .unwrap()
            .contains("/nonexistent/spec.json")
    );

    // A spec that fails validation (no destination): exit 2.
    let invalid = lab.dir.path().join("invalid.json");
    std::fs::write(
        &invalid,
        json!({"direction": "send", "remote_host": "h", "paths": []}).to_string(),
    )
    .unwrap();
    let (code, lines, _) = run(
        &["transfer", "--spec", invalid.to_str().unwrap(), "--json"],
        None,
    );
    assert_eq!(code, Some(2));
    assert_eq!(outcome_fields(&lines[0]), OUTCOME_FIELDS);

    // A cancel through a control line: exit 1, code 28, the same fields.
    write(&lab.local().join("big.bin"), &pattern(3_000_000, 8));
    let slow = spec_file(&lab, json!({"target_rate_kbps": 2000}), &["big.bin"]);
    let (code, lines, _) = run(
        &[
            "transfer",
            "--spec",
            slow.to_str().unwrap(),
            "--ascp",
            sim,
            "--json",
        ],
        Some("{\"type\":\"cancel\"}\n"),
    );
    assert_eq!(code, Some(1));
    let last = lines.last().unwrap();
    assert_eq!(outcome_fields(last), OUTCOME_FIELDS);
    assert_eq!(
        (last["ok"].as_bool(), last["code"].as_u64()),
        (Some(false), Some(28))
    );
    assert_eq!(last["interrupted"], false);

    // The spec on standard input.
    let text_spec = std::fs::read_to_string(&spec).unwrap();
    let (code, lines, stderr) = run(
        &["transfer", "--spec", "-", "--ascp", sim, "--json"],
        Some(&text_spec),
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(lines.last().unwrap()["ok"], true);
}

#[test]
fn pause_and_resume_are_events_with_the_control_words() {
    let Some(lab) = Lab::start(|_| {}) else {
        return;
    };
    write(&lab.local().join("p.bin"), &pattern(2_000_000, 6));
    let spec = spec_file(&lab, json!({"target_rate_kbps": 4000}), &["p.bin"]);
    let sim = lab.sim.to_str().unwrap();
    let mut child = lab
        .command(&[
            "transfer",
            "--spec",
            spec.to_str().unwrap(),
            "--ascp",
            sim,
            "--json",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = Vec::new();
    let mut sent = false;
    for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)) {
        let v: Value = support::json_line(&line.unwrap());
        if !sent && v["type"] == "file_progress" {
            input
                .write_all(
                    b"{\"type\":\"pause\"}\n{\"type\":\"rate\",\"target_kbps\":100000,\"policy\":\"fixed\"}\n{\"type\":\"resume\"}\n",
                )
                .unwrap();
            sent = true;
        }
        lines.push(v);
    }
    let status = child.wait().unwrap();
    assert!(status.success());
    let kinds: Vec<&str> = lines.iter().filter_map(|l| l["type"].as_str()).collect();
    let paused = kinds.iter().position(|k| *k == "paused").expect("paused");
    let resumed = kinds.iter().position(|k| *k == "resumed").expect("resumed");
    assert!(paused < resumed, "{kinds:?}");
    // The policy set with the word "fixed" comes back as "fixed".
    assert!(
        lines
            .iter()
            .any(|l| l["type"] == "rate_changed" && l["policy"] == "fixed"),
        "{lines:?}"
    );
}

#[test]
fn a_hostile_node_answer_cannot_act_on_this_machine() {
    let Some(lab) = Lab::start(|c| {
        c.spec
            .extra
            .insert("remove_after_transfer".into(), json!(true));
        c.spec
            .extra
            .insert("ssh_private_key_path".into(), json!("/etc/shadow"));
        c.spec
            .extra
            .insert("file_manifest_path".into(), json!("/tmp/owned"));
    }) else {
        return;
    };
    let a = pattern(10_000, 11);
    write(&lab.local().join("keep.bin"), &a);
    let la = lab.local().join("keep.bin");
    let out = lab.fasp("upload", &["--json", la.to_str().unwrap(), "/incoming"]);
    ok(&out);
    let stderr = text(&out.stderr);
    for key in [
        "remove_after_transfer",
        "ssh_private_key_path",
        "file_manifest_path",
    ] {
        assert!(stderr.contains(key), "{key} not named: {stderr}");
    }
    let lines = json_lines(&text(&out.stdout));
    assert!(lines.iter().any(|l| {
        l["type"] == "warning"
            && l["message"]
                .as_str()
                .unwrap()
                .contains("remove_after_transfer")
    }));
    // The source is still here, and it arrived.
    assert_eq!(std::fs::read(&la).unwrap(), a);
    assert_eq!(
        std::fs::read(lab.remote().join("incoming/keep.bin")).unwrap(),
        a
    );
}

#[test]
fn control_characters_from_the_node_and_file_names_are_escaped() {
    let Some(lab) = Lab::start(|c| {
        c.download_answers = vec![Answer::node_error(
            500,
            "Internal\x07",
            "\x1b]0;owned\x07\x1b[2Jgone\rfake prompt",
        )];
    }) else {
        return;
    };
    let out = lab.fasp("download", &["/x", lab.back().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(!stderr.contains('\x1b') && !stderr.contains('\x07') && !stderr.contains('\r'));
    assert!(stderr.contains("\\x1b[2J"), "{stderr}");

    // A file name with an escape sequence, in the human output (stderr is not a terminal:
    // one line per file).
    let evil = lab.local().join("ev\x1b[31mil.bin");
    write(&evil, &pattern(2_000, 12));
    let out = lab.fasp("upload", &[evil.to_str().unwrap(), "/incoming"]);
    ok(&out);
    let stderr = text(&out.stderr);
    assert!(!stderr.contains('\x1b'), "{stderr:?}");
    assert!(stderr.contains("ev\\x1b[31mil.bin"), "{stderr}");
    assert!(stderr.contains("kB") || stderr.contains(" B"), "{stderr}");
}

#[test]
fn tls_with_cacert_insecure_and_saved_specs() {
    let Some(lab) = Lab::start(|c| c.tls = true) else {
        return;
    };
    let url = lab.node.base_url().to_owned();
    let setup = |extra: &[&str]| {
        let mut args = vec![
            "node",
            "upload-setup",
            "--url",
            &url,
            "--user",
            NODE_USER,
            "--path",
            "/incoming",
        ];
        args.extend_from_slice(extra);
        lab.command(&args).output().unwrap()
    };
    // Untrusted: refused.
    let out = setup(&[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    // Trusted with --cacert.
    let pem = lab.dir.path().join("node.pem");
    std::fs::write(&pem, CERTIFICATE_PEM).unwrap();
    let saved = lab.dir.path().join("saved.json");
    let out = setup(&[
        "--cacert",
        pem.to_str().unwrap(),
        "--save",
        saved.to_str().unwrap(),
    ]);
    ok(&out);
    assert!(
        !text(&out.stderr).contains("warning"),
        "{}",
        text(&out.stderr)
    );
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["token"], "<redacted>");
    let mode = std::fs::metadata(&saved).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let full: Value = serde_json::from_str(&std::fs::read_to_string(&saved).unwrap()).unwrap();
    assert!(full["token"].as_str().unwrap().starts_with("ATB3_standin-"));
    // A missing CA file is named.
    let out = setup(&["--cacert", "/nonexistent/ca.pem"]);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        text(&out.stderr).contains("/nonexistent/ca.pem"),
        "{}",
        text(&out.stderr)
    );
    // --insecure-skip-tls-verify works, loudly.
    let out = setup(&["--insecure-skip-tls-verify"]);
    ok(&out);
    assert!(text(&out.stderr).contains("warning: --insecure-skip-tls-verify"));

    // The redacted output saved as a spec is refused by transfer, pointing at --save.
    let redacted = lab.dir.path().join("redacted.json");
    let mut shown = shown;
    shown["paths"] = json!([{"source": "/tmp/x", "destination": "/incoming"}]);
    std::fs::write(&redacted, shown.to_string()).unwrap();
    let out = lab
        .command(&["transfer", "--spec", redacted.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("--save"),
        "{}",
        text(&out.stderr)
    );
}
